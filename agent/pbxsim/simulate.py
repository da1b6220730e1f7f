"""``medagent simulate``: whole calls through the Asterisk stand-in, from a caller script.

Everything runs in this process, on loopback: the stand-in (``PbxSim``), our ARI client, the
supervisor with the real engines (Whisper, spaCy, TTS), and a scripted caller whose speech is
synthesized and sent through a modelled phone line (8 kHz μ-law, band-limited, line noise).

Script (YAML), one call or ``calls: [...]``::

    name: refill request
    caller: {number: "5551234567", name: "Test Patient", voice: joe}
    phones: {clinician100: answer}          # answer | noanswer | busy | unavailable
    steps:
      - say: "Hi, I need a refill of my lisinopril."
      - dtmf: "1"
      - silence: 2.5
      - audio: recording.wav                # relative to the script
      - say: "Yes."
        wait: false                         # speak now (barge in) instead of after the agent
      - hangup

Each step first waits for the agent to finish speaking (unless ``wait: false``). ``--json`` prints
``{"call_id", "turns": [{"caller", "agent_prompts", "latency_ms"}], "outcome": {"transfers",
"records", "hangup_by"}}`` per call (a list when the script has several calls); turn 0 is the
greeting; ``latency_ms`` is the end of the caller's speech → the first agent audio the caller hears.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from agent.config import AriConfig, Config, load_config
from agent.configcmd import resolve_config_path
from agent.core import g711
from agent.errors import ConfigError
from agent.log import configure_logging, get_logger
from agent.runtime.hooks import CallObserver, MemoryRecords

log = get_logger(__name__)

FRAME_S = 0.02
DEFAULT_STEP_TIMEOUT_S = 60.0
STEP_KINDS = ("say", "audio", "dtmf", "silence", "hangup")


# ---------------------------------------------------------------------------------------------
# Script


@dataclass(frozen=True)
class Step:
    kind: str
    value: Any = None
    wait: bool = True


@dataclass(frozen=True)
class CallScript:
    name: str
    steps: list[Step]
    number: str = "5550100"
    caller_name: str = "Test Caller"
    voice: str | None = None
    phones: dict[str, str] = field(default_factory=dict)
    base_dir: Path = Path(".")


def load_script(path: str | Path) -> list[CallScript]:
    """Read and check a caller script; errors name the call and step."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read caller script: {exc}", file=str(p)) from None
    calls = data.get("calls") if isinstance(data, dict) and "calls" in data else [data]
    if not isinstance(calls, list) or not calls:
        raise ConfigError("expected a call (with steps) or calls: [...]", file=str(p))
    return [_parse_call(c, i, p) for i, c in enumerate(calls)]


def _parse_call(raw: Any, index: int, path: Path) -> CallScript:
    where = f"calls[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", file=str(path), key=where)
    unknown = set(raw) - {"name", "caller", "phones", "steps"}
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)}", file=str(path), key=where)
    caller = raw.get("caller") or {}
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ConfigError(
            "expected a non-empty list of steps", file=str(path), key=f"{where}.steps"
        )
    steps = [_parse_step(s, f"{where}.steps[{i}]", path) for i, s in enumerate(steps_raw)]
    phones = raw.get("phones") or {}
    for name, behaviour in phones.items():
        if behaviour not in ("answer", "noanswer", "busy", "unavailable"):
            raise ConfigError(
                f"phone {name}: expected answer, noanswer, busy or unavailable",
                file=str(path),
                key=f"{where}.phones",
            )
    return CallScript(
        name=str(raw.get("name", f"call {index + 1}")),
        steps=steps,
        number=str(caller.get("number", "5550100")),
        caller_name=str(caller.get("name", "Test Caller")),
        voice=caller.get("voice"),
        phones={str(k): str(v) for k, v in phones.items()},
        base_dir=path.parent,
    )


