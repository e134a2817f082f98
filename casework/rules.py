"""Who may do what, and who sees what: the single home of the access and transition rules.

Every function here is a pure question about current data (no writes). Views and services ask
these questions; the FSM transitions of `Case` use them as permissions and conditions. A user's
roles are read once per request and cached on the user instance.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _


@dataclass(frozen=True)
class Roles:
    animated_site_ids: frozenset[int]
    referent_organisation_ids: frozenset[int]
    organisation_ids: frozenset[int]
    observed_territory_ids: frozenset[int]

    @property
    def is_animator(self) -> bool:
        return bool(self.animated_site_ids)

    @property
    def is_referent(self) -> bool:
        return bool(self.referent_organisation_ids)

    @property
    def is_observer(self) -> bool:
        return bool(self.observed_territory_ids)


NO_ROLES = Roles(frozenset(), frozenset(), frozenset(), frozenset())


def user_roles(user) -> Roles:
    """The user's roles, from two queries the first time per user instance."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NO_ROLES
    cached = getattr(user, "_casework_roles", None)
    if cached is not None:
        return cached
    roles = roles_of_users([user.pk])[user.pk]
    user._casework_roles = roles
    return roles


def ids_param(connection, ids):
    """A list of ids as one parameter of `ids_subquery`: an array for PostgreSQL, JSON for SQLite."""
    ids = [int(pk) for pk in ids]
    if connection.vendor == "postgresql":
        return ids
    import json

    return json.dumps(ids)


def ids_subquery(param):
    """The ids of `param` (made by `ids_param`) as a subquery for an `__in` lookup: one parameter
    whatever their number (the ORM compiles a thousand ids into a thousand placeholders, 5 ms a
    query, and into a statement of its own for each length)."""
    from django.db import connection
    from django.db.models.expressions import RawSQL

    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", (param,))
    return RawSQL("SELECT value FROM json_each(%s)", (param,))


def ids_among(ids):
    """`ids` for an `__in` lookup, as `ids_subquery`."""
    from django.db import connection

    return ids_subquery(ids_param(connection, ids))


def roles_of_users(user_ids) -> dict[int, Roles]:
    """The roles of each of `user_ids` (active users or not: the caller checks), from three
    queries whatever their number: what `user_roles` reads for one user."""
    from casework.models import Membership, SiteAnimator, TerritoryObserver

    ids = [int(pk) for pk in user_ids]
    among = ids_among(ids)
    memberships, animated, observed = {}, {}, {}
    for user_id, organisation_id, can_be_referent in Membership.objects.filter(
        user_id__in=among, is_active=True, organisation__is_active=True
    ).values_list("user_id", "organisation_id", "can_be_referent"):
        memberships.setdefault(user_id, []).append((organisation_id, can_be_referent))
    for user_id, site_id in SiteAnimator.objects.filter(user_id__in=among).values_list("user_id", "site_id"):
        animated.setdefault(user_id, set()).add(site_id)
    for user_id, territory_id in TerritoryObserver.objects.filter(user_id__in=among).values_list(
        "user_id", "territory_id"
    ):
        observed.setdefault(user_id, set()).add(territory_id)
    roles = dict.fromkeys(ids, NO_ROLES)
    for user_id in memberships.keys() | animated.keys() | observed.keys():
        held = memberships.get(user_id, ())
        roles[user_id] = Roles(
            animated_site_ids=frozenset(animated.get(user_id, ())),
            referent_organisation_ids=frozenset(org for org, can in held if can),
            organisation_ids=frozenset(org for org, _can in held),
            observed_territory_ids=frozenset(observed.get(user_id, ())),
        )
    return roles


def forget_roles(user) -> None:
    if hasattr(user, "_casework_roles"):
        del user._casework_roles


# --- Visibility (confidentiality obligation) ------------------------------------------------------

NOTHING = Q(pk__in=[])


