"""Personal calendar feeds: a secret, revocable URL per user whose ICS carries their planned
interventions, their open action items of the weekly reviews (on their due date), and the weekly
reviews they take part in (a weekly recurring event per site they animate, once its schedule is
set). Calendar clients fetch it
without a session, so the URL's token is the only key: 32 random bytes, only its hash stored."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from icalendar import Calendar, Event

from audit.chain import audited_atomic
from casework.enums import InterventionStatus
from casework.models import Case, Intervention
from casework.rules import user_roles
from cockpit import review
from cockpit.models import CalendarFeed, ReviewSchedule

# Interventions of the last PAST_DAYS stay in the feed (a calendar keeps what just happened).
PAST_DAYS = 30
MAX_EVENTS = 500


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@audited_atomic
def feed_create(*, actor) -> str:
    """A new secret URL token for `actor`'s feed; any former URL stops working. Returns the token,
    shown once (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    CalendarFeed.objects.filter(user=actor).delete()
    CalendarFeed.objects.create(user=actor, token_hash=_hash(token))
    return token


@audited_atomic
def feed_revoke(*, actor) -> bool:
    """Stop `actor`'s feed. True if there was one."""
    deleted, _ = CalendarFeed.objects.filter(user=actor).delete()
    return bool(deleted)


def has_feed(user) -> bool:
    return CalendarFeed.objects.filter(user=user).exists()


def feed_owner(token: str):
    """The active user whose feed `token` opens, or None (unknown, revoked, or user deactivated)."""
    if not token or len(token) > 100:
        return None
    feed = CalendarFeed.objects.select_related("user").filter(token_hash=_hash(token)).first()
    if feed is None or not feed.user.is_active:
        return None
    return feed.user


def planned_interventions(user) -> list[Intervention]:
    """The user's planned interventions, from PAST_DAYS ago on, on cases they may still see."""
    since = timezone.localdate() - timedelta(days=PAST_DAYS)
    return list(
        Intervention.objects.filter(
            owner=user,
            status=InterventionStatus.PLANNED,
            planned_on__gte=since,
            case__in=Case.objects.visible_to(user),
        )
        .select_related("case__company")
        .order_by("planned_on", "pk")[:MAX_EVENTS]
    )


def ics(user) -> bytes:
    """The user's feed as an iCalendar document (RFC 5545), in French."""
    site = settings.SITE_URL.rstrip("/")
    host = site.split("://", 1)[-1]
    calendar = Calendar()
    calendar.add("prodid", "-//Territoires de solutions//Agenda personnel//FR")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    now = timezone.now()
    with translation.override("fr"):
        calendar.add("x-wr-calname", f"{settings.SITE_TITLE} — {user}")
        for intervention in planned_interventions(user):
            event = Event()
            event.add("uid", f"intervention-{intervention.pk}@{host}")
            event.add("dtstamp", now)
            event.add("dtstart", intervention.planned_on)
            event.add("dtend", intervention.planned_on + timedelta(days=1))
            event.add("summary", f"{intervention.get_kind_display()} — {intervention.case.company.name}")
            event.add("url", site + reverse("case_detail", kwargs={"public_id": intervention.case.public_id}))
            calendar.add_component(event)
        for action in review.open_actions_of(user):
            event = Event()
            event.add("uid", f"review-action-{action.pk}@{host}")
            event.add("dtstamp", now)
            event.add("dtstart", action.due_on)
            event.add("dtend", action.due_on + timedelta(days=1))
            event.add("summary", _("Action item due — %(company)s") % {"company": action.item.company})
            event.add("description", action.text)
            event.add("url", site + reverse("task_list"))
            calendar.add_component(event)
        for schedule in review_schedules(user):
            start = schedule.next_start(now)
            event = Event()
            event.add("uid", f"weekly-review-{schedule.site_id}@{host}")
            event.add("dtstamp", now)
            event.add("dtstart", timezone.localtime(start))
            event.add("duration", timedelta(minutes=schedule.duration_minutes))
            event.add("rrule", {"freq": "weekly"})
            event.add("summary", _("Weekly review — %(site)s") % {"site": schedule.site.name})
            agenda = site + reverse("review_agenda", kwargs={"slug": schedule.site.slug})
            event.add("url", agenda)
            if schedule.video_link:
                event.add("location", schedule.video_link)
            event.add("description", _("Agenda: %(url)s") % {"url": agenda})
            calendar.add_component(event)
    return calendar.to_ical()


def review_schedules(user) -> list[ReviewSchedule]:
    """The weekly reviews the user takes part in: those of the sites they animate."""
    sites = user_roles(user).animated_site_ids if user.has_accepted_current_charter else ()
    return list(
        ReviewSchedule.objects.filter(site_id__in=sites).select_related("site").order_by("site__name")
    )
