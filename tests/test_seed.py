"""The seed commands: the pilot geography (seed_region) and the demonstration data (seed_demo)."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from stdnum.fr import siret as stdnum_siret

from casework import rules
from casework.enums import ENROLLED_CASE_STATES, CaseState, ToolboxCategory
from casework.management.commands.seed_demo import DEMO_PASSWORD, demo_accounts
from casework.models import (
    Case,
    CaseTransition,
    Company,
    CompanyContact,
    Department,
    Intervention,
    Membership,
    Need,
    Organisation,
    PilotSite,
    SiteAnimator,
    Territory,
    TerritoryObserver,
    ToolboxService,
    User,
)

pytestmark = pytest.mark.django_db

EXPECTED_TERRITORIES = {
    "44": {
        "Loire-Atlantique Centre",
        "Loire-Atlantique Nord",
        "Loire-Atlantique Ouest",
        "Loire-Atlantique Sud",
    },
    "49": {"Maine-et-Loire Centre", "Maine-et-Loire Est", "Maine-et-Loire Ouest", "Maine-et-Loire Sud"},
    "53": {"Mayenne Centre", "Mayenne Nord", "Mayenne Sud"},
    "72": {"Sarthe Centre", "Sarthe Sud", "Sarthe Nord"},
    "85": {"Vendée Sud", "Vendée Centre", "Vendée Nord", "Vendée Ouest"},
}
EXPECTED_SITES = {
    "ancenis": "44",
    "saumur": "49",
    "sud-mayenne": "53",
    "sable-la-fleche": "72",
    "les-herbiers": "85",
}
COUNTED = [
    Department,
    Territory,
    PilotSite,
    Organisation,
    Organisation.territories.through,
    ToolboxService,
    ToolboxService.territories.through,
    User,
    Membership,
    SiteAnimator,
    TerritoryObserver,
    Company,
    CompanyContact,
    Case,
    CaseTransition,
    Need,
    Intervention,
]


def run(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def counts():
    return {model._meta.label: model.objects.count() for model in COUNTED}


@pytest.fixture
def demo():
    """The default demonstration data set (60 companies)."""
    return run("seed_demo")


# --- seed_region ---------------------------------------------------------------------------------


def test_seed_region_creates_the_pilot_geography():
    output = run("seed_region")

    assert "5 départements, 18 territoires, 5 sites pilotes" in output
    assert dict(Department.objects.values_list("code", "name")) == {
        "44": "Loire-Atlantique",
        "49": "Maine-et-Loire",
        "53": "Mayenne",
        "72": "Sarthe",
        "85": "Vendée",
    }
    assert Territory.objects.count() == 18
    for code, names in EXPECTED_TERRITORIES.items():
        assert set(Territory.objects.filter(department__code=code).values_list("name", flat=True)) == names
    assert PilotSite.objects.count() == 5
    for site in PilotSite.objects.select_related("department", "territory"):
        assert EXPECTED_SITES[site.slug] == site.department.code == site.territory.department.code
        assert site.enrolment_cap == 15
        assert site.ends_on > site.starts_on
    assert PilotSite.objects.get(slug="saumur").territory.name == "Maine-et-Loire Est"
    assert PilotSite.objects.get(slug="sud-mayenne").territory.name == "Mayenne Sud"
    assert PilotSite.objects.get(slug="sable-la-fleche").territory.name == "Sarthe Sud"


def test_seed_region_is_idempotent_and_keeps_what_an_administrator_edited():
    run("seed_region")
    before = counts()
    saumur = PilotSite.objects.get(slug="saumur")
    saumur.enrolment_cap = 8
    saumur.territory = Territory.objects.get(name="Maine-et-Loire Sud")
    saumur.ends_on = datetime.date(2027, 6, 30)
    saumur.save()

    output = run("seed_region")

    assert counts() == before
    assert "0 département, 0 territoire, 0 site" in output
    saumur.refresh_from_db()
    assert saumur.enrolment_cap == 8
    assert saumur.territory.name == "Maine-et-Loire Sud"
    assert saumur.ends_on == datetime.date(2027, 6, 30)


# --- seed_demo -----------------------------------------------------------------------------------


def test_seed_demo_is_idempotent(demo):
    before = counts()
    assert before["casework.Company"] == 60
    assert before["casework.Case"] == 60

    run("seed_demo")

    assert counts() == before


def test_seed_demo_has_cases_in_every_state(demo):
    per_state = dict(Case.objects.order_by().values_list("state").annotate(n=Count("pk")))
    assert set(per_state) == set(CaseState.values)
    # Every pilot site shows the whole life cycle.
    for site in PilotSite.objects.all():
        assert set(site.cases.values_list("state", flat=True)) == set(CaseState.values), site.slug


def test_seed_demo_companies_have_valid_sirets(demo):
    sirets = list(Company.objects.values_list("siret", flat=True))
    assert sirets
    assert all(stdnum_siret.is_valid(siret) for siret in sirets)
    assert not any(siret.startswith("356000000") for siret in sirets)
    assert CompanyContact.objects.count() == Company.objects.count()


def test_seed_demo_cases_have_a_referent_allowed_on_their_site(demo):
    for case in Case.objects.select_related("referent", "referent_organisation"):
        referent = User.objects.get(pk=case.referent_id)  # fresh instance: roles are cached per user
        assert Membership.objects.filter(
            user=referent, organisation=case.referent_organisation, can_be_referent=True, is_active=True
        ).exists()
        assert PilotSite.objects.filter(rules.sites_open_to_referent_q(referent), pk=case.site_id).exists()


def test_seed_demo_cases_went_through_the_state_machine(demo):
    for case in Case.objects.prefetch_related("transitions"):
        transitions = list(case.transitions.all())
        assert transitions[0].name == "propose"
        for previous, following in zip(transitions, transitions[1:], strict=False):
            assert following.source == previous.target
            assert following.at > previous.at
        assert transitions[-1].target == case.state
        animators = set(SiteAnimator.objects.filter(site=case.site_id).values_list("user_id", flat=True))
        for transition in transitions:
            if transition.name in ("enrol", "refuse"):
                assert transition.actor_id in animators
        if case.state in (CaseState.DIAGNOSED, CaseState.ACTIVE, CaseState.FOLLOW_UP, CaseState.CLOSED):
            assert case.needs.exists()
    assert Intervention.objects.filter(status="done").exclude(outcome="").count() == (
        Intervention.objects.filter(status="done").count()
    )
    assert set(Intervention.objects.values_list("status", flat=True)) == {"planned", "done", "cancelled"}


def test_seed_demo_respects_the_site_caps(demo):
    for site in PilotSite.objects.all():
        assert site.cases.filter(state__in=ENROLLED_CASE_STATES).count() <= site.enrolment_cap


def test_seed_demo_toolbox_covers_every_category(demo):
    for category in ToolboxCategory.values:
        assert ToolboxService.objects.filter(category=category, is_active=True).exists(), category
    assert not ToolboxService.objects.filter(territories__isnull=True).exists()


def test_seed_demo_accounts_cover_every_role(demo):
    accounts = demo_accounts()
    assert {role for account in accounts for role in account.roles} == {
        "admin",
        "referent",
        "agent",
        "cdet",
        "dtoe",
        "observer",
    }
    assert any(len(account.roles) >= 2 for account in accounts)
    for account in accounts:
        user = User.objects.get(username=account.username)
        roles = rules.user_roles(user)
        assert user.check_password(DEMO_PASSWORD)
        assert user.accepted_charter_version == ""  # the demo shows the charter at first login
        assert user.is_platform_admin == ("admin" in account.roles)
        assert roles.is_referent == ("referent" in account.roles)
        assert (roles.organisation_ids != roles.referent_organisation_ids) == ("agent" in account.roles)
        assert roles.is_observer == ("observer" in account.roles)
        assert set(SiteAnimator.objects.filter(user=user).values_list("role", flat=True)) == (
            {"cdet", "dtoe"} & set(account.roles)
        )
        assert account.username in demo
    assert f"Comptes de démonstration (mot de passe : {DEMO_PASSWORD})" in demo


def test_seed_demo_keeps_passwords_unless_asked(demo):
    user = User.objects.get(username="referente.ancenis@demo.territoires.fr")
    user.set_password("Un-autre-mot-de-passe-2026")
    user.save()

    run("seed_demo")
    user.refresh_from_db()
    assert not user.check_password(DEMO_PASSWORD)

    run("seed_demo", "--reset-passwords")
    user.refresh_from_db()
    assert user.check_password(DEMO_PASSWORD)


def test_accounts_only_prints_the_table_and_creates_nothing():
    output = run("seed_demo", "--accounts-only")

    assert f"Comptes de démonstration (mot de passe : {DEMO_PASSWORD})" in output
    assert "admin@demo.territoires.fr" in output
    assert "multi-roles@demo.territoires.fr" in output
    assert User.objects.count() == 0
    assert PilotSite.objects.count() == 0


def test_seed_demo_in_volume_is_idempotent():
    run("seed_demo", "--companies", "300")
    before = counts()
    assert before["casework.Company"] >= 300
    assert before["casework.Case"] >= 300

    run("seed_demo", "--companies", "300")

    assert counts() == before
    assert all(stdnum_siret.is_valid(siret) for siret in Company.objects.values_list("siret", flat=True))
    assert set(Case.objects.values_list("state", flat=True)) == set(CaseState.values)
    # At least one transition per case, the last one leading to the case's state.
    assert not Case.objects.filter(transitions__isnull=True).exists()
    last_targets = {}
    for case_id, target in CaseTransition.objects.order_by("at", "pk").values_list("case_id", "target"):
        last_targets[case_id] = target
    assert last_targets == dict(Case.objects.values_list("pk", "state"))


def test_seed_demo_refuses_production(settings):
    """Demo accounts share a published password and include a superuser."""
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo", stdout=StringIO())
    assert not User.objects.exists()
