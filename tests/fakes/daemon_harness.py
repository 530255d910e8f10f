"""Daemon processes for acceptance tests.

Two kinds, started by the same ``daemon_process`` helper:
- the real ``cryptomon daemon`` (``REAL_DAEMON_COMMAND``): the whole engine (``Engine``) probing a
  ``cryptomon simulate`` process started by ``simulator_process``, with a config from ``real_daemon_config``;
- this module run as ``python -m tests.fakes.daemon_harness --config PATH [--fail EXCHANGE]``
  (``DAEMON_COMMAND``): the daemon's DaemonRunner around a FakeEngine, for faults a real engine cannot be
  driven into on demand (an event storm of thousands of events a second, a scripted outage).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DAEMON_COMMAND: list[str] = [sys.executable, "-m", "tests.fakes.daemon_harness"]
CRYPTOMON: list[str] = [sys.executable, "-m", "cryptomon_tui"]
REAL_DAEMON_COMMAND: list[str] = [*CRYPTOMON, "daemon"]
SIMULATOR_READY_S = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http_ok(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until ``url`` answers 200 (the process failing first is reported with its output)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout:g}s ({last})")


@contextlib.contextmanager
def daemon_process(
    config_path: Path,
    http_url: str,
    extra_args: Sequence[str] = (),
    command: Sequence[str] | None = None,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    ready_path: str = "/healthz",
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a daemon (the harness by default), wait for ``ready_path`` to answer 200, stop it with SIGTERM
    afterwards. The real daemon serves /healthz before its probes start: wait for /readyz with it."""
    cmd = [*(command or DAEMON_COMMAND), "--config", str(config_path), *extra_args]
    log_file = open(log_path or config_path.with_suffix(".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        # only a bound on a hang: a real daemon's start (imports, store, first probes) took over 20 s while
        # make test's workers shared the 2 cores with other work
        wait_http_ok(http_url + ready_path, 60.0, proc)
        yield proc
    finally:
        stop_process(proc)
        log_file.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout``; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


def _parse_base_urls(text: str) -> dict[str, str] | None:
    """``cryptomon simulate`` prints ``VENUE  URL`` lines, then ``ready:``; None until it did."""
    if "\nready:" not in "\n" + text:
        return None
    urls: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].startswith("http://"):
            urls[parts[0]] = parts[1]
    return urls


@contextlib.contextmanager
def simulator_process(scenario: str | Path, log_path: Path, extra_args: Sequence[str] = ()) -> Iterator[dict[str, str]]:
    """A ``cryptomon simulate`` process on free loopback ports: yields venue -> base URL.

    One simulator shared by several daemons makes them see the very same outage at the same moment.
    """
    cmd = [*CRYPTOMON, "simulate", "--scenario", str(scenario), "--port-base", "0", "--quiet", *extra_args]
    log_file = open(log_path, "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + SIMULATOR_READY_S
        while True:
            urls = _parse_base_urls(log_path.read_text(errors="replace"))
            if urls:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulator did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield urls
    finally:
        stop_process(proc)
        log_file.close()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def real_daemon_config(
    path: Path,
    *,
    location: str,
    base_urls: dict[str, str],
    socket_path: Path | None,
    store_path: Path,
    http_port: int,
    interval: str = "500ms",
    exchanges: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a config for ``cryptomon daemon`` probing the simulator at ``base_urls``; returns the data.

    ``budget_share`` 0.5: the simulator enforces the exchanges' real limits and 500 ms probes need half of
    them (the default 2 % would stretch every interval to seconds). ``extra`` is merged in (nested dicts merge).
    ``socket_path`` None: the default socket in the runtime folder.
    """
    names = list(exchanges) if exchanges is not None else list(base_urls)
    data: dict[str, Any] = {
        "exchanges": {
            name: {"base_url": base_urls[name], "interval": interval, "timeout": "1s", "budget_share": 0.5}
            for name in names
        },
        "probing": {"breaker": {"cooldown": "2s", "max_cooldown": "10s"}},
        "storage": {"path": str(store_path)},
        "daemon": {
            "location": location,
            "http": {"port": http_port},
            "control": {} if socket_path is None else {"socket_path": str(socket_path)},
            "reload": {"interval": "200ms"},
        },
    }
    data = _merge(data, extra or {})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return data


LONG_OUTAGE_SCENARIO = """\
name: binance-long-outage
description: binance answers HTTP 500 from the start for ten minutes; the other venues stay healthy
duration: 900s
loop: false
seed: 6
faults:
  - exchange: binance
    type: errors
    start: 0s
    duration: 600s
    status: 500
    code: -1001
    message: "Internal error; unable to process your request. Please try again."
"""


@dataclass
class RealDaemon:
    """A running ``cryptomon daemon`` and where to look at it."""

    proc: subprocess.Popen[bytes]
    config_path: Path
    socket_path: Path
    http_url: str
    probes_path: Path
    events_path: Path
    log_path: Path
    base_urls: dict[str, str]

    @property
    def address(self) -> Any:
        from cryptomon_tui.daemon.address import DaemonAddress

        return DaemonAddress(socket_path=self.socket_path)

    def probe_rows(self, start: int = 0) -> list[dict[str, Any]]:
        """Probe results written to --probes-jsonl, from the ``start``-th on (complete lines only). The file
        also carries a ``kind: stream`` record per stream per tick (for backtests); those are left out."""
        try:
            text = self.probes_path.read_text()
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # the last piece may be a line being written
        rows = [json.loads(line) for line in lines if line]
        return [row for row in rows if row.get("kind") != "stream"][start:]

    def events(self) -> list[dict[str, Any]]:
        try:
            return [json.loads(line) for line in self.events_path.read_text().splitlines() if line]
        except FileNotFoundError:
            return []


@contextlib.contextmanager
def real_daemon(
    workdir: Path,
    socket_dir: Path,
    *,
    location: str = "lab",
    scenario: str = LONG_OUTAGE_SCENARIO,
    exchanges: Sequence[str] = ("binance", "okx"),
    interval: str = "500ms",
    extra: dict[str, Any] | None = None,
    extra_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    default_socket: bool = False,
) -> Iterator[RealDaemon]:
    """A simulator (``scenario``, YAML text) and one real daemon probing it, with probe and event JSONL files.
    Its socket is ``socket_dir/<location>.sock``, or with ``default_socket`` the default one (keep
    CRYPTOMON_HOME short then: a unix socket path has at most 107 bytes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    scenario_path = workdir / "scenario.yaml"
    scenario_path.write_text(scenario)
    port = free_port()
    config_path = workdir / f"{location}.yaml"
    if default_socket:
        from cryptomon_tui.daemon.address import default_socket_path

        socket_path = default_socket_path()
    else:
        socket_path = socket_dir / f"{location}.sock"
    probes_path, events_path = workdir / "probes.jsonl", workdir / "events.jsonl"
    log_path = workdir / f"{location}.log"
    with simulator_process(scenario_path, workdir / "simulator.log") as urls:
        real_daemon_config(
            config_path, location=location, base_urls=urls, exchanges=exchanges, interval=interval,
            socket_path=None if default_socket else socket_path, store_path=workdir / f"{location}.sqlite3",
            http_port=port, extra=extra,
        )
        http_url = f"http://127.0.0.1:{port}"
        args = ["--probes-jsonl", str(probes_path), "--events-jsonl", str(events_path), *extra_args]
        with daemon_process(
            config_path, http_url, args, command=REAL_DAEMON_COMMAND, log_path=log_path, ready_path="/readyz",
            env=env,
        ) as proc:
            yield RealDaemon(proc, config_path, socket_path, http_url, probes_path, events_path, log_path, urls)


# -- the process itself ---------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from cryptomon_tui.clock import RealClock
    from cryptomon_tui.config.loader import load_config
    from cryptomon_tui.daemon.logging import setup_logging
    from cryptomon_tui.daemon.runner import DaemonRunner
    from cryptomon_tui.kernel.results import Outcome
    from cryptomon_tui.kernel.severity import Severity
    from cryptomon_tui.redaction import collect_secrets
    from tests.fakes.fake_engine import FakeEngine

    config, path = load_config(args.config)
    log_filter = setup_logging(config.daemon.log.format == "json", config.daemon.log.level, collect_secrets(config))
    clock = RealClock()
    engine = FakeEngine(clock, location=config.daemon.location)
    for name in args.fail or []:
        engine.fail_exchange(name, Outcome.HTTP_5XX, 503)
        for probe in engine.exchanges[name]["probes"]:
            engine.set_probe(name, probe, consecutive_failures=5)
        engine.open_incident(rule="error_rate", exchange=name, probe=None, severity=Severity.ERROR,
                             summary=f"{name} failing (simulated outage)")
    runner = DaemonRunner(engine, config, clock, config_path=path, log_filter=log_filter)

    async def tick() -> None:
        # A live engine changes every second; so does this one (snapshot seq moves).
        while True:
            await clock.sleep(1.0)
            engine.changed()

    async def storm() -> None:
        # ``--event-rate N``: N incident updates a second, in bursts every 50 ms.
        incident = engine.open_incident(summary="event storm " + "x" * 1000)
        per_burst = max(1, round(args.event_rate / 20))
        while True:
            await clock.sleep(0.05)
            engine.flood(per_burst, incident)

    storm_task = asyncio.create_task(storm()) if args.event_rate else None

    ticker = asyncio.create_task(tick())
    try:
        await runner.run()
    finally:
        ticker.cancel()
        if storm_task is not None:
            storm_task.cancel()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daemon_harness")
    parser.add_argument("--config", required=True)
    parser.add_argument("--fail", action="append", metavar="EXCHANGE", help="simulate an outage of EXCHANGE")
    parser.add_argument("--event-rate", type=float, default=0.0, help="incident events per second (a storm)")
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
