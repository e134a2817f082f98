"""The service request flow, driven through the services as the users' actions would."""

import datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from casework import rules
from casework.enums import CaseState, NeedStatus
from casework.exceptions import BusinessRuleError, NotAllowedError, StaleStateError
from casework.models import Case
from notifications.models import Notification
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import DeclineReason, EventKind, RequestEvent, RequestStatus

pytestmark = pytest.mark.django_db


def agent_of(organisation, **kwargs):
    user = UserFactory(**kwargs)
    MembershipFactory(user=user, organisation=organisation, can_be_referent=False)
    return user


@pytest.fixture
def world(site, referent, animator):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    transport = OrganisationFactory(name="Plateforme mobilité")
    other_transport = OrganisationFactory(name="Wimoov")
    ToolboxServiceFactory(
        name="Location de scooters",
        category="mobility",
        provider=transport,
        territories=[site.territory],
        response_time_days=3,
    )
    ToolboxServiceFactory(
        name="Covoiturage",
        category="mobility",
        provider=other_transport,
        territories=[site.territory],
        response_time_days=5,
    )
    return {
        "case": case,
        "need": need,
        "transport": transport,
        "other_transport": other_transport,
        "agent": agent_of(transport, first_name="Yann", last_name="Bodin"),
        "colleague": agent_of(transport, first_name="Lise", last_name="Morin"),
        "other_agent": agent_of(other_transport),
    }


def open_request(world, referent, **kwargs):
    return services.request_open(
        actor=referent,
        case=world["case"],
        need=world["need"],
        brief="Mobilité pour 3 recrues",
        **kwargs,
        **({} if "service" in kwargs else {"category": "mobility"}),
    )


def task_of(request, node, status=None):
    tasks = Task.objects.filter(process_id=request.pk, flow_task=node)
    if status is not None:
        tasks = tasks.filter(status=status)
    return tasks.order_by("-pk").first()


def kinds(request):
    return list(request.events.values_list("kind", flat=True))


def test_full_path_from_opening_to_validation(world, referent):
    request = open_request(world, referent)
    # Routed to one of the two transport organisations (the least loaded, then by name).
    assert request.provider == world["transport"] and request.stage == RequestStatus.WAITING
    assert request.deadline is not None
    world["case"].refresh_from_db()
    assert world["case"].state == CaseState.ACTIVE  # the first request starts the support
    world["need"].refresh_from_db()
    assert world["need"].status == NeedStatus.IN_PROGRESS
    # The provider's agents are told; the referent is not notified of their own action.
    assert set(
        Notification.objects.filter(event_type="request_routed").values_list("recipient", flat=True)
    ) == {world["agent"].pk, world["colleague"].pk}

    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    services.request_accept(actor=world["agent"], task_id=review.pk)
    request.refresh_from_db()
    assert request.stage == RequestStatus.ACCEPTED and request.accepted_by == world["agent"]

    intervention = services.intervention_plan(
        actor=world["agent"], request=request, kind="meeting", planned_on=datetime.date(2026, 12, 3)
    )
    with pytest.raises(BusinessRuleError):  # planned interventions must be recorded first
        services.request_deliver(
            actor=world["agent"], task_id=task_of(request, FLOW.deliver).pk, result_text="x"
        )
    services.intervention_record(
        actor=world["agent"], intervention=intervention, status="done", outcome="3 scooters"
    )
    services.request_deliver(
        actor=world["agent"],
        task_id=task_of(request, FLOW.deliver).pk,
        result_text="3 scooters prêtés",
        hires=3,
    )
    request.refresh_from_db()
    assert request.stage == RequestStatus.DELIVERED and request.result_hires == 3

    services.request_validate(actor=referent, task_id=task_of(request, FLOW.validate).pk, accept=True)
    request.refresh_from_db()
    assert request.stage == RequestStatus.CLOSED and request.status == "DONE"
    world["need"].refresh_from_db()
    assert world["need"].status == NeedStatus.MET
    assert kinds(request) == [
        EventKind.OPENED,
        EventKind.ROUTED,
        EventKind.CLAIMED,
        EventKind.ACCEPTED,
        EventKind.INTERVENTION_PLANNED,
        EventKind.INTERVENTION_DONE,
        EventKind.DELIVERED,
        EventKind.VALIDATED,
    ]


def test_decline_reroutes_to_the_next_provider_and_the_decliner_loses_sight(world, referent):
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    assert Case.objects.visible_to(world["agent"]).filter(pk=world["case"].pk).exists()
    services.request_decline(actor=world["agent"], task_id=review.pk, reason="no_capacity")
    request.refresh_from_db()
    assert request.provider == world["other_transport"] and request.stage == RequestStatus.WAITING
    rules.forget_roles(world["agent"])
    assert not Case.objects.visible_to(world["agent"]).filter(pk=world["case"].pk).exists()
    assert Case.objects.visible_to(world["other_agent"]).filter(pk=world["case"].pk).exists()
    # Accepting the old task after the decline is refused, nothing changes.
    with pytest.raises(StaleStateError):
        services.request_accept(actor=world["agent"], task_id=review.pk)


