"""What one snapshot frame costs a face (`make bench-frames`): decode, typed read, and the dashboard's presenter.

Since the typed model, the daemon client reads every pushed snapshot frame with ``Snapshot.from_wire``
(never raising, numbers bounded, text capped) instead of handing the dict on. This measures, per frame,
the three steps a UI runs at up to 4 Hz: ``protocol.decode`` of the JSON line, ``Snapshot.from_wire`` and
the presenter over every row (exchange rows, the error table, incident rows, status and verdict lines).
The frame is the recorded demo-outage snapshot (tests/unit/snapshot_demo_outage.json: 5 exchanges, 14
probes), and the same exchanges repeated to ~100 and ~300 endpoints.

    python -m bench.bench_frames [--repeat 30] [--record]

--record appends the table with the command and date to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time
from pathlib import Path

from cryptomon_tui.daemon.protocol import Push, decode, encode
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.snapshot import Snapshot
from cryptomon_tui.ui import present

ROOT = Path(__file__).resolve().parents[1]
FRAME = ROOT / "tests" / "unit" / "snapshot_demo_outage.json"


def scaled(wire: JsonObject, copies: int) -> JsonObject:
    exchanges = wire["exchanges"]
    assert isinstance(exchanges, dict)
    return {**wire, "exchanges": {f"{name}-{i}": ex for i in range(copies) for name, ex in exchanges.items()}}


def present_all(snap: Snapshot) -> int:
    """Every cell the dashboard computes for one snapshot; returns the number of rows (so nothing is skipped)."""
    now = present.parse_ts(snap.ts)
    order = present.sorted_exchanges(snap.exchanges, "status")
    scale = present.view_spark_scale(snap.exchanges, present.SPARK_WIDTH)
    rows = [present.exchange_row(n, snap.exchanges[n], now, present.SPARK_WIDTH, scale) for n in order]
    rows += [cells for _, cells in present.error_rows(snap, order, only_failing=False)]
    rows += [present.incident_row(i, now, snap.notify) for i in present.incident_order(snap.incidents)]
    present.status_line(snap)
    present.verdict_line(snap, snap.incidents)
    return len(rows)


def measure(line: bytes, repeat: int) -> dict[str, float]:
    decode_ms, read_ms, present_ms = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        msg = decode(line)
        t1 = time.perf_counter()
        assert isinstance(msg, Push)
        snap = Snapshot.from_wire(msg.data)
        t2 = time.perf_counter()
        present_all(snap)
        t3 = time.perf_counter()
        decode_ms.append((t1 - t0) * 1000)
        read_ms.append((t2 - t1) * 1000)
        present_ms.append((t3 - t2) * 1000)
    return {"decode": statistics.median(decode_ms), "from_wire": statistics.median(read_ms),
            "present": statistics.median(present_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    wire = json.loads(FRAME.read_text(encoding="utf-8"))
    lines = ["| frame | exchanges | probes | bytes | decode | from_wire | presenter | total | share of 250 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for copies in (1, 7, 20):
        frame = scaled(wire, copies)
        line = encode(Push("snapshot", frame))
        exchanges = frame["exchanges"]
        assert isinstance(exchanges, dict)
        probes = sum(len(ex.get("probes") or {}) for ex in exchanges.values() if isinstance(ex, dict))
        m = measure(line, args.repeat)
        total = sum(m.values())
        lines.append(f"| demo x{copies} | {len(exchanges)} | {probes} | {len(line):,} | {m['decode']:.2f} ms | "
                     f"{m['from_wire']:.2f} ms | {m['present']:.2f} ms | {total:.2f} ms | {total / 250:.1%} |")
    table = "\n".join(lines)
    print(table)
    if args.record:
        load = os.getloadavg()[0]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(ROOT / "bench" / "RESULTS.md", "a", encoding="utf-8") as out:
            out.write(f"\n{stamp}, `python -m bench.bench_frames --repeat {args.repeat}`, medians, "
                      f"load average {load:.1f} on 2 shared cores:\n\n{table}\n")


if __name__ == "__main__":
    main()
