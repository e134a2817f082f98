"""Audit completeness: every transition of a case and every step of a service request, driven the
way it happens in production (a user through the pages, the deadline dispatcher for the timer),
writes exactly the audit entries and the log rows it should, each with the right actor.

Generated from the code: the transitions are read from the case's state machine and the steps
from the flow's nodes, so a new transition or node without a driver here fails the suite.

For each driver, the new entries of the change chain (model, object, action, actor) must equal the
expected list exactly — a second save of the same change would add an entry and fail — and so must
the new `CaseTransition` / `RequestEvent` rows (name or kind, actor).
"""

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from viewflow.workflow.models import Task

from audit.actors import system_actor
from audit.models import AuditEntry
from casework.enums import CaseState
from casework.models import Case, CaseTransition
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services as request_services
from workflows import timers
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import EventKind, RequestEvent
from workflows.selectors import open_task

pytestmark = pytest.mark.django_db

SYSTEM = "system"  # the platform's own account, audit.actors.system_actor()
NOBODY = None  # a timeline row written by the platform has no actor


@pytest.fixture
def w(site, referent, animator):
    transport = OrganisationFactory(name="Plateforme mobilité")
    wimoov = OrganisationFactory(name="Wimoov")
    for provider, days in ((transport, 3), (wimoov, 5)):
        ToolboxServiceFactory(
            category="mobility", provider=provider, territories=[site.territory], response_time_days=days
        )
    agent = UserFactory(username="yann", first_name="Yann", last_name="Bodin")
    MembershipFactory(user=agent, organisation=transport, can_be_referent=False)
    return {"site": site, "referent": referent, "animator": animator, "agent": agent, "transport": transport}


def post(user, url, data=None):
    client = Client()
    client.force_login(user)
    response = client.post(url, data or {})
    assert response.status_code == 302, response.status_code
    return response


def diagnosed_case(w):
    case = CaseFactory(site=w["site"], referent=w["referent"], diagnosed=True)
    NeedFactory(case=case, created_by=w["referent"], category="mobility")
    return case


def open_request(w, category="mobility"):
    case = diagnosed_case(w)
    return request_services.request_open(
        actor=w["referent"], case=case, need=case.needs.get(), brief="Mobilité", category=category
    )


def act(user, request, name, data=None):
    return post(user, reverse("request_action", kwargs={"public_id": request.public_id, "name": name}), data)


def _task(request, node):
    return open_task(request, node).pk


def at_review_claimed(w):
    request = open_request(w)
    request_services.task_claim(actor=w["agent"], task_id=_task(request, FLOW.review))
    return request


def at_deliver(w):
    request = at_review_claimed(w)
    request_services.request_accept(actor=w["agent"], task_id=_task(request, FLOW.review))
    return request


def at_validate(w):
    request = at_deliver(w)
    request_services.request_deliver(
        actor=w["agent"], task_id=_task(request, FLOW.deliver), result_text="Fait"
    )
    return request


# --- Drivers ------------------------------------------------------------------------------------------

C, U = AuditEntry.Action.CREATE, AuditEntry.Action.UPDATE


@dataclass
class Driver:
    """One step as it happens in production. `setup` builds what it acts on and returns it (a dict);
    `run` does the step; `expect` says, after the step, what it must have written:
    audit: [(object, action, actor)] and transitions: [(name, actor)]; `events` lists the timeline
    rows: [(kind, actor)]. Actors are keys of the world, SYSTEM or NOBODY."""

    setup: Callable
    run: Callable
    expect: Callable
    nodes: frozenset = frozenset()  # flow nodes this step runs
    transition: tuple | None = None  # (name, source) of the case's state machine
    events: tuple = ()  # the request's timeline rows it writes: (kind, actor)


# Who may take each transition through the page.
TRANSITION_ACTORS = {
    "enrol": "animator",
    "refuse": "animator",
    "diagnose": "referent",
    "activate": "referent",
    "follow_up": "referent",
    "close": "animator",
    "withdraw": "referent",
}


