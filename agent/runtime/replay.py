"""A whole call replayed in text: a caller's lines, in order, through the real understander and
the dialog, with the demo directory and schedule answering its data commands.

``medagent eval --calls`` runs the blind multi-turn calls this way: each line answers whatever
the agent asked next (the caller goes on with their story), and the replay records after which
line the agent gave the 911 instruction, put the caller through to the on-call clinician, or
left an urgent message. Nothing is spoken or sent; the clock is fixed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.config import Config
from agent.config.core_settings import office_hours
from agent.core.dialog.commands import (
    BookSlot,
    CallStarted,
    CancelAppointment,
    Command,
    FindSlots,
    HandBack,
    Hangup,
    Heard,
    ListAppointments,
    Listen,
    LookupPatient,
    RescheduleAppointment,
    SaveRecord,
    Say,
    Transfer,
    TransferEnded,
)
from agent.core.dialog.machine import Dialog
from agent.core.office import is_office_open
from agent.runtime.practice_data import demo_services

DATA_COMMANDS = (
    LookupPatient,
    FindSlots,
    BookSlot,
    ListAppointments,
    CancelAppointment,
    RescheduleAppointment,
)
EMERGENCY_WORDS = ("dial 9 1 1",)


@dataclass
class Replay:
    agent: list[list[str]] = field(default_factory=list)
    """What the agent said after each caller line (index 0: after the greeting's first answer)."""
    emergency_after: int | None = None
    """The caller line after which the 911 instruction was given."""
    on_call_after: int | None = None
    """The caller line after which the on-call clinician was rung or an urgent message taken."""
    ended_after: int | None = None
    questions_before_emergency: int | None = None
    """Questions the agent asked between the danger line and the 911 instruction."""


def replay(
    lines: Sequence[str],
    understander: Any,
    dialog_settings: Any,
    cfg: Config,
    *,
    now: datetime,
    on_call: Sequence[str] = (),
) -> Replay:
    """Feed ``lines`` to a new dialog; see ``Replay``."""
    return asyncio.run(_replay(lines, understander, dialog_settings, cfg, now, tuple(on_call)))


async def _replay(
    lines: Sequence[str],
    understander: Any,
    settings: Any,
    cfg: Config,
    now: datetime,
    on_call: tuple[str, ...],
) -> Replay:
    dialog = Dialog(settings)
    services = demo_services(cfg.practice, now)
    out = Replay()
    # As a call would: the office's hours decide whether staff are there to take a transfer.
    office_open = is_office_open(now, office_hours(cfg.practice))
    commands = dialog.handle(CallStarted(now, caller_number="5550100", office_open=office_open))
    for index, line in enumerate(lines):
        listening = await _until_listen(dialog, commands, services, now, out, index - 1, on_call)
        if listening is None:
            out.ended_after = index - 1
            return out
        u = understander.understand(line, now=now)
        commands = dialog.handle(Heard(now, u))
        out.agent.append([])
    await _until_listen(dialog, commands, services, now, out, len(lines) - 1, on_call)
    return out


async def _until_listen(
    dialog: Dialog,
    commands: list[Command],
    services: Any,
    now: datetime,
    out: Replay,
    after: int,
    on_call: tuple[str, ...],
) -> list[Command] | None:
    """Carry out commands until the dialog listens (returns them) or the call ends (``None``)."""
    while True:
        follow: Any = None
        for cmd in commands:
            if isinstance(cmd, Say):
                if after >= 0:
                    out.agent[after].append(cmd.text)
                # The greeting's own emergency line (after -1) is not an answer to the caller.
                if (
                    after >= 0
                    and out.emergency_after is None
                    and any(w in cmd.text for w in EMERGENCY_WORDS)
                ):
                    out.emergency_after = after
            elif isinstance(cmd, SaveRecord) and cmd.urgent and out.on_call_after is None:
                out.on_call_after = after
            elif isinstance(cmd, Transfer):
                if out.on_call_after is None and set(cmd.targets) & set(on_call):
                    out.on_call_after = after
                follow = TransferEnded(now, "answered", cmd.targets[0])
                break
            elif isinstance(cmd, Listen):
                return commands
            elif isinstance(cmd, HandBack | Hangup):
                return None
            elif isinstance(cmd, DATA_COMMANDS):
                follow = await services.execute(cmd, now=now, actor="replay")
                break
        if follow is None:
            return None
        commands = dialog.handle(follow)
