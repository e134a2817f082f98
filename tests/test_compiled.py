"""Statements compiled once per database with stand-in ids (workflows.compiled), and the flow lock
taken with the read of a step's task (workflows.flows.locked_task): the same rows and instances as
the ORM's own queryset, each call with its own ids, and a loud failure rather than a wrong
statement."""

import threading

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from viewflow.workflow.models import Task
from viewflow.workflow.status import STATUS

from audit.chain import audited_atomic
from tests.test_claim_race import build_race_world, open_review_task
from workflows import services
from workflows.compiled import CompiledRead, CompiledUpdate
from workflows.flows import ServiceRequestFlow as FLOW
from workflows.flows import locked_task, step_task_read


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
        list(step_task_read(task.pk, *services.STEP_RELATED))
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


def test_a_compiled_update_runs_the_orms_update_with_each_calls_values(site, referent):
    """The deadline's cancellation (workflows.flows.ResponseDeadline): the ORM's own UPDATE, its
    filter across the tasks' links made a subquery as `update()` makes it, each call with its ids
    and its moment; only the timers still to fire (NEW or SCHEDULED) change."""
    world = build_race_world(site, referent)
    first, second = open_review_task(world, referent), open_review_task(world, referent)
    timers = {
        review.pk: Task.objects.get(process_id=review.process_id, flow_task=FLOW.review__timeout)
        for review in (first, second)
    }

    def build(host, process, at):
        armed = Task.objects.filter(
            flow_task=FLOW.review__timeout, process_id=process, previous=host, status__in=["NEW", "SCHEDULED"]
        )
        return armed, {"status": STATUS.CANCELED, "finished": at}

    cancel = CompiledUpdate(build, ids=("host", "process"), moments=("at",))
    at = timezone.now()
    with CaptureQueriesContext(connection) as orm, transaction.atomic():
        build(first.pk, first.process_id, at)[0].update(status=STATUS.CANCELED, finished=at)
        transaction.set_rollback(True)
    with CaptureQueriesContext(connection) as compiled:
        assert cancel(host=first.pk, process=first.process_id, at=at) == 1
        assert cancel(host=second.pk, process=second.process_id, at=at) == 1
    orm_update = [query["sql"] for query in orm if query["sql"].startswith("UPDATE")]
    assert [query["sql"] for query in compiled][:1] == orm_update
    for review in (first, second):
        timer = Task.objects.get(pk=timers[review.pk].pk)
        assert (timer.status, timer.finished) == (STATUS.CANCELED, at)
    assert cancel(host=first.pk, process=first.process_id, at=timezone.now()) == 0  # ended: left
    assert Task.objects.get(pk=timers[first.pk].pk).finished == at


def test_a_compiled_update_without_its_stand_ins_fails_loudly(site, referent):
    ignored = CompiledUpdate(
        lambda task: (Task.objects.filter(pk=1), {"external_task_id": "x"}), ids=("task",)
    )
    with pytest.raises(RuntimeError, match="holds"):
        ignored(task=1)
    loose = CompiledUpdate(lambda at: (Task.objects.filter(pk=1), {"external_task_id": "x"}), moments=("at",))
    with pytest.raises(RuntimeError, match="exactly one field"):
        loose(at=timezone.now())
    with pytest.raises(TypeError):
        ignored(other=1)


@pytest.mark.django_db(transaction=True)
def test_the_flow_lock_is_taken_with_the_task_and_held_until_the_service_ends(site, referent):
    task = _review_task(site, referent)
    with pytest.raises(RuntimeError):
        locked_task(services._STEP_TASK, task.pk)  # outside a service: no chain lock taken first
    with audited_atomic():
        assert locked_task(services._STEP_TASK, task.pk).process_id == task.process_id
        assert locked_task(services._STEP_TASK, -1) is None
        if connection.vendor == "postgresql":
            assert not _lockable_by_another_connection(
                "workflows_servicerequest", "process_ptr_id", task.process_id
            )
            assert not _lockable_by_another_connection("viewflow_process", "id", task.process_id)
            assert not _lockable_by_another_connection("viewflow_task", "id", task.pk)
    if connection.vendor == "postgresql":  # released at the end of the service
        assert _lockable_by_another_connection("workflows_servicerequest", "process_ptr_id", task.process_id)


def test_the_services_lock_waits_as_the_flows_lock_does(site, referent):
    """`locked_task` takes the flow's own lock (`lock_impl`): waiting, tried once."""
    assert FLOW.lock_impl.nowait is False and FLOW.lock_impl.attempts == 1
    task = _review_task(site, referent)
    with CaptureQueriesContext(connection) as queries, audited_atomic():
        locked_task(services._STEP_TASK, task.pk)
    (read,) = [query["sql"] for query in queries if "viewflow_task" in query["sql"]]
    if connection.vendor == "postgresql":
        assert read.endswith('FOR UPDATE OF "viewflow_task", "viewflow_process", "workflows_servicerequest"')


def test_the_step_read_of_another_flows_task_finds_nothing(site, referent):
    """The request is joined (a row lock cannot be taken on the nullable side of an outer join): a
    task whose process is not a request is not found, and nothing is locked for it."""
    from viewflow.workflow.models import Process

    process = Process.objects.create(flow_class=FLOW)
    other = Task.objects.create(process=process, flow_task=FLOW.review)
    with audited_atomic():
        assert locked_task(services._STEP_TASK, other.pk) is None


@pytest.mark.django_db(transaction=True)
def test_a_compiled_lock_outside_a_transaction_is_refused(site, referent):
    from django.db.transaction import TransactionManagementError

    task = _review_task(site, referent)
    with pytest.raises(TransactionManagementError):
        services._STEP_TASK(task=task.pk)


@pytest.mark.django_db(transaction=True)
def test_a_compiled_read_runs_on_the_calling_threads_connection(site, referent):
    """Compiled in one thread, run in another (daphne's worker threads, the timers' thread): the
    statement goes through the caller's own connection."""
    task = _review_task(site, referent)
    with transaction.atomic():
        services._STEP_TASK(task=task.pk)  # compiled here, on this thread's connection
    here = connections["default"]
    outcome = {}

    def other_thread():
        try:
            with CaptureQueriesContext(connections["default"]) as queries, transaction.atomic():
                (read,) = services._STEP_TASK(task=task.pk)
            outcome["queries"] = len(queries)
            outcome["request"] = read.process.servicerequest.pk
            outcome["connection"] = connections["default"]
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(timeout=30)
    assert outcome["queries"] == 3 and outcome["request"] == task.process_id  # BEGIN, the read, COMMIT
    assert outcome["connection"] is not here


def _lockable_by_another_connection(table, column, pk) -> bool:
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
                f"SELECT 1 FROM {table} WHERE {column} = %s FOR UPDATE NOWAIT",
                [pk],
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
