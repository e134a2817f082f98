"""Business days in France: weekends and French public holidays do not count, neither for the
response deadlines (`add_business_days`) nor for the time-to-accept figures
(`business_days_between`). Every moment is local time in Europe/Paris (settings.TIME_ZONE)."""

from datetime import UTC, date, datetime, time, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from tests.factories import CaseFactory, NeedFactory, OrganisationFactory, ToolboxServiceFactory
from workflows import services
from workflows.business_days import add_business_days, business_days_between, is_business_day


def paris(year, month, day, hour=0, minute=0) -> datetime:
    """An aware moment, local time of Europe/Paris (the current time zone of the project)."""
    return timezone.make_aware(datetime.combine(date(year, month, day), time(hour, minute)))


def local(moment: datetime) -> datetime:
    return timezone.localtime(moment)


def test_the_project_time_zone_is_paris():
    assert str(timezone.get_current_timezone()) == "Europe/Paris"


@pytest.mark.parametrize(
    ("start", "days", "due"),
    [
        pytest.param(paris(2026, 3, 6, 17), 2, paris(2026, 3, 10, 17), id="friday-17h+2=tuesday-17h"),
        pytest.param(paris(2026, 3, 6, 17), 1, paris(2026, 3, 9, 17), id="friday+1=monday"),
        pytest.param(paris(2026, 3, 9, 9, 30), 4, paris(2026, 3, 13, 9, 30), id="within-one-week"),
        pytest.param(paris(2026, 3, 9, 9, 30), 5, paris(2026, 3, 16, 9, 30), id="monday+5=next-monday"),
        pytest.param(paris(2026, 3, 7, 10), 2, paris(2026, 3, 11), id="saturday+2=wednesday-midnight"),
        pytest.param(paris(2026, 3, 8, 23, 59), 2, paris(2026, 3, 11), id="sunday-late+2=wednesday-midnight"),
        pytest.param(paris(2026, 3, 7, 10), 0, paris(2026, 3, 9), id="saturday+0=monday-midnight"),
        pytest.param(paris(2026, 4, 30, 16), 1, paris(2026, 5, 4, 16), id="thursday-30-april+1=monday-4"),
        pytest.param(paris(2026, 5, 1, 10), 1, paris(2026, 5, 5), id="1-may itself: clock from monday 4"),
        pytest.param(paris(2026, 5, 7, 11), 1, paris(2026, 5, 11, 11), id="8-may (friday)"),
        pytest.param(paris(2026, 5, 13, 14), 1, paris(2026, 5, 15, 14), id="ascension 14 may"),
        pytest.param(paris(2026, 5, 22, 9), 1, paris(2026, 5, 26, 9), id="whit monday 25 may"),
        pytest.param(paris(2026, 7, 13, 10), 1, paris(2026, 7, 15, 10), id="14 july (tuesday)"),
        pytest.param(paris(2026, 4, 3, 17), 2, paris(2026, 4, 8, 17), id="friday+2 over easter monday"),
        pytest.param(paris(2026, 11, 10, 8), 1, paris(2026, 11, 12, 8), id="11 november"),
        pytest.param(paris(2026, 12, 24, 9), 1, paris(2026, 12, 28, 9), id="christmas eve+1=monday 28"),
        pytest.param(paris(2026, 12, 24, 9), 6, paris(2027, 1, 5, 9), id="christmas to new year"),
        pytest.param(paris(2026, 12, 31, 16), 1, paris(2027, 1, 4, 16), id="year boundary, 1 january"),
        pytest.param(paris(2027, 1, 1, 12), 1, paris(2027, 1, 5), id="new year's day: clock from monday 4"),
        pytest.param(paris(2027, 3, 26, 10), 1, paris(2027, 3, 30, 10), id="easter monday 2027-03-29"),
        pytest.param(paris(2027, 3, 25, 10), 2, paris(2027, 3, 30, 10), id="thursday+2 over easter 2027"),
        pytest.param(paris(2026, 3, 27, 17), 1, paris(2026, 3, 30, 17), id="over the spring DST change"),
        pytest.param(paris(2026, 10, 23, 17), 1, paris(2026, 10, 26, 17), id="over the autumn DST change"),
        pytest.param(paris(2026, 3, 10, 17), 0, paris(2026, 3, 10, 17), id="zero on a business day"),
    ],
)
def test_add_business_days(start, days, due):
    result = add_business_days(start, days)
    assert result == due
    # Same wall-clock time and offset as expected (CET in winter, CEST in summer).
    assert local(result).replace(tzinfo=None) == local(due).replace(tzinfo=None)
    assert local(result).utcoffset() == local(due).utcoffset()


def test_add_business_days_accepts_any_time_zone_and_answers_in_paris():
    utc_friday_16h = datetime(2026, 3, 6, 16, 0, tzinfo=UTC)  # 17:00 in Paris
    assert add_business_days(utc_friday_16h, 2) == paris(2026, 3, 10, 17)
    assert str(add_business_days(utc_friday_16h, 2).tzinfo) == "Europe/Paris"


