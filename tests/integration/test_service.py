"""`medagent run` as an administrator runs it: a subprocess with a config file, against the stand-in.

It loads the real models, answers a call (the caller hears the greeting), serves /health and
/metrics, reloads on `medagent reload`, and stops cleanly on SIGTERM. A wrong ARI password stops it
at once with a message that says what to fix.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from agent.pbxsim import PbxSim, PbxSimConfig
from tests.integration.callkit import voiced_seconds

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, ari_url: str, password: str, health_port: int, greeting: str) -> Path:
    cfg = tmp / "medagent.toml"
    cfg.write_text(
        f"""
[ari]
url = "{ari_url}"
password = "{password}"
reconnect_initial_s = 0.1
reconnect_max_s = 1.0

[media]
port_min = 43000
port_max = 43999

[database]
embedded_dir = "{tmp}/pg"
key_file = "{tmp}/record.key"
audit_key_file = "{tmp}/audit.key"
spool_dir = "{tmp}/spool"

[practice]
greeting = "{greeting}"

[nlu]
model_dir = "{ROOT / ".medagent" / "nlu-model"}"

[tts]
cache_dir = "{tmp}/prompts"

[calls]
health_port = {health_port}

[logging]
format = "json"
"""
    )
    return cfg


async def read_until(
    stream: asyncio.StreamReader, needle: str, timeout_s: float, seen: list[str]
) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await stream.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(
                    f"agent exited before logging {needle!r}: {''.join(seen[-20:])}"
                )
            seen.append(line)
            if needle in line:
                return


async def test_run_answers_serves_health_reloads_and_stops(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)  # the embedded PostgreSQL runs as an unprivileged user
    sim = PbxSim(PbxSimConfig(password="s3cret"))
    url = await sim.start()
    health_port = free_port()
    cfg = write_config(
        tmp_path, url, "s3cret", health_port, "Hello from the service test practice."
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        "-c",
        str(cfg),
        "run",
        cwd=tmp_path,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    seen: list[str] = []
    assert proc.stderr is not None
    try:
        await read_until(proc.stderr, "agent ready", 120, seen)
        caller = await sim.place_call("100", caller_number="5550100009")
        await asyncio.sleep(4)
        assert voiced_seconds(caller.heard_ulaw()) > 1.0, "the caller must hear the greeting"
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{health_port}/health")
            assert health.status_code == 200 and health.json()["active_calls"] == 1
            metrics = (await http.get(f"http://127.0.0.1:{health_port}/metrics")).text
            assert "medagent_calls_total 1" in metrics

        cfg.write_text(cfg.read_text().replace("service test practice", "reloaded practice"))
        reload = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "-c",
            str(cfg),
            "reload",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await reload.communicate()
        assert reload.returncode == 0, err.decode()
        await read_until(proc.stderr, "configuration reloaded", 30, seen)
        assert not caller.ended.is_set(), "a reload must not drop the call in progress"

        await caller.hangup()
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await proc.wait() == 0
        log_text = "".join(seen)
        assert "5550100009" not in log_text, "no caller number in clear in the logs"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await sim.stop()


async def test_wrong_ari_password_stops_with_the_fix(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)
    sim = PbxSim(PbxSimConfig(password="right"))
    url = await sim.start()
    cfg = write_config(tmp_path, url, "wrong", 0, "Hello.")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agent",
            "-c",
            str(cfg),
            "run",
            cwd=tmp_path,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(120):
            _, err = await proc.communicate()
        assert proc.returncode == 2
        assert "ari.password" in err.decode()
    finally:
        await sim.stop()
