"""Keyset pagination (« Précédent / Suivant ») for lists that grow with the data: the case list and
the administrators' report of someone's displays.

A page is read by its position in the list's order (the last row of the page before it), never by
an offset: the last page of 100,000 cases costs what the first does (with an index on the order's
first key), and a row that moves between two clicks (new activity on a case) never makes another
row appear twice or be skipped. The order must be total (its last key unique: the id).

The position travels in the link as an opaque text (`cursor`), checked when read: a damaged one
gives the first page and `page.invalid`, never an error. Nothing is given away by it that the page
itself does not show, and whatever it says, the list is the same user-scoped queryset.
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import reduce
from operator import and_, or_

from django.core.exceptions import ValidationError
from django.db.models import F, Q
from django.utils.dateparse import parse_datetime

# Query parameters of the links: after (« Suivant »), before (« Précédent »), the last page.
AFTER, BEFORE, LAST = "apres", "avant", "fin"
MAX_CURSOR_LENGTH = 1000


@dataclass(frozen=True)
class Key:
    """One key of the order: an annotation name (a field, or an expression given to `annotate`)
    and its direction."""

    name: str
    descending: bool = False
    expression: object = None


@dataclass
class KeysetPage:
    object_list: list
    has_next: bool
    has_previous: bool
    next_cursor: str = ""
    previous_cursor: str = ""
    invalid: bool = False  # the link's position could not be read: the first page is shown
    positioned: bool = False

    @property
    def has_other_pages(self) -> bool:
        return self.has_next or self.has_previous

    def __iter__(self):
        return iter(self.object_list)

    def __len__(self):
        return len(self.object_list)


def _encode_value(value):
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    return value


BIGGEST = 2**63 - 1


def _decode_value(value):
    """A value of a cursor, refused (ValueError) unless it could be a key's: what the database
    would refuse (an integer beyond 64 bits, a NUL character, a date without its time zone) never
    reaches it."""
    if isinstance(value, dict):
        if set(value) == {"t"} and isinstance(value["t"], str) and len(value["t"]) < 40:
            moment = parse_datetime(value["t"])
            if moment is None or moment.tzinfo is None:
                raise ValueError("bad datetime")
            return moment
        if set(value) == {"d"} and isinstance(value["d"], str) and len(value["d"]) < 40:
            return Decimal(value["d"])
        raise ValueError("bad value")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and -BIGGEST <= value <= BIGGEST:
        return value
    if isinstance(value, str) and "\x00" not in value:
        return value
    raise ValueError("bad value")


def encode_cursor(values) -> str:
    text = json.dumps([_encode_value(value) for value in values], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str, length: int) -> list:
    """The values of a cursor of `length` keys; ValueError when it is not one."""
    if not text or len(text) > MAX_CURSOR_LENGTH:
        raise ValueError("empty or too long")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw.decode())
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise ValueError("unreadable") from error
    if not isinstance(values, list) or len(values) != length:
        raise ValueError("wrong length")
    return [_decode_value(value) for value in values]


def _beyond(keys, values, forward: bool) -> Q:
    """Rows strictly after (forward) or before the position `values` in the order of `keys`: the
    lexicographic comparison, with the first key's bound repeated alone so that the database
    starts its index scan at the position instead of filtering from the start."""
    alternatives = []
    for rank, key in enumerate(keys):
        # Forward in a descending order (or back in an ascending one), the rows beyond are smaller.
        lookup = "lt" if key.descending == forward else "gt"
        equal = [Q(**{keys[j].name: values[j]}) for j in range(rank)]
        alternatives.append(reduce(and_, [*equal, Q(**{f"{key.name}__{lookup}": values[rank]})]))
    first = keys[0]
    bound = "lte" if first.descending == forward else "gte"
    return Q(**{f"{first.name}__{bound}": values[0]}) & reduce(or_, alternatives)


def _ordering(keys, forward: bool):
    return [
        F(key.name).desc() if key.descending == forward else F(key.name).asc() for key in keys
    ]


def _value(row, name):
    return row[name] if isinstance(row, dict) else getattr(row, name)


def keyset_page(queryset, keys: list[Key], size: int, params) -> KeysetPage:
    """The page of `queryset` that `params` (the request's GET) points at, in the order of `keys`:
    the first page, the one after `apres`, the one before `avant`, or the last (`fin`). One query
    (`size` + 1 rows: whether there is more is read with the page)."""
    annotations = {key.name: key.expression for key in keys if key.expression is not None}
    if annotations:
        queryset = queryset.annotate(**annotations)
    invalid = False
    forward, position, at_end = True, None, False
    for name, is_forward in ((AFTER, True), (BEFORE, False)):
        text = params.get(name)
        if text:
            try:
                position = decode_cursor(text, len(keys))
            except ValueError:
                invalid = True
                position = None
            else:
                forward = is_forward
            break
    else:
        if params.get(LAST):
            forward, at_end = False, True
    rows = queryset
    if position is not None:
        try:  # a value of the wrong type for its key (a text for a date) is refused here
            rows = rows.filter(_beyond(keys, position, forward))
        except (ValidationError, ValueError, TypeError):
            rows, position, forward, invalid = queryset, None, True, True
    rows = list(rows.order_by(*_ordering(keys, forward))[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if not forward:
        rows.reverse()
    if forward:
        has_next, has_previous = more, position is not None
    else:
        has_next, has_previous = not at_end, more
    page = KeysetPage(
        rows,
        has_next=has_next and bool(rows),
        has_previous=has_previous and bool(rows),
        invalid=invalid,
        # Not the first page: a position was given, or the last page was asked for.
        positioned=position is not None or at_end,
    )
    if rows:
        page.next_cursor = encode_cursor([_value(rows[-1], key.name) for key in keys])
        page.previous_cursor = encode_cursor([_value(rows[0], key.name) for key in keys])
    return page


def page_links(page: KeysetPage, query_string: str) -> dict:
    """The links of the pagination: first, previous, next, last (each None when not offered)."""
    prefix = f"?{query_string}&" if query_string else "?"
    return {
        # Also from an empty page past the end (its rows were removed meanwhile).
        "first": (f"?{query_string}" if query_string else "?")
        if page.has_previous or (page.positioned and not page.object_list)
        else None,
        "previous": f"{prefix}{BEFORE}={page.previous_cursor}" if page.has_previous else None,
        "next": f"{prefix}{AFTER}={page.next_cursor}" if page.has_next else None,
        "last": f"{prefix}{LAST}=1" if page.has_next else None,
    }


def without_position(query_dict) -> str:
    """The request's query string without the pagination's own parameters (and the old `page`)."""
    copy = query_dict.copy()
    for name in (AFTER, BEFORE, LAST, "page"):
        copy.pop(name, None)
    return copy.urlencode()


def keyset_slice(rows: list, key, size: int, params) -> KeysetPage:
    """The same pages over a list already read whole and sorted by `key(row)` (a tuple of plain
    values): for a list that is computed in full anyway (a GROUP BY), the page is chosen by its
    position as `keyset_page` does, so that the links are the same and as stable."""
    from bisect import bisect_left, bisect_right

    keys = [key(row) for row in rows]
    length = len(keys[0]) if keys else 0
    invalid, start, stop, positioned = False, 0, size, False
    for name, forward in ((AFTER, True), (BEFORE, False)):
        text = params.get(name)
        if not text:
            continue
        positioned = True
        try:
            position = tuple(decode_cursor(text, length)) if length else None
            if position is None:
                raise ValueError("empty list")
            if forward:
                start = bisect_right(keys, position)
                stop = start + size
            else:
                stop = bisect_left(keys, position)
                start = max(0, stop - size)
        except (ValueError, TypeError):  # TypeError: values of another type than the keys'
            invalid, positioned, start, stop = bool(length), False, 0, size
        break
    else:
        if params.get(LAST):
            positioned, start, stop = True, max(0, len(rows) - size), len(rows)
    stop = min(stop, len(rows))
    shown = rows[start:stop]
    page = KeysetPage(
        shown,
        has_next=stop < len(rows) and bool(shown),
        has_previous=start > 0 and bool(shown),
        invalid=invalid,
        positioned=positioned,
    )
    if shown:
        page.next_cursor = encode_cursor(list(keys[stop - 1]))
        page.previous_cursor = encode_cursor(list(keys[start]))
    return page
