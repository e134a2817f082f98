"""The inbox page and the bell: one's own notifications only, about cases one may still see."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications.models import Notification
from notifications.services import notify
from tests.factories import CaseFactory, UserFactory

pytestmark = pytest.mark.django_db


def tell(user, text="Nouvelle demande", case=None):
    return notify(event_type="request_routed", recipients=[user], message=text, case=case)[0]


def test_inbox_lists_unread_and_marks_read(client, login, referent, case):
    first = tell(referent, "Demande acceptée", case=case)
    tell(referent, "Demande déclinée", case=case)
    other = UserFactory()
    foreign = tell(other, "Pas pour vous")
    login(client, referent)
    page = client.get(reverse("notification_list")).content.decode()
    assert "Demande acceptée" in page and "Demande déclinée" in page and "Pas pour vous" not in page
    assert 'id="notification-count">2<' in page
    # Marking someone else's notification does nothing.
    client.post(reverse("notification_mark_read"), {"id": [first.pk, foreign.pk]})
    assert Notification.objects.get(pk=foreign.pk).read_at is None
    assert Notification.objects.get(pk=first.pk).read_at is not None
    unread = client.get(reverse("notification_list"), {"filtre": "non-lues"}).content.decode()
    assert "Demande déclinée" in unread and "Demande acceptée" not in unread
    client.post(reverse("notification_mark_read"), {"all": "1"})
    assert not Notification.objects.filter(recipient=referent, read_at__isnull=True).exists()


def test_notifications_about_a_case_one_lost_are_hidden(client, login, referent, site):
    lost = CaseFactory(site=site)  # another referent's case
    tell(referent, "Sur un dossier perdu", case=lost)
    html = login(client, referent).get(reverse("notification_list")).content.decode()
    assert "Sur un dossier perdu" not in html


def test_inbox_query_count_is_the_same_at_10_and_200(client, login, referent):
    login(client, referent)
    for _ in range(10):
        tell(referent)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("notification_list")).status_code == 200
        return len(ctx.captured_queries)

    at_10 = count()
    for _ in range(190):
        tell(referent)
    assert count() == at_10


def test_each_new_notification_knows_its_recipients_previous_one(referent, case):
    """One INSERT writes the rows and returns, for each, its recipient's previous notification (the
    ring carries it: notifications.delivery), also one written earlier in the same transaction."""
    from django.db import transaction

    other = UserFactory()
    with CaptureQueriesContext(connection) as queries:
        first = notify(event_type="request_routed", recipients=[referent, other], message="Un", case=case)
    inserts = [q["sql"] for q in queries if q["sql"].startswith("INSERT") and "notification\"" in q["sql"]]
    assert len(inserts) == 1
    assert [row.previous_id for row in first] == [None, None]
    assert {row.pk for row in first} == set(Notification.objects.values_list("pk", flat=True))
    with transaction.atomic():
        second = tell(other, "Deux")
        third = notify(event_type="request_routed", recipients=[referent, other], message="Trois")
    assert second.previous_id == first[1].pk
    assert [row.previous_id for row in third] == [first[0].pk, second.pk]
    stored = Notification.objects.get(pk=third[1].pk)
    assert (stored.text, stored.recipient_id, stored.created_at) == ("Trois", other.pk, third[1].created_at)
