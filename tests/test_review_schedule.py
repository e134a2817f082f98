"""When and where a site's weekly review is held: set by its animators, shown on the agenda, and
carried by their calendar feed as a weekly event."""

import datetime
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from icalendar import Calendar

from cockpit.models import ReviewSchedule

pytestmark = pytest.mark.django_db


def set_schedule(client, site, **data):
    fields = {
        "weekday": 1,
        "time": "10:00",
        "duration_minutes": 60,
        "video_link": "https://visio.example.fr/ancenis",
    }
    fields.update(data)
    return client.post(reverse("review_schedule", kwargs={"slug": site.slug}), fields)


def test_an_animator_sets_the_review_and_sees_it_on_the_agenda(client, login, site, animator):
    response = set_schedule(login(client, animator), site)
    assert response.status_code == 302
    schedule = ReviewSchedule.objects.get(site=site)
    assert (schedule.weekday, schedule.time, schedule.duration_minutes) == (1, datetime.time(10, 0), 60)
    page = client.get(reverse("review_agenda", kwargs={"slug": site.slug})).content.decode()
    assert "Prochaine revue" in page and "mardi" in page
    assert 'href="https://visio.example.fr/ancenis"' in page


@pytest.mark.parametrize(
    "bad",
    [
        {"video_link": "javascript:alert(1)"},
        {"video_link": "http://visio.example.fr"},
        {"weekday": 6},
        {"duration_minutes": 5},
        {"time": "25:00"},
    ],
)
def test_bad_settings_are_explained_and_change_nothing(client, login, site, animator, bad):
    response = set_schedule(login(client, animator), site, **bad)
    assert response.status_code == 200
    assert "fr-error-text" in response.content.decode()
    assert not ReviewSchedule.objects.exists()


def test_only_the_sites_animators_set_its_review(client, login, site, other_site, referent, observer):
    from tests.factories import SiteAnimatorFactory

    for user in (SiteAnimatorFactory(site=other_site).user, referent, observer):
        assert set_schedule(login(client, user), site).status_code == 404
    assert not ReviewSchedule.objects.exists()


def test_the_next_meeting_is_this_weeks_until_it_is_over():
    def paris(day, hour, minute=0):  # December 2026, Paris time
        return datetime.datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo("Europe/Paris"))

    schedule = ReviewSchedule(weekday=1, time=datetime.time(10, 0), duration_minutes=60)
    assert schedule.next_start(paris(1, 9)) == paris(1, 10)  # Tuesday 1st, before
    assert schedule.next_start(paris(1, 10, 30)) == paris(1, 10)  # under way
    assert schedule.next_start(paris(1, 11)) == paris(8, 10)  # over: next week
    assert schedule.next_start(paris(3, 9)) == paris(8, 10)  # Thursday


def test_the_animators_calendar_carries_the_weekly_review(client, login, site, animator, referent):
    login(client, animator)
    set_schedule(client, site)
    page = client.post(reverse("calendar_settings"), {"action": "create"}).content.decode()
    import re

    url = re.search(r"<code data-feed-url>([^<]+)</code>", page).group(1)
    events = [c for c in Calendar.from_ical(client.get(url).content).walk() if c.name == "VEVENT"]
    [review] = [event for event in events if str(event["uid"]).startswith("weekly-review-")]
    assert str(review["summary"]) == f"Revue hebdomadaire — {site.name}"
    assert review.decoded("rrule")["FREQ"] == ["WEEKLY"]
    start = review.decoded("dtstart")
    assert (start.weekday(), start.hour, start.minute) == (1, 10, 0)
    assert review.decoded("duration") == datetime.timedelta(minutes=60)
    assert str(review["location"]) == "https://visio.example.fr/ancenis"
    # a referent of the site takes no part in the animators' review
    login(client, referent)
    page = client.post(reverse("calendar_settings"), {"action": "create"}).content.decode()
    url = re.search(r"<code data-feed-url>([^<]+)</code>", page).group(1)
    assert b"weekly-review-" not in client.get(url).content