def transition_driver(name, source):
    actor = TRANSITION_ACTORS[name]

    def setup(w):
        case = CaseFactory(site=w["site"], referent=w["referent"], state=source, consent=True)
        NeedFactory(case=case, created_by=w["referent"])
        return {"case": case}

    def run(w, ctx):
        post(
            w[actor],
            reverse("case_transition", kwargs={"public_id": ctx["case"].public_id, "name": name}),
            {f"{name}-expected_state": source, f"{name}-reason": "Motif", f"{name}-outcome": "needs_met"},
        )
        ctx["case"].refresh_from_db()
        assert ctx["case"].state != source, f"{name} from {source} was refused"

    def expect(w, ctx):
        return {"audit": [(ctx["case"], U, actor)], "transitions": [(name, actor)]}

    return Driver(setup, run, expect, transition=(name, source))


def request_of(case):
    return case.requests.get()


def open_driver(category):
    def setup(w):
        case = CaseFactory(site=w["site"], referent=w["referent"], active=True)
        NeedFactory(case=case, created_by=w["referent"], category=category)
        return {"case": case}

    def run(w, ctx):
        case = ctx["case"]
        post(
            w["referent"],
            reverse("request_open", kwargs={"public_id": case.public_id}),
            {"need": case.needs.get().pk, "category": category, "brief": "Trois recrues sans permis"},
        )
        ctx["request"] = request_of(case)

    def expect(w, ctx):
        request = ctx["request"]
        if category == "mobility":  # start creates the request, route gives it to a partner
            return {"audit": [(request, C, "referent"), (request, U, "referent")]}
        # Nobody offers it: the request is created waiting for the animators, routing changes nothing.
        return {"audit": [(request, C, "referent")]}

    events = (("opened", "referent"), ("routed" if category == "mobility" else "unroutable", NOBODY))
    return Driver(setup, run, expect, nodes=frozenset({"start", "route"}), events=events)


def action_driver(setup, name, actor, data=None, audit=(U,), events=(), nodes=(), objects=None):
    """A request action through its page; `audit` lists the actions expected on the request."""

    def run(w, ctx):
        act(w[actor], ctx["request"], name, data(ctx) if callable(data) else data)

    def expect(w, ctx):
        found = [(ctx["request"], action, actor) for action in audit]
        found += [(obj(ctx), action, actor) for obj, action in (objects or [])]
        return {"audit": found}

    return Driver(lambda w: {"request": setup(w)}, run, expect, nodes=frozenset(nodes), events=tuple(events))


def fire_deadline_setup(w):
    request = at_review_claimed(w)
    Task.objects.filter(process_id=request.pk, flow_task_type="TIMER").update(
        scheduled=timezone.now() - datetime.timedelta(minutes=1)
    )
    return {"request": request}


def fire_deadline(w, ctx):
    assert timers.sweep() == 1


def at_dispatch(w):
    return open_request(w, category="childcare")


def with_planned_intervention(w):
    request = at_deliver(w)
    request_services.intervention_plan(
        actor=w["agent"], request=request, kind="meeting", planned_on=datetime.date(2026, 12, 3)
    )
    return request


def escalated(w):
    case = CaseFactory(site=w["site"], referent=w["referent"], active=True)
    request_services.escalation_raise(actor=w["referent"], case=case, text="Bloqué")
    return {"case": case}


def escalation_drivers():
    def raise_setup(w):
        return {"case": CaseFactory(site=w["site"], referent=w["referent"], active=True)}

    def raise_run(w, ctx):
        post(
            w["referent"],
            reverse("escalation_raise", kwargs={"public_id": ctx["case"].public_id}),
            {"text": "Bloqué"},
        )

    def decide_run(w, ctx):
        post(
            w["animator"],
            reverse("escalation_decide", kwargs={"public_id": ctx["case"].public_id}),
            {"decision": "note", "text": "Vu"},
        )

    def escalation(ctx):
        return ctx["case"].escalations.get()

    return {
        "escalation_raise": Driver(
            raise_setup, raise_run, lambda w, ctx: {"audit": [(escalation(ctx), C, "referent")]}
        ),
        "escalation_decide": Driver(
            escalated, decide_run, lambda w, ctx: {"audit": [(escalation(ctx), U, "animator")]}
        ),
    }


