"""The confidentiality rule: who sees which case and which company.

World: `case_a` (referent `referent`, site `site`), `case_b` (referent `other_referent`,
`other_site`), `case_c` (another referent, `site`).
"""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.http import Http404

from casework import rules, selectors
from casework.models import Case, Company
from tests.factories import CaseFactory, MembershipFactory, SiteAnimatorFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(site, other_site, referent, other_referent):
    return {
        "a": CaseFactory(site=site, referent=referent),
        "b": CaseFactory(site=other_site, referent=other_referent, enrolled=True),
        "c": CaseFactory(site=site, active=True),
    }


def visible_cases(world, user) -> set[str]:
    pks = set(Case.objects.visible_to(user).values_list("pk", flat=True))
    return {key for key, case in world.items() if case.pk in pks}


def visible_companies(world, user) -> set[str]:
    pks = set(Company.objects.filter(rules.company_visibility_q(user)).values_list("pk", flat=True))
    return {key for key, case in world.items() if case.company_id in pks}


def can_get_company(user, case) -> bool:
    try:
        company = selectors.company_get(user=user, public_id=case.company.public_id)
    except Http404:
        return False
    assert company.pk == case.company_id
    return True


def can_get_case(user, case) -> bool:
    try:
        found = selectors.case_get(user=user, public_id=case.public_id)
    except Http404:
        return False
    assert found.pk == case.pk
    return True


@pytest.fixture
def other_animator(other_site):
    return SiteAnimatorFactory(site=other_site).user


@pytest.fixture
def colleague(referent_organisation):
    """A referent of the same organisation as `referent`, referent of no case."""
    user = UserFactory()
    MembershipFactory(user=user, organisation=referent_organisation)
    return user


EXPECTED = {
    "referent": {"a"},
    "other_referent": {"b"},
    "animator": {"a", "c"},
    "other_animator": {"b"},
    "colleague": set(),
    "agent": set(),
    "observer": set(),
    "admin_user": {"a", "b", "c"},
}


@pytest.mark.parametrize("role, expected", EXPECTED.items(), ids=list(EXPECTED))
def test_cases_visible_to_each_role(request, world, role, expected):
    user = request.getfixturevalue(role)
    assert visible_cases(world, user) == expected
    assert {key for key, case in world.items() if can_get_case(user, case)} == expected


@pytest.mark.parametrize("role, expected", EXPECTED.items(), ids=list(EXPECTED))
def test_companies_visible_to_each_role(request, world, role, expected):
    user = request.getfixturevalue(role)
    assert visible_companies(world, user) == expected
    assert {key for key, case in world.items() if can_get_company(user, case)} == expected


def test_observer_sees_no_case_even_of_their_territory(world, observer, site):
    assert world["a"].site.territory == site.territory
    assert rules.user_roles(observer).observed_territory_ids == {site.territory_id}
    assert not Case.objects.visible_to(observer).exists()
    assert not Company.objects.filter(rules.company_visibility_q(observer)).exists()


@pytest.mark.parametrize("role", ["referent", "animator", "admin_user"])
def test_inactive_user_sees_nothing(request, world, role):
    user = request.getfixturevalue(role)
    user.is_active = False
    user.save()
    assert visible_cases(world, user) == set()
    assert visible_companies(world, user) == set()
    assert not can_get_company(user, world["a"])


def test_anonymous_user_sees_nothing(world):
    anonymous = AnonymousUser()
    assert visible_cases(world, anonymous) == set()
    assert visible_companies(world, anonymous) == set()
    assert not can_get_case(anonymous, world["a"])
    assert not can_get_company(anonymous, world["a"])


@pytest.mark.parametrize("role", ["referent", "animator", "admin_user"])
@pytest.mark.parametrize("version", ["", "2020-01"])
def test_user_who_has_not_accepted_the_current_charter_sees_nothing(request, world, role, version):
    user = request.getfixturevalue(role)
    user.accepted_charter_version = version
    user.save()
    assert visible_cases(world, user) == set()
    assert visible_companies(world, user) == set()
    assert not can_get_case(user, world["a"])
    assert not can_get_company(user, world["a"])


