"""The weekly review's agenda, generated from the live case data of one pilot site: what changed
since the previous review, and what needs the animators now. One item per company, each with the
reasons it is on the agenda and links to act on them.

Reasons: new proposals and enrolments, requests waiting for a partner's answer, requests past
their response deadline, declines, escalations raised or still waiting for a decision, interventions
planned for the coming week, and cases without activity for 14 days. A fixed number of queries (one
per kind of reason) whatever the size of the site."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from casework.enums import OPEN_CASE_STATES, InterventionKind, InterventionStatus, ToolboxCategory
from casework.models import IDLE, Case, Intervention
from cockpit.models import ReviewSchedule
from workflows.models import (
    OPEN_REQUEST_STATUSES,
    PROVIDER_STATUSES,
    DeclineReason,
    Escalation,
    RequestDecline,
    ServiceRequest,
)

# The kinds of reason, in the order the agenda lists them within an item.
PROPOSED, ENROLLED, OVERDUE, DECLINED, ESCALATION, WAITING, INTERVENTION, IDLE_CASE = (
    "proposed",
    "enrolled",
    "overdue",
    "declined",
    "escalation",
    "waiting",
    "intervention",
    "idle",
)
ORDER = [PROPOSED, ENROLLED, OVERDUE, DECLINED, ESCALATION, WAITING, INTERVENTION, IDLE_CASE]
# With no previous review recorded, the agenda covers the last week.
DEFAULT_WINDOW_DAYS = 7


@dataclass(frozen=True)
class Reason:
    kind: str
    text: str
    url: str


@dataclass
class AgendaItem:
    case_public_id: str
    company: str
    referent: str
    reasons: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return reverse("case_detail", kwargs={"public_id": self.case_public_id})


def _request_url(public_id) -> str:
    return reverse("request_detail", kwargs={"public_id": public_id})


def agenda(user, site, *, since: datetime, until: datetime) -> list[AgendaItem]:
    """The agenda of `site`'s review held at `until`, covering what happened since `since` (the
    previous review, or a week before). Only cases `user` may see."""
    cases = Case.objects.visible_to(user).filter(site=site)
    items: dict[int, AgendaItem] = {}

    def add(case_id, kind, text, url):
        items.setdefault(case_id, AgendaItem("", "", "")).reasons.append(Reason(kind, text, url))

    for case_id, public_id, created, enrolled in cases.filter(
        Q(created_at__gte=since, created_at__lt=until) | Q(enrolled_at__gte=since, enrolled_at__lt=until)
    ).values_list("pk", "public_id", "created_at", "enrolled_at"):
        url = reverse("case_detail", kwargs={"public_id": public_id})
        if since <= created < until:
            add(case_id, PROPOSED, _("Proposed on %(date)s") % {"date": _day(created)}, url)
        if enrolled is not None and since <= enrolled < until:
            add(case_id, ENROLLED, _("Enrolled on %(date)s") % {"date": _day(enrolled)}, url)

    requests = ServiceRequest.objects.filter(case__in=cases)
    for case_id, public_id, category, overdue, deadline, provider in requests.filter(
        Q(stage__in=PROVIDER_STATUSES) | Q(stage__in=OPEN_REQUEST_STATUSES, overdue=True)
    ).values_list("case_id", "public_id", "category", "overdue", "deadline", "provider__name"):
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

    for case_id, public_id, category, organisation, reason in RequestDecline.objects.filter(
        request__case__in=cases, at__gte=since, at__lt=until
    ).values_list(
        "request__case_id", "request__public_id", "request__category", "organisation__name", "reason"
    ):
        text = _("Request “%(category)s” declined by %(organisation)s (%(reason)s)") % {
            "category": _category(category),
            "organisation": organisation,
            "reason": _decline_reason(reason),
        }
        add(case_id, DECLINED, text, _request_url(public_id))

    for case_id, public_id, raised_at, decided_at in Escalation.objects.filter(
        Q(raised_at__gte=since, raised_at__lt=until) | Q(decided_at__isnull=True), case__in=cases
    ).values_list("case_id", "case__public_id", "raised_at", "decided_at"):
        text = (
            _("Escalation raised on %(date)s, waiting for a decision")
            if decided_at is None
            else _("Escalation raised on %(date)s")
        ) % {"date": _day(raised_at)}
        add(case_id, ESCALATION, text, reverse("case_detail", kwargs={"public_id": public_id}))

    first_day = timezone.localdate(until)
    for case_id, public_id, kind, planned_on in Intervention.objects.filter(
        case__in=cases,
        status=InterventionStatus.PLANNED,
        planned_on__gte=first_day,
        planned_on__lt=first_day + timedelta(days=7),
    ).values_list("case_id", "case__public_id", "kind", "planned_on"):
        text = _("%(kind)s planned on %(date)s") % {
            "kind": _intervention_kind(kind),
            "date": _day(planned_on),
        }
        add(case_id, INTERVENTION, text, reverse("case_detail", kwargs={"public_id": public_id}))

    for case_id, public_id, last in cases.filter(
        state__in=OPEN_CASE_STATES, last_activity_at__lt=until - IDLE
    ).values_list("pk", "public_id", "last_activity_at"):
        text = _("No activity since %(date)s") % {"date": _day(last)}
        add(case_id, IDLE_CASE, text, reverse("case_detail", kwargs={"public_id": public_id}))

    if not items:
        return []
    for case_id, public_id, company, first, last, username in Case.objects.filter(
        pk__in=items
    ).values_list(
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
        item.reasons.sort(key=lambda reason: ORDER.index(reason.kind))
    return sorted(items.values(), key=lambda item: (item.company.casefold(), item.case_public_id))


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


def schedule_of(site) -> ReviewSchedule | None:
    """When and where the site's weekly review is held, if its animators set it."""
    return ReviewSchedule.objects.filter(site=site).first()
