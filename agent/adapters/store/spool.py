"""Encrypted spool: where records wait, in order, while the database is unreachable.

One file per record, sealed with the record key (AES-GCM, bound to the spool and the record's id),
written to a temporary name, fsync'd, renamed into place and the directory fsync'd: after a crash a
record is either wholly there or not there. File names start with a zero-padded sequence number so
``pending()`` returns records in the order they were written. A record whose replay failed for a
reason other than an outage is moved to ``failed/`` (kept, not retried forever) and logged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.store.crypto import DecryptError, Keyring
from agent.log import get_logger

log = get_logger(__name__)

_NAME = re.compile(r"^(\d{12})-([0-9a-f-]{36})\.rec$")


@dataclass(frozen=True)
class SpooledRecord:
    id: str
    """The record id (a UUID): the database ignores a second insert of it."""
    op: str
    """``call_started``, ``turn``, ``save``, ``call_ended``."""
    call_id: str
    args: dict[str, Any]
    """The operation's arguments, JSON-safe (times as ISO strings)."""

    def to_json(self) -> bytes:
        return json.dumps(
            {"id": self.id, "op": self.op, "call_id": self.call_id, "args": self.args},
            sort_keys=True,
            default=str,
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SpooledRecord:
        d = json.loads(raw)
        return cls(d["id"], d["op"], d["call_id"], d["args"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, directory: str | os.PathLike[str], keyring: Keyring) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keyring = keyring
        existing = [int(m.group(1)) for m in map(_NAME.match, os.listdir(self.dir)) if m]
        self._next = max(existing, default=0) + 1

    def _seal(self, rec: SpooledRecord) -> bytes:
        return self.keyring.seal(rec.to_json(), table="spool", row=rec.id, column="record")

    def put(self, rec: SpooledRecord) -> Path:
        """Durably write one record; returns its file."""
        seq = self._next
        self._next += 1
        final = self.dir / f"{seq:012d}-{rec.id}.rec"
        tmp = self.dir / f".{final.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, self._seal(rec))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        return final

    def pending(self) -> list[tuple[Path, SpooledRecord]]:
        """Spooled records in the order written. A file that does not open is set aside."""
        out: list[tuple[Path, SpooledRecord]] = []
        for name in sorted(os.listdir(self.dir)):
            m = _NAME.match(name)
            if m is None:
                continue
            path = self.dir / name
            try:
                raw = self.keyring.open(
                    path.read_bytes(), table="spool", row=m.group(2), column="record"
                )
            except DecryptError as exc:
                log.error("spool file does not open; set aside", file=name, error=str(exc))
                self.quarantine(path)
                continue
            out.append((path, SpooledRecord.from_json(raw)))
        return out

    def __len__(self) -> int:
        return sum(1 for n in os.listdir(self.dir) if _NAME.match(n))

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        _fsync_dir(self.dir)

    def quarantine(self, path: Path) -> None:
        failed = self.dir / "failed"
        failed.mkdir(exist_ok=True, mode=0o700)
        os.replace(path, failed / path.name)
        _fsync_dir(self.dir)