def test_user_holding_two_roles_sees_exactly_the_union(world, referent, other_site):
    """Referent of case A on site 1 and animator of site 2."""
    SiteAnimatorFactory(user=referent, site=other_site)
    rules.forget_roles(referent)
    case_d = CaseFactory(site=other_site)
    world["d"] = case_d

    assert visible_cases(world, referent) == {"a", "b", "d"}
    assert visible_companies(world, referent) == {"a", "b", "d"}


def test_referent_keeps_seeing_a_finished_case(site, referent):
    case = CaseFactory(site=site, referent=referent, closed=True)
    assert can_get_case(referent, case)
    assert can_get_company(referent, case)


def test_company_followed_on_two_sites_is_visible_through_either_case(
    world, site, other_site, other_animator
):
    company = world["a"].company
    CaseFactory(site=other_site, company=company)
    assert can_get_company(other_animator, world["a"])
    # ...but the case of the other site stays hidden.
    assert not can_get_case(other_animator, world["a"])
    assert [c.site for c in selectors.company_cases(user=other_animator, company=company)] == [other_site]


def test_unknown_public_ids_raise_404(world, admin_user):
    import uuid

    with pytest.raises(Http404):
        selectors.case_get(user=admin_user, public_id=uuid.uuid4())
    with pytest.raises(Http404):
        selectors.company_get(user=admin_user, public_id=uuid.uuid4())


def test_case_list_is_restricted_to_visible_cases(world, animator, admin_user):
    assert {c.pk for c in selectors.case_list(user=animator)} == {world["a"].pk, world["c"].pk}
    assert {c.pk for c in selectors.case_list(user=animator, query=world["c"].company.siret[:9])} == {
        world["c"].pk
    }
    # A search matching a hidden case returns nothing, although it finds the case for an admin.
    hidden_name = world["b"].company.name
    assert world["b"] in selectors.case_list(user=admin_user, query=hidden_name)
    assert list(selectors.case_list(user=animator, query=hidden_name)) == []


def test_referent_who_left_their_organisation_loses_the_case(case, referent):
    """Access follows the organisation the referent acts for: an ended membership ends it."""
    assert case in Case.objects.visible_to(referent)
    referent.memberships.update(is_active=False)
    rules.forget_roles(referent)
    assert case not in Case.objects.visible_to(referent)
    assert not rules.is_case_referent(case, referent)


def _by_roles(user, case) -> bool:
    roles = rules.roles_of_users([user.pk])[user.pk]
    return rules.sees_case_by_roles(
        user.pk,
        is_platform_admin=user.is_platform_admin,
        roles=roles,
        site_id=case.site_id,
        referent_id=case.referent_id,
        referent_organisation_id=case.referent_organisation_id,
    )


@pytest.mark.parametrize("role", EXPECTED)
def test_the_rule_by_roles_shows_a_case_only_when_the_database_does(request, world, role, referent):
    """What a socket decides from its fresh roles alone (notifications.consumers): never a case the
    database hides; the referent, animators and administrators without asking the database."""
    user = request.getfixturevalue(role)
    shown = {key for key, case in world.items() if _by_roles(user, case)}
    assert shown <= EXPECTED[role]
    if role in ("referent", "other_referent", "animator", "other_animator", "admin_user"):
        assert shown == EXPECTED[role]


def test_the_rule_by_roles_follows_a_membership_that_ended(case, referent):
    assert _by_roles(referent, case)
    referent.memberships.update(is_active=False)
    assert not _by_roles(referent, case)
    assert case not in Case.objects.visible_to(referent)


@pytest.mark.parametrize("role", [*EXPECTED, "colleague"])
def test_roles_read_together_are_each_users_roles(request, world, role, referent, animator, other_site):
    SiteAnimatorFactory(user=referent, site=other_site)  # a user with two roles too
    user = request.getfixturevalue(role)
    together = rules.roles_of_users([user.pk, referent.pk, animator.pk])
    for person in (user, referent, animator):
        rules.forget_roles(person)
        assert together[person.pk] == rules.user_roles(person)
