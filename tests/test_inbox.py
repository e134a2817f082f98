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
