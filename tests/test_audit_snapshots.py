"""The "before" of an audited update taken from the locked read of the row (audit.snapshots):
the same entry as auditlog's own read would give, one query less, and never a stale "before"."""

import re

import pytest
from auditlog.context import disable_auditlog
from django.db import connection
from django.test.utils import CaptureQueriesContext
from viewflow.workflow.models import Task

from audit import snapshots
from audit.chain import audited_atomic
from audit.models import AuditEntry
from casework.models import User
from tests.factories import MembershipFactory, OrganisationFactory, UserFactory
from tests.test_claim_race import build_race_world, open_review_task
from workflows import services
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.models import DeclineReason, RequestStatus, ServiceRequest


@pytest.fixture
def request_of(site, referent):
    """A request waiting for the answer of a provider's agents (tests/test_claim_race's world),
    and another provider with an agent, for the animators to dispatch it to."""
    world = build_race_world(site, referent)
    task = open_review_task(world, referent)
    other_provider = OrganisationFactory()
    other_agent = UserFactory()
    MembershipFactory(user=other_agent, organisation=other_provider, can_be_referent=False)
    return {
        "request": ServiceRequest.objects.get(pk=task.process_id),
        "agent": world["agents"][0],
        "other_provider": other_provider,
        "other_agent": other_agent,
    }


def _last_changes(request):
    entry = AuditEntry.objects.filter(object_pk=str(request.pk)).order_by("-seq").first()
    return entry.changes


def _reads_of_the_request(queries):
    return [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and "workflows_servicerequest" in q["sql"]
    ]


def test_a_kept_row_is_the_before_of_its_next_update_without_reading_it_again(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.select_for_update().get(pk=request_of["request"].pk)
        snapshots.keep(request)
        request.stage = RequestStatus.CLAIMED
        with CaptureQueriesContext(connection) as queries:
            request.save(update_fields=["stage"])
    assert _reads_of_the_request(queries) == []
    assert _last_changes(request) == {"stage": ["waiting", "claimed"]}


def test_without_a_kept_row_auditlog_reads_it(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.get(pk=request_of["request"].pk)
        request.stage = RequestStatus.CLAIMED
        with CaptureQueriesContext(connection) as queries:
            request.save(update_fields=["stage"])
    assert len(_reads_of_the_request(queries)) == 1
    assert _last_changes(request) == {"stage": ["waiting", "claimed"]}


def test_a_kept_row_serves_once(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.get(pk=request_of["request"].pk)
        snapshots.keep(request)
        request.stage = RequestStatus.CLAIMED
        request.save(update_fields=["stage"])
        request.stage = RequestStatus.ACCEPTED
        request.save(update_fields=["stage"])
    # The second update's "before" is the first update's result, read again, not the kept row.
    assert _last_changes(request) == {"stage": ["claimed", "accepted"]}


def test_a_save_of_the_row_through_another_instance_uses_the_kept_row_up(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.get(pk=request_of["request"].pk)
        snapshots.keep(request)
        other = ServiceRequest.objects.get(pk=request.pk)
        other.stage = RequestStatus.UNROUTABLE
        with audited_atomic():  # a nested service shares the store
            other.save(update_fields=["stage"])
        assert _last_changes(request) == {"stage": ["waiting", "unroutable"]}
        request.stage = RequestStatus.CLAIMED
        request.save(update_fields=["stage"])
    assert _last_changes(request) == {"stage": ["unroutable", "claimed"]}


def test_a_save_with_auditlog_off_uses_the_kept_row_up(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.get(pk=request_of["request"].pk)
        snapshots.keep(request)
        request.stage = RequestStatus.UNROUTABLE
        with disable_auditlog():
            request.save(update_fields=["stage"])
        request.stage = RequestStatus.CLAIMED
        request.save(update_fields=["stage"])
    # Not the kept "waiting": the row had changed, unlogged, in between.
    assert _last_changes(request) == {"stage": ["unroutable", "claimed"]}


def test_nothing_is_kept_outside_a_service_nor_after_it(request_of):
    request = ServiceRequest.objects.get(pk=request_of["request"].pk)
    snapshots.keep(request)
    assert snapshots.take(request) is None
    with audited_atomic():
        snapshots.keep(request)
    with audited_atomic():
        assert snapshots.take(request) is None


def test_a_kept_json_value_does_not_follow_changes_made_in_place(request_of):
    with audited_atomic():
        request = ServiceRequest.objects.get(pk=request_of["request"].pk)
        request.data = {"notes": ["a"]}
        snapshots.keep(request)
        request.data["notes"].append("b")
        assert snapshots.take(request).data == {"notes": ["a"]}


def _moment(value):
    """A date written by the step itself differs from one run to the next: only its presence counts."""
    return "<moment>" if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\d [\d:.]+", value) else value


@pytest.mark.django_db(transaction=True)
def test_each_request_step_writes_the_entries_auditlogs_own_read_would(request_of, animator, monkeypatch):
    """Every step of a request's life through the services that keep the locked read — claim,
    decline (re-routing saves the whole row, its JSON data changed in place), dispatch by the
    animators, claim and accept by the other partner, delivery, validation — writes the same
    changes as with auditlog reading the row itself."""
    opened = request_of["request"]
    referent = User.objects.get(pk=opened.opened_by_id)
    agent = User.objects.get(pk=request_of["agent"].pk)
    other_agent = User.objects.get(pk=request_of["other_agent"].pk)

    def task_of(request, node):
        return Task.objects.filter(process_id=request.pk, flow_task=node).order_by("-pk").first().pk

    def run():
        request = services.request_open(
            actor=referent, case=opened.case, need=opened.need, service=opened.service, brief="Bis"
        )
        services.task_claim(actor=agent, task_id=task_of(request, FLOW.review))
        services.request_decline(
            actor=agent, task_id=task_of(request, FLOW.review), reason=DeclineReason.NO_CAPACITY
        )
        dispatch = task_of(request, FLOW.dispatch)
        services.request_dispatch(actor=animator, task_id=dispatch, provider=request_of["other_provider"])
        services.task_claim(actor=other_agent, task_id=task_of(request, FLOW.review))
        services.request_accept(actor=other_agent, task_id=task_of(request, FLOW.review))
        delivery = task_of(request, FLOW.deliver)
        services.request_deliver(actor=other_agent, task_id=delivery, result_text="Fait")
        services.request_validate(actor=referent, task_id=task_of(request, FLOW.validate), accept=True)
        assert ServiceRequest.objects.get(pk=request.pk).stage == RequestStatus.CLOSED
        entries = AuditEntry.objects.filter(object_pk=str(request.pk), action=AuditEntry.Action.UPDATE)
        return [
            {field: [_moment(value) for value in change] for field, change in entry.changes.items()}
            for entry in entries.order_by("seq")
        ]

    kept = run()
    monkeypatch.setattr(snapshots, "keep", lambda instance: None)
    read = run()
    assert kept == read
    assert len(kept) >= 7 and {"accepted_by", "accepted_at"} <= set().union(*kept)
