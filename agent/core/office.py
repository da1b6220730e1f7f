"""Office hours and where a call should go. Pure: the time is passed in.

Used by the FastAGI ``route`` (soft-launch mode: during office hours calls go straight to staff), by
the supervisor's capacity check, and by the dialog (billing during hours, messages after hours).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from agent.config import PracticeConfig

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


def is_office_open(now: datetime, practice: PracticeConfig) -> bool:
    """Whether the office is open at ``now`` (an aware datetime) in the practice's time zone."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(ZoneInfo(practice.timezone))
    if local.date().isoformat() in practice.holidays:
        return False
    span = practice.office_hours.get(WEEKDAYS[local.weekday()])
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
    now: datetime, practice: PracticeConfig, *, healthy: bool, active_calls: int, max_calls: int
) -> RouteDecision:
    """Where a new call goes: to the agent, or straight to staff (and why)."""
    if not healthy:
        return RouteDecision("staff", "unhealthy")
    if practice.mode == "after_hours_only" and is_office_open(now, practice):
        return RouteDecision("staff", "office_hours")
    if active_calls >= max_calls:
        return RouteDecision("staff", "capacity")
    return RouteDecision("agent", "ok")
