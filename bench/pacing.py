"""Outbound RTP pacing on the real asyncio loop: how close to the ideal 20 ms schedule, and drift.

An ``RtpSession`` paces a continuous stream (1 s prompts back to back, comfort silence in any gap)
to a loopback UDP receiver in its own process (so it shares no GIL with the loop under test), which
timestamps each arrival with ``time.monotonic()`` (system-wide; the clock ``loop.time()`` reads). A packet's slot comes from its RTP
timestamp, so its ideal arrival is ``schedule_start + slot * 20 ms``; the error is how late it was.
Drift is the error at the end of the stream minus the error at its start (medians of 1 s each):
with absolute deadlines it stays near zero however long the stream runs.

Full run: a 10-minute stream (600 s). Quick: 10 s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import struct
import time
from multiprocessing.connection import Connection

import numpy as np

from agent.adapters.media import PortPool, RtpSession
from agent.config import MediaConfig
from agent.core.frames import FRAME_S, ULAW_FRAME_BYTES
from agent.core.g711 import ulaw_encode

PROMPT_S = 1.0


def _receiver(conn: Connection) -> None:
    """Child process: bind, report the port, record (arrival, RTP timestamp) until told to stop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    conn.send(sock.getsockname()[1])
    arrivals: list[tuple[float, int]] = []
    while not conn.poll():
        try:
            data = sock.recv(2048)
        except TimeoutError:
            continue
        arrivals.append((time.monotonic(), struct.unpack_from("!I", data, 4)[0]))
    sock.close()
    conn.send(arrivals)


async def _stream(
    duration_s: float, receiver: tuple[str, int]
) -> tuple[RtpSession, dict[str, int]]:
    cfg = MediaConfig()
    pool = PortPool(cfg.port_min, cfg.port_max, cfg.bind_host)
    session = await RtpSession.open(cfg, pool, "bench-pacing", remote=receiver)
    tone = ulaw_encode(
        (np.sin(np.arange(int(8000 * PROMPT_S)) * 2 * np.pi * 700 / 8000) * 8000).astype(np.int16)
    )
    loop = asyncio.get_running_loop()
    end = session.schedule_start + duration_s
    played = 0
    while loop.time() + PROMPT_S <= end:
        played += await session.play(tone, f"tone-{played}")
    await session.drain()
    await session.close()
    return session, {"prompts_played": played}


def run(quick: bool) -> dict[str, object]:
    duration_s = 10.0 if quick else 600.0
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_receiver, args=(child,), name="pacing-receiver"
    )
    process.start()
    try:
        port = parent.recv()
        cpu_started = time.process_time()
        session, extra = asyncio.run(_stream(duration_s, ("127.0.0.1", port)))
        cpu_s = time.process_time() - cpu_started
        time.sleep(0.1)
        parent.send("stop")
        arrivals: list[tuple[float, int]] = parent.recv()
    finally:
        process.join(5)
        if process.is_alive():
            process.kill()
    t = np.array([a for a, _ in arrivals])
    slots = np.array(
        [((ts - session.initial_timestamp) % 2**32) // ULAW_FRAME_BYTES for _, ts in arrivals]
    )
    error_ms = (t - (session.schedule_start + slots * FRAME_S)) * 1000.0
    per_s = int(1 / FRAME_S)
    drift_ms = float(np.median(error_ms[-per_s:]) - np.median(error_ms[:per_s]))
    stats = session.stats
    return {
        "duration_s": duration_s,
        "frames_sent": stats.packets_sent,
        "frames_received": len(arrivals),
        "audio_frames": stats.pacer.audio,
        "silence_frames": stats.pacer.silence,
        "late_frames": stats.pacer.late,
        "dropped_slots": stats.pacer.dropped_slots,
        "error_ms_p50": round(float(np.percentile(error_ms, 50)), 3),
        "error_ms_p99": round(float(np.percentile(error_ms, 99)), 3),
        "error_ms_max": round(float(error_ms.max()), 3),
        "error_ms_min": round(float(error_ms.min()), 3),
        "drift_ms": round(drift_ms, 3),
        "end_error_ms": round(float(error_ms[-1]), 3),
        "loop_cpu_ms_per_stream_s": round(cpu_s * 1000 / duration_s, 3),
        **extra,
    }
