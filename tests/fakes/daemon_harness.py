"""A real daemon process for acceptance tests: the daemon's DaemonRunner (control API, /metrics, reload,
signals) around a FakeEngine, in its own process.

Run: ``python -m tests.fakes.daemon_harness --config PATH [--fail EXCHANGE]``.
``DAEMON_COMMAND`` is what the tests start; once ``cryptomon daemon`` serves the control API, switch
the acceptance tests to the real daemon by changing that one line to
``[sys.executable, "-m", "cryptomon_tui", "daemon", "--demo", "outage"]`` (the helpers add ``--config``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAEMON_COMMAND: list[str] = [sys.executable, "-m", "tests.fakes.daemon_harness"]


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
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a daemon (the harness by default), wait for /healthz, stop it with SIGTERM afterwards."""
    cmd = [*(command or DAEMON_COMMAND), "--config", str(config_path), *extra_args]
    log_file = open(log_path or config_path.with_suffix(".log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_http_ok(http_url + "/healthz", 20.0, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log_file.close()


# -- the process itself ---------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from cryptomon_tui.clock import RealClock
    from cryptomon_tui.config.loader import load_config
    from cryptomon_tui.daemon.logging import setup_logging
    from cryptomon_tui.daemon.redact import collect_secrets
    from cryptomon_tui.daemon.runner import DaemonRunner
    from cryptomon_tui.incidents.model import Severity
    from cryptomon_tui.probing.results import Outcome
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
