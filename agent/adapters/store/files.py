"""Durable writes for the store's own files (the spool, the audit anchor).

``os.write`` may write less than it was given (a signal, a full disk, a quota): ``write_all`` goes
on until every byte is written, and a write that makes no progress is an error rather than a loop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

Writer = Callable[[int, memoryview], int]
"""``os.write``'s shape; tests hand in one that writes a few bytes at a time."""


def write_all(fd: int, data: bytes, *, write: Writer = os.write) -> None:
    view = memoryview(data)
    while view:
        n = write(fd, view)
        if n <= 0:
            raise OSError(f"write made no progress ({len(view)} of {len(data)} bytes left)")
        view = view[n:]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
