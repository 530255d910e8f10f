"""Hostile-values soak (``make bench-hostile``; issue 13 acceptance): the real ``cryptomon daemon`` watches
healthy targets and hostile ones that answer with the values that once broke it (``Retry-After: 1e12``, NaN
and negative waits, HTTP-date waits in the year 9999, bans "until" 16-digit and year-2286 and past
expiries, bodies cut at the cap, invalid JSON, NaN and 1e400 server times, far-future ``Date``) every few
seconds, for 15 minutes by default. A capped pause would silence a hostile target for a day, so every
``--generation`` seconds the config is rewritten with fresh hostile targets (a live reload, which the run
exercises too) and the new ones start sending hostile answers at once.

Throughout, once a second: /api/v1/snapshot and /metrics must answer 200 (and the snapshot carry no
``error``), /healthz 200; every 10 s ``cryptomon status`` must exit 0 or 1 (never 4, "snapshot failed"). The UI
face is the real Textual app attached over the control socket, headless at 80x24 in its own process for the
whole run (``bench/hostile_ui_client.py``): every 5 s it checks that the snapshot it shows advances and is
recent, that the exchanges table has the expected rows and each hostile row's status as text, and every
``--screens-every`` seconds it opens a hostile exchange's details screen and the Streams view.

The schedule check is relative, because the machine is shared: a *twin* daemon runs side by side for the same
time, with the same config (the same healthy targets on the same server, the same reload every generation,
the same HTTP polling and ``status`` runs) except that its hostile targets are disabled. Both daemons see the
same machine load; the twin does less work (no hostile targets; and the hostile daemon alone also serves the
UI), so the comparison can only make the hostile daemon look later, never earlier. (A first version gave the
twin 5 sane targets at 500 ms: it then probed far more than the hostile daemon, whose hostile targets sit out
their capped waits, and its own load made it the later one.) Per healthy target, a gap is *late*
when it exceeds interval + ``LATE_S``; the verdict fails when the hostile daemon has significantly more late
gaps than the twin (one-sided binomial test, p < ``SIGNIFICANCE``) or a gap longer than the twin's longest
plus one interval (a stall the twin did not see). Absolute gaps are reported too, against the old fixed line
(interval * 1.5 + 0.5 s), as information: they depend on the load.

``python -m bench.bench_hostile --duration 900 --append-results`` appends the figures to bench/RESULTS.md;
the slow-marked test ``tests/integration/test_hostile_soak.py`` runs the same harness for 60 s.
``--no-twin`` / ``--no-ui`` leave out the twin daemon (no schedule verdict then) / the UI face.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
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
LATE_S = 0.25  # a healthy gap longer than interval + this is "late"
SIGNIFICANCE = 0.01  # one-sided binomial test: more late gaps in the hostile daemon than chance explains
ABSOLUTE_LINE = {name: interval * 1.5 + 0.5 for name, interval in HEALTHY.items()}  # the old fixed line (info)


@dataclass
class GapStats:
    """One healthy target's probe gaps in one daemon."""

    probes: int = 0
    p50_s: float = 0.0
    p99_s: float = 0.0
    max_s: float = 0.0
    late: int = 0  # gaps > interval + LATE_S
    over_line: int = 0  # gaps > ABSOLUTE_LINE

    @property
    def gaps(self) -> int:
        return max(0, self.probes - 1)


@dataclass
class ScheduleVerdict:
    """Hostile daemon vs twin for one healthy target."""

    name: str
    p_value: float  # P(at least this many of the late gaps fall in the hostile daemon | equal lateness)
    stall_s: float  # hostile max gap - twin max gap
    ok: bool
    why: str


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def schedule_verdict(name: str, hostile: GapStats, twin: GapStats) -> ScheduleVerdict:
    """Did the hostile values make this healthy target late, beyond what the same machine did to the twin?

    Under "the hostile values change nothing", each late gap is as likely in either daemon, in proportion to
    their gap counts; a p-value below SIGNIFICANCE says the hostile daemon has more late gaps than that
    explains. A single stall is too rare for a count: it fails when the hostile daemon's longest gap exceeds
    the twin's by more than one interval. Neither proves the schedule holds on a loaded machine in absolute
    terms; they say whether the hostile values made a difference that this run can see."""
    interval = HEALTHY[name]
    late_total = hostile.late + twin.late
    share = hostile.gaps / max(1, hostile.gaps + twin.gaps)
    p_value = binomial_tail(hostile.late, late_total, share)
    stall = round(hostile.max_s - twin.max_s, 3)
    problems = []
    if hostile.probes == 0 or twin.probes == 0:
        problems.append("no probes")
    if hostile.gaps < 0.9 * twin.gaps:
        problems.append(f"{hostile.probes} probes vs the twin's {twin.probes}")
    if p_value < SIGNIFICANCE:
        problems.append(f"late gaps {hostile.late} vs twin {twin.late} (p = {p_value:.2g})")
    if stall > interval:
        problems.append(f"longest gap {hostile.max_s:g} s vs twin {twin.max_s:g} s")
    return ScheduleVerdict(name, round(p_value, 4), stall, not problems, "; ".join(problems) or "no difference")


