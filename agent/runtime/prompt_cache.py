"""The prompt cache: speech ready to send, cut into 20 ms μ-law frames.

Static prompts (greeting, "one moment", goodbye, …) are rendered once at start-up in a worker
thread and held in memory, so ``get("greeting")`` hands the pacer its frames with no synthesis
delay: the greeting starts within one frame time of answering. They are also persisted under
``TtsConfig.cache_dir``, keyed by a hash of the engine's identity (backend, voice, rate, level,
render version) and the text, so a restart does not synthesize again, and a change of voice or text
never serves stale audio.

Dynamic prompts (read-backs, FAQ answers) go through ``await render(text)``: synthesis runs in a
bounded thread pool off the event loop, with a small LRU in front and one synthesis per text even
when several calls ask at once.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.config import PracticeConfig, TtsConfig
from agent.core.dialog import prompts_es
from agent.core.dialog.prompts import STATIC, emergency_line
from agent.core.frames import ULAW_FRAME_BYTES
from agent.core.g711 import ulaw_decode
from agent.core.pacer import split_frames
from agent.engines.tts import TtsEngine
from agent.log import get_logger

log = get_logger(__name__)


__all__ = ["PromptCache", "frames", "static_prompts", "static_prompts_es"]


EDGE_SILENCE_S = 0.04
"""Silence kept before and after a prompt's speech. Voices pad their audio with 0.1–0.4 s of
silence at each end; between two prompts of one turn (the emergency line, then the greeting) and
before the caller may answer, that is dead air on the line."""
_SILENCE_LEVEL = 180
"""Sample magnitude (16-bit) below which a sample is silence: about -45 dBFS, under any voice's
quietest consonant at the prompts' -3 dBFS peak."""


def trim_silence(ulaw: bytes, keep_s: float = EDGE_SILENCE_S) -> bytes:
    """``ulaw`` with its leading and trailing silence cut to ``keep_s``."""
    if not ulaw:
        return ulaw
    loud = np.flatnonzero(np.abs(ulaw_decode(ulaw)) > _SILENCE_LEVEL)
    if loud.size == 0:
        return ulaw
    keep = int(keep_s * 8000)
    return ulaw[max(0, int(loud[0]) - keep) : int(loud[-1]) + 1 + keep]


def frames(ulaw: bytes) -> list[bytes]:
    """Split μ-law audio into 20 ms frames (edge silence trimmed, ``trim_silence``), padding the
    last one with μ-law silence (0xFF)."""
    return split_frames(trim_silence(ulaw))


def static_prompts(practice: PracticeConfig) -> dict[str, str]:
    """The prompts every call may need at once, by key: the dialog's fixed prompts plus the
    practice's own greeting, and the emergency line said before it."""
    return {
        **STATIC,
        "emergency_line": emergency_line(practice.emergency_number),
        "greeting": practice.greeting,
    }


def static_prompts_es(practice: PracticeConfig) -> dict[str, str]:
    """The same prompts in Spanish, by the same keys (the dialog names them ``es:<key>``)."""
    return {
        **prompts_es.STATIC,
        "emergency_line": prompts_es.emergency_line(practice.emergency_number),
        "greeting": prompts_es.greeting(practice.name),
    }


def cache_key(identity: str, text: str) -> str:
    """The persisted file's name for ``text`` rendered by an engine of ``identity``."""
    digest = hashlib.sha256(f"{identity}\0{text}".encode()).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class PrerenderReport:
    rendered: int
    """Prompts synthesized now."""
    loaded: int
    """Prompts read back from the disk cache."""
    seconds: float
    audio_seconds: float


