"""FastAGI over loopback TCP, with Asterisk's side played from the recorded session."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import struct
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from agent.adapters.fastagi import FastAgiServer
from agent.config import AgiConfig, PracticeConfig


def recorded_env(asterisk_reference: Path, script: str = "route") -> bytes:
    text = (asterisk_reference / "agi" / "fastagi_session.txt").read_text()
    block = text.split("\n", 1)[1].split("\n\n", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("agi_")]
    lines = [
        f"agi_network_script: {script}" if ln.startswith("agi_network_script") else ln
        for ln in lines
    ]
    return ("\n".join(lines) + "\n\n").encode()


@dataclasses.dataclass
class Capacity:
    healthy: bool = True
    active_calls: int = 0
    max_calls: int = 4


NIGHT = datetime(2026, 11, 23, 22, 0, tzinfo=ZoneInfo("America/New_York"))
DAY = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("America/New_York"))


async def start(
    capacity: Capacity, practice: PracticeConfig | None = None, now: datetime = NIGHT
) -> tuple[FastAgiServer, int]:
    server = FastAgiServer(
        AgiConfig(enabled=True, port=0), practice or PracticeConfig(), capacity, clock=lambda: now
    )
    return server, await server.start()


async def asterisk_side(port: int, env: bytes, replies: list[bytes]) -> list[str]:
    """Plays Asterisk: sends the env block, answers each command with the next reply, returns the commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(env)
    commands = []
    for reply in replies:
        line = await asyncio.wait_for(reader.readline(), 5)
        if not line:
            break
        commands.append(line.decode().strip())
        writer.write(reply)
    assert await asyncio.wait_for(reader.read(), 5) == b"", (
        "the server must close the socket when done"
    )
    writer.close()
    return commands


@pytest.mark.parametrize(
    ("capacity", "practice_mode", "now", "route", "reason"),
    [
        (Capacity(), "24x7", NIGHT, "agent", "ok"),
        (Capacity(active_calls=4), "24x7", NIGHT, "staff", "capacity"),
        (Capacity(healthy=False), "24x7", NIGHT, "staff", "unhealthy"),
        (Capacity(), "after_hours_only", DAY, "staff", "office_hours"),
    ],
)
async def test_route_decision(
    asterisk_reference: Path, capacity, practice_mode, now, route, reason
) -> None:
    server, port = await start(
        capacity, dataclasses.replace(PracticeConfig(), mode=practice_mode), now
    )
    try:
        cmds = await asterisk_side(
            port, recorded_env(asterisk_reference), [b"200 result=1\n", b"200 result=1\n"]
        )
    finally:
        await server.close()
    assert cmds == [
        f"SET VARIABLE MEDAGENT_ROUTE {route}",
        f"SET VARIABLE MEDAGENT_REASON {reason}",
    ]


async def test_menu_plays_prompt_and_collects_digit(asterisk_reference: Path) -> None:
    server, port = await start(Capacity())
    env = recorded_env(asterisk_reference, "menu").replace(
        b"agi_arg_1: arg1", b"agi_arg_1: hello-world"
    )
    try:
        cmds = await asterisk_side(
            port,
            env,
            [
                b"200 result=0\n",
                b"200 result=0 endpos=11360\n",
                b"200 result=49\n",
                b"200 result=1\n",
            ],
        )
    finally:
        await server.close()
    assert cmds[1] == 'STREAM FILE hello-world "0123456789*#"'
    assert cmds[-1] == "SET VARIABLE MEDAGENT_DIGIT 1"


async def test_hangup_notice_and_garbage_replies_do_not_break_the_route(
    asterisk_reference: Path,
) -> None:
    server, port = await start(Capacity())
    env = recorded_env(asterisk_reference, "menu")
    try:
        cmds = await asterisk_side(
            port,
            env,
            [
                b"HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n",
                b"garbage!!\n",
                b"\x00\xff\n",
                b"200 result=1\n",
            ],
        )
    finally:
        await server.close()
    assert cmds[0] == "ANSWER" and cmds[-1] == "SET VARIABLE MEDAGENT_DIGIT none"


async def test_half_an_environment_block_then_eof_does_not_freeze_the_loop() -> None:
    """panoramisk's own handler spins forever here; ours closes the socket and the loop keeps ticking."""
    server, port = await start(Capacity())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    t = asyncio.create_task(ticker())
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"agi_network: yes\nagi_network_script: rou")
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await asyncio.sleep(0.1)
        assert ticks >= 5
    finally:
        t.cancel()
        await asyncio.gather(t, return_exceptions=True)
        await server.close()


