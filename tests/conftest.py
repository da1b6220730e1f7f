"""Shared test set-up.

Every async test fails on a stray exception in its event loop (an exception nobody retrieved from a
task, an error in a callback): the loop's exception handler records them and the fixture fails the
test at teardown. Warnings are errors (pyproject ``filterwarnings``).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ASTERISK_REFERENCE = SHARED / "asterisk-reference"


@pytest.fixture(autouse=True)
async def _fail_on_stray_loop_exceptions() -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield
        # Let tasks that are finishing report, and collect unretrieved task exceptions.
        await asyncio.sleep(0)
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    if errors:
        details = "; ".join(f"{c.get('message')}: {c.get('exception')!r}" for c in errors)
        pytest.fail(f"stray exception(s) in the event loop: {details}")


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A test that configures logging onto its own stream (a StringIO, a captured stdout) leaves
    structlog writing to it once closed: later tests in the same worker failed with "I/O
    operation on closed file". Each test starts from structlog's defaults."""
    yield
    structlog.reset_defaults()


@pytest.fixture
def asterisk_reference() -> Path:
    if not ASTERISK_REFERENCE.is_dir():
        pytest.skip(f"reference traces not found at {ASTERISK_REFERENCE}")
    return ASTERISK_REFERENCE
