"""Whole calls through the Asterisk stand-in: our ARI client, supervisor, media path and dialog, with
real synthesized caller speech (VAD and segmentation are real) and scripted recognition."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator

import pytest

from agent.core.pacer import split_frames
from tests.fakes.engines import UNCLEAR, ScriptedStt
from tests.integration.callkit import Kit, call_kit, voiced_seconds

pytestmark = pytest.mark.e2e


async def test_greeting_heard_and_caller_frames_received_bit_exact(tmp_path) -> None:
    async with call_kit(["what are your hours"], tmp=str(tmp_path)) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        greeting = caller.heard_ulaw()
        # The greeting is real audio: loud enough and about as long as the rendered prompt.
        expected_s = len(kit.sup.engines.prompts.get("greeting")) * 0.02
        assert voiced_seconds(greeting) > 0.5 * expected_s
        assert len(greeting) / 8000 >= 0.9 * expected_s

        spoken = kit.speech("what are your hours") + bytes([0xFF]) * 8000
        await caller.play(spoken)
        await kit.wait_listening()
        session = next(iter(kit.sup.sessions.values()))
        assert session.media is not None
        received = b"".join(p.payload for p in session.media.raw_received)
        sent = b"".join(split_frames(spoken))
        assert received == sent, "the agent must receive the caller's frames bit-exact"
        await caller.hangup()
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)
        assert kit.obs.outcomes == ["caller_hangup"]


async def test_agent_hangs_up_after_goodbye_and_releases_everything(tmp_path) -> None:
    async with call_kit(
        ["please take a message", "tell doctor patel i called", "no"], tmp=str(tmp_path)
    ) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        for line in ["please take a message", "tell doctor patel i called", "no"]:
            await kit.wait_listening()
            await kit.say(caller, line)
        await caller.wait_ended(20)
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)
        assert caller.hangup_by == "agent"
        assert kit.obs.outcomes == ["agent_hangup"]
        assert [r.kind for r in kit.records.records] == ["message"]
        assert kit.records.records[0].data["message"] == "tell doctor patel i called"
        await _assert_released(kit)


async def test_emergency_911_in_the_first_agent_turn_and_transfer_with_summary(tmp_path) -> None:
    async with call_kit(["i have chest pain", "yes"], tmp=str(tmp_path)) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        n_before = len(kit.obs.prompts)
        await kit.say(caller, "I have chest pain")
        await kit.wait_listening()
        first_turn = kit.obs.prompts[n_before:]
        assert "9 1 1" in first_turn[0]
        await kit.say(caller, "yes")
        phone = kit.sim.phone("clinician100")
        for _ in range(200):
            if kit.obs.transfers:
                break
            await asyncio.sleep(0.1)
        assert kit.obs.transfers == [("PJSIP/clinician100", "answered")]
        leg = phone.calls[-1]
        # The clinician heard the spoken summary before the patient was bridged.
        assert voiced_seconds(leg.heard_ulaw()) > 2.0
        assert any("chest_pain" in p for p in kit.obs.prompts)
        await caller.hangup()
        await leg.wait_ended(10)
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)
        await _assert_released(kit)


async def test_unanswered_urgent_transfer_becomes_urgent_message(tmp_path) -> None:
    async with call_kit(
        ["my child has a fever and a rash", "this is ann, call 555 0100"], tmp=str(tmp_path)
    ) as kit:
        kit.sim.phone("clinician100").behaviour = "noanswer"
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        await kit.say(caller, "My child has a fever and a rash")
        await kit.wait_listening(40)
        assert kit.obs.transfers == [("PJSIP/clinician100", "no_answer")]
        await kit.say(caller, "This is Ann, call me back")
        await kit.wait_listening()
        urgent = [r for r in kit.records.records if r.kind == "message"]
        assert urgent and urgent[0].urgent
        await caller.hangup()


async def test_crash_in_a_call_apologises_and_hands_back_to_front_desk(tmp_path) -> None:
    async with call_kit(["i need a refill"], tmp=str(tmp_path)) as kit:

        def broken(*_a, **_k):
            raise RuntimeError("model exploded")

        kit.sup.engines.nlu.understand = broken  # type: ignore[method-assign]
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        await kit.say(caller, "I need a refill")
        await asyncio.wait_for(kit.obs.ended_event.wait(), 20)
        assert kit.obs.outcomes == ["handed_back:error"]
        await asyncio.sleep(1.0)
        assert any("medagent-fallback" in step for step in caller.path), caller.path
        assert kit.sim.phone("frontdesk").calls, "the front desk must ring after a crash"
        await caller.hangup()


async def test_a_call_helper_that_fails_is_a_crash_not_a_hang_up(tmp_path) -> None:
    # The media pump dies mid-call (here: the VAD raises on the caller's first frames, as a
    # 30 ms RTP packet once made it). The caller is still there: they must hear the apology and
    # reach the front desk, not be left in Stasis as if they had hung up.
    async with call_kit(["i need a refill"], tmp=str(tmp_path)) as kit:

        class BrokenVad:
            def is_speech(self, frame: bytes) -> bool:
                raise ValueError("VAD frame must be 320 bytes")

        kit.sup.engines.make_vad = BrokenVad  # type: ignore[method-assign,assignment]
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        await kit.say(caller, "I need a refill")
        await asyncio.wait_for(kit.obs.ended_event.wait(), 20)
        assert kit.obs.outcomes == ["handed_back:error"]
        await asyncio.sleep(1.0)
        assert any("medagent-fallback" in step for step in caller.path), caller.path
        assert kit.sim.phone("frontdesk").calls, "the front desk must ring after a crash"
        await caller.hangup()


async def test_silent_caller_is_handed_to_staff(tmp_path) -> None:
    async with call_kit([], tmp=str(tmp_path)) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await asyncio.wait_for(kit.obs.ended_event.wait(), 40)
        assert kit.obs.outcomes == ["handed_back:no_input"]
        await caller.hangup()


async def test_over_capacity_goes_straight_to_fallback(tmp_path) -> None:
    async with call_kit([], max_calls=1, tmp=str(tmp_path)) as kit:
        first = await kit.sim.place_call("100", caller_number="5551111111")
        await kit.wait_listening()
        second = await kit.sim.place_call("100", caller_number="5552222222")
        for _ in range(50):
            if any("medagent-fallback" in s for s in second.path):
                break
            await asyncio.sleep(0.1)
        assert any("medagent-fallback" in s for s in second.path), second.path
        assert kit.sup.fallbacks == 1
        await first.hangup()
        await second.hangup()


async def test_websocket_drop_keeps_the_call_and_reconciles(tmp_path) -> None:
    async with call_kit(["what are your hours"], tmp=str(tmp_path)) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        await kit.sim.drop_websockets(close_frame=False)
        for _ in range(50):
            if kit.ari.connects >= 2:
                break
            await asyncio.sleep(0.1)
        assert kit.ari.connects >= 2
        assert len(kit.sup.sessions) == 1, "a live call survives a websocket drop"
        await caller.hangup()
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)


async def _assert_released(kit) -> None:
    for _ in range(50):
        if not kit.sup.sessions and not kit.sup.ports.in_use:
            break
        await asyncio.sleep(0.1)
    assert not kit.sup.sessions
    assert not kit.sup.ports.in_use
    assert len(kit.sup.calls) == 0
    status, bridges = await _get(kit, "/bridges")
    assert status == 200 and bridges == []


async def _get(kit, path: str):
    import httpx

    async with httpx.AsyncClient(auth=("medagent", "secret")) as c:
        r = await c.get(kit.cfg.ari.url + path)
        return r.status_code, r.json()


async def test_nothing_leaks_after_200_calls(tmp_path) -> None:
    """200 short calls (caller hangs up during the greeting), 20 at a time. Our HTTP client keeps a
    pool of keep-alive connections to the stand-in (two descriptors each, both ends being in this
    process), so the check is that nothing grows between the first and the last 100 calls."""
    async with call_kit([], max_calls=50, tmp=str(tmp_path)) as kit:

        async def one(i: int) -> None:
            caller = await kit.sim.place_call("100", caller_number=f"555000{i:04d}")
            await caller.wait_answered(10)
            await asyncio.sleep(0.2)
            await caller.hangup()

        async def batches(first: int) -> tuple[int, int]:
            for batch in range(5):
                await asyncio.gather(*(one(first + batch * 20 + i) for i in range(20)))
            await _assert_released(kit)
            await asyncio.sleep(0.5)
            gc.collect()
            return len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))

        tasks_100, fds_100 = await batches(0)
        tasks_200, fds_200 = await batches(100)
        for _ in range(20):  # short-lived tasks (keep-alive HTTP handlers) may still be ending
            if tasks_200 <= tasks_100 + 2:
                break
            await asyncio.sleep(0.1)
            tasks_200 = len(asyncio.all_tasks())
        assert kit.sup.total_calls == 200
        # A caller gone before the agent had set the call up is a hang-up, not a crash.
        assert not [o for o in kit.obs.outcomes if o in ("crashed", "handed_back:error")]
        ours = [
            t.get_name()
            for t in asyncio.all_tasks()
            if t.get_name().startswith(("call:", "media-clock:", "capacity:", "reap:"))
        ]
        assert ours == []
        assert tasks_200 <= tasks_100 + 2
        assert fds_200 <= fds_100 + 4
        status, channels = await _get(kit, "/channels")
        assert channels == []


async def test_caller_that_stops_sending_rtp_after_speaking_still_gets_an_answer(tmp_path) -> None:
    """Some phones send nothing during silence: the end of the utterance must still be seen."""
    async with call_kit(["what are your hours"], tmp=str(tmp_path)) as kit:
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        await caller.play(kit.speech("what are your hours"))  # no trailing silence at all
        await kit.wait_listening()
        assert kit.obs.words == ["what are your hours"]
        await caller.hangup()


@contextlib.asynccontextmanager
async def one_turn(
    tmp_path, first: str, second: str, said: str
) -> AsyncIterator[tuple[Kit, ScriptedStt, list[str]]]:
    """A call of one caller turn (``said``, as synthesized speech) that the first recogniser
    hears as ``first`` and the second model, if the call asks it, as ``second``. Yields the kit,
    the second recogniser and the agent's prompts after the turn; the caller hangs up after."""
    async with call_kit([first], tmp=str(tmp_path)) as kit:
        second_stt = ScriptedStt([second])
        kit.sup.engines.second_stt = second_stt
        caller = await kit.sim.place_call("100", caller_number="5551234567")
        await kit.wait_listening()
        n_before = len(kit.obs.prompts)
        await kit.say(caller, said)
        await kit.wait_listening()
        yield kit, second_stt, kit.obs.prompts[n_before:]
        await caller.hangup()
        await asyncio.wait_for(kit.obs.ended_event.wait(), 10)


