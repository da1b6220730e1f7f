"""Bad input to the commands: caller scripts (``medagent simulate``), recordings (``medagent
understand --audio``) and the last-resort handling in ``agent.cli``. Each ends in a clear error
naming what is wrong, never in a traceback, a hang or memory exhaustion."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.errors import ConfigError
from agent.pbxsim.simulate import load_script

# --------------------------------------------------------------------------------------------------
# Caller scripts

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
name: *g
steps: [hangup]
"""


def _script(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "call.yaml"
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_aliases_are_refused_before_they_expand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = _script(tmp_path, BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 400
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"line 2: aliases \(\*name\) are not allowed"):
        load_script(p)
    assert main(["simulate", str(p)]) == 2
    assert "aliases" in capsys.readouterr().err
    assert time.monotonic() - started < 1.0


def test_a_script_that_is_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(line 2\)"):
        load_script(_script(tmp_path, b"steps: [hangup]\nname: caf\xe9\n"))


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("caller: 5\nsteps: [hangup]\n", "calls[0].caller", "expected a table"),
        ("caller: {number: [1]}\nsteps: [hangup]\n", "calls[0].caller.number", "expected"),
        ("caller: {voice: 5}\nsteps: [hangup]\n", "calls[0].caller.voice", "expected text"),
        ("caller: {nmae: x}\nsteps: [hangup]\n", "calls[0].caller", "unknown key(s) ['nmae']"),
        ("name: [x]\nsteps: [hangup]\n", "calls[0].name", "expected text"),
        ("phones: [frontdesk]\nsteps: [hangup]\n", "calls[0].phones", "expected a table"),
        ("given: {appointments: 5}\nsteps: [hangup]\n", "calls[0].given.appointments", "list"),
        (
            "given: {appointments: [{patient: A, provider: p, in_days: .inf, at: '10:00'}]}\n"
            "steps: [hangup]\n",
            "calls[0].given.appointments[0]",
            "expected patient, provider, in_days",
        ),
        ("steps: [{silence: .inf}]\n", "calls[0].steps[0]", "silence: expected seconds"),
        ("steps: [{silence: -1}]\n", "calls[0].steps[0]", "silence: expected seconds"),
        ("steps: [{silence: true}]\n", "calls[0].steps[0]", "silence: expected seconds"),
        ("steps: [{dtmf: ''}]\n", "calls[0].steps[0]", "dtmf: expected digits"),
        ("1: a\nb: c\nsteps: [hangup]\n", "calls[0]", "unknown key(s) ['1', 'b']"),
        ("steps: " + "[" * 3000 + "]" * 3000 + "\n", None, "nested too deeply"),
    ],
)
def test_wrong_types_are_named(tmp_path: Path, text: str, where: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_script(_script(tmp_path, text))
    assert message in str(exc.value)
    if where is not None:
        assert f"[{where}]" in str(exc.value)


def test_a_huge_script_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="larger than"):
        load_script(_script(tmp_path, "# x\n" * 300_000))


# --------------------------------------------------------------------------------------------------
# Recordings


def _wav(
    data: bytes,
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = 8000,
    bits: int = 16,
    block_align: int | None = None,
    data_size: int | None = None,
    fmt_extra: bytes = b"",
    order: str = "fmt,data",
) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits) + fmt_extra
    chunks = {
        "fmt": b"fmt " + struct.pack("<I", len(fmt)) + fmt,
        "data": b"data" + struct.pack("<I", len(data) if data_size is None else data_size) + data,
    }
    body = b"WAVE" + b"".join(chunks[name] for name in order.split(",") if name)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _load(tmp_path: Path, raw: bytes, *, telephone: bool = False) -> bytes:
    from agent.engines.recording import load_pcm16_8k

    p = tmp_path / "rec.wav"
    p.write_bytes(raw)
    return load_pcm16_8k(str(p), telephone=telephone)


