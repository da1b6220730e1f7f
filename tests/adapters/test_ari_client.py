"""AriClient against the fake ARI on 127.0.0.1, replaying the recorded Asterisk 23 traces."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agent.adapters.ari.client import AriClient, backoff_delay, events_url
from agent.adapters.ari.models import (
    ChannelDtmfReceived,
    Connected,
    Disconnected,
    Event,
    PlaybackFinished,
    StasisStart,
    UnknownEvent,
)
from agent.config import AriConfig
from agent.errors import (
    AriBadRequest,
    AriConflict,
    AriConnectionError,
    AriError,
    AriHttpError,
    AriNotFound,
    AriServerError,
    AriUnauthorized,
    AriUnprocessable,
)
from tests.fakes.fake_ari import FakeAri, load_trace, query_key, trace_events, trace_rest

CALLER = "1795737644.7"
EXTERNAL_MEDIA = "1795737644.8"
BRIDGE = "05983ec6-42e6-4d76-8b93-e7df0befaed3"


@pytest.fixture
def traces(asterisk_reference: Path) -> Path:
    return asterisk_reference / "traces"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAri]:
    server = FakeAri()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def config(fake: FakeAri, **overrides: Any) -> AriConfig:
    settings: dict[str, Any] = {
        "url": fake.url,
        "username": "medagent",
        "password": "secret",
        "app": "medical-agent",
        "request_timeout_s": 2.0,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    settings.update(overrides)
    return AriConfig(**settings)


async def next_item(stream: Any, timeout_s: float = 2.0) -> Any:
    return await asyncio.wait_for(stream.get(), timeout_s)


async def next_of(stream: Any, kind: type, timeout_s: float = 3.0) -> Any:
    """Skip to the next item of ``kind`` (Disconnected may or may not precede a reconnect)."""
    async with asyncio.timeout(timeout_s):
        while True:
            item = await stream.get()
            if isinstance(item, kind):
                return item


class Ticker:
    """Proves the loop is not starved: counts 5 ms sleeps while the client reconnects."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task = asyncio.create_task(self._run(), name="test-ticker")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.005)
            self.ticks += 1

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


# --------------------------------------------------------------------------------------------------
# Events


async def test_lifecycle_trace_parses_into_typed_events_in_order(
    fake: FakeAri, traces: Path
) -> None:
    recorded = trace_events(load_trace(traces / "ari_call_lifecycle.jsonl"))
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        assert await next_item(events) == Connected(reconnect=False)
        await fake.wait_ws_open()
        for event in recorded:
            await fake.send_event(event)
        received = [await next_item(events) for _ in recorded]
    assert [type(e).__name__ for e in received] == [e["type"] for e in recorded]
    assert not any(isinstance(e, UnknownEvent) for e in received)
    start = received[0]
    assert isinstance(start, StasisStart)
    assert start.channel.id == CALLER and start.channel.state == "Ring"
    assert start.channel.dialplan.exten == "100"
    (dtmf,) = [e for e in received if isinstance(e, ChannelDtmfReceived)]
    assert (dtmf.digit, dtmf.duration_ms, dtmf.channel.id) == ("1", 100, CALLER)