class PromptCache:
    """Static prompts pre-rendered at start-up; dynamic ones rendered on demand off the loop."""

    def __init__(
        self,
        engine: TtsEngine,
        prompts: Mapping[str, str],
        cfg: TtsConfig,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """``cache_dir`` overrides ``cfg.cache_dir`` (tests); an empty directory setting keeps
        everything in memory."""
        if cfg.workers < 1:
            raise ValueError(f"tts.workers must be at least 1, got {cfg.workers}")
        if cfg.dynamic_cache_size < 0:
            raise ValueError(f"tts.dynamic_cache_size must be >= 0, got {cfg.dynamic_cache_size}")
        self._engine = engine
        self._prompts = dict(prompts)
        directory = cfg.cache_dir if cache_dir is None else os.fspath(cache_dir)
        self._dir = Path(directory) if directory else None
        self._static: dict[str, list[bytes]] = {}
        self._dynamic: OrderedDict[str, list[bytes]] = OrderedDict()
        self._dynamic_size = cfg.dynamic_cache_size
        self._pending: dict[str, asyncio.Future[list[bytes]]] = {}
        self._executor = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="tts")

    # ---------------------------------------------------------------------------------------------
    # Static prompts

    def prerender(self) -> PrerenderReport:
        """Render (or load from disk) every static prompt. Blocking: run it in a thread."""
        started = time.perf_counter()
        rendered = loaded = 0
        for key, text in self._prompts.items():
            ulaw = self._load(text)
            if ulaw is None:
                ulaw = self._engine.synthesize(text)
                self._store(text, ulaw)
                rendered += 1
            else:
                loaded += 1
            self._static[key] = frames(ulaw)
        report = PrerenderReport(
            rendered=rendered,
            loaded=loaded,
            seconds=time.perf_counter() - started,
            audio_seconds=sum(len(f) for f in self._static.values()) * ULAW_FRAME_BYTES / 8000,
        )
        log.info(
            "prompts_ready",
            rendered=report.rendered,
            loaded=report.loaded,
            seconds=round(report.seconds, 3),
            engine=self._engine.identity,
        )
        return report

    async def start(self) -> PrerenderReport:
        """Pre-render the static prompts in the worker pool; call before answering calls."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.prerender)

    async def update(self, prompts: Mapping[str, str]) -> PrerenderReport:
        """New static prompt texts (a configuration reload): rendered off the loop, then swapped in
        at once, so a call in progress never finds a prompt missing."""
        fresh = PromptCache.__new__(PromptCache)
        fresh.__dict__.update(self.__dict__)
        fresh._prompts = dict(prompts)
        fresh._static = {}
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(self._executor, fresh.prerender)
        self._prompts, self._static = fresh._prompts, fresh._static
        return report

    def get(self, key: str) -> list[bytes]:
        """A static prompt's frames, at once. ``KeyError`` names the missing prompt."""
        try:
            return list(self._static[key])
        except KeyError:
            if key in self._prompts:
                raise KeyError(f"prompt {key!r} is not rendered yet: await start() first") from None
            raise KeyError(
                f"unknown prompt {key!r}; static prompts are: {', '.join(sorted(self._prompts))}"
            ) from None

    def keys(self) -> list[str]:
        return list(self._prompts)

    # ---------------------------------------------------------------------------------------------
    # Dynamic prompts

    async def render(self, text: str) -> list[bytes]:
        """Frames for any text: from the LRU, or synthesized in the worker pool."""
        cached = self._dynamic.get(text)
        if cached is not None:
            self._dynamic.move_to_end(text)
            return list(cached)
        future = self._pending.get(text)
        if future is None:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor, self._render_frames, text)
            self._pending[text] = future
            future.add_done_callback(functools.partial(self._finished, text))
        # shield: a caller hanging up (cancelled) must not cancel the render others await.
        return list(await asyncio.shield(future))

    def _finished(self, text: str, future: asyncio.Future[list[bytes]]) -> None:
        self._pending.pop(text, None)
        # exception() also marks a failure as retrieved when every waiter has gone away.
        if not future.cancelled() and future.exception() is None:
            self._remember(text, future.result())

    def _remember(self, text: str, result: list[bytes]) -> None:
        if self._dynamic_size == 0:
            return
        self._dynamic[text] = result
        self._dynamic.move_to_end(text)
        while len(self._dynamic) > self._dynamic_size:
            self._dynamic.popitem(last=False)

    def _render_frames(self, text: str) -> list[bytes]:
        return frames(self._engine.synthesize(text))

    async def aclose(self) -> None:
        """Wait for renders in progress and stop the worker threads."""
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    # ---------------------------------------------------------------------------------------------
    # Disk cache

    def _path(self, text: str) -> Path | None:
        if self._dir is None:
            return None
        return self._dir / f"{cache_key(self._engine.identity, text)}.ulaw"

    def _load(self, text: str) -> bytes | None:
        path = self._path(text)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("prompt_cache_unreadable", path=str(path), error=str(exc))
            return None
        return data or None

    def _store(self, text: str, ulaw: bytes) -> None:
        path = self._path(text)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a crash mid-write never leaves a truncated prompt to serve.
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(ulaw)
            os.replace(tmp, path)
        except OSError as exc:
            # A read-only or full disk costs only start-up time on the next restart.
            log.warning("prompt_cache_not_saved", path=str(path), error=str(exc))