def test_a_negative_number_of_days_is_refused():
    with pytest.raises(ValueError, match="positive"):
        add_business_days(paris(2026, 3, 10, 9), -1)


def test_public_holidays_are_not_business_days():
    for holiday in (
        date(2026, 1, 1),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 5, 8),
        date(2026, 5, 14),
        date(2026, 5, 25),
        date(2026, 7, 14),
        date(2026, 11, 11),
        date(2026, 12, 25),
        date(2027, 1, 1),
        date(2027, 3, 29),
    ):
        assert not is_business_day(holiday), holiday
    assert is_business_day(date(2026, 12, 24)) and is_business_day(date(2026, 12, 31))
    assert not is_business_day(date(2026, 3, 7)) and not is_business_day(date(2026, 3, 8))


@pytest.mark.parametrize(
    ("start", "end", "elapsed"),
    [
        pytest.param(paris(2026, 3, 6, 12), paris(2026, 3, 9, 12), 1.0, id="friday-noon→monday-noon"),
        pytest.param(paris(2026, 3, 9, 9), paris(2026, 3, 9, 21), 0.5, id="half a day"),
        pytest.param(paris(2026, 3, 7, 8), paris(2026, 3, 8, 20), 0.0, id="within a weekend"),
        pytest.param(paris(2026, 3, 7, 8), paris(2026, 3, 9, 6), 0.25, id="from saturday to monday 6h"),
        pytest.param(paris(2026, 4, 30, 12), paris(2026, 5, 4, 12), 1.0, id="over 1 may and the weekend"),
        pytest.param(paris(2026, 5, 13, 12), paris(2026, 5, 15, 12), 1.0, id="over ascension"),
        pytest.param(paris(2026, 12, 24, 12), paris(2027, 1, 4, 12), 5.0, id="over christmas and new year"),
        pytest.param(paris(2027, 3, 26, 12), paris(2027, 3, 30, 12), 1.0, id="over easter monday 2027"),
        pytest.param(paris(2026, 3, 27, 12), paris(2026, 3, 30, 12), 1.0, id="over the spring DST change"),
        pytest.param(paris(2026, 3, 9, 9), paris(2026, 3, 16, 9), 5.0, id="one full week"),
    ],
)
def test_business_days_between(start, end, elapsed):
    assert business_days_between(start, end) == pytest.approx(elapsed)


def test_business_days_between_is_zero_when_the_end_is_not_after_the_start():
    start = paris(2026, 3, 10, 9)
    assert business_days_between(start, start) == 0.0
    assert business_days_between(start, start - timedelta(days=3)) == 0.0


def test_property_every_deadline_is_a_business_day_n_business_days_later():
    """For every start in 2026-2027 (several times of day) and n in 0..10: the deadline falls on
    a business day, at the same time of day when the start is a business day (the start itself
    when n = 0), at midnight when the clock had to wait for a business day; and exactly n
    business days elapse from the start to the deadline."""
    failures = []
    day = date(2026, 1, 1)
    while day <= date(2027, 12, 31):
        for clock in (time(0, 0), time(9, 30), time(23, 59)):
            start = timezone.make_aware(datetime.combine(day, clock))
            for n in range(11):
                due = local(add_business_days(start, n))
                problems = []
                if not is_business_day(due.date()):
                    problems.append("not a business day")
                if is_business_day(day):
                    if due.time() != clock:
                        problems.append("time of day changed")
                    if n == 0 and due != start:
                        problems.append("n=0 is not the start")
                elif due.time() != time(0, 0):
                    problems.append("clock did not start at midnight")
                if due < start:
                    problems.append("before the start")
                elapsed = business_days_between(start, due)
                if elapsed != pytest.approx(n):
                    problems.append(f"{elapsed} business days elapsed")
                if problems:
                    failures.append(f"{start:%a %Y-%m-%d %H:%M} + {n} = {due:%a %Y-%m-%d %H:%M}: {problems}")
        day += timedelta(days=1)
    assert not failures, f"{len(failures)} failures, first ones: {failures[:10]}"


@pytest.mark.django_db
@pytest.mark.parametrize("explicit_service", [True, False], ids=["service", "category"])
def test_request_deadline_is_the_service_response_time_in_business_days(site, referent, explicit_service):
    case = CaseFactory(site=site, referent=referent, diagnosed=True)
    need = NeedFactory(case=case, created_by=referent, category="mobility")
    provider = OrganisationFactory(name="Plateforme mobilité")
    service = ToolboxServiceFactory(
        category="mobility", provider=provider, territories=[site.territory], response_time_days=3
    )
    opened_at = paris(2026, 4, 30, 17)  # Thursday; 1 May is a holiday, then the weekend
    with mock.patch("workflows.flows.timezone.now", return_value=opened_at):
        request = services.request_open(
            actor=referent,
            case=case,
            need=need,
            brief="Mobilité pour 3 recrues",
            **({"service": service} if explicit_service else {"category": "mobility"}),
        )
    assert request.provider == provider
    assert request.routed_at == opened_at
    assert request.deadline == add_business_days(opened_at, 3)
    assert request.deadline == paris(2026, 5, 6, 17)  # Mon 4, Tue 5, Wed 6 May