@dataclass
class UiFace:
    """The UI client's figures (bench/hostile_ui_client.py)."""

    checks: int = 0
    failures: list[str] = field(default_factory=list)
    details_opened: int = 0
    streams_opened: int = 0
    max_age_s: float = 0.0
    hostile_status_words: dict[str, int] = field(default_factory=dict)
    rss_mb: float = 0.0
    cpu_s: float = 0.0


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
    ui: UiFace | None = None
    healthy: dict[str, GapStats] = field(default_factory=dict)
    twin_healthy: dict[str, GapStats] = field(default_factory=dict)
    schedule: list[ScheduleVerdict] = field(default_factory=list)
    twin_face_failures: list[str] = field(default_factory=list)
    daemon_alive: bool = True
    daemon_rss_mb: float = 0.0
    daemon_cpu_s: float = 0.0
    twin_rss_mb: float = 0.0
    twin_cpu_s: float = 0.0
    load_avg: list[float] = field(default_factory=list)  # 1-min load average, every 60 s
    errors_in_log: list[str] = field(default_factory=list)

    @property
    def healthy_probes(self) -> dict[str, int]:
        return {name: g.probes for name, g in self.healthy.items()}

    @property
    def healthy_max_gap_s(self) -> dict[str, float]:
        return {name: g.max_s for name, g in self.healthy.items()}

    @property
    def ui_ok(self) -> bool:
        # and the hostile rows were seen with a bad status word at least once: else nothing hostile was shown
        return self.ui is None or (self.ui.checks > 0 and not self.ui.failures and self.ui.details_opened > 0
                                   and self.ui.streams_opened > 0 and bool(set(self.ui.hostile_status_words) - {"OK"}))

    @property
    def schedule_ok(self) -> bool:
        return all(v.ok for v in self.schedule)

    @property
    def ok(self) -> bool:
        return (self.daemon_alive and not self.snapshot_failures and not self.metrics_failures
                and not self.healthz_failures and not self.status_failures and self.ui_ok and self.schedule_ok
                and all(n > 0 for n in self.healthy_probes.values()) and not self.errors_in_log)


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError as exc:
        return 0, str(exc).encode()


def _config(server_url: str, port: int, sock: Path, store: Path, generation: int,
            hostile: bool = True) -> dict[str, Any]:
    """The hostile daemon's config, or (``hostile=False``) its twin's: the same, the hostile targets disabled."""
    exchanges: dict[str, Any] = {
        "canary": {"url": f"{server_url}/ok", "interval": "1s", "timeout": "1s"},
        "steady": {"kind": "binance_spot", "base_url": f"{server_url}/m/ok", "interval": "1s", "timeout": "1s",
                   "budget_share": 0.5, "probes": ["time"]},
    }
    for i in range(HOSTILE_PER_GENERATION):
        # /c/<key>/: the server cycles through HOSTILE_MODES per key, each key from a different starting point.
        # The twin's are disabled: its config still changes every generation (the same reloads), but it probes
        # only the healthy targets, so it never does more work than the hostile daemon (whose hostile targets
        # sit out their capped waits): any extra lateness there is the hostile targets' doing.
        exchanges[f"{'hostile' if hostile else 'twin'}-g{generation}-{i}"] = {
            "kind": "binance_spot", "base_url": f"{server_url}/c/{generation}-{i}", "interval": "500ms",
            "timeout": "1s", "budget_share": 0.5, "probes": ["time"], "enabled": hostile,
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


@dataclass
class _Daemon:
    """One daemon of the run: its files, its process and what it must be."""

    name: str
    hostile: bool
    work: Path
    sock: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.work / f"{self.name}.yaml"

    @property
    def probes(self) -> Path:
        return self.work / f"{self.name}-probes.jsonl"

    @property
    def log(self) -> Path:
        return self.work / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self, server_url: str, generation: int) -> None:
        data = _config(server_url, self.port, self.sock, self.work / f"{self.name}.sqlite3", generation, self.hostile)
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(data))
        tmp.replace(self.config)  # atomic: a reload never reads half a file

    def start(self, server_url: str) -> None:
        self.write_config(server_url, 0)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*REAL_DAEMON_COMMAND, "--config", str(self.config), "--probes-jsonl", str(self.probes)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ})

    def gap_stats(self) -> dict[str, GapStats]:
        from cryptomon_tui.kernel.units import parse_iso_utc

        text = self.probes.read_text() if self.probes.exists() else ""
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        rows = [r for r in rows if r.get("kind") != "stream"]  # probe results only: stream verdicts ride along
        out = {}
        for name, interval in HEALTHY.items():
            stamps = sorted(parse_iso_utc(r["ts"]) for r in rows if r.get("exchange") == name)
            gaps = sorted(b - a for a, b in itertools.pairwise(stamps))
            if not gaps:
                out[name] = GapStats(probes=len(stamps))
                continue
            p99 = statistics.quantiles(gaps, n=100, method="inclusive")[98] if len(gaps) >= 2 else gaps[0]
            out[name] = GapStats(probes=len(stamps), p50_s=round(statistics.median(gaps), 3), p99_s=round(p99, 3),
                                 max_s=round(gaps[-1], 3), late=sum(g > interval + LATE_S for g in gaps),
                                 over_line=sum(g > ABSOLUTE_LINE[name] for g in gaps))
        return out


