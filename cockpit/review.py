"""The weekly review's agenda, generated from the live case data of one pilot site: what changed
since the previous review, and what needs the animators now. One item per company, each with the
reasons it is on the agenda and links to act on them.

Reasons: new proposals and enrolments, requests waiting for a partner's answer, requests past
their response deadline, declines, escalations raised or still waiting for a decision, interventions
planned for the coming week, and cases without activity for 14 days. Carried over from the
previous reviews: the items the last closed review recorded nothing on, and every action item
still open. A fixed number of queries (one per kind of reason) whatever the size of the site, and
a bounded agenda: each query lists at most REASON_LIMIT rows, the most pressing first (the cases
idle the longest, the requests overdue first...), and counts the rest in the same query (a window
count), which the page names (`Agenda.left_out`). A site with 12,000 idle cases gets the 100 idle
the longest, not 12,000 items nobody could discuss in a meeting."""

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from django.db.models import Count, F, Prefetch, Q, Window
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from casework.enums import OPEN_CASE_STATES, InterventionKind, InterventionStatus, ToolboxCategory
from casework.models import IDLE, Case, Intervention, PilotSite
from cockpit.models import EntryKind, ReviewEntry, ReviewItem, ReviewSchedule, WeeklyReview
from cockpit.rules import board_sites_q
from workflows.models import (
    OPEN_REQUEST_STATUSES,
    PROVIDER_STATUSES,
    DeclineReason,
    Escalation,
    RequestDecline,
    ServiceRequest,
)

# The kinds of reason, in the order the agenda lists them within an item.
CARRIED, ACTION, PROPOSED, ENROLLED, OVERDUE, DECLINED, ESCALATION, WAITING, INTERVENTION, IDLE_CASE = (
    "carried",
    "action",
    "proposed",
    "enrolled",
    "overdue",
    "declined",
    "escalation",
    "waiting",
    "intervention",
    "idle",
)
ORDER = [CARRIED, ACTION, PROPOSED, ENROLLED, OVERDUE, DECLINED, ESCALATION, WAITING, INTERVENTION, IDLE_CASE]
# With no previous review recorded, the agenda covers the last week.
DEFAULT_WINDOW_DAYS = 7
# At most this many rows per query of the agenda (per group of reasons below).
REASON_LIMIT = 100
# The groups of reasons read by one query each: what `Agenda.left_out` names.
NEW, REQUESTS = "new", "requests"
GROUPS = [CARRIED, ACTION, NEW, REQUESTS, DECLINED, ESCALATION, INTERVENTION, IDLE_CASE]


@dataclass(frozen=True)
class Reason:
    kind: str
    text: str
    url: str
    entry_id: int | None = None  # the open action item an `action` reason is about


# The url of a reason that links to its case's page, until the case's public id is read (once per
# item, with the company's name, by the agenda's last query).
CASE_PAGE = ""


@dataclass
class AgendaItem:
    case_public_id: str
    company: str
    referent: str
    case_id: int = 0
    reasons: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return reverse("case_detail", kwargs={"public_id": self.case_public_id})


class Agenda(list):
    """The agenda's items, and `left_out`: {group: rows in all} for each group of reasons that had
    more than REASON_LIMIT rows (only the first REASON_LIMIT are listed)."""

    def __init__(self, items=(), left_out=None):
        super().__init__(items)
        self.left_out = left_out or {}

    @property
    def notes(self) -> list[str]:
        """What was left out, in French, in the order of GROUPS."""
        texts = {
            CARRIED: _("%(total)s items carried over from the last review: the first %(limit)s are listed."),
            ACTION: _("%(total)s open action items: the %(limit)s due soonest are listed."),
            NEW: _("%(total)s companies proposed or enrolled in the period: the first %(limit)s are listed."),
            REQUESTS: _(
                "%(total)s requests waiting for a partner or past their deadline: the %(limit)s due "
                "soonest are listed."
            ),
            DECLINED: _("%(total)s declines in the period: the latest %(limit)s are listed."),
            ESCALATION: _("%(total)s escalations: the oldest %(limit)s are listed."),
            INTERVENTION: _(
                "%(total)s interventions planned in the coming week: the first %(limit)s are listed."
            ),
            IDLE_CASE: _(
                "%(total)s cases without activity for %(days)s days: the %(limit)s idle the longest are "
                "listed; the status board shows them all."
            ),
        }
        return [
            texts[group] % {"total": self.left_out[group], "limit": REASON_LIMIT, "days": IDLE.days}
            for group in GROUPS
            if group in self.left_out
        ]


