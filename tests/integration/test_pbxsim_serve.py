"""``medagent pbxsim``: argument handling, and the command serving a call to a probe."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from agent.commands.pbxsim import add_arguments, build_config, parse_phone
from agent.pbxsim.testing import AriProbe

ROOT = Path(__file__).resolve().parents[2]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.config = None
    return args


def test_phone_specs() -> None:
    assert parse_phone("nurse:busy").behaviour == "busy"
    assert parse_phone("desk:answer:2.5").ring_delay_s == 2.5
    with pytest.raises(ValueError, match="behaviour must be one of"):
        parse_phone("desk:maybe")
    with pytest.raises(ValueError, match="ring delay must be seconds"):
        parse_phone("desk:answer:soon")


def test_config_from_arguments(tmp_path: Path) -> None:
    cfg = build_config(
        parse("--port", "0", "--phone", "frontdesk:noanswer", "--rtp-ports", "12000-12010")
    )
    assert (cfg.port, cfg.rtp_port_min, cfg.rtp_port_max) == (0, 12000, 12010)
    assert [p.name for p in cfg.phones] == ["frontdesk"] and cfg.app == "medical-agent"
    with pytest.raises(ValueError, match="--rtp-ports expects MIN-MAX"):
        build_config(parse("--rtp-ports", "12000"))
    bad = tmp_path / "plan.yaml"
    bad.write_text("contexts: []\n")
    with pytest.raises(ValueError, match="plan.yaml: expected a mapping"):
        build_config(parse("--dialplan", str(bad)))


async def test_command_serves_a_scripted_call_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "pbxsim",
        "--port",
        "0",
        "--password",
        "pw",
        "--call",
        "100",
        "--call-seconds",
        "5",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    try:
        url = ""
        lines: list[str] = []
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, f"exited early: {lines}"
            lines.append(line)
            if "ARI stand-in listening" in line:
                url = json.loads(line)["url"]
        probe = AriProbe(url, password="pw")
        try:
            await probe.connect("medical-agent")
            start = await probe.event("StasisStart", timeout_s=5)
            assert start["channel"]["state"] == "Ring"
        finally:
            await probe.close()
        proc.send_signal(signal.SIGTERM)
        rest = (await asyncio.wait_for(proc.stdout.read(), 10)).decode()
        assert await proc.wait() == 0
        # Patient data stays out of the log: the scripted caller's number is never printed.
        assert "5550100" not in "".join(lines) + rest
        assert '"type": "StasisStart"' in rest or "StasisStart" in "".join(lines) + rest
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
