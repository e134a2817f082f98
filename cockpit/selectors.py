"""Reads of the animators' cockpit: the status board of one or several pilot sites.

The board is built from a fixed number of queries whatever the number of cases (the sites, the
referents of the filter, the counters, the cards): the request figures it shows are kept on the case
row (`open_requests`, `overdue_requests`, `next_deadline`, see workflows.board), so it never
aggregates requests. Every case comes from `Case.objects.visible_to(user)`, or, for a user whom
the visibility rule shows every case of the board's sites (`casework.rules.sees_every_case_of_sites`),
from those sites' cases: the same rows, read by statements compiled once (`board`)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Case as Choose
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from casework import rules
from casework.enums import OPEN_CASE_STATES, CaseState
from casework.models import Case, Need, PilotSite, User
from cockpit.rules import board_sites_q
from workflows.business_days import add_business_days
from workflows.compiled import CompiledQuery

# A case with nothing new for this long is red on the board.
IDLE_DAYS = 14
# A response deadline within this many business days makes a case orange.
SOON_BUSINESS_DAYS = 2
# Cards shown per column, most urgent first; the column's counter still counts every case.
CARD_LIMIT = 60

RED, ORANGE, GREEN = "red", "orange", "green"
LIGHTS = (RED, ORANGE, GREEN)


def board_sites(user) -> list[PilotSite]:
    return list(PilotSite.objects.filter(board_sites_q(user)).order_by("name"))


def board_site(user, slug) -> PilotSite:
    """One site whose board (and weekly review) the user may open; 404 otherwise, as for a site
    that does not exist."""
    return get_object_or_404(PilotSite.objects.filter(board_sites_q(user)), slug=slug)


@dataclass(frozen=True)
class Thresholds:
    now: datetime
    idle_before: datetime
    soon_before: datetime

    @classmethod
    def at(cls, now: datetime) -> "Thresholds":
        return cls(now, now - timedelta(days=IDLE_DAYS), add_business_days(now, SOON_BUSINESS_DAYS))

    def overdue_q(self) -> Q:
        """A request of the case is past its response deadline (marked by the timer, or not yet)."""
        return Q(overdue_requests__gt=0) | Q(next_deadline__lt=self.now)

    def red_q(self) -> Q:
        return self.overdue_q() | Q(last_activity_at__lt=self.idle_before)

    def orange_q(self) -> Q:
        return Q(next_deadline__lte=self.soon_before)


def light_of(case: Case, thresholds: Thresholds) -> str:
    """The rule of `Thresholds.red_q/orange_q`, on one case in memory (tests compare both)."""
    deadline = case.next_deadline
    if (
        case.overdue_requests > 0
        or (deadline is not None and deadline < thresholds.now)
        or case.last_activity_at < thresholds.idle_before
    ):
        return RED
    if deadline is not None and deadline <= thresholds.soon_before:
        return ORANGE
    return GREEN


@dataclass(frozen=True)
class Card:
    public_id: str
    company: str
    referent: str
    site: str
    open_requests: int
    overdue_requests: int
    light: str
    idle_days: int


@dataclass
class Column:
    state: str
    label: str
    count: int = 0
    lights: dict = field(default_factory=lambda: dict.fromkeys(LIGHTS, 0))
    cards: list = field(default_factory=list)

    @property
    def hidden(self) -> int:
        return self.count - len(self.cards)


@dataclass
class Board:
    sites: list
    columns: list
    thresholds: Thresholds
    referents: list  # of the open cases of the board under the other filters (the referent filter's choices)

    @property
    def count(self) -> int:
        return sum(column.count for column in self.columns)

    @property
    def lights(self) -> dict:
        return {light: sum(column.lights[light] for column in self.columns) for light in LIGHTS}


def board_cases(user, sites, *, category="", overdue_only=False, thresholds) -> QuerySet:
    """The open cases of `sites` the user may see, filtered. Not annotated: the counters add the
    light's rank (`_urgency`), the cards' subqueries need none (an annotation would be copied and
    resolved again in each of them, for nothing)."""
    return _open_cases(
        Case.objects.visible_to(user),
        [site.pk for site in sites],
        category or None,
        overdue_only,
        thresholds,
    )


def _open_cases(base, sites, category, overdue_only, thresholds) -> QuerySet:
    cases = base.filter(site_id__in=sites, state__in=OPEN_CASE_STATES)
    if category is not None:
        cases = cases.filter(Exists(Need.objects.filter(case_id=OuterRef("pk"), category=category)))
    if overdue_only:
        cases = cases.filter(thresholds.overdue_q())
    return cases


def _urgency(thresholds: Thresholds) -> Choose:
    """The light's rank of a case (`urgency`: 0 red, 1 orange, 2 green), from `Thresholds`."""
    return Choose(
        When(thresholds.red_q(), then=Value(0)),
        When(thresholds.orange_q(), then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )


# What a card shows, read with its case. The names of its site and referent are not joined: the
# board has its sites in hand and reads the referents anyway (for the referent filter). `idle` (the
# time since the last activity, annotated by `board`) is read rather than the activity's date: a
# duration is read by psycopg's C loader, a date by Django's time-zone one, in Python.
CARD_FIELDS = (
    "state",
    "public_id",
    "company__name",
    "referent_id",
    "site_id",
    "open_requests",
    "overdue_requests",
    "idle",
    "urgency",
)


def _card(row: dict, site_names: dict, referent_names: dict) -> Card:
    return Card(
        public_id=str(row["public_id"]),
        company=row["company__name"],
        referent=referent_names[row["referent_id"]],
        site=site_names[row["site_id"]],
        open_requests=row["open_requests"],
        overdue_requests=row["overdue_requests"],
        light=LIGHTS[row["urgency"]],
        idle_days=max(row["idle"].days, 0),
    )


@dataclass(frozen=True)
class Referent:
    """A referent offered by the board's filter (what the page shows of a user)."""

    pk: int
    first_name: str
    last_name: str
    username: str

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()  # as User.get_full_name

    def get_username(self) -> str:
        return self.username


# The board's three reads, built from stand-ins (sites, moments, category, referent) or from real
# values: `base` is every case (for a user who sees every case of the board's sites) or the user's
# visible cases.
def _counters(base, *, sites, now, idle, soon, category=None, overdue_only=False):
    thresholds = Thresholds(now, idle, soon)
    cases = _open_cases(base, sites, category, overdue_only, thresholds)
    counters = cases.annotate(urgency=_urgency(thresholds)).order_by()
    return counters.values("state", "urgency", "referent_id").annotate(n=Count("*"))


def _cards(base, *, sites, now, idle, soon, category=None, referent=None, overdue_only=False, state=None):
    """Each column's most urgent cases: those that turned (or turn) red first — every red case
    before any other, since a case is red exactly when its `red_at` has passed. Each column's top
    is read from the (state, red_at) index; the cards' fields are then read for the chosen rows
    alone (only the company is joined), in the order shown: by `red_at`, then public id. All the
    columns' tops in one UNION ALL (`state` None), or one column's (SQLite cannot order inside a
    UNION)."""
    thresholds = Thresholds(now, idle, soon)
    cases = _open_cases(base, sites, category, overdue_only, thresholds)
    if referent is not None:
        cases = cases.filter(referent_id=referent)
    by_urgency = cases.order_by("red_at", "pk").values("pk")
    if state is None:
        tops = [by_urgency.filter(state=column)[:CARD_LIMIT] for column in OPEN_CASE_STATES]
        top = tops[0].union(*tops[1:], all=True)
    else:
        top = by_urgency.filter(state=state)[:CARD_LIMIT]
    cards = Case.objects.annotate(urgency=_urgency(thresholds), idle=Value(now) - F("last_activity_at"))
    return cards.order_by("red_at", "public_id").values(*CARD_FIELDS).filter(pk__in=top)


def _people(ids):
    people = User.objects.filter(pk__in=ids).order_by("last_name", "first_name", "pk")
    return people.values_list("pk", "first_name", "last_name", "username")


_PEOPLE = CompiledQuery(_people, ids="ids")
_COMPILED = {}  # (read, filters' shape, CARD_LIMIT, column) -> CompiledQuery


def _compiled(read, **shape) -> CompiledQuery:
    """`read` over every case, compiled once per database and shape (workflows.compiled): building
    and compiling the board's three statements was most of its cost at 75 cases (docs/performance.md)."""
    key = (read.__name__, tuple(sorted(shape.items())), CARD_LIMIT)
    compiled = _COMPILED.get(key)
    if compiled is None:
        kinds = {"sites": "ids", "now": "datetime", "idle": "datetime", "soon": "datetime"}
        if shape.pop("with_category"):
            kinds["category"] = "text"
        if shape.pop("with_referent", False):
            kinds["referent"] = "id"
        fixed = dict(shape)
        compiled = _COMPILED[key] = CompiledQuery(
            lambda **values: read(Case.objects.all(), **values, **fixed), **kinds
        )
    return compiled


def board(user, sites, *, referent_id=None, category="", overdue_only=False, now=None) -> Board:
    """The board of `sites` as `user` may see it. Queries, whatever the number of cases: one for the
    counters (grouped by state, light and referent, which also gives the referents of the filter),
    one for the most urgent cards of every column (one per column on SQLite), and one for the
    referents (those of the filter, whose names the cards show too).

    Whoever sees every case of these sites (`casework.rules.sees_every_case_of_sites`: the
    administrators, the animators of each site, who are the only ones the views show a board)
    gets them from statements compiled once; anyone else from the same queries over their
    visible cases, built at each call."""
    thresholds = Thresholds.at(now or timezone.now())
    site_ids = [site.pk for site in sites]
    values = {
        "sites": site_ids,
        "now": thresholds.now,
        "idle": thresholds.idle_before,
        "soon": thresholds.soon_before,
    }
    if category:
        values["category"] = category
    columns = {state: Column(state, CaseState(state).label) for state in OPEN_CASE_STATES}
    one_union = connection.features.supports_slicing_ordering_in_compound
    card_values = {**values, **({"referent": referent_id} if referent_id else {})}
    if rules.sees_every_case_of_sites(user, site_ids):
        shape = {"with_category": bool(category), "overdue_only": overdue_only}
        counters = _compiled(_counters, **shape)(**values)
        card_shape = {**shape, "with_referent": bool(referent_id)}
        if one_union:
            rows = _compiled(_cards, **card_shape)(**card_values)
        else:
            reads = [_compiled(_cards, **card_shape, state=state) for state in columns]
            rows = [row for read in reads for row in read(**card_values)]
    else:
        base = Case.objects.visible_to(user)
        counters = list(_counters(base, **values, overdue_only=overdue_only))
        states = [None] if one_union else list(columns)
        rows = [
            row
            for state in states
            for row in _cards(base, **card_values, overdue_only=overdue_only, state=state)
        ]
    referent_ids = set()
    for row in counters:
        referent_ids.add(row["referent_id"])
        if referent_id and row["referent_id"] != referent_id:
            continue
        column = columns[row["state"]]
        column.count += row["n"]
        column.lights[LIGHTS[row["urgency"]]] += row["n"]
    # One query for the referents of the filter and those of the cards: the same people, unless a
    # case changed referent between the counters and the cards (the filter offers the former).
    ids = referent_ids.union(row["referent_id"] for row in rows)
    people = [Referent(*person) for person in _PEOPLE(ids=ids)]
    referent_names = {person.pk: person.get_full_name() or person.username for person in people}
    site_names = {site.pk: site.name for site in sites}
    for row in rows:
        columns[row["state"]].cards.append(_card(row, site_names, referent_names))
    referents = [person for person in people if person.pk in referent_ids]
    return Board(
        sites=list(sites), columns=list(columns.values()), thresholds=thresholds, referents=referents
    )
