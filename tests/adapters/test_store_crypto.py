"""Sealing, tamper detection, row/column binding, key rotation, blind index, key file rules."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.adapters.store.crypto import (
    DecryptError,
    KeyFileError,
    Keyring,
    generate_key_line,
    load_keyring,
    parse_key_file,
)
from agent.core.names import normalise_name


def test_round_trip_and_ciphertext_hides_plaintext(tmp_path: Path) -> None:
    keys = load_keyring(tmp_path / "k")
    sealed = keys.seal(b"Jane Testpatient", table="patients", row="r1", column="name")
    assert b"Jane" not in sealed
    assert keys.open(sealed, table="patients", row="r1", column="name") == b"Jane Testpatient"
    assert Keyring.key_id_of(sealed) == "k1"
    # A fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert sealed != keys.seal(b"Jane Testpatient", table="patients", row="r1", column="name")


def test_flipped_bit_fails(tmp_path: Path) -> None:
    keys = load_keyring(tmp_path / "k")
    sealed = bytearray(keys.seal(b"lisinopril", table="requests", row="r", column="data"))
    sealed[-1] ^= 1
    with pytest.raises(DecryptError, match="authentication failed"):
        keys.open(bytes(sealed), table="requests", row="r", column="data")


@pytest.mark.parametrize(
    ("table", "row", "column"),
    [("patients", "r2", "name"), ("patients", "r1", "phone"), ("turns", "r1", "name")],
)
def test_ciphertext_moved_to_another_row_or_column_fails(
    tmp_path: Path, table: str, row: str, column: str
) -> None:
    keys = load_keyring(tmp_path / "k")
    sealed = keys.seal(b"1962-03-04", table="patients", row="r1", column="name")
    with pytest.raises(DecryptError, match="moved from another row or column"):
        keys.open(sealed, table=table, row=row, column=column)


def test_rotation_old_values_still_open_new_ones_use_the_new_key(tmp_path: Path) -> None:
    path = tmp_path / "k"
    old = load_keyring(path)
    sealed_old = old.seal(b"x", table="t", row="1", column="c")
    with path.open("a") as fh:
        fh.write(generate_key_line("k2"))
    new = load_keyring(path)
    assert new.current_id == "k2"
    assert new.open(sealed_old, table="t", row="1", column="c") == b"x"
    assert Keyring.key_id_of(new.seal(b"y", table="t", row="1", column="c")) == "k2"
    # The blind index is derived from the first key, so rotation keeps lookups working.
    assert old.blind_index("Ann Example", date(1970, 1, 2)) == new.blind_index(
        "Ann Example", date(1970, 1, 2)
    )


def test_a_key_not_in_the_file_is_named(tmp_path: Path) -> None:
    a = load_keyring(tmp_path / "a")
    b = load_keyring(tmp_path / "b")
    sealed = a.seal(b"x", table="t", row="1", column="c")
    # Both files call their key k1, but the bytes differ: authentication fails.
    with pytest.raises(DecryptError, match="authentication failed"):
        b.open(sealed, table="t", row="1", column="c")
    other = parse_key_file(generate_key_line("k9"))
    with pytest.raises(DecryptError, match="key 'k1', which is not in the key file"):
        other.open(sealed, table="t", row="1", column="c")


def test_blind_index_normalises_and_distinguishes() -> None:
    keys = parse_key_file(generate_key_line("k1"))
    dob = date(1962, 3, 4)
    assert keys.blind_index("Ann O'Neil", dob) == keys.blind_index("  ANN  oneil ", dob)
    assert keys.blind_index("José Núñez", dob) == keys.blind_index("jose nunez", dob)
    assert keys.blind_index("Ann O'Neil", dob) != keys.blind_index("Ann O'Neil", date(1962, 3, 5))
    assert keys.blind_index("Ann O'Neil", dob) != keys.blind_index("Anne O'Neil", dob)
    other = parse_key_file(generate_key_line("k1"))
    assert keys.blind_index("Ann O'Neil", dob) != other.blind_index("Ann O'Neil", dob)
    assert normalise_name("Mary-Jane  Smith") == "mary jane smith"


def test_missing_key_file_is_created_600_with_a_log_line(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "record.key"
    with capture_logs() as logs:
        load_keyring(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [e["event"] for e in logs] == ["created a new record encryption key"]
    with pytest.raises(KeyFileError, match="key file not found"):
        load_keyring(tmp_path / "absent", create=False)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "record.key"
    load_keyring(path)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"accessible by group or others \(mode 644\)"):
        load_keyring(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "holds no key"),
        ("k1\n", "k:1: expected '<key id> <base64 key>'"),
        ("k1 !!!\n", "k:1: key is not valid base64"),
        ("k1 AAAA\n", "key 'k1' must be 32 bytes, got 3"),
        ("bad/id " + "A" * 44 + "\n", "key id 'bad/id' must be"),
    ],
)
def test_bad_key_files(text: str, message: str) -> None:
    with pytest.raises(KeyFileError, match=message.replace("(", r"\(")):
        parse_key_file(text, path="k")


def test_duplicate_key_ids_refused() -> None:
    with pytest.raises(KeyFileError, match="duplicate key id"):
        parse_key_file(generate_key_line("k1") + generate_key_line("k1"))
