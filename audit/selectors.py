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


def companies_seen_by(user, *, start: date, end: date) -> list[CompanyDisplays]:
    """Which companies `user` displayed between `start` and `end` (both included): one row per
    company, sorted by name, counting the displays of the company's page and of its cases' pages.

    Three queries whatever the number of entries: the access entries grouped by company (a case's
    entry is mapped to its company in the database), the companies, their pilot sites. For
    platform administrators only: the caller checks it (the entries name any company)."""
    from casework.models import Case, Company

    case_type = ContentType.objects.get_for_model(Case)
    company_type = ContentType.objects.get_for_model(Company)
    since, until = period_bounds(start, end)
    company_of_case = Case.objects.filter(pk=OuterRef("object_id")).values("company_id")[:1]
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
    )
    groups = [row for row in grouped if row["company_id"] is not None]
    if not groups:
        return []
    ids = [row["company_id"] for row in groups]
    companies = Company.objects.only("name", "siret").in_bulk(ids)
    sites: dict[int, set[str]] = {}
    for company_id, site_name in (
        Case.objects.filter(company_id__in=ids)
        .order_by()  # no default ordering: DISTINCT on the two columns only
        .values_list("company_id", "site__name")
        .distinct()
    ):
        sites.setdefault(company_id, set()).add(site_name)
    rows = []
    for row in groups:
        company = companies.get(row["company_id"])
        rows.append(
            CompanyDisplays(
                company_id=row["company_id"],
                name=company.name if company else "",
                siret=company.siret if company else "",
                sites=tuple(sorted(sites.get(row["company_id"], ()))),
                displays=row["displays"],
                first=row["first"],
                last=row["last"],
                exists=company is not None,
            )
        )
    # Companies since deleted come last (their entries remain: the trail keeps its history).
    return sorted(rows, key=lambda row: (not row.exists, row.name.casefold(), row.siret, row.company_id))


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