def _capped(queryset, group, left_out, *fields, order):
    """The first REASON_LIMIT rows of `queryset` (`fields`, in `order`), in one query that also
    counts every row (a window count); a group with more rows is recorded in `left_out`."""
    rows = list(
        queryset.annotate(_rows_in_all=Window(Count("pk")))
        .order_by(*order)
        .values_list(*fields, "_rows_in_all")[:REASON_LIMIT]
    )
    if rows and rows[0][-1] > len(rows):
        left_out[group] = rows[0][-1]
    return [row[:-1] for row in rows]


def _request_url(public_id) -> str:
    return reverse("request_detail", kwargs={"public_id": public_id})


def agenda(user, site, *, since: datetime, until: datetime) -> Agenda:
    """The agenda of `site`'s review held at `until`, covering what happened since `since` (the
    previous review, or a week before). Only cases `user` may see."""
    return site_agenda(Case.objects.visible_to(user).filter(site=site), site, since=since, until=until)


def site_agenda(cases, site, *, since: datetime, until: datetime) -> Agenda:
    """The agenda over `cases` (of `site`), for a caller that checked who may read them
    (`agenda` for a page, `cockpit.services.review_open` for the site's animators)."""
    items: dict[int, AgendaItem] = {}
    left_out: dict[str, int] = {}

    def add(case_id, kind, text, url, entry_id=None):
        items.setdefault(case_id, AgendaItem("", "", "", case_id)).reasons.append(
            Reason(kind, text, url, entry_id)
        )

    for case_id, created, enrolled in _capped(
        cases.filter(
            Q(created_at__gte=since, created_at__lt=until) | Q(enrolled_at__gte=since, enrolled_at__lt=until)
        ),
        NEW,
        left_out,
        *("pk", "created_at", "enrolled_at"),
        order=("created_at", "pk"),
    ):
        if since <= created < until:
            add(case_id, PROPOSED, _("Proposed on %(date)s") % {"date": _day(created)}, CASE_PAGE)
        if enrolled is not None and since <= enrolled < until:
            add(case_id, ENROLLED, _("Enrolled on %(date)s") % {"date": _day(enrolled)}, CASE_PAGE)

    requests = ServiceRequest.objects.filter(case__in=cases)
    for case_id, public_id, category, overdue, deadline, provider in _capped(
        requests.filter(Q(stage__in=PROVIDER_STATUSES) | Q(stage__in=OPEN_REQUEST_STATUSES, overdue=True)),
        REQUESTS,
        left_out,
        *("case_id", "public_id", "category", "overdue", "deadline", "provider__name"),
        order=("-overdue", F("deadline").asc(nulls_last=True), "pk"),
    ):
        label = _category(category)
        if overdue or (deadline is not None and deadline < until):
            text = _("Request “%(category)s” past its response deadline") % {"category": label}
            add(case_id, OVERDUE, text, _request_url(public_id))
        else:
            text = _("Request “%(category)s” waiting for %(organisation)s’s answer (due %(date)s)") % {
                "category": label,
                "organisation": provider or "—",
                "date": _day(deadline) if deadline else "—",
            }
            add(case_id, WAITING, text, _request_url(public_id))

    for case_id, public_id, category, organisation, reason in _capped(
        RequestDecline.objects.filter(request__case__in=cases, at__gte=since, at__lt=until),
        DECLINED,
        left_out,
        *("request__case_id", "request__public_id", "request__category", "organisation__name", "reason"),
        order=("-at", "-pk"),
    ):
        text = _("Request “%(category)s” declined by %(organisation)s (%(reason)s)") % {
            "category": _category(category),
            "organisation": organisation,
            "reason": _decline_reason(reason),
        }
        add(case_id, DECLINED, text, _request_url(public_id))

    for case_id, raised_at, decided_at in _capped(
        Escalation.objects.filter(
            Q(raised_at__gte=since, raised_at__lt=until) | Q(decided_at__isnull=True), case__in=cases
        ),
        ESCALATION,
        left_out,
        *("case_id", "raised_at", "decided_at"),
        order=("raised_at", "pk"),
    ):
        text = (
            _("Escalation raised on %(date)s, waiting for a decision")
            if decided_at is None
            else _("Escalation raised on %(date)s")
        ) % {"date": _day(raised_at)}
        add(case_id, ESCALATION, text, CASE_PAGE)

    first_day = timezone.localdate(until)
    for case_id, kind, planned_on in _capped(
        Intervention.objects.filter(
            case__in=cases,
            status=InterventionStatus.PLANNED,
            planned_on__gte=first_day,
            planned_on__lt=first_day + timedelta(days=7),
        ),
        INTERVENTION,
        left_out,
        *("case_id", "kind", "planned_on"),
        order=("planned_on", "pk"),
    ):
        text = _("%(kind)s planned on %(date)s") % {
            "kind": _intervention_kind(kind),
            "date": _day(planned_on),
        }
        add(case_id, INTERVENTION, text, CASE_PAGE)

    for case_id, last in _capped(
        cases.filter(state__in=OPEN_CASE_STATES, last_activity_at__lt=until - IDLE),
        IDLE_CASE,
        left_out,
        *("pk", "last_activity_at"),
        order=("last_activity_at", "pk"),
    ):
        text = _("No activity since %(date)s") % {"date": _day(last)}
        add(case_id, IDLE_CASE, text, CASE_PAGE)

    last = (
        WeeklyReview.objects.filter(site=site, status=WeeklyReview.Status.CLOSED, opened_at__lt=until)
        .order_by("-opened_at")
        .values("pk")[:1]
    )
    # Carried over: only the cases still under way (a closed case's items and actions are moot).
    for case_id, opened_at in _capped(
        ReviewItem.objects.filter(
            review__in=last, case__in=cases, case__state__in=OPEN_CASE_STATES, entries__isnull=True
        ),
        CARRIED,
        left_out,
        *("case_id", "review__opened_at"),
        order=("position", "pk"),
    ):
        text = _("Nothing recorded at the review of %(date)s") % {"date": _day(opened_at)}
        add(case_id, CARRIED, text, CASE_PAGE)

    today = timezone.localdate(until)
    for entry_id, case_id, text, due_on, first, last_name, username in _capped(
        ReviewEntry.objects.filter(
            item__review__site=site,
            item__case__in=cases,
            item__case__state__in=OPEN_CASE_STATES,
            kind=EntryKind.ACTION,
            done_at__isnull=True,
            item__review__opened_at__lt=until,
        ),
        ACTION,
        left_out,
        *(
            "pk",
            "item__case_id",
            "text",
            "due_on",
            "owner__first_name",
            "owner__last_name",
            "owner__username",
        ),
        order=("due_on", "pk"),
    ):
        owner = f"{first} {last_name}".strip() or username
        template = (
            _("Action item carried by %(owner)s, late since %(date)s: %(text)s")
            if due_on < today
            else _("Action item carried by %(owner)s, due %(date)s: %(text)s")
        )
        text = template % {"owner": owner, "date": _day(due_on), "text": text}
        add(case_id, ACTION, text, CASE_PAGE, entry_id)

    if not items:
        return Agenda(left_out=left_out)
    for case_id, public_id, company, first, last, username in Case.objects.filter(pk__in=items).values_list(
        "pk",
        "public_id",
        "company__name",
        "referent__first_name",
        "referent__last_name",
        "referent__username",
    ):
        item = items[case_id]
        item.case_public_id, item.company = str(public_id), company
        item.referent = f"{first} {last}".strip() or username
        page = item.url
        item.reasons = sorted(
            (replace(reason, url=page) if reason.url == CASE_PAGE else reason for reason in item.reasons),
            key=lambda reason: ORDER.index(reason.kind),
        )
    return Agenda(
        sorted(items.values(), key=lambda item: (item.company.casefold(), item.case_public_id)), left_out
    )


