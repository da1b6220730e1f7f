"""The audit chain's head, written outside the database so that a cut tail shows.

A valid HMAC chain can still be made shorter: whoever owns the database deletes the newest rows
and what is left verifies. ``Anchorer`` therefore appends the chain's committed head ``(seq, mac)``
to an append-only file beside the audit key (``database.audit_anchor_file``), and
``medagent audit verify`` checks the log against every anchor in it (audit.py).

When: a background task reads the committed head every ``audit_anchor_interval_s`` (30 s by
default), appends it when it moved, and once more when the store closes. Not inside each append,
because there the row is not committed yet (a rolled-back transaction would leave an anchor for a
row that never existed: a false alarm), it would cost an fsync per caller turn, and rows appended
by other processes (staff commands) would be missed. Reading the committed head covers every writer
in every process for one small query per interval; the price is that a tail cut within one interval
of being written, before it was anchored, is not caught. The same read is a cheap liveness probe of
the database, reported to ``/health``.

The anchorer only anchors a head that still holds its last anchored row: a shorter log, or one cut
and then appended again (the anchored ``seq`` exists but is another row), is logged as cut and
never anchored over, so the old anchor stays to convict it.

The file: one line per anchor, ``<seq> <hmac> <UTC time>``, written with ``O_APPEND`` in one
``write_all`` and fsync'd, mode 600. For real protection keep it where the database's owner cannot
write (another host's log, a file with ``chattr +a``); the agent only ever appends to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store import audit
from agent.adapters.store.audit import Anchor
from agent.adapters.store.db import Reachability, is_outage
from agent.adapters.store.files import fsync_dir, write_all
from agent.config import DatabaseConfig
from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

ANCHOR_NAME = "audit.anchor"


class AnchorFileError(StoreError):
    """The anchor file cannot be read, or a line of it is not an anchor."""

    code = "store_anchor_file"


def anchor_path(cfg: DatabaseConfig) -> Path:
    """``audit_anchor_file``, or ``audit.anchor`` beside the audit key: with the key, apart from
    the data."""
    if cfg.audit_anchor_file:
        return Path(cfg.audit_anchor_file)
    return Path(cfg.audit_key_file).parent / ANCHOR_NAME


class AnchorFile:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> list[Anchor]:
        """Every anchor in the file, oldest first; none when there is no file yet."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise AnchorFileError(f"{self.path}: cannot read ({type(exc).__name__})") from None
        try:
            return audit.parse_anchors(text, path=str(self.path))
        except ValueError as exc:
            raise AnchorFileError(str(exc)) from None

    def append(self, anchor: Anchor) -> None:
        new = not self.path.exists()
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            write_all(fd, audit.format_anchor(anchor).encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.path.parent)


class Anchorer:
    """Owns the task ``store-audit-anchor``; ``aclose`` cancels it, waits, and anchors once more."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        file: AnchorFile,
        *,
        interval_s: float,
        timeout_s: float = 5.0,
        reachability: Reachability | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pool = pool
        self.file = file
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        """Bound on one anchoring (connect, two reads): a hung database must not hold up the
        loop's task, nor the store's shutdown."""
        self.reachability = reachability if reachability is not None else Reachability()
        self._clock = clock  # adapters may read the clock; the anchor's time is bookkeeping
        self._task: asyncio.Task[None] | None = None
        self._last: Anchor | None = None
        self._alarmed = False

    async def _anchored(self) -> Anchor | None:
        if self._last is None:
            known = await asyncio.to_thread(self.file.read)
            self._last = max(known, key=lambda a: a.seq) if known else None
        return self._last

    async def anchor_now(self, at: datetime | None = None) -> Anchor | None:
        """Append the committed head if it moved on from the last anchor; returns what was
        written. A head behind the last anchor, or a log whose row at the anchored ``seq`` is no
        longer the anchored one (cut, then appended again), is logged and never anchored."""
        last = await self._anchored()
        try:
            async with asyncio.timeout(self.timeout_s), self.pool.acquire() as conn:
                top = await audit.head(conn)
                at_anchor = (
                    None
                    if last is None
                    else await conn.fetchval("SELECT mac FROM audit_log WHERE seq = $1", last.seq)
                )
        except Exception as exc:
            if is_outage(exc):
                self.reachability.mark(False)
            raise
        self.reachability.mark(True)
        if top is None and last is None:
            return None
        if last is not None and at_anchor != last.mac:
            if not self._alarmed:  # once, not every interval
                log.error(
                    "audit log no longer holds its anchored head: rows were cut",
                    anchored_seq=last.seq,
                    head_seq=None if top is None else top[0],
                    anchor_file=str(self.file.path),
                )
                self._alarmed = True
            return None
        assert top is not None  # the anchored row is there, so the log is not empty
        seq, mac = top
        if last is not None and seq == last.seq:
            return None
        anchor = Anchor(seq, mac, at or self._clock())
        # Off the event loop: an fsync may take a while, and calls' audio is paced on the loop.
        await asyncio.to_thread(self.file.append, anchor)
        self._last = anchor
        return anchor

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="store-audit-anchor")

    async def _run(self) -> None:
        while True:
            await self._anchor_logged()
            await asyncio.sleep(self.interval_s)

    async def _anchor_logged(self) -> None:
        try:
            await self.anchor_now()
        except AnchorFileError as exc:
            log.error("audit anchor file unreadable", error=str(exc))
        except Exception as exc:
            # A database outage (what /health shows) or an anchor file we cannot write: logged by
            # type, retried next interval; the task must outlive both.
            log.warning("audit head not anchored this time", error=type(exc).__name__)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._anchor_logged()