TONE16 = (8000 * np.sin(np.arange(800) / 3)).astype("<i2").tobytes()  # 100 ms at 8 kHz


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"RIFF\x00\x00\x00\x00WAVE", "no fmt chunk"),
        (b"RIFF", "not a WAV file"),
        (_wav(TONE16, channels=0), "0 channels"),
        (_wav(TONE16, channels=40), "40 channels"),
        (_wav(TONE16, block_align=0), "block align 0"),
        (_wav(TONE16, bits=12), "unsupported sample format: PCM, 12 bits"),
        (_wav(TONE16, tag=0x55), "unsupported sample format: format tag 0x0055"),
        (_wav(TONE16, rate=0), "unsupported sample rate 0 Hz"),
        (_wav(TONE16, rate=7919), "unsupported sample rate 7919 Hz"),
        (_wav(TONE16, data_size=10**9), "the data chunk claims 1000000000 bytes"),
        (_wav(TONE16, order="fmt"), "no data chunk"),
        (_wav(TONE16, order="data,fmt"), "data chunk before the fmt chunk"),
        (_wav(b""), "no samples"),
        (_wav(TONE16)[:30], "fmt chunk claims"),
    ],
)
def test_bad_headers_are_named(tmp_path: Path, raw: bytes, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        _load(tmp_path, raw)
    assert message in str(exc.value) and "rec.wav" in str(exc.value)


def test_a_recording_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    from agent.engines.recording import MAX_RECORDING_S

    raw = _wav(b"\xff" * int(8000 * (MAX_RECORDING_S + 1)), tag=7, bits=8)
    with pytest.raises(ValueError, match=f"longer than {MAX_RECORDING_S:g} s"):
        _load(tmp_path, raw)


@pytest.mark.parametrize("telephone", [False, True])
def test_the_formats_read(tmp_path: Path, telephone: bool) -> None:
    from agent.core import g711

    pcm = np.frombuffer(TONE16, dtype="<i2")
    f32 = (pcm / 32768.0).astype("<f4")
    f32_nan = f32.copy()
    f32_nan[5] = np.nan
    i24 = b"".join((int(s) * 256).to_bytes(3, "little", signed=True) for s in pcm)
    stereo_44k = np.repeat(np.sin(np.arange(4410) / 7) * 8000, 2).astype("<i2").tobytes()
    cases = {
        "pcm16": _wav(TONE16),
        "pcm8": _wav(((pcm >> 8) + 128).astype(np.uint8).tobytes(), bits=8),
        "pcm24": _wav(i24, bits=24),
        "pcm32": _wav((pcm.astype("<i4") << 16).tobytes(), bits=32),
        "float32": _wav(f32.tobytes(), tag=3, bits=32),
        "float32-nan": _wav(f32_nan.tobytes(), tag=3, bits=32),
        "float64": _wav(f32.astype("<f8").tobytes(), tag=3, bits=64),
        "ulaw": _wav(g711.ulaw_encode(pcm), tag=7, bits=8),
        "alaw": _wav(g711.alaw_encode(pcm), tag=6, bits=8),
        "stereo-44k": _wav(stereo_44k, channels=2, rate=44100),
        "odd-chunk": _wav(TONE16 + b"\x00"),  # a half frame at the end is dropped
        "extensible": _wav(
            TONE16,
            tag=0xFFFE,
            fmt_extra=struct.pack("<HHI", 22, 16, 4) + struct.pack("<H", 1) + bytes(14),
        ),
    }
    for name, raw in cases.items():
        out = np.frombuffer(_load(tmp_path, raw, telephone=telephone), dtype="<i2")
        assert 790 <= len(out) <= 810, name
        if name not in ("stereo-44k",) and not telephone:
            assert np.abs(out.astype(float) - pcm[: len(out)]).mean() < 400, name


def test_the_last_resort_turns_a_config_error_into_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import agent.commands.config

    def broken(args: object) -> int:
        raise ConfigError("expected a table", file="x.toml", key="ari")

    monkeypatch.setattr(agent.commands.config, "run", broken)
    assert main(["config", "validate"]) == 2
    assert (
        capsys.readouterr().err
        == "medagent: configuration error: x.toml: [ari]: expected a table\n"
    )