def _parse_step(raw: Any, where: str, path: Path) -> Step:
    if raw == "hangup":
        return Step("hangup")
    if not isinstance(raw, dict):
        raise ConfigError(f"expected one of {', '.join(STEP_KINDS)}", file=str(path), key=where)
    wait = raw.get("wait", True)
    kinds = [k for k in raw if k in STEP_KINDS]
    extra = set(raw) - set(STEP_KINDS) - {"wait"}
    if len(kinds) != 1 or extra or not isinstance(wait, bool):
        raise ConfigError(
            f"expected exactly one of {', '.join(STEP_KINDS)} (and optional wait: true/false)",
            file=str(path),
            key=where,
        )
    kind = kinds[0]
    value = raw[kind]
    if kind == "silence" and not isinstance(value, int | float):
        raise ConfigError("silence: expected seconds", file=str(path), key=where)
    if kind == "dtmf" and not (
        isinstance(value, str | int) and all(c in "0123456789*#" for c in str(value))
    ):
        raise ConfigError("dtmf: expected digits", file=str(path), key=where)
    if kind in ("say", "audio") and not isinstance(value, str):
        raise ConfigError(f"{kind}: expected text", file=str(path), key=where)
    return Step(kind, str(value) if kind == "dtmf" else value, wait)


# ---------------------------------------------------------------------------------------------
# Observation


class _Watch(CallObserver):
    """Collects what the agent says per call, and when it starts listening."""

    def __init__(self) -> None:
        self.prompts: dict[str, list[str]] = {}
        self.transfers: dict[str, list[dict[str, str]]] = {}
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.listen_events: dict[str, asyncio.Event] = {}
        self.end_events: dict[str, asyncio.Event] = {}
        self.by_channel: dict[str, str] = {}
        self.started = asyncio.Event()

    def call_started(self, call_id: str, channel_id: str) -> None:
        self.by_channel[channel_id] = call_id
        self.prompts[call_id] = []
        self.transfers[call_id] = []
        self.records[call_id] = []
        self.listen_events[call_id] = asyncio.Event()
        self.end_events[call_id] = asyncio.Event()
        self.started.set()

    def said(self, call_id: str, text: str) -> None:
        self.prompts[call_id].append(text)

    def listening(self, call_id: str) -> None:
        self.listen_events[call_id].set()

    def transfer(self, call_id: str, target: str, status: str) -> None:
        self.transfers[call_id].append({"target": target, "status": status})

    def record(self, call_id: str, kind: str, data: dict[str, Any], urgent: bool) -> None:
        self.records[call_id].append({"kind": kind, "urgent": urgent, "data": data})

    def ended(self, call_id: str, outcome: str) -> None:
        self.end_events[call_id].set()


# ---------------------------------------------------------------------------------------------
# The caller's line: a continuous RTP stream, speech when there is some, silence otherwise


class CallerLine:
    def __init__(self, leg: Any) -> None:
        self.leg = leg
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[float]]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"sim-line:{leg.channel_id}"
        )

    async def _run(self) -> None:
        silence = bytes([g711.ULAW_SILENCE]) * 800  # 100 ms
        loop = asyncio.get_running_loop()
        while not self.leg.ended.is_set():
            try:
                audio, done = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                await self.leg.play(silence)
                continue
            started = loop.time()
            await self.leg.play(audio)
            if not done.done():
                done.set_result(started)

    async def speak(self, ulaw: bytes) -> float:
        """Queue speech; returns the loop time its first frame was sent."""
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((ulaw, done))
        return await done

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def speech_end_offset_s(ulaw: bytes, threshold_dbfs: float = -40.0) -> float:
    """Seconds from the start of ``ulaw`` to the end of its last voiced 20 ms frame."""
    pcm = g711.ulaw_decode(ulaw).astype(np.float64)
    n = len(pcm) // 160
    last = 0
    for i in range(n):
        frame = pcm[i * 160 : (i + 1) * 160]
        rms = float(np.sqrt(np.mean(frame**2))) if len(frame) else 0.0
        if 20 * np.log10(max(rms, 1e-9) / 32768) > threshold_dbfs:
            last = i + 1
    return last * FRAME_S


# ---------------------------------------------------------------------------------------------
# Running calls


@dataclass
class SimOptions:
    voice: str | None = None
    noise_db: float | None = -50.0
    record_dir: Path | None = None
    step_timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    seed: int = 1
    use_database: bool = True
    """Write records to the configured database (the embedded PostgreSQL by default)."""


