"""The CLEFOP report: the figures of one or several pilot sites over a period, each beside the same
figure over the previous period of equal length.

Who reads it (`report_sites_q`): platform administrators (every site), the animators of a site and
the observers (CLEFOP members) of the site's territory. The figures are aggregates of the sites'
cases, never a case: they are read from the sites' rows directly (as `selectors.site_overview`
does for observers), not through `Case.objects.visible_to`, which gives observers nothing.

Every number carries the count of distinct companies it was drawn from. For a reader who is not
an administrator nor an animator of every site of the report (an observer), a number drawn from 1
or 2 companies is suppressed (shown « < 3 ») wherever it appears: page, charts, CSV and XLSX all
read `Figure.shown`.

Known limit of the suppression: it is primary only. A suppressed part of a breakdown can still be
recomputed by subtraction when it is the only suppressed part beside a visible total (closed
companies by outcome, declines by reason, needs by category), and two reports (one site and all
sites, overlapping periods) can be subtracted from each other.

`clefop_report` is a pure read in a fixed number of queries whatever the data (aggregates in SQL;
the time-to-accept percentiles in Python over the accepted requests of the two periods).

Definitions (a period is whole local days, both ends included):
- companies proposed / enrolled / closed: distinct companies with a case created / enrolled /
  closed (state « closed », with its outcome) in the period;
- needs by category: needs recorded in the period (count), and the companies they belong to;
- requests opened (by category): requests opened in the period;
- requests routed: distinct requests routed to a partner in the period (re-routings included, each
  request counted once); accepted: `accepted_at` in the period; overdue: the response deadline
  passed in the period;
- declines by reason: declines recorded in the period (a request declined twice counts twice);
- time to accept: business days from the routing to the organisation that accepted, to the
  acceptance, for the requests accepted in the period: median and 90th percentile (linear
  interpolation between closest ranks, as Excel's PERCENTILE.INC), and their distribution;
- interventions planned: dated in the period and not cancelled; done: among those, done;
- hires, people entering training: sums over the requests delivered in the period;
- response rate of a partner: of the requests routed to it in the period, the share it answered
  (accepted or declined) by the end of that same period — both periods are judged alike.
"""

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from casework.enums import CaseOutcome, CaseState, InterventionStatus, ToolboxCategory
from casework.models import Case, Intervention, Need, PilotSite
from casework.rules import user_roles
from casework.selectors import SMALL_COUNT
from cockpit.rules import report_sites_q
from workflows.business_days import business_days_between
from workflows.models import DeclineReason, EventKind, RequestDecline, RequestEvent, ServiceRequest

# Figures drawn from fewer companies than this are suppressed for observers.
MIN_COMPANIES = 3
# Upper bounds (business days, excluded) of the bins of the time-to-accept distribution.
DELAY_BINS = (1, 2, 3, 5, 10)

CURRENT, PREVIOUS = "current", "previous"
PERIODS = (CURRENT, PREVIOUS)

COUNT, DAYS, PERCENT = "count", "days", "percent"


def report_sites(user) -> list[PilotSite]:
    return list(PilotSite.objects.filter(report_sites_q(user)).order_by("name"))


def is_masked(user, sites) -> bool:
    """Small counts are suppressed unless the user administers the platform or animates every site
    of the report (an observer, or an observer of some of the sites)."""
    if user.is_platform_admin:
        return False
    animated = user_roles(user).animated_site_ids
    return not all(site.pk in animated for site in sites)


def previous_period(start: date, end: date) -> tuple[date, date]:
    """The period of equal length that ends the day before `start`."""
    length = end - start
    previous_end = start - timedelta(days=1)
    return previous_end - length, previous_end


