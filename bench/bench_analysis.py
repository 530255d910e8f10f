"""Analyses in flight against the engine loop's timing (``python -m bench.bench_analysis``).

Five analyses stream from a slow fake provider (0.4 s to first byte, ~0.6 s of streaming, on its own
thread like a remote server) beside a task that wakes every 10 ms, as a probe scheduler does; the figures
are how late it woke. Targets (from the test that used to assert them): p99 < max(75 ms, 3x the idle p99
+ 50 ms), max < 250 ms, start_background returns within 50 ms. Runs the measurement ``--runs`` times.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from datetime import UTC, datetime

from tests.fakes.openai_server import FakeOpenAIServer, Step
from tests.integration.test_llm_background import measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_analysis", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"bench-analysis {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, python {sys.version.split()[0]}")
    met = True
    for run in range(1, max(1, args.runs) + 1):
        srv = FakeOpenAIServer()
        srv.default = Step(delay=0.4, chunk_chars=6, chunk_delay=0.01)
        srv.start_in_thread()
        try:
            m = asyncio.run(measure(srv))
        finally:
            srv.stop_thread()
        p99, idle, worst, sched = (float(m[k]) for k in ("p99_s", "idle_p99_s", "max_s", "scheduled_in_s"))
        ok = p99 < max(0.075, 3 * idle + 0.05) and worst < 0.25 and sched < 0.05
        met = met and ok
        print(f"run {run}: ticks={m['ticks']} p50={float(m['p50_s']) * 1000:.1f} ms p99={p99 * 1000:.1f} ms "
              f"max={worst * 1000:.1f} ms idle p99={idle * 1000:.1f} ms scheduled in {sched * 1000:.1f} ms: "
              f"{'met' if ok else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
