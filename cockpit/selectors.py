"""Reads of the animators' cockpit: the status board of one or several pilot sites.

The board is built from a fixed number of queries whatever the number of cases (the sites, the
referents of the filter, the counters, the cards): the request figures it shows are kept on the case
row (`open_requests`, `overdue_requests`, `next_deadline`, see workflows.board), so it never
aggregates requests. Every case comes from `Case.objects.visible_to(user)`."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Case as Choose
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from casework.enums import OPEN_CASE_STATES, CaseState
from casework.models import Case, Need, PilotSite, User
from cockpit.rules import board_sites_q
from workflows.business_days import add_business_days

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
    cases = Case.objects.visible_to(user).filter(
        site__in=[site.pk for site in sites], state__in=OPEN_CASE_STATES
    )
    if category:
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


def board(user, sites, *, referent_id=None, category="", overdue_only=False, now=None) -> Board:
    """The board of `sites` as `user` may see it. Queries, whatever the number of cases: one for the
    counters (grouped by state, light and referent, which also gives the referents of the filter),
    one for the most urgent cards of every column (one per column on SQLite), and one for the
    referents (those of the filter, whose names the cards show too)."""
    thresholds = Thresholds.at(now or timezone.now())
    cases = board_cases(user, sites, category=category, overdue_only=overdue_only, thresholds=thresholds)
    columns = {state: Column(state, CaseState(state).label) for state in OPEN_CASE_STATES}
    referent_ids = set()
    counters = cases.annotate(urgency=_urgency(thresholds)).order_by()
    for row in counters.values("state", "urgency", "referent_id").annotate(n=Count("*")):
        referent_ids.add(row["referent_id"])
        if referent_id and row["referent_id"] != referent_id:
            continue
        column = columns[row["state"]]
        column.count += row["n"]
        column.lights[LIGHTS[row["urgency"]]] += row["n"]
    if referent_id:
        cases = cases.filter(referent_id=referent_id)
    # Each column's most urgent cases: those that turned (or turn) red first — every red case
    # before any other, since a case is red exactly when its `red_at` has passed. Each column's top
    # is read from the (state, red_at) index; the cards' fields are then read for the chosen rows
    # alone (only the company is joined), in the order shown: by `red_at`, then public id.
    # PostgreSQL takes the columns' tops in one UNION ALL; SQLite cannot order inside one.
    by_urgency = cases.order_by("red_at", "pk").values("pk")
    tops = [by_urgency.filter(state=state)[:CARD_LIMIT] for state in columns]
    if connection.features.supports_slicing_ordering_in_compound:
        tops = [tops[0].union(*tops[1:], all=True)]
    cards = (
        Case.objects.annotate(
            urgency=_urgency(thresholds), idle=Value(thresholds.now) - F("last_activity_at")
        )
        .order_by("red_at", "public_id")
        .values(*CARD_FIELDS)
    )
    rows = [row for top in tops for row in cards.filter(pk__in=top)]
    # One query for the referents of the filter and those of the cards: the same people, unless a
    # case changed referent between the counters and the cards (the filter offers the former).
    people = {
        person.pk: person
        for person in User.objects.filter(
            pk__in=referent_ids.union(row["referent_id"] for row in rows)
        ).order_by("last_name", "first_name", "pk")
    }
    referent_names = {pk: person.get_full_name() or person.username for pk, person in people.items()}
    site_names = {site.pk: site.name for site in sites}
    for row in rows:
        columns[row["state"]].cards.append(_card(row, site_names, referent_names))
    referents = [person for pk, person in people.items() if pk in referent_ids]
    return Board(
        sites=list(sites), columns=list(columns.values()), thresholds=thresholds, referents=referents
    )