def case_drivers():
    """The two rows of the case's log that are not transitions of its state machine."""

    def propose_run(w, ctx):
        post(
            w["referent"],
            reverse("case_propose"),
            {
                "site": w["site"].pk,
                "referent_organisation": w["referent"].memberships.get().organisation_id,
                "siret": "732 829 320 00074",
                "name": "Chaudronnerie Ligérienne",
                "naf_code": "25.62B",
                "size_band": "12",
                "commune": "Ancenis",
                "territory": w["site"].territory_id,
            },
        )
        ctx["case"] = Case.objects.get()

    def handover_setup(w):
        from casework import services as case_services

        case = CaseFactory(site=w["site"], referent=w["referent"], enrolled=True)
        organisation = w["referent"].memberships.get().organisation
        w["colleague"] = UserFactory(username="marc")
        MembershipFactory(user=w["colleague"], organisation=organisation, can_be_referent=True)
        handover = case_services.handover_propose(
            actor=w["referent"], case=case, to_user=w["colleague"], to_organisation=organisation
        )
        return {"case": case, "handover": handover}

    def handover_run(w, ctx):
        post(
            w["colleague"],
            reverse("handover_answer", kwargs={"public_id": ctx["case"].public_id, "action": "accepter"}),
        )

    return {
        "propose": Driver(
            lambda w: {},
            propose_run,
            lambda w, ctx: {
                "audit": [(ctx["case"].company, C, "referent"), (ctx["case"], C, "referent")],
                "transitions": [("propose", "referent")],
            },
        ),
        "handover": Driver(
            handover_setup,
            handover_run,
            lambda w, ctx: {
                # Two objects: the case changes referent, the handover is answered.
                "audit": [(ctx["case"], U, "colleague"), (ctx["handover"], U, "colleague")],
                "transitions": [("handover", "colleague")],
            },
        ),
    }


def _intervention(ctx):
    return ctx["request"].interventions.get()


def _decline(ctx):
    return ctx["request"].declines.get()


FLOW_DRIVERS = {
    "open": open_driver("mobility"),
    "open_unroutable": open_driver("childcare"),
    "claim": action_driver(open_request, "claim", "agent", events=[("claimed", "agent")], nodes=["review"]),
    "release": action_driver(
        at_review_claimed, "release", "agent", events=[("released", "agent")], nodes=["review"]
    ),
    "accept": action_driver(
        at_review_claimed, "accept", "agent", events=[("accepted", "agent")], nodes=["review"]
    ),
    # Declined: the decline is recorded (its own object) and route gives the request to the next partner.
    "decline": action_driver(
        at_review_claimed,
        "decline",
        "agent",
        {"decline-reason": "no_capacity"},
        events=[("declined", "agent"), ("routed", NOBODY)],
        nodes=["review", "route"],
        objects=[(_decline, C)],
    ),
    # The deadline passes: the dispatcher (no user) marks the request overdue for the animators.
    "deadline": Driver(
        fire_deadline_setup,
        fire_deadline,
        lambda w, ctx: {"audit": [(ctx["request"], U, SYSTEM)]},
        nodes=frozenset({"review__timeout", "overdue"}),
        events=(("overdue", NOBODY),),
    ),
    # The animators choose the partner: the request is routed to it (route_to) by their choice.
    "dispatch": action_driver(
        at_dispatch,
        "dispatch",
        "animator",
        lambda ctx: {"dispatch-provider": ctx["transport"]},
        events=[("routed", "animator"), ("assigned", "animator")],
        nodes=["dispatch"],
    ),
    "plan": action_driver(
        at_deliver,
        "plan",
        "agent",
        {"plan-kind": "meeting", "plan-planned_on": "2026-12-03"},
        audit=(),
        events=[("intervention_planned", "agent")],
        objects=[(_intervention, C)],
    ),
    "record": action_driver(
        with_planned_intervention,
        "record",
        "agent",
        lambda ctx: {
            "record-intervention": _intervention(ctx).pk,
            "record-status": "done",
            "record-outcome": "Trois scooters prêtés",
        },
        audit=(),
        events=[("intervention_done", "agent")],
        objects=[(_intervention, U)],
    ),
    "record_cancelled": action_driver(
        with_planned_intervention,
        "record",
        "agent",
        lambda ctx: {"record-intervention": _intervention(ctx).pk, "record-status": "cancelled"},
        audit=(),
        events=[("intervention_cancelled", "agent")],
        objects=[(_intervention, U)],
    ),
    "deliver": action_driver(
        at_deliver,
        "deliver",
        "agent",
        {"deliver-result_text": "Fait"},
        events=[("delivered", "agent")],
        nodes=["deliver"],
    ),
    "send_back": action_driver(
        at_validate,
        "send_back",
        "referent",
        {"validate-comment": "Il manque le bilan"},
        events=[("sent_back", "referent")],
        nodes=["validate"],
    ),
    # Validated: the referent's validation (stage, date); the end node then closes viewflow's
    # process, whose status and end are not audited (they repeat the stage): one entry.
    "validate": action_driver(
        at_validate,
        "validate",
        "referent",
        {"validate-comment": ""},
        events=[("validated", "referent")],
        nodes=["validate", "end"],
    ),
    "cancel": action_driver(
        open_request,
        "cancel",
        "referent",
        {"cancel-reason": "Plus besoin"},
        events=[("cancelled", "referent")],
    ),
}