async def test_channel_events_route_each_calls_channels_and_bridge(
    fake: FakeAri, traces: Path
) -> None:
    recorded = trace_events(load_trace(traces / "ari_call_lifecycle.jsonl"))
    async with AriClient(config(fake)) as ari:
        caller = ari.channel_events(CALLER)
        media = ari.channel_events(EXTERNAL_MEDIA)
        whole_call = ari.channel_events(CALLER)
        whole_call.follow_channel(EXTERNAL_MEDIA)
        whole_call.follow_bridge(BRIDGE)
        other = ari.channel_events("no-such-call")
        await ari.wait_connected(2.0)
        for event in recorded:
            await fake.send_event(event)
        # One websocket delivers in order: once this marker is routed, all earlier events are.
        all_events = ari.subscribe()
        await fake.send_event({"type": "ChannelTalkingStarted", "channel": {"id": CALLER}})
        await next_of(all_events, UnknownEvent)

        def drain(stream: Any) -> list[Event]:
            out = []
            while (item := stream.get_nowait()) is not None:
                out.append(item)
            return out

        caller_events, media_events = drain(caller), drain(media)
        call_events, other_events = drain(whole_call), drain(other)

    def mentions(raw: dict[str, Any], channel_id: str) -> bool:
        ids = {raw.get(k, {}).get("id") for k in ("channel", "peer", "caller")}
        target = raw.get("playback", {}).get("target_uri", "")
        return channel_id in ids or target == f"channel:{channel_id}"

    expected_caller = [e["type"] for e in recorded if mentions(e, CALLER)] + ["UnknownEvent"]
    assert [type(e).__name__ for e in caller_events] == expected_caller
    expected_media = [e["type"] for e in recorded if mentions(e, EXTERNAL_MEDIA)]
    assert "Dial" in expected_media  # Dial names the externalMedia channel as ``peer``
    assert [type(e).__name__ for e in media_events] == expected_media
    # Following two channels and the bridge: every event of the call, each exactly once.
    assert len(call_events) == len(recorded) + 1
    assert any(
        isinstance(e, PlaybackFinished) and e.playback.target_uri == f"bridge:{BRIDGE}"
        for e in call_events
    )
    assert other_events == []


async def test_unknown_event_type_is_delivered_and_bad_frames_are_skipped(fake: FakeAri) -> None:
    secret_name = "Jane Patient"
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        await next_of(events, Connected)
        with capture_logs() as logs:
            await fake.send_raw('{"type": "StasisStart", "channel": ')  # cut off
            await fake.send_raw("[1, 2, 3]")
            await fake.send_event({"type": "StasisStart", "args": []})  # no channel
            await fake.send_event(
                {"type": "StasisStart", "channel": {"id": 7, "caller": {"name": secret_name}}}
            )
            for _ in range(2):
                await fake.send_event(
                    {"type": "ChannelTalkingStarted", "channel": {"id": CALLER}, "x": 1}
                )
            await fake.send_event({"type": "StasisStart", "channel": {"id": CALLER}})
            first, second, third = [await next_item(events) for _ in range(3)]
    assert isinstance(first, UnknownEvent) and first.type == "ChannelTalkingStarted"
    assert first.raw["x"] == 1
    assert isinstance(second, UnknownEvent)
    assert isinstance(third, StasisStart) and third.channel.id == CALLER
    skipped = [entry for entry in logs if entry["event"] == "ari event skipped"]
    # The exception's type, and our own parser's field path; never a decoder's or a value.
    assert [(e["reason"], e["error"], e.get("detail")) for e in skipped] == [
        ("not_json", "JSONDecodeError", None),
        ("not_object", "EventFormatError", "ARI event: expected a JSON object, got a list"),
        ("invalid", "EventFormatError", "StasisStart: missing required field 'channel'"),
    ]
    assert ari.bad_frames == {"not_json": 1, "not_object": 1, "invalid": 2}
    unknown = [entry for entry in logs if "UnknownEvent" in entry["event"]]
    assert len(unknown) == 1  # logged once per type, not per event
    assert secret_name not in repr(logs)


async def test_bad_frames_are_counted_drops_and_the_websocket_stays_up(fake: FakeAri) -> None:
    """A frame nested thousands deep used to raise RecursionError out of the reader: the
    websocket reconnected and the events in between were lost."""
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        await next_of(events, Connected)
        await fake.wait_ws_open()
        with capture_logs() as logs:
            await fake.send_raw("[" * 100_000 + "]" * 100_000)
            await fake.send_raw(
                '{"type": "StasisStart", "channel": {"id": "x", "channelvars": '
                + '{"a":' * 50_000
                + "1"
                + "}" * 50_000
                + "}}"
            )
            await fake.send_raw(
                '{"type": "ChannelVarset", "channel": {"id": "x"}, "variable":'
                + " [" * 40
                + "]" * 40
                + "}"
            )
            await fake.send_raw("42")
            await fake.send_raw('{"type": "StasisStart", "channel": {"id": 1.5}}')
            assert fake._ws is not None
            await fake._ws.send_bytes(b'{"type": "\xc3\x28"}')  # binary, not UTF-8
            await fake.send_event({"type": "StasisStart", "channel": {"id": CALLER}})
            item = await next_item(events)
        assert isinstance(item, StasisStart) and item.channel.id == CALLER  # nothing in between
        assert ari.connects == 1
        assert ari.bad_frames == {"too_deep": 3, "not_object": 1, "invalid": 1, "not_json": 1}
        skipped = [e for e in logs if e["event"] == "ari event skipped"]
        assert {e["error"] for e in skipped} <= {
            "RecursionError",
            "EventFormatError",
            "UnicodeDecodeError",
            "JSONDecodeError",
        }
        assert not any("events task failed" in e["event"] for e in logs)


