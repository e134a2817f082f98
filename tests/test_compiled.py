"""Statements compiled once per database with stand-in ids (workflows.compiled), and the flow lock
taken from a task's id (workflows.flows.lock_request_of_task): the same rows and instances as the
ORM's own queryset, each call with its own ids, and a loud failure rather than a wrong statement."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from audit.chain import audited_atomic
from tests.factories import (
    CaseFactory,
    MembershipFactory,
    NeedFactory,
    OrganisationFactory,
    ToolboxServiceFactory,
    UserFactory,
)
from workflows import services
from workflows.compiled import CompiledRead
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.flows import lock_request_of_task
from workflows.models import ServiceRequest


def _review_task(site, referent, company_name):
    case = CaseFactory(site=site, referent=referent, diagnosed=True, company__name=company_name)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name=f"Mobilité de {company_name}")
    service = ToolboxServiceFactory(
        category="mobility", provider=provider, territories=[site.territory], response_time_days=3
    )
    agent = UserFactory()
    MembershipFactory(user=agent, organisation=provider, can_be_referent=False)
    request = services.request_open(actor=referent, case=case, need=need, service=service, brief="Scooters")
    return Task.objects.get(process_id=request.pk, flow_task=FLOW.review, status=STATUS.NEW)


FIELDS = [field.attname for field in Task._meta.concrete_fields]


def _step_values(task):
    """What a step reads of its task: every column, and its request's related objects."""
    request = task.process.servicerequest
    return (
        [getattr(task, name) for name in FIELDS],
        request.pk,
        request.stage,
        request.case.company.name,
        request.case.referent.email,
        request.provider.name,
    )


def test_a_compiled_read_gives_the_querysets_instances_with_each_calls_ids(site, referent):
    first = _review_task(site, referent, "Chaudronnerie Loire")
    second = _review_task(site, referent, "Menuiserie Sèvre")
    compiled = services._STEP_TASK
    for task in (first, second, first):
        expected = Task.objects.select_related(*services.STEP_RELATED).get(pk=task.pk)
        with CaptureQueriesContext(connection) as queries:
            (read,) = compiled(task=task.pk)
            values = _step_values(read)  # the related objects came with the task: no query
        assert len(queries) == 1
        assert values == _step_values(expected)
    assert compiled(task=-1) == []


def test_a_compiled_read_runs_the_orms_statement(site, referent):
    task = _review_task(site, referent, "Chaudronnerie Loire")
    with CaptureQueriesContext(connection) as compiled:
        services._STEP_TASK(task=task.pk)
    with CaptureQueriesContext(connection) as orm:
        list(Task.objects.select_related(*services.STEP_RELATED).filter(pk=task.pk).order_by())
    assert compiled[0]["sql"] == orm[0]["sql"]


def test_a_stand_in_missing_or_repeated_fails_loudly(site, referent):
    task = _review_task(site, referent, "Chaudronnerie Loire")
    ignored = CompiledRead(lambda task: Task.objects.filter(pk=1), "task")
    with pytest.raises(RuntimeError, match="holds"):
        ignored(task=task.pk)
    twice = CompiledRead(lambda task: Task.objects.filter(pk=task, process_id__gt=task), "task")
    with pytest.raises(RuntimeError, match="holds"):
        twice(task=task.pk)
    with pytest.raises(TypeError):
        services._STEP_TASK(other=task.pk)


@pytest.mark.django_db(transaction=True)
def test_the_flow_lock_is_found_from_the_task_and_held_until_the_end_of_the_service(site, referent):
    task = _review_task(site, referent, "Chaudronnerie Loire")
    with pytest.raises(RuntimeError):
        lock_request_of_task(task.pk)  # outside a service: no chain lock taken first
    with audited_atomic():
        assert lock_request_of_task(task.pk) == task.process_id
        assert lock_request_of_task(-1) is None
        if connection.vendor == "postgresql":
            _assert_locked_for_others(task.process_id)
    assert ServiceRequest.objects.filter(pk=task.process_id).exists()


def _assert_locked_for_others(request_id):
    import psycopg
    from psycopg import errors

    settings = connection.settings_dict
    other = psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        host=settings["HOST"] or None,
        port=settings["PORT"] or None,
        password=settings["PASSWORD"] or None,
        autocommit=True,
    )
    try:
        with pytest.raises(errors.LockNotAvailable):
            other.execute(
                "SELECT 1 FROM workflows_servicerequest WHERE process_ptr_id = %s FOR UPDATE NOWAIT",
                [request_id],
            )
    finally:
        other.close()