def _check_faces(d: _Daemon, elapsed: float, result: SoakResult, record: bool) -> None:
    """Snapshot, /metrics, /healthz of one daemon; the twin gets the same load but its answers only go to
    ``twin_face_failures`` (information: it has no hostile targets)."""
    stamp = f"t={elapsed:.0f}s"
    code, body = _get(d.url + "/api/v1/snapshot")
    problem = None
    if code != 200:
        problem = f"{stamp} HTTP {code}: {body[:200]!r}"
    else:
        snap = json.loads(body)
        if snap.get("error"):
            problem = f"{stamp} error: {snap['error']}"
    if record:
        result.snapshot_checks += 1
        if problem:
            result.snapshot_failures.append(problem)
    elif problem:
        result.twin_face_failures.append(f"snapshot {problem}")
    code, body = _get(d.url + "/metrics")
    problem = f"{stamp} HTTP {code}: {body[:200]!r}" if code != 200 else None
    if record:
        result.metrics_checks += 1
        if problem:
            result.metrics_failures.append(problem)
    elif problem:
        result.twin_face_failures.append(f"metrics {problem}")
    code, body = _get(d.url + "/healthz")
    if code != 200:
        (result.healthz_failures if record else result.twin_face_failures).append(
            f"{stamp} healthz HTTP {code}: {body[:200]!r}")


def _run_status(d: _Daemon, result: SoakResult, record: bool) -> None:
    status = subprocess.run([*CRYPTOMON, "status", "--config", str(d.config)], capture_output=True,
                            text=True, timeout=30, env={**os.environ})
    failed = status.returncode not in (0, 1) or "Traceback" in status.stderr
    if record:
        result.status_runs += 1
        if failed:
            result.status_failures.append(f"exit {status.returncode}: {status.stderr[-300:]}")
    elif failed:
        result.twin_face_failures.append(f"status exit {status.returncode}: {status.stderr[-300:]}")


def _start_ui(d: _Daemon, duration_s: float, screens_every_s: float) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out = d.work / "ui-checks.jsonl"
    stop = d.work / "ui.stop"
    log = (d.work / "ui.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.hostile_ui_client", "--socket", str(d.sock), "--out", str(out),
         "--duration", str(duration_s + 60), "--stop-file", str(stop), "--screens-every", str(screens_every_s),
         "--hostile-count", str(HOSTILE_PER_GENERATION)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, "TEXTUAL_ANIMATIONS": "none"})
    log.close()
    return proc, out, stop


def _finish_ui(proc: subprocess.Popen[bytes], out: Path, stop: Path, work: Path) -> UiFace:
    ui = UiFace()
    alive_at_end = proc.poll() is None
    rss, cpu = _rss_cpu(proc.pid)
    stop.touch()
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        code = -1
        ui.failures.append("the UI client did not stop within 60 s of being asked")
    ui.rss_mb, ui.cpu_s = rss, cpu
    if not alive_at_end:
        ui.failures.append(f"the UI process ended before the run did (exit {code})")
    final = None
    for line in (out.read_text().splitlines() if out.exists() else []):
        row = json.loads(line)
        if "final" in row:
            final = row["final"]
            continue
        ui.checks += 1
        if not row.get("ok"):
            ui.failures.append(f"t={row.get('t')}s {row.get('kind')}: {'; '.join(row.get('problems') or [])}"[:400])
    if final is None:
        tail = (work / "ui.log").read_text(errors="replace")[-600:] if (work / "ui.log").exists() else ""
        ui.failures.append(f"the UI client wrote no summary (exit {code}): {tail}")
    else:
        ui.details_opened = final.get("details_opened", 0)
        ui.streams_opened = final.get("streams_opened", 0)
        ui.max_age_s = final.get("max_age_s", 0.0)
        ui.hostile_status_words = final.get("hostile_status_words", {})
    return ui


