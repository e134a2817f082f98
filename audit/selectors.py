"""Reads of the audit trail."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.contenttypes.models import ContentType
from django.db.models import BigIntegerField, Count, F, Max, Min, OuterRef, Q, Subquery, When
from django.db.models import Case as SqlCase
from django.utils import timezone

from audit.models import AuditEntry
from audit.services import REFRESH_KEY

# An access entry that is a display: not a live refresh of a page already shown
# (audit.services.record_access). Absent key and empty extra data both count.
DISPLAY = Q(**{f"additional_data__{REFRESH_KEY}__isnull": True})


@dataclass(frozen=True)
class Viewer:
    """Someone who displayed an object: how many times, first and last. `displays` is 0 for
    someone whose only entries are live refreshes (a page never displayed: a forged header)."""

    name: str
    displays: int
    first: datetime
    last: datetime

    def __str__(self):
        return self.name


def viewers_of(instance, limit: int = 50) -> list[Viewer]:
    """Everyone who displayed `instance` (a case), the most recent viewer first, with their number
    of displays: a partner who opened the case once stays listed however often others reload it.
    The live refreshes of a page already displayed are not displays; someone whose entries are all
    refreshes is listed with 0 displays. One query."""
    grouped = (
        AuditEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(instance),
            object_pk=str(instance.pk),
            action=AuditEntry.Action.ACCESS,
        )
        .order_by()
        .values("actor_id", "actor__first_name", "actor__last_name", "actor__username")
        .annotate(displays=Count("pk", filter=DISPLAY), first=Min("timestamp"), last=Max("timestamp"))
        .order_by("-last", "actor_id")[:limit]
    )
    viewers = []
    for row in grouped:
        name = f"{row['actor__first_name']} {row['actor__last_name']}".strip() or row["actor__username"]
        viewers.append(Viewer(name, row["displays"], row["first"], row["last"]))
    return viewers


@dataclass(frozen=True)
class CompanyDisplays:
    """One company a user displayed in a period (its page or one of its cases' pages)."""

    company_id: int
    name: str
    siret: str
    sites: tuple[str, ...]
    displays: int
    first: datetime
    last: datetime
    exists: bool = True


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The instants [start 00:00, the day after `end` 00:00) in the platform's time zone: `end`
    is included whole."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone),
    )


def _groups(user, *, start: date, end: date) -> list[tuple]:
    """(company id, displays, first, last) for each company `user` displayed in the period, from
    the access entries grouped by company in the database (a case's entry is mapped to its
    company there): one query."""
    from casework.models import Case, Company

    case_type = ContentType.objects.get_for_model(Case)
    company_type = ContentType.objects.get_for_model(Company)
    since, until = period_bounds(start, end)
    company_of_case = Case.objects.filter(pk=OuterRef("object_id")).order_by().values("company_id")[:1]
    grouped = (
        AuditEntry.objects.filter(
            actor=user,
            action=AuditEntry.Action.ACCESS,
            timestamp__gte=since,
            timestamp__lt=until,
            content_type__in=(case_type, company_type),
        )
        .annotate(
            company_id=SqlCase(
                When(content_type=case_type, then=Subquery(company_of_case)),
                default=F("object_id"),
                output_field=BigIntegerField(),
            )
        )
        .order_by()
        .values("company_id")
        .annotate(displays=Count("pk", filter=DISPLAY), first=Min("timestamp"), last=Max("timestamp"))
        .values_list("company_id", "displays", "first", "last")
    )
    return [group for group in grouped if group[0] is not None]


def _sorted_rows(user, *, start: date, end: date) -> list[tuple]:
    """Every company of the period in the report's order (companies since deleted last, then by
    name, case ignored, SIRET and id), as plain tuples (missing, casefolded name, SIRET, id, name,
    displays, first, last): two queries."""
    from casework.models import Company
    from casework.rules import ids_among

    groups = _groups(user, start=start, end=end)
    companies = {
        pk: (name, siret)
        for pk, name, siret in Company.objects.filter(pk__in=ids_among([group[0] for group in groups]))
        .order_by()
        .values_list("pk", "name", "siret")
    }
    rows = []
    for company_id, displays, first, last in groups:
        found = companies.get(company_id)
        name, siret = found or ("", "")
        rows.append((found is None, name.casefold(), siret, company_id, name, displays, first, last))
    rows.sort()
    return rows


def _order(row: tuple) -> tuple:
    """The position of a row in the report's order (its first four values)."""
    return row[:4]


def _with_sites(rows: list[tuple]) -> list[CompanyDisplays]:
    """The report's rows, with the pilot sites of their companies: one query."""
    from casework.models import Case
    from casework.rules import ids_among

    if not rows:
        return []
    sites: dict[int, set[str]] = {}
    for company_id, site_name in (
        Case.objects.filter(company_id__in=ids_among([row[3] for row in rows]))
        .order_by()  # no default ordering: DISTINCT on the two columns only
        .values_list("company_id", "site__name")
        .distinct()
    ):
        sites.setdefault(company_id, set()).add(site_name)
    return [
        CompanyDisplays(
            company_id=company_id,
            name=name,
            siret=siret,
            sites=tuple(sorted(sites.get(company_id, ()))),
            displays=displays,
            first=first,
            last=last,
            exists=not missing,
        )
        for missing, _key, siret, company_id, name, displays, first, last in rows
    ]


def companies_seen_by(user, *, start: date, end: date) -> list[CompanyDisplays]:
    """Which companies `user` displayed between `start` and `end` (both included): one row per
    company, sorted by name, counting the displays of the company's page and of its cases' pages (not
    the live refreshes of a page already displayed; a company whose entries are all refreshes is
    listed with 0 displays). Companies since deleted come last (their entries remain: the trail
    keeps its history).

    Three queries whatever the number of entries: the entries grouped by company, the companies'
    names, their pilot sites. For platform administrators only: the caller checks it (the entries
    name any company). The CSV export reads this; the page reads it a page at a time
    (`companies_seen_page`)."""
    return _with_sites(_sorted_rows(user, start=start, end=end))


@dataclass(frozen=True)
class ReportPage:
    page: object  # casework.pagination.KeysetPage of CompanyDisplays
    companies: int
    displays: int


def companies_seen_page(user, *, start: date, end: date, params, size: int) -> ReportPage:
    """One page of `companies_seen_by` (« Précédent / Suivant », chosen by its position as
    `params` says), with the number of companies and of displays of the whole period. Three
    queries whatever the number of entries: the groups, the companies' names, the page's sites.

    The groups are all read (a GROUP BY is computed whole whatever the page: it costs the entries
    of one person in one period, not the platform's), as plain values; only the page is made into
    rows with their sites."""
    from casework.pagination import keyset_slice

    rows = _sorted_rows(user, start=start, end=end)
    page = keyset_slice(rows, _order, size, params)
    page.object_list = _with_sites(page.object_list)
    return ReportPage(page=page, companies=len(rows), displays=sum(row[5] for row in rows))


def users_named(identifier: str, limit: int = 5) -> list:
    """Accounts whose username or e-mail address is exactly `identifier` (case ignored), any
    state; one query. For platform administrators looking up whom to audit."""
    from django.contrib.auth import get_user_model

    identifier = identifier.strip()
    if not identifier:
        return []
    return list(
        get_user_model()
        .objects.filter(Q(username__iexact=identifier) | Q(email__iexact=identifier))
        .order_by("pk")[:limit]
    )