def _day(moment) -> str:
    if isinstance(moment, datetime):
        moment = timezone.localdate(moment)
    return date_format(moment, "SHORT_DATE_FORMAT") if isinstance(moment, date) else "—"


def _category(value) -> str:
    return str(ToolboxCategory(value).label)


def _decline_reason(value) -> str:
    return str(DeclineReason(value).label)


def _intervention_kind(value) -> str:
    return str(InterventionKind(value).label)


def window_start(site, until: datetime) -> datetime:
    """Where the agenda of a review held at `until` starts: when the site's previous review was
    opened, else DEFAULT_WINDOW_DAYS before."""
    previous = (
        WeeklyReview.objects.filter(site=site, opened_at__lt=until)
        .order_by("-opened_at")
        .values_list("opened_at", flat=True)
        .first()
    )
    return previous or until - timedelta(days=DEFAULT_WINDOW_DAYS)


def schedule_of(site) -> ReviewSchedule | None:
    """When and where the site's weekly review is held, if its animators set it."""
    return ReviewSchedule.objects.filter(site=site).first()


# --- The recorded reviews (reads) ---------------------------------------------------------------
# The site comes from cockpit.selectors.board_site (404 for whoever does not animate it).


def reviews_of(site):
    """The site's reviews, the latest first, with how many items and open action items each has."""
    return WeeklyReview.objects.filter(site=site).annotate(
        item_count=Count("items", distinct=True),
        open_actions=Count(
            "items__entries",
            filter=Q(items__entries__kind=EntryKind.ACTION, items__entries__done_at__isnull=True),
            distinct=True,
        ),
    )


