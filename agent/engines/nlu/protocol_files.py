"""Reading the protocol files (``agent/data/protocols/<pack>/<id>.toml``) into a ``ProtocolBook``.

Every pack's files are read and checked, not only the packs in force: a mistake in a pack a
practice may switch on later is found at start-up too. Errors name the file and the field
(``ConfigError``); ``medagent check`` and ``medagent reload`` report them before anything runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from agent.core.protocols import PACKS, Protocol, ProtocolBook, parse_protocol
from agent.errors import ConfigError
from agent.log import get_logger

log = get_logger(__name__)

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "data" / "protocols"


def protocol_sources(directory: str | Path | None = None) -> list[tuple[str, str]]:
    """``(file name, text)`` of every protocol file, pack by pack in a stable order."""
    root = Path(directory) if directory is not None else PROTOCOL_DIR
    if not root.is_dir():
        raise ConfigError("the protocol folder is missing", file=str(root))
    sources: list[tuple[str, str]] = []
    for pack in PACKS:
        for path in sorted((root / pack).glob("*.toml")):
            try:
                sources.append((str(path), path.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"cannot read the protocol file ({exc})", file=str(path)
                ) from None
    stray = sorted(str(p) for p in root.glob("*/*.toml") if p.parent.name not in PACKS)
    if stray:
        raise ConfigError(
            f"protocol files outside a pack folder ({', '.join(PACKS)}): {', '.join(stray)}",
            file=str(root),
        )
    return sources


def load_book(packs: Iterable[str] = (), directory: str | Path | None = None) -> ProtocolBook:
    return ProtocolBook.from_sources(protocol_sources(directory), packs)


def all_protocols(directory: str | Path | None = None) -> list[Protocol]:
    """Every protocol file of every pack, parsed (the topic model learns from all of them)."""
    import tomllib

    out = []
    for file, text in protocol_sources(directory):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"not valid TOML: {exc}", file=file) from None
        out.append(parse_protocol(data, file=file))
    return out


_CACHE: dict[tuple[tuple[str, ...], str], ProtocolBook] = {}
_READING = threading.Lock()


def current_book(packs: Iterable[str] = (), directory: str | Path | None = None) -> ProtocolBook:
    """The book in force for ``packs``: read and compiled once (a few seconds: the start-up does it
    in a worker thread, through ``Understander.from_config``), then the same object for every
    call until ``refresh_book`` (``medagent reload``) reads the files again."""
    key = (tuple(packs), str(directory or PROTOCOL_DIR))
    with _READING:  # a second caller waits for the first reading instead of doing it again
        book = _CACHE.get(key)
        if book is None:
            book = _CACHE[key] = load_book(packs, directory)
    return book


def refresh_book(packs: Iterable[str] = (), directory: str | Path | None = None) -> ProtocolBook:
    """Read the files again (``ConfigError`` on a mistake, the book in force kept)."""
    book = load_book(packs, directory)
    _CACHE[(tuple(packs), str(directory or PROTOCOL_DIR))] = book
    return book