def test_decline_to_the_suggested_organisation(world, referent, site):
    third = OrganisationFactory(name="AAA Transports")  # first by name, but suggested explicitly
    ToolboxServiceFactory(category="mobility", provider=third, territories=[site.territory])
    request = open_request(world, referent)
    assert request.provider == third
    review = task_of(request, FLOW.review)
    agent = agent_of(third)
    services.task_claim(actor=agent, task_id=review.pk)
    services.request_decline(
        actor=agent,
        task_id=review.pk,
        reason="other",
        reason_text="Hors zone",
        suggested_organisation=world["other_transport"],
    )
    request.refresh_from_db()
    assert request.provider == world["other_transport"]


def test_no_provider_left_goes_to_the_animators(world, referent, animator):
    request = open_request(world, referent)
    for _ in range(2):
        review = task_of(request, FLOW.review, STATUS.NEW)
        request.refresh_from_db()
        agent = world["agent"] if request.provider == world["transport"] else world["other_agent"]
        services.task_claim(actor=agent, task_id=review.pk)
        services.request_decline(actor=agent, task_id=review.pk, reason="out_of_scope")
    request.refresh_from_db()
    assert request.stage == RequestStatus.UNROUTABLE and request.provider is None
    dispatch = task_of(request, FLOW.dispatch)
    assert Notification.objects.filter(recipient=animator, event_type="request_unroutable").exists()
    chosen = OrganisationFactory(name="Garage solidaire")
    services.request_dispatch(actor=animator, task_id=dispatch.pk, provider=chosen)
    request.refresh_from_db()
    assert request.provider == chosen and request.stage == RequestStatus.WAITING
    assert task_of(request, FLOW.review, STATUS.NEW) is not None


def test_unanswered_request_escalates_at_its_deadline(world, referent, animator):
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    call_command("workflow_timers")  # not due yet: nothing happens
    request.refresh_from_db()
    assert not request.overdue
    Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(
        scheduled=timezone.now() - datetime.timedelta(minutes=1)
    )
    call_command("workflow_timers")
    request.refresh_from_db()
    assert request.overdue and request.stage == RequestStatus.UNROUTABLE
    assert task_of(request, FLOW.review).status == STATUS.CANCELED
    assert task_of(request, FLOW.dispatch).status == STATUS.NEW
    told = set(Notification.objects.filter(event_type="request_overdue").values_list("recipient", flat=True))
    assert {referent.pk, animator.pk, world["agent"].pk, world["colleague"].pk} <= told
    # The agent who was too late cannot accept any more.
    with pytest.raises(StaleStateError):
        services.request_accept(actor=world["agent"], task_id=review.pk)


@pytest.mark.parametrize("answer", ["accept", "decline"])
def test_an_answered_request_never_goes_overdue(world, referent, answer):
    """Answering the review cancels its deadline timer (workflows.flows.ResponseDeadline): once the
    deadline has passed, the timers find nothing to fire on that answer."""
    assert FLOW.review._boundary_events == [FLOW.review__timeout]  # one deadline, ours
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    if answer == "accept":
        services.request_accept(actor=world["agent"], task_id=review.pk)
    else:
        services.request_decline(actor=world["agent"], task_id=review.pk, reason=DeclineReason.NO_CAPACITY)
    answered_timer = Task.objects.get(process_id=request.pk, flow_task=FLOW.review__timeout, previous=review)
    assert answered_timer.status == STATUS.CANCELED and answered_timer.finished is not None
    Task.objects.filter(pk=answered_timer.pk).update(scheduled=timezone.now() - datetime.timedelta(minutes=1))
    call_command("workflow_timers")
    request.refresh_from_db()
    assert not request.overdue
    assert not RequestEvent.objects.filter(request=request, kind=EventKind.OVERDUE).exists()


def test_claim_rights_and_second_claim_reads_who_took_it(world, referent, animator):
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    with pytest.raises(NotAllowedError):
        services.task_claim(actor=world["other_agent"], task_id=review.pk)
    with pytest.raises(NotAllowedError):
        services.task_claim(actor=animator, task_id=review.pk)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    with pytest.raises(services.TaskTakenError, match="Yann Bodin"):
        services.task_claim(actor=world["colleague"], task_id=review.pk)
    with pytest.raises(services.TaskTakenError):
        services.request_accept(actor=world["colleague"], task_id=review.pk)
    services.task_release(actor=world["agent"], task_id=review.pk)
    services.task_claim(actor=world["colleague"], task_id=review.pk)


