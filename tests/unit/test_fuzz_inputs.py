"""Property tests of the parsers that read files an admin or a tester hands the agent: the
configuration (TOML), caller scripts (YAML) and recordings (WAV). Whatever the bytes, each parser
either succeeds or raises its own clear error (``ConfigError``; ``ValueError`` for a recording):
never another exception, a hang or a memory blow-up.

Inputs come three ways: arbitrary text or bytes, documents built from the format's own vocabulary
(so the checks behind the syntax are reached), and valid files with bytes changed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import Config, load_config
from agent.errors import ConfigError
from agent.pbxsim.simulate import load_script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TOML = (ROOT / "agent" / "medagent.toml.example").read_bytes()
SCRIPTS = sorted((ROOT / "tests" / "data" / "calls").glob("*.yaml"))

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written under .hypothesis/ by the suite
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # Module-scoped: Hypothesis runs many examples inside one call of each test.
    with tempfile.TemporaryDirectory(prefix="medagent-fuzz-") as d:
        yield Path(d)


# No lone surrogates: they cannot be written to a file as UTF-8 at all.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SPECIAL = st.sampled_from(
    [
        "",
        "/dev/zero",
        "/",
        "/etc/passwd",
        "PW",
        "NOT_SET",
        "http://10.0.0.1:8088/ari",
        "https://asterisk.lan/ari",
        "http://[::1/ari",
        "http://127.0.0.1:99999/ari",
        "127.0.0.1",
        "192.168.1.5",
        "08:00-17:00",
        "25:00-26:00",
        "America/New_York",
        "../../etc/passwd",
        "2026-12-25",
        "postgresql://u:pw@db/x",
        "tiny.en",
        "24x7",
        "json",
    ]
)
SCALAR = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    SPECIAL,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def _outcome(fn: Any, *args: Any, error: type[Exception], **kwargs: Any) -> Any:
    """``fn``'s result, or ``None`` when it raised ``error``; any other exception fails."""
    try:
        return fn(*args, **kwargs)
    except error:
        return None


# --------------------------------------------------------------------------------------------------
# Configuration (TOML)

SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name not in ("source", "warnings")]
KEYS = sorted({f.name for s in SECTIONS for f in dataclasses.fields(getattr(Config(), s))})
SECRET_KEYS = ["password", "password_file", "password_env", "dsn", "dsn_file", "dsn_env", "bogus"]
ENV = {"PW": "from-the-environment"}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's string escapes are TOML's
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _load_toml(scratch: Path, raw: bytes) -> Config | None:
    path = scratch / "medagent.toml"
    path.write_bytes(raw)
    cfg = _outcome(load_config, path, env=ENV, error=ConfigError)
    assert cfg is None or isinstance(cfg, Config)
    return cfg


ANY_BYTES = st.text(max_size=500).map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(
    max_size=500
)


@FUZZ
@given(ANY_BYTES)
def test_any_bytes_are_a_config_or_a_config_error(scratch: Path, raw: bytes) -> None:
    _load_toml(scratch, raw)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([*SECTIONS, "bogus"]),
        # The secrets' keys and the tricky values half the time: they are where files are read.
        st.dictionaries(
            st.sampled_from(KEYS) | st.sampled_from(SECRET_KEYS), VALUE | SPECIAL, max_size=5
        ),
        max_size=4,
    )
)
def test_documents_of_the_right_words_are_a_config_or_a_config_error(
    scratch: Path, doc: dict[str, dict[str, Any]]
) -> None:
    text = "".join(
        f"[{section}]\n" + "".join(f"{key} = {_toml(v)}\n" for key, v in table.items())
        for section, table in doc.items()
    )
    _load_toml(scratch, text.encode())


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(EXAMPLE_TOML) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=8,
    )
)
def test_the_example_with_bytes_changed_is_a_config_or_a_config_error(
    scratch: Path, changes: list[tuple[int, int]]
) -> None:
    raw = bytearray(EXAMPLE_TOML)
    for pos, byte in changes:
        raw[pos] = byte
    _load_toml(scratch, bytes(raw))


# --------------------------------------------------------------------------------------------------
# Caller scripts (YAML)

