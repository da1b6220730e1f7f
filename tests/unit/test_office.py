from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from agent.config import PracticeConfig, office_hours
from agent.core.office import RouteDecision, is_office_open, parse_span, route_call

P = office_hours(PracticeConfig())  # America/New_York, Mon-Thu 08-17, Fri 08-16


def ny(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo("America/New_York"))


def test_open_and_closed_in_practice_time_zone() -> None:
    assert is_office_open(ny(2026, 11, 23, 9), P)  # Monday 9:00
    assert not is_office_open(ny(2026, 11, 23, 17), P)  # closes at 17:00
    assert not is_office_open(ny(2026, 11, 27, 16, 30), P)  # Friday closes at 16:00
    assert not is_office_open(ny(2026, 11, 28, 10), P)  # Saturday
    # 14:00 UTC is 09:00 in New York: open.
    assert is_office_open(datetime(2026, 11, 23, 14, 0, tzinfo=UTC), P)


def test_holidays_close_the_office() -> None:
    p = dataclasses.replace(P, holidays=frozenset({"2026-11-26"}))
    assert not is_office_open(ny(2026, 11, 26, 10), p)


def test_naive_time_and_bad_span_are_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        is_office_open(datetime(2026, 11, 23, 9), P)
    with pytest.raises(ValueError, match="08:00-17:00"):
        parse_span("8 to 5")
    with pytest.raises(ValueError, match="end before"):
        parse_span("17:00-08:00")


def test_route_call_soft_launch_capacity_health() -> None:
    day, night = ny(2026, 11, 23, 10), ny(2026, 11, 23, 22)

    def route(
        now: datetime, *, soft: bool = False, healthy: bool = True, active: int = 0
    ) -> RouteDecision:
        return route_call(
            now, P, after_hours_only=soft, healthy=healthy, active_calls=active, max_calls=4
        )

    assert route(day, soft=True).reason == "office_hours"
    assert route(night, soft=True).route == "agent"
    assert route(day).route == "agent"
    assert route(night, active=4).reason == "capacity"
    assert route(night, healthy=False).reason == "unhealthy"


def test_hours_sentence_groups_days() -> None:
    from agent.core.office import hours_sentence

    assert (
        hours_sentence(P.weekly)
        == "We're open Monday to Thursday, 8 AM to 5 PM, and Friday, 8 AM to 4 PM."
    )
    assert hours_sentence({"mon": "08:30-12:00", "wed": "08:30-12:00"}) == (
        "We're open Monday, 8:30 AM to 12 PM, and Wednesday, 8:30 AM to 12 PM."
    )
