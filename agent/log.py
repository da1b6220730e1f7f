"""structlog set-up and the redaction processor.

Every line of a call carries ``call_id`` and ``channel_id`` (bound with
``structlog.contextvars.bound_contextvars`` in the call's task). Patient data never reaches a log line
in clear: fields whose *name* says they hold patient data are replaced by a short keyed hash (so two
lines about the same caller can still be correlated), and free text in any field is scrubbed of
things that look like phone numbers and dates.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog

from agent.config import LoggingConfig

# Field names whose values are patient data. Matching is on the name (lower-cased) or its suffix.
PATIENT_FIELDS = frozenset(
    {
        "text",
        "transcript",
        "utterance",
        "caller_text",
        "name",
        "patient_name",
        "first_name",
        "last_name",
        "dob",
        "date_of_birth",
        "birth_date",
        "phone",
        "phone_number",
        "callback_number",
        "caller_number",
        "caller_name",
        "caller_id",
        "medication",
        "pharmacy",
        "message",
        "summary",
        "entities",
        "prompt",
        "address",
    }
)
# Fields that are safe even though their names look like the above (they carry ids or counters).
SAFE_FIELDS = frozenset({"event", "level", "timestamp", "logger", "call_id", "channel_id", "code"})

# Not preceded/followed by "digit." or ".digit": ARI channel ids look like 1795737644.7 and must survive.
_PHONE = re.compile(
    r"(?<![\d.])(?:\+?1[\s.-]?)?(?:\(?\d{3}\)?[\s.-]?)\d{3}[\s.-]?\d{4}(?![\d]|\.\d)"
)
_DATE = re.compile(
    r"\b(?:\d{1,2}[/-]\d{1,2}[/-]\d{2,4}|\d{4}-\d{2}-\d{2}|"
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4})\b",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"(?<![\d.])\d{7,}(?![\d]|\.\d)")

_KEY = os.urandom(16)


def fingerprint(value: object) -> str:
    """A short keyed hash: stable within this process, useless to anyone reading the log."""
    digest = hmac.new(_KEY, str(value).encode(), hashlib.sha256).hexdigest()[:10]
    return f"<redacted:{digest}>"


def scrub_text(text: str) -> str:
    """Remove phone numbers, dates and long digit runs from free text (exception messages etc.)."""
    text = _PHONE.sub("<phone>", text)
    text = _DATE.sub("<date>", text)
    return _DIGITS.sub("<digits>", text)


def _is_patient_field(key: str) -> bool:
    k = key.lower()
    if k in SAFE_FIELDS:
        return False
    return k in PATIENT_FIELDS or any(k.endswith("_" + f) for f in PATIENT_FIELDS)


def _redact_value(value: Any) -> Any:
    if isinstance(value, BaseException):
        return type(value).__name__  # a message may quote the caller
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: (fingerprint(v) if _is_patient_field(str(k)) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: patient-data fields hashed, free text scrubbed."""
    for key in list(event_dict):
        value = event_dict[key]
        if key == "event":
            if isinstance(value, str):
                event_dict[key] = scrub_text(value)
            continue
        if _is_patient_field(key):
            event_dict[key] = fingerprint(value) if value not in (None, "") else value
        else:
            event_dict[key] = _redact_value(value)
    return event_dict


def _traceback_lines(te: traceback.TracebackException) -> list[str]:
    lines: list[str] = []
    if te.__cause__ is not None:
        lines += _traceback_lines(te.__cause__)
        lines.append("\nThe above exception was the direct cause of the following exception:\n\n")
    elif te.__context__ is not None and not te.__suppress_context__:
        lines += _traceback_lines(te.__context__)
        lines.append("\nDuring handling of the above exception, another exception occurred:\n\n")
    lines.append("Traceback (most recent call last):\n")
    lines += te.stack.format()
    name = te.exc_type.__qualname__ if te.exc_type is not None else "exception"
    lines.append(f"{name} (message not logged)\n")
    return lines


def format_exc_without_messages(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor in place of ``format_exc_info``: the traceback's frames and exception
    types, never the exceptions' messages, which may quote what a caller said."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info is None or exc_info is False:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
    if exc is not None:
        te = traceback.TracebackException.from_exception(exc, capture_locals=False)
        event_dict["exception"] = "".join(_traceback_lines(te)).rstrip("\n")
    return event_dict


TEXT_LOGGING_LIBRARIES = ("piper", "faster_whisper")


def configure_logging(cfg: LoggingConfig | None = None, *, stream: Any = None) -> None:
    """Configure structlog once at start-up (the CLI calls this)."""
    cfg = cfg or LoggingConfig()
    stream = stream or sys.stderr
    level = getattr(logging, cfg.level.upper())
    use_console = cfg.format == "console" or (cfg.format == "auto" and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        format_exc_without_messages,
        redact,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer()
    )
    # Libraries that log the text they process at debug level (Piper: every sentence it speaks,
    # read-backs included) never go below warning, whatever the root logger is set to.
    for name in TEXT_LOGGING_LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