async def test_slow_consumer_loses_oldest_events_and_never_blocks_the_reader(
    fake: FakeAri,
) -> None:
    async with AriClient(config(fake)) as ari:
        slow = ari.subscribe(maxsize=3)
        fast = ari.subscribe()
        await next_of(slow, Connected)
        await next_of(fast, Connected)
        with capture_logs() as logs:
            for digit in "0123456789":
                await fake.send_event(
                    {"type": "ChannelDtmfReceived", "digit": digit, "channel": {"id": CALLER}}
                )
            fast_digits = [(await next_item(fast)).digit for _ in range(10)]
    assert fast_digits == list("0123456789")
    slow_digits = []
    while (item := slow.get_nowait()) is not None:
        assert isinstance(item, ChannelDtmfReceived)
        slow_digits.append(item.digit)
    assert slow_digits == ["7", "8", "9"]
    assert slow.dropped == 7
    assert [e["dropped"] for e in logs if e["event"].startswith("ari queue full")] == [1]


async def test_wait_for_matches_a_later_event_or_times_out(fake: FakeAri) -> None:
    async with AriClient(config(fake)) as ari:
        await ari.wait_connected(2.0)
        waiting = asyncio.create_task(
            ari.wait_for(lambda e: isinstance(e, ChannelDtmfReceived) and e.digit == "5", 2.0)
        )
        await asyncio.sleep(0)
        for digit in "45":
            await fake.send_event(
                {"type": "ChannelDtmfReceived", "digit": digit, "channel": {"id": CALLER}}
            )
        event = await waiting
        assert isinstance(event, ChannelDtmfReceived) and event.digit == "5"
        with pytest.raises(TimeoutError):
            await ari.wait_for(lambda e: False, 0.05)
        assert ari._waiters == []


async def test_close_cancels_the_events_task_and_ends_streams(fake: FakeAri) -> None:
    ari = AriClient(config(fake))
    ari.start()
    events = ari.subscribe()
    await next_of(events, Connected)
    task = ari._task
    assert task is not None and task.get_name() == "ari-events:medical-agent"
    await ari.close()
    assert task.done()
    with pytest.raises(StopAsyncIteration):
        await next_item(events)
    assert [item async for item in events] == []


# --------------------------------------------------------------------------------------------------
# Reconnect


async def test_reconnects_after_close_frame(fake: FakeAri) -> None:
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        assert await next_item(events) == Connected(reconnect=False)
        await fake.wait_ws_open()
        await fake.close_ws(1001)
        assert isinstance(await next_item(events), Disconnected)
        assert await next_item(events) == Connected(reconnect=True)
        assert ari.connects == 2
        await fake.wait_ws_open()
        await fake.send_event({"type": "StasisEnd", "channel": {"id": CALLER}})
        assert type(await next_item(events)).__name__ == "StasisEnd"


async def test_reconnects_after_drop_without_close_frame_and_loop_keeps_running(
    fake: FakeAri,
) -> None:
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        await next_of(events, Connected)
        await fake.wait_ws_open()
        ticker = Ticker()
        with capture_logs() as logs:
            fake.abort_ws()  # Asterisk ``core stop now``: the transport dies, no close frame
            dropped = await next_item(events)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await next_item(events) == Connected(reconnect=True)
            outage_s = loop.time() - started
        await ticker.stop()
    assert isinstance(dropped, Disconnected) and "1006" in dropped.reason
    # Backoff slept (initial 0.05 s, jitter ≥ half) and the ticker ran all the while.
    assert outage_s >= 0.02
    assert ticker.ticks >= 2
    down = [e for e in logs if e["event"].startswith("ari events websocket down")]
    assert len(down) == 1 and down[0]["retry_in_s"] >= 0.025


