"""WebSocket stream benchmark (`make bench-ws`, issue 16 items 6 and 7).

(a) CPU per message of the real stream path (``StreamProbe`` + the adapter's ``classify_ws_message``
    + ``StreamTracker`` with sequence, gap and lag bookkeeping) beside a minimal raw client (receive +
    ``json.loads`` only), at 1,000 and 10,000 messages/s over 20 streams (4 per simulated exchange).
    Each client runs in its own process and is measured by its own ``time.process_time`` over a
    window after warm-up; the simulator's publishers run in another process, so their CPU is not
    counted. Runs are interleaved (raw, real, raw, real, ...) and the medians reported, so a busy
    neighbour on the shared machine hits both sides alike. Target: real <= 1.5x raw.
(b) Lag accuracy: the publisher runs with a known clock skew (``skew_ms``) and a ``ws_lag`` fault
    (event times stamped ``ms`` early); the probe gets the skew as its REST clock offset. Each frame
    also carries the publisher's exact send time (an extra field the adapters ignore), so every
    measured lag has its truth: injected lag + (time the probe read the frame - send time).
    Target: median |measured - truth| <= 1 ms.
(c) Stall detection: fresh probes per run against an in-process simulator, ``ws_stall`` injected at a
    random phase; delay from the injection until the tracker's verdict is ``ws_stale`` (polled every
    20 ms), beside the target max(3 s, 3x the stream's p99 gap at the stall).

Library choice (item 6): (a) and (b) run for aiohttp's client (the one in use) and for ``websockets``
(installed for the bench only; skipped when missing) through the same ``WsConnector`` protocol.

    python -m bench.bench_ws [--seconds 6] [--repeats 3] [--rates 1000,10000] [--quick] [--record]

--record appends the figures with the command and date to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from cryptomon_tui.clock import RealClock
from cryptomon_tui.exchanges.registry import adapter_class
from cryptomon_tui.exchanges.ws import StreamSpec, WsEvent
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.streams.probe import AiohttpConnector, Frame, StreamProbe, WsConnection, WsConnector
from cryptomon_tui.streams.tracker import StreamTracker

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {"binance": "binance_spot", "binance_futures": "binance_futures", "bybit": "bybit", "okx": "okx",
            "deribit": "deribit"}
SKEW_MS = 1234.0  # the simulator's clock runs this far ahead; the probes get it as the REST offset
LAG_MS = 250.0  # ws_lag: event times stamped this far before the frame leaves
STAMP_FIELD = "_bench_sent"


# ------------------------------------------------------------------------------- the publisher process
def serve(args: argparse.Namespace) -> None:
    """Run the simulator's stream publishers; print the stream URLs; stop when stdin closes."""
    from cryptomon_tui.simulator import scenario_from_data, server, streams

    if args.stamp:
        class StampingPublisher(streams.StreamPublisher):
            """Adds the exact send time to every data frame (the truth for the lag check)."""

            def _data_frame(self, conn: Any, faults: Any) -> str:
                sent = time.time()
                text = super()._data_frame(conn, faults)
                return f'{text[:-1]},"{STAMP_FIELD}":{sent!r}}}' if text.endswith("}") else text

        server.StreamPublisher = StampingPublisher  # type: ignore[misc]

    faults = [{"exchange": ex, "type": "ws_lag", "ms": LAG_MS} for ex in ADAPTERS] if args.lag else []

    async def main() -> None:
        sim = server.Simulator(scenario_from_data({"name": "bench-ws", "faults": faults}), seed=7,
                               skew_ms=args.skew_ms, enforce_limits=False, precise=False)
        await sim.start()
        print(json.dumps(sim.ws_urls), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes our stdin
        await sim.stop()

    asyncio.run(main())


class Publisher:
    """The publisher subprocess (its CPU is not the client's)."""

    def __init__(self, *, stamp: bool = False, lag: bool = False, skew_ms: float = 0.0) -> None:
        cmd = [sys.executable, "-m", "bench.bench_ws", "serve", "--skew-ms", str(skew_ms)]
        cmd += ["--stamp"] if stamp else []
        cmd += ["--lag"] if lag else []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=_env())
        assert self.proc.stdout is not None
        self.ws_urls: dict[str, str] = json.loads(self.proc.stdout.readline())

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def plan(ws_urls: dict[str, str], streams: int, per_stream_rate: float) -> list[dict[str, Any]]:
    """``streams`` stream specs spread over the five exchanges, each asking for ``per_stream_rate``."""
    out = []
    names = list(ADAPTERS)
    for i in range(streams):
        ex = names[i % len(names)]
        spec = adapter_class(ADAPTERS[ex])().stream_specs(ws_urls[ex])[0]
        sep = "&" if "?" in spec.url else "?"
        out.append({"exchange": ex, "url": f"{spec.url}{sep}rate={per_stream_rate:g}"})
    return out


