"""Office hours and where a call should go. Pure: the time is passed in, and the hours come as an
``OfficeHours`` (``agent.config.office_hours`` builds it from ``[practice]``).

Used by the FastAGI ``route`` (soft-launch mode: during office hours calls go straight to staff), by
the supervisor's capacity check, and by the dialog (billing during hours, messages after hours).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class OfficeHours:
    timezone: str
    """The practice's IANA time zone, e.g. ``America/New_York``."""
    weekly: Mapping[str, str]
    """Weekday (``WEEKDAYS``) → ``"08:00-17:00"``; a day not named is closed."""
    holidays: Collection[str] = frozenset()
    """ISO dates (``2026-12-25``) the office is closed."""


def parse_span(span: str) -> tuple[time, time]:
    """``"08:00-17:00"`` → (08:00, 17:00). Raises ValueError naming the problem."""
    try:
        start_s, end_s = (part.strip() for part in span.split("-", 1))
        start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
    except ValueError:
        raise ValueError(f"office hours must look like 08:00-17:00, got {span!r}") from None
    if end <= start:
        raise ValueError(f"office hours end before they start: {span!r}")
    return start, end


def is_office_open(now: datetime, hours: OfficeHours) -> bool:
    """Whether the office is open at ``now`` (an aware datetime) in the practice's time zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(hours.timezone))
    if local.date().isoformat() in hours.holidays:
        return False
    span = hours.weekly.get(WEEKDAYS[local.weekday()])
    if not span:
        return False
    start, end = parse_span(span)
    return start <= local.time().replace(tzinfo=None) < end


Route = Literal["agent", "staff"]


@dataclass(frozen=True)
class RouteDecision:
    route: Route
    reason: str
    """``ok``, ``office_hours`` (soft launch), ``capacity``, ``unhealthy``."""


def route_call(
    now: datetime,
    hours: OfficeHours,
    *,
    after_hours_only: bool,
    healthy: bool,
    active_calls: int,
    max_calls: int,
) -> RouteDecision:
    """Where a new call goes: to the agent, or straight to staff (and why). ``after_hours_only``:
    the soft launch (``practice.mode``), where staff take the calls while the office is open."""
    if not healthy:
        return RouteDecision("staff", "unhealthy")
    if after_hours_only and is_office_open(now, hours):
        return RouteDecision("staff", "office_hours")
    if active_calls >= max_calls:
        return RouteDecision("staff", "capacity")
    return RouteDecision("agent", "ok")


_DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


def _clock(t: time) -> str:
    hour = t.hour % 12 or 12
    minutes = f":{t.minute:02d}" if t.minute else ""
    return f"{hour}{minutes} {'AM' if t.hour < 12 else 'PM'}"


def hours_sentence(office_hours: dict[str, str]) -> str:
    """The office hours as one spoken sentence, grouping days with the same hours:
    "We're open Monday to Thursday, 8 AM to 5 PM, and Friday, 8 AM to 4 PM."."""
    groups: list[tuple[list[str], str]] = []
    for day in WEEKDAYS:
        span = office_hours.get(day)
        if not span:
            continue
        start, end = parse_span(span)
        spoken = f"{_clock(start)} to {_clock(end)}"
        last_day = groups[-1][0][-1] if groups else None
        if groups and groups[-1][1] == spoken and last_day == WEEKDAYS[WEEKDAYS.index(day) - 1]:
            groups[-1][0].append(day)
        else:
            groups.append(([day], spoken))
    if not groups:
        return "The office has no regular opening hours set."
    parts = []
    for days, spoken in groups:
        names = (
            _DAY_NAMES[days[0]]
            if len(days) == 1
            else f"{_DAY_NAMES[days[0]]} to {_DAY_NAMES[days[-1]]}"
        )
        parts.append(f"{names}, {spoken}")
    joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + ", and " + parts[-1]
    return f"We're open {joined}."