def case_visibility_q(user) -> Q:
    """Cases a user may see: their own as referent, those of the sites they animate, all of them for
    platform administrators. Nobody sees a case before accepting the current charter; observers
    see aggregates only, never a case."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return NOTHING
    if not user.has_accepted_current_charter:
        return NOTHING
    if user.is_platform_admin:
        return Q()
    roles = user_roles(user)
    # A referent acts for an organisation: leaving it (membership ended) ends the access.
    visible = Q(referent_id=user.pk, referent_organisation_id__in=roles.referent_organisation_ids)
    if roles.animated_site_ids:
        visible |= Q(site_id__in=roles.animated_site_ids)
    visible |= _handover_visibility_q(user)
    for extra in _CASE_VISIBILITY_EXTENSIONS:
        visible |= extra(user, roles)
    return visible


def sees_case_by_roles(
    user_id: int,
    *,
    is_platform_admin: bool,
    roles: Roles,
    site_id: int,
    referent_id: int,
    referent_organisation_id: int,
) -> bool:
    """True when `case_visibility_q` shows a case to a user through one of its clauses that need only
    the user's roles and the case's site and referent: a platform administrator; the referent,
    acting for one of their referent organisations; an animator of the case's site. False proves
    nothing — a handover or an extension (`extend_case_visibility`) may show it: ask the database.
    For an active user who accepted the current charter (the caller checks); keep in step with
    `case_visibility_q` (tests/test_visibility.py compares them)."""
    if is_platform_admin:
        return True
    if referent_id == user_id and referent_organisation_id in roles.referent_organisation_ids:
        return True
    return site_id in roles.animated_site_ids


def sees_every_case_of_sites(user, site_ids) -> bool:
    """True when `case_visibility_q` shows the user every case of these pilot sites: a platform
    administrator, or an animator of each of them (its animator clause), active and under the
    current charter. Then `Case.objects.visible_to(user).filter(site__in=site_ids)` is every case of
    those sites, and a read of them needs no visibility condition (the status board's)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if not user.has_accepted_current_charter:
        return False
    if user.is_platform_admin:
        return True
    return set(site_ids) <= user_roles(user).animated_site_ids


def _handover_visibility_q(user) -> Q:
    """The person asked to become referent sees the case while the handover waits; the former
    referent keeps reading it for FORMER_REFERENT_ACCESS_DAYS after the handover."""
    from casework.models import Handover

    since = timezone.now() - timedelta(days=settings.FORMER_REFERENT_ACCESS_DAYS)
    handovers = Handover.objects.filter(
        Q(to_user_id=user.pk, status="proposed")
        | Q(from_user_id=user.pk, status="accepted", decided_at__gte=since)
    )
    return Q(pk__in=handovers.values("case_id"))


# Packages built on casework (workflows) add who else sees a case, e.g. the partner organisations
# a request was routed to. Each extension is `f(user, roles) -> Q` over Case.
_CASE_VISIBILITY_EXTENSIONS = []


def extend_case_visibility(extension) -> None:
    if extension not in _CASE_VISIBILITY_EXTENSIONS:
        _CASE_VISIBILITY_EXTENSIONS.append(extension)


def company_visibility_q(user) -> Q:
    """A company is visible when one of its cases is."""
    from casework.models import Case

    if getattr(user, "is_authenticated", False) and user.is_active and user.is_platform_admin:
        return Q() if user.has_accepted_current_charter else NOTHING
    return Q(pk__in=Case.objects.visible_to(user).values("company_id"))


# --- Roles on a case -----------------------------------------------------------------------------


def is_case_referent(case, user) -> bool:
    """The case's referent, still member (as referent) of the organisation they act for."""
    return (
        bool(getattr(user, "is_authenticated", False))
        and user.is_active
        and case.referent_id == user.pk
        and case.referent_organisation_id in user_roles(user).referent_organisation_ids
    )


def is_site_animator(site_id: int, user) -> bool:
    return site_id in user_roles(user).animated_site_ids


def can_decide_enrolment(case, user) -> bool:
    """Only the site's animators enrol or refuse a company."""
    return is_site_animator(case.site_id, user)


def is_referent_or_animator(case, user) -> bool:
    return is_case_referent(case, user) or is_site_animator(case.site_id, user)


def can_edit_needs(case, user) -> bool:
    return case.is_open and is_referent_or_animator(case, user)


def can_see_case(case, user) -> bool:
    """`user` may read `case` now (the one visibility rule, re-read from the database)."""
    from casework.models import Case

    return Case.objects.visible_to(user).filter(pk=case.pk).exists()


def can_record_consent(case, user) -> bool:
    return case.is_open and is_referent_or_animator(case, user)


def can_propose_cases(user) -> bool:
    return user_roles(user).is_referent


def sites_served_by_q(organisation_ids) -> Q:
    """Pilot sites served by one of these organisations: a site is served when the organisation
    serves a territory of the site's department or belongs to that department (a pilot site is an
    employment area that may straddle territories); a regional body flagged `serves_whole_region`
    (OPCO, Région) serves every site. An organisation with nothing filled in serves none."""
    from casework.models import Organisation

    if not organisation_ids:
        return NOTHING
    if Organisation.objects.filter(pk__in=organisation_ids, serves_whole_region=True).exists():
        return Q()
    return Q(department__territories__organisations__in=organisation_ids) | Q(
        department__organisations__in=organisation_ids
    )


def organisations_serving_site_q(site) -> Q:
    """The converse of `sites_served_by_q`: organisations that serve `site`."""
    return (
        Q(serves_whole_region=True)
        | Q(department_id=site.department_id)
        | Q(pk__in=site.department.territories.values("organisations"))
    )


def sites_open_to_referent_q(user) -> Q:
    """Pilot sites where a referent may propose a company: those served by one of the
    organisations they may act as referent for."""
    return sites_served_by_q(user_roles(user).referent_organisation_ids)


# --- Transition conditions, each with the French reason shown when it fails ---------------------


def consent_recorded(case) -> bool:
    return case.consent_recorded_at is not None


consent_recorded.explain = lambda case: _(
    "The company's consent to share its data among partners has not been recorded yet."
)


def below_site_cap(case) -> bool:
    from casework.models import Case

    taken = Case.objects.filter(site_id=case.site_id).occupying_places().exclude(pk=case.pk).count()
    return taken < case.site.enrolment_cap


below_site_cap.explain = lambda case: (
    _("The site %(site)s already follows %(cap)s companies, its maximum. Close or withdraw a case first.")
    % {"site": case.site.name, "cap": case.site.enrolment_cap}
)


def within_site_window(case) -> bool:
    today = timezone.localdate()
    return case.site.starts_on <= today <= case.site.ends_on


within_site_window.explain = lambda case: (
    _("Enrolments on %(site)s are open from %(start)s to %(end)s.")
    % {
        "site": case.site.name,
        "start": date_format(case.site.starts_on, "SHORT_DATE_FORMAT"),
        "end": date_format(case.site.ends_on, "SHORT_DATE_FORMAT"),
    }
)

ENROLMENT_CHECKS = (consent_recorded, within_site_window, below_site_cap)


def enrolment_allowed(case) -> bool:
    return all(check(case) for check in ENROLMENT_CHECKS)


enrolment_allowed.explain = lambda case: " ".join(
    check.explain(case) for check in ENROLMENT_CHECKS if not check(case)
)


def has_needs(case) -> bool:
    return case.needs.exists()


has_needs.explain = lambda case: _("Record at least one need of the company before declaring the diagnosis.")


def no_open_requests(case) -> bool:
    """Every service request of the case is closed or cancelled (requests live in `workflows`;
    only their reverse relation is used here, so casework does not import workflows)."""
    return not case.requests.exclude(stage__in=("closed", "cancelled")).exists()


no_open_requests.explain = lambda case: _(
    "Some requests of this case are still open: close or cancel them first."
)


def has_open_needs(case) -> bool:
    return case.needs.filter(status__in=["open", "in_progress"]).exists()


has_open_needs.explain = lambda case: _("The support starts from an open need: record one first.")


# --- What a user may do on a case now ---------------------------------------------------------


def transition_blocker(case, transition) -> str:
    """Why the conditions of `transition` (a django-fsm Transition) are not met, or ""."""
    return " ".join(
        condition.explain(case)
        for condition in transition.conditions
        if not condition(case) and hasattr(condition, "explain")
    )


def case_transition_options(case, user) -> list[tuple]:
    """The transitions of the case's current state that this user is entitled to, each with the
    reason it is blocked now ("" when it can be done). Unentitled transitions are not listed."""
    options = []
    for transition in case.get_all_state_transitions():
        if transition.source not in (case.state, "*") or not transition.has_perm(case, user):
            continue
        options.append((transition, transition_blocker(case, transition)))
    return options
