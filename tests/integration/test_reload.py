"""Configuration reload: new calls get the new settings, calls in progress go on."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from agent.runtime.lifecycle import _reload
from tests.integration.callkit import call_kit

pytestmark = pytest.mark.e2e


async def test_reload_changes_greeting_for_new_calls_without_dropping_the_current_one(
    tmp_path: Path,
) -> None:
    async with call_kit([], tmp=str(tmp_path)) as kit:
        first = await kit.sim.place_call("100", caller_number="5551111111")
        await kit.wait_listening()
        new_practice = dataclasses.replace(
            kit.cfg.practice, greeting="Welcome to the new practice name."
        )
        new = dataclasses.replace(kit.sup.cfg, practice=new_practice)
        needs_restart = await kit.sup.reload(new)
        assert needs_restart == []
        assert len(kit.sup.sessions) == 1 and not first.ended.is_set(), (
            "the call in progress goes on"
        )
        said_before = len(kit.obs.prompts)
        second = await kit.sim.place_call("100", caller_number="5552222222")
        await kit.wait_listening()
        # The new call's greeting (after its emergency line); the first call, still in progress,
        # may meanwhile have asked "are you still there?".
        assert "Welcome to the new practice name." in kit.obs.prompts[said_before:]
        assert kit.sup.engines.prompts.get("greeting") != []
        await first.hangup()
        await second.hangup()
        await asyncio.sleep(0.5)


async def test_invalid_file_on_reload_keeps_the_running_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "medagent.toml"
    bad.write_text("[practice]\nmode = 'sometimes'\n")

    class Sup:
        reloaded = False

        async def reload(self, new):  # pragma: no cover - must not be called
            self.reloaded = True

    sup = Sup()
    await _reload(sup, str(bad))
    assert sup.reloaded is False
    good = tmp_path / "ok.toml"
    good.write_text("[practice]\nname = 'X'\n")
    await _reload(sup, str(good))
    assert sup.reloaded is True


async def test_sections_that_need_a_restart_are_reported(tmp_path: Path) -> None:
    async with call_kit([], tmp=str(tmp_path)) as kit:
        new = dataclasses.replace(
            kit.sup.cfg,
            media=dataclasses.replace(kit.sup.cfg.media, port_min=42000, port_max=42999),
        )
        assert await kit.sup.reload(new) == ["media"]
