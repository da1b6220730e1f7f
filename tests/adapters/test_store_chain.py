"""Property tests of the pure parts of the store: any single change to, or removal of, an audit row
is caught at that row, and so is a chain rebuilt without the key or cut short of its anchor; anchor
lines round-trip; sealed values and spool records round-trip; no database needed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.adapters.store.audit import (
    GENESIS,
    Anchor,
    AuditEntry,
    AuditKey,
    StoredRow,
    chain_mac,
    format_anchor,
    parse_anchors,
    verify_rows,
)
from agent.adapters.store.crypto import generate_key_line, parse_key_file
from agent.adapters.store.spool import SpooledRecord

KEYS = parse_key_file(generate_key_line("k1"))
AUDIT_KEY = AuditKey(b"\x01" * 32)
OTHER_KEY = AuditKey(b"\x02" * 32)
T0 = datetime(2026, 11, 2, tzinfo=UTC)

entries = st.builds(
    AuditEntry,
    actor=st.sampled_from(["agent", "staff:a", "cli"]),
    action=st.sampled_from(["write", "read", "search"]),
    subject=st.sampled_from(["turns", "requests", "patients"]),
    subject_id=st.text(min_size=1, max_size=12),
    at=st.integers(0, 10**9).map(lambda s: T0 + timedelta(microseconds=s)),
    detail=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)


def _chain(items: list[AuditEntry], key: AuditKey = AUDIT_KEY) -> list[StoredRow]:
    rows, prev = [], GENESIS
    for seq, e in enumerate(items, 1):
        h = chain_mac(key, prev, seq, e)
        rows.append(StoredRow(seq, e, prev, h))
        prev = h
    return rows


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, min_size=2, max_size=8), st.data())
def test_any_modification_is_found_at_that_row(
    items: list[AuditEntry], data: st.DataObject
) -> None:
    rows = _chain(items)
    assert verify_rows(rows, AUDIT_KEY).ok
    i = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from(["actor", "subject_id", "at", "detail"]))
    old = rows[i].entry
    new_value = {
        "actor": old.actor + "x",
        "subject_id": old.subject_id + "x",
        "at": old.at + timedelta(microseconds=1),
        "detail": {**old.detail, "forged": 1},
    }[field]
    rows[i] = dataclasses.replace(rows[i], entry=dataclasses.replace(old, **{field: new_value}))
    result = verify_rows(rows, AUDIT_KEY)
    assert (result.ok, result.first_bad_seq) == (False, i + 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, min_size=3, max_size=8), st.data())
def test_any_removal_but_the_last_is_found(items: list[AuditEntry], data: st.DataObject) -> None:
    rows = _chain(items)
    i = data.draw(st.integers(0, len(rows) - 2))
    result = verify_rows(rows[:i] + rows[i + 1 :], AUDIT_KEY)
    assert (result.ok, result.first_bad_seq) == (False, i + 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, min_size=2, max_size=8), st.data())
def test_a_chain_rebuilt_without_the_key_fails_where_the_rebuild_starts(
    items: list[AuditEntry], data: st.DataObject
) -> None:
    """The owner deletes row i, renumbers the rest and re-links them under a key of their own."""
    rows = _chain(items)
    i = data.draw(st.integers(0, len(rows) - 1))
    kept = [r.entry for r in rows[:i]] + [r.entry for r in rows[i + 1 :]]
    forged = rows[:i]
    prev = rows[i - 1].mac if i else GENESIS
    for seq, e in enumerate(kept[i:], i + 1):
        h = chain_mac(OTHER_KEY, prev, seq, e)
        forged.append(StoredRow(seq, e, prev, h))
        prev = h
    result = verify_rows(forged, AUDIT_KEY)
    if i == len(rows) - 1:
        # Dropping the last row needs no rebuild: only an anchor can tell (next test).
        assert result.ok
    else:
        assert (result.ok, result.first_bad_seq) == (False, i + 1)


@settings(max_examples=60, deadline=None)
@given(st.lists(entries, min_size=2, max_size=8), st.data())
def test_a_cut_tail_is_found_against_the_anchor(
    items: list[AuditEntry], data: st.DataObject
) -> None:
    rows = _chain(items)
    anchored = data.draw(st.integers(1, len(rows)))
    anchor = Anchor(anchored, rows[anchored - 1].mac, T0)
    assert verify_rows(rows, AUDIT_KEY, [anchor]).ok
    keep = data.draw(st.integers(0, anchored - 1))
    result = verify_rows(rows[:keep], AUDIT_KEY, [anchor])
    assert (result.ok, result.first_bad_seq, result.anchor) == (False, keep + 1, anchor)
    assert result.reason.startswith(f"the log ends at row {keep} but row {anchored} was anchored")


def test_an_anchor_that_does_not_match_its_row_fails_at_that_row() -> None:
    rows = _chain([AuditEntry("cli", "read", "patients", str(i), T0) for i in range(4)])
    stale = Anchor(3, "f" * 64, T0)
    result = verify_rows(rows, AUDIT_KEY, [Anchor(2, rows[1].mac, T0), stale])
    assert (result.ok, result.first_bad_seq, result.anchor) == (False, 3, stale)
    assert result.reason.startswith("row 3 does not match its anchor")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.builds(
            Anchor,
            seq=st.integers(1, 10**12),
            mac=st.text("0123456789abcdef", min_size=64, max_size=64),
            at=st.integers(0, 10**9).map(lambda s: T0 + timedelta(microseconds=s)),
        ),
        max_size=5,
    )
)
def test_anchor_lines_round_trip(anchors: list[Anchor]) -> None:
    text = "# medagent audit anchors\n" + "".join(map(format_anchor, anchors))
    assert parse_anchors(text) == anchors
    # A line torn by a crash mid-write (no newline yet) is not an anchor.
    assert parse_anchors(text + "17 abc") == anchors


def test_a_malformed_anchor_line_names_its_line() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"audit.anchor:2: expected '<seq> <hmac> <time>'"):
        parse_anchors(
            "1 " + "a" * 64 + " 2026-11-02T00:00:00+00:00\nnonsense\n", path="audit.anchor"
        )


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.text(min_size=1, max_size=10))
def test_seal_open_round_trip(plain: bytes, row: str) -> None:
    sealed = KEYS.seal(plain, table="t", row=row, column="c")
    assert KEYS.open(sealed, table="t", row=row, column="c") == plain


@settings(max_examples=40, deadline=None)
@given(
    st.uuids().map(str),
    st.sampled_from(["call_started", "turn", "save", "call_ended"]),
    st.text(max_size=10),
    st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.booleans(), max_size=4),
)
def test_spooled_record_json_round_trip(
    rid: str, op: str, call_id: str, args: dict[str, object]
) -> None:
    rec = SpooledRecord(rid, op, call_id, args)
    assert SpooledRecord.from_json(rec.to_json()) == rec


def test_spool_keeps_write_order_across_restarts(tmp_path: Path) -> None:
    from agent.adapters.store.spool import Spool

    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(12)]
    first = Spool(tmp_path, KEYS)
    for rid in ids[:7]:
        first.put(SpooledRecord(rid, "turn", "c", {}))
    second = Spool(tmp_path, KEYS)  # a restart: numbering continues after the last file
    for rid in ids[7:]:
        second.put(SpooledRecord(rid, "turn", "c", {}))
    assert [r.id for _p, r in second.pending()] == ids
