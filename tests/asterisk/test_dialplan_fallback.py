"""Our dialplan in the real Asterisk: it loads cleanly, and a call ends with a person or a mailbox
whenever the agent is absent, slow, or hands the call back."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from real_asterisk import DIALPLANS, AriEvents, RealAsterisk, RealCaller, SipPhone

from agent.adapters.asterisk_conf import dialplan, load
from agent.config import TransferConfig
from agent.pbxsim.callers import synthesize_caller

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]
Phone = Callable[[str, str], SipPhone]

# Source files whose complaints would be about our configuration (the rest of the boot log is
# modules we do not use complaining about their own missing files).
OUR_SOURCES = re.compile(
    r"\] (pbx_config|pbx|config|http|manager|res_rtp_asterisk|chan_rtp|app_stasis|app_dial"
    r"|app_stack|(res_ari|ari/|res_pjsip|res_stasis)[\w/]*)\.c:"
)


def varset(name: str, value: str | None = None) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (
        e.get("type") == "ChannelVarset"
        and e.get("variable") == name
        and (value is None or e.get("value") == value)
    )


def test_dialplan_loads_without_warning(asterisk: RealAsterisk) -> None:
    complaints = [
        line
        for line in asterisk.log_lines("WARNING", "ERROR")
        if OUR_SOURCES.search(line) or "Error loading module" in line
    ]
    assert complaints == []
    ours = dialplan(load(DIALPLANS / "medagent.conf") + load(DIALPLANS / "medagent-settings.conf"))
    for name, context in ours.items():
        shown = asterisk.cli(f"dialplan show {name}")
        assert f"Context '{name}' created by 'pbx_config'" in shown, shown
        for ext in context.extensions:
            assert f"'{ext}' =>" in shown, (name, ext, shown)
    transfer = TransferConfig()
    shown = asterisk.cli(f"dialplan show {transfer.fallback_extension}@{transfer.fallback_context}")
    assert f"{transfer.fallback_priority}. NoOp(medagent fallback)" in shown, shown


async def test_ari_answers_our_user_and_refuses_others(
    asterisk: RealAsterisk, ari_http: httpx.AsyncClient
) -> None:
    r = await ari_http.get("/asterisk/info")
    assert r.status_code == 200
    assert r.json()["system"]["version"]
    async with httpx.AsyncClient(base_url=asterisk.ari_url, timeout=5.0) as anonymous:
        assert (await anonymous.get("/asterisk/info")).status_code == 401
        wrong = await anonymous.get("/asterisk/info", auth=("medagent", "secret"))
        assert wrong.status_code == 401


async def test_no_agent_falls_back_to_front_desk(
    asterisk: RealAsterisk, ari_tap: AriEvents, dial: Dial, desk_phone: Phone
) -> None:
    phone = desk_phone("frontdesk", "answer")
    caller = await dial(DID)
    reason = await ari_tap.wait_for(varset("MEDAGENT_REASON", "agent-unavailable"), 5)
    await caller.answered(timeout_s=5)
    assert reason["channel"]["caller"]["number"] == "5550001234"
    # sipp echoes our RTP: the caller hears its own audio back through the front desk phone, and
    # nothing else on this path makes sound. (Not bit-exact: see test_agent_media.)
    ramp = bytes(range(0x10, 0x70)) * 20
    await caller.send(ramp)
    heard = await caller.wait_heard(len(ramp) // 2, timeout_s=5)
    assert sum(b not in (0xFF, 0x7F) for b in heard) > len(ramp) // 2
    await caller.hangup()
    assert await phone.wait(10) == 0


async def test_front_desk_not_answering_goes_to_voicemail(
    asterisk: RealAsterisk, ari_tap: AriEvents, dial: Dial, desk_phone: Phone
) -> None:
    phone = desk_phone("frontdesk", "noanswer")
    inbox = asterisk.astrun / "spool" / "voicemail" / "default" / "100" / "INBOX"
    before = set(inbox.glob("msg*.txt")) if inbox.is_dir() else set()
    caller = await dial(DID)
    await ari_tap.wait_for(varset("MEDAGENT_REASON", "agent-unavailable"), 5)
    # Front desk rings for MEDAGENT_FRONTDESK_RING_S (3 s in the test box), then app_voicemail
    # answers for the practice's box (100@default).
    await caller.answered(timeout_s=3 + 5)
    # The mailbox's greeting ("... is unavailable. Please leave your message after the tone")
    # reaches the caller: several seconds of sound, not silence.
    heard = await caller.wait_heard(8000 * 4, timeout_s=10)
    assert sum(b not in (0xFF, 0x7F) for b in heard) > 8000
    # The caller speaks through the greeting and the beep and on into the recording, then hangs up.
    message = synthesize_caller(
        "Hello, this is a test message for the front desk. Please call me back this afternoon.",
        "us-male",
    )
    await caller.send(message + message)
    await caller.hangup()
    assert await phone.wait(10) == 0  # it rang, and was cancelled (487) as scripted

    new: list[Path] = []
    for _ in range(50):  # app_voicemail writes the message when the caller's channel goes
        if new := sorted(set(inbox.glob("msg*.txt")) - before):
            break
        await asyncio.sleep(0.2)
    (info,) = new
    text = info.read_text()
    # This call's message: left from the leg that ran our dialplan for the practice's number.
    # (Its callerid reads "Unknown" for a call originated over ARI, though ARI shows the number.)
    assert f"callerchan=Local/{DID}@medagent-inbound" in text, text
    duration = int(re.search(r"^duration=(\d+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert duration >= 2, text
    recording = info.with_suffix(".wav")
    assert recording.is_file() and recording.stat().st_size > 8000 * 2 * 2


async def test_agent_that_does_not_answer_loses_the_call_to_the_front_desk(
    asterisk: RealAsterisk, agent_app: AriEvents, ari_tap: AriEvents, dial: Dial, desk_phone: Phone
) -> None:
    phone = desk_phone("frontdesk", "answer")
    caller = await dial(DID)
    start = await agent_app.wait_for(lambda e: e.get("type") == "StasisStart", 5)
    # The agent sees the caller's number and the dialed number, though on the Local leg.
    assert start["channel"]["caller"]["number"] == "5550001234"
    assert start["args"] == [DID]
    await ari_tap.wait_for(varset("MEDAGENT_REASON", "agent-no-answer"), 2 + 3)
    gone = await agent_app.wait_for(
        lambda e: e.get("type") == "StasisEnd" and e["channel"]["id"] == start["channel"]["id"], 2
    )
    assert gone
    await caller.answered(timeout_s=5)
    await caller.hangup()
    assert await phone.wait(10) == 0


async def test_agent_hands_the_call_back_with_a_reason(
    asterisk: RealAsterisk,
    agent_app: AriEvents,
    ari_tap: AriEvents,
    ari_http: httpx.AsyncClient,
    dial: Dial,
    desk_phone: Phone,
) -> None:
    phone = desk_phone("frontdesk", "answer")
    caller = await dial(DID)
    start = await agent_app.wait_for(lambda e: e.get("type") == "StasisStart", 5)
    channel = start["channel"]["id"]
    (await ari_http.post(f"/channels/{channel}/answer")).raise_for_status()
    await caller.answered(timeout_s=5)
    r = await ari_http.post(
        f"/channels/{channel}/variable",
        params={"variable": "MEDAGENT_REASON", "value": "caller-asked-for-staff"},
    )
    r.raise_for_status()
    transfer = TransferConfig()
    r = await ari_http.post(
        f"/channels/{channel}/continue",
        params={
            "context": transfer.fallback_context,
            "extension": transfer.fallback_extension,
            "priority": str(transfer.fallback_priority),
        },
    )
    assert r.status_code == 204
    dialed = await ari_tap.wait_for(
        lambda e: (
            e.get("type") == "Dial"
            and e.get("dialstatus") == "ANSWER"
            and e.get("peer", {}).get("name", "").startswith("PJSIP/frontdesk")
        ),
        5,
    )
    assert dialed["caller"]["id"] == channel
    reasons = [
        e["value"]
        for e in ari_tap.of_type("ChannelVarset")
        if e["variable"] == "MEDAGENT_REASON" and e["channel"]["id"] == channel
    ]
    assert reasons[-1] == "caller-asked-for-staff"
    await caller.hangup()
    assert await phone.wait(10) == 0
    await asyncio.sleep(0)


async def test_after_hours_only_mode_sends_office_hours_calls_to_staff(
    asterisk: RealAsterisk, agent_app: AriEvents, ari_tap: AriEvents, dial: Dial, desk_phone: Phone
) -> None:
    before = asterisk.settings
    try:
        asterisk.use_settings(
            dataclasses.replace(before, mode="after_hours_only", office_open=True)
        )
        phone = desk_phone("frontdesk", "answer")
        caller = await dial(DID)
        await ari_tap.wait_for(varset("MEDAGENT_REASON", "office-hours"), 5)
        await caller.answered(timeout_s=5)
        await caller.hangup()
        assert await phone.wait(10) == 0
        assert agent_app.of_type("StasisStart") == []  # the agent never saw it

        asterisk.use_settings(
            dataclasses.replace(before, mode="after_hours_only", office_open=False)
        )
        closed = await dial(DID)
        start = await agent_app.wait_for(lambda e: e.get("type") == "StasisStart", 5)
        assert start["args"] == [DID]
        await closed.hangup()
    finally:
        asterisk.use_settings(before)