async def simulate(
    cfg: Config, scripts: list[CallScript], opts: SimOptions, engines: Any = None
) -> list[dict[str, Any]]:
    """Run the calls one after another; returns one report per call."""
    from agent.adapters.ari.client import AriClient
    from agent.pbxsim import PbxSim, PbxSimConfig
    from agent.runtime.engines import load_engines
    from agent.runtime.supervisor import Supervisor

    sim = PbxSim(
        PbxSimConfig(username="medagent", password="simulate", app=cfg.ari.app, seed=opts.seed)
    )
    base_url = await sim.start()
    cfg = dataclasses.replace(
        cfg,
        ari=dataclasses.replace(AriConfig(), url=base_url, password="simulate", app=cfg.ari.app),
    )
    own_engines = engines is None
    engines = engines or await load_engines(cfg)
    watch = _Watch()
    store = None
    records: Any = MemoryRecords()
    services = None
    if opts.use_database:
        from agent.adapters.store import open_store
        from agent.adapters.store.scheduling import seed_demo
        from agent.runtime.services import CallServices

        store = await open_store(cfg.database, cfg.practice)
        records = store.records
        now = datetime.now(UTC)
        # The demo practice: providers, schedules and a few synthetic patients (idempotent).
        await seed_demo(
            store.database.pool,
            cfg.practice,
            store.keys,
            today=now.astimezone(ZoneInfo(cfg.practice.timezone)).date(),
            now=now,
        )
        services = CallServices(store.patients, store.scheduler, cfg.practice)
    ari = AriClient(cfg.ari)
    sup = Supervisor(cfg, ari, engines, records=records, observer=watch, services=services)
    runner = asyncio.create_task(sup.run(), name="supervisor")
    await asyncio.sleep(0)
    ari.start()
    reports = []
    try:
        await ari.wait_connected(10)
        for i, script in enumerate(scripts):
            reports.append(await _one_call(sim, watch, script, opts, i))
    finally:
        await sup.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await ari.close()
        if own_engines:
            await engines.aclose()
        if store is not None:
            await store.aclose()
        await sim.stop()
    return reports


async def _one_call(
    sim: Any, watch: _Watch, script: CallScript, opts: SimOptions, index: int
) -> dict[str, Any]:
    from agent.engines.telephone import available_voices, load_audio_file, synthesize_caller

    for phone, behaviour in script.phones.items():
        sim.phone(phone).behaviour = behaviour
    voices = available_voices()
    voice = script.voice or opts.voice or ("joe" if "joe" in voices else "us-male")
    loop = asyncio.get_running_loop()
    leg = await sim.place_call("100", caller_number=script.number, caller_name=script.caller_name)
    line = CallerLine(leg)
    for _ in range(int(opts.step_timeout_s / 0.05)):
        if leg.channel_id in watch.by_channel:
            break
        await asyncio.sleep(0.05)
    else:
        await line.close()
        raise RuntimeError("the agent never picked up the simulated call")
    call_id = watch.by_channel[leg.channel_id]
    listening, ended = watch.listen_events[call_id], watch.end_events[call_id]
    prompts = watch.prompts[call_id]
    turns: list[dict[str, Any]] = [{"caller": None, "agent_prompts": [], "latency_ms": None}]
    mark = 0
    try:
        for n, step in enumerate(script.steps):
            if step.wait:
                await _wait_either(listening, ended, opts.step_timeout_s)
            turns[-1]["agent_prompts"] = prompts[mark:]
            mark = len(prompts)
            if ended.is_set():
                break
            listening.clear()
            turn: dict[str, Any] = {"caller": None, "agent_prompts": [], "latency_ms": None}
            turns.append(turn)
            if step.kind in ("say", "audio"):
                if step.kind == "say":
                    audio = await asyncio.to_thread(
                        synthesize_caller,
                        step.value,
                        voice,
                        noise_db=opts.noise_db,
                        seed=opts.seed + index * 100 + n,
                    )
                    turn["caller"] = step.value
                else:
                    audio = await asyncio.to_thread(load_audio_file, script.base_dir / step.value)
                    turn["caller"] = f"<audio {step.value}>"
                started = await line.speak(audio)
                speech_end = started + speech_end_offset_s(audio)
                turn["_speech_end"] = speech_end
            elif step.kind == "dtmf":
                turn["caller"] = f"<dtmf {step.value}>"
                await leg.send_dtmf(step.value)
                turn["_speech_end"] = loop.time()
            elif step.kind == "silence":
                turn["caller"] = f"<silence {step.value} s>"
                await asyncio.sleep(float(step.value))
            elif step.kind == "hangup":
                turn["caller"] = "<hangup>"
                await leg.hangup()
                break
        # After the script: let the agent finish (it may hang up or transfer), then hang up.
        if not ended.is_set() and not leg.ended.is_set():
            await _wait_either(listening, ended, opts.step_timeout_s)
        turns[-1]["agent_prompts"] = prompts[mark:]
        if not leg.ended.is_set():
            await leg.hangup()
        await _wait_either(ended, ended, 15)
    finally:
        await line.close()
    for turn in turns:
        end = turn.pop("_speech_end", None)
        if end is not None:
            first = leg.first_audio_after(end)
            turn["latency_ms"] = None if first is None else round((first - end) * 1000)
    if opts.record_dir is not None:
        opts.record_dir.mkdir(parents=True, exist_ok=True)
        leg.save_wav(opts.record_dir / f"call{index + 1}-caller.wav")
    return {
        "call_id": call_id,
        "name": script.name,
        "turns": turns,
        "outcome": {
            "transfers": watch.transfers[call_id],
            "records": watch.records[call_id],
            "hangup_by": "caller" if leg.hangup_by == "caller" else "agent",
            "path": list(leg.path),
        },
    }


