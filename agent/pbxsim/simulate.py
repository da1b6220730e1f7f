"""Whole calls through the Asterisk stand-in, from a caller script (``medagent simulate``).

Everything runs in this process, on loopback: the stand-in (``PbxSim``), our ARI client, the
supervisor with the real engines (Whisper, spaCy, TTS), and a scripted caller whose speech is
synthesized and sent through a modelled phone line (8 kHz μ-law, band-limited, line noise).

Script (YAML), one call or ``calls: [...]``::

    name: refill request
    caller: {number: "5551234567", name: "Test Patient", voice: joe}
    phones: {clinician100: answer}          # answer | noanswer | busy | unavailable
    given:                                  # optional: the caller's own appointments beforehand
      appointments: [{patient: "Mary Jones", provider: patel, in_days: 3, at: "10:00"}]
    expect: {...}                           # not read here: checks for tests and ``bench``
    steps:
      - say: "Hi, I need a refill of my lisinopril."
      - dtmf: "1"
      - silence: 2.5
      - audio: recording.wav                # relative to the script
      - say: "Yes."
        wait: false                         # speak now (barge in) instead of after the agent
      - hangup

Each step first waits for the agent to finish speaking (unless ``wait: false``). ``simulate()``
returns per call ``{"call_id", "turns": [{"caller", "agent_prompts", "latency_ms"}], "outcome":
{"transfers", "records", "hangup_by", "phones"}}`` (what ``medagent simulate --json`` prints); turn 0
is the greeting; ``latency_ms`` is the end of the caller's speech → the first agent audio the caller
hears; ``phones`` lists what each desk phone named in ``phones:`` heard (transcribed), in order.

``SimOptions.now`` (``--at 2026-12-01T19:30:00-05:00``) fixes the practice's clock at the start of
the run (office hours, "tomorrow", open slots); ``SimOptions.concurrency`` (``--concurrency N``)
runs up to N calls of the script at once. Calls that set ``phones:`` take turns with each other,
because desk phones are shared by the whole stand-in.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import yaml

from agent.config import AriConfig, Config
from agent.core import g711
from agent.core.frames import FRAME_S
from agent.errors import ConfigError
from agent.log import get_logger
from agent.runtime.hooks import CallObserver, MemoryRecords

log = get_logger(__name__)

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
    appointments: tuple[GivenAppointment, ...] = ()
    """Booked for the caller before the call (``given.appointments``), so a reschedule or cancel
    script does not depend on an earlier call."""
    expect: dict[str, Any] = field(default_factory=dict)
    """What the call should leave behind; read by the tests and ``bench``, not by the simulator."""


@dataclass(frozen=True)
class GivenAppointment:
    patient: str
    """A demo patient's name (``agent.adapters.store.scheduling.DEMO_PATIENTS``)."""
    provider: str
    in_days: int
    """Days after the run's start date (``SimOptions.now``), in the practice time zone."""
    at: str
    """Local start time, ``HH:MM``, on a slot of the provider's schedule."""


MAX_SCRIPT_BYTES = 1 << 20
"""A caller script is a few kilobytes; a larger file is not one."""
MAX_SILENCE_S = 600.0
MAX_GIVEN_DAYS = 366


class _AliasRefused(ValueError):
    def __init__(self, line: int) -> None:
        super().__init__(f"line {line}: aliases (*name) are not allowed in caller scripts")


class _ScriptLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without aliases. ``yaml.safe_load`` builds each ``*name`` as the same
    object again, so a few hundred bytes of nested aliases stand for millions of strings
    ("billion laughs") that the first ``str()`` of them spells out; a caller script has no use
    for aliases, so the composer refuses the first one before anything is built."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            # types-PyYAML leaves peek_event unannotated.
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _AliasRefused(event.start_mark.line + 1)
        return super().compose_node(parent, index)