# --- The structure ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """A number and the count of distinct companies it was drawn from. `suppressed`: shown as
    « < 3 » (observers, fewer than 3 companies); `value` None: nothing to compute (no data)."""

    value: int | float | None
    companies: int
    suppressed: bool = False

    @property
    def shown(self):
        """What any output shows: the number, « < 3 », or None (nothing to show)."""
        return SMALL_COUNT if self.suppressed else self.value


def display(figure: Figure, unit: str) -> str:
    """The figure as text in the current language: « < 3 », « – » (nothing), « 2,5 », « 66,7 % »."""
    shown = figure.shown
    if shown is None:
        return "–"
    if isinstance(shown, str):
        return shown
    if unit == COUNT:
        return number_format(shown, 0)
    text = number_format(shown, 1)
    return f"{text}\u00a0%" if unit == PERCENT else text


@dataclass(frozen=True)
class Row:
    key: str  # stable identifier (tests, exports): "companies.proposed", "needs.training"...
    label: str
    current: Figure
    previous: Figure
    unit: str = COUNT
    level: int = 0  # 1: a detail of the row above (an outcome of the closed cases...)

    @property
    def current_display(self) -> str:
        return display(self.current, self.unit)

    @property
    def previous_display(self) -> str:
        return display(self.previous, self.unit)


@dataclass
class Section:
    key: str
    title: str
    rows: list = field(default_factory=list)


@dataclass
class Report:
    sites: list
    all_sites: bool
    start: date
    end: date
    previous_start: date
    previous_end: date
    masked: bool
    sections: list
    # The charts' data (also rows of `sections`, shown as tables beside the charts).
    requests_by_category: list  # of Row
    delay_distribution: list  # of Row

    def section(self, key) -> Section:
        return next(section for section in self.sections if section.key == key)

    def rows(self):
        for section in self.sections:
            yield from section.rows

    def values(self) -> dict:
        """{row key: (current shown, previous shown)} — what the page and the exports show."""
        return {row.key: (row.current.shown, row.previous.shown) for row in self.rows()}


# --- The figures -------------------------------------------------------------------------------


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in local time."""
    tz = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(start, time.min), tz),
        timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz),
    )


def _within(name: str, bounds) -> Q:
    low, high = bounds
    return Q(**{f"{name}__gte": low, f"{name}__lt": high})


def _in_either_period(bounds, *names) -> Q:
    """Rows with one of the dates `names` in one of the two periods (which follow each other: one
    range), the only rows the aggregates count: a query reads the periods' rows rather than the
    sites' whole history."""
    whole = (min(low for low, _high in bounds.values()), max(high for _low, high in bounds.values()))
    condition = Q()
    for name in names:
        condition |= _within(name, whole)
    return condition


class _Builder:
    def __init__(self, masked: bool):
        self.masked = masked

    def figure(self, value, companies: int) -> Figure:
        # Drawn from no company: a count is 0 and a duration or a rate has no value, nothing to hide.
        return Figure(
            value=value, companies=companies, suppressed=self.masked and 0 < companies < MIN_COMPANIES
        )

    def row(self, key, label, data, name, *, unit=COUNT, level=0, companies=None) -> Row:
        """`data[f"{name}_{period}"]` and `data[f"{companies or name}_c_{period}"]`."""
        companies = companies or name
        figures = [
            self.figure(data.get(f"{name}_{period}") or 0, data.get(f"{companies}_c_{period}") or 0)
            for period in PERIODS
        ]
        return Row(key, str(label), *figures, unit=unit, level=level)


def clefop_report(user, sites, start: date, end: date, *, all_sites: bool = False) -> Report:
    """The report of `sites` (already checked against `report_sites_q`) from `start` to `end`
    (both included), beside the previous period of equal length."""
    previous_start, previous_end = previous_period(start, end)
    bounds = {CURRENT: _bounds(start, end), PREVIOUS: _bounds(previous_start, previous_end)}
    site_ids = [site.pk for site in sites]
    masked = is_masked(user, sites)
    build = _Builder(masked)

    companies = _companies_section(build, site_ids, bounds)
    needs = _needs_section(build, site_ids, bounds)
    requests, by_category = _requests_section(build, site_ids, bounds)
    declines = _declines_section(build, site_ids, bounds)
    delays, distribution = _delays_section(build, site_ids, bounds)
    interventions = _interventions_section(build, site_ids, bounds)
    outcomes = _outcomes_section(build, site_ids, bounds)
    partners = _partners_section(build, site_ids, bounds)
    return Report(
        sites=list(sites),
        all_sites=all_sites,
        start=start,
        end=end,
        previous_start=previous_start,
        previous_end=previous_end,
        masked=masked,
        sections=[companies, needs, requests, declines, delays, interventions, outcomes, partners],
        requests_by_category=by_category,
        delay_distribution=distribution,
    )


