"""bench-probe: how exactly and how cheaply cryptomon probes, beside a raw floor and blackbox_exporter.

    python -m bench.bench_probe [--quick] [--record] [--only accuracy,cost,scale,choice]

(a) accuracy: a loopback server (own process) answers exactly 50 ms after a request arrives; we report
    measured - 50 ms (median, p99) for cryptomon's transport and a minimal raw-asyncio client (the floor),
    interleaved in blocks in the same run; then 50 requests in flight, with a pool smaller than that, to
    show the pool wait is measured and left out of the latency.
(b) cost: process CPU per probe while the real ProbeRunner probes at 200 probes/s, beside Prometheus
    blackbox_exporter driven at the same rate against the same endpoint (its CPU from /proc/<pid>/stat).
(c) scale: the most endpoints at a 1 s interval with a schedule-lag p99 under 50 ms, this process pinned
    to one core (the server pinned to the other).
choice: the transport candidates (raw floor, aiohttp as cryptomon uses it, httpx, httpx over
    httpx-aiohttp) side by side: accuracy at 4 in flight and CPU per request at 200 req/s.

The machine is shared and noisy: compare the ratios inside one run, not absolute microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import heapq
import json
import logging
import os
import platform
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

DELAY_MS = 50.0
RESULTS = Path(__file__).with_name("RESULTS.md")
START_MARK = "<!-- bench-probe:start -->"
END_MARK = "<!-- bench-probe:end -->"


# ================================================================ the 50 ms server (own process)
class _Timer(threading.Thread):
    """Fires callbacks at exact perf_counter deadlines (nanosleep precision, unlike epoll's 1 ms)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(daemon=True)
        self.loop = loop
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.cond = threading.Condition()
        self.seq = 0

    def at(self, deadline: float, fn: Callable[[], None]) -> None:
        with self.cond:
            self.seq += 1
            heapq.heappush(self.heap, (deadline, self.seq, fn))
            self.cond.notify()

    def run(self) -> None:
        while True:
            with self.cond:
                while not self.heap:
                    self.cond.wait()
                deadline = self.heap[0][0]
                now = time.perf_counter()
                if deadline > now + 0.0002:
                    self.cond.wait(deadline - now - 0.0002)
                    continue
                due = []
                while self.heap and self.heap[0][0] <= now + 0.0002:
                    due.append(heapq.heappop(self.heap))
            for when, _, fn in due:
                while time.perf_counter() < when:  # at most 200 us of spinning
                    pass
                self.loop.call_soon_threadsafe(fn)


_BODY = b'{"ok":true,"serverTime":0}'
_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
             b"Connection: keep-alive\r\n\r\n" % len(_BODY)) + _BODY