def _hostile_answers(server: HostileServer) -> int:
    return sum(n for mode, n in list(server.by_mode.items()) if mode != "ok")


def run_soak(duration_s: float, generation_s: float = 20.0, workdir: Path | None = None, *, twin: bool = True,
             ui: bool = True, screens_every_s: float = 60.0, min_generations: int = 0, min_hostile_answers: int = 0,
             max_duration_s: float | None = None) -> SoakResult:
    """Run the daemon against hostile and healthy targets for ``duration_s`` (with its twin, and a UI attached,
    unless told not to); returns what was seen.

    On a loaded machine this harness and the daemons get through less in ``duration_s`` (fewer config
    generations, fewer hostile answers), so a caller that checks the work was done names it: the run goes on
    past ``duration_s``, up to ``max_duration_s``, until ``min_generations`` configs were applied and the
    hostile targets gave ``min_hostile_answers`` answers."""
    cap_s = max(duration_s, max_duration_s or duration_s)
    work = Path(workdir or tempfile.mkdtemp(prefix="cm-hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    sock_dir = Path(tempfile.mkdtemp(prefix="cmhs-", dir="/tmp"))
    server = HostileServer()
    result = SoakResult(duration_s=duration_s, generations=0, hostile_answers=0)
    target = _Daemon("hostile", True, work, sock_dir / "d.sock")
    daemons = [target] + ([_Daemon("twin", False, work, sock_dir / "t.sock")] if twin else [])
    ui_proc: tuple[subprocess.Popen[bytes], Path, Path] | None = None
    with server.running():
        try:
            for d in daemons:
                d.start(server.url)
            for d in daemons:
                assert d.proc is not None
                wait_http_ok(d.url + "/readyz", 30, d.proc)
            if ui:
                ui_proc = _start_ui(target, cap_s, screens_every_s)
            start = time.monotonic()
            next_gen = start + generation_s
            next_status = start
            next_load = start
            generation = 0
            assert target.proc is not None
            for tick in itertools.count():
                now = time.monotonic()
                done = (now - start >= duration_s and generation + 1 >= min_generations
                        and _hostile_answers(server) >= min_hostile_answers)
                if done or now - start >= cap_s or any(d.proc is None or d.proc.poll() is not None for d in daemons):
                    break
                if now >= next_load:
                    result.load_avg.append(round(os.getloadavg()[0], 2))
                    next_load += 60.0
                if now >= next_gen:
                    generation += 1
                    for d in daemons:
                        d.write_config(server.url, generation)
                    next_gen += generation_s
                for d in daemons:
                    _check_faces(d, now - start, result, record=d is target)
                if now >= next_status:
                    for d in daemons:
                        _run_status(d, result, record=d is target)
                    next_status = now + 10.0
                time.sleep(max(0.0, start + (tick + 1) * 1.0 - time.monotonic()))
            result.generations = generation + 1
            result.daemon_alive = target.proc.poll() is None
            result.daemon_rss_mb, result.daemon_cpu_s = _rss_cpu(target.proc.pid)
            if twin and daemons[1].proc is not None:
                if daemons[1].proc.poll() is not None:
                    result.twin_face_failures.append("the twin daemon died")
                result.twin_rss_mb, result.twin_cpu_s = _rss_cpu(daemons[1].proc.pid)
            if ui_proc is not None:
                result.ui = _finish_ui(*ui_proc, work)
                ui_proc = None
        finally:
            if ui_proc is not None:
                stop_process(ui_proc[0])
            for d in daemons:
                if d.proc is not None:
                    stop_process(d.proc)
        result.hostile_answers = _hostile_answers(server)
    text = target.log.read_text(errors="replace")
    result.errors_in_log = [line for line in text.splitlines()
                            if "Traceback" in line or "internal error" in line or " ERROR " in line][:20]
    result.healthy = target.gap_stats()
    if twin:
        result.twin_healthy = daemons[1].gap_stats()
        result.schedule = [schedule_verdict(n, result.healthy[n], result.twin_healthy[n]) for n in HEALTHY]
    return result


def _gap_text(g: GapStats, name: str) -> str:
    return (f"{g.probes} probes, gap p50 {g.p50_s:g} s, p99 {g.p99_s:g} s, max {g.max_s:g} s, "
            f"{g.late} late (> {HEALTHY[name] + LATE_S:g} s), {g.over_line} over {ABSOLUTE_LINE[name]:g} s")


def summary_lines(result: SoakResult, args: argparse.Namespace, started: datetime) -> list[str]:
    load = result.load_avg or [round(os.getloadavg()[0], 2)]
    ui = result.ui
    lines = [
        "",
        f"### Hostile values soak (issue 13), {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"`python -m bench.bench_hostile --duration {args.duration:g}` (`make bench-hostile`) on "
        f"{platform.node() or 'this machine'}, 2 cores shared; 1-min load average during the run "
        f"{min(load):.1f}-{max(load):.1f} (median {statistics.median(load):.1f}): "
        f"**{'PASS' if result.ok else 'FAIL'}**.",
        "",
        f"- Faces of the hostile daemon: {result.hostile_answers} hostile answers from "
        f"{result.generations * HOSTILE_PER_GENERATION} hostile targets over {result.generations} generations "
        f"(config rewritten every {args.generation:g} s, live reload); {result.snapshot_checks} snapshot and "
        f"{result.metrics_checks} /metrics checks, {len(result.snapshot_failures)} + {len(result.metrics_failures)} "
        f"failures; /healthz failures {len(result.healthz_failures)}; {result.status_runs} `cryptomon status` "
        f"runs, {len(result.status_failures)} failures; errors in the log: {len(result.errors_in_log)}.",
    ]
    if ui is not None:
        words = ", ".join(f"{w or '(empty)'} {n}" for w, n in sorted(ui.hostile_status_words.items(),
                                                                       key=lambda kv: -kv[1]))
        lines.append(
            f"- UI (the Textual app attached over the control socket, headless 80x24, open for the whole run): "
            f"{ui.checks} checks, {len(ui.failures)} failures; details screen of a hostile exchange opened "
            f"{ui.details_opened} times, Streams view {ui.streams_opened} times; shown snapshot at most "
            f"{ui.max_age_s:g} s old; hostile rows' status cells seen: {words}; UI process RSS {ui.rss_mb:.0f} MB, "
            f"CPU {ui.cpu_s:.1f} s.")
    for name in HEALTHY:
        g = result.healthy[name]
        line = f"- Healthy `{name}` ({HEALTHY[name]:g} s): hostile daemon {_gap_text(g, name)}"
        if name in result.twin_healthy:
            line += f"; twin {_gap_text(result.twin_healthy[name], name)}"
        verdict = next((v for v in result.schedule if v.name == name), None)
        if verdict is not None:
            line += (f". Verdict: {'holds' if verdict.ok else 'LATE'} ({verdict.why}; binomial p = "
                     f"{verdict.p_value:g}, longest gap minus the twin's {verdict.stall_s:+g} s)")
        lines.append(line + ".")
    lines.append(
        f"- Daemon at the end: RSS {result.daemon_rss_mb:.0f} MB, CPU {result.daemon_cpu_s:.1f} s "
        f"({100 * result.daemon_cpu_s / max(args.duration, 1):.1f} % of a core)"
        + (f"; twin RSS {result.twin_rss_mb:.0f} MB, CPU {result.twin_cpu_s:.1f} s; twin face failures "
           f"{len(result.twin_face_failures)}" if result.twin_healthy else "") + ".")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_hostile")
    parser.add_argument("--duration", type=float, default=900.0, help="seconds (default 900 = 15 minutes)")
    parser.add_argument("--generation", type=float, default=20.0, help="fresh hostile targets every N seconds")
    parser.add_argument("--screens-every", type=float, default=60.0, help="UI: open details and Streams every N s")
    parser.add_argument("--no-twin", action="store_true", help="no twin daemon (and no schedule verdict)")
    parser.add_argument("--no-ui", action="store_true", help="no UI client")
    parser.add_argument("--append-results", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = run_soak(args.duration, args.generation, twin=not args.no_twin, ui=not args.no_ui,
                      screens_every_s=args.screens_every)
    figures = asdict(result)
    print(json.dumps({**figures, "ui_ok": result.ui_ok, "schedule_ok": result.schedule_ok, "ok": result.ok},
                     indent=2))
    lines = summary_lines(result, args, started)
    print("\n".join(lines))
    if args.append_results:
        with (Path(__file__).parent / "RESULTS.md").open("a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