def _read_yaml(p: Path) -> Any:
    """The YAML document in ``p``; ``ConfigError`` for anything that is not a small UTF-8 YAML
    file without aliases."""
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read caller script: {exc.strerror or type(exc).__name__}", file=str(p)
        ) from None
    if len(raw) > MAX_SCRIPT_BYTES:
        raise ConfigError(
            f"larger than {MAX_SCRIPT_BYTES // 1024} KiB; not a caller script", file=str(p)
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"not UTF-8 text (line {line})", file=str(p)) from None
    try:
        return yaml.load(text, Loader=_ScriptLoader)  # a SafeLoader without aliases
    except _AliasRefused as exc:
        raise ConfigError(f"{exc}; write the value out", file=str(p)) from None
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        raise ConfigError(f"not valid YAML{where}: {exc.problem}", file=str(p)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {type(exc).__name__}", file=str(p)) from None
    except RecursionError:  # the composer and constructor recurse into nested collections
        raise ConfigError("lists or tables nested too deeply", file=str(p)) from None


def load_script(path: str | Path) -> list[CallScript]:
    """Read and check a caller script (or every ``*.yaml`` of a folder, by name); errors name the
    file, the call and the step, and are always ``ConfigError``."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.yaml"))
        if not files:
            raise ConfigError("no *.yaml caller scripts in this folder", file=str(p))
        return [call for f in files for call in load_script(f)]
    data = _read_yaml(p)
    calls = data.get("calls") if isinstance(data, dict) and "calls" in data else [data]
    if not isinstance(calls, list) or not calls:
        raise ConfigError("expected a call (with steps) or calls: [...]", file=str(p))
    return [_parse_call(c, i, p) for i, c in enumerate(calls)]


def _text(value: Any, default: str, *, path: Path, key: str) -> str:
    """A scalar the script means as text (YAML reads ``5551234567`` as a number); not a list or
    a table."""
    if value is None:
        return default
    if isinstance(value, str | int | float | date) and not isinstance(value, bool):
        return str(value)
    raise ConfigError("expected text", file=str(path), key=key)


def _table(value: Any, *, path: Path, key: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("expected a table", file=str(path), key=key)
    return value


def _unknown(raw: dict[Any, Any], known: set[str], *, path: Path, key: str) -> None:
    unknown = set(raw) - known
    if unknown:
        names = sorted(str(k) for k in unknown)
        raise ConfigError(f"unknown key(s) {names}", file=str(path), key=key)


def _parse_call(raw: Any, index: int, path: Path) -> CallScript:
    where = f"calls[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError("expected a table", file=str(path), key=where)
    _unknown(raw, {"name", "caller", "phones", "steps", "given", "expect"}, path=path, key=where)
    caller = _table(raw.get("caller"), path=path, key=f"{where}.caller")
    _unknown(caller, {"number", "name", "voice"}, path=path, key=f"{where}.caller")
    voice = caller.get("voice")
    if voice is not None and not isinstance(voice, str):
        raise ConfigError("expected text", file=str(path), key=f"{where}.caller.voice")
    steps_raw = raw.get("steps")
    if not isinstance(steps_raw, list) or not steps_raw:
        raise ConfigError(
            "expected a non-empty list of steps", file=str(path), key=f"{where}.steps"
        )
    steps = [_parse_step(s, f"{where}.steps[{i}]", path) for i, s in enumerate(steps_raw)]
    phones = _table(raw.get("phones"), path=path, key=f"{where}.phones")
    for name, behaviour in phones.items():
        if not isinstance(behaviour, str) or behaviour not in (
            "answer",
            "noanswer",
            "busy",
            "unavailable",
        ):
            raise ConfigError(
                f"phone {name}: expected answer, noanswer, busy or unavailable",
                file=str(path),
                key=f"{where}.phones",
            )
    expect = raw.get("expect") or {}
    if not isinstance(expect, dict):
        raise ConfigError("expected a table", file=str(path), key=f"{where}.expect")
    return CallScript(
        name=_text(raw.get("name"), f"call {index + 1}", path=path, key=f"{where}.name"),
        steps=steps,
        number=_text(caller.get("number"), "5550100", path=path, key=f"{where}.caller.number"),
        caller_name=_text(caller.get("name"), "Test Caller", path=path, key=f"{where}.caller.name"),
        voice=voice,
        phones={str(k): v for k, v in phones.items()},
        base_dir=path.parent,
        appointments=_parse_given(raw.get("given"), f"{where}.given", path),
        expect=expect,
    )


def _parse_given(raw: Any, where: str, path: Path) -> tuple[GivenAppointment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or set(raw) - {"appointments"}:
        raise ConfigError("expected {appointments: [...]}", file=str(path), key=where)
    items = raw.get("appointments") or []
    if not isinstance(items, list):
        raise ConfigError("expected a list", file=str(path), key=f"{where}.appointments")
    out = []
    for i, a in enumerate(items):
        key = f"{where}.appointments[{i}]"
        try:
            if not isinstance(a, dict) or set(a) != {"patient", "provider", "in_days", "at"}:
                raise TypeError
            if not all(isinstance(a[k], str) for k in ("patient", "provider", "at")):
                raise TypeError
            in_days = a["in_days"]
            if isinstance(in_days, bool) or not isinstance(in_days, int):
                raise TypeError
            given = GivenAppointment(a["patient"], a["provider"], in_days, a["at"])
            datetime.strptime(given.at, "%H:%M")
        except (TypeError, ValueError):
            raise ConfigError(
                "expected patient, provider, in_days and at (HH:MM)", file=str(path), key=key
            ) from None
        if not 0 <= in_days <= MAX_GIVEN_DAYS:
            raise ConfigError(
                f"in_days: expected 0 to {MAX_GIVEN_DAYS} days after the start, got {in_days}",
                file=str(path),
                key=key,
            )
        out.append(given)
    return tuple(out)


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
    if kind == "silence" and not (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value <= MAX_SILENCE_S  # also false for NaN
    ):
        raise ConfigError(
            f"silence: expected seconds, 0 to {MAX_SILENCE_S:g}", file=str(path), key=where
        )
    if kind == "dtmf" and not (
        isinstance(value, str | int)
        and not isinstance(value, bool)
        and str(value)
        and all(c in "0123456789*#" for c in str(value))
    ):
        raise ConfigError("dtmf: expected digits", file=str(path), key=where)
    if kind in ("say", "audio") and not (isinstance(value, str) and value.strip()):
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
        self.bridged: set[str] = set()
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
        if status == "answered":
            # Bridged to a person: the agent will not speak again, so no step waits for it.
            self.bridged.add(call_id)
            self.listen_events[call_id].set()

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


def _voiced_frames(ulaw: bytes, threshold_dbfs: float) -> list[int]:
    pcm = g711.ulaw_decode(ulaw).astype(np.float64)
    n = len(pcm) // 160
    if n == 0:
        return []
    frames = pcm[: n * 160].reshape(n, 160)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    dbfs = 20 * np.log10(np.maximum(rms, 1e-9) / 32768)
    return [int(i) for i in np.flatnonzero(dbfs > threshold_dbfs)]


def speech_end_offset_s(ulaw: bytes, threshold_dbfs: float = -40.0) -> float:
    """Seconds from the start of ``ulaw`` to the end of its last voiced 20 ms frame."""
    voiced = _voiced_frames(ulaw, threshold_dbfs)
    return (voiced[-1] + 1) * FRAME_S if voiced else 0.0


def speech_start_offset_s(ulaw: bytes, threshold_dbfs: float = -40.0) -> float:
    """Seconds from the start of ``ulaw`` to its first voiced 20 ms frame (0 when none)."""
    voiced = _voiced_frames(ulaw, threshold_dbfs)
    return voiced[0] * FRAME_S if voiced else 0.0


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
    now: datetime | None = None
    """The practice's clock at the start of the run (timezone-aware); it then runs in real time.
    ``None``: the real clock."""
    concurrency: int = 1
    """Calls of the script in progress at once (at most ``calls.max_concurrent``)."""
    transcribe_phones: bool = True
    """Transcribe what the desk phones named in a script heard (one Whisper pass per answered leg)."""


def sim_clock(start: datetime | None) -> Callable[[], datetime]:
    """A clock that reads ``start`` now and then advances in real time (the calls are real-time).
    ``given`` appointments and the seeded schedule are placed relative to it."""
    if start is None:
        return lambda: datetime.now(UTC)
    if start.tzinfo is None:
        raise ValueError("the simulated start time needs a UTC offset, e.g. 2026-12-01T19:30-05:00")
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


async def simulate(
    cfg: Config, scripts: list[CallScript], opts: SimOptions, engines: Any = None
) -> list[dict[str, Any]]:
    """Run the calls (``opts.concurrency`` at a time); returns one report per call, in order."""
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
    if not 1 <= opts.concurrency <= cfg.calls.max_concurrent:
        raise ValueError(
            f"concurrency must be 1..{cfg.calls.max_concurrent} (calls.max_concurrent)"
        )
    clock = sim_clock(opts.now)
    own_engines = engines is None
    engines = engines or await load_engines(cfg)
    watch = _Watch()
    store = None
    records: Any = MemoryRecords()
    services = None
    if opts.use_database:
        from agent.adapters.store import open_store
        from agent.adapters.store.scheduling import seed_demo
        from agent.runtime.practice_data import CallServices

        store = await open_store(cfg.database, cfg.practice)
        records = store.records
        now = clock()
        # The demo practice: providers, schedules and a few synthetic patients (idempotent).
        await seed_demo(
            store.database.pool,
            cfg.practice,
            store.keys,
            store.audit_key,
            today=now.astimezone(ZoneInfo(cfg.practice.timezone)).date(),
            now=now,
        )
        services = CallServices(store.patients, store.scheduler, cfg.practice)
        for script in scripts:
            for given in script.appointments:
                await _book_given(store, cfg, given, now)
    ari = AriClient(cfg.ari)
    sup = Supervisor(
        cfg, ari, engines, records=records, observer=watch, services=services, clock=clock
    )
    runner = asyncio.create_task(sup.run(), name="supervisor")
    await asyncio.sleep(0)
    ari.start()
    reports: list[dict[str, Any]] = []
    try:
        await ari.wait_connected(10)
        slots = asyncio.Semaphore(opts.concurrency)
        phones_lock = asyncio.Lock()
        stt = engines.stt if opts.transcribe_phones else None

        async def one(i: int, script: CallScript) -> dict[str, Any]:
            async with slots:
                if not script.phones:
                    return await _one_call(sim, watch, script, opts, i)
                # Desk phones are shared by the whole stand-in: one script's settings at a time.
                async with phones_lock:
                    return await _one_call(sim, watch, script, opts, i, stt=stt)

        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(one(i, s), name=f"sim-call:{i + 1}")
                for i, s in enumerate(scripts)
            ]
        reports = [t.result() for t in tasks]
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


async def _book_given(store: Any, cfg: Config, given: GivenAppointment, now: datetime) -> None:
    """Book a demo patient's appointment on the provider's slot at the given local time."""
    from agent.adapters.store.scheduling import DEMO_PATIENTS, Slot

    dob = next((d for name, d, _, _ in DEMO_PATIENTS if name == given.patient), None)
    if dob is None:
        raise ConfigError(f"given appointment: {given.patient!r} is not a demo patient")
    patients = await store.patients.find(given.patient, dob, actor="simulate", now=now)
    tz = ZoneInfo(cfg.practice.timezone)
    day = now.astimezone(tz).date() + timedelta(days=given.in_days)
    hour, minute = (int(x) for x in given.at.split(":"))
    starts = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    row = await store.database.pool.fetchrow(
        "SELECT id, provider_id, starts_at, ends_at FROM slots"
        " WHERE provider_id = $1 AND starts_at = $2",
        given.provider,
        starts,
    )
    if row is None or not patients:
        raise ConfigError(
            f"given appointment: no {given.provider} slot at {starts.isoformat()} for {given.patient}"
        )
    for booked in await store.scheduler.appointments_for(patients[0].id, now):
        if booked.slot.id == row["id"]:
            return  # already there (a database kept from an earlier run)
    slot = Slot(row["id"], row["provider_id"], row["starts_at"], row["ends_at"])
    await store.scheduler.book(slot, patients[0].id, "follow-up", now=now)


async def _one_call(
    sim: Any,
    watch: _Watch,
    script: CallScript,
    opts: SimOptions,
    index: int,
    *,
    stt: Any = None,
) -> dict[str, Any]:
    from agent.engines.recording import load_audio_file
    from agent.pbxsim.callers import available_voices, synthesize_caller

    phone_legs_before = {}
    for phone, behaviour in script.phones.items():
        sim.phone(phone).behaviour = behaviour
        phone_legs_before[phone] = len(sim.phone(phone).calls)
    voices = available_voices()
    voice = script.voice or opts.voice or ("joe" if "joe" in voices else "us-male")
    loop = asyncio.get_running_loop()

    def render(n: int, step: Step) -> bytes:
        if step.kind == "say":
            return synthesize_caller(
                step.value, voice, noise_db=opts.noise_db, seed=opts.seed + index * 100 + n
            )
        return load_audio_file(script.base_dir / step.value)

    # The caller knows what they will say before they dial: rendered now, their answers come as
    # soon as the agent stops, however long synthesis takes on a loaded box (it once took longer
    # than the agent's no-input timeout, and the call went off script).
    spoken = {
        n: await asyncio.to_thread(render, n, step)
        for n, step in enumerate(script.steps)
        if step.kind in ("say", "audio")
    }
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
            if call_id not in watch.bridged:
                listening.clear()
            turn: dict[str, Any] = {"caller": None, "agent_prompts": [], "latency_ms": None}
            turns.append(turn)
            if step.kind in ("say", "audio"):
                audio = spoken[n]
                turn["caller"] = step.value if step.kind == "say" else f"<audio {step.value}>"
                started = await line.speak(audio)
                speech_end = started + speech_end_offset_s(audio)
                turn["_speech_end"] = speech_end
                # A listen that began while the caller was still talking (the agent's answer to the
                # first half of a sentence split by a pause) is not the agent's turn being over.
                await asyncio.sleep(max(0.0, speech_end - loop.time()))
                if call_id not in watch.bridged:
                    listening.clear()
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
    phones_heard = []
    for phone, before in phone_legs_before.items():
        for n, phone_leg in enumerate(sim.phone(phone).calls[before:]):
            # "The clinician hears the summary first": what the desk phone heard, as words.
            heard = await _transcribe_heard(stt, phone_leg.heard_ulaw()) if stt else None
            phones_heard.append(
                {"phone": phone, "answered": phone_leg.answered_at is not None, "heard": heard}
            )
            if opts.record_dir is not None:
                phone_leg.save_wav(opts.record_dir / f"call{index + 1}-{phone}-{n + 1}.wav")
    return {
        "call_id": call_id,
        "name": script.name,
        "turns": turns,
        "outcome": {
            "transfers": watch.transfers[call_id],
            "records": watch.records[call_id],
            "hangup_by": "caller" if leg.hangup_by == "caller" else "agent",
            "path": list(leg.path),
            "phones": phones_heard,
        },
    }


PHONE_TRANSCRIBE_S = 28.0
"""How much of what a desk phone heard is transcribed (the summary comes first)."""
PHONE_CHUNK_S = 10.0
"""Transcribed in pieces: on a long synthetic-voice window Whisper's confidence can fall under the
recogniser's rejection threshold and the whole window comes back empty."""


async def _transcribe_heard(stt: Any, ulaw: bytes) -> str:
    # From the first voiced frame: ringing time before the answer is silence, and a long silent
    # lead-in makes Whisper call the window "no speech".
    start = int(speech_start_offset_s(ulaw) * 8000)
    heard = ulaw[start : start + int(PHONE_TRANSCRIBE_S * 8000)]
    texts = []
    step = int(PHONE_CHUNK_S * 8000)
    for i in range(0, len(heard), step):
        pcm = g711.ulaw_decode(heard[i : i + step])
        if len(pcm) and np.any(pcm):
            result = await stt.transcribe(pcm.astype("<i2").tobytes())
            texts.append(str(result.text))
    return " ".join(t for t in texts if t)


async def _wait_either(a: asyncio.Event, b: asyncio.Event, timeout_s: float) -> None:
    waiters = {asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())}
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