async def test_server_down_for_a_while_then_back(fake: FakeAri) -> None:
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        await next_of(events, Connected)
        ticker = Ticker()
        with capture_logs() as logs:
            await fake.stop()  # connection refused from now on
            assert isinstance(await next_item(events), Disconnected)
            await asyncio.sleep(0.5)
            assert not ari.connected
            await fake.start()  # same port
            fake.ws_refuse_status = 404  # a half-started Asterisk answered 404 once
            await asyncio.sleep(0.3)
            assert not ari.connected
            fake.ws_refuse_status = None
            assert await next_of(events, Connected) == Connected(reconnect=True)
        await ticker.stop()
    down = [e for e in logs if e["event"].startswith("ari events websocket down")]
    reasons = " ".join(e["reason"] for e in down)
    assert "Connect" in reasons or "refused" in reasons.lower()
    assert "HTTP 404" in reasons
    # Backoff: delays grow up to reconnect_max_s and the attempts are few, not a spin.
    delays = [e["retry_in_s"] for e in down]
    assert 4 <= len(delays) <= 20
    assert max(delays) <= 0.2
    assert delays[-1] >= 0.1
    # 0.8 s of outage at 5 ms per tick is ~160 ticks on an idle box; a starved loop gives 0.
    # The bound leaves room for a 2-core machine shared with other test runs.
    assert ticker.ticks >= 20


async def test_wrong_password_stops_quickly_with_a_clear_error(fake: FakeAri) -> None:
    ari = AriClient(config(fake, password="wrong"))
    async with ari:
        events = ari.subscribe()
        with pytest.raises(AriUnauthorized) as raised:
            await ari.wait_connected(2.0)
        message = str(raised.value)
        assert "'medagent'" in message and f"ws://127.0.0.1:{fake.port}/ari/events" in message
        assert "wrong" not in message
        with pytest.raises(AriUnauthorized):
            await next_item(events)
        await asyncio.sleep(0.2)
        assert len(fake.ws_requests) == 1  # no retry loop
        with pytest.raises(AriUnauthorized, match="Authentication required"):
            await ari.get_channel(CALLER)


# --------------------------------------------------------------------------------------------------
# REST


async def test_basic_auth_in_header_and_password_in_no_url(fake: FakeAri) -> None:
    fake.respond("GET", "/asterisk/ping", 200, {"ping": "pong"})
    async with AriClient(config(fake)) as ari:
        await ari.wait_connected(2.0)
        assert await ari.ping() == {"ping": "pong"}
    expected = "Basic " + base64.b64encode(b"medagent:secret").decode()
    sent = [*fake.requests, *fake.ws_requests]
    assert len(sent) == 2
    for request in sent:
        assert request.headers["Authorization"] == expected
        assert "secret" not in request.url and "medagent" not in request.url
    assert fake.ws_requests[0].query == (("app", "medical-agent"), ("subscribeAll", "false"))


def as_sent(records: list[dict[str, Any]]) -> list[tuple[str, str, Any, Any]]:
    return [(r["method"], r["path"], query_key(r["query"]), r["request_body"]) for r in records]


def sent(fake: FakeAri) -> list[tuple[str, str, Any, Any]]:
    return [(r.method, r.path, r.query, r.body) for r in fake.requests]