async def _serve(port: int, delay_ms: float) -> None:
    loop = asyncio.get_running_loop()
    timer = _Timer(loop)
    timer.start()
    delay = delay_ms / 1000

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: asyncio.Transport = transport  # type: ignore[assignment]
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            arrived = time.perf_counter()
            self.buf += data
            while (i := self.buf.find(b"\r\n\r\n")) >= 0:
                self.buf = self.buf[i + 4:]
                timer.at(arrived + delay, self._respond)

        def _respond(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(_RESPONSE)

    server = await loop.create_server(Proto, "127.0.0.1", port, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


class ServerProcess:
    def __init__(self, delay_ms: float = DELAY_MS, cpu: int | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.bench_probe", "--serve", "--delay-ms",
                                      str(delay_ms)], stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[1])
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        if cpu is not None:
            os.sched_setaffinity(self.proc.pid, {cpu})
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


# ================================================================ clients
class RawClient:
    """The floor: asyncio streams, hand-written HTTP/1.1, keep-alive, timer around write..read."""

    name = "raw asyncio (floor)"

    def __init__(self, url: str) -> None:
        m = re.match(r"http://([^:/]+):(\d+)(/.*)?", url)
        assert m
        self.host, self.port, self.path = m.group(1), int(m.group(2)), m.group(3) or "/"
        self.req = f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: raw\r\n\r\n".encode()
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def probe(self) -> tuple[float, float]:
        conn = self.free.pop() if self.free else await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        t0 = time.perf_counter_ns()
        writer.write(self.req)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        t1 = time.perf_counter_ns()
        self.free.append(conn)
        return (t1 - t0) / 1e6, 0.0

    async def close(self) -> None:
        for _, w in self.free:
            w.close()


class CryptomonClient:
    """cryptomon's own transport (aiohttp, trace hooks, pool wait left out)."""

    name = "cryptomon (aiohttp transport)"

    def __init__(self, url: str, max_connections: int = 64) -> None:
        from cryptomon_tui.probing.transport import AiohttpTransport, TransportOptions, TransportRequest

        self.transport = AiohttpTransport("bench", TransportOptions(max_connections=max_connections))
        self.request = TransportRequest("GET", url, 10.0)

    async def probe(self) -> tuple[float, float]:
        r = await self.transport.send(self.request)
        if r.latency_ms is None or r.error is not None:
            raise RuntimeError(f"probe failed: {r.error} {r.error_message}")
        return r.latency_ms, r.pool_wait_ms

    async def close(self) -> None:
        await self.transport.aclose()


class HttpxClient:
    """httpx.AsyncClient, timer around the call (what a plain httpx prober measures)."""

    name = "httpx AsyncClient"

    def __init__(self, url: str, max_connections: int = 64, aiohttp_transport: bool = False) -> None:
        import httpx

        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        if aiohttp_transport:
            from httpx_aiohttp import HttpxAiohttpClient

            self.client: httpx.AsyncClient = HttpxAiohttpClient(limits=limits, timeout=10)
            self.name = "httpx over httpx-aiohttp"
        else:
            self.client = httpx.AsyncClient(limits=limits, timeout=10)
        self.url = url

    async def probe(self) -> tuple[float, float]:
        t0 = time.perf_counter_ns()
        r = await self.client.get(self.url)
        await r.aread()
        t1 = time.perf_counter_ns()
        r.raise_for_status()
        return (t1 - t0) / 1e6, 0.0

    async def close(self) -> None:
        await self.client.aclose()


def _httpx_aiohttp_available() -> bool:
    try:
        import httpx_aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


# ================================================================ helpers
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def cpu_self_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_pid_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


async def run_concurrent(probe: Callable[[], Awaitable[tuple[float, float]]], total: int,
                         in_flight: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    remaining = [total]

    async def loop() -> None:
        while remaining[0] > 0:
            remaining[0] -= 1
            out.append(await probe())

    await asyncio.gather(*(loop() for _ in range(in_flight)))
    return out


async def drive_rate(probe: Callable[[], Awaitable[Any]], rate: float, duration: float) -> int:
    """Start ``probe`` ``rate`` times a second for ``duration`` s (open loop); returns completed count."""
    loop = asyncio.get_running_loop()
    interval = 1 / rate
    start = loop.time()
    n = 0
    done = 0
    tasks: set[asyncio.Task[Any]] = set()

    def finished(t: asyncio.Task[Any]) -> None:
        nonlocal done
        tasks.discard(t)
        if not t.cancelled() and t.exception() is None:
            done += 1

    while True:
        due = start + n * interval
        if due - start >= duration:
            break
        now = loop.time()
        if due > now:
            await asyncio.sleep(due - now)
        t = asyncio.create_task(probe())
        tasks.add(t)
        t.add_done_callback(finished)
        n += 1
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    return done


def summary(errors_ms: list[float]) -> dict[str, float]:
    return {"median": statistics.median(errors_ms), "p99": pct(errors_ms, 0.99), "n": len(errors_ms)}


# ================================================================ (a) accuracy
async def bench_accuracy(url: str, total: int, in_flight: int = 4, block: int = 25) -> dict[str, Any]:
    clients: list[Any] = [RawClient(url), CryptomonClient(url)]
    samples: dict[str, list[float]] = {c.name: [] for c in clients}
    for c in clients:
        await run_concurrent(c.probe, 20, in_flight)  # warm-up: connections open
    done = 0
    while done < total:
        n = min(block, total - done)
        for c in clients:
            res = await run_concurrent(c.probe, n, in_flight)
            samples[c.name].extend(lat - DELAY_MS for lat, _ in res)
        done += n
    for c in clients:
        await c.close()
    return {"in_flight": in_flight, "clients": {name: summary(v) for name, v in samples.items()}}


async def bench_in_flight(url: str, total: int, in_flight: int = 50, pool: int = 8) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    cases: list[tuple[str, Any]] = [
        ("raw asyncio (floor), 50 connections", RawClient(url)),
        (f"cryptomon, pool of {pool} (waits measured, left out)", CryptomonClient(url, max_connections=pool)),
        ("cryptomon, pool of 50", CryptomonClient(url, max_connections=50)),
        (f"httpx, pool of {pool}, timer around the call", HttpxClient(url, max_connections=pool)),
    ]
    for label, client in cases:
        await run_concurrent(client.probe, in_flight * 2, in_flight)
        res = await run_concurrent(client.probe, total, in_flight)
        row = summary([lat - DELAY_MS for lat, _ in res])
        waits = [w for _, w in res]
        row["pool_wait_median"] = statistics.median(waits)
        row["pool_wait_p99"] = pct(waits, 0.99)
        rows[label] = row
        await client.close()
    return {"in_flight": in_flight, "clients": rows}


# ================================================================ transport choice
async def bench_choice(url: str, total: int, cost_s: float) -> dict[str, Any]:
    makers: list[Callable[[], Any]] = [lambda: RawClient(url), lambda: CryptomonClient(url), lambda: HttpxClient(url)]
    if _httpx_aiohttp_available():
        makers.append(lambda: HttpxClient(url, aiohttp_transport=True))
    out: dict[str, Any] = {}
    for make in makers:
        client = make()
        await run_concurrent(client.probe, 20, 4)
        res = await run_concurrent(client.probe, total, 4)
        row = summary([lat - DELAY_MS for lat, _ in res])
        c0 = cpu_self_s()
        done = await drive_rate(client.probe, 200, cost_s)
        row["cpu_us_per_req"] = (cpu_self_s() - c0) / max(done, 1) * 1e6
        out[client.name] = row
        await client.close()
    return out


# ================================================================ (b) cost
def _engine_config(url: str, endpoints: int, interval: str) -> Any:
    from cryptomon_tui.config.root import Config

    return Config.model_validate({
        "exchanges": {f"ep{i}": {"kind": "generic", "url": f"{url}/ep/{i}", "interval": interval, "timeout": "5s"}
                      for i in range(endpoints)},
        "probing": {"budget_share": 1.0},
    })


async def bench_engine_cost(url: str, duration: float, rate: int = 200) -> dict[str, Any]:
    from cryptomon_tui.probing.runner import ProbeRunner

    endpoints = 50
    interval_s = endpoints / rate
    engine = ProbeRunner(_engine_config(url, endpoints, f"{interval_s}s"))
    counts = {"n": 0, "ok": 0}

    def on_result(r: Any) -> None:
        counts["n"] += 1
        counts["ok"] += r.ok

    engine.subscribe_results(on_result)
    await engine.start()
    gc.freeze()  # as the daemon does after start
    await asyncio.sleep(3)  # warm-up: every connection open
    n0, c0, t0 = counts["n"], cpu_self_s(), time.perf_counter()
    await asyncio.sleep(duration)
    n1, c1, t1 = counts["n"], cpu_self_s(), time.perf_counter()
    await engine.stop()
    probes = n1 - n0
    return {"probes": probes, "rate": probes / (t1 - t0), "cpu_us_per_probe": (c1 - c0) / max(probes, 1) * 1e6,
            "ok_share": counts["ok"] / max(counts["n"], 1)}


async def bench_blackbox(url: str, duration: float, rate: int = 200) -> dict[str, Any] | None:
    exe = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if exe is None:
        return None
    import aiohttp

    tmp = Path(tempfile.mkdtemp(prefix="bench-bbx-"))
    cfg = tmp / "blackbox.yml"
    cfg.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n"
                   "      preferred_ip_protocol: ip4\n      method: GET\n")
    proc, port = _start_blackbox(exe, cfg)
    try:
        probe_url = f"http://127.0.0.1:{port}/probe?target={url}/bbx&module=http_2xx"
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            for _ in range(100):
                try:
                    async with session.get(probe_url) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            success = {"ok": 0, "n": 0}

            async def probe() -> None:
                async with session.get(probe_url) as r:
                    text = await r.text()
                success["n"] += 1
                success["ok"] += "probe_success 1" in text

            await drive_rate(probe, rate, 2)  # warm-up
            c0, t0 = cpu_pid_s(proc.pid), time.perf_counter()
            done = await drive_rate(probe, rate, duration)
            c1, t1 = cpu_pid_s(proc.pid), time.perf_counter()
        return {"probes": done, "rate": done / (t1 - t0), "cpu_us_per_probe": (c1 - c0) / max(done, 1) * 1e6,
                "ok_share": success["ok"] / max(success["n"], 1), "version": _bbx_version(exe)}
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _start_blackbox(exe: str, cfg: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def _bbx_version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5)
        m = re.search(r"version (\S+)", out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# ================================================================ (c) scale
async def scale_step(url: str, endpoints: int, measure_s: float) -> dict[str, Any]:
    from cryptomon_tui.probing.runner import ProbeRunner

    lags: list[tuple[float, float]] = []
    engine = ProbeRunner(_engine_config(url, endpoints, "1s"),
                    lag_hook=lambda ex, probe, lag: lags.append((time.perf_counter(), lag)))
    ok = {"n": 0, "ok": 0}

    def on_result(r: Any) -> None:
        ok["n"] += 1
        ok["ok"] += r.ok

    engine.subscribe_results(on_result)
    await engine.start()
    await asyncio.sleep(3)
    t0 = time.perf_counter()
    await asyncio.sleep(measure_s)
    t1 = time.perf_counter()
    await engine.stop()
    window = [lag for t, lag in lags if t0 <= t <= t1]
    return {"endpoints": endpoints, "sends": len(window), "rate": len(window) / (t1 - t0),
            "lag_p50_ms": statistics.median(window) if window else None,
            "lag_p99_ms": pct(window, 0.99) if window else None, "ok_share": ok["ok"] / max(ok["n"], 1)}


async def bench_scale(url: str, steps: list[int], measure_s: float) -> dict[str, Any]:
    rows = []
    best = 0
    for n in steps:
        row = await scale_step(url, n, measure_s)
        rows.append(row)
        print(f"  scale: {n} endpoints -> {row['rate']:.0f} sends/s, lag p50 {row['lag_p50_ms']:.2f} ms, "
              f"p99 {row['lag_p99_ms']:.2f} ms, ok {row['ok_share']:.1%}", flush=True)
        if row["lag_p99_ms"] is None or row["lag_p99_ms"] >= 50 or row["rate"] < 0.9 * n:
            break
        best = n
    return {"steps": rows, "max_endpoints": best}


# ================================================================ report
def load_note() -> str:
    try:
        load1, load5, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load average {load1:.2f} (1 min) / {load5:.2f} (5 min) on {os.cpu_count()} CPUs at start"


def render(res: dict[str, Any]) -> str:
    lines = [f"### bench-probe, {res['date']}", "", f"Command: {res['command']}  ", f"Machine: {res['machine']}; "
             f"{res['load']}. Python {platform.python_version()}.", ""]
    if "accuracy" in res:
        acc = res["accuracy"]
        lines += [f"**(a) accuracy**: measured - 50 ms, {acc['in_flight']} in flight, interleaved blocks of 25", "",
                  "| client | n | median | p99 |", "|---|---|---|---|"]
        for name, r in acc["clients"].items():
            lines.append(f"| {name} | {r['n']} | {r['median']:.3f} ms | {r['p99']:.3f} ms |")
        raw, ours = acc["clients"]["raw asyncio (floor)"], acc["clients"]["cryptomon (aiohttp transport)"]
        dm, dp = ours["median"] - raw["median"], ours["p99"] - raw["p99"]
        lines += ["", f"cryptomon - floor: median {dm:+.3f} ms (target <= 0.5), p99 {dp:+.3f} ms (target <= 2) -> "
                  f"{'PASS' if dm <= 0.5 and dp <= 2 else 'FAIL'}", ""]
    if "accuracy4" in res:
        acc = res["accuracy4"]
        lines += [f"**(a) accuracy with {acc['in_flight']} in flight** (the loop is busier: responses that arrive "
                  "while it runs another probe's code wait for it)", "",
                  "| client | n | median | p99 |", "|---|---|---|---|"]
        for name, r in acc["clients"].items():
            lines.append(f"| {name} | {r['n']} | {r['median']:.3f} ms | {r['p99']:.3f} ms |")
        lines.append("")
    if "in_flight" in res:
        inf = res["in_flight"]
        lines += [f"**(a') {inf['in_flight']} requests in flight**", "",
                  "| client | median | p99 | pool wait median / p99 |", "|---|---|---|---|"]
        for name, r in inf["clients"].items():
            lines.append(f"| {name} | {r['median']:.3f} ms | {r['p99']:.3f} ms | "
                         f"{r['pool_wait_median']:.1f} / {r['pool_wait_p99']:.1f} ms |")
        lines.append("")
    if "cost" in res:
        cost = res["cost"]
        ours = cost["cryptomon"]
        lines += ["**(b) cost**: process CPU per probe at 200 probes/s", "",
                  "| prober | probes | achieved rate | CPU per probe | ok |", "|---|---|---|---|---|",
                  f"| cryptomon ProbeRunner (50 endpoints x 250 ms) | {ours['probes']} | {ours['rate']:.0f}/s | "
                  f"{ours['cpu_us_per_probe']:.0f} us | {ours['ok_share']:.1%} |"]
        bbx = cost.get("blackbox")
        if bbx:
            ratio = ours["cpu_us_per_probe"] / bbx["cpu_us_per_probe"]
            lines += [f"| blackbox_exporter {bbx['version']} (/probe, http_2xx) | {bbx['probes']} | "
                      f"{bbx['rate']:.0f}/s | {bbx['cpu_us_per_probe']:.0f} us | {bbx['ok_share']:.1%} |", "",
                      f"ratio cryptomon / blackbox_exporter = {ratio:.2f} (target <= 0.5) -> "
                      f"{'PASS' if ratio <= 0.5 else 'FAIL'}"]
        else:
            lines += ["", "blackbox_exporter not installed: ratio not measured"]
        lines.append("")
    if "scale" in res:
        sc = res["scale"]
        lines += ["**(c) scale**: endpoints at a 1 s interval, this process pinned to one core", "",
                  "| endpoints | sends/s | lag p50 | lag p99 | ok |", "|---|---|---|---|---|"]
        for r in sc["steps"]:
            lines.append(f"| {r['endpoints']} | {r['rate']:.0f} | {r['lag_p50_ms']:.2f} ms | {r['lag_p99_ms']:.2f} ms "
                         f"| {r['ok_share']:.1%} |")
        lines += ["", f"most endpoints with lag p99 < 50 ms: {sc['max_endpoints']} (target >= 500) -> "
                  f"{'PASS' if sc['max_endpoints'] >= 500 else 'FAIL'}", ""]
    if "choice" in res:
        lines += ["**transport choice**: 4 in flight (measured - 50 ms) and CPU per request at 200 req/s", "",
                  "| client | median | p99 | CPU per request |", "|---|---|---|---|"]
        for name, r in res["choice"].items():
            lines.append(f"| {name} | {r['median']:.3f} ms | {r['p99']:.3f} ms | {r['cpu_us_per_req']:.0f} us |")
        lines.append("")
    return "\n".join(lines)


def record(text: str) -> None:
    """Put the figures between the bench-probe markers of bench/RESULTS.md (other sections untouched)."""
    current = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START_MARK}\n{text}\n{END_MARK}"
    if START_MARK in current and END_MARK in current:
        head, rest = current.split(START_MARK, 1)
        _, tail = rest.split(END_MARK, 1)
        current = head + block + tail
    else:
        current = current.rstrip("\n") + "\n\n## Probe engine (make bench-probe)\n\n" + block + "\n"
    RESULTS.write_text(current, encoding="utf-8")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    only = set(args.only.split(",")) if args.only else {"accuracy", "cost", "scale", "choice"}
    res: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.bench_probe " + " ".join(sys.argv[1:]) + "  (what `make bench-probe"
                   + (f" ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else "") + "` runs)",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "load": load_note(),
    }
    gc.freeze()  # as the daemon does after start: long-lived objects out of full collections
    cpus = sorted(os.sched_getaffinity(0))
    server = ServerProcess(cpu=cpus[-1] if "scale" in only and len(cpus) > 1 else None)
    try:
        if "accuracy" in only:
            print("(a) accuracy ...", flush=True)
            res["accuracy"] = await bench_accuracy(server.url + "/acc", 200 if quick else 2000, in_flight=1)
            res["accuracy4"] = await bench_accuracy(server.url + "/acc4", 200 if quick else 2000, in_flight=4)
            res["in_flight"] = await bench_in_flight(server.url + "/inflight", 200 if quick else 1000)
        if "cost" in only:
            duration = 5.0 if quick else 60.0
            print(f"(b) cost, {duration:g} s each ...", flush=True)
            res["cost"] = {"cryptomon": await bench_engine_cost(server.url, duration),
                           "blackbox": await bench_blackbox(server.url, duration)}
        if "choice" in only:
            print("transport choice ...", flush=True)
            res["choice"] = await bench_choice(server.url + "/choice", 200 if quick else 1000, 3.0 if quick else 10.0)
        if "scale" in only:
            print("(c) scale ...", flush=True)
            if len(cpus) > 1:
                os.sched_setaffinity(0, {cpus[0]})
            steps = [100, 500] if quick else [250, 500, 750, 1000, 1500, 2000, 3000, 4000]
            res["scale"] = await bench_scale(server.url, steps, 3.0 if quick else 10.0)
            os.sched_setaffinity(0, set(cpus))
    finally:
        server.close()
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_probe", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short smoke run (seconds, not minutes)")
    p.add_argument("--only", help="comma list of: accuracy, cost, scale, choice")
    p.add_argument("--record", action="store_true", help="write the figures into bench/RESULTS.md")
    p.add_argument("--json", metavar="PATH", help="also dump raw figures as JSON")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--delay-ms", type=float, default=DELAY_MS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(0, args.delay_ms))
        return 0
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    random.seed(1)
    res = asyncio.run(main_async(args))
    text = render(res)
    print()
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    if args.record:
        record(text)
        print(f"\nrecorded in {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