def test_double_accept_is_refused(world, referent):
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    services.request_accept(actor=world["agent"], task_id=review.pk)
    with pytest.raises(StaleStateError):
        services.request_accept(actor=world["agent"], task_id=review.pk)
    assert request.events.filter(kind=EventKind.ACCEPTED).count() == 1


def test_send_back_returns_to_delivery(world, referent):
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    services.request_accept(actor=world["agent"], task_id=review.pk)
    services.request_deliver(
        actor=world["agent"], task_id=task_of(request, FLOW.deliver).pk, result_text="Fait"
    )
    with pytest.raises(BusinessRuleError):
        services.request_validate(actor=referent, task_id=task_of(request, FLOW.validate).pk, accept=False)
    services.request_validate(
        actor=referent, task_id=task_of(request, FLOW.validate).pk, accept=False, comment="Il manque le devis"
    )
    request.refresh_from_db()
    assert request.stage == RequestStatus.ACCEPTED
    assert task_of(request, FLOW.deliver, STATUS.ASSIGNED).owner == world["agent"]


def test_referent_cancels_an_open_request(world, referent):
    request = open_request(world, referent)
    with pytest.raises(BusinessRuleError):
        services.request_cancel(actor=referent, request=request, reason=" ")
    services.request_cancel(actor=referent, request=request, reason="L'entreprise a trouvé une solution")
    request.refresh_from_db()
    assert request.stage == RequestStatus.CANCELLED and request.status == "CANCELED"
    assert not Task.objects.filter(process_id=request.pk, status__in=[STATUS.NEW, STATUS.ASSIGNED]).exists()
    with pytest.raises(StaleStateError):
        services.request_cancel(actor=referent, request=request, reason="again")


def test_only_the_referent_opens_and_only_in_the_right_states(world, referent, animator, site):
    with pytest.raises(NotAllowedError):
        services.request_open(
            actor=animator, case=world["case"], need=world["need"], brief="x", category="mobility"
        )
    proposed = CaseFactory(site=site, referent=referent)
    need = NeedFactory(case=proposed, created_by=referent)
    with pytest.raises(BusinessRuleError):
        services.request_open(actor=referent, case=proposed, need=need, brief="x", category="mobility")
    with pytest.raises(BusinessRuleError):
        services.request_open(
            actor=referent, case=world["case"], need=world["need"], brief="  ", category="mobility"
        )
    with pytest.raises(BusinessRuleError):
        services.request_open(
            actor=referent, case=world["case"], need=world["need"], brief="x", category="rockets"
        )


def test_run_timers_once_escalates_like_workflow_timers(world, referent):
    """The dispatcher that production runs (`manage.py run_timers`) fires the same deadlines."""
    request = open_request(world, referent)
    Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(
        scheduled=timezone.now() - datetime.timedelta(seconds=1)
    )
    out = StringIO()
    call_command("run_timers", "--once", stdout=out)
    request.refresh_from_db()
    assert request.overdue and "1 minuterie" in out.getvalue()


def test_stored_answer_gateways_are_removed_and_their_links_kept(world, referent):
    """Migration 0007: requests answered before the review chose its next node itself kept a
    `check_answer` gateway task between the review and what followed; it is removed and what
    followed is linked to the review, so that every stored task names a node of the flow."""
    import importlib
    from types import SimpleNamespace

    from django.db import connection

    migration = importlib.import_module("workflows.migrations.0007_review_answer_without_gate")
    request = open_request(world, referent)
    review = task_of(request, FLOW.review)
    services.task_claim(actor=world["agent"], task_id=review.pk)
    services.request_accept(actor=world["agent"], task_id=review.pk)
    deliver = task_of(request, FLOW.deliver)
    links = Task.previous.through
    with connection.cursor() as cursor:  # the shape the old flow stored: review <- gate <- deliver
        cursor.execute(
            "INSERT INTO viewflow_task (flow_task, flow_task_type, status, created, token, process_id, data)"
            " VALUES (%s, 'EXCLUSIVE_GATEWAY', 'DONE', %s, 'start', %s, '{}')",
            [migration.GATE, timezone.now(), request.pk],
        )
        cursor.execute("SELECT id FROM viewflow_task WHERE flow_task = %s", [migration.GATE])
        (gate_id,) = cursor.fetchone()
    links.objects.filter(from_task_id=deliver.pk).update(to_task_id=gate_id)
    links.objects.create(from_task_id=gate_id, to_task_id=review.pk)

    migration.remove_answer_gates(None, SimpleNamespace(connection=connection))

    assert list(Task.objects.get(pk=deliver.pk).previous.values_list("pk", flat=True)) == [review.pk]
    assert not links.objects.filter(from_task_id=gate_id).exists()
    assert not links.objects.filter(to_task_id=gate_id).exists()
    assert set(Task.objects.filter(process_id=request.pk).values_list("flow_task", flat=True)) <= {
        node for node in FLOW.instance.nodes()
    }