async def test_lifecycle_rest_calls_match_the_recording(fake: FakeAri, traces: Path) -> None:
    records = load_trace(traces / "ari_call_lifecycle.jsonl")
    fake.replay(records)
    async with AriClient(config(fake)) as ari:
        channel = await ari.get_channel(CALLER)
        assert channel.caller.number == "caller" and channel.state == "Ring"
        await ari.answer(CALLER)
        em = await ari.external_media("medical-agent", "127.0.0.1:40000")
        assert em.channelvars == {
            "UNICASTRTP_LOCAL_PORT": "10050",
            "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1",
        }
        assert await ari.get_variable(em.id, "UNICASTRTP_LOCAL_ADDRESS") == "127.0.0.1"
        assert await ari.get_variable(em.id, "UNICASTRTP_LOCAL_PORT") == "10050"
        bridge = await ari.create_bridge("mixing", name=f"call-{CALLER}")
        assert bridge.id == BRIDGE and bridge.bridge_class == "stasis"
        await ari.add_channel(bridge.id, [CALLER, em.id])
        assert set((await ari.get_bridge(bridge.id)).channels) == {CALLER, em.id}
        assert [c.id for c in await ari.list_channels()] == [CALLER, EXTERNAL_MEDIA]
        playback = await ari.play(
            "sound:hello-world", channel_id=CALLER, playback_id="pb-lifecycle-1"
        )
        assert (playback.id, playback.state) == ("pb-lifecycle-1", "queued")
        beep = await ari.play("sound:beep", bridge_id=bridge.id)
        assert beep.target_uri == f"bridge:{BRIDGE}"
        with pytest.raises(AriNotFound, match="Playback not found"):
            await ari.get_playback("pb-lifecycle-1")
        await ari.hangup(em.id, reason=None)
        await ari.destroy_bridge(bridge.id)
    assert sent(fake) == as_sent(trace_rest(records))


async def test_transfer_rest_calls_match_the_recording(fake: FakeAri, traces: Path) -> None:
    records = load_trace(traces / "ari_transfer.jsonl")
    fake.replay(records)
    first, second = "1795737657.11", "1795737674.16"
    handoff = "83deed43-6dd1-4293-b3b3-678c0584f16f"
    async with AriClient(config(fake)) as ari:
        await ari.answer(first)
        bridge = await ari.create_bridge(name="handoff")
        await ari.add_channel(bridge.id, first)
        await ari.start_moh(first)
        clinician = await ari.create_channel(
            "PJSIP/clinician100",
            app_args=["clinician", "answer"],
            channel_id="clin-answer",
            originator=first,
        )
        assert clinician.id == "clin-answer" and clinician.state == "Down"
        await ari.dial("clin-answer", caller=first, timeout=10)
        await ari.stop_moh(first)
        await ari.add_channel(handoff, "clin-answer")
        assert (await ari.get_bridge(handoff)).technology == "native_rtp"
        await ari.hangup("clin-answer", reason_code=16)
        busy = await ari.originate(
            "PJSIP/clinician100",
            app="medical-agent",
            app_args="clinician,busy",
            channel_id="clin-busy",
            caller_id="Med Agent <100>",
            timeout=10,
        )
        assert busy.id == "clin-busy"
        await ari.create_channel("PJSIP/clinician100", channel_id="clin-noanswer")
        await ari.dial("clin-noanswer", caller=first, timeout=3)
        for endpoint, channel_id in (
            ("PJSIP/clinician101", "clin-unavail"),
            ("PJSIP/nobody", "clin-nobody"),
        ):
            with pytest.raises(AriServerError, match="Allocation failed") as raised:
                await ari.originate(endpoint, app="medical-agent", channel_id=channel_id, timeout=5)
            assert raised.value.status == 500 and raised.value.path == "/channels"
        both = await ari.originate(
            "PJSIP/clinician100", extension="6001", app="medical-agent", channel_id="clin-both"
        )
        await ari.hangup(both.id, reason=None)
        await ari.continue_in_dialplan(first, "medical-inbound", "300", 1)
        await ari.get_bridge(handoff)
        await ari.destroy_bridge(handoff)
        await ari.ring(second)
        await ari.redirect(second, "PJSIP/clinician100")
    assert sent(fake) == as_sent(trace_rest(records))


EXPECTED_CLASS: dict[int, type[AriHttpError]] = {
    400: AriBadRequest,
    401: AriUnauthorized,
    404: AriNotFound,
    409: AriConflict,
    422: AriUnprocessable,
    500: AriServerError,
    501: AriServerError,
}


