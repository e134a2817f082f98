"""E-mails of the notifications: outbox written with the business change, sent after it by the
worker loop, retried on failure, never sent twice; preferences per event type respected."""

import contextlib
import datetime
import socket
import threading
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


# --- A mail server that accepts and never answers; crashes mid-send --------------------------------

SMTP = "django.core.mail.backends.smtp.EmailBackend"


class SilentServer:
    """A socket on 127.0.0.1 that accepts connections and never writes a byte (no SMTP greeting)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self.connections = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                connection, _address = self.listener.accept()
                self.connections.append(connection)
                self.accepted.set()

    def close(self):
        for connection in [*self.connections, self.listener]:
            connection.close()


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def test_a_silent_mail_server_times_out_and_ends_the_pass(silent_server, settings):
    """Each SMTP operation waits at most EMAIL_TIMEOUT; the failure is kept and retried later, and
    the rows after it wait for the next pass instead of each waiting as long."""
    settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT = SMTP, "127.0.0.1", silent_server.port
    settings.EMAIL_TIMEOUT = 0.5
    tell(UserFactory())
    tell(UserFactory())
    assert outbox.drain() == 0  # it returns
    first, second = OutboxEmail.objects.order_by("pk")
    assert silent_server.accepted.is_set()
    assert first.attempts == 1 and first.claimed_at is None and first.sent_at is None
    assert "timed out" in first.last_error and first.next_attempt_at > timezone.now()
    assert second.attempts == 0 and second.last_error == ""  # not tried behind a dead server
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboxEmail.objects.update(next_attempt_at=timezone.now() - datetime.timedelta(seconds=1))
    assert outbox.drain() == 2 and len(mail.outbox) == 2


def test_the_message_id_is_stable_and_the_attempt_is_recorded_before_the_send(settings):
    settings.SITE_URL = "https://tds.example.fr/"
    tell(UserFactory())
    email = OutboxEmail.objects.get()
    seen = []

    def failing_send(message, *args, **kwargs):
        row = OutboxEmail.objects.get()
        seen.append((row.attempts, row.attempt_started_at is not None, row.claimed_at is not None))
        raise OSError("SMTP down")

    with mock.patch("notifications.outbox.EmailMultiAlternatives.send", failing_send):
        outbox.drain()
    assert seen == [(1, True, True)]  # counted and dated before the server answered
    OutboxEmail.objects.update(next_attempt_at=timezone.now())
    outbox.drain()
    assert mail.outbox[0].extra_headers["Message-ID"] == f"<outbox-{email.pk}@tds.example.fr>"
    assert mail.outbox[0].message()["Message-ID"] == f"<outbox-{email.pk}@tds.example.fr>"
    assert OutboxEmail.objects.get().attempts == 2


def test_a_claim_left_by_a_killed_worker_expires_after_the_claim_timeout(settings):
    settings.OUTBOX_CLAIM_TIMEOUT = 120
    tell(UserFactory())
    email = OutboxEmail.objects.get()
    start = timezone.now()
    assert outbox._claim(email.pk, start) is True  # the worker dies here, mid-send
    assert outbox._claim(email.pk, start + datetime.timedelta(seconds=119)) is False
    assert outbox._claim(email.pk, start + datetime.timedelta(seconds=121)) is True


@pytest.mark.django_db(transaction=True)
def test_a_due_deadline_fires_while_the_mail_server_holds_the_email_thread(
    silent_server, settings, site, referent
):
    """The loop sends the e-mails in their own thread: a silent server stalls them, not the deadlines."""
    from viewflow.workflow.models import Task

    from tests.test_board import routed_request
    from workflows import timers
    from workflows.models import ServiceRequest

    settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT = SMTP, "127.0.0.1", silent_server.port
    settings.EMAIL_TIMEOUT = 60  # longer than the test: only closing the server frees the e-mail thread
    _case, request, _agent = routed_request(site, referent)
    assert OutboxEmail.objects.exists()  # the routing queued immediate e-mails
    stop = threading.Event()
    loop = threading.Thread(target=timers.loop, args=(0.1, stop), daemon=True)
    loop.start()
    try:
        assert silent_server.accepted.wait(20)  # the e-mail thread is stuck in the greeting
        past = timezone.now() - datetime.timedelta(minutes=1)  # the deadline passes only now
        Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(scheduled=past)
        ServiceRequest.objects.filter(pk=request.pk).update(deadline=past)
        fired = False
        for _ in range(200):
            if not Task.objects.filter(
                process_id=request.pk, flow_task_type="TIMER", status="SCHEDULED"
            ).exists():
                fired = True
                break
            stop.wait(0.1)
        assert fired
        assert not OutboxEmail.objects.filter(sent_at__isnull=False).exists()
        assert OutboxEmail.objects.filter(claimed_at__isnull=False).count() == 1  # still in its send
    finally:
        stop.set()
        silent_server.close()  # the stuck send fails at once
        loop.join(10)
    assert not loop.is_alive()