def _companies_section(build, site_ids, bounds) -> Section:
    """One query: distinct companies proposed, enrolled, closed (by outcome)."""
    aggregates = {}
    for period, window in bounds.items():
        closed = _within("closed_at", window) & Q(state=CaseState.CLOSED)
        aggregates[f"proposed_c_{period}"] = Count(
            "company", distinct=True, filter=_within("created_at", window)
        )
        aggregates[f"enrolled_c_{period}"] = Count(
            "company", distinct=True, filter=_within("enrolled_at", window)
        )
        aggregates[f"closed_c_{period}"] = Count("company", distinct=True, filter=closed)
        for outcome in CaseOutcome.values:
            aggregates[f"closed_{outcome}_c_{period}"] = Count(
                "company", distinct=True, filter=closed & Q(outcome=outcome)
            )
    data = (
        Case.objects.filter(site_id__in=site_ids)
        .filter(_in_either_period(bounds, "created_at", "enrolled_at", "closed_at"))
        .aggregate(**aggregates)
    )
    # A count of companies: the value is its own company count.
    data.update({key.replace("_c_", "_"): value for key, value in list(data.items())})
    section = Section("companies", str(_("Companies")))
    section.rows += [
        build.row("companies.proposed", _("Companies proposed"), data, "proposed"),
        build.row("companies.enrolled", _("Companies enrolled"), data, "enrolled"),
        build.row("companies.closed", _("Companies whose case was closed"), data, "closed"),
    ]
    for outcome, label in CaseOutcome.choices:
        section.rows.append(
            build.row(f"companies.closed.{outcome}", label, data, f"closed_{outcome}", level=1)
        )
    return section


def _by_category_aggregates(bounds, date_field, company_path) -> dict:
    aggregates = {}
    for period, window in bounds.items():
        aggregates[f"n_{period}"] = Count("pk", filter=_within(date_field, window))
        aggregates[f"n_c_{period}"] = Count(company_path, distinct=True, filter=_within(date_field, window))
    return aggregates


def _category_rows(build, prefix, rows, total, label_total) -> list:
    """A total row, then one row per category (every category, in the catalogue's order)."""
    per_category = {row["category"]: row for row in rows}
    result = [build.row(f"{prefix}.total", label_total, total, "n")]
    for category, label in ToolboxCategory.choices:
        result.append(build.row(f"{prefix}.{category}", label, per_category.get(category, {}), "n", level=1))
    return result


def _needs_section(build, site_ids, bounds) -> Section:
    """Two queries: needs by category, and the total (its companies are not a sum)."""
    needs = Need.objects.filter(_in_either_period(bounds, "created_at"), case__site_id__in=site_ids)
    aggregates = _by_category_aggregates(bounds, "created_at", "case__company")
    rows = needs.order_by().values("category").annotate(**aggregates)
    total = needs.aggregate(**aggregates)
    section = Section("needs", str(_("Needs by toolbox category")))
    section.rows = _category_rows(build, "needs", rows, total, _("Needs recorded"))
    return section


def _requests_section(build, site_ids, bounds) -> tuple[Section, list]:
    """Three queries: requests opened by category; opened and accepted in all; routed and overdue
    (from the requests' timelines)."""
    requests = ServiceRequest.objects.filter(case__site_id__in=site_ids)
    opened = _by_category_aggregates(bounds, "opened_at", "case__company")
    by_category = requests.order_by().values("category").annotate(**opened)
    aggregates = dict(opened)
    for period, window in bounds.items():
        accepted = _within("accepted_at", window)
        aggregates[f"accepted_{period}"] = Count("pk", filter=accepted)
        aggregates[f"accepted_c_{period}"] = Count("case__company", distinct=True, filter=accepted)
    totals = requests.aggregate(**aggregates)
    events = {}
    for period, window in bounds.items():
        for name, kind in (("routed", EventKind.ROUTED), ("overdue", EventKind.OVERDUE)):
            condition = _within("at", window) & Q(kind=kind)
            events[f"{name}_{period}"] = Count("request", distinct=True, filter=condition)
            events[f"{name}_c_{period}"] = Count("request__case__company", distinct=True, filter=condition)
    timeline = RequestEvent.objects.filter(
        request__case__site_id__in=site_ids, kind__in=[EventKind.ROUTED, EventKind.OVERDUE]
    ).aggregate(**events)
    category_rows = _category_rows(build, "requests.opened", by_category, totals, _("Requests opened"))
    section = Section("requests", str(_("Service requests")))
    section.rows = [
        *category_rows,
        build.row("requests.routed", _("Requests routed to a partner"), timeline, "routed"),
        build.row("requests.accepted", _("Requests accepted"), totals, "accepted"),
        build.row("requests.overdue", _("Requests not accepted in time (overdue)"), timeline, "overdue"),
    ]
    return section, category_rows[1:]


