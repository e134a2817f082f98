"""Writes of the cockpit: explicit actor, one transaction each (the audit chain's lock first).
Side effects (sockets, e-mails) leave after commit: notifications ring after commit, e-mails are
rows of the outbox sent by the background loop."""

from datetime import date, timedelta

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.chain import audited_atomic
from casework import rules
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import Case, PilotSite
from cockpit import review
from cockpit.models import (
    ACTION_MAX_DUE_DAYS,
    EntryKind,
    ReviewEntry,
    ReviewItem,
    ReviewSchedule,
    WeeklyReview,
)
from notifications import outbox
from notifications.models import EventType
from notifications.services import notify


def _is_animator(actor, site_id) -> bool:
    """An animator of the site or a platform administrator, active (the charter is asked by the
    pages, as for every other service)."""
    return actor.is_platform_admin or rules.is_site_animator(site_id, actor)


def _require_animator(actor, site_id) -> None:
    if not _is_animator(actor, site_id):
        raise NotAllowedError(_("Only the site's animators run its weekly review."))


@audited_atomic
def review_schedule_save(
    *, actor, site: PilotSite, weekday, time, duration_minutes, video_link=""
) -> ReviewSchedule:
    """Set when and where `site`'s weekly review is held. Its animators and platform
    administrators only."""
    if not _is_animator(actor, site.pk):
        raise NotAllowedError(_("Only the site's animators set its weekly review."))
    schedule, _created = ReviewSchedule.objects.select_for_update().get_or_create(site=site)
    schedule.weekday, schedule.time = weekday, time
    schedule.duration_minutes, schedule.video_link = duration_minutes, video_link or ""
    schedule.full_clean()
    schedule.save()
    return schedule


def week_of(moment) -> date:
    """The Monday of the (local) week of `moment`."""
    day = timezone.localdate(moment)
    return day - timedelta(days=day.weekday())


@audited_atomic
def review_open(*, actor, site: PilotSite, now=None) -> WeeklyReview:
    """Open this week's review of `site`, freezing its agenda (generated from what happened since
    the previous review, with the items carried over). Opening it again returns the same review.
    Refused while the review of an earlier week is still open: it must be closed first (its open
    items carry over only once closed)."""
    _require_animator(actor, site.pk)
    now = now or timezone.now()
    week = week_of(now)
    # The site's row is the lock: two animators opening at once get the same review.
    PilotSite.objects.select_for_update().filter(pk=site.pk).first()
    existing = WeeklyReview.objects.filter(site=site, week=week).first()
    if existing is not None:
        return existing
    pending = WeeklyReview.objects.filter(site=site, status=WeeklyReview.Status.OPEN).first()
    if pending is not None:
        raise BusinessRuleError(
            _("The review of the week of %(week)s is still open: close it first.")
            % {"week": date_format(pending.week, "SHORT_DATE_FORMAT")}
        )
    if WeeklyReview.objects.filter(site=site, week__gt=week).exists():
        raise BusinessRuleError(_("A review of a later week exists already."))
    since = review.window_start(site, now)
    with translation.override("fr"):
        items = review.site_agenda(Case.objects.filter(site=site), site, since=since, until=now)
    weekly = WeeklyReview.objects.create(site=site, week=week, since=since, opened_at=now, opened_by=actor)
    # One by one (not bulk_create): each frozen item gets its entry in the audit trail.
    for position, item in enumerate(items):
        ReviewItem.objects.create(
            review=weekly,
            case_id=item.case_id,
            position=position,
            company=item.company[:255],
            referent=item.referent[:255],
            reasons=[_reason_row(reason) for reason in item.reasons],
        )
    return weekly


def _reason_row(reason: review.Reason) -> dict:
    row = {"kind": reason.kind, "text": reason.text, "url": reason.url}
    if reason.entry_id is not None:
        row["entry"] = reason.entry_id
    return row


def _lock_open(weekly: WeeklyReview) -> WeeklyReview:
    locked = WeeklyReview.objects.select_for_update().get(pk=weekly.pk)
    if not locked.is_open:
        raise StaleStateError(_("This review is closed: nothing can be recorded on it any more."))
    return locked