SCRIPT_KEYS = (
    "name caller phones steps given expect calls number voice appointments patient provider "
    "in_days at say audio dtmf silence wait hangup bogus"
).split()
SCRIPT_VALUE = st.recursive(
    SCALAR | st.sampled_from(["hangup", "answer", "busy", "10:00", "Linda Garcia", "patel"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(SCRIPT_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
SCRIPT_TEXTS = [p.read_bytes() for p in SCRIPTS]
YAML_CHARS = st.sampled_from(list("ab1:-[]{}&*!|>'\"#? ,.%@`\n\t\\"))


def _load_yaml(scratch: Path, raw: bytes) -> None:
    path = scratch / "call.yaml"
    path.write_bytes(raw)
    calls = _outcome(load_script, path, error=ConfigError)
    assert calls is None or (isinstance(calls, list) and calls)


@FUZZ
@given(ANY_BYTES | st.text(YAML_CHARS, max_size=300).map(str.encode))
def test_any_bytes_are_a_script_or_a_script_error(scratch: Path, raw: bytes) -> None:
    _load_yaml(scratch, raw)


@FUZZ
@given(st.dictionaries(st.sampled_from(SCRIPT_KEYS) | st.integers(0, 3), SCRIPT_VALUE, max_size=6))
def test_documents_of_the_right_words_are_a_script_or_a_script_error(
    scratch: Path, doc: dict[str, Any]
) -> None:
    _load_yaml(scratch, yaml.safe_dump(doc, allow_unicode=True).encode())


@FUZZ
@given(
    st.sampled_from(SCRIPT_TEXTS),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6),
)
def test_real_scripts_with_bytes_changed_are_a_script_or_a_script_error(
    scratch: Path, text: bytes, changes: list[tuple[float, int]]
) -> None:
    raw = bytearray(text)
    for where, byte in changes:
        raw[int(where * len(raw))] = byte
    _load_yaml(scratch, bytes(raw))


# --------------------------------------------------------------------------------------------------
# Recordings (WAV)


def _wav(data: bytes, *, tag: int, channels: int, rate: int, bits: int) -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _valid_wavs() -> list[bytes]:
    from agent.core import g711

    t = np.arange(4000) / 16000  # a quarter second at 16 kHz
    tone = np.sin(2 * np.pi * 440 * t) * 0.3
    pcm16 = (tone * 32767).astype("<i2")
    stereo = np.repeat(pcm16, 2)
    return [
        _wav(pcm16.tobytes(), tag=1, channels=1, rate=16000, bits=16),
        _wav(stereo.tobytes(), tag=1, channels=2, rate=16000, bits=16),
        _wav(tone.astype("<f4").tobytes(), tag=3, channels=1, rate=16000, bits=32),
        _wav(g711.ulaw_encode(pcm16[::2]), tag=7, channels=1, rate=8000, bits=8),
    ]


WAVS = _valid_wavs()


@pytest.fixture(scope="module")
def warm(scratch: Path) -> None:
    """Read a valid recording both ways once, so the timing below measures the reading and not
    the first import of the resampler and the line model."""
    from agent.engines.recording import load_pcm16_8k

    path = scratch / "warm.wav"
    path.write_bytes(WAVS[0])
    for telephone in (False, True):
        load_pcm16_8k(str(path), telephone=telephone)


@FUZZ
@given(
    st.sampled_from(WAVS),
    st.lists(
        st.tuples(st.integers(0, 63) | st.integers(0, 20_000), st.integers(0, 255)),
        min_size=1,
        max_size=6,
    ),
    st.integers(-100, 100),
    st.booleans(),
)
def test_a_damaged_recording_is_read_or_named_quickly(
    scratch: Path,
    warm: None,
    wav: bytes,
    changes: list[tuple[int, int]],
    resize: int,
    telephone: bool,
) -> None:
    from agent.engines.recording import load_pcm16_8k

    raw = bytearray(wav)
    for pos, byte in changes:
        if pos < len(raw):
            raw[pos] = byte
    raw = raw[:resize] if resize < 0 else raw + bytes(resize)  # cut short, or trailing bytes
    path = scratch / "rec.wav"
    path.write_bytes(bytes(raw))
    started = time.monotonic()
    pcm = _outcome(load_pcm16_8k, str(path), telephone=telephone, error=ValueError)
    assert time.monotonic() - started < 1.0
    assert pcm is None or (isinstance(pcm, bytes) and len(pcm) % 2 == 0)
