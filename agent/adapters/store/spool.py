"""Encrypted spool: where records wait, in order, while the database is unreachable.

One file per record, sealed with the record key (AES-GCM, bound to the spool and the record's id),
written whole (``write_all``: ``os.write`` may take only part of a buffer) to a temporary name,
fsync'd, renamed into place and the directory fsync'd: after a crash a record is either wholly there
or not there. File names start with a zero-padded sequence number so ``pending()`` returns records
in the order they were written.

A file that cannot be used (cut short, tampered with, not a record at all, not readable) is moved to
``failed/`` whatever the error, and logged by the error's type only: a message could quote what the
file holds. Before this, one such file raised out of ``pending()``, the replayer died and every later
record stayed in the spool. A record whose replay failed for a reason other than an outage goes to
``failed/`` too (kept, not retried forever). ``len()`` counts what waits, ``quarantined()`` what
waits for a person; both are reported by ``/health``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.adapters.store.crypto import Keyring
from agent.adapters.store.files import Writer, fsync_dir, write_all
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
        if not isinstance(d, dict):
            raise ValueError(f"expected a JSON object, got {type(d).__name__}")
        rec = cls(d["id"], d["op"], d["call_id"], d["args"])
        if not all(isinstance(v, str) for v in (rec.id, rec.op, rec.call_id)) or not isinstance(
            rec.args, dict
        ):
            raise ValueError("a field of the record has the wrong type")
        return rec


class Spool:
    def __init__(
        self, directory: str | os.PathLike[str], keyring: Keyring, *, write: Writer = os.write
    ) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.keyring = keyring
        self._write = write
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
            write_all(fd, self._seal(rec), write=self._write)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        fsync_dir(self.dir)
        return final

    def _read(self, path: Path, record_id: str) -> SpooledRecord:
        raw = self.keyring.open(path.read_bytes(), table="spool", row=record_id, column="record")
        return SpooledRecord.from_json(raw)

    def pending(self) -> list[tuple[Path, SpooledRecord]]:
        """Spooled records in the order written. A file that cannot be used is set aside."""
        out: list[tuple[Path, SpooledRecord]] = []
        for name in sorted(os.listdir(self.dir)):
            m = _NAME.match(name)
            if m is None:
                continue
            path = self.dir / name
            try:
                rec = self._read(path, m.group(2))
            except Exception as exc:
                # Any error at all (DecryptError, the cipher's ValueError on a file cut inside its
                # header, JSON errors, KeyError, OSError): one bad file must not stop the others.
                # If moving it fails too, that error goes up: the replayer backs off and retries.
                log.error("spool file unreadable; set aside", file=name, error=type(exc).__name__)
                self.quarantine(path)
                continue
            out.append((path, rec))
        return out

    def __len__(self) -> int:
        return sum(1 for n in os.listdir(self.dir) if _NAME.match(n))

    def quarantined(self) -> int:
        """Files in ``failed/``: records that wait for a person, not for the database."""
        try:
            return sum(1 for n in os.listdir(self.dir / "failed") if _NAME.match(n))
        except FileNotFoundError:
            return 0

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        fsync_dir(self.dir)

    def quarantine(self, path: Path) -> None:
        failed = self.dir / "failed"
        failed.mkdir(exist_ok=True, mode=0o700)
        os.replace(path, failed / path.name)
        fsync_dir(self.dir)