# Nodes that decide where the flow goes and write nothing.
SILENT_NODES = {
    "check_routed": "If: a provider was found or not",
    "check_validated": "If: validated or sent back",
}

DRIVERS = {
    **{
        f"transition:{t.name}:{t.source}": transition_driver(t.name, t.source)
        for t in Case._meta.get_field("state").get_all_transitions(Case)
    },
    **case_drivers(),
    **FLOW_DRIVERS,
    **escalation_drivers(),
}


def test_every_transition_of_a_case_has_a_driver():
    in_code = {(t.name, t.source) for t in Case._meta.get_field("state").get_all_transitions(Case)}
    assert set(TRANSITION_ACTORS) == {name for name, _ in in_code}, "a transition without its actor here"
    driven = {d.transition for d in DRIVERS.values() if d.transition}
    assert driven == in_code
    assert in_code >= {(name, CaseState.ACTIVE) for name in ("close", "withdraw")}  # the list is real


def test_every_node_of_the_flow_has_a_driver():
    nodes = {node.name for node in FLOW.instance.nodes()}
    driven = set().union(*(d.nodes for d in DRIVERS.values()))
    assert driven.isdisjoint(SILENT_NODES)
    missing = nodes - driven - set(SILENT_NODES)
    assert not missing, f"flow nodes without a driver in tests/test_audit_completeness.py: {sorted(missing)}"
    assert driven | set(SILENT_NODES) == nodes, "drivers name nodes that no longer exist"
    for name in SILENT_NODES:
        assert type(FLOW.instance.node(name)).__name__ == "If", f"{name} is not a decision any more"


def test_every_kind_of_timeline_row_is_driven():
    driven = {kind for driver in DRIVERS.values() for kind, _ in driver.events}
    assert driven == set(EventKind.values)


def _marks():
    last = lambda model: model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0  # noqa: E731
    tasks = dict(Task.objects.values_list("pk", "status"))
    return {
        "audit": last(AuditEntry),
        "event": last(RequestEvent),
        "transition": last(CaseTransition),
        "tasks": tasks,
    }


def _written(since):
    entries = AuditEntry.objects.filter(chain="change", pk__gt=since["audit"]).select_related("content_type")
    return {
        "audit": Counter(
            (e.content_type.model_class()._meta.label, str(e.object_pk), e.action, e.actor_id)
            for e in entries
        ),
        "events": Counter(RequestEvent.objects.filter(pk__gt=since["event"]).values_list("kind", "actor_id")),
        "transitions": Counter(
            CaseTransition.objects.filter(pk__gt=since["transition"]).values_list("name", "actor_id")
        ),
    }


def _nodes_touched(since):
    """Nodes whose task was created or changed status during the step."""
    return {task.flow_task.name for task in Task.objects.all() if since["tasks"].get(task.pk) != task.status}


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_each_step_writes_one_entry_per_change_with_its_actor(name, w):
    driver = DRIVERS[name]
    ctx = driver.setup(w)
    ctx.setdefault("transport", w["transport"].pk)  # the partner the animators choose
    system = system_actor().pk  # before the marks: its creation would be an entry of its own
    since = _marks()
    driver.run(w, ctx)
    expected = driver.expect(w, ctx)
    actors = {
        **{key: value.pk for key, value in w.items() if hasattr(value, "pk")},
        SYSTEM: system,
        NOBODY: None,
    }
    written = _written(since)
    assert written["audit"] == Counter(
        (obj._meta.label, str(obj.pk), action, actors[actor])
        for obj, action, actor in expected.get("audit", [])
    )
    assert written["events"] == Counter((kind, actors[actor]) for kind, actor in driver.events)
    assert written["transitions"] == Counter(
        (transition, actors[actor]) for transition, actor in expected.get("transitions", [])
    )
    assert driver.nodes <= _nodes_touched(since), "the step did not run the nodes it claims"
