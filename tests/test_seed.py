"""The seed commands: the pilot geography (seed_region) and the demonstration data (seed_demo)."""

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Count, F
from django.test import override_settings
from django.utils import timezone
from stdnum.fr import siret as stdnum_siret
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from casework import rules
from casework.enums import ENROLLED_CASE_STATES, CaseState, InterventionStatus, ToolboxCategory
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
from cockpit.models import ReviewEntry, ReviewItem, ReviewSchedule, WeeklyReview
from notifications.models import Notification
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import (
    OPEN_REQUEST_STATUSES,
    EventKind,
    RequestDecline,
    RequestEvent,
    RequestStatus,
    ServiceRequest,
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
    ServiceRequest,
    RequestEvent,
    RequestDecline,
    Task,
    Notification,
    WeeklyReview,
    ReviewItem,
    ReviewEntry,
    ReviewSchedule,
]


def run(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def counts():
    return {model._meta.label: model.objects.count() for model in COUNTED}


@pytest.fixture(scope="class")
def demo(django_db_setup, django_db_blocker):
    """The default demonstration data set (60 companies), seeded once for the tests of a class, in a
    transaction rolled back after the last one. Each test runs in a savepoint of its own (the
    django_db marker): what a test changes is undone before the next one. The fast hasher of the
    tests (conftest) applies per test: it is set here for the seeding too."""
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]),
        transaction.atomic(),
    ):
        yield run("seed_demo")
        transaction.set_rollback(True)


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

SUPPORT_STATES = (CaseState.ACTIVE, CaseState.FOLLOW_UP, CaseState.CLOSED)


def due_timers():
    return Task.objects.filter(flow_task_type="TIMER", status=STATUS.SCHEDULED, scheduled__lte=timezone.now())


