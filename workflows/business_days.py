"""Business days in France: weekends and French public holidays (the `holidays` package) are
not counted. Response deadlines of the toolbox are expressed in business days."""

from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays
from django.utils import timezone


@lru_cache(maxsize=32)
def _french_holidays(year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays("FR", years=[year]).keys())


def is_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _french_holidays(day.year)


def add_business_days(start: datetime, days: int) -> datetime:
    """The moment `days` business days after `start`, at the same local time of day.

    A request routed on Friday at 17:00 with 2 business days is due on Tuesday at 17:00, or on
    Wednesday at 17:00 when that Monday is a public holiday. A request routed on a Saturday starts
    its clock on Monday at midnight: with 2 business days it is due on Wednesday at 00:00, the end
    of Tuesday.
    """
    if days < 0:
        raise ValueError("days must be positive")
    local = timezone.localtime(start)
    if not is_business_day(local.date()):
        # The clock starts when work starts: at midnight of the next business day.
        day = local.date()
        while not is_business_day(day):
            day += timedelta(days=1)
        local = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    day = local.date()
    remaining = days
    while remaining:
        day += timedelta(days=1)
        if is_business_day(day):
            remaining -= 1
    result = datetime.combine(day, local.timetz().replace(tzinfo=None))
    return timezone.make_aware(result, timezone.get_current_timezone())


def business_days_between(start: datetime, end: datetime) -> float:
    """Elapsed business days from `start` to `end` (fractional), for the time-to-accept figures."""
    if end <= start:
        return 0.0
    start_local, end_local = timezone.localtime(start), timezone.localtime(end)
    total = 0.0
    cursor = start_local
    while cursor.date() <= end_local.date():
        day_start = timezone.make_aware(datetime.combine(cursor.date(), datetime.min.time()))
        day_end = day_start + timedelta(days=1)
        if is_business_day(cursor.date()):
            overlap = min(day_end, end_local) - max(day_start, start_local)
            total += max(overlap.total_seconds(), 0) / 86400
        cursor = day_end
    return total