async def _wait_either(a: asyncio.Event, b: asyncio.Event, timeout_s: float) -> None:
    waiters = {asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


# ---------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("script", help="caller script (YAML)")
    parser.add_argument("--json", action="store_true", help="print the machine-readable report")
    parser.add_argument(
        "--record", metavar="DIR", help="save what each caller heard as WAV files in DIR"
    )
    parser.add_argument(
        "--voice",
        help="caller voice (see agent.engines.telephone.VOICES); default joe when installed",
    )
    parser.add_argument(
        "--noise-db", type=float, default=-50.0, help="line hiss level in dBFS (default -50)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-db", action="store_true", help="keep records in memory instead of the database"
    )
    parser.add_argument("--verbose", action="store_true", help="show the agent's logs on stderr")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(resolve_config_path(args.config))
        scripts = load_script(args.script)
    except ConfigError as exc:
        print(f"medagent simulate: {exc}", file=sys.stderr)
        return 2
    configure_logging(dataclasses.replace(cfg.logging, level="info" if args.verbose else "error"))
    opts = SimOptions(
        voice=args.voice,
        noise_db=args.noise_db,
        record_dir=Path(args.record) if args.record else None,
        seed=args.seed,
        use_database=not args.no_db,
    )
    reports = asyncio.run(simulate(cfg, scripts, opts))
    if args.json:
        json.dump(reports[0] if len(reports) == 1 else reports, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        for report in reports:
            sys.stdout.write(render_transcript(report))
    return 0


def render_transcript(report: dict[str, Any]) -> str:
    """A readable transcript of one simulated call."""
    lines = [f"\n=== {report['name']} (call {report['call_id']}) ==="]
    for i, turn in enumerate(report["turns"]):
        if i > 0:
            lines.append(f"  CALLER: {turn['caller']}")
        latency = f"   [{turn['latency_ms']} ms]" if turn.get("latency_ms") is not None else ""
        for j, prompt in enumerate(turn["agent_prompts"]):
            lines.append(f"  AGENT:  {prompt}{latency if j == 0 else ''}")
    out = report["outcome"]
    lines.append(f"  -- hung up by {out['hangup_by']}; path: {' -> '.join(out['path'])}")
    for t in out["transfers"]:
        lines.append(f"  -- transfer to {t['target']}: {t['status']}")
    for r in out["records"]:
        if r["kind"] != "summary":
            lines.append(f"  -- record: {r['kind']}{' (URGENT)' if r['urgent'] else ''}")
    return "\n".join(lines) + "\n"