async def test_unknown_route_and_sync_endpoint(asterisk_reference: Path) -> None:
    server, port = await start(Capacity())
    seen = []
    server.app.add_route("sync", lambda request: seen.append(request.headers["agi_callerid"]))
    try:
        assert (
            await asterisk_side(port, recorded_env(asterisk_reference, "nope"), [b"200 result=1\n"])
            == []
        )
        assert await asterisk_side(port, recorded_env(asterisk_reference, "sync"), []) == []
    finally:
        await server.close()
    assert seen == ["caller"]


# -- hardening ---------------------------------------------------------------------------------


def menu_env(asterisk_reference: Path, prompt: str, timeout: str = "arg2") -> bytes:
    return (
        recorded_env(asterisk_reference, "menu")
        .replace(b"agi_arg_1: arg1", b"agi_arg_1: " + prompt.encode())
        .replace(b"agi_arg_2: arg2", b"agi_arg_2: " + timeout.encode())
    )


MENU_REPLIES = [b"200 result=0\n", b"200 result=0 endpos=1\n", b"200 result=0\n", b"200 result=1\n"]


@pytest.mark.parametrize(
    "prompt",
    [
        "../../../etc/passwd",
        "/var/spool/asterisk/voicemail/default/100/INBOX/msg0000",
        "a..b",
        'hello "0123" ; EXEC Dial PJSIP/900',
        "hello world",
        "custom//menu",
        "custom/",
        "héllo",
        "x" * 200,
    ],
)
async def test_a_prompt_name_outside_the_pattern_plays_the_default(
    asterisk_reference: Path, prompt: str
) -> None:
    """``agi_arg_1`` goes into STREAM FILE unquoted: only plain sound names get through."""
    server, port = await start(Capacity())
    try:
        cmds = await asterisk_side(port, menu_env(asterisk_reference, prompt), MENU_REPLIES)
    finally:
        await server.close()
    assert cmds[1] == 'STREAM FILE beep "0123456789*#"'


async def test_a_plain_prompt_name_with_folders_is_played(asterisk_reference: Path) -> None:
    server, port = await start(Capacity())
    try:
        cmds = await asterisk_side(
            port, menu_env(asterisk_reference, "custom/menu-main_2", "7000"), MENU_REPLIES
        )
    finally:
        await server.close()
    assert cmds[1:3] == ['STREAM FILE custom/menu-main_2 "0123456789*#"', "WAIT FOR DIGIT 7000"]


@pytest.mark.parametrize("wait_ms", ["5000 ANSWER", "²³", "-1", "99999999999"])
async def test_the_digit_timeout_is_plain_digits_or_the_default(
    asterisk_reference: Path, wait_ms: str
) -> None:
    server, port = await start(Capacity())
    try:
        cmds = await asterisk_side(
            port, menu_env(asterisk_reference, "hello", wait_ms), MENU_REPLIES
        )
    finally:
        await server.close()
    assert cmds[2] == "WAIT FOR DIGIT 5000"


async def test_a_digit_reply_that_is_no_digit_does_not_fail_the_route(
    asterisk_reference: Path,
) -> None:
    server, port = await start(Capacity())
    try:
        with capture_logs() as logs:
            cmds = await asterisk_side(
                port,
                menu_env(asterisk_reference, "hello"),
                [
                    b"200 result=0\n",
                    b"200 result=0\n",
                    b"200 result=99999999999\n",
                    b"200 result=1\n",
                ],
            )
    finally:
        await server.close()
    assert cmds[-1] == "SET VARIABLE MEDAGENT_DIGIT none"
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]


async def read_until_closed(reader: asyncio.StreamReader, timeout_s: float) -> bytes:
    async with asyncio.timeout(timeout_s):
        return await reader.read()


GARBAGE = {
    "binary": b"\xff\xfe\x00\x01garbage\x80\n\x00\xff\n\n",
    "no-colon": b"agi_network: yes\nagi_network_script route\nhello\n\n",
    "http": b"GET / HTTP/1.1\nHost: medagent\n\n",
    "huge-line": b"agi_network: yes\nagi_x: " + b"A" * 40_000 + b"\n\n",
    "endless-env": b"".join(b"agi_var_%d: value\n" % i for i in range(5_000)),
}


