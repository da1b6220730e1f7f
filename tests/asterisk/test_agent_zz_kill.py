"""``medagent run`` killed (SIGKILL) with a caller on the line, restarted at once as systemd does:
the new process hands the caller to the front desk before it loads its models (0.65 s after the
kill on a quiet 2-core box), and nothing of the dead process is left in Asterisk once the call is
over. File name sorts after the other agent tests: it runs a whole agent process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from real_asterisk import ARI_APP, ROOT, AriEvents, RealAsterisk, RealCaller, SipPhone

from tests.fakes.fake_store_pg import _ensure_template, cluster, drop_database, fresh_database
from tests.integration.callkit import voiced_seconds

DID = "5551230000"
Dial = Callable[..., Awaitable[RealCaller]]
Phone = Callable[[str, str], SipPhone]

pytestmark = pytest.mark.db


def config_text(asterisk: RealAsterisk, tmp: Path, dsn: str) -> str:
    (tmp / "ari.pw").write_text(asterisk.ari_auth[1] + "\n")
    (tmp / "ari.pw").chmod(0o600)
    rtp = 31000 + (os.getpid() % 400) * 10
    return f"""
[ari]
url = "{asterisk.ari_url}"
username = "{asterisk.ari_auth[0]}"
password_file = "{tmp / "ari.pw"}"
app = "{ARI_APP}"
reconnect_initial_s = 0.05
reconnect_max_s = 0.5

[media]
port_min = {rtp}
port_max = {rtp + 9}

[database]
dsn = "{dsn}"
key_file = "{tmp / "record.key"}"
audit_key_file = "{tmp / "audit.key"}"
spool_dir = "{tmp / "spool"}"

[stt]
second_model = ""

[tts]
backend = "espeak"
cache_dir = "{tmp / "prompts"}"

[transfer]
front_desk = "PJSIP/frontdesk"
on_call = ["PJSIP/clinician100"]

[calls]
health_port = 0
"""


class Agent:
    """``medagent run`` as a process, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent", "-c", str(self.config), "run"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        out.close()

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while "agent ready" not in self.log.read_text(errors="replace"):
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def database() -> Iterator[str]:
    pg = cluster()

    async def make() -> str:
        await _ensure_template(pg)
        return await fresh_database(pg)

    name = asyncio.run(make())
    try:
        yield pg.dsn(name)
    finally:
        asyncio.run(drop_database(pg, name))


async def test_killed_agent_the_caller_reaches_the_front_desk_first_and_nothing_is_left(
    asterisk: RealAsterisk,
    ari_tap: AriEvents,
    ari_http: httpx.AsyncClient,
    dial: Dial,
    desk_phone: Phone,
    tmp_path: Path,
    database: str,
) -> None:
    config = tmp_path / "medagent.toml"
    config.write_text(config_text(asterisk, tmp_path, database))
    first = Agent(config, tmp_path / "first.log")
    second = Agent(config, tmp_path / "second.log")
    first.start()
    try:
        await first.wait_ready(120)
        phone = desk_phone("frontdesk", "answer")
        caller = await dial(DID)
        await caller.answered(timeout_s=10)
        heard = await caller.wait_heard(8000 * 2, timeout_s=10)
        assert voiced_seconds(heard) > 0.5, "the agent's greeting"

        killed = time.monotonic()
        first.kill()
        second.start()  # systemd: Restart=on-failure, RestartSec=200ms
        desk = await ari_tap.wait_for(
            lambda e: (
                e.get("type") == "ChannelCreated"
                and e["channel"]["name"].startswith("PJSIP/frontdesk-")
            ),
            10,
        )
        reached_s = time.monotonic() - killed
        # The front desk answers; its phone (sipp) echoes: the caller is heard by a person.
        await ari_tap.wait_for(
            lambda e: (
                e.get("type") == "Dial"
                and e.get("dialstatus") == "ANSWER"
                and e.get("peer", {}).get("name", "").startswith("PJSIP/frontdesk-")
            ),
            10,
        )
        before = len(caller.heard())
        await caller.send(bytes(range(0x10, 0x70)) * 160)  # 2 s
        echoed = await caller.wait_heard(before + 8000, timeout_s=5)
        assert sum(b not in (0xFF, 0x7F) for b in echoed[before:]) > 4000
        assert desk["channel"]["name"].startswith("PJSIP/frontdesk-")
        print(f"caller at the front desk {reached_s:.2f} s after the kill")
        # 0.65 s on a quiet 2-core box, 3.3 s once under a whole make test; timing belongs to
        # the benchmarks. The behaviour: the callers are handed on before the models load
        # (which alone took longer than 3 s), and well before the old 12 s.
        assert reached_s < 8.0, reached_s

        await caller.hangup()
        assert await phone.wait(10) == 0
        await second.wait_ready(120)
        log = second.log.read_text()  # complete up to "agent ready" now
        assert log.index("calls left in Stasis by a previous run") < log.index("loading models")
        for _ in range(50):
            # What the dead agent made (ids "medagent-..."), or a leg of its Stasis app.
            channels = (await ari_http.get("/channels")).json()
            bridges = (await ari_http.get("/bridges")).json()
            left = [c["id"] for c in channels if c["id"].startswith("medagent-")]
            left += [c["name"] for c in channels if "@medagent-agent" in c["name"]]
            left += [b["id"] for b in bridges if b["id"].startswith("medagent-")]
            if not left:
                break
            await asyncio.sleep(0.2)
        assert left == [], f"left behind in Asterisk: {left}"
    finally:
        first.stop()
        second.stop()
