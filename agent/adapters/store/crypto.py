"""Encryption of patient data at rest: AES-256-GCM, with the key outside the database.

Every ciphertext is bound by its associated data to the table, row and column it belongs to, so a
value copied onto another row (or into another column) fails to decrypt instead of silently
showing one patient's data as another's. Each ciphertext carries the id of the key that sealed it,
so keys can be rotated: new data is sealed with the newest key, old data still opens.

Looking patients up by name and date of birth must not mean decrypting the whole directory, so a
*blind index* (an HMAC of the normalised name and DOB under a key derived from the first key in the
file) is stored beside the ciphertext; equal inputs give equal indexes, nothing else is revealed
beyond equality.

Key file format: one key per line, ``<key id> <base64 of 32 bytes>``, oldest first; ``#`` comments.
The file must not be readable by group or others (mode 600); it is created that way when missing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import stat
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.core.names import normalise_name
from agent.errors import StoreError
from agent.log import get_logger

log = get_logger(__name__)

_FORMAT = 1
"""First byte of every sealed value; bumped if the layout below ever changes."""
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyFileError(StoreError):
    """The key file is missing, malformed or readable by others."""

    code = "store_key_file"


class DecryptError(StoreError):
    """A sealed value did not open: wrong key, tampered bytes, or moved to another row/column."""

    code = "store_decrypt"


def _aad(table: str, row: str, column: str) -> bytes:
    return f"medagent/{table}/{row}/{column}".encode()


@dataclass(frozen=True)
class Keyring:
    """The keys from the key file: ``keys`` oldest first; the newest seals, any opens."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyFileError("the key file holds no key")
        for kid, key in self.keys:
            if not _KEY_ID.match(kid):
                raise KeyFileError(f"key id {kid!r} must be 1-32 of A-Z a-z 0-9 _ -")
            if len(key) != 32:
                raise KeyFileError(f"key {kid!r} must be 32 bytes, got {len(key)}")

    @property
    def current_id(self) -> str:
        return self.keys[-1][0]

    def _key(self, kid: str) -> bytes:
        for k, key in self.keys:
            if k == kid:
                return key
        raise DecryptError(f"sealed with key {kid!r}, which is not in the key file")

    # -- sealing ----------------------------------------------------------------------------

    def seal(self, plaintext: bytes, *, table: str, row: str, column: str) -> bytes:
        """``format | len(kid) | kid | nonce | ciphertext+tag``, bound to table/row/column."""
        kid, key = self.keys[-1]
        nonce = os.urandom(_NONCE_BYTES)
        ct = AESGCM(key).encrypt(nonce, plaintext, _aad(table, row, column))
        kid_b = kid.encode()
        return bytes([_FORMAT, len(kid_b)]) + kid_b + nonce + ct

    def open(self, sealed: bytes, *, table: str, row: str, column: str) -> bytes:
        if len(sealed) < 2 or sealed[0] != _FORMAT:
            raise DecryptError(f"{table}.{column}: not a sealed value (unknown format)")
        n = sealed[1]
        kid = sealed[2 : 2 + n].decode(errors="replace")
        nonce = sealed[2 + n : 2 + n + _NONCE_BYTES]
        ct = sealed[2 + n + _NONCE_BYTES :]
        try:
            return AESGCM(self._key(kid)).decrypt(nonce, ct, _aad(table, row, column))
        except InvalidTag:
            raise DecryptError(
                f"{table}.{column} of row {row}: authentication failed "
                "(tampered, or moved from another row or column)"
            ) from None

    def seal_json(self, value: Any, *, table: str, row: str, column: str) -> bytes:
        raw = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
        return self.seal(raw, table=table, row=row, column=column)

    def open_json(self, sealed: bytes, *, table: str, row: str, column: str) -> Any:
        return json.loads(self.open(sealed, table=table, row=row, column=column))

    @staticmethod
    def key_id_of(sealed: bytes) -> str:
        """Which key sealed a value (to find rows still to re-seal after a rotation)."""
        return sealed[2 : 2 + sealed[1]].decode(errors="replace")

    # -- blind index ------------------------------------------------------------------------

    def _index_key(self) -> bytes:
        # Derived from the *first* key so rotation (appending keys) keeps indexes stable.
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"medagent blind index v1"
        ).derive(self.keys[0][1])

    def blind_index(self, name: str, dob: date) -> bytes:
        """Keyed HMAC of the normalised name and DOB: equal for "Ann  O'Neil" and "ann oneil"."""
        msg = f"{normalise_name(name)}|{dob.isoformat()}".encode()
        return hmac.new(self._index_key(), msg, hashlib.sha256).digest()


def generate_key_line(kid: str) -> str:
    return f"{kid} {base64.b64encode(os.urandom(32)).decode()}\n"


def parse_key_file(text: str, *, path: str = "<key file>") -> Keyring:
    keys: list[tuple[str, bytes]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise KeyFileError(f"{path}:{lineno}: expected '<key id> <base64 key>'")
        try:
            key = base64.b64decode(parts[1], validate=True)
        except ValueError:
            raise KeyFileError(f"{path}:{lineno}: key is not valid base64") from None
        keys.append((parts[0], key))
    if len({k for k, _ in keys}) != len(keys):
        raise KeyFileError(f"{path}: duplicate key id")
    try:
        return Keyring(tuple(keys))
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None


def load_keyring(path: str | os.PathLike[str], *, create: bool = True) -> Keyring:
    """Read the key file; create it (mode 600, one fresh key) when missing and ``create``.

    Refuses a file that group or others can read: a leaked key undoes the encryption.
    """
    p = Path(path)
    if not p.exists():
        if not create:
            raise KeyFileError(f"{p}: key file not found")
        create_key_file(p, "# medagent record key: back it up apart from the database\n")
        log.warning("created a new record encryption key", key_file=str(p), mode="0600")
    return parse_key_file(read_private(p), path=str(p))


def create_key_file(p: Path, header: str) -> None:
    """A new key file holding one fresh key ``k1``, created mode 600 (never over an existing one)."""
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(header)
        fh.write(generate_key_line("k1"))
        fh.flush()
        os.fsync(fh.fileno())


def read_private(p: Path) -> str:
    """The text of a key file, refused when group or others can reach it."""
    mode = p.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{p}: key file is accessible by group or others (mode {stat.S_IMODE(mode):03o}); "
            "run chmod 600 on it"
        )
    return p.read_text()
