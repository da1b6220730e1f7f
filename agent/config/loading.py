"""Reading a configuration file (or a parsed table) into a validated ``Config``, once, at start."""

from __future__ import annotations

import dataclasses
import os
import stat
import tomllib
from typing import Any

from agent.config.coercion import _build, _Load
from agent.config.sections import Config, development_defaults
from agent.config.validation import _check_domains, _check_transport, _check_values
from agent.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20
"""A configuration file is a few kilobytes: anything this large is the wrong file (or a device)."""


def load_config(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Config:
    """Read and validate ``path`` (``None``: :func:`development_defaults`). Raises ``ConfigError``
    for anything that is not a valid configuration file, never another exception."""
    env = dict(os.environ) if env is None else env
    if path is None:
        return development_defaults()
    file = str(path)
    raw, mode = _read_config_file(file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8 text (line {line}); save the file as UTF-8", file=file
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively.
        raise ConfigError(
            "arrays or inline tables nested too deeply; not a configuration file", file=file
        ) from None
    except ValueError as exc:  # an integer of thousands of digits (int's conversion limit)
        raise ConfigError(f"not valid TOML: {exc}", file=file) from None
    load = _Load(file, env)
    cfg = _parse(data, load)
    if mode & stat.S_IROTH:
        for key, name in load.inline_secrets:
            load.warn(
                f"a secret is written in a file every user can read (mode "
                f"{stat.S_IMODE(mode):03o}); move it to {name}_file (mode 600), or run: "
                f"chmod 640 {file}",
                key,
            )
    return dataclasses.replace(cfg, source=file, warnings=tuple(load.warnings))


def _read_config_file(file: str) -> tuple[bytes, int]:
    """The file's bytes (at most ``MAX_CONFIG_BYTES``) and its mode."""
    try:
        with open(file, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or type(exc).__name__}", file=file) from None
    except ValueError:  # a NUL in the name
        raise ConfigError("not a usable file name", file=file) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"larger than {MAX_CONFIG_BYTES // 1024} KiB; not a configuration file", file=file
        )
    return raw, mode


def parse_config(
    data: dict[str, Any], *, file: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    env = dict(os.environ) if env is None else env
    load = _Load(file, env)
    cfg = _parse(data, load)
    return dataclasses.replace(cfg, warnings=tuple(load.warnings))


def _parse(data: dict[str, Any], load: _Load) -> Config:
    cfg: Config = _build(Config, data, load, prefix="", skip={"source", "warnings"})
    _check_domains(cfg, load.file)
    _check_values(cfg, load.file)
    _check_transport(cfg, load)
    return cfg
