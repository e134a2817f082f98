"""E-mails of the notifications: outbox written with the business change, sent after it by the
worker loop, retried on failure, never sent twice; preferences per event type respected."""

import datetime
from unittest import mock

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from notifications import outbox
from notifications.models import Notification, NotificationPreference, OutboxEmail
from notifications.services import notify
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def tell(user, event_type="request_routed", text="Nouvelle demande « Mobilité » pour ACME"):
    return notify(event_type=event_type, recipients=[user], message=text)


def test_immediate_email_is_sent_once_in_french_with_a_link():
    user = UserFactory(email="agent@example.org", first_name="Yann")
    tell(user)
    assert OutboxEmail.objects.count() == 1 and not mail.outbox  # written, not sent yet
    assert outbox.drain() == 1
    assert outbox.drain() == 0  # never twice
    message = mail.outbox[0]
    assert message.to == ["agent@example.org"]
    assert "Bonjour Yann" in message.body and "Nouvelle demande" in message.body
    assert "http://127.0.0.1:8000/notifications/" in message.body
    html = message.alternatives[0][0]
    assert "<a href=" in html


def test_nothing_is_queued_when_the_transaction_rolls_back():
    user = UserFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        tell(user)
        raise RuntimeError
    assert not OutboxEmail.objects.exists() and not Notification.objects.exists()


def test_a_failed_send_is_retried_later_with_back_off():
    user = UserFactory()
    tell(user)
    with mock.patch("notifications.outbox.EmailMultiAlternatives.send", side_effect=OSError("SMTP down")):
        assert outbox.drain() == 0
    email = OutboxEmail.objects.get()
    assert email.attempts == 1 and email.sent_at is None and "SMTP down" in email.last_error
    assert email.next_attempt_at > timezone.now()
    assert outbox.drain() == 0  # not due yet
    OutboxEmail.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
    assert outbox.drain() == 1 and len(mail.outbox) == 1


def test_a_claimed_email_is_not_sent_by_a_second_worker():
    tell(UserFactory())
    email = OutboxEmail.objects.get()
    now = timezone.now()
    assert outbox._claim(email.pk, now) is True
    assert outbox._claim(email.pk, now) is False


@pytest.mark.parametrize(
    ("channel", "rows", "immediate"),
    [("off", 0, 0), ("in_app", 1, 0), ("digest", 1, 0), ("immediate", 1, 1)],
)
def test_preferences_are_respected(channel, rows, immediate):
    user = UserFactory()
    NotificationPreference.objects.create(user=user, event_type="request_routed", channel=channel)
    tell(user)
    assert Notification.objects.filter(recipient=user).count() == rows
    assert OutboxEmail.objects.filter(recipient=user).count() == immediate


def test_daily_digest_gathers_the_unread_digest_notifications_once():
    user = UserFactory()
    tell(user, event_type="request_accepted", text="Demande acceptée")  # digest by default
    tell(user, event_type="request_declined", text="Demande déclinée")
    read = tell(user, event_type="request_claimed", text="Déjà lue")[0]
    Notification.objects.filter(pk=read.pk).update(read_at=timezone.now())
    assert outbox.build_digests() == 1
    assert outbox.build_digests() == 0  # one digest per day
    outbox.drain()
    body = mail.outbox[0].body
    assert "Demande acceptée" in body and "Demande déclinée" in body and "Déjà lue" not in body


def test_preferences_page_saves_choices_and_refuses_bad_ones(client, login, referent):
    login(client, referent)
    page = client.get("/notifications/preferences/").content.decode()
    assert "Demande orientée vers ma structure" in page and "Désactivé" in page
    client.post("/notifications/preferences/", {"request_routed": "off"})
    assert NotificationPreference.objects.get(user=referent, event_type="request_routed").channel == "off"
    client.post("/notifications/preferences/", {"request_routed": "carrier-pigeon"})
    assert NotificationPreference.objects.get(user=referent, event_type="request_routed").channel == "off"


def test_digest_leaves_out_cases_the_user_lost(referent, site):
    lost = CaseFactory(site=site)  # another referent's case
    notify(event_type="request_accepted", recipients=[referent], message="Sur un dossier perdu", case=lost)
    tell(referent, event_type="request_declined", text="Sans dossier")
    outbox.build_digests()
    outbox.drain()
    body = mail.outbox[0].body
    assert "Sans dossier" in body and "Sur un dossier perdu" not in body


def test_an_email_is_given_up_after_max_attempts():
    tell(UserFactory())
    OutboxEmail.objects.update(attempts=outbox.MAX_ATTEMPTS)
    assert outbox.drain() == 0 and not mail.outbox


def test_intervention_due_tomorrow_reminds_its_owner_and_the_referent_once(site, referent):
    import datetime as dt

    from casework import services as case_services
    from tests.factories import InterventionFactory

    today = dt.date(2026, 12, 2)
    owner = UserFactory()
    due = InterventionFactory(
        case=CaseFactory(site=site, referent=referent, active=True),
        owner=owner,
        planned_on=today + dt.timedelta(days=1),
    )
    InterventionFactory(case=due.case, owner=owner, planned_on=today + dt.timedelta(days=2))
    assert case_services.remind_interventions_due(today=today) == 1
    assert case_services.remind_interventions_due(today=today) == 0  # once
    told = set(Notification.objects.filter(event_type="intervention_due").values_list("recipient", flat=True))
    assert told == {owner.pk, referent.pk}