def caller_turns(kit: Kit) -> list[str]:
    return [text for _, speaker, text, _ in kit.records.turns if speaker == "caller"]


async def test_an_emergency_only_the_second_recogniser_heard_gets_911_at_once(tmp_path) -> None:
    # The first recogniser hears "I think it twice": a symptom turn with no red flag. The second
    # (stt.second_model) hears the same audio again and catches "fainted": the caller is told to
    # dial 911 in the agent's very next turn, not after the screening question.
    heard = "i feel dizzy and i fainted twice"
    async with one_turn(tmp_path, "i feel dizzy and i think it twice", heard, heard) as (
        kit,
        second,
        prompts,
    ):
        assert "9 1 1" in prompts[0]
        assert second.heard_audio  # (more than once when a pause started a speculative pass)
        assert caller_turns(kit) == [heard]  # staff read the words that were acted on


async def test_a_request_that_is_not_about_health_is_heard_once(tmp_path) -> None:
    said = "what are your hours"
    async with one_turn(tmp_path, said, "i fainted", said) as (kit, second, prompts):
        assert second.heard_audio == []
        assert not any("9 1 1" in p for p in prompts)
        assert caller_turns(kit) == [said]


async def test_speech_the_first_recogniser_could_not_make_out_goes_to_the_second(
    tmp_path,
) -> None:
    # tiny.en could not make out the caller (an accent, another language): the larger model
    # hears the turn instead of the call treating it as a cough.
    said = "what are your hours"
    async with one_turn(tmp_path, UNCLEAR, said, said) as (kit, second, prompts):
        assert second.heard_audio
        assert any("open" in p.lower() for p in prompts)
        assert caller_turns(kit) == [said]
