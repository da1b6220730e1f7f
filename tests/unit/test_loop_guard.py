"""The stray-exception guard in conftest really fails a test (run in a child pytest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LEAKY = """
import asyncio

async def test_leaks_a_task_exception():
    async def boom():
        raise RuntimeError("nobody awaited me")
    t = asyncio.get_running_loop().create_task(boom())
    await asyncio.sleep(0.01)
    del t
"""


def test_guard_fails_a_test_that_leaks_an_exception(tmp_path: Path) -> None:
    test_file = ROOT / "tests" / "unit" / f"_tmp_leaky_{tmp_path.name}_test.py"
    test_file.write_text(LEAKY)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        test_file.unlink()
    assert proc.returncode != 0, proc.stdout
    assert "stray exception" in proc.stdout
