"""Typed, validated settings: one frozen dataclass per section of ``medagent.toml``.

The file is read and validated once at start-up; each part of the agent is handed its own section.
A wrong key or type fails at start with the file, the key and what was expected. Units are in the
field names (``_ms``, ``_s``). Secrets (``password``, ``database.dsn``) may instead be given as
``password_env`` / ``dsn_env`` (an environment variable's name) or ``password_file`` / ``dsn_file``
(a file readable only by the service user).

What is questionable but allowed (an inline secret in a file every user can read, a secret file
owned by someone else, plain-text ARI/AMI across the LAN that the admin explicitly allowed) is
collected in ``Config.warnings``; the commands print them when they start.

The core takes small settings objects of its own, never these sections: ``segmenter_settings`` and
``office_hours`` build them.

Adding a setting: add a field with a default to its section (``sections``), and a number its domain
in ``DOMAINS`` (``domains``); the loader, the example file check (`tests/unit/test_config.py`) and
the error messages follow from the type hints.

The modules, lowest first: ``sections`` and ``domains`` (what may be set), ``core_settings`` (the
core's objects from them), ``coercion`` (TOML tables to typed sections, secrets resolved),
``validation`` (checks across fields) and ``loading`` (the file, once). Import from this package:
a name with a leading underscore is shared by its modules and private to it.
"""

from __future__ import annotations

from agent.config.coercion import MAX_SECRET_BYTES
from agent.config.core_settings import office_hours, segmenter_settings
from agent.config.domains import DOMAINS, Domain
from agent.config.loading import MAX_CONFIG_BYTES, load_config, parse_config
from agent.config.sections import (
    DEV_KEY_FILE,
    AgiConfig,
    AmiConfig,
    AriConfig,
    CallsConfig,
    Config,
    DatabaseConfig,
    LoggingConfig,
    MediaConfig,
    NluConfig,
    PracticeConfig,
    Provider,
    SttConfig,
    TransferConfig,
    TtsConfig,
    VadConfig,
    development_defaults,
)
from agent.config.validation import is_loopback

__all__ = [
    "DEV_KEY_FILE",
    "DOMAINS",
    "MAX_CONFIG_BYTES",
    "MAX_SECRET_BYTES",
    "AgiConfig",
    "AmiConfig",
    "AriConfig",
    "CallsConfig",
    "Config",
    "DatabaseConfig",
    "Domain",
    "LoggingConfig",
    "MediaConfig",
    "NluConfig",
    "PracticeConfig",
    "Provider",
    "SttConfig",
    "TransferConfig",
    "TtsConfig",
    "VadConfig",
    "development_defaults",
    "is_loopback",
    "load_config",
    "office_hours",
    "parse_config",
    "segmenter_settings",
]
