"""What one snapshot costs the daemon (`make bench-snapshot`): the engine's build, ``to_wire`` and the frame.

The producer side of the typed snapshot (issue 11 item 3; the face side is bench_frames). Per snapshot the
daemon builds the views (at most 5 times a second, only when something changed), turns them into the wire
JSON and encodes one ``snapshot`` frame for every client that is due. An engine (no store, not started) is
fed ``--window`` seconds of results for ``N`` exchanges x 3 probes at 4 Hz (every 20th a failure), then each
step is timed on its own, ``--repeat`` times, medians reported.

    python -m bench.bench_snapshot [--repeat 30] [--exchanges 5,35,100] [--record]

Runs against any engine of this repository: one whose ``snapshot()`` is still a dict (before the typed
model) is measured the same way with ``to_wire`` as a no-op, which is how the table's "before" rows were made
(``PYTHONPATH`` pointing at an export of that commit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.protocol import Push, encode
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.kernel.results import Outcome, ProbeResult

ROOT = Path(__file__).resolve().parents[1]
PROBES = ("time", "status", "ticker")


def engine_with(exchanges: int, window_s: float) -> Engine:
    clock = FakeClock(start=1_750_000_000.0)
    cfg = config_from_data(
        {"exchanges": {f"ex{i}": {"kind": "binance_spot", "interval": "250ms"} for i in range(exchanges)}}
    )
    engine = Engine(cfg, clock=clock, use_store=False, notify=False)
    n = 0
    for _ in range(int(window_s / 0.25)):
        clock.set(clock.now() + 0.25)
        for i in range(exchanges):
            for probe in PROBES:
                n += 1
                ok = n % 20 != 0
                engine._on_result(ProbeResult(
                    f"ex{i}", probe, clock.now(), 40.0 + n % 7 if ok else 900.0,
                    Outcome.OK if ok else Outcome.HTTP_5XX, http_status=200 if ok else 503,
                ))
    return engine


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(samples)


def measure(exchanges: int, window_s: float, repeat: int) -> tuple[float, float, float, int]:
    engine = engine_with(exchanges, window_s)
    snap = engine._build_snapshot()
    to_wire = getattr(snap, "to_wire", None)
    wire = to_wire() if to_wire is not None else snap
    build = median_ms(engine._build_snapshot, repeat)
    convert = median_ms(to_wire, repeat) if to_wire is not None else 0.0
    frame = median_ms(lambda: encode(Push("snapshot", wire)), repeat)
    return build, convert, frame, len(encode(Push("snapshot", wire)))


def table(rows: Sequence[tuple[int, float, float, float, int]]) -> str:
    out = ["| exchanges | probes | frame bytes | build | to_wire | encode | total | share of 200 ms |",
           "|---|---|---|---|---|---|---|---|"]
    for n, build, convert, frame, size in rows:
        total = build + convert + frame
        out.append(f"| {n} | {n * len(PROBES)} | {size:,} | {build:.2f} ms | {convert:.2f} ms | {frame:.2f} ms "
                   f"| {total:.2f} ms | {total / 200.0:.1%} |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--exchanges", default="5,35,100")
    parser.add_argument("--window", type=float, default=60.0, help="seconds of results fed first")
    parser.add_argument("--record", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args(argv)
    rows = [(n, *measure(n, args.window, args.repeat)) for n in (int(x) for x in args.exchanges.split(","))]
    text = table(rows)
    print(text)
    if args.record:
        when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = os.getloadavg()[0]
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write(f"\n{when}, `python -m bench.bench_snapshot --repeat {args.repeat}`, load {load:.1f}:\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
