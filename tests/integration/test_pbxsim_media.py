"""Media behaviour of the stand-in against ``shared/asterisk-reference/rtp``: pass-through
two-party bridges, strict RTP, softmix, channel vs bridge playback, the caller's recording."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.g711 import alaw_encode, ulaw_decode, ulaw_encode
from agent.core.rtp import PT_PCMA, PT_PCMU, RtpPacket
from agent.pbxsim import PbxSim, PbxSimConfig
from agent.pbxsim.media import Frame, RtpReceiver, RtpSender, Timeline, mix
from agent.pbxsim.testing import AriProbe, RtpPeer

APP = "medical-agent"


def tone(freq: float, seconds: float, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def crossings_per_frame(ulaw: bytes) -> float:
    pcm = ulaw_decode(ulaw).astype(np.int32)
    return float(np.count_nonzero(np.diff(np.signbit(pcm)))) / (len(pcm) / 160)


def dominant_hz(ulaw: bytes) -> float:
    pcm = ulaw_decode(ulaw).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm))
    return float(np.fft.rfftfreq(len(pcm), 1 / 8000)[int(np.argmax(spectrum[1:])) + 1])


# ---- the pure core --------------------------------------------------------------------------------


def test_sender_keeps_order_and_timestamps_and_marks_ssrc_change() -> None:
    s = RtpSender(ssrc=1, next_seq=500, ts_base=9000, new_ssrc=[2])
    seqs = [10, 12, 11, 11, 13]
    out = [s.packet(Frame(b"\xff" * 160, 0xAAAA, q, 160 * q)) for q in seqs]
    assert [p.sequence_number - 490 for p in out] == seqs  # constant offset, our order, dups kept
    assert len({p.timestamp - 160 * q for p, q in zip(out, seqs, strict=True)}) == 1
    assert not any(p.marker for p in out)
    changed = s.packet(Frame(b"\xff" * 160, 0xBBBB, 7000, 123456))
    assert (changed.ssrc, changed.marker, changed.sequence_number) == (2, True, 504)
    s.resync()
    resumed = s.packet(Frame(b"\xff" * 160, 0xBBBB, 7050, 123456 + 50 * 160))
    assert (resumed.ssrc, resumed.marker, resumed.sequence_number) == (2, True, 505)
    assert resumed.timestamp - changed.timestamp == 50 * 160  # the timestamp jump shows the hole


def test_receiver_is_strict() -> None:
    r = RtpReceiver()
    a, b = ("127.0.0.1", 40010), ("127.0.0.1", 40011)
    pcmu = RtpPacket(PT_PCMU, 1, 160, 5, b"\x01" * 160).serialize()
    assert r.receive(pcmu, a) is not None
    assert r.receive(pcmu, b) is None  # another source port after learning
    assert r.receive(RtpPacket(96, 2, 320, 5, b"\x01" * 160).serialize(), a) is None
    assert r.receive(b"\x80\x00garbage", a) is None
    alaw = alaw_encode(tone(700, 0.02))
    frame = r.receive(RtpPacket(PT_PCMA, 3, 480, 5, alaw).serialize(), a)
    assert frame is not None and abs(dominant_hz(frame.payload) - 700) < 60
    assert r.dropped == {"foreign source": 1, "payload type 96": 1, "malformed": 1}


def test_mix_sums_others_and_clips() -> None:
    a = ulaw_encode(np.full(160, 8000, np.int16))
    b = ulaw_encode(np.full(160, 30000, np.int16))
    out = mix({"a": a, "b": b, "c": None})
    assert abs(int(ulaw_decode(out["a"])[0]) - 30000) < 1100  # hears b only
    assert abs(int(ulaw_decode(out["b"])[0]) - 8000) < 300  # hears a only
    assert int(ulaw_decode(out["c"])[0]) >= 32000  # hears a + b, clipped
    assert out == mix({"a": a, "b": b, "c": None})


def test_timeline_fills_gaps_with_silence_and_absorbs_jitter() -> None:
    t = Timeline(start_s=100.0)
    t.add(100.0, b"\x01" * 160)
    t.add(100.015, b"\x02" * 160)  # early by 5 ms: appended, not overlapped
    t.add(100.5, b"\x03" * 160)
    assert len(t.audio) == 4000 + 160
    assert t.audio[320:4000] == b"\xff" * 3680
    assert t.first_audio_after(100.2) == 100.5


# ---- over loopback --------------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[PbxSim]:
    s = PbxSim(PbxSimConfig(seed=11))
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def probe(sim: PbxSim) -> AsyncIterator[AriProbe]:
    p = AriProbe(sim.base_url)
    await p.connect(APP)
    yield p
    await p.close()


async def external_media(probe: AriProbe, peer: RtpPeer) -> tuple[str, tuple[str, int]]:
    status, em = await probe.request(
        "POST",
        "/channels/externalMedia",
        app=APP,
        external_host="{}:{}".format(*peer.address),
        format="ulaw",
    )
    assert status == 200
    await probe.event("StasisStart", id=em["id"])
    v = em["channelvars"]
    return em["id"], (v["UNICASTRTP_LOCAL_ADDRESS"], int(v["UNICASTRTP_LOCAL_PORT"]))


async def test_immediate_add_channel_races_like_asterisk() -> None:
    # A wider window than Asterisk's ~1 ms so a loaded test machine still loses the race.
    sim = PbxSim(PbxSimConfig(external_media_stasis_delay_s=0.2))
    await sim.start()
    probe = AriProbe(sim.base_url)
    await probe.connect(APP)
    peer = await RtpPeer.open()
    try:
        _, br = await probe.request("POST", "/bridges", type="mixing")
        _, em = await probe.request(
            "POST",
            "/channels/externalMedia",
            app=APP,
            external_host="{}:{}".format(*peer.address),
            format="ulaw",
        )
        status, body = await probe.request(
            "POST", f"/bridges/{br['id']}/addChannel", channel=em["id"]
        )
        assert (status, body) == (422, {"message": "Channel not in Stasis application"})
        await probe.event("StasisStart", id=em["id"])
        assert (await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=em["id"]))[
            0
        ] == 204
    finally:
        peer.close()
        await probe.close()
        await sim.stop()


async def test_two_party_bridge_forwards_packets_untouched(probe: AriProbe) -> None:
    a, b = await RtpPeer.open(), await RtpPeer.open()
    try:
        a_id, a_ast = await external_media(probe, a)
        b_id, _ = await external_media(probe, b)
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=f"{a_id},{b_id}")
        assert (await probe.request("GET", f"/bridges/{br['id']}"))[1][
            "technology"
        ] == "simple_bridge"
        payload = ulaw_encode(tone(700, 0.02))
        order = [0, 1, 3, 2, 2, 4, 5, 60, 6]  # reordered, duplicated, one far ahead
        for q in order:
            a.send(RtpPacket(PT_PCMU, 1000 + q, 5000 + 160 * q, 0x5EED0001, payload), a_ast)
            await asyncio.sleep(0.005)
        a.send(RtpPacket(96, 2000, 0, 0x5EED0001, payload), a_ast)  # unknown PT: dropped
        a.send(b"garbage", a_ast)  # too short: dropped
        a.send(RtpPacket(PT_PCMU, 1, 0, 0x5EED0002, payload), a_ast)  # new SSRC: marker
        a.send(
            RtpPacket(PT_PCMA, 2, 160, 0x5EED0002, alaw_encode(tone(700, 0.02))), a_ast
        )  # transcoded
        await asyncio.sleep(0.1)
        got = [p for _, p, _ in b.received]
        assert len(got) == len(order) + 2
        first = got[: len(order)]
        assert [p.sequence_number - first[0].sequence_number for p in first] == [
            q - order[0] for q in order
        ]
        assert [p.timestamp - first[0].timestamp for p in first] == [
            160 * (q - order[0]) for q in order
        ]
        assert not any(p.marker for p in first) and len({p.ssrc for p in first}) == 1
        switched = got[len(order)]
        assert switched.marker and switched.ssrc != first[0].ssrc
        assert {p.payload_type for p in got} == {PT_PCMU} and all(
            len(p.payload) == 160 for p in got
        )
        assert abs(dominant_hz(got[-1].payload) - 700) < 60
        # silence from one side: nothing at all goes the other way (no fill)
        assert a.received == []
    finally:
        a.close()
        b.close()


async def test_foreign_source_port_is_dropped(probe: AriProbe) -> None:
    a, b, intruder = await RtpPeer.open(), await RtpPeer.open(), await RtpPeer.open()
    try:
        a_id, a_ast = await external_media(probe, a)
        b_id, _ = await external_media(probe, b)
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=f"{a_id},{b_id}")
        a.send(RtpPacket(PT_PCMU, 1, 160, 7, b"\x10" * 160), a_ast)
        await asyncio.sleep(0.02)
        intruder.send(RtpPacket(PT_PCMU, 2, 320, 7, b"\x20" * 160), a_ast)
        await asyncio.sleep(0.05)
        assert [p.payload[:1] for _, p, _ in b.received] == [b"\x10"]
    finally:
        for p in (a, b, intruder):
            p.close()


async def test_channel_play_holds_back_caller_audio_and_resumes_with_marker(
    sim: PbxSim, probe: AriProbe
) -> None:
    peer = await RtpPeer.open()
    try:
        caller = await sim.place_call()
        cid = (await probe.event("StasisStart"))["channel"]["id"]
        await probe.request("POST", f"/channels/{cid}/answer")
        em_id, _ = await external_media(probe, peer)
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=f"{cid},{em_id}")
        speaking = asyncio.create_task(caller.play(ulaw_encode(tone(440, 0.9))))
        await asyncio.sleep(0.2)
        t_play = asyncio.get_running_loop().time()
        await probe.request("POST", f"/channels/{cid}/play", media="sound:beep")  # 0.44 s
        await probe.event("PlaybackFinished")
        await speaking
        pkts = [(t, p) for t, p, _ in peer.received]
        during = [t for t, _ in pkts if t_play + 0.05 < t < t_play + 0.4]
        assert during == []  # the agent does not hear the caller while a channel prompt plays
        seqs = [p.sequence_number for _, p in pkts]
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
        markers = [i for i, (_, p) in enumerate(pkts) if p.marker]
        assert len(markers) == 1
        gap = pkts[markers[0]][1].timestamp - pkts[markers[0] - 1][1].timestamp
        assert gap > 160 * 15  # the timestamp jump covers the hole
        # the caller heard the beep (1 kHz) where the prompt played
        at = int((t_play - caller.timeline.start_s) * 8000)
        assert abs(dominant_hz(caller.heard_ulaw()[at : at + 3200]) - 1000) < 60
    finally:
        peer.close()


async def test_three_party_bridge_mixes_and_bridge_play_reaches_caller(
    sim: PbxSim, probe: AriProbe
) -> None:
    a, b = await RtpPeer.open(), await RtpPeer.open()
    try:
        caller = await sim.place_call()
        cid = (await probe.event("StasisStart"))["channel"]["id"]
        await probe.request("POST", f"/channels/{cid}/answer")
        a_id, a_ast = await external_media(probe, a)
        b_id, _ = await external_media(probe, b)
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request(
            "POST", f"/bridges/{br['id']}/addChannel", channel=f"{cid},{a_id},{b_id}"
        )
        assert (await probe.request("GET", f"/bridges/{br['id']}"))[1]["technology"] == "softmix"
        caller_talks = asyncio.create_task(caller.play(ulaw_encode(tone(440, 0.6))))
        payload = ulaw_encode(tone(1200, 0.02))
        for i in range(30):
            a.send(RtpPacket(PT_PCMU, i, 160 * i, 0xA, payload), a_ast)
            await asyncio.sleep(0.02)
        await caller_talks
        await asyncio.sleep(0.3)  # nobody talks: softmix keeps sending silence
        got_b = [p for _, p, _ in b.received]
        assert len(got_b) >= 40
        assert len({p.ssrc for p in got_b}) == 1 and not any(p.marker for p in got_b)
        assert all(
            (y.sequence_number - x.sequence_number) % 65536 == 1
            for x, y in zip(got_b, got_b[1:], strict=False)
        )
        assert all(
            (y.timestamp - x.timestamp) % 2**32 == 160
            for x, y in zip(got_b, got_b[1:], strict=False)
        )
        mixed = b"".join(p.payload for p in got_b[5:25])
        spectrum = np.abs(np.fft.rfft(ulaw_decode(mixed).astype(np.float64)))
        freqs = np.fft.rfftfreq(len(mixed), 1 / 8000)
        strong = {int(round(f / 10) * 10) for f in freqs[spectrum > spectrum.max() * 0.3]}
        assert any(abs(f - 440) <= 20 for f in strong) and any(abs(f - 1200) <= 20 for f in strong)
        assert got_b[-1].payload == b"\xff" * 160
        heard_by_a = b"".join(p.payload for _, p, _ in a.received[5:25])
        assert abs(dominant_hz(heard_by_a) - 440) < 40  # a does not hear itself
        # bridge playback: everyone, the caller included, hears it
        t = asyncio.get_running_loop().time()
        await probe.request("POST", f"/bridges/{br['id']}/play", media="sound:beep")
        await probe.event("PlaybackFinished")
        first = caller.first_audio_after(t)
        assert first is not None and first - t < 0.15
        assert abs(dominant_hz(caller.heard_ulaw()[-int(0.4 * 8000) :]) - 1000) < 60
    finally:
        a.close()
        b.close()


def test_sender_keeps_one_ssrc_across_mixed_audio() -> None:
    s = RtpSender(ssrc=1, next_seq=10, ts_base=0, new_ssrc=[2])
    remote = [s.packet(Frame(b"\xff" * 160, 0xC, q, 160 * q)) for q in range(3)]
    mixed = [s.packet(Frame(b"\xff" * 160, 0xF, q, 0, local=True)) for q in range(3)]
    back = s.packet(Frame(b"\xff" * 160, 0xC, 3, 160 * 3))
    seqs = [p.sequence_number for p in [*remote, *mixed, back]]
    assert seqs == list(range(10, 17))
    assert {p.ssrc for p in [*remote, *mixed, back]} == {1}
    assert back.marker and not any(p.marker for p in mixed)
    assert back.timestamp > mixed[-1].timestamp


async def test_bridge_play_does_not_interrupt_caller_stream(sim: PbxSim, probe: AriProbe) -> None:
    peer = await RtpPeer.open()
    try:
        caller = await sim.place_call()
        cid = (await probe.event("StasisStart"))["channel"]["id"]
        await probe.request("POST", f"/channels/{cid}/answer")
        em_id, _ = await external_media(probe, peer)
        _, br = await probe.request("POST", "/bridges", type="mixing")
        await probe.request("POST", f"/bridges/{br['id']}/addChannel", channel=f"{cid},{em_id}")
        speaking = asyncio.create_task(caller.play(ulaw_encode(tone(440, 0.8))))
        await asyncio.sleep(0.2)
        t = asyncio.get_running_loop().time()
        await probe.request("POST", f"/bridges/{br['id']}/play", media="sound:beep")
        await probe.event("PlaybackFinished")
        await speaking
        pkts = [(at, p) for at, p, _ in peer.received]
        during = [p for at, p in pkts if t + 0.05 < at < t + 0.4]
        assert len(during) >= 14  # about 50 packets/s while the beep is mixed in
        # the agent keeps hearing the caller (440 Hz), mixed with the announcer (1 kHz)
        audio = ulaw_decode(b"".join(p.payload for p in during)).astype(np.float64)
        spectrum = np.abs(np.fft.rfft(audio))
        freqs = np.fft.rfftfreq(len(audio), 1 / 8000)
        assert spectrum[np.abs(freqs - 440) < 15].max() > 0.3 * spectrum.max()
        assert spectrum[np.abs(freqs - 1000) < 15].max() > 0.3 * spectrum.max()
        assert len({p.ssrc for _, p in pkts}) == 1
        seqs = [p.sequence_number for _, p in pkts]
        assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    finally:
        peer.close()


@given(
    st.lists(st.integers(0, 65535), min_size=1, max_size=60),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
)
@settings(max_examples=60, deadline=None)
def test_pass_through_keeps_sequence_and_timestamp_differences(
    seqs: list[int], start: int, ts0: int
) -> None:
    sender = RtpSender(ssrc=9, next_seq=start, ts_base=ts0)
    out = [sender.packet(Frame(b"\xff" * 160, 0x1234, q, (q * 160) % 2**32)) for q in seqs]
    assert [(p.sequence_number - out[0].sequence_number) % 65536 for p in out] == [
        (q - seqs[0]) % 65536 for q in seqs
    ]
    assert [(p.timestamp - out[0].timestamp) % 2**32 for p in out] == [
        (q * 160 - seqs[0] * 160) % 2**32 for q in seqs
    ]
    assert out[0].sequence_number == start and not any(p.marker for p in out)
    assert {p.ssrc for p in out} == {9}


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=3), st.binary(min_size=160, max_size=160), max_size=4
    )
)
@settings(max_examples=40, deadline=None)
def test_mix_never_gives_a_participant_its_own_audio_alone(frames: dict[str, bytes]) -> None:
    out = mix(dict(frames))
    assert set(out) == set(frames) and all(len(v) == 160 for v in out.values())
    if len(frames) == 2:
        a, b = frames
        assert out[a] == ulaw_encode(ulaw_decode(frames[b]))