class TestDemo:
    """The default demonstration data set (the `demo` fixture: seeded once for the class)."""

    def test_seed_demo_is_idempotent(self, demo):
        before = counts()
        assert before["casework.Company"] == 60
        assert before["casework.Case"] == 60

        run("seed_demo")

        assert counts() == before

    def test_seed_demo_holds_last_weeks_review_on_every_site(self, demo):
        for site in PilotSite.objects.all():
            weekly = WeeklyReview.objects.get(site=site)
            assert weekly.status == "closed" and "Compte rendu" in weekly.minutes, site.slug
            this_monday = timezone.localdate() - datetime.timedelta(days=timezone.localdate().weekday())
            assert weekly.week < this_monday
            action = ReviewEntry.objects.get(item__review=weekly, kind="action")
            # The action item is the task of the case's referent, who can see it.
            assert action.owner == action.item.case.referent and action.done_at is None
            assert site.review_schedule.video_link.startswith("https://")

    def test_seed_demo_has_cases_in_every_state(self, demo):
        per_state = dict(Case.objects.order_by().values_list("state").annotate(n=Count("pk")))
        assert set(per_state) == set(CaseState.values)
        # Every pilot site shows the whole life cycle.
        for site in PilotSite.objects.all():
            assert set(site.cases.values_list("state", flat=True)) == set(CaseState.values), site.slug

    def test_seed_demo_companies_have_valid_sirets(self, demo):
        sirets = list(Company.objects.values_list("siret", flat=True))
        assert sirets
        assert all(stdnum_siret.is_valid(siret) for siret in sirets)
        assert not any(siret.startswith("356000000") for siret in sirets)
        assert CompanyContact.objects.count() == Company.objects.count()

    def test_seed_demo_cases_have_a_referent_allowed_on_their_site(self, demo):
        for case in Case.objects.select_related("referent", "referent_organisation"):
            referent = User.objects.get(pk=case.referent_id)  # fresh instance: roles are cached per user
            assert Membership.objects.filter(
                user=referent, organisation=case.referent_organisation, can_be_referent=True, is_active=True
            ).exists()
            assert PilotSite.objects.filter(
                rules.sites_open_to_referent_q(referent), pk=case.site_id
            ).exists()

    def test_seed_demo_cases_went_through_the_state_machine(self, demo):
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

    def test_seed_demo_respects_the_site_caps(self, demo):
        for site in PilotSite.objects.all():
            assert site.cases.filter(state__in=ENROLLED_CASE_STATES).count() <= site.enrolment_cap

    def test_seed_demo_toolbox_covers_every_category(self, demo):
        for category in ToolboxCategory.values:
            assert ToolboxService.objects.filter(category=category, is_active=True).exists(), category
        assert not ToolboxService.objects.filter(territories__isnull=True).exists()

    def test_seed_demo_has_requests_in_every_stage(self, demo):
        per_stage = dict(ServiceRequest.objects.order_by().values_list("stage").annotate(n=Count("pk")))
        assert set(per_stage) == set(RequestStatus.values)
        assert "demandes par étape" in demo
        # Declined then re-routed to another partner; declined by every partner, waiting for the animators.
        assert ServiceRequest.objects.filter(declines__suggested_organisation=F("provider")).exists()
        unroutable = ServiceRequest.objects.filter(stage=RequestStatus.UNROUTABLE)
        assert unroutable.filter(declines__isnull=False).exists()
        for request in unroutable:
            assert request.provider_id is None
            assert Task.objects.filter(
                process_id=request.pk, flow_task=FLOW.dispatch, status=STATUS.NEW
            ).exists()
        # Accepted with interventions planned; delivered and validated with results.
        assert Intervention.objects.filter(
            service_request__stage=RequestStatus.ACCEPTED, status=InterventionStatus.PLANNED
        ).exists()
        closed = ServiceRequest.objects.filter(stage=RequestStatus.CLOSED)
        assert closed.filter(result_hires__gt=0).exists()
        assert closed.filter(result_trainings__gt=0).exists()
        assert closed.filter(result_candidates__gt=0).exists()
        assert not closed.filter(result_text="").exists()
        # Some requests in a queue have a response deadline within a few days.
        now = timezone.now()
        assert ServiceRequest.objects.filter(
            stage=RequestStatus.WAITING, deadline__gt=now, deadline__lte=now + datetime.timedelta(days=4)
        ).exists()

    def test_seed_demo_requests_follow_the_business_rules(self, demo):
        assert not ServiceRequest.objects.exclude(case__state__in=SUPPORT_STATES).exists()
        # A case in follow-up or closed has no open request.
        assert not ServiceRequest.objects.filter(
            case__state__in=(CaseState.FOLLOW_UP, CaseState.CLOSED), stage__in=OPEN_REQUEST_STATUSES
        ).exists()
        requests = ServiceRequest.objects.select_related("case__company", "need", "provider")
        for request in requests:
            case = request.case
            assert request.need.case_id == case.pk and request.need.category == request.category
            # A category offered by a partner in the company's territory.
            assert ToolboxService.objects.filter(
                category=request.category, territories=case.company.territory_id, is_active=True
            ).exists(), request.pk
            if request.provider_id is not None:
                assert Membership.objects.filter(
                    organisation_id=request.provider_id, is_active=True, user__is_active=True
                ).exists(), request.provider
            # Each step was taken by someone entitled to it.
            for event in request.events.all():
                if event.kind in (
                    EventKind.OPENED,
                    EventKind.VALIDATED,
                    EventKind.SENT_BACK,
                    EventKind.CANCELLED,
                ):
                    assert event.actor_id == case.referent_id, (request.pk, event.kind)
                elif event.kind in (
                    EventKind.CLAIMED,
                    EventKind.ACCEPTED,
                    EventKind.DECLINED,
                    EventKind.INTERVENTION_PLANNED,
                    EventKind.INTERVENTION_DONE,
                    EventKind.DELIVERED,
                ):
                    assert Membership.objects.filter(
                        user_id=event.actor_id, organisation_id=event.organisation_id, is_active=True
                    ).exists(), (request.pk, event.kind)
        # Every partner of the toolbox has someone to answer its requests.
        for organisation in Organisation.objects.filter(services__isnull=False).distinct():
            assert Membership.objects.filter(
                organisation=organisation, is_active=True, user__is_active=True
            ).exists(), organisation

    def test_seed_demo_request_history_is_in_order(self, demo):
        now = timezone.now()
        for request in ServiceRequest.objects.select_related("case"):
            stamps = [
                moment
                for moment in (
                    request.opened_at,
                    request.routed_at,
                    request.accepted_at,
                    request.delivered_at,
                    request.validated_at,
                )
                if moment is not None
            ]
            assert stamps == sorted(stamps) and stamps[-1] < now, request.pk
            events = list(request.events.all())  # the timeline, by moment
            assert events[0].kind == EventKind.OPENED, request.pk
            # The steps were written in this order (but the routing of the opening, written just before it).
            moments = [
                event.at for event in sorted(events, key=lambda event: event.pk) if event.pk > events[0].pk
            ]
            assert moments == sorted(moments) and all(moment >= events[0].at for moment in moments), (
                request.pk
            )
            moments = [events[0].at, *moments]
            # Within the support: after its start (the first request), before the case moved on.
            transitions = {transition.name: transition.at for transition in request.case.transitions.all()}
            assert transitions["activate"] <= moments[0]
            for name in ("follow_up", "close"):
                if name in transitions:
                    assert moments[-1] < transitions[name], (request.pk, name)
            # The timer of a request in a queue fires at its response deadline.
            timers = Task.objects.filter(
                process_id=request.pk, flow_task_type="TIMER", status=STATUS.SCHEDULED
            )
            if request.stage in (RequestStatus.WAITING, RequestStatus.CLAIMED):
                assert list(timers.values_list("scheduled", flat=True)) == [request.deadline]
            else:
                assert not timers.exists()
            for intervention in request.interventions.all():
                if intervention.status == InterventionStatus.PLANNED:
                    assert intervention.planned_on > timezone.localdate(now)
                else:
                    assert intervention.planned_on <= timezone.localdate(now)
        assert not Notification.objects.filter(created_at__gt=now).exists()

    def test_seed_demo_overdue_requests_escalate_at_the_next_timer_sweep(self, demo):
        overdue = set(due_timers().values_list("process_id", flat=True))
        assert overdue
        assert (
            set(
                ServiceRequest.objects.filter(
                    stage__in=(RequestStatus.WAITING, RequestStatus.CLAIMED), deadline__lte=timezone.now()
                ).values_list("pk", flat=True)
            )
            == overdue
        )

        call_command("workflow_timers", stdout=StringIO())

        assert not due_timers().exists()
        for request in ServiceRequest.objects.filter(pk__in=overdue):
            assert request.stage == RequestStatus.UNROUTABLE and request.overdue, request.pk
            assert request.events.filter(kind=EventKind.OVERDUE).exists()

    def test_seed_demo_accounts_cover_every_role(self, demo):
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

    def test_seed_demo_keeps_passwords_unless_asked(self, demo):
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