async def test_every_recorded_error_maps_to_its_exception_with_aris_message(
    fake: FakeAri, traces: Path
) -> None:
    errors = [
        r
        for r in trace_rest(load_trace(traces / "ari_errors.jsonl"))
        # One record tried credentials in the query string (``api_key``); we never send them there.
        if r["status"] >= 400 and not isinstance(r.get("query"), str)
    ]
    assert {r["status"] for r in errors} == set(EXPECTED_CLASS)
    for r in errors:
        fake.respond(r["method"], r["path"], r["status"], r["response_body"], r.get("query"))
    async with AriClient(config(fake)) as ari:
        for r in errors:
            body = r["response_body"]
            if isinstance(body, str):  # one record kept the raw text of the 401 body
                body = {"message": "Authentication required"}
            message = body.get("message") or body["error"]
            with pytest.raises(AriHttpError) as raised:
                await ari._request(r["method"], r["path"], r.get("query"))
            error = raised.value
            assert type(error) is EXPECTED_CLASS[r["status"]], r
            assert (error.status, error.message, error.method, error.path) == (
                r["status"],
                message,
                r["method"],
                r["path"],
            )
        # The same through the typed calls the agent uses.
        with pytest.raises(AriUnprocessable, match="Channel not in Stasis application"):
            await ari.add_channel("1007f4d4-8983-482a-a46f-7d7318418640", "1795737750.29")
        with pytest.raises(AriConflict, match="Channel not in Stasis application"):
            await ari.answer("1795737750.29")
        with pytest.raises(AriBadRequest, match="Channel not found"):
            await ari.remove_channel("1007f4d4-8983-482a-a46f-7d7318418640", "no-such-channel")
        with pytest.raises(AriServerError, match="encapsulation and/or transport"):
            await ari.external_media(
                None, "127.0.0.1:40002", encapsulation="bogus", transport=None, direction=None
            )
    fake.password = "changed"
    async with AriClient(config(fake)) as ari:
        with pytest.raises(AriUnauthorized, match="Authentication required"):
            await ari.get_asterisk_info()


async def test_connection_failures_and_bad_responses(fake: FakeAri) -> None:
    fake.respond("GET", "/channels/odd", 200, {"name": "no id"})
    async with AriClient(config(fake)) as ari:
        with pytest.raises(
            AriError, match=r"unexpected response: Channel: missing required field 'id'"
        ):
            await ari.get_channel("odd")
    fake.rest_delay_s = 0.5
    async with AriClient(config(fake, request_timeout_s=0.1)) as ari:
        with pytest.raises(AriConnectionError, match="no answer within 0.1 s"):
            await ari.answer(CALLER)
    fake.rest_delay_s = 0.0
    port = fake.port
    await fake.stop()
    closed = AriConfig(url=f"http://127.0.0.1:{port}/ari", password="secret", request_timeout_s=1)
    async with AriClient(closed) as ari:
        with pytest.raises(AriConnectionError, match="cannot reach"):
            await ari.answer(CALLER)


async def test_path_segments_are_escaped(fake: FakeAri) -> None:
    fake.respond(
        "GET",
        "/deviceStates/PJSIP%2Fclinician100",
        200,
        {"name": "PJSIP/clinician100", "state": "NOT_INUSE"},
    )
    fake.respond(
        "GET",
        "/endpoints/PJSIP/clinician101",
        200,
        {"technology": "PJSIP", "resource": "clinician101", "state": "offline", "channel_ids": []},
    )
    async with AriClient(config(fake)) as ari:
        state = await ari.get_device_state("PJSIP/clinician100")
        endpoint = await ari.get_endpoint("PJSIP", "clinician101")
    assert state.state == "NOT_INUSE"
    assert (endpoint.resource, endpoint.state) == ("clinician101", "offline")


async def test_variables_go_in_the_json_body(fake: FakeAri) -> None:
    fake.respond("POST", "/channels/create", 200, {"id": "c1"})
    async with AriClient(config(fake)) as ari:
        await ari.create_channel("PJSIP/clinician100", variables={"CALLERID(name)": "Agent"})
    (request,) = fake.requests
    assert request.body == {"variables": {"CALLERID(name)": "Agent"}}
    assert ("app", "medical-agent") in request.query
    assert all("variables" not in key for key, _ in request.query)


# --------------------------------------------------------------------------------------------------
# The externalMedia race


