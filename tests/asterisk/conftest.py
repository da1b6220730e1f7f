"""Fixtures of the real-Asterisk tier (marker ``asterisk``; every test in this folder has it).

- ``asterisk`` (session): a :class:`RealAsterisk` started once from a configuration generated from
  ``asterisk-conf/`` + ``dialplans/``; stopped at the end. Skips the whole tier, with the reason,
  when the binary, the run script or sipp is missing.
- ``ari_http``: an ``httpx.AsyncClient`` on its ARI with our ari.conf user.
- ``ari_tap``: an :class:`AriEvents` that sees every channel event (``subscribeAll``), for watching
  calls that no app owns.
- ``agent_app``: an :class:`AriEvents` registered as the agent's app (``medical-agent``) that does
  nothing by itself; the test plays the agent.
- ``dial``: ``await dial(number, **kw) -> RealCaller``; every caller is closed at the end.
- ``desk_phone``: ``desk_phone("frontdesk" | "clinician100", "answer" | "noanswer") -> SipPhone``.
- ``ari_cutter``: a :class:`TcpCutter` in front of ARI (``.port``; ``.drop()`` kills the websockets).
- ``prompt_cache``: one folder of rendered prompts for the session (see ``running_agent`` in
  real_asterisk.py: our own Supervisor + AriClient with fake engines
  (scripted recognition, keyword understanding, real espeak prompts) on this Asterisk.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from real_asterisk import (
    ARI_APP,
    AriEvents,
    RealAsterisk,
    RealCaller,
    SipPhone,
    TcpCutter,
    unavailable_reason,
)

HERE = Path(__file__).resolve().parent


BOOT_LOG_CHECKS = ("test_dialplan_loads_without_warning",)
"""Tests that read the whole Asterisk log for warnings: they run first, before the agent tests
provoke the warnings a fault rightly leaves there (websocket closed abruptly, Stasis to an app
whose websocket is gone)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.asterisk)
    items.sort(key=lambda item: getattr(item, "originalname", item.name) not in BOOT_LOG_CHECKS)


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAsterisk]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # Short base: the control socket lives under it and unix socket paths are limited to 108 bytes.
    box = RealAsterisk(tmp_path_factory.mktemp("ast"))
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
async def ari_http(asterisk: RealAsterisk) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=asterisk.ari_url, auth=asterisk.ari_auth, timeout=5.0
    ) as client:
        yield client


@pytest.fixture
async def ari_tap(asterisk: RealAsterisk) -> AsyncIterator[AriEvents]:
    tap = await AriEvents.connect(asterisk, f"test-tap-{uuid.uuid4().hex[:8]}", subscribe_all=True)
    yield tap
    await tap.close()


@pytest.fixture
async def agent_app(asterisk: RealAsterisk) -> AsyncIterator[AriEvents]:
    app = await AriEvents.connect(asterisk, ARI_APP)
    yield app
    await app.close()


@pytest.fixture
async def dial(asterisk: RealAsterisk) -> AsyncIterator[Callable[..., Awaitable[RealCaller]]]:
    callers: list[RealCaller] = []

    async def _dial(number: str, **kwargs: Any) -> RealCaller:
        caller = await RealCaller.dial(asterisk, number, **kwargs)
        callers.append(caller)
        return caller

    yield _dial
    for caller in callers:
        await caller.close()


@pytest.fixture
def desk_phone(asterisk: RealAsterisk, tmp_path: Path) -> Iterator[Callable[[str, str], SipPhone]]:
    phones: list[SipPhone] = []
    ports = {"frontdesk": asterisk.ports.frontdesk, "clinician100": asterisk.ports.clinician}

    def _phone(user: str, scenario: str = "answer") -> SipPhone:
        phone = SipPhone(user, ports[user], scenario, log_dir=tmp_path)
        phone.start()
        phones.append(phone)
        return phone

    yield _phone
    for phone in phones:
        phone.stop()


@pytest.fixture
async def ari_cutter(asterisk: RealAsterisk) -> AsyncIterator[TcpCutter]:
    cutter = TcpCutter(asterisk.ports.http)
    await cutter.start()
    yield cutter
    await cutter.close()


@pytest.fixture(scope="session")
def prompt_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One rendered-prompt cache for the tier: espeak renders each prompt once, not per test."""
    return str(tmp_path_factory.mktemp("prompts"))
