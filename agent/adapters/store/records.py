"""``PgRecords``: the call session's ``Records`` on PostgreSQL, with the spool for outages.

Every write becomes a ``SpooledRecord`` with a fresh id and goes through one function,
``apply_record``, whether it is written live or replayed from the spool, so both paths behave the
same, and a replay of an already-stored record inserts nothing (the id is the primary key).

When the database cannot be reached (connection refused, dropped, server shutting down, or slower
than ``write_timeout_s``), the record is spooled and a background task (owned, named) retries the
spool in order with backoff. While the spool is not empty new records go to the spool too, so a
call's records arrive in the order they were made. Nothing a patient said is dropped: a record that
fails for another reason, or a spool file that cannot be read, is kept in the spool's ``failed/``
and logged (by exception type: a message may quote the data). The replayer outlives any one bad
record or file. Each outcome updates ``reachability``, which ``/health`` reports.

Patient data is sealed (crypto.py) before it leaves the process, and every write and read of it is
appended to the audit log in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

from agent.adapters.store import audit
from agent.adapters.store.audit import AuditKey
from agent.adapters.store.crypto import Keyring
from agent.adapters.store.db import Reachability, is_outage
from agent.adapters.store.spool import Spool, SpooledRecord
from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

REQUEST_KINDS = frozenset({"message", "refill", "appointment", "transfer", "emergency"})
STATUSES = ("new", "in_progress", "done")

__all__ = ["PgRecords", "StaffRequest", "apply_record", "is_outage"]


def _at(args: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(args["at"])


async def apply_record(
    conn: asyncpg.Connection, keys: Keyring, audit_key: AuditKey, rec: SpooledRecord, *, actor: str
) -> bool:
    """Store one record (inside a transaction, with its audit row). False: it was already there."""
    a = rec.args
    at = _at(a)
    async with conn.transaction():
        if rec.op == "call_started":
            number = keys.seal(
                a["caller_number"].encode(), table="calls", row=rec.call_id, column="caller_number"
            )
            status = await conn.execute(
                "INSERT INTO calls (id, channel_id, caller_number_enc, started_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
                rec.call_id,
                a["channel_id"],
                number,
                at,
            )
            subject, subject_id, detail = "calls", rec.call_id, {}
        elif rec.op == "turn":
            sealed = keys.seal(a["text"].encode(), table="turns", row=rec.id, column="text")
            status = await conn.execute(
                "INSERT INTO turns (id, call_id, speaker, text_enc, at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                uuid.UUID(rec.id),
                rec.call_id,
                a["speaker"],
                sealed,
                at,
            )
            subject, subject_id, detail = "turns", rec.id, {"speaker": a["speaker"]}
        elif rec.op == "save" and a["kind"] == "summary":
            status = await _upsert_summary(conn, keys, rec, a["data"], outcome=None, at=at)
            subject, subject_id, detail = "call_summaries", rec.call_id, {}
        elif rec.op == "save":
            kind = a["kind"]
            if kind not in REQUEST_KINDS:
                raise StoreError(f"unknown record kind {kind!r}")
            sealed = keys.seal_json(a["data"], table="requests", row=rec.id, column="data")
            status = await conn.execute(
                "INSERT INTO requests (id, call_id, kind, urgency, data_enc, created_at,"
                " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING",
                uuid.UUID(rec.id),
                rec.call_id,
                kind,
                "urgent" if a["urgent"] else "routine",
                sealed,
                at,
            )
            subject, subject_id, detail = "requests", rec.id, {"kind": kind}
        elif rec.op == "call_ended":
            await conn.execute(
                "UPDATE calls SET ended_at = $2, outcome = $3 WHERE id = $1 AND ended_at IS NULL",
                rec.call_id,
                at,
                a["outcome"],
            )
            status = await _upsert_summary(
                conn, keys, rec, a["summary"], outcome=a["outcome"], at=at
            )
            subject, subject_id, detail = "call_summaries", rec.call_id, {"op": "call_ended"}
        else:
            raise StoreError(f"unknown record operation {rec.op!r}")
        inserted = bool(status.split()[-1] != "0")
        if inserted:
            await audit.append(
                conn,
                audit_key,
                audit.AuditEntry(
                    actor, "write", subject, subject_id, at, {"record": rec.id, **detail}
                ),
            )
        return inserted


async def _upsert_summary(
    conn: asyncpg.Connection,
    keys: Keyring,
    rec: SpooledRecord,
    summary: dict[str, Any],
    *,
    outcome: str | None,
    at: datetime,
) -> str:
    """One summary per call; a later record replaces it, a replay of the same one does nothing."""
    sealed = keys.seal_json(summary, table="call_summaries", row=rec.call_id, column="summary")
    urgency = str(summary.get("urgency", "routine"))
    result: str = await conn.execute(
        "INSERT INTO call_summaries (call_id, record_id, urgency, outcome, summary_enc, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (call_id) DO UPDATE SET record_id = EXCLUDED.record_id,"
        " urgency = EXCLUDED.urgency, outcome = COALESCE(EXCLUDED.outcome, call_summaries.outcome),"
        " summary_enc = EXCLUDED.summary_enc, created_at = EXCLUDED.created_at"
        " WHERE call_summaries.record_id <> EXCLUDED.record_id",
        rec.call_id,
        uuid.UUID(rec.id),
        urgency,
        outcome,
        sealed,
        at,
    )
    return result


@dataclass(frozen=True)
class StaffRequest:
    id: str
    call_id: str
    kind: str
    urgency: str
    status: str
    data: dict[str, Any]
    created_at: datetime


class PgRecords:
    """Implements ``agent.runtime.hooks.Records``; also the staff-side reads (all audited)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        keys: Keyring,
        spool: Spool,
        *,
        audit_key: AuditKey,
        actor: str = "agent",
        write_timeout_s: float = 3.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        reachability: Reachability | None = None,
    ) -> None:
        self.pool = pool
        self.keys = keys
        self.audit_key = audit_key
        self.spool = spool
        self.reachability = reachability if reachability is not None else Reachability()
        self.actor = actor
        self.write_timeout_s = write_timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._replayer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        """Live writes and replay never interleave, so order is kept."""
        if len(self.spool):
            self._start_replayer()

    # -- Records protocol -------------------------------------------------------------------

    async def call_started(
        self, call_id: str, *, channel_id: str, caller_number: str, at: datetime
    ) -> None:
        await self._submit(
            "call_started",
            call_id,
            {"channel_id": channel_id, "caller_number": caller_number, "at": at.isoformat()},
        )

    async def turn(self, call_id: str, *, speaker: str, text: str, at: datetime) -> None:
        await self._submit(
            "turn", call_id, {"speaker": speaker, "text": text, "at": at.isoformat()}
        )

    async def save(
        self, call_id: str, *, kind: str, data: dict[str, Any], urgent: bool, at: datetime
    ) -> None:
        await self._submit(
            "save", call_id, {"kind": kind, "data": data, "urgent": urgent, "at": at.isoformat()}
        )

    async def call_ended(
        self, call_id: str, *, summary: dict[str, Any], outcome: str, at: datetime
    ) -> None:
        await self._submit(
            "call_ended", call_id, {"summary": summary, "outcome": outcome, "at": at.isoformat()}
        )

    # -- writing, spooling, replaying ---------------------------------------------------------

    async def _submit(self, op: str, call_id: str, args: dict[str, Any]) -> None:
        rec = SpooledRecord(str(uuid.uuid4()), op, call_id, args)
        async with self._lock:
            if len(self.spool) == 0:
                try:
                    await self._write(rec)
                    return
                except Exception as exc:
                    if not is_outage(exc):
                        # Keep it (nothing a patient said is dropped) but do not retry forever.
                        self.spool.quarantine(self.spool.put(rec))
                        log.error(
                            "record could not be stored; kept in spool/failed",
                            op=op,
                            error=type(exc).__name__,
                        )
                        return
                    log.warning(
                        "database unreachable; spooling records", op=op, error=type(exc).__name__
                    )
            self.spool.put(rec)
        self._start_replayer()

    async def _write(self, rec: SpooledRecord) -> None:
        try:
            async with asyncio.timeout(self.write_timeout_s):
                async with self.pool.acquire() as conn:
                    await apply_record(conn, self.keys, self.audit_key, rec, actor=self.actor)
        except Exception as exc:
            if is_outage(exc):
                self.reachability.mark(False)
            else:
                self.reachability.mark(True)  # it answered, with a refusal
            raise
        self.reachability.mark(True)

    def _start_replayer(self) -> None:
        self._wake.set()
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.create_task(self._replay_loop(), name="store-spool-replay")

    async def replay_once(self) -> int:
        """Replay the spool in order until it is empty or the database fails; returns the count.
        Files that cannot be read are set aside by ``pending`` itself."""
        n = 0
        async with self._lock:
            for path, rec in self.spool.pending():
                try:
                    await self._write(rec)
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    log.error(
                        "spooled record rejected; set aside", op=rec.op, error=type(exc).__name__
                    )
                    self.spool.quarantine(path)
                    continue
                self.spool.done(path)
                n += 1
        return n

    async def _replay_loop(self) -> None:
        delay = self.retry_initial_s
        while len(self.spool):
            try:
                n = await self.replay_once()
                log.info("spool replayed", records=n)
                delay = self.retry_initial_s
                continue
            except Exception as exc:
                # An outage waits for the database; anything else (a bug, a spool directory
                # that went away) is logged and retried alike: a dead replayer would leave every
                # later record in the spool for good.
                if is_outage(exc):
                    log.debug("spool replay waits for the database", error=type(exc).__name__)
                else:
                    log.error("spool replay failed; retrying", error=type(exc).__name__)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            delay = min(delay * 2, self.retry_max_s)

    async def wait_replayed(self) -> None:
        """Wait until the spool is empty (tests, orderly shutdown)."""
        while len(self.spool):
            if self._replayer is None or self._replayer.done():
                self._start_replayer()
            assert self._replayer is not None
            await asyncio.shield(self._replayer)

    async def aclose(self) -> None:
        """Stop the replayer (cancel and wait); what is left in the spool stays for next start."""
        task, self._replayer = self._replayer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- staff side (reads are audited) ---------------------------------------------------------

    async def open_requests(self, *, actor: str, now: datetime) -> list[StaffRequest]:
        """Requests not done yet, urgent first, oldest first."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, call_id, kind, urgency, status, data_enc, created_at FROM requests"
                " WHERE status <> 'done'"
                " ORDER BY urgency = 'urgent' DESC, created_at"
            )
            out = [
                StaffRequest(
                    str(r["id"]),
                    r["call_id"],
                    r["kind"],
                    r["urgency"],
                    r["status"],
                    self.keys.open_json(
                        r["data_enc"], table="requests", row=str(r["id"]), column="data"
                    ),
                    r["created_at"],
                )
                for r in rows
            ]
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(actor, "read", "requests", "*", now, {"rows": len(out)}),
            )
        return out

    async def set_request_status(
        self, request_id: str, status: str, *, actor: str, now: datetime
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        async with self.pool.acquire() as conn, conn.transaction():
            result = await conn.execute(
                "UPDATE requests SET status = $2, updated_at = $3 WHERE id = $1",
                uuid.UUID(request_id),
                status,
                now,
            )
            if result.split()[-1] == "0":
                raise StoreError(f"no request {request_id}")
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(actor, "update", "requests", request_id, now, {"status": status}),
            )

    async def transcript(self, call_id: str, *, actor: str, now: datetime) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, speaker, text_enc, at FROM turns WHERE call_id = $1 ORDER BY at, id",
                call_id,
            )
            out = [
                {
                    "speaker": r["speaker"],
                    "text": self.keys.open(
                        r["text_enc"], table="turns", row=str(r["id"]), column="text"
                    ).decode(),
                    "at": r["at"].isoformat(),
                }
                for r in rows
            ]
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(actor, "read", "turns", call_id, now, {"rows": len(out)}),
            )
        return out

    async def export_summary(self, call_id: str, *, actor: str, now: datetime) -> dict[str, Any]:
        """The call's structured summary as JSON-ready data (reasons, urgency, actions, open items)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT s.urgency, s.outcome, s.summary_enc, c.started_at, c.ended_at"
                " FROM call_summaries s JOIN calls c ON c.id = s.call_id WHERE s.call_id = $1",
                call_id,
            )
            if row is None:
                raise StoreError(f"no summary for call {call_id}")
            summary = self.keys.open_json(
                row["summary_enc"], table="call_summaries", row=call_id, column="summary"
            )
            await audit.append(
                conn,
                self.audit_key,
                audit.AuditEntry(actor, "read", "call_summaries", call_id, now),
            )
        return {
            "call_id": call_id,
            "urgency": row["urgency"],
            "outcome": row["outcome"],
            "started_at": row["started_at"].isoformat(),
            "ended_at": row["ended_at"].isoformat() if row["ended_at"] else None,
            **{k: v for k, v in summary.items() if k not in ("urgency",)},
        }
