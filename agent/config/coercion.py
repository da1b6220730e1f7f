"""From TOML tables to the typed sections, led by the sections' type hints: a wrong key or type
fails with the key and what was expected. Secrets given as ``<name>_env`` or ``<name>_file`` are
resolved on the way, and what is allowed but unsafe is collected as warnings."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from agent.errors import ConfigError

MAX_SECRET_BYTES = 64 << 10
"""A password or a DSN is one line: the cap keeps ``password_file = "/dev/zero"`` out of memory."""


def _dsn_has_password(dsn: str) -> bool:
    """Whether a libpq DSN (URL or ``key=value`` form) carries a password."""
    if "://" in dsn:
        try:
            return bool(urlsplit(dsn).password)
        except ValueError:
            return True  # not parseable: assume the worst
    return re.search(r"(?:^|\s)password\s*=", dsn) is not None


_SECRET_FIELDS: dict[str, typing.Callable[[str], bool]] = {
    "password": bool,
    "dsn": _dsn_has_password,
}
"""Settings that may come from ``<name>_env`` / ``<name>_file``, each with the test of whether an
inline value holds a secret at all (a DSN without a password does not)."""


@dataclass
class _Load:
    """One load's context, carried through the recursive build: where the settings come from, the
    environment secrets are read from, and what was found on the way."""

    file: str
    env: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    inline_secrets: list[tuple[str, str]] = field(default_factory=list)
    """(dotted key, setting name) of secrets written in the file itself."""

    def warn(self, message: str, key: str) -> None:
        self.warnings.append(_located(message, self.file, key))


def _located(message: str, file: str | None, key: str | None) -> str:
    """``file: [key]: message``: a warning reads like a ``ConfigError``."""
    return str(ConfigError(message, file=file, key=key))


def _build(
    cls: type[Any],
    table: Any,
    load: _Load,
    *,
    prefix: str,
    skip: frozenset[str] | set[str] = frozenset(),
) -> Any:
    file = load.file
    if not isinstance(table, dict):
        raise ConfigError(f"expected a table, got {_tname(table)}", file=file, key=prefix or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
    table = dict(table)
    kwargs: dict[str, Any] = {}
    for secret, holds_secret in _SECRET_FIELDS.items():
        if secret not in fields:
            continue
        value = _secret(table, secret, load, prefix=prefix)
        if value is not None:
            kwargs[secret] = value
        elif isinstance(table.get(secret), str) and holds_secret(table[secret]):
            load.inline_secrets.append((f"{prefix}.{secret}", secret))
    for key, value in table.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                f"unknown key {key!r}; expected one of: {known}", file=file, key=dotted
            )
        kwargs[key] = _coerce(hints[key], value, load, key=dotted)
    missing = [
        name
        for name, f in fields.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"missing required key(s): {', '.join(missing)}", file=file, key=prefix or None
        )
    return cls(**kwargs)


def _secret(table: dict[str, Any], name: str, load: _Load, *, prefix: str) -> str | None:
    """The value of ``<name>_env`` or ``<name>_file`` (both removed from ``table``), or ``None``
    when the secret is inline or not given."""
    file = load.file
    dotted = f"{prefix}.{name}"
    given = [k for k in (name, f"{name}_env", f"{name}_file") if k in table]
    if len(given) > 1:
        raise ConfigError(f"give one of {', '.join(given)}, not several", file=file, key=dotted)
    from_env = table.pop(f"{name}_env", None)
    from_file = table.pop(f"{name}_file", None)
    if from_env is not None:
        if not isinstance(from_env, str):
            raise ConfigError(
                "expected the name of an environment variable", file=file, key=dotted + "_env"
            )
        if from_env not in load.env:
            raise ConfigError(
                f"environment variable {from_env} is not set", file=file, key=dotted + "_env"
            )
        return load.env[from_env]
    if from_file is not None:
        if not isinstance(from_file, str):
            raise ConfigError("expected a file path", file=file, key=dotted + "_file")
        return _read_secret_file(from_file, load, key=dotted + "_file")
    return None


def _read_secret_file(path: str, load: _Load, *, key: str) -> str:
    """A secret file's text: a small regular file that only its owner can read. One owned by
    neither this user nor root is read, with a warning (someone else can rewrite it)."""
    file = load.file
    try:
        # stat before open: opening a FIFO would wait for a writer.
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(
                f"secret file {path} is not a regular file", file=file, key=key
            ) from None
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read secret file: {exc.strerror or type(exc).__name__}", file=file, key=key
        ) from None
    except ValueError:  # a NUL in the name
        raise ConfigError(
            "cannot read secret file: not a usable file name", file=file, key=key
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"secret file {path} is readable by others; run: chmod 600 {path}",
            file=file,
            key=key,
        )
    if len(raw) > MAX_SECRET_BYTES:
        raise ConfigError(
            f"secret file {path} is larger than {MAX_SECRET_BYTES // 1024} KiB; a secret is one "
            "line",
            file=file,
            key=key,
        )
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} is not UTF-8 text", file=file, key=key) from None
    euid = os.geteuid()
    if st.st_uid not in (euid, 0):
        load.warn(
            f"secret file {path} is owned by uid {st.st_uid}, not by this user (uid {euid}) or "
            f"root; run: chown {euid} {path}",
            key,
        )
    return text


def _coerce(tp: Any, value: Any, load: _Load, *, key: str) -> Any:
    file = load.file
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _build(tp, value, load, prefix=key)
    if origin is Literal:
        if value not in args:
            raise ConfigError(
                f"expected one of {', '.join(repr(a) for a in args)}, got {value!r}",
                file=file,
                key=key,
            )
        return value
    if origin in (types.UnionType, typing.Union):
        errors = []
        for alt in args:
            try:
                return _coerce(alt, value, load, key=key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"expected a list, got {_tname(value)}", file=file, key=key)
        return [_coerce(args[0], v, load, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a table, got {_tname(value)}", file=file, key=key)
        return {str(k): _coerce(args[1], v, load, key=f"{key}.{k}") for k, v in value.items()}
    if tp is type(None):
        if value is not None:
            raise ConfigError("expected nothing", file=file, key=key)
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_tname(value)}", file=file, key=key)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_tname(value)}", file=file, key=key)
        if not -(2**63) <= value < 2**63:  # TOML's integers are 64-bit
            raise ConfigError("expected a 64-bit integer, got a larger one", file=file, key=key)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_tname(value)}", file=file, key=key)
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ConfigError(
                "expected a number, got an integer beyond 64 bits", file=file, key=key
            )
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"expected a finite number, got {value!r}", file=file, key=key)
        return number
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_tname(value)}", file=file, key=key)
        return value
    raise ConfigError(f"unsupported setting type {tp!r}", file=file, key=key)  # pragma: no cover


def _tname(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
