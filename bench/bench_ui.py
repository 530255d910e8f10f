"""UI benchmark (`make bench-ui`): what the Textual monitor costs and whether it skews measurements.

1. CPU share and RSS of the UI process of `cryptomon demo` in a 120x40 tmux pane over N seconds
   (default 60): the built-in demo (5 simulated exchanges), and a config with ~100 endpoints.
   The daemon's CPU is reported beside it (it runs in its own process).
2. Key press to updated screen: `f` (freeze) toggles the FROZEN badge; time from `tmux send-keys`
   until `capture-pane` shows the change (includes tmux's own latency, so it is an upper bound).
3. Latency measurement error: a loopback server answers exactly 50 ms after each request; a
   headless `cryptomon daemon` probes it (generic target) and writes every result with
   --probes-jsonl; median/p99 of (latency - 50 ms), without and with a UI attached.

    python -m bench.bench_ui [--seconds 60] [--quick] [--record]

--record appends the figures with the command and date to bench/RESULTS.md (UI section).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
KINDS = ("binance_spot", "binance_futures", "bybit", "okx", "deribit")


# ------------------------------------------------------------------------------------------ /proc
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int(p.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def sample(pids: dict[str, int], seconds: float) -> dict[str, dict[str, float]]:
    start = {k: cpu_seconds(p) for k, p in pids.items()}
    peak = {k: rss_mb(p) for k, p in pids.items()}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(1.0)
        for k, p in pids.items():
            peak[k] = max(peak[k], rss_mb(p))
    wall = time.monotonic() - t0
    return {k: {"cpu_pct": 100 * (cpu_seconds(p) - start[k]) / wall, "rss_mb": peak[k]} for k, p in pids.items()}


# ------------------------------------------------------------------------------------------ tmux
class Pane:
    def __init__(self, home: Path, command: str) -> None:
        self.sock = f"cm-bench-{uuid.uuid4().hex[:8]}"
        env = f"CRYPTOMON_HOME={home} TERM=xterm-256color TEXTUAL_ANIMATIONS=none"
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "b", "-x", "120", "-y", "40",
                  f"exec env {env} {command}")
        self.pid = int(self.tmux("display", "-p", "-t", "b", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "b")

    def wait(self, text: str, limit: float = 60.0, present: bool = True, step: float = 0.005) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if (text in self.screen()) == present:
                return time.monotonic() - t0
            time.sleep(step)
        raise TimeoutError(f"{text!r} {'never appeared' if present else 'never went away'}")

    def close(self) -> None:
        self.tmux("kill-server")


def shutdown_daemon(sock: Path) -> None:
    from cryptomon_tui.daemon.address import DaemonAddress
    from cryptomon_tui.daemon.client import DaemonClient

    async def stop() -> None:
        async with DaemonClient(DaemonAddress(socket_path=sock), reconnect=False) as client:
            await client.shutdown()

    try:
        asyncio.run(asyncio.wait_for(stop(), 5))
    except Exception:
        pass


# ------------------------------------------------------------------------------------------ 1 + 2
def ui_cost(seconds: float, config: dict[str, Any] | None, label: str, keys: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="cmb-", dir="/tmp"))
    args = "--no-mouse"
    if config is not None:
        path = home / "bench.yaml"
        path.write_text(yaml.safe_dump(config))
        args += f" --config {path}"
    pane = Pane(home, f"{BIN / 'cryptomon'} demo {args}")
    try:
        pane.wait("Exchanges", limit=60)
        time.sleep(5)  # warm-up: first snapshots, imports, layout
        daemon = next(iter(children(pane.pid)), None)
        pids = {"ui": pane.pid} | ({"daemon": daemon} if daemon else {})
        figures = sample(pids, seconds)
        endpoints = pane.screen().count("/")  # rough; exact count comes from the config
        press = []
        for i in range(keys):
            pane.tmux("send-keys", "-t", "b", "f")
            press.append(pane.wait("FROZEN", present=(i % 2 == 0), limit=5) * 1000)
            time.sleep(0.3)
        return {"label": label, **figures, "key_ms_median": statistics.median(press) if press else None,
                "key_ms_max": max(press) if press else None, "screen_slashes": endpoints}
    finally:
        pane.close()
        shutdown_daemon(home / "run" / "cryptomon-demo.sock")
        shutil.rmtree(home, ignore_errors=True)


def hundred_endpoints() -> dict[str, Any]:
    exchanges = {f"{kind.split('_')[0]}-{i}": {"kind": kind} for i in range(7) for kind in KINDS}
    return {"exchanges": exchanges}


# ------------------------------------------------------------------------------------------ 3
def sleep_server(delay: float) -> tuple[int, threading.Event]:
    """Answers every request exactly ``delay`` after it arrived (a thread per connection)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    stop = threading.Event()
    body = b'{"ok":true}'
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    def handle(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while not stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                buf += chunk
                while b"\r\n\r\n" in buf:
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    due = time.perf_counter() + delay
                    while (left := due - time.perf_counter()) > 0:
                        time.sleep(left if left > 0.002 else 0)
                    conn.sendall(reply)

    def accept() -> None:
        srv.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        srv.close()

    threading.Thread(target=accept, daemon=True).start()
    return srv.getsockname()[1], stop


def measurement_error(seconds: float, with_ui: bool) -> dict[str, Any]:
    port, stop = sleep_server(0.050)
    home = Path(tempfile.mkdtemp(prefix="cmb-", dir="/tmp"))
    sock = home / "run" / "d.sock"
    jsonl = home / "probes.jsonl"
    cfg = {
        "daemon": {"control": {"socket_path": str(sock)}, "http": {"port": 0}},
        "exchanges": {f"sleep{i}": {"kind": "generic", "url": f"http://127.0.0.1:{port}/x", "interval": 0.25,
                                   "budget_share": 1.0}
                      for i in range(4)},
    }
    path = home / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, CRYPTOMON_HOME=str(home))
    daemon = subprocess.Popen([str(BIN / "cryptomon"), "daemon", "--config", str(path), "--probes-jsonl", str(jsonl),
                               "--for", f"{seconds + 8:g}s", "--log-level", "warning"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pane = None
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if with_ui:
            pane = Pane(home, f"{BIN / 'cryptomon'} attach --no-mouse --config {path}")
            pane.wait("Exchanges", limit=30)
        time.sleep(2)
        t0 = time.time()
        time.sleep(seconds)
        t1 = time.time()
    finally:
        if pane is not None:
            pane.close()
        daemon.wait(timeout=seconds + 30)
        stop.set()
    errors = []
    for line in jsonl.read_text().splitlines():
        r = json.loads(line)
        started = r.get("ts") or r.get("started_at")
        ts = dt.datetime.fromisoformat(started.replace("Z", "+00:00")).timestamp() if started else 0
        if r.get("outcome") == "ok" and r.get("latency_ms") is not None and t0 <= ts <= t1:
            errors.append(r["latency_ms"] - 50.0)
    shutil.rmtree(home, ignore_errors=True)
    errors.sort()
    if not errors:
        return {"ui": with_ui, "n": 0}
    return {"ui": with_ui, "n": len(errors), "median_ms": statistics.median(errors),
            "p99_ms": errors[min(len(errors) - 1, int(len(errors) * 0.99))]}


# ------------------------------------------------------------------------------------------ main
def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--quick", action="store_true", help="10 s per measurement")
    ap.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    ap.add_argument("--parts", default="demo,hundred,error", help="comma-separated subset of demo,hundred,error")
    args = ap.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed (make sysdeps)", file=sys.stderr)
        return 1
    seconds = 10.0 if args.quick else args.seconds
    results: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "command": "python -m bench.bench_ui " + " ".join(sys.argv[1:])}
    parts = set(args.parts.split(","))
    if "demo" in parts:
        results["demo"] = ui_cost(seconds, None, "demo: 5 simulated exchanges x 3 probes", keys=10)
        print(json.dumps(results["demo"]), flush=True)
    if "hundred" in parts:
        results["hundred"] = ui_cost(seconds, hundred_endpoints(), "35 exchanges x 3 probes (105 endpoints)", keys=4)
        print(json.dumps(results["hundred"]), flush=True)
    if "error" in parts:
        results["error_headless"] = measurement_error(seconds, with_ui=False)
        print(json.dumps(results["error_headless"]), flush=True)
        results["error_ui"] = measurement_error(seconds, with_ui=True)
        print(json.dumps(results["error_ui"]), flush=True)
    if args.record and parts >= {"demo", "hundred", "error"}:
        record(results)
    return 0


def record(r: dict[str, Any]) -> None:
    d, h = r["demo"], r["hundred"]
    eh, eu = r["error_headless"], r["error_ui"]

    def f(v: Any, fmt: str = ".1f") -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "",
        f"### UI run of {r['date']} (`{r['command'].strip()}`)",
        "",
        "| measurement | UI process | daemon process | target |",
        "|---|---|---|---|",
        f"| {d['label']}: CPU of one core | {f(d['ui']['cpu_pct'], '.2f')} % | "
        f"{f(d.get('daemon', {}).get('cpu_pct'), '.2f')} % | UI <= 3 % |",
        f"| same: peak RSS | {f(d['ui']['rss_mb'])} MiB | {f(d.get('daemon', {}).get('rss_mb'))} MiB | <= 150 MB |",
        f"| {h['label']}: CPU of one core | {f(h['ui']['cpu_pct'], '.2f')} % | "
        f"{f(h.get('daemon', {}).get('cpu_pct'), '.2f')} % | UI <= 15 % |",
        f"| same: peak RSS | {f(h['ui']['rss_mb'])} MiB | {f(h.get('daemon', {}).get('rss_mb'))} MiB | |",
        f"| key press (`f`) to updated screen, median / max of {10} | {f(d['key_ms_median'])} / "
        f"{f(d['key_ms_max'])} ms | | <= 100 ms |",
        f"| 50 ms target, error median / p99, headless (n={eh.get('n')}) | | {f(eh.get('median_ms'), '.2f')} / "
        f"{f(eh.get('p99_ms'), '.2f')} ms | |",
        f"| same with a UI attached (n={eu.get('n')}) | | {f(eu.get('median_ms'), '.2f')} / "
        f"{f(eu.get('p99_ms'), '.2f')} ms | within 1 ms of headless at the median |",
        "",
    ]
    path = ROOT / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    heading = "## UI (`make bench-ui`)"
    if heading not in text:
        lines = ["", heading, "",
                 "`bench/bench_ui.py`: the UI runs in a 120x40 tmux pane as `cryptomon demo` (the daemon in its own "
                 "process); CPU from /proc utime+stime over the run, RSS peak of 1 s samples. Key latency is "
                 "measured through tmux (send-keys to capture-pane), an upper bound. The error rows probe a "
                 "loopback server that answers exactly 50 ms after each request.", *lines]
        path.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
        return
    # append the run at the end of the UI section (other sections may follow it)
    start = text.index(heading)
    nxt = text.find("\n## ", start + len(heading))
    end = len(text) if nxt < 0 else nxt
    block = "\n".join(lines)
    path.write_text(text[:end].rstrip("\n") + "\n" + block + "\n" + text[end:], encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
