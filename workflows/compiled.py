"""ORM statements compiled once per database, then run with each call's values.

For the small statements of a request step, building and compiling the queryset costs more than
running it: a step's reads of its task — the task with its request, case, company, referent and
provider, seven tables — took longer to compile than to run (bench/write_path, docs/performance.md).
The hot ones are compiled once per database with stand-in values (ids no row has) where the
call's values go; each parameter equal to a stand-in becomes a slot, filled at run time. The
statement is the ORM's own, and so are the model instances made of its rows.

If the compiled statement does not hold each stand-in exactly as often as expected (a Django
upgrade compiling it otherwise, or a stand-in equal to another value of the statement), compiling
fails loudly rather than running a wrong statement."""

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.db.models import QuerySet, sql
from django.db.transaction import TransactionManagementError

# Ids no row has: a stand-in is negative, and none is a value a statement could hold for itself.
STAND_IN_IDS = (-424242, -434343, -454545)


class Slot:
    """A parameter of a compiled statement filled at run time."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


def slots_of(params, stand_ins: dict, expected: dict[str, int], where: str) -> list:
    """`params` of a statement compiled with `stand_ins` (value → name), each stand-in parameter
    made a `Slot`. `expected`: how many times each name must appear."""
    slots = []
    for param in params:
        # Only plain values are compared (a list or an expression parameter is never a stand-in);
        # True == 1 must not pass for a stand-in either.
        name = stand_ins.get(param) if type(param) in (int, str) or hasattr(param, "tzinfo") else None
        slots.append(Slot(name) if name else param)
    found = {name: sum(isinstance(s, Slot) and s.name == name for s in slots) for name in expected}
    if found != expected:
        raise RuntimeError(f"{where}: the compiled statement holds {found}, not {expected}")
    return slots


def fill(slots: list, values: dict) -> list:
    return [values[slot.name] if isinstance(slot, Slot) else slot for slot in slots]


class CompiledRead:
    """A queryset compiled once per database, then run with ids: the same rows and the same model
    instances as the queryset (its `select_related` objects included).

        _STEP = CompiledRead(lambda task: Task.objects.select_related("process").filter(pk=task), "task")
        tasks = _STEP(task=42)

    `build` receives one stand-in id per name and returns the queryset, unevaluated; each stand-in
    must appear exactly once in its statement."""

    def __init__(self, build: Callable[..., QuerySet], *names: str):
        if not names or len(names) > len(STAND_IN_IDS):
            raise ValueError("CompiledRead: one to three ids")
        self._build = build
        self._stand_ins = dict(zip(names, STAND_IN_IDS, strict=False))
        self._where = getattr(build, "__qualname__", "CompiledRead")
        self._compiled = {}
        self._model = self._for_write = None

    def _compile(self, using: str):
        queryset = self._build(**self._stand_ins).using(using)
        compiler = queryset.query.get_compiler(using)
        # Also sets what turns the rows into instances: compiler.select, klass_info, col_count…
        statement, params = compiler.as_sql()
        stand_ins = {value: name for name, value in self._stand_ins.items()}
        slots = slots_of(params, stand_ins, dict.fromkeys(self._stand_ins, 1), self._where)
        return queryset, compiler, statement, slots

    def __call__(self, **ids) -> list:
        if ids.keys() != self._stand_ins.keys():
            raise TypeError(f"{self._where}: give {sorted(self._stand_ins)}")
        if self._model is None:
            probe = self._build(**self._stand_ins)
            self._model, self._for_write = probe.model, probe._for_write  # select_for_update: a write
        using = (router.db_for_write if self._for_write else router.db_for_read)(self._model)
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        queryset, compiler, statement, slots = compiled
        if self._for_write and connections[using].get_autocommit():
            # What the ORM says of a `select_for_update()` outside a transaction: a lock taken
            # and released at once would protect nothing.
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = tuple(fill(slots, {name: int(value) for name, value in ids.items()}))
        # The compiled compiler, copied for this call and this thread's connection, gives the
        # statement as compiled: Django's own iterable then runs it and makes the instances.
        run = copy.copy(compiler)
        run.connection = connections[using]
        run.as_sql = lambda *args, **kwargs: (statement, params)
        clone = queryset._chain()
        clone.query.get_compiler = lambda *args, **kwargs: run
        return list(clone)


# Moments no step has, for the dates a compiled UPDATE sets.
STAND_IN_MOMENTS = (datetime(1901, 1, 1, tzinfo=UTC), datetime(1901, 1, 2, tzinfo=UTC))


class CompiledUpdate:
    """`queryset.update(**values)` compiled once per database, then run with ids and moments: the
    ORM's own UPDATE (a filter across a relation becomes its `pk IN (…)` subquery, as `update()`
    makes it), not built and compiled at every call.

        _CANCEL = CompiledUpdate(
            lambda task, at: (Task.objects.filter(pk=task), {"finished": at}), ids=("task",), moments=("at",)
        )
        _CANCEL(task=42, at=timezone.now())  # the number of rows updated

    `build` receives one stand-in per name and returns the queryset and the values to set; each id
    stand-in must appear once in the statement, each moment once (converted for the database as
    the ORM converts the field it sets)."""

    def __init__(self, build: Callable, *, ids: tuple[str, ...] = (), moments: tuple[str, ...] = ()):
        if len(ids) > len(STAND_IN_IDS) or len(moments) > len(STAND_IN_MOMENTS):
            raise ValueError("CompiledUpdate: too many values")
        self._build = build
        self._ids = dict(zip(ids, STAND_IN_IDS, strict=False))
        self._moments = dict(zip(moments, STAND_IN_MOMENTS, strict=False))
        self._where = getattr(build, "__qualname__", "CompiledUpdate")
        self._compiled = {}
        self._model = None

    def _compile(self, using: str):
        connection = connections[using]
        queryset, values = self._build(**self._ids, **self._moments)
        moment_fields = {}  # moment's name -> the field it sets
        for name, at in self._moments.items():
            found = [field for field, value in values.items() if value is at]
            if len(found) != 1:
                raise RuntimeError(f"{self._where}: moment {name!r} must set exactly one field")
            moment_fields[name] = found[0]
        query = queryset.using(using).query.chain(sql.UpdateQuery)
        query.add_update_values(values)
        query.annotations = {}
        statement, params = query.get_compiler(using).as_sql()
        stand_ins = {value: name for name, value in self._ids.items()}
        for name, at in self._moments.items():
            field = queryset.model._meta.get_field(moment_fields[name])
            stand_ins[field.get_db_prep_save(at, connection)] = name
        expected = dict.fromkeys([*self._ids, *self._moments], 1)
        return statement, slots_of(params, stand_ins, expected, self._where), moment_fields

    def __call__(self, **values) -> int:
        if values.keys() != {*self._ids, *self._moments}:
            raise TypeError(f"{self._where}: give {sorted([*self._ids, *self._moments])}")
        if self._model is None:
            self._model = self._build(**self._ids, **self._moments)[0].model
        using = router.db_for_write(self._model)
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        statement, slots, moment_fields = compiled
        connection = connections[using]
        model = self._model
        filled = {name: int(values[name]) for name in self._ids}
        for name, field_name in moment_fields.items():
            filled[name] = model._meta.get_field(field_name).get_db_prep_save(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(statement, fill(slots, filled))
            return cursor.rowcount


class CompiledQuery:
    """`CompiledRead` for a queryset whose call values are not all ids (the status board's reads:
    dates, a category, a list of sites). Each name comes with its kind, and its stand-in is a value
    no statement could hold for itself: a negative id (`id`), text beginning with NUL (`text`), a
    moment in 1901 (`datetime`), and for a list of ids (`ids`) the expression
    `casework.rules.ids_subquery` of a NUL text, given to `build` in place of the list (one
    parameter whatever the list's length: the statement is the same for every list). At run time
    each value is converted as the ORM converts its kind. A name may appear several times in the
    statement; one that does not appear at all fails loudly.

        _COUNTS = CompiledQuery(lambda sites, now: Case.objects.filter(site_id__in=sites, …), sites="ids",
                                now="datetime")
        rows = _COUNTS(sites=[1, 2], now=timezone.now())
    """

    KINDS = ("id", "text", "datetime", "ids")

    def __init__(self, build: Callable[..., QuerySet], **kinds: str):
        if any(kind not in self.KINDS for kind in kinds.values()):
            raise ValueError(f"CompiledQuery: kinds are {self.KINDS}")
        self._build, self._kinds = build, kinds
        self._where = getattr(build, "__qualname__", "CompiledQuery")
        self._compiled = {}

    def _stand_ins(self) -> dict:
        from casework.rules import ids_subquery

        values, ids = {}, iter(STAND_IN_IDS)
        for index, (name, kind) in enumerate(self._kinds.items()):
            if kind == "id":
                values[name] = next(ids)
            elif kind == "text":
                values[name] = f"\x00stand-in {name}"
            elif kind == "datetime":
                values[name] = datetime(1901, 1, 1, tzinfo=UTC) + timedelta(minutes=index)
            else:
                values[name] = ids_subquery(f"\x00stand-in {name}")
        return values

    def _param(self, kind: str, value, connection):
        from casework.rules import ids_param

        if kind == "id":
            return int(value)
        if kind == "text":
            return str(value)
        if kind == "datetime":
            return connection.ops.adapt_datetimefield_value(value)
        return ids_param(connection, value)

    def _compile(self, using: str):
        connection = connections[using]
        stand_ins = self._stand_ins()
        queryset = self._build(**stand_ins).using(using)
        compiler = queryset.query.get_compiler(using)
        statement, params = compiler.as_sql()
        named = {}
        for name, kind in self._kinds.items():
            if kind == "ids":
                named[f"\x00stand-in {name}"] = name
            else:
                named[self._param(kind, stand_ins[name], connection)] = name
        slots = []
        for param in params:
            name = named.get(param) if type(param) in (int, str) or hasattr(param, "tzinfo") else None
            slots.append(Slot(name) if name else param)
        found = {slot.name for slot in slots if isinstance(slot, Slot)}
        if found != set(self._kinds):
            missing = sorted(set(self._kinds) - found)
            raise RuntimeError(f"{self._where}: the compiled statement holds no {missing}")
        return queryset, compiler, statement, slots

    def __call__(self, **values) -> list:
        if values.keys() != self._kinds.keys():
            raise TypeError(f"{self._where}: give {sorted(self._kinds)}")
        probe_model = self._compiled.get("model")
        if probe_model is None:
            probe_model = self._compiled["model"] = self._build(**self._stand_ins()).model
        using = router.db_for_read(probe_model)
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        queryset, compiler, statement, slots = compiled
        connection = connections[using]
        converted = {name: self._param(kind, values[name], connection) for name, kind in self._kinds.items()}
        params = tuple(fill(slots, converted))
        run = copy.copy(compiler)
        run.connection = connection
        run.as_sql = lambda *args, **kwargs: (statement, params)
        clone = queryset._chain()
        clone.query.get_compiler = lambda *args, **kwargs: run
        return list(clone)