def _declines_section(build, site_ids, bounds) -> Section:
    """Two queries: declines by reason, and in all."""
    declines = RequestDecline.objects.filter(request__case__site_id__in=site_ids)
    aggregates = {}
    for period, window in bounds.items():
        aggregates[f"n_{period}"] = Count("pk", filter=_within("at", window))
        aggregates[f"n_c_{period}"] = Count(
            "request__case__company", distinct=True, filter=_within("at", window)
        )
    per_reason = {row["reason"]: row for row in declines.order_by().values("reason").annotate(**aggregates)}
    total = declines.aggregate(**aggregates)
    section = Section("declines", str(_("Declines by reason")))
    section.rows = [build.row("declines.total", _("Declines"), total, "n")]
    for reason, label in DeclineReason.choices:
        section.rows.append(build.row(f"declines.{reason}", label, per_reason.get(reason, {}), "n", level=1))
    return section


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (Excel's PERCENTILE.INC, numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def delay_bin_labels() -> list[tuple[str, str]]:
    """(key, label) of each bin of the time-to-accept distribution: [low, high) in business days."""
    labels = [(f"0-{DELAY_BINS[0]}", str(_("less than %(high)s day") % {"high": DELAY_BINS[0]}))]
    for low, high in zip(DELAY_BINS, DELAY_BINS[1:], strict=False):
        labels.append((f"{low}-{high}", str(_("%(low)s to %(high)s days") % {"low": low, "high": high})))
    labels.append((f"{DELAY_BINS[-1]}+", str(_("%(low)s days or more") % {"low": DELAY_BINS[-1]})))
    return labels


def _delay_bin(days: float) -> int:
    return next((index for index, high in enumerate(DELAY_BINS) if days < high), len(DELAY_BINS))


def _delays_section(build, site_ids, bounds) -> tuple[Section, list]:
    """One query: the accepted requests of both periods; percentiles and bins in Python."""
    low = min(window[0] for window in bounds.values())
    high = max(window[1] for window in bounds.values())
    accepted = ServiceRequest.objects.filter(
        case__site_id__in=site_ids, accepted_at__gte=low, accepted_at__lt=high, routed_at__isnull=False
    ).values_list("routed_at", "accepted_at", "case__company_id")
    delays = {period: [] for period in PERIODS}  # (business days, company id)
    for routed_at, accepted_at, company_id in accepted:
        for period, (start, end) in bounds.items():
            if start <= accepted_at < end:
                delays[period].append((business_days_between(routed_at, accepted_at), company_id))
    data = {}
    for period, items in delays.items():
        days = [value for value, _company in items]
        companies = len({company for _value, company in items})
        data[f"median_{period}"] = round(statistics.median(days), 1) if days else None
        data[f"p90_{period}"] = round(percentile(days, 0.9), 1) if days else None
        data[f"median_c_{period}"] = data[f"p90_c_{period}"] = companies
        for index, (key, _label) in enumerate(delay_bin_labels()):
            in_bin = [(value, company) for value, company in items if _delay_bin(value) == index]
            data[f"bin{key}_{period}"] = len(in_bin)
            data[f"bin{key}_c_{period}"] = len({company for _value, company in in_bin})
    section = Section("delays", str(_("Time to accept (business days)")))
    section.rows = [
        _delay_row(build, "delays.median", _("Median time to accept"), data, "median"),
        _delay_row(build, "delays.p90", _("90th percentile of the time to accept"), data, "p90"),
    ]
    distribution = [
        build.row(f"delays.bin.{key}", label, data, f"bin{key}", level=1) for key, label in delay_bin_labels()
    ]
    section.rows += distribution
    return section, distribution


def _delay_row(build, key, label, data, name) -> Row:
    figures = [build.figure(data[f"{name}_{period}"], data[f"{name}_c_{period}"]) for period in PERIODS]
    return Row(key, str(label), *figures, unit=DAYS)


def _interventions_section(build, site_ids, bounds) -> Section:
    """One query: interventions dated in the period (not cancelled), and those done."""
    aggregates = {}
    for period, (start, end) in bounds.items():
        dated = Q(planned_on__gte=timezone.localdate(start), planned_on__lt=timezone.localdate(end))
        planned = dated & ~Q(status=InterventionStatus.CANCELLED)
        done = dated & Q(status=InterventionStatus.DONE)
        aggregates[f"planned_{period}"] = Count("pk", filter=planned)
        aggregates[f"planned_c_{period}"] = Count("case__company", distinct=True, filter=planned)
        aggregates[f"done_{period}"] = Count("pk", filter=done)
        aggregates[f"done_c_{period}"] = Count("case__company", distinct=True, filter=done)
    data = Intervention.objects.filter(case__site_id__in=site_ids).aggregate(**aggregates)
    section = Section("interventions", str(_("Interventions")))
    section.rows = [
        build.row("interventions.planned", _("Interventions planned"), data, "planned"),
        build.row("interventions.done", _("Interventions done"), data, "done"),
    ]
    return section


def _outcomes_section(build, site_ids, bounds) -> Section:
    """One query: hires and people entering training, from the requests delivered in the period."""
    aggregates = {}
    for period, window in bounds.items():
        delivered = _within("delivered_at", window)
        for name, column in (("hires", "result_hires"), ("trainings", "result_trainings")):
            aggregates[f"{name}_{period}"] = Sum(column, filter=delivered)
            aggregates[f"{name}_c_{period}"] = Count(
                "case__company", distinct=True, filter=delivered & Q(**{f"{column}__gt": 0})
            )
    data = ServiceRequest.objects.filter(case__site_id__in=site_ids).aggregate(**aggregates)
    section = Section("outcomes", str(_("Outcomes")))
    section.rows = [
        build.row("outcomes.hires", _("Hires"), data, "hires"),
        build.row("outcomes.trainings", _("People entering training"), data, "trainings"),
    ]
    return section


def _partners_section(build, site_ids, bounds) -> Section:
    """One query: per partner organisation, the requests routed to it in each period and how many
    it answered (accepted or declined) by the end of that period."""
    routings = RequestEvent.objects.filter(
        request__case__site_id__in=site_ids, kind=EventKind.ROUTED, organisation__isnull=False
    )
    aggregates = {}
    for period, window in bounds.items():
        answered = Exists(
            RequestEvent.objects.filter(
                request_id=OuterRef("request_id"),
                organisation_id=OuterRef("organisation_id"),
                kind__in=[EventKind.ACCEPTED, EventKind.DECLINED],
                at__gte=OuterRef("at"),
                at__lt=window[1],
            )
        )
        routed = _within("at", window)
        aggregates[f"routed_{period}"] = Count("pk", filter=routed)
        aggregates[f"answered_{period}"] = Count("pk", filter=routed & Q(answered))
        aggregates[f"routed_c_{period}"] = Count("request__case__company", distinct=True, filter=routed)
    low = min(window[0] for window in bounds.values())
    high = max(window[1] for window in bounds.values())
    rows = (
        routings.filter(at__gte=low, at__lt=high)
        .order_by()
        .values("organisation_id", "organisation__name")
        .annotate(**aggregates)
        .order_by("organisation__name", "organisation_id")
    )
    section = Section("partners", str(_("Response rate per partner organisation")))
    for data in rows:
        name, pk = data["organisation__name"], data["organisation_id"]
        for period in PERIODS:
            routed = data[f"routed_{period}"]
            data[f"rate_{period}"] = round(100 * data[f"answered_{period}"] / routed, 1) if routed else None
        section.rows.append(
            build.row(
                f"partners.{pk}.routed",
                _("%(organisation)s: requests received") % {"organisation": name},
                data,
                "routed",
            )
        )
        figures = [build.figure(data[f"rate_{period}"], data[f"routed_c_{period}"]) for period in PERIODS]
        section.rows.append(
            Row(
                f"partners.{pk}.rate",
                str(_("Response rate")),
                *figures,
                unit=PERCENT,
                level=1,
            )
        )
    return section
