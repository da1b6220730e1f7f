"""`make bench`: run every benchmark module and print one JSON document.

Each module in ``bench/`` named in ``BENCHES`` provides ``run(quick: bool) -> dict``. Set
``BENCH_QUICK=1`` for a short smoke run (used by the tests to prove the benchmarks work).
``BENCH_ONLY=name,name`` selects benchmarks.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time

BENCHES = ["pacing", "stt", "tts", "prompt_wer", "nlu", "protocols", "urgency_levels", "calls"]


def main() -> int:
    from agent.config import LoggingConfig
    from agent.log import configure_logging

    # stdout is the JSON report; the engines' log lines go to stderr.
    configure_logging(LoggingConfig(level="warning", format="json"), stream=sys.stderr)
    quick = os.environ.get("BENCH_QUICK") == "1"
    only = [b for b in os.environ.get("BENCH_ONLY", "").split(",") if b]
    report: dict[str, object] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "quick": quick,
    }
    failed = False
    for name in BENCHES:
        if only and name not in only:
            continue
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            result = module.run(quick=quick)
        except Exception as exc:  # a broken benchmark is reported, the others still run
            result = {"error": f"{type(exc).__name__}: {exc}"}
            failed = True
        result["wall_s"] = round(time.perf_counter() - started, 2)
        report[name] = result
        print(f"bench: {name} done in {result['wall_s']} s", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
