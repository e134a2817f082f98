"""User-scoped reads. Every object shown to a user comes through one of these functions, which
start from `visible_to(user)`; an object the user may not see raises Http404 exactly like one
that does not exist."""

import re
from collections import Counter

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _

from casework import rules
from casework.enums import ENROLLED_CASE_STATES, CaseState
from casework.mentions import handle_of
from casework.models import Case, Company, Membership, Organisation, PilotSite, ToolboxService, User
from casework.timeline import case_timeline


def case_list(*, user: User, site: PilotSite | None = None, state: str = "", query: str = "") -> QuerySet:
    cases = Case.objects.visible_to(user).with_list_data()
    if site is not None:
        cases = cases.filter(site=site)
    if state:
        cases = cases.filter(state=state)
    query = (query or "").strip()
    if query:
        digits = re.sub(r"\s", "", query)
        match = Q(company__name__icontains=query)
        if digits.isdigit():
            match |= Q(company__siret__startswith=digits)
        cases = cases.filter(match)
    return cases


def case_get(*, user: User, public_id) -> Case:
    return get_object_or_404(
        Case.objects.visible_to(user).with_list_data().select_related("consent_recorded_by"),
        public_id=public_id,
    )


# The latest comments shown in full on the case page; the older ones are in its history.
COMMENTS_SHOWN = 20


def case_detail(case: Case, user: User) -> dict:
    """What the case page shows, in a fixed number of queries. `case` comes from `case_get`."""
    # Service requests live in `workflows`; reverse relations keep casework free of imports.
    requests = list(case.requests.select_related("provider").order_by("-opened_at"))
    latest = list(case.comments.select_related("author").order_by("-created_at", "-id")[: COMMENTS_SHOWN + 1])
    return {
        "needs": list(case.needs.all()),
        "interventions": list(case.interventions.select_related("owner", "owner_organisation")),
        "timeline": case_timeline(case, user),
        "contacts": list(case.company.contacts.all()),
        "requests": requests,
        "escalations": list(case.escalations.select_related("raised_by", "decided_by")),
        "comments": latest[:COMMENTS_SHOWN][::-1],
        "older_comments": len(latest) > COMMENTS_SHOWN,
    }


def mentionable(case: Case) -> list[dict]:
    """The people listed as mentionable under the comment form: the case's referent and the animators
    of its site. Partner agents working on a request of the case can be mentioned too, by their
    address; the service checks every mention against current rights."""
    people = [(case.referent, _("referent"))] + [
        (animator.user, animator.get_role_display())
        for animator in case.site.animators.select_related("user").order_by("user__last_name")
    ]
    seen, listed = set(), []
    for user, role in people:
        if user.pk not in seen and user.is_active:
            seen.add(user.pk)
            listed.append({"user": user, "handle": handle_of(user), "role": role})
    return listed


def company_get(*, user: User, public_id) -> Company:
    return get_object_or_404(
        Company.objects.filter(rules.company_visibility_q(user)).select_related("territory__department"),
        public_id=public_id,
    )


def company_cases(*, user: User, company: Company) -> list[Case]:
    return list(Case.objects.visible_to(user).filter(company=company).with_list_data())


def sites_for_filter(user: User) -> QuerySet:
    """Sites a user can filter the case list on: those where they can see at least one case."""
    return PilotSite.objects.filter(pk__in=Case.objects.visible_to(user).values("site_id")).order_by("name")


def sites_for_proposal(user: User) -> QuerySet:
    site_ids = PilotSite.objects.filter(rules.sites_open_to_referent_q(user)).values("pk")
    return (
        PilotSite.objects.filter(pk__in=site_ids).select_related("department", "territory").order_by("name")
    )


def referent_organisations(user: User) -> QuerySet:
    ids = rules.user_roles(user).referent_organisation_ids
    return Organisation.objects.filter(pk__in=ids).order_by("name")


def toolbox(*, territory=None, category: str = "") -> QuerySet:
    services = ToolboxService.objects.filter(is_active=True, provider__is_active=True).select_related(
        "provider"
    )
    if territory is not None:
        services = services.filter(territories=territory)
    if category:
        services = services.filter(category=category)
    return services.prefetch_related("territories").order_by("category", "name")


SMALL_COUNT = "< 3"


def mask_small(number: int):
    """Figures shown to observers: 1 and 2 become "< 3" so that no company can be singled out."""
    return SMALL_COUNT if 0 < number < 3 else number


def site_overview(*, site_ids, masked: bool = False) -> list[dict]:
    """Per site: number of cases by state and the enrolment places taken (aggregates only).

    `masked` (observers): every count of 1 or 2 becomes "< 3", and totals that would let one
    recompute a masked count by subtraction (places taken) are left out."""
    sites = list(PilotSite.objects.filter(pk__in=site_ids).order_by("name"))
    rows = (
        Case.objects.filter(site_id__in=site_ids)
        .order_by()
        .values_list("site_id", "state")
        .annotate(n=Count("pk"))
    )
    per_site: dict[int, Counter] = {site.pk: Counter() for site in sites}
    for site_id, state, n in rows:
        per_site[site_id][state] = n
    overview = []
    for site in sites:
        counts = per_site[site.pk]
        shown = mask_small if masked else int
        overview.append(
            {
                "site": site,
                "counts": [(state, label, shown(counts.get(state, 0))) for state, label in CaseState.choices],
                "places_taken": None if masked else sum(counts.get(s, 0) for s in ENROLLED_CASE_STATES),
            }
        )
    return overview


def observer_site_ids(user: User) -> list[int]:
    territory_ids = rules.user_roles(user).observed_territory_ids
    return list(PilotSite.objects.filter(territory_id__in=territory_ids).values_list("pk", flat=True))


def handover_candidates(case: Case) -> QuerySet:
    """Memberships of advisers who may take the case: referent members of an organisation serving
    its site (the same rule as a proposal), other than the current referent."""
    serving = Organisation.objects.filter(rules.organisations_serving_site_q(case.site), is_active=True)
    return (
        Membership.objects.filter(
            organisation__in=serving.values("pk"), can_be_referent=True, is_active=True, user__is_active=True
        )
        .exclude(user_id=case.referent_id)
        .select_related("user", "organisation")
        .order_by("user__last_name", "user__first_name", "organisation__name")
    )


def pending_handover(case: Case):
    return (
        case.handovers.filter(status="proposed")
        .select_related("to_user", "to_organisation", "proposed_by")
        .first()
    )


def toolbox_for_case(case: Case) -> QuerySet:
    """Active services offered in the company's territory."""
    return (
        ToolboxService.objects.filter(
            is_active=True, provider__is_active=True, territories=case.company.territory_id
        )
        .select_related("provider")
        .order_by("category", "name")
    )
