"""The status board's summary of a case's requests, kept on the case row.

The board shows, for every case, its open requests, those past their response deadline and the
nearest response deadline. Reading them from the requests would make the board an aggregate over
every request of every case; they are kept on `Case` instead (`open_requests`, `overdue_requests`,
`next_deadline`, and `red_at` which orders the cards), refreshed here in the transaction of every
request step (`events.record` calls `refresh_case`), so the board is one scan of the cases
(docs/performance.md).

`refresh_case`, run by every step of every request, does not build its UPDATE each time: building
and compiling the four subqueries took about a fifth of a partner's acceptance (bench/write_path).
The same ORM statement is compiled once per database, with stand-in values where the case and the
activity date go, and then run with the real ones (`_OneCaseUpdate`, with the slots of
`workflows.compiled`)."""

from datetime import UTC, datetime

from django.db import connections, router
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, sql
from django.db.models.functions import Coalesce
from django.db.models.signals import post_save, pre_save

from casework.models import IDLE, Case, red_at_expression
from notifications.delivery import board_ring_after_commit
from workflows.compiled import STAND_IN_IDS, fill, slots_of
from workflows.models import OPEN_REQUEST_STATUSES, PROVIDER_STATUSES, ServiceRequest


def _count(requests) -> Coalesce:
    counted = requests.order_by().values("case_id").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _summary(activity_at=None) -> dict:
    """What the UPDATE sets: the request summary from the requests, and with `activity_at` the last
    activity. The nearest deadline is that of a request waiting for its partner's answer, or of one
    whose deadline passed (overdue)."""
    requests = ServiceRequest.objects.filter(case_id=OuterRef("pk"), stage__in=OPEN_REQUEST_STATUSES)
    deadlines = requests.filter(Q(stage__in=PROVIDER_STATUSES) | Q(overdue=True), deadline__isnull=False)
    nearest = deadlines.order_by("deadline").values("deadline")[:1]
    activity = {} if activity_at is None else {"last_activity_at": activity_at}
    return {
        "open_requests": _count(requests),
        "overdue_requests": _count(requests.filter(overdue=True)),
        "next_deadline": Subquery(nearest),
        # The SET clauses see the row as it was: red_at reads the new deadline from the subquery,
        # and the new activity from `activity_at`.
        "red_at": red_at_expression(last_activity=activity_at, deadline=Subquery(nearest)),
        **activity,
    }


def refresh_cases(cases: QuerySet, activity_at=None) -> int:
    """Recompute the request summary of `cases` from their requests (one UPDATE whatever their
    number). With `activity_at`, the same UPDATE also dates the cases' last activity (as
    `casework.services.record_activity` does)."""
    return cases.update(**_summary(activity_at))


class _OneCaseUpdate:
    """`refresh_cases(Case.objects.filter(pk=…), activity_at)` compiled once per database and form
    (with or without `activity_at`). The ORM compiles it with stand-ins — a case id no case has,
    an activity date no step has — and each parameter that is a stand-in becomes a slot filled at
    run time, converted for the database as the ORM converts it. If the compiled statement does
    not hold each stand-in as often as expected (a Django upgrade compiling it otherwise), compiling
    fails loudly rather than running a wrong statement."""

    CASE = STAND_IN_IDS[0]
    AT = datetime(1901, 1, 1, tzinfo=UTC)

    def __init__(self):
        self._compiled = {}

    @staticmethod
    def _date(value, connection):
        return Case._meta.get_field("last_activity_at").get_db_prep_value(value, connection)

    def _compile(self, using: str, with_activity: bool):
        connection = connections[using]
        query = Case.objects.using(using).filter(pk=self.CASE).query.chain(sql.UpdateQuery)
        query.add_update_values(_summary(self.AT if with_activity else None))
        query.clear_select_clause()
        statement, params = query.get_compiler(using).as_sql()
        stand_ins = {self.CASE: "case"}
        expected = {"case": 1}
        if with_activity:
            stand_ins[self._date(self.AT, connection)] = "at"
            stand_ins[self._date(self.AT + IDLE, connection)] = "idle"
            expected.update(at=1, idle=2)
        return statement, slots_of(params, stand_ins, expected, "workflows.board")

    def statement(self, using: str, case_id: int, activity_at=None) -> tuple[str, list]:
        key = (using, activity_at is not None)
        if key not in self._compiled:
            self._compiled[key] = self._compile(using, activity_at is not None)
        statement, slots = self._compiled[key]
        connection = connections[using]
        values = {"case": int(case_id)}
        if activity_at is not None:
            values["at"] = self._date(activity_at, connection)
            values["idle"] = self._date(activity_at + IDLE, connection)
        return statement, fill(slots, values)

    def run(self, case_id: int, activity_at=None) -> None:
        using = router.db_for_write(Case)
        with connections[using].cursor() as cursor:
            cursor.execute(*self.statement(using, case_id, activity_at))


_one_case_update = _OneCaseUpdate()


def refresh_case(case_id: int, site_id: int, case_public_id, activity_at=None) -> None:
    """Recompute one case's summary (and, with `activity_at`, date its last activity) and ring its
    site's board after commit."""
    _one_case_update.run(case_id, activity_at)
    board_ring_after_commit(site_id, case_public_id)


def _insertable_with(instance, using: str) -> bool:
    """`instance` can be inserted by a plain INSERT … RETURNING its id, as its `save()` would: a new
    row of a model without parents, whose id and other columns the database does not fill, and
    whose saves nobody listens to (no signal would be missed)."""
    meta = type(instance)._meta
    return (
        connections[using].vendor == "postgresql"
        and instance._state.adding
        and instance.pk is None
        and not meta.parents
        and meta.auto_field is not None
        and meta.db_returning_fields == [meta.auto_field]
        and not any(field.generated or field.has_db_default() for field in meta.local_concrete_fields)
        and not pre_save.has_listeners(type(instance))
        and not post_save.has_listeners(type(instance))
    )


def insert_and_refresh_case(instance, case_id: int, site_id: int, case_public_id, activity_at=None) -> None:
    """Save `instance` (a new row: a step's timeline row) and refresh its case's summary as
    `refresh_case` does. On PostgreSQL in one statement when the row allows it (`_insertable_with`):
    the INSERT as the ORM compiles it and the case's UPDATE, each a data-modifying part of one
    WITH. The UPDATE's subqueries read the requests as the statement starts, which is all they
    need: they read no row of `instance`'s table, and the step changed its request in an earlier
    statement. Elsewhere, `save()` then the UPDATE."""
    model = type(instance)
    using = router.db_for_write(model, instance=instance)
    if not _insertable_with(instance, using):
        instance.save(using=using)
        refresh_case(case_id, site_id, case_public_id, activity_at=activity_at)
        return
    meta = model._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    query = sql.InsertQuery(model)
    query.insert_values(fields, [instance])
    compiler = query.get_compiler(using)
    compiler.returning_fields = [meta.auto_field]
    ((insert, insert_params),) = compiler.as_sql()
    update, update_params = _one_case_update.statement(using, case_id, activity_at)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"WITH inserted AS ({insert}), board AS ({update}) SELECT * FROM inserted",
            [*insert_params, *update_params],
        )
        (pk,) = cursor.fetchone()
    instance.pk = meta.auto_field.to_python(pk)
    instance._state.adding, instance._state.db = False, using
    board_ring_after_commit(site_id, case_public_id)
