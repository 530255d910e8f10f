"""Hostile-values soak (``make bench-hostile``; issue 13 acceptance): the real ``cryptomon daemon`` watches
healthy targets and hostile ones that answer with the values that once broke it (``Retry-After: 1e12``, NaN
and negative waits, HTTP-date waits in the year 9999, bans "until" 16-digit and year-2286 and past
expiries, bodies cut at the cap, invalid JSON, NaN and 1e400 server times, far-future ``Date``) every few
seconds, for 15 minutes by default. A capped pause would silence a hostile target for a day, so every
``--generation`` seconds the config is rewritten with fresh hostile targets (a live reload, which the run
exercises too) and the new ones start sending hostile answers at once.

Throughout, once a second: /api/v1/snapshot and /metrics must answer 200 (and the snapshot carry no
``error``), /healthz 200; every 10 s ``cryptomon status`` must exit 0 or 1 (never 4, "snapshot failed"). At
the end: the healthy targets' probe gaps from ``--probes-jsonl`` (the schedule must hold: max gap within
interval * 1.5 + 0.5 s), the daemon's RSS and CPU, and the number of hostile answers served.

``python -m bench.bench_hostile --duration 900 --append-results`` appends the figures to bench/RESULTS.md;
the slow-marked test ``tests/integration/test_hostile_soak.py`` runs the same harness for 60 s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.fakes.daemon_harness import CRYPTOMON, REAL_DAEMON_COMMAND, free_port, stop_process, wait_http_ok
from tests.fakes.hostile_server import HostileServer

HEALTHY = {"canary": 1.0, "steady": 1.0}  # name -> interval (s)
HOSTILE_PER_GENERATION = 5


@dataclass
class SoakResult:
    duration_s: float
    generations: int
    hostile_answers: int
    snapshot_checks: int = 0
    snapshot_failures: list[str] = field(default_factory=list)
    metrics_checks: int = 0
    metrics_failures: list[str] = field(default_factory=list)
    healthz_failures: list[str] = field(default_factory=list)
    status_runs: int = 0
    status_failures: list[str] = field(default_factory=list)
    healthy_probes: dict[str, int] = field(default_factory=dict)
    healthy_max_gap_s: dict[str, float] = field(default_factory=dict)
    daemon_alive: bool = True
    daemon_rss_mb: float = 0.0
    daemon_cpu_s: float = 0.0
    errors_in_log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        gaps_ok = all(gap <= HEALTHY[name] * 1.5 + 0.5 for name, gap in self.healthy_max_gap_s.items())
        return (self.daemon_alive and not self.snapshot_failures and not self.metrics_failures
                and not self.healthz_failures and not self.status_failures and gaps_ok
                and all(n > 0 for n in self.healthy_probes.values()) and not self.errors_in_log)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


def _config(server_url: str, port: int, sock: Path, store: Path, generation: int) -> dict[str, Any]:
    exchanges: dict[str, Any] = {
        "canary": {"url": f"{server_url}/ok", "interval": "1s", "timeout": "1s"},
        "steady": {"kind": "binance_spot", "base_url": f"{server_url}/m/ok", "interval": "1s", "timeout": "1s",
                   "budget_share": 0.5, "probes": ["time"]},
    }
    for i in range(HOSTILE_PER_GENERATION):
        # /c/<key>/: the server cycles through HOSTILE_MODES per key, each key from a different starting point
        exchanges[f"hostile-g{generation}-{i}"] = {
            "kind": "binance_spot", "base_url": f"{server_url}/c/{generation}-{i}", "interval": "500ms",
            "timeout": "1s", "budget_share": 0.5, "probes": ["time"],
        }
    return {
        "exchanges": exchanges,
        "storage": {"path": str(store)},
        "daemon": {"http": {"port": port}, "control": {"socket_path": str(sock)}, "reload": {"interval": "500ms"}},
    }


def _rss_cpu(pid: int) -> tuple[float, float]:
    rss = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return rss, 0.0
    return rss, cpu


def run_soak(duration_s: float, generation_s: float = 20.0, workdir: Path | None = None) -> SoakResult:
    """Run the daemon against hostile and healthy targets for ``duration_s``; returns what was seen."""
    work = Path(workdir or tempfile.mkdtemp(prefix="cm-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    sock_dir = Path(tempfile.mkdtemp(prefix="cmhs-", dir="/tmp"))
    server = HostileServer()
    result = SoakResult(duration_s=duration_s, generations=0, hostile_answers=0)
    with server.running():
        port = free_port()
        config = work / "hostile.yaml"
        probes = work / "probes.jsonl"
        log_path = work / "daemon.log"
        config.write_text(yaml.safe_dump(_config(server.url, port, sock_dir / "d.sock", work / "s.sqlite3", 0)))
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ}
        with log_path.open("wb") as log:
            proc = subprocess.Popen([*REAL_DAEMON_COMMAND, "--config", str(config), "--probes-jsonl", str(probes)],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            try:
                wait_http_ok(url + "/readyz", 30, proc)
                start = time.monotonic()
                next_gen = start + generation_s
                next_status = start
                generation = 0
                for tick in itertools.count():
                    now = time.monotonic()
                    if now - start >= duration_s or proc.poll() is not None:
                        break
                    if now >= next_gen:
                        generation += 1
                        config.write_text(yaml.safe_dump(
                            _config(server.url, port, sock_dir / "d.sock", work / "s.sqlite3", generation)))
                        next_gen += generation_s
                    code, body = _get(url + "/api/v1/snapshot")
                    result.snapshot_checks += 1
                    if code != 200:
                        result.snapshot_failures.append(f"t={now - start:.0f}s HTTP {code}: {body[:200]!r}")
                    else:
                        snap = json.loads(body)
                        if snap.get("error"):
                            result.snapshot_failures.append(f"t={now - start:.0f}s error: {snap['error']}")
                    code, body = _get(url + "/metrics")
                    result.metrics_checks += 1
                    if code != 200:
                        result.metrics_failures.append(f"t={now - start:.0f}s HTTP {code}: {body[:200]!r}")
                    code, body = _get(url + "/healthz")
                    if code != 200:
                        result.healthz_failures.append(f"t={now - start:.0f}s HTTP {code}: {body[:200]!r}")
                    if now >= next_status:
                        status = subprocess.run([*CRYPTOMON, "status", "--config", str(config)], capture_output=True,
                                                text=True, timeout=30, env=env)
                        result.status_runs += 1
                        if status.returncode not in (0, 1) or "Traceback" in status.stderr:
                            result.status_failures.append(f"exit {status.returncode}: {status.stderr[-300:]}")
                        next_status = now + 10.0
                    time.sleep(max(0.0, start + (tick + 1) * 1.0 - time.monotonic()))
                result.generations = generation + 1
                result.daemon_alive = proc.poll() is None
                result.daemon_rss_mb, result.daemon_cpu_s = _rss_cpu(proc.pid)
            finally:
                stop_process(proc)
        result.hostile_answers = sum(n for mode, n in server.by_mode.items() if mode != "ok")
    text = log_path.read_text(errors="replace")
    result.errors_in_log = [line for line in text.splitlines()
                            if "Traceback" in line or "internal error" in line or " ERROR " in line][:20]
    rows = [json.loads(line) for line in probes.read_text().splitlines() if line.strip()] if probes.exists() else []
    rows = [r for r in rows if r.get("kind") != "stream"]  # probe results only: stream verdicts ride along
    from cryptomon_tui.kernel.units import parse_iso_utc

    for name in HEALTHY:
        stamps = sorted(parse_iso_utc(r["ts"]) for r in rows if r.get("exchange") == name)
        result.healthy_probes[name] = len(stamps)
        result.healthy_max_gap_s[name] = round(max((b - a for a, b in itertools.pairwise(stamps)), default=0.0), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_hostile")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds (default 900 = 15 minutes)")
    parser.add_argument("--generation", type=float, default=20.0, help="fresh hostile targets every N seconds")
    parser.add_argument("--append-results", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = run_soak(args.duration, args.generation)
    figures = asdict(result)
    print(json.dumps({**figures, "ok": result.ok}, indent=2))
    if args.append_results:
        load = os.getloadavg()
        lines = [
            "",
            f"### Hostile values soak (issue 13), {started:%Y-%m-%d %H:%M} UTC",
            "",
            f"`python -m bench.bench_hostile --duration {args.duration:g}` on {platform.node() or 'this machine'} "
            f"(load average {load[0]:.1f}, 2 cores shared): **{'PASS' if result.ok else 'FAIL'}**. "
            f"{result.hostile_answers} hostile answers from {result.generations * HOSTILE_PER_GENERATION} hostile "
            f"targets over {result.generations} generations (config rewritten every {args.generation:g} s, live "
            f"reload); {result.snapshot_checks} snapshot and {result.metrics_checks} /metrics checks, "
            f"{len(result.snapshot_failures)} + {len(result.metrics_failures)} failures; {result.status_runs} "
            f"`cryptomon status` runs, {len(result.status_failures)} failures; healthy probes "
            + ", ".join(f"{n}: {result.healthy_probes[n]} (max gap {result.healthy_max_gap_s[n]:g} s at "
                        f"{HEALTHY[n]:g} s)" for n in HEALTHY)
            + f"; daemon RSS {result.daemon_rss_mb:.0f} MB, CPU {result.daemon_cpu_s:.1f} s "
            f"({100 * result.daemon_cpu_s / max(args.duration, 1):.1f} % of a core); errors in the log: "
            f"{len(result.errors_in_log)}.",
        ]
        with (Path(__file__).parent / "RESULTS.md").open("a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
