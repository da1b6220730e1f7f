from __future__ import annotations

import io
import json
import re

import structlog
from structlog.testing import capture_logs

from agent.config import LoggingConfig
from agent.log import configure_logging, get_logger, redact, scrub_text


def test_redaction_processor_hides_patient_fields_and_scrubs_free_text() -> None:
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=stream)
    log = get_logger("t")
    with structlog.contextvars.bound_contextvars(call_id="c-1", channel_id="1795737644.7"):
        log.info(
            "utterance understood",
            transcript="my name is Mary O'Brien born 03/04/1962",
            dob="1962-03-04",
            caller_number="+1 555 123 4567",
            intent="refill",
            detail="call me back at 555-987-6543",
        )
    line = json.loads(stream.getvalue())
    # The fingerprints are random hex: they may contain "555" or "1962" by chance, so they are
    # taken out before looking for the secrets.
    out = re.sub(r"<redacted:[0-9a-f]+>", "<redacted>", stream.getvalue())
    for secret in ("Mary", "O'Brien", "1962", "555", "4567", "6543"):
        assert secret not in out, secret
    assert line["intent"] == "refill"
    assert line["call_id"] == "c-1" and line["channel_id"] == "1795737644.7"
    assert line["transcript"].startswith("<redacted:")
    assert line["detail"] == "call me back at <phone>"


def test_same_value_same_fingerprint_for_correlation() -> None:
    a = redact(None, "info", {"event": "x", "phone": "5551234567"})
    b = redact(None, "info", {"event": "y", "phone": "5551234567"})
    assert a["phone"] == b["phone"] != "5551234567"


def test_nested_structures_are_redacted() -> None:
    ev = redact(
        None,
        "info",
        {
            "event": "x",
            "request": {"medication": "lisinopril", "kind": "refill"},
            "items": ["dob 1/2/1950"],
        },
    )
    assert ev["request"]["kind"] == "refill"
    assert "lisinopril" not in str(ev)
    assert ev["items"] == ["dob <date>"]


def test_scrub_text_keeps_ordinary_words() -> None:
    assert scrub_text("port 40000 busy") == "port 40000 busy"
    assert scrub_text("born march 4th, 1962") == "born <date>"


def test_capture_logs_sees_call_id_binding() -> None:
    with capture_logs() as logs, structlog.contextvars.bound_contextvars(call_id="c-9"):
        get_logger("t").info("hello")
    # capture_logs bypasses processors by design; the binding itself is what we check here.
    assert logs and logs[0]["event"] == "hello"


def test_ari_ids_survive_scrubbing() -> None:
    assert scrub_text("Channel 1795737644.7 not found") == "Channel 1795737644.7 not found"


def test_libraries_that_log_spoken_text_stay_at_warning_even_at_debug() -> None:
    import io
    import logging

    from agent.config import LoggingConfig
    from agent.log import configure_logging

    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)  # as a site that turns on its stdlib debug logging would
    configure_logging(LoggingConfig(level="debug"), stream=io.StringIO())
    try:
        # Piper logs every sentence it synthesizes ("text=..., phonemes=...") at debug.
        assert logging.getLogger("piper").getEffectiveLevel() == logging.WARNING
        assert not logging.getLogger("piper.voice").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(before)
        configure_logging(LoggingConfig(level="warning"), stream=io.StringIO())


def test_a_logged_exception_keeps_its_type_and_frames_but_not_its_message() -> None:
    # An exception's message may quote the caller ("could not parse 'my chest hurts, Mary'").
    stream = io.StringIO()
    configure_logging(LoggingConfig(format="json"), stream=stream)
    log = get_logger("t")

    def parse(words: str) -> None:
        try:
            int(words)
        except ValueError as inner:
            raise RuntimeError(f"could not parse {words!r}") from inner

    said = "my chest hurts, Mary"  # (source lines are shown: this one is not in the traceback)
    try:
        parse(said)
    except RuntimeError as exc:
        log.error("call crashed", exc_info=exc)
        log.error("second listen failed", error=exc)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    for line in (first, second):
        assert "chest" not in json.dumps(line) and "Mary" not in json.dumps(line), line
    assert "RuntimeError" in first["exception"] and "ValueError" in first["exception"]
    assert "in parse" in first["exception"]  # the frames are kept
    assert second["error"] == "RuntimeError"
    configure_logging(LoggingConfig(level="warning"))
