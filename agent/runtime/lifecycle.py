"""The agent's lifecycle: ``serve()`` is what ``medagent run`` runs in the foreground (systemd runs
that) once it has the configuration (which fails fast with file/key/expected) and logging.

Start-up order: callers a previous process left in Stasis handed to the fallback (before anything
heavy: they are in dead air), models (loaded once, in worker threads), the supervisor's
subscription, then the ARI client (so the first ``Connected`` is seen), FastAGI when enabled. A
wrong ARI password stops the agent at once with a message naming the user and URL; an unreachable
Asterisk is retried with backoff while the agent waits.

Shutdown (SIGTERM/SIGINT): calls in progress are handed back to the dialplan fallback (front desk)
rather than dropped, then every task is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.config import Config, load_config
from agent.engines.nlu.protocol_files import refresh_book
from agent.errors import ConfigError
from agent.log import get_logger

log = get_logger(__name__)


async def serve(
    cfg: Config, *, stop_after_s: float | None = None, ready: asyncio.Event | None = None
) -> None:
    from agent.adapters.ari.client import AriClient
    from agent.runtime.fallback import recover_stranded

    ari = AriClient(cfg.ari)
    # Before anything heavy (even importing the engines takes seconds): callers a killed or
    # crashed predecessor left in Stasis sit in dead air until someone hands them on. (Asterisk
    # not up yet, or refusing us: logged; the first Connected recovers, or start-up stops on the
    # credentials below.)
    await recover_stranded(ari, cfg.ari.app, cfg.transfer, before=datetime.now(UTC))

    from agent.adapters.ami import AmiClient
    from agent.adapters.health import HealthServer, supervisor_inputs
    from agent.adapters.store import open_store
    from agent.runtime.engines import load_engines
    from agent.runtime.metrics import Metrics, MetricsObserver
    from agent.runtime.practice_data import CallServices
    from agent.runtime.supervisor import Supervisor

    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, reload_requested.set)

    log.info("loading models", stt=cfg.stt.model, second=cfg.stt.second_model, tts=cfg.tts.backend)
    engines = await load_engines(cfg)
    store = await open_store(cfg.database, cfg.practice)
    metrics = Metrics(max_calls=lambda: cfg.calls.max_concurrent)
    supervisor = Supervisor(
        cfg,
        ari,
        engines,
        records=store.records,
        observer=MetricsObserver(metrics, time.monotonic),
        services=CallServices(
            store.patients,
            store.scheduler,
            cfg.practice,
            timeout_s=cfg.database.command_timeout_s,
        ),
    )
    ami: AmiClient | None = None
    if cfg.ami.enabled:
        # A lost or refused AMI degrades device-state checks and call-backs; calls go on.
        ami = AmiClient(cfg.ami)
        ami.start()
    health: HealthServer | None = None
    if cfg.calls.health_port:
        health = HealthServer(
            cfg.calls.health_host,
            cfg.calls.health_port,
            inputs=supervisor_inputs(supervisor, ami=ami, store=store),
            metrics=metrics,
        )
        log.info("health and metrics", url=await health.start())
    runner = asyncio.create_task(supervisor.run(), name="supervisor")
    await asyncio.sleep(0)  # let the supervisor subscribe before the first Connected
    ari.start()
    agi: Any = None
    try:
        if cfg.agi.enabled:
            from agent.adapters.fastagi import FastAgiServer

            agi = FastAgiServer(cfg.agi, cfg.practice, supervisor)
            await agi.start()
        await ari.wait_connected(timeout_s=None if stop_after_s is None else stop_after_s)
        log.info("agent ready", app=cfg.ari.app, url=cfg.ari.url)
        if ready is not None:
            ready.set()
        write_pid_file(cfg)
        deadline = None if stop_after_s is None else loop.time() + stop_after_s
        while not stop.is_set():
            waiter = asyncio.ensure_future(stop.wait())
            reloader = asyncio.ensure_future(reload_requested.wait())
            timeout = None if deadline is None else max(0.0, deadline - loop.time())
            done, _ = await asyncio.wait(
                {waiter, reloader, runner}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            reloader.cancel()
            if runner in done:
                exc = runner.exception()
                if exc is not None:
                    raise exc
                break
            if reloader in done:
                reload_requested.clear()
                await _reload(supervisor, cfg.source)
                continue
            if not done:
                break  # stop_after_s elapsed
    finally:
        log.info("shutting down", active_calls=supervisor.active_calls)
        remove_pid_file(cfg)
        await supervisor.hand_back_all("shutdown")
        await supervisor.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        if agi is not None:
            await agi.close()
        if health is not None:
            await health.close()
        if ami is not None:
            await ami.close()
        await ari.close()
        await engines.aclose()
        await store.aclose()


async def _reload(supervisor: Any, source: str) -> None:
    """SIGHUP: re-read the file; a bad file is logged and the running configuration kept."""
    if source == "<defaults>":
        log.warning("reload requested but the agent runs on built-in defaults (no file to re-read)")
        return
    try:
        new = load_config(source)
    except ConfigError as exc:
        log.error(
            "reload refused: the configuration file is invalid; keeping the running one",
            error=str(exc),
        )
        return
    try:
        # Clinicians' protocol edits are read here, off the event loop, for the calls that start
        # from now on; a broken file is refused and the book in force kept.
        await asyncio.to_thread(refresh_book, new.practice.specialty_packs)
    except ConfigError as exc:
        log.error(
            "reload refused: a protocol file is invalid; keeping the running ones", error=str(exc)
        )
        return
    await supervisor.reload(new)


def pid_file(cfg: Config) -> Path:
    """Where ``medagent run`` writes its pid (next to the database's local state)."""
    return Path(cfg.database.spool_dir).parent / "medagent.pid"


def write_pid_file(cfg: Config) -> None:
    path = pid_file(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")


def remove_pid_file(cfg: Config) -> None:
    with contextlib.suppress(OSError):
        if pid_file(cfg).read_text().strip() == str(os.getpid()):
            pid_file(cfg).unlink()
