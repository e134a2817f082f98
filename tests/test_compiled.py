"""Statements compiled once per database with stand-in ids (workflows.compiled), and the flow lock
taken from a task's id (workflows.flows.lock_request_of_task): the same rows and instances as the
ORM's own queryset, each call with its own ids, and a loud failure rather than a wrong statement."""

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from viewflow.workflow.models import Task

from audit.chain import audited_atomic
from tests.test_claim_race import build_race_world, open_review_task
from workflows import services
from workflows.compiled import CompiledRead
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.flows import lock_request_of_task


def _review_task(site, referent):
    return open_review_task(build_race_world(site, referent), referent)


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
    world = build_race_world(site, referent)
    first, second = open_review_task(world, referent), open_review_task(world, referent)
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
    task = _review_task(site, referent)
    with CaptureQueriesContext(connection) as compiled:
        services._STEP_TASK(task=task.pk)
    with CaptureQueriesContext(connection) as orm:
        list(Task.objects.select_related(*services.STEP_RELATED).filter(pk=task.pk).order_by())
    assert compiled[0]["sql"] == orm[0]["sql"]


def test_a_stand_in_missing_or_repeated_fails_loudly(site, referent):
    task = _review_task(site, referent)
    ignored = CompiledRead(lambda task: Task.objects.filter(pk=1), "task")
    with pytest.raises(RuntimeError, match="holds"):
        ignored(task=task.pk)
    twice = CompiledRead(lambda task: Task.objects.filter(pk=task, process_id__gt=task), "task")
    with pytest.raises(RuntimeError, match="holds"):
        twice(task=task.pk)
    with pytest.raises(TypeError):
        services._STEP_TASK(other=task.pk)


@pytest.mark.django_db(transaction=True)
def test_the_flow_lock_is_found_from_the_task_and_held_until_the_service_ends(site, referent):
    task = _review_task(site, referent)
    with pytest.raises(RuntimeError):
        lock_request_of_task(task.pk)  # outside a service: no chain lock taken first
    with audited_atomic():
        assert lock_request_of_task(task.pk) == task.process_id
        assert lock_request_of_task(-1) is None
        if connection.vendor == "postgresql":
            assert not _lockable_by_another_connection(task.process_id)
    if connection.vendor == "postgresql":
        assert _lockable_by_another_connection(task.process_id)  # released at the end of the service


def test_the_services_lock_waits_as_the_flows_lock_does(site, referent):
    """`lock_request_of_task` takes the flow's own lock (`lock_impl`): waiting, tried once."""
    assert FLOW.lock_impl.nowait is False and FLOW.lock_impl.attempts == 1
    task = _review_task(site, referent)
    with CaptureQueriesContext(connection) as queries, audited_atomic():
        lock_request_of_task(task.pk)
    (lock,) = [query["sql"] for query in queries if "workflows_servicerequest" in query["sql"]]
    if connection.vendor == "postgresql":
        assert lock.endswith("FOR UPDATE") and "NOWAIT" not in lock


@pytest.mark.django_db(transaction=True)
def test_a_compiled_lock_outside_a_transaction_is_refused(site, referent):
    from django.db.transaction import TransactionManagementError

    from workflows.flows import _REQUEST_OF_TASK

    task = _review_task(site, referent)
    with pytest.raises(TransactionManagementError):
        _REQUEST_OF_TASK(task=task.pk)


@pytest.mark.django_db(transaction=True)
def test_a_compiled_read_runs_on_the_calling_threads_connection(site, referent):
    """Compiled in one thread, run in another (daphne's worker threads, the timers' thread): the
    statement goes through the caller's own connection."""
    task = _review_task(site, referent)
    services._STEP_TASK(task=task.pk)  # compiled here, on this thread's connection
    here = connections["default"]
    outcome = {}

    def other_thread():
        try:
            with CaptureQueriesContext(connections["default"]) as queries:
                (read,) = services._STEP_TASK(task=task.pk)
            outcome["queries"] = len(queries)
            outcome["request"] = read.process.servicerequest.pk
            outcome["connection"] = connections["default"]
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=30)
    assert outcome["queries"] == 1 and outcome["request"] == task.process_id
    assert outcome["connection"] is not here


def _lockable_by_another_connection(request_id) -> bool:
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
        with other.transaction():
            other.execute(
                "SELECT 1 FROM workflows_servicerequest WHERE process_ptr_id = %s FOR UPDATE NOWAIT",
                [request_id],
            )
        return True
    except errors.LockNotAvailable:
        return False
    finally:
        other.close()


def test_a_compiled_query_takes_dates_text_and_lists_of_any_length(site, referent):
    """workflows.compiled.CompiledQuery: one statement for every call (a list of ids is one
    parameter), each call's own values converted as the ORM converts them, the ORM's rows."""
    from datetime import timedelta

    from django.utils import timezone

    from casework.models import Case
    from tests.factories import CaseFactory
    from workflows.compiled import CompiledQuery

    cases = [CaseFactory(site=site, referent=referent) for _ in range(3)]
    now = timezone.now()
    Case.objects.filter(pk=cases[0].pk).update(last_activity_at=now - timedelta(days=3))

    def build(ids, since, state):
        return (
            Case.objects.filter(pk__in=ids, last_activity_at__gte=since, state=state)
            .order_by("pk")
            .values("pk", "public_id")
        )

    compiled = CompiledQuery(build, ids="ids", since="datetime", state="text")
    statements = []
    calls = (([c.pk for c in cases], now - timedelta(days=1)), ([cases[0].pk], now - timedelta(days=5)))
    for ids, since in calls:
        with CaptureQueriesContext(connection) as queries:
            rows = compiled(ids=ids, since=since, state="proposed")
        statements.append(queries[0]["sql"].split(" WHERE ")[0])
        expected = list(build(ids, since, "proposed"))
        assert rows == expected and rows
    assert statements[0] == statements[1]
    assert compiled(ids=[], since=now, state="proposed") == []


def test_a_compiled_query_missing_a_value_fails_loudly():
    from casework.models import Case
    from workflows.compiled import CompiledQuery

    compiled = CompiledQuery(lambda ids, state: Case.objects.filter(pk__in=ids), ids="ids", state="text")
    with pytest.raises(RuntimeError, match="holds no"):
        compiled(ids=[1], state="proposed")
    with pytest.raises(TypeError):
        compiled(ids=[1])