def review_get(site, pk) -> WeeklyReview:
    return get_object_or_404(
        WeeklyReview.objects.select_related("site", "opened_by", "closed_by"), site=site, pk=pk
    )


def review_items(weekly: WeeklyReview) -> list[ReviewItem]:
    """The items of a review, with their entries and the entries' owners, in three queries."""
    return list(
        weekly.items.select_related("case__referent")
        .prefetch_related(
            Prefetch("entries", queryset=ReviewEntry.objects.select_related("owner", "created_by", "done_by"))
        )
        .order_by("position")
    )


def open_actions_of(user) -> list[ReviewEntry]:
    """The user's open action items, on cases they still see: their tasks from the weekly
    reviews, the soonest due first."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        ReviewEntry.objects.filter(
            owner_id=user.pk,
            kind=EntryKind.ACTION,
            done_at__isnull=True,
            item__case__in=Case.objects.visible_to(user),
            item__case__state__in=OPEN_CASE_STATES,
        )
        .select_related("item__review__site", "item__case")
        .order_by("due_on", "pk")[:100]
    )


def action_get(user, pk) -> ReviewEntry:
    """An action item its owner or an animator of its site may mark done; else 404."""
    entry = (
        ReviewEntry.objects.filter(
            Q(owner_id=user.pk) | Q(item__review__site__in=PilotSite.objects.filter(board_sites_q(user))),
            pk=pk,
            kind=EntryKind.ACTION,
            item__case__in=Case.objects.visible_to(user),
        )
        .select_related("item__review__site")
        .first()
    )
    if entry is None:
        raise Http404
    return entry


def participants_of(site_id) -> list:
    """Who takes part in a site's weekly review: its animators (CDET and DTOE), active."""
    from casework.models import User

    return list(
        User.objects.filter(animated_sites__site_id=site_id, is_active=True)
        .distinct()
        .order_by("last_name", "first_name", "username")
    )


def action_owners(weekly: WeeklyReview, items) -> dict[int, list]:
    """Who may own an action item of each item (by item id): the site's animators and the case's
    referent — the people who see the case and act on it: active, and the referent still a
    member, as referent, of the organisation they act for (casework.rules.case_visibility_q). Two
    queries (the animators, the referents' memberships), the items' cases and referents being
    loaded with them."""
    from casework.models import Membership

    animators = participants_of(weekly.site_id)
    known = {user.pk for user in animators}
    cases = [item.case for item in items]
    acting = (
        set(
            Membership.objects.filter(
                user_id__in={case.referent_id for case in cases},
                organisation_id__in={case.referent_organisation_id for case in cases},
                is_active=True,
                can_be_referent=True,
                organisation__is_active=True,
            ).values_list("user_id", "organisation_id")
        )
        if cases
        else set()
    )
    owners = {}
    for item in items:
        referent = item.case.referent
        extra = (
            [referent]
            if referent.is_active
            and referent.pk not in known
            and (referent.pk, item.case.referent_organisation_id) in acting
            else []
        )
        owners[item.pk] = sorted([*animators, *extra], key=_person_key)
    return owners


def _person_key(user):
    return (user.last_name.casefold(), user.first_name.casefold(), user.username)


def item_get(weekly: WeeklyReview, pk) -> ReviewItem:
    return get_object_or_404(weekly.items.select_related("case__referent", "review"), pk=pk)


def open_action_ids(items) -> set[int]:
    """Which of the action items carried over on these items (the `entry` of their `action`
    reasons) are still open: their « mark done » buttons. One query."""
    ids = {reason["entry"] for item in items for reason in item.reasons if reason.get("entry")}
    if not ids:
        return set()
    return set(
        ReviewEntry.objects.filter(pk__in=ids, kind=EntryKind.ACTION, done_at__isnull=True).values_list(
            "pk", flat=True
        )
    )


def review_of_user(user, pk) -> WeeklyReview | None:
    """A review of one of the sites whose board `user` opens, from an untrusted id; else None."""
    if not (isinstance(pk, str) and pk.isdigit() and len(pk) < 19):
        return None
    return (
        WeeklyReview.objects.filter(pk=int(pk), site__in=PilotSite.objects.filter(board_sites_q(user)))
        .select_related("site")
        .first()
    )
