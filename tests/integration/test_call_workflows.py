"""Clinical workflows through the Asterisk stand-in: real call session, real media path, the
dialog's data commands carried out against the in-memory directory and schedule, scripted words.

The keyword understanding of ``tests/fakes`` knows intents only; these calls also need the values a
caller gives (birth date, drug name), so a small extension reads them from the scripted text.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import datetime

import pytest

from agent.core.dialog.commands import Expect
from agent.core.understanding import Entity, Understanding
from tests.fakes.engines import KeywordNlu
from tests.integration.callkit import call_kit

pytestmark = pytest.mark.e2e

_MONTHS = "january february march april may june july august september october november december"


class WorkflowNlu(KeywordNlu):
    def understand(
        self,
        text: str,
        *,
        now: datetime,
        expect: Expect = "open",
        alternatives: tuple[str, ...] = (),
        transcript: str | None = None,
    ) -> Understanding:
        u = super().understand(text, now=now, expect=expect, alternatives=alternatives)
        t = text.lower()
        ents = list(u.entities)
        dob = re.search(rf"\b({_MONTHS.replace(' ', '|')}) (\d{{1,2}}) (\d{{4}})\b", t)
        if dob:
            month = _MONTHS.split().index(dob.group(1)) + 1
            iso = f"{dob.group(3)}-{month:02d}-{int(dob.group(2)):02d}"
            ents.append(Entity("dob", dob.group(0), iso))
        for drug in ("lisinopril", "metformin", "oxycodone"):
            if drug in t:
                ents.append(Entity("medication", drug, drug))
        if "cvs" in t:
            where = {"chain": "CVS", "location": "Main Street", "known": True}
            ents.append(Entity("pharmacy", "cvs on main street", where))
        return replace(u, entities=ents)


async def _converse(kit, caller, lines: list[str]) -> None:
    for line in lines:
        await kit.wait_listening(30)
        await kit.say(caller, line)


async def test_refill_with_identification_read_back_and_goodbye(tmp_path) -> None:
    script = [
        "refill of lisinopril",
        "mary jones",
        "march 4 1962",
        "ten milligrams",
        "the cvs on main street",
        "about three days",
        "no allergies",
        "yes",
        "no",
    ]
    async with call_kit(script, tmp=str(tmp_path)) as kit:
        kit.sup.engines.nlu = WorkflowNlu()
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await _converse(kit, caller, script)
        await caller.wait_ended(30)
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)
        assert kit.obs.outcomes == ["agent_hangup"]
        refills = [r for r in kit.records.records if r.kind == "refill"]
        assert len(refills) == 1, [r.kind for r in kit.records.records]
        data = refills[0].data
        assert data["patient_id"] == "demo-1" and data["verified"] is True
        assert data["medication"] == "lisinopril" and data["on_medication_list"] is True
        assert data["days_left"] == 3
        assert any("A refill of lisinopril" in p for p in kit.obs.prompts), "read back first"