def spec_for(item: dict[str, Any]) -> tuple[StreamSpec, Any]:
    adapter = adapter_class(ADAPTERS[item["exchange"]])()
    spec = adapter.stream_specs("ws://unused")[0]
    from dataclasses import replace

    return replace(spec, url=item["url"]), adapter.classify_ws_message


# ------------------------------------------------------------------------------- websockets connector
class WebsocketsConnector:
    """``WsConnector`` over the ``websockets`` library (bench only: the library comparison)."""

    async def connect(self, url: str, timeout_s: float, max_frame_bytes: int) -> WsConnection:
        from websockets.asyncio.client import connect

        ws = await asyncio.wait_for(connect(url, max_size=max_frame_bytes, compression=None, ping_interval=None,
                                            open_timeout=timeout_s), timeout_s)
        return _WebsocketsConnection(ws)

    async def aclose(self) -> None:
        return None


class _WebsocketsConnection:
    def __init__(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self._ws = ws
        self._closed_exc = ConnectionClosed

    async def send_str(self, text: str) -> None:
        await self._ws.send(text)

    async def receive(self) -> Frame:
        try:
            data = await self._ws.recv()
        except self._closed_exc as exc:
            rcvd = exc.rcvd
            return Frame("closed", rcvd.reason if rcvd else "", rcvd.code if rcvd else None)
        return Frame("text", data) if isinstance(data, str) else Frame("binary", data)

    async def close(self) -> None:
        await self._ws.close()


# ------------------------------------------------------------------------------- the client process
class Counter:
    def __init__(self) -> None:
        self.n = 0


async def raw_aiohttp(items: list[dict[str, Any]], counter: Counter, parse: bool = False) -> list[asyncio.Task[None]]:
    """The minimal client: receive + ``json.loads``. ``parse``: the adapter's reader and the tracker
    instead of ``json.loads`` (no StreamProbe around them), to show where the real path's cost is."""
    session = aiohttp.ClientSession()

    async def one(item: dict[str, Any]) -> None:
        spec, classify = spec_for(item)
        async with session.ws_connect(spec.url, autoping=True, compress=0, max_msg_size=spec.max_frame_bytes) as ws:
            for text in spec.subscribe:
                await ws.send_str(text)
            loads: Any = json.loads
            if parse:
                tracker = StreamTracker(item["exchange"], spec.name, seq_rule=spec.seq_rule)
                read, frame, mono, wall = classify, tracker.frame, time.monotonic, time.time

                def loads(data: str) -> None:
                    frame(mono(), wall(), read(data), 0.0, 0.0)
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    loads(msg.data)
                    counter.n += 1
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return

    return [asyncio.create_task(one(item)) for item in items]


async def raw_websockets(items: list[dict[str, Any]], counter: Counter) -> list[asyncio.Task[None]]:
    from websockets.asyncio.client import connect

    async def one(item: dict[str, Any]) -> None:
        spec, _ = spec_for(item)
        async with connect(spec.url, max_size=spec.max_frame_bytes, compression=None, ping_interval=None) as ws:
            for text in spec.subscribe:
                await ws.send(text)
            loads = json.loads
            async for data in ws:
                loads(data)
                counter.n += 1

    return [asyncio.create_task(one(item)) for item in items]


@dataclass
class LagRecord:
    measured: list[float]
    truth: list[float]
    delivery: list[float]


class _RecordingTracker(StreamTracker):
    """The real tracker, plus the lag it computed for each frame (read right after it computes it)."""

    record: LagRecord | None = None
    pending_truth: float | None = None

    def _data(self, mono: float, wall: float, event: WsEvent, offset_ms: float | None,
              offset_error_ms: float | None) -> None:
        before = len(self._lags), (self._lags[-1] if self._lags else None)
        super()._data(mono, wall, event, offset_ms, offset_error_ms)
        sent = self.pending_truth
        self.pending_truth = None
        if self.record is None or sent is None or not self._lags:
            return
        if (len(self._lags), self._lags[-1]) == before:
            return
        delivery = (wall - sent) * 1000.0
        self.record.measured.append(self._lags[-1][1])
        self.record.truth.append(LAG_MS + delivery)
        self.record.delivery.append(delivery)


def probes_for(items: list[dict[str, Any]], factory: type[WsConnector] | Any, skew_ms: float,
               record: LagRecord | None = None) -> list[StreamProbe]:
    clock = RealClock()
    probes = []
    for i, item in enumerate(items):
        spec, classify = spec_for(item)
        if record is not None:
            classify = _stamp_reader(classify)
        probe = StreamProbe(item["exchange"], spec, classify, factory(), clock, offset=lambda: (skew_ms, 0.0),
                            rng=random.Random(i))
        if record is not None:
            old = probe.tracker
            tracker = _RecordingTracker(old.exchange, old.stream, seq_rule=old.seq_rule, thresholds=old.thresholds,
                                        bounds=old.bounds)
            tracker.record = record
            probe.tracker = tracker
            classify.tracker = tracker  # type: ignore[attr-defined]
        probes.append(probe)
    return probes


def _stamp_reader(classify: Any) -> Any:
    """Wraps the adapter's reader: pulls the publisher's send time out for the recording tracker."""

    def read(frame: object) -> WsEvent:
        event = classify(frame)
        if event.kind == "data" and isinstance(frame, str):
            at = frame.rfind(f'"{STAMP_FIELD}":')
            if at > 0:
                read.tracker.pending_truth = float(frame[at + len(STAMP_FIELD) + 3:].rstrip("}] "))  # type: ignore[attr-defined]
        return event

    read.tracker = None  # type: ignore[attr-defined]
    return read


def client(args: argparse.Namespace) -> None:
    items = json.loads(args.plan)
    kind: str = args.kind

    async def main() -> dict[str, Any]:
        counter = Counter()
        probes: list[StreamProbe] = []
        tasks: list[asyncio.Task[None]] = []
        record = LagRecord([], [], []) if args.lag else None
        if kind in ("raw-aiohttp", "parse-aiohttp"):
            tasks = await raw_aiohttp(items, counter, parse=kind == "parse-aiohttp")
        elif kind == "raw-websockets":
            tasks = await raw_websockets(items, counter)
        else:
            factory = AiohttpConnector if kind == "probe-aiohttp" else WebsocketsConnector
            probes = probes_for(items, factory, args.skew_ms, record)
            for p in probes:
                p.start()

        def count() -> int:
            return counter.n + sum(p.tracker.messages for p in probes)

        await asyncio.sleep(args.warmup)
        if record is not None:
            record.measured.clear()
            record.truth.clear()
            record.delivery.clear()
        n0, c0, w0, s0 = count(), time.process_time(), time.monotonic(), _switches()
        await asyncio.sleep(args.seconds)
        n1, c1, w1, s1 = count(), time.process_time(), time.monotonic(), _switches()
        out: dict[str, Any] = {"kind": kind, "messages": n1 - n0, "cpu_s": c1 - c0, "wall_s": w1 - w0,
                               "wakeups": s1 - s0,
                               "outcomes": sorted({p.stats().outcome.value for p in probes})}
        if record is not None:
            errors = [m - t for m, t in zip(record.measured, record.truth, strict=True)]
            out["lag"] = {"n": len(errors), "median_error_ms": statistics.median(errors) if errors else None,
                          "p90_abs_error_ms": _q(sorted(abs(e) for e in errors), 0.9),
                          "median_measured_ms": statistics.median(record.measured) if errors else None,
                          "median_truth_ms": statistics.median(record.truth) if errors else None,
                          "delivery_p50_ms": _q(sorted(record.delivery), 0.5),
                          "delivery_p99_ms": _q(sorted(record.delivery), 0.99),
                          "bound_ms": next((s.lag_error_ms for p in probes if (s := p.stats()).lag_error_ms), None)}
        for p in probes:
            await p.stop()
            await p._connector.aclose()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return out

    print(json.dumps(asyncio.run(main())), flush=True)


def _switches() -> int:
    """Voluntary context switches of this process: how often the event loop slept and woke."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, max(0, int(q * len(values) + 0.999999) - 1))]


def run_client(kind: str, items: list[dict[str, Any]], seconds: float, warmup: float, *, lag: bool = False,
               skew_ms: float = 0.0) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_ws", "client", "--kind", kind, "--plan", json.dumps(items),
           "--seconds", str(seconds), "--warmup", str(warmup), "--skew-ms", str(skew_ms)]
    cmd += ["--lag"] if lag else []
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=seconds + warmup + 60)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} client failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ------------------------------------------------------------------------------- (a) CPU per message
def bench_cpu(rates: list[int], streams: int, seconds: float, repeats: int, kinds: list[str]) -> list[dict[str, Any]]:
    rows = []
    pub = Publisher()
    try:
        for rate in rates:
            items = plan(pub.ws_urls, streams, rate / streams)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            for _ in range(repeats):
                for kind in kinds:
                    p0 = pub.cpu_s()
                    result = run_client(kind, items, seconds, 2.0)
                    result["publisher_cpu_s"] = pub.cpu_s() - p0
                    runs[kind].append(result)
            row: dict[str, Any] = {"rate": rate, "streams": streams}
            for kind, results in runs.items():
                us = [r["cpu_s"] / r["messages"] * 1e6 for r in results if r["messages"]]
                row[kind] = {"us_per_msg": statistics.median(us) if us else None, "all_us": [round(u, 1) for u in us],
                             "msgs_per_s": statistics.median(r["messages"] / r["wall_s"] for r in results),
                             "cpu_share": statistics.median(r["cpu_s"] / r["wall_s"] for r in results),
                             "per_wakeup": statistics.median(r["messages"] / max(1, r["wakeups"]) for r in results),
                             "outcomes": sorted({o for r in results for o in r["outcomes"]})}
            rows.append(row)
            print_cpu_row(row, kinds)
    finally:
        pub.close()
    return rows


def print_cpu_row(row: dict[str, Any], kinds: list[str]) -> None:
    print(f"\n{row['rate']:,} msgs/s asked over {row['streams']} streams:")
    for kind in kinds:
        r = row[kind]
        print(f"  {kind:16} {r['us_per_msg']:6.1f} us/msg (runs {r['all_us']}), delivered {r['msgs_per_s']:7.0f}/s, "
              f"{r['cpu_share'] * 100:5.1f} % of a core, {r['per_wakeup']:.1f} msgs per wakeup "
              f"{'outcomes ' + ','.join(r['outcomes']) if r['outcomes'] else ''}")
    for lib in ("aiohttp", "websockets"):
        raw, real = row.get(f"raw-{lib}"), row.get(f"probe-{lib}")
        if raw and real and raw["us_per_msg"] and real["us_per_msg"]:
            ratio = real["us_per_msg"] / raw["us_per_msg"]
            row[f"ratio-{lib}"] = ratio
            verdict = "PASS" if ratio <= 1.5 else "FAIL"
            print(f"  {lib}: real path / raw client = {ratio:.2f}x (target <= 1.5x): {verdict}")


# ------------------------------------------------------------------------------- (b) lag accuracy
def bench_lag(streams: int, rate: int, seconds: float, kinds: list[str]) -> list[dict[str, Any]]:
    rows = []
    pub = Publisher(stamp=True, lag=True, skew_ms=SKEW_MS)
    try:
        items = plan(pub.ws_urls, streams, rate / streams)
        for kind in kinds:
            result = run_client(kind, items, seconds, 2.0, lag=True, skew_ms=SKEW_MS)
            lag = result["lag"]
            lag["kind"], lag["rate"], lag["streams"] = kind, rate, streams
            rows.append(lag)
            ok = lag["median_error_ms"] is not None and abs(lag["median_error_ms"]) <= 1.0
            print(f"  {kind:16} {rate:,} msgs/s: {lag['n']} frames, lag measured {lag['median_measured_ms']:.2f} ms vs "
                  f"truth {lag['median_truth_ms']:.2f} ms; median error {lag['median_error_ms']:+.3f} ms, "
                  f"p90 |error| {lag['p90_abs_error_ms']:.3f} ms (bound shown ±{lag['bound_ms']} ms); "
                  f"delivery p50 {lag['delivery_p50_ms']:.2f} / p99 {lag['delivery_p99_ms']:.2f} ms: "
                  f"{'PASS' if ok else 'FAIL'}")
    finally:
        pub.close()
    return rows


# ------------------------------------------------------------------------------- (c) stall detection
async def _stall_runs(runs: int, rates: list[float]) -> list[dict[str, Any]]:
    from cryptomon_tui.simulator.server import Simulator

    out: list[dict[str, Any]] = []
    rng = random.Random(16)
    async with Simulator(seed=3, enforce_limits=False, precise=False) as sim:
        for run in range(runs):
            items = [{**it, "rate": r} for r in rates for it in plan(sim.ws_urls, len(ADAPTERS), r)]
            probes = probes_for(items, AiohttpConnector, 0.0)
            for p in probes:
                p.start()
            try:
                deadline = time.monotonic() + 20.0
                while time.monotonic() < deadline and not all(len(p.tracker._gaps) >= 40 for p in probes):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # polling the probes' own state is what is measured
                await asyncio.sleep(rng.uniform(0.0, 1.0))  # a random phase against the send ticks
                faults = [sim.inject({"type": "ws_stall", "exchange": ex}) for ex in ADAPTERS]
                t0 = time.monotonic()
                before = [(p.stats(), p.tracker.stale_after()) for p in probes]
                found: dict[int, float] = {}
                exact: dict[int, float] = {}
                while len(found) < len(probes) and time.monotonic() - t0 < 20.0:
                    for i, p in enumerate(probes):
                        if i not in found and (s := p.stats()).outcome is StreamOutcome.WS_STALE:
                            found[i] = time.monotonic() - t0
                            # when the verdict turned: the last message plus the threshold it crossed
                            last = p.tracker._last_data
                            if last is not None:
                                exact[i] = last + s.stale_after_s - t0
                    await asyncio.sleep(0.02)
                for f in faults:
                    sim.remove(f)
                for i, (item, p) in enumerate(zip(items, probes, strict=True)):
                    stats, stale_after = before[i]
                    p99 = (stats.gap_p99_ms or 0.0) / 1000.0
                    target = max(3.0, 3.0 * p99)
                    out.append({"run": run, "exchange": item["exchange"], "rate": item["rate"],
                                "delay_s": found.get(i), "verdict_s": exact.get(i), "p99_gap_s": p99,
                                "target_s": target, "threshold_s": stale_after, "floor_s": p.spec.stale_floor_s})
            finally:
                for p in probes:
                    await p.stop()
                    await p._connector.aclose()
    return out


def bench_stall(runs: int, rates: list[float]) -> list[dict[str, Any]]:
    rows = asyncio.run(_stall_runs(runs, rates))
    print(f"\nstall detection ({runs} runs x {len(rows) // max(runs, 1)} streams; from the ws_stall injection to the "
          "moment the tracker's verdict turns ws_stale (last message + threshold), and to the 20 ms poll seeing it):")
    by: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["exchange"], r["rate"]), []).append(r)
    for (ex, rate), rs in by.items():
        delays = [r["delay_s"] for r in rs if r["delay_s"] is not None]
        verdicts = [r["verdict_s"] for r in rs if r["verdict_s"] is not None]
        missed = len(rs) - len(delays)
        target = max(r["target_s"] for r in rs)
        floor = rs[0]["floor_s"]
        worst = max(verdicts) if verdicts else float("inf")
        verdict = "PASS" if not missed and worst <= target else ("over target: spec floor" if floor > 3.0 else "FAIL")
        print(f"  {ex:16} {rate:4g} msg/s: verdict after min {min(verdicts, default=0):.3f} median "
              f"{statistics.median(verdicts) if verdicts else 0:.3f} max {worst:.3f} s (seen by the 20 ms poll "
              f"after max {max(delays, default=0):.2f} s); p99 gap "
              f"{max(r['p99_gap_s'] for r in rs) * 1000:.0f} ms; target {target:.1f} s; spec floor {floor:g} s; "
              f"missed {missed}: {verdict}")
    return rows


# ------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("--stamp", action="store_true")
    s.add_argument("--lag", action="store_true")
    s.add_argument("--skew-ms", type=float, default=0.0)
    c = sub.add_parser("client")
    c.add_argument("--kind", required=True)
    c.add_argument("--plan", required=True)
    c.add_argument("--seconds", type=float, default=6.0)
    c.add_argument("--warmup", type=float, default=2.0)
    c.add_argument("--skew-ms", type=float, default=0.0)
    c.add_argument("--lag", action="store_true")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured window per client run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per client kind and rate")
    parser.add_argument("--rates", default="1000,10000", help="total messages/s asked of the publishers")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--stall-runs", type=int, default=4)
    parser.add_argument("--only", choices=("cpu", "lag", "stall"), default=None)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 3 s windows, 2 stall runs")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args()
    if args.cmd == "serve":
        serve(args)
        return
    if args.cmd == "client":
        client(args)
        return
    if args.quick:
        args.repeats, args.seconds, args.stall_runs = 1, 3.0, 2
    try:
        import websockets  # noqa: F401

        libs = ["aiohttp", "websockets"]
    except ImportError:
        print("websockets not installed: aiohttp only (pip install websockets for the library comparison)")
        libs = ["aiohttp"]
    kinds = ["raw-aiohttp", "parse-aiohttp", "probe-aiohttp"] + (["raw-websockets", "probe-websockets"]
                                                                 if "websockets" in libs else [])
    rates = [int(r) for r in args.rates.split(",") if r]
    started = dt.datetime.now(dt.UTC)
    cpu_rows: list[dict[str, Any]] = []
    lag_rows: list[dict[str, Any]] = []
    stall_rows: list[dict[str, Any]] = []
    if args.only in (None, "cpu"):
        print(f"(a) CPU per message, client process only ({args.repeats} interleaved runs of {args.seconds:g} s)")
        cpu_rows = bench_cpu(rates, args.streams, args.seconds, args.repeats, kinds)
    if args.only in (None, "lag"):
        print(f"\n(b) lag accuracy: skew {SKEW_MS:g} ms given as the REST offset, ws_lag {LAG_MS:g} ms injected")
        for rate in rates:
            lag_rows += bench_lag(args.streams, rate, args.seconds, [k for k in kinds if k.startswith("probe-")])
    if args.only in (None, "stall"):
        stall_rows = bench_stall(args.stall_runs, [20.0, 5.0])
    if args.record:
        record(" ".join(["python -m bench.bench_ws", *sys.argv[1:]]), started, cpu_rows, lag_rows, stall_rows, kinds)


def record(command: str, started: dt.datetime, cpu_rows: list[dict[str, Any]], lag_rows: list[dict[str, Any]],
           stall_rows: list[dict[str, Any]], kinds: list[str]) -> None:
    lines = [f"\n### bench-ws run {started:%Y-%m-%d %H:%M} UTC: `{command}` (load {os.getloadavg()[0]:.1f})\n"]
    if cpu_rows:
        head = " | ".join(kinds)
        lines.append(f"| msgs/s asked (20 streams) | {head} | real/raw aiohttp | real/raw websockets |")
        lines.append("|---" * (len(kinds) + 3) + "|")
        for row in cpu_rows:
            cells = [f"{row[k]['us_per_msg']:.1f} us ({row[k]['msgs_per_s']:.0f}/s)" for k in kinds]
            ratios = [f"{row[f'ratio-{lib}']:.2f}x" if f"ratio-{lib}" in row else "-"
                      for lib in ("aiohttp", "websockets")]
            lines.append(f"| {row['rate']:,} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    if lag_rows:
        lines.append("\n| lag: client | msgs/s | frames | median measured | median truth | median error "
                     "| p90 abs error | delivery p50/p99 |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for r in lag_rows:
            lines.append(f"| {r['kind']} | {r['rate']:,} | {r['n']} | {r['median_measured_ms']:.2f} ms | "
                         f"{r['median_truth_ms']:.2f} ms | {r['median_error_ms']:+.3f} ms | "
                         f"{r['p90_abs_error_ms']:.3f} ms | {r['delivery_p50_ms']:.2f}/{r['delivery_p99_ms']:.2f} ms |")
    if stall_rows:
        lines.append("\n| stall: exchange | msg/s | runs | verdict after min/median/max | seen by a 20 ms poll (max) "
                     "| p99 gap | target | spec floor |")
        lines.append("|---|---|---|---|---|---|---|---|")
        by: dict[tuple[str, float], list[dict[str, Any]]] = {}
        for r in stall_rows:
            by.setdefault((r["exchange"], r["rate"]), []).append(r)
        for (ex, rate), rs in by.items():
            d = [r["delay_s"] for r in rs if r["delay_s"] is not None]
            v = [r["verdict_s"] for r in rs if r["verdict_s"] is not None]
            lines.append(f"| {ex} | {rate:g} | {len(rs)} (missed {len(rs) - len(d)}) | {min(v, default=0):.3f}/"
                         f"{statistics.median(v) if v else 0:.3f}/{max(v, default=0):.3f} s | "
                         f"{max(d, default=0):.2f} s | "
                         f"{max(r['p99_gap_s'] for r in rs) * 1000:.0f} ms | {max(r['target_s'] for r in rs):.1f} s | "
                         f"{rs[0]['floor_s']:g} s |")
    path = ROOT / "bench" / "RESULTS.md"
    with path.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"\nrecorded in {path}")


if __name__ == "__main__":
    main()
