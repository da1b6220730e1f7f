"""FastAGI over loopback TCP, with Asterisk's side played from the recorded session."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

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
