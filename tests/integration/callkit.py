"""Shared set-up for call-flow tests: the stand-in, our ARI client, the supervisor, fake engines."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.adapters.ari.client import AriClient
from agent.config import AriConfig, Config, MediaConfig, PracticeConfig, TransferConfig
from agent.core import g711
from agent.engines.tts import EspeakTts
from agent.pbxsim import PbxSim, PbxSimConfig
from agent.runtime.hooks import CallObserver, MemoryRecords
from agent.runtime.supervisor import Supervisor
from tests.fakes.engines import ScriptedStt, fake_engines


class Observer(CallObserver):
    def __init__(self) -> None:
        self.prompts: list[str] = []
        self.words: list[str] = []
        self.transfers: list[tuple[str, str]] = []
        self.outcomes: list[str] = []
        self.is_listening = asyncio.Event()
        self.ended_event = asyncio.Event()

    def said(self, call_id: str, text: str) -> None:
        self.prompts.append(text)

    def listening(self, call_id: str) -> None:
        self.is_listening.set()

    def heard(self, call_id: str, text: str) -> None:
        self.words.append(text)

    def transfer(self, call_id: str, target: str, status: str) -> None:
        self.transfers.append((target, status))

    def ended(self, call_id: str, outcome: str) -> None:
        self.outcomes.append(outcome)
        self.ended_event.set()


@dataclass
class Kit:
    sim: PbxSim
    ari: AriClient
    sup: Supervisor
    stt: ScriptedStt
    records: MemoryRecords
    obs: Observer
    cfg: Config
    tts: EspeakTts
    extra: dict[str, Any] = field(default_factory=dict)

    def speech(self, text: str) -> bytes:
        """Caller speech as 8 kHz μ-law (real synthesized audio, so the VAD sees speech)."""
        return self.tts.synthesize(text)

    async def wait_listening(self, timeout_s: float = 20) -> None:
        await asyncio.wait_for(self.obs.is_listening.wait(), timeout_s)
        self.obs.is_listening.clear()

    async def say(self, caller: Any, text: str) -> None:
        """Speak, then a second of silence so the end of the utterance is seen."""
        await caller.play(self.speech(text) + bytes([0xFF]) * 8000)


@asynccontextmanager
async def call_kit(
    script: list[str] | None = None, *, max_calls: int = 4, tmp: str = "", **overrides: Any
) -> AsyncIterator[Kit]:
    sim = PbxSim(PbxSimConfig(seed=7))
    base_url = await sim.start()
    cfg = Config(
        ari=AriConfig(
            url=base_url,
            username="medagent",
            password="secret",
            reconnect_initial_s=0.05,
            reconnect_max_s=0.5,
        ),
        media=MediaConfig(port_min=41000, port_max=41999),
        transfer=TransferConfig(
            front_desk="PJSIP/frontdesk", on_call=["PJSIP/clinician100"], ring_timeout_s=5
        ),
        practice=dataclasses.replace(
            PracticeConfig(), greeting="Hello, you have reached the practice. How can I help?"
        ),
    )
    cfg = dataclasses.replace(
        cfg,
        calls=dataclasses.replace(cfg.calls, max_concurrent=max_calls, no_input_timeout_s=3.0),
        **overrides,
    )
    engines, stt = await fake_engines(cfg, script, tmp_cache=tmp)
    records = MemoryRecords()
    obs = Observer()
    ari = AriClient(cfg.ari)
    ari.start()
    await ari.wait_connected(5)
    sup = Supervisor(cfg, ari, engines, records=records, observer=obs, keep_raw_media=True)
    runner = asyncio.create_task(sup.run(), name="supervisor")
    kit = Kit(sim, ari, sup, stt, records, obs, cfg, EspeakTts(cfg.tts))
    try:
        yield kit
    finally:
        await sup.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ari.close()
        await engines.aclose()
        await sim.stop()


def energy_dbfs(ulaw: bytes) -> float:
    pcm = g711.ulaw_decode(ulaw).astype(np.float64)
    if len(pcm) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(pcm**2)))
    return 20 * np.log10(max(rms, 1e-9) / 32768)


def voiced_seconds(ulaw: bytes, threshold_dbfs: float = -40.0) -> float:
    """Seconds of 20 ms frames louder than ``threshold_dbfs``."""
    n = len(ulaw) // 160
    return sum(energy_dbfs(ulaw[i * 160 : (i + 1) * 160]) > threshold_dbfs for i in range(n)) * 0.02