@audited_atomic
def review_entry_add(*, actor, item: ReviewItem, kind, text, owner=None, due_on=None) -> ReviewEntry:
    """Record on `item` a decision, an information or an action item (owner and due date). An
    action item becomes a task of its owner, told at once."""
    _require_animator(actor, item.review.site_id)
    _lock_open(item.review)
    text = (text or "").strip()
    if kind not in EntryKind.values:
        raise BusinessRuleError(_("Choose a decision, an information or an action item."))
    if not text:
        raise BusinessRuleError(_("Write what was said."))
    if kind == EntryKind.ACTION:
        allowed = review.action_owners(item.review, [item])[item.pk]
        if owner is None or owner.pk not in {user.pk for user in allowed}:
            raise BusinessRuleError(
                _("Choose who carries the action: the referent or an animator of the site.")
            )
        today = timezone.localdate()
        if due_on is None or not today <= due_on <= today + timedelta(days=ACTION_MAX_DUE_DAYS):
            raise BusinessRuleError(_("Give a due date between today and one year from now."))
    else:
        owner, due_on = None, None
    entry = ReviewEntry(item=item, kind=kind, text=text, owner=owner, due_on=due_on, created_by=actor)
    entry.full_clean()
    entry.save()
    if entry.kind == EntryKind.ACTION:
        notify(
            event_type=EventType.REVIEW_ACTION,
            recipients=[owner],
            message=gettext_lazy(
                "Action item for you from the weekly review (%(company)s), due %(date)s: %(text)s"
            ),
            params={
                "company": item.company,
                "date": date_format(due_on, "SHORT_DATE_FORMAT"),
                # On one line: the notification's text also heads the e-mail's subject.
                "text": " ".join(text.split()),
            },
            actor=actor,
            case=item.case,
        )
    return entry


@audited_atomic
def action_done(*, actor, entry: ReviewEntry) -> ReviewEntry:
    """Mark an open action item done: its owner or an animator of the site."""
    entry = (
        ReviewEntry.objects.select_for_update(of=("self",)).select_related("item__review").get(pk=entry.pk)
    )
    if entry.kind != EntryKind.ACTION:
        raise BusinessRuleError(_("Only an action item is marked done."))
    if entry.owner_id != actor.pk:
        _require_animator(actor, entry.item.review.site_id)
    if entry.done_at is not None:
        raise StaleStateError(_("This action item is already done."))
    entry.done_at, entry.done_by = timezone.now(), actor
    entry.save(update_fields=["done_at", "done_by"])
    return entry


@audited_atomic
def review_close(*, actor, weekly: WeeklyReview) -> WeeklyReview:
    """Close the review: archive its minutes (French) and e-mail them to the participants (the
    site's animators), through the outbox. Items with nothing recorded and open action items
    carry over to the next review."""
    _require_animator(actor, weekly.site_id)
    weekly = _lock_open(weekly)
    participants = review.participants_of(weekly.site_id)
    weekly.status, weekly.closed_at, weekly.closed_by = WeeklyReview.Status.CLOSED, timezone.now(), actor
    subject, weekly.minutes, html = render_minutes(weekly, participants)
    weekly.save(update_fields=["status", "closed_at", "closed_by", "minutes"])
    weekly.participants.set(participants)
    outbox.queue_emails(participants, subject=subject, body_text=weekly.minutes, body_html=html)
    return weekly


def render_minutes(weekly: WeeklyReview, participants) -> tuple[str, str, str]:
    """The minutes of a closed review, in French: the e-mail's subject, the text (archived on the
    review and e-mailed) and its HTML version. Built from the items and entries as stored."""
    items = review.review_items(weekly)
    context = {
        "review": weekly,
        "site": weekly.site,
        "participants": participants,
        "items": items,
        # Carried over to the next review: nothing recorded, or an action item still open.
        "carried": [
            item
            for item in items
            if not item.entries.all() or any(entry.is_open_action for entry in item.entries.all())
        ],
        "url": outbox.absolute(reverse("review_detail", kwargs={"slug": weekly.site.slug, "pk": weekly.pk})),
    }
    with translation.override("fr"):
        subject = _(
            "[Territoires de solutions] Minutes of the weekly review — %(site)s, week of %(week)s"
        ) % {
            "site": weekly.site.name,
            "week": date_format(weekly.week, "SHORT_DATE_FORMAT"),
        }
        text = render_to_string("cockpit/minutes.txt", context).strip()
        html = render_to_string("cockpit/minutes_email.html", context)
    return subject, text, html