def external_media_answer(channel_id: str) -> dict[str, Any]:
    return {
        "id": channel_id,
        "name": "UnicastRTP/127.0.0.1:40000-0x7f907c01ba00",
        "state": "Down",
        "channelvars": {"UNICASTRTP_LOCAL_PORT": "10050", "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1"},
    }


async def test_external_media_ready_waits_for_the_stasis_start(fake: FakeAri) -> None:
    stasis_sent = asyncio.Event()

    async def asterisk_after_answer(request: Any) -> None:
        # As recorded: the REST answer first, the channel's StasisStart ~1 ms later.
        await asyncio.sleep(0.05)
        channel_id = dict(request.query)["channelId"]
        await fake.send_event({"type": "Dial", "dialstatus": "", "peer": {"id": channel_id}})
        await fake.send_event({"type": "StasisStart", "args": [], "channel": {"id": channel_id}})
        stasis_sent.set()

    fake.respond("POST", "/channels/externalMedia", 200, external_media_answer("em-1"))
    fake.hooks[("POST", "/channels/externalMedia")] = asterisk_after_answer
    async with AriClient(config(fake)) as ari:
        await ari.wait_connected(2.0)
        channel = await ari.external_media_ready(None, "127.0.0.1:40000", channel_id="em-1")
        assert stasis_sent.is_set()
        assert channel.channelvars["UNICASTRTP_LOCAL_PORT"] == "10050"
        assert ari._waiters == []


async def test_external_media_ready_times_out_and_hangs_up_the_orphan(fake: FakeAri) -> None:
    fake.respond("POST", "/channels/externalMedia", 200, external_media_answer("ignored"))
    async with AriClient(config(fake)) as ari:
        await ari.wait_connected(2.0)
        with pytest.raises(AriError, match="no StasisStart within 0.1 s"):
            await ari.external_media_ready(None, "127.0.0.1:40000", timeout_s=0.1)
    create, hangup = fake.requests
    channel_id = dict(create.query)["channelId"]
    assert channel_id.startswith("medagent-em-")
    assert (hangup.method, hangup.path) == ("DELETE", f"/channels/{channel_id}")


# --------------------------------------------------------------------------------------------------
# Pure helpers


def test_backoff_grows_exponentially_is_capped_and_never_zero() -> None:
    assert [backoff_delay(n, 0.25, 8.0, 0.999999) for n in range(7)] == pytest.approx(
        [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0], rel=1e-5
    )
    assert [backoff_delay(n, 0.25, 8.0, 0.0) for n in range(3)] == [0.125, 0.25, 0.5]
    assert backoff_delay(10_000, 0.25, 8.0, 0.5) == 6.0
    assert backoff_delay(0, 0.0, 0.0, 0.0) == 0.05  # a zero config still cannot spin


def test_events_url_carries_the_app_and_no_credentials() -> None:
    assert (
        events_url("https://pbx.example:8089/ari/", "medical agent")
        == "wss://pbx.example:8089/ari/events?app=medical+agent&subscribeAll=false"
    )
    with pytest.raises(ValueError, match="must start with http"):
        events_url("ftp://pbx/ari", "a")


async def test_a_bug_while_routing_reconnects_instead_of_killing_the_events_task(
    fake: FakeAri,
) -> None:
    async with AriClient(config(fake)) as ari:
        events = ari.subscribe()
        await next_of(events, Connected)
        await fake.wait_ws_open()
        route = ari._dispatch
        calls = 0

        def broken_once(event: Event) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("routing bug")
            route(event)

        ari._dispatch = broken_once  # type: ignore[method-assign]
        # A predicate that raises is logged and treated as "no match".
        bad_waiter = ari.expect(lambda e: 1 / 0 == 0)
        with capture_logs() as logs:
            await fake.send_event({"type": "StasisStart", "channel": {"id": CALLER}})
            assert await next_of(events, Connected) == Connected(reconnect=True)
            await fake.wait_ws_open()
            await fake.send_event({"type": "StasisEnd", "channel": {"id": CALLER}})
            assert type(await next_item(events)).__name__ == "StasisEnd"
        assert not bad_waiter.done()
    failures = [e for e in logs if e["event"] == "ari events task failed; reconnecting"]
    assert len(failures) == 1
    assert any(e["event"] == "ari wait_for predicate failed" for e in logs)
