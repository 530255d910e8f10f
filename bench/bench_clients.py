"""Control API clients against the daemon's timing (``make bench-clients``); figures for bench/RESULTS.md.

What the tests prove without a clock (stalled clients stay attached with bounded queues or are cut off at
their event backlog, the probes go on, a reading client is answered) this measures, on a quiet machine:

1. the real daemon probing the simulator, four control clients that stopped reading: the probes' schedule
   lag (from --probes-jsonl) and the engine's own lag, without / with them, and a ping + snapshot beside
   them. Targets: p50 at most +20 ms, p99 at most max(3x, +100 ms) of the same run's baseline, the round
   trip under 1 s;
2. the daemon runner around a fake engine in an event storm (4000 events/s of ~1 kB) with one client that
   stopped reading: the daemon's event-loop lag maximum until that client is cut off. Target: < 100 ms.

    python -m bench.bench_clients            # both, prints the figures and PASS/MISS per target
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from tests.fakes.daemon_harness import daemon_process, free_port, real_daemon
from tests.integration.test_daemon_api_process import metric
from tests.integration.test_daemon_real_clients import (
    HEALTHY,
    http_json,
    measure_window,
    metric_value,
    stalled_connection,
    unread_bytes,
    until,
)


async def stalled_clients(work: Path, socket_dir: Path) -> dict[str, object]:
    with real_daemon(work, socket_dir, exchanges=("binance", *HEALTHY), extra={"probing": {"jitter": 0}}) as daemon:
        snap = await http_json(daemon.http_url + "/api/v1/snapshot")
        intervals = {(n, p): float(v) for n in HEALTHY for p, v in snap["exchanges"][n]["intervals"].items()}
        await until(lambda: len(daemon.probe_rows()) >= 20 and daemon.events(), 20, "a warmed-up daemon")
        baseline = await measure_window(daemon, intervals, 36)
        stalled = [stalled_connection(daemon.socket_path) for _ in range(4)]
        try:
            await until(lambda: all(unread_bytes(s) > 0 for s in stalled), 5, "data queued for stalled clients")
            during = await measure_window(daemon, intervals, 36)
            async with DaemonClient(daemon.address, client_name="prompt", reconnect=False) as prompt:
                sent = time.perf_counter()
                await prompt.ping()
                await prompt.request("snapshot")
                round_trip_ms = (time.perf_counter() - sent) * 1000
            attached = await metric_value(daemon.http_url, "cryptomon_control_clients")
        finally:
            for s in stalled:
                s.close()
    checks = {
        "p50": during["p50"] <= baseline["p50"] + 20.0,
        "p99": during["p99"] <= max(3 * baseline["p99"], baseline["p99"] + 100.0),
        "engine_p99": during["engine_p99"] <= max(3 * baseline["engine_p99"], baseline["engine_p99"] + 100.0),
        "round_trip": round_trip_ms < 1000.0,
    }
    return {"baseline": baseline, "during": during, "round_trip_ms": round(round_trip_ms, 1),
            "attached": attached, "checks": checks}


async def event_storm(work: Path, socket_dir: Path) -> dict[str, object]:
    socket_path = socket_dir / "storm.sock"
    port = free_port()
    config = work / "storm.yaml"
    config.write_text(yaml.safe_dump({
        "exchanges": {"binance": {"interval": "5s"}, "okx": {}},
        "daemon": {"location": "bench", "http": {"port": port},
                   "control": {"socket_path": str(socket_path), "max_event_backlog": 2000}},
    }))
    url = f"http://127.0.0.1:{port}"
    with daemon_process(config, url, ["--event-rate", "4000"]):
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "client": "stalled"}).encode() + b"\n")
        writer.write(b'{"type":"request","id":1,"method":"subscribe","params":{"events":true,"snapshot_hz":4}}\n')
        await writer.drain()
        await reader.readline()
        started = time.perf_counter()

        async def cut_off() -> bool:
            return await metric(url, "cryptomon_control_clients") == 0

        await until(cut_off, 30, "the stalled client cut off")
        cut_after_s = time.perf_counter() - started
        lag_max_ms = await metric(url, "cryptomon_event_loop_lag_max_seconds") * 1000
        writer.close()
    return {"lag_max_ms": round(lag_max_ms, 1), "cut_off_after_s": round(cut_after_s, 2),
            "checks": {"loop_lag": lag_max_ms < 100.0}}


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="bench_clients", description=__doc__).parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cm-bench-clients-"))
    socket_dir = Path(tempfile.mkdtemp(prefix="cmb-", dir="/tmp"))  # short: unix socket paths are limited
    try:
        stalled = asyncio.run(stalled_clients(work / "stalled", socket_dir))
        storm = asyncio.run(event_storm(work, socket_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(socket_dir, ignore_errors=True)
    b, d = stalled["baseline"], stalled["during"]
    assert isinstance(b, dict) and isinstance(d, dict)
    print(f"bench-clients {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, python {sys.version.split()[0]}")
    print(f"probe schedule lag (ms) without / with 4 stalled clients: p50 {b['p50']:.2f} / {d['p50']:.2f}, "
          f"p99 {b['p99']:.2f} / {d['p99']:.2f}, max {b['max']:.2f} / {d['max']:.2f} (n={b['n']:.0f}/{d['n']:.0f}); "
          f"engine's own lag p99 {b['engine_p99']:.2f} / {d['engine_p99']:.2f}; ping+snapshot beside them "
          f"{stalled['round_trip_ms']} ms; clients attached {stalled['attached']:.0f}")
    print(f"event storm 4000/s with a stalled client: loop lag max {storm['lag_max_ms']} ms, "
          f"cut off after {storm['cut_off_after_s']} s")
    checks = {**stalled["checks"], **storm["checks"]}  # type: ignore[dict-item]
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'MISS'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
