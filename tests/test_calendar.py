"""The personal calendar feed: a secret, revocable link whose ICS carries the user's planned
interventions, readable by common calendar clients (parsed back with the icalendar package)."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from casework.enums import InterventionStatus
from tests.factories import CaseFactory, InterventionFactory

pytestmark = pytest.mark.django_db


def create_link(client):
    page = client.post(reverse("calendar_settings"), {"action": "create"}).content.decode()
    return re.search(r"<code data-feed-url>([^<]+)</code>", page).group(1)


def test_the_feed_carries_the_users_planned_interventions(
    client, login, site, other_site, referent, other_referent
):
    case = CaseFactory(site=site, referent=referent, active=True, company__name="Chaudronnerie Loire")
    soon = timezone.localdate() + datetime.timedelta(days=3)
    mine = InterventionFactory(case=case, planned_on=soon)
    InterventionFactory(case=case, planned_on=soon, status=InterventionStatus.DONE, outcome="Fait")  # done
    InterventionFactory(case=case, planned_on=soon - datetime.timedelta(days=60))  # too old
    InterventionFactory(
        case=CaseFactory(site=other_site, referent=other_referent, active=True), planned_on=soon
    )
    url = create_link(login(client, referent))
    client.logout()  # a calendar client has no session
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/calendar")
    assert response["Cache-Control"] == "private, no-store"  # a calendar of company names
    calendar = Calendar.from_ical(response.content)
    events = [component for component in calendar.walk() if component.name == "VEVENT"]
    assert [event.decoded("dtstart") for event in events] == [soon]
    [event] = events
    assert str(event["summary"]).endswith("— Chaudronnerie Loire")
    assert str(event["uid"]) == f"intervention-{mine.pk}@127.0.0.1:8000"
    assert str(event["url"]).endswith(reverse("case_detail", kwargs={"public_id": case.public_id}))


def test_a_new_link_or_a_revocation_ends_the_former_link_at_once(client, login, referent):
    login(client, referent)
    first = create_link(client)
    second = create_link(client)
    assert first != second
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    client.post(reverse("calendar_settings"), {"action": "revoke"})
    assert client.get(second).status_code == 404


def test_a_wrong_token_or_a_deactivated_user_gets_404(client, login, referent):
    url = create_link(login(client, referent))
    client.logout()
    assert client.get(reverse("calendar_feed", kwargs={"token": "devine"})).status_code == 404
    assert client.get(url[:-10] + "x" * 6 + ".ics").status_code == 404
    referent.is_active = False
    referent.save(update_fields=["is_active"])
    assert client.get(url).status_code == 404


def test_interventions_of_a_case_the_user_lost_leave_the_feed(client, login, site, referent):
    case = CaseFactory(site=site, referent=referent, active=True)
    InterventionFactory(case=case, planned_on=timezone.localdate())
    url = create_link(login(client, referent))
    referent.memberships.update(is_active=False)  # left the organisation: no longer sees the case
    events = [c for c in Calendar.from_ical(client.get(url).content).walk() if c.name == "VEVENT"]
    assert events == []


def test_feed_query_count_does_not_grow(client, login, site, referent):
    case = CaseFactory(site=site, referent=referent, active=True)
    url = create_link(login(client, referent))
    client.logout()
    counts = []
    for extra in (2, 30):
        for _ in range(extra):
            InterventionFactory(case=case, planned_on=timezone.localdate())
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_the_feed_carries_the_owners_open_action_items_on_their_due_date(
    client, login, site, referent, animator
):
    from cockpit import services

    case = CaseFactory(site=site, referent=referent, company__name="Menuiserie Anjou")
    weekly = services.review_open(actor=animator, site=site)
    due = timezone.localdate() + datetime.timedelta(days=4)
    action = services.review_entry_add(
        actor=animator,
        item=weekly.items.get(case=case),
        kind="action",
        text="Organiser une visite",
        owner=referent,
        due_on=due,
    )
    url = create_link(login(client, referent))

    def events():
        calendar = Calendar.from_ical(client.get(url).content)
        return [c for c in calendar.walk() if c.name == "VEVENT"]

    [event] = events()
    assert event.decoded("dtstart") == due
    assert str(event["summary"]) == "Action à mener — Menuiserie Anjou"
    assert str(event["description"]) == "Organiser une visite"
    assert str(event["uid"]) == f"review-action-{action.pk}@127.0.0.1:8000"
    services.action_done(actor=referent, entry=action)
    assert events() == []