@pytest.mark.parametrize("garbage", list(GARBAGE.values()), ids=list(GARBAGE))
async def test_garbage_instead_of_an_environment_is_a_log_line_and_a_closed_connection(
    garbage: bytes,
) -> None:
    server, port = await start(Capacity())
    try:
        with capture_logs() as logs:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(garbage)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            with contextlib.suppress(ConnectionError):
                assert await read_until_closed(reader, 3) == b""
            writer.close()
            await asyncio.sleep(0.05)
    finally:
        await server.close()
    warnings = [e for e in logs if e["log_level"] == "warning" and e["event"].startswith("fastagi")]
    assert len(warnings) == 1
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]


async def test_a_latin1_caller_name_still_gets_the_call_routed(asterisk_reference: Path) -> None:
    server, port = await start(Capacity())
    env = recorded_env(asterisk_reference).replace(
        b"agi_calleridname: Test Patient",
        "agi_calleridname: Jos\u00e9 M\u00fcller".encode("latin-1"),
    )
    try:
        cmds = await asterisk_side(port, env, [b"200 result=1\n", b"200 result=1\n"])
    finally:
        await server.close()
    assert cmds == ["SET VARIABLE MEDAGENT_ROUTE agent", "SET VARIABLE MEDAGENT_REASON ok"]


@pytest.mark.parametrize(
    "reply",
    [b"2" * 40_000 + b"\n", b"200 result=0", b""],
    ids=["huge-reply-line", "eof-mid-line", "eof"],
)
async def test_a_broken_reply_ends_the_session_with_a_log_line(
    asterisk_reference: Path, reply: bytes
) -> None:
    server, port = await start(Capacity())
    try:
        with capture_logs() as logs:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(recorded_env(asterisk_reference, "menu"))
            assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
            writer.write(reply)
            if not reply.endswith(b"\n"):
                writer.write_eof()
            rest = await read_until_closed(reader, 3)
            writer.close()
            await asyncio.sleep(0.05)
    finally:
        await server.close()
    assert rest == b""  # no further commands into a broken session
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "fastagi: connection lost, closing"
    ]
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]


async def test_a_peer_that_resets_mid_route_is_a_log_line_not_a_traceback(
    asterisk_reference: Path,
) -> None:
    server, port = await start(Capacity())
    try:
        with capture_logs() as logs:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(recorded_env(asterisk_reference, "menu"))
            assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()  # RST
            await asyncio.sleep(0.2)
    finally:
        await server.close()
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "fastagi: connection lost, closing"
    ]
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"]


async def test_connections_over_the_cap_are_closed_at_once() -> None:
    server = FastAgiServer(
        AgiConfig(enabled=True, port=0), PracticeConfig(), Capacity(), max_connections=2
    )
    port = await server.start()
    held = []
    try:
        with capture_logs() as logs:
            for _ in range(2):  # two that say nothing: each holds a slot
                held.append(await asyncio.open_connection("127.0.0.1", port))
            await asyncio.sleep(0.05)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await read_until_closed(reader, 1) == b""
            writer.close()
            assert server.open_connections == 2
            # A slot comes free when a connection ends; the next one is served.
            held[0][1].close()
            await asyncio.sleep(0.1)
            assert server.open_connections == 1
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"agi_network: yes\nagi_network_script: nope\n\n")
            assert await read_until_closed(reader, 2) == b""
            writer.close()
        assert [e["event"] for e in logs if e["log_level"] == "warning"].count(
            "fastagi: too many connections, closing"
        ) == 1
        assert server.rejected == 1
    finally:
        for _r, w in held:
            w.close()
        await server.close()


async def test_close_ends_every_open_session_at_once(asterisk_reference: Path) -> None:
    """A session waiting for Asterisk's reply (up to 30 s) must not outlive the server."""
    server, port = await start(Capacity())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(recorded_env(asterisk_reference, "menu"))
        assert await asyncio.wait_for(reader.readline(), 5) == b"ANSWER\n"
        assert server.open_connections == 2
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.close(), 2)
        assert loop.time() - started < 1
        assert await read_until_closed(reader, 1) == b""
        assert await read_until_closed(silent_reader, 1) == b""
        assert server.open_connections == 0
        assert not [t for t in asyncio.all_tasks() if (t.get_name() or "").startswith("fastagi")]
    finally:
        writer.close()
        silent_writer.close()
