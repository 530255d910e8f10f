"""What the process-wide scrubber costs where every byte passes it (issue 12 item 3).

    python -m bench.bench_scrub [--secrets 40] [--n 20000]

Three figures: one scrub of a short clean string (the common case: exchange names, timestamps, outcomes),
one of an exchange error message, and one probe result written through the scrubbing SQLite writer
connection against the plain one (batches of 500, WAL, one transaction per batch as the store does).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptomon_tui import redaction
from cryptomon_tui.store.db import ScrubbingConnection

ROW = ("binance", "ticker", "2026-12-07T15:42:01.072Z", 3.067, "http_5xx", 502, "-1001",
       "Internal error; unable to process your request. Please try again.", 0.0003, None)


def per_call(fn: Callable[[str], str], arg: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn(arg)
    return (time.perf_counter() - start) / n * 1e6


def per_row(factory: type[sqlite3.Connection], n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "b.sqlite3", isolation_level=None, factory=factory)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE r (a, b, c, d, e, f, g, h, i, j)")
        start = time.perf_counter()
        for _ in range(n // 500):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO r VALUES (?,?,?,?,?,?,?,?,?,?)", [ROW] * 500)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=40, help="configured secrets (each has ~15 forms)")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    redaction.add_process_secrets([f"bench-secret-{i:04d}-Zq8vN1mB5xC6" for i in range(args.secrets)])
    short = per_call(redaction.scrub, "binance", args.n)
    message = per_call(redaction.scrub, str(ROW[7]), args.n)
    plain = per_row(sqlite3.Connection, args.n)
    scrubbed = per_row(ScrubbingConnection, args.n)
    print(f"secrets {args.secrets}: scrub short {short:.2f} us, error message {message:.2f} us; "
          f"result row plain {plain:.1f} us, scrubbing writer {scrubbed:.1f} us (+{scrubbed - plain:.1f} us)")


if __name__ == "__main__":
    main()
