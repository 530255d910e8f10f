"""``cryptomon daemon``: run the engine with no UI until Ctrl-C, SIGTERM or ``--for``.

Structure, so more outputs can plug in without touching the run loop:
- ``add_arguments`` declares the options;
- ``DaemonContext`` is what a running daemon has (args, config, engine, simulator, stop event);
- ``EXTENSIONS`` lists builders ``(ctx) -> DaemonExtension | None``; each extension gets
  ``await start()`` after the engine is built and ``await stop()`` after the engine stopped:
  the JSONL probe and event writers, and the control API + HTTP (/metrics, /healthz) runner.

The engine is ``engine.engine.Engine``: probing, detection, incidents, store, notifications
and analysis. A ``--demo`` daemon uses its own socket, database and a free HTTP port, so it
never mixes with (or blocks) the user's real daemon and history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Protocol

from cryptomon_tui.cli.common import EXIT_CONFIG, add_config_arg, load_or_exit
from cryptomon_tui.config.paths import data_dir, runtime_dir
from cryptomon_tui.config.root import Config
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.kernel.units import iso_utc, parse_duration

if TYPE_CHECKING:  # imported where used: a plain daemon starts without the simulator, and every other
    # command (`status --help` included) without the engine's ~0.35 s of imports
    from cryptomon_tui.daemon.logging import RedactingFilter
    from cryptomon_tui.engine.engine import Engine
    from cryptomon_tui.simulator import Simulator

log = logging.getLogger("cryptomon.daemon")

DEFAULT_DEMO_SCENARIO = "flaky"
DEMO_INTERVAL_S = 0.25
DEMO_TIMEOUT_S = 1.0
DEMO_BUDGET_SHARE = 0.5  # the simulator enforces the real limits; half of them leaves it headroom
# config kind -> simulator venue
DEMO_VENUES = {
    "binance_spot": "binance",
    "binance_futures": "binance_futures",
    "bybit": "bybit",
    "okx": "okx",
    "deribit": "deribit",
}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("daemon", help="run the monitoring engine headless (no UI)")
    add_arguments(p)
    p.set_defaults(handler=run_daemon)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument("--demo", nargs="?", const=DEFAULT_DEMO_SCENARIO, metavar="SCENARIO",
                   help=f"run against the built-in simulator (default scenario: {DEFAULT_DEMO_SCENARIO}; "
                        "also calm, outage, rate-limit-storm, maintenance, clock-drift or a YAML file)")
    p.add_argument("--for", dest="run_for", metavar="DURATION", help="stop after this long (e.g. 20s, 5m, 1h)")
    p.add_argument("--idle-stop", metavar="DURATION", default=DEMO_IDLE_STOP,
                   help=f"with --demo: stop this long after the last UI/client left (default {DEMO_IDLE_STOP}; "
                        "0 = never). A real daemon never stops on its own")
    p.add_argument("--probes-jsonl", metavar="PATH|-",
                   help="write one JSON object per probe result to PATH, or to stdout with - (stdout then "
                        "carries nothing else)")
    p.add_argument("--events-jsonl", metavar="PATH|-",
                   help="write one JSON object per incident event (opened, updated, acknowledged, silenced, "
                        "unsilenced, resolved, reopened, flapping) to PATH, or to stdout with -")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"],
                   help="log verbosity (default: daemon.log.level; logs always go to stderr)")
    p.add_argument("--log-json", action="store_true", help="JSON log lines (default: daemon.log.format)")
    p.add_argument("--no-control", action="store_true",
                   help="do not serve the control API and HTTP endpoints (a probe-only run)")
    p.add_argument("--socket", metavar="PATH", help="control socket path (default: daemon.control.socket_path)")
    p.add_argument("--store", metavar="PATH", help="SQLite file (default: storage.path or the data folder)")


# -- extension points -------------------------------------------------------------------------
class DaemonExtension(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class DaemonContext:
    args: argparse.Namespace
    config: Config
    engine: Engine
    stop_event: asyncio.Event
    simulator: Simulator | None = None  # in --demo
    extensions: list[DaemonExtension] = field(default_factory=list)
    log_filter: RedactingFilter | None = None


ExtensionBuilder = Callable[[DaemonContext], "DaemonExtension | None"]


class JsonlWriter:
    """One JSON line per item, written by a thread so the event loop never waits on the disk or a pipe."""

    def __init__(self, target: str, flush_interval_s: float = 0.2, scrub: Callable[[str], str] | None = None) -> None:
        self.target = target
        self._scrub = scrub  # masks configured secrets (e.g. a key pasted into an ack note); runs on the thread
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._flush_interval_s = flush_interval_s
        self._thread: threading.Thread | None = None
        self._broken = False
        self.lines = 0

    def write_line(self, line: str) -> None:
        if not self._broken:
            self._queue.put(line)

    def write_result(self, result: ProbeResult) -> None:
        self.write_line(json.dumps(result.to_json_dict(), separators=(",", ":")))

    async def start(self) -> None:
        stream: IO[str]
        if self.target == "-":
            stream = sys.stdout
        else:
            stream = await asyncio.to_thread(open, self.target, "a", encoding="utf-8")
        self._thread = threading.Thread(target=self._run, args=(stream,), name="jsonl-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None

    def _run(self, stream: IO[str]) -> None:
        done = False
        try:
            while not done:
                batch: list[str] = []
                try:
                    item = self._queue.get(timeout=self._flush_interval_s)
                except queue.Empty:
                    continue
                while True:  # drain what is there: one write and one flush per batch
                    if item is None:
                        done = True
                        break
                    batch.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    text = "\n".join(batch) + "\n"
                    stream.write(self._scrub(text) if self._scrub is not None else text)
                    stream.flush()
                    self.lines += len(batch)
        except (BrokenPipeError, OSError) as exc:
            self._broken = True
            log.warning("stopped writing %s: %s", "stdout" if self.target == "-" else self.target,
                        type(exc).__name__)
        finally:
            if stream is not sys.stdout:
                stream.close()


def _secret_scrubber(ctx: DaemonContext) -> Callable[[str], str]:
    from cryptomon_tui.redaction import Redactor, collect_secrets

    return Redactor(collect_secrets(ctx.config)).redact_secrets


class _ProbeJsonl:
    def __init__(self, ctx: DaemonContext, target: str) -> None:
        self.writer = JsonlWriter(target, scrub=_secret_scrubber(ctx))
        self._ctx = ctx
        self._unsubscribe: Callable[[], None] | None = None

    def write_streams(self, now: float, stats: list[StreamStats]) -> None:
        ts = iso_utc(now)
        for item in stats:
            self.writer.write_line(json.dumps(item.to_record(ts), separators=(",", ":")))

    async def start(self) -> None:
        await self.writer.start()
        self._ctx.engine.add_result_sink(self.writer.write_result)
        self._ctx.engine.add_stream_sink(self.write_streams)

    async def stop(self) -> None:
        await self.writer.stop()


def _probe_jsonl(ctx: DaemonContext) -> DaemonExtension | None:
    target = getattr(ctx.args, "probes_jsonl", None)
    return _ProbeJsonl(ctx, target) if target else None


# The incident events of the --events-jsonl contract (analysis_ready travels on the control API only).
JSONL_EVENTS = frozenset(
    {
        EventType.OPENED,
        EventType.UPDATED,
        EventType.ACKNOWLEDGED,
        EventType.SILENCED,
        EventType.UNSILENCED,
        EventType.RESOLVED,
        EventType.REOPENED,
        EventType.FLAPPING,
    }
)


class _EventJsonl:
    def __init__(self, ctx: DaemonContext, target: str) -> None:
        self.writer = JsonlWriter(target, scrub=_secret_scrubber(ctx))
        self._ctx = ctx

    def _write(self, event: IncidentEvent) -> None:
        if event.event in JSONL_EVENTS:
            self.writer.write_line(json.dumps(event.to_json_dict(), separators=(",", ":")))

    async def start(self) -> None:
        await self.writer.start()
        self._ctx.engine.add_event_sink(self._write)

    async def stop(self) -> None:
        await self.writer.stop()


def _event_jsonl(ctx: DaemonContext) -> DaemonExtension | None:
    target = getattr(ctx.args, "events_jsonl", None)
    if target and target == getattr(ctx.args, "probes_jsonl", None) and target == "-":
        log.warning("--probes-jsonl and --events-jsonl both write to stdout; lines are interleaved")
    return _EventJsonl(ctx, target) if target else None


DEMO_IDLE_STOP = "10m"
IDLE_CHECK_S = 5.0


class _Control:
    """Control API, HTTP (/metrics, /healthz, /readyz), config reload and SIGHUP.

    A ``--demo`` daemon also stops ``--idle-stop`` after its last client left: orphaned demo
    daemons were found probing the simulator for hours (~10 % of a core each)."""

    def __init__(self, ctx: DaemonContext) -> None:
        from cryptomon_tui.clock import RealClock
        from cryptomon_tui.daemon.runner import DaemonRunner

        self._ctx = ctx
        self.runner = DaemonRunner(
            ctx.engine,
            ctx.config,
            RealClock(),
            config_path=ctx.engine.config_path,
            stop_event=ctx.stop_event,
            handle_stop_signals=False,
            log_filter=ctx.log_filter,
        )

    async def start(self) -> None:
        await self.runner.start()
        log.info("control API on %s", self.runner.control.address.describe())
        self._idle_task: asyncio.Task[None] | None = None
        idle = _idle_stop_s(self._ctx.args)
        if idle:
            self._idle_task = asyncio.get_running_loop().create_task(self._stop_when_idle(idle))

    async def _stop_when_idle(self, idle_s: float) -> None:
        from cryptomon_tui.clock import RealClock

        clock = RealClock()
        last_client = clock.monotonic()  # a demo daemon is started by a UI that attaches at once
        while not self._ctx.stop_event.is_set():
            await clock.sleep(min(IDLE_CHECK_S, max(0.2, idle_s / 4)))
            now = clock.monotonic()
            if self.runner.control.clients:
                last_client = now
            elif now - last_client >= idle_s:
                log.info("demo daemon: no client for %ss; stopping", f"{idle_s:g}")
                self._ctx.stop_event.set()
                return

    async def stop(self) -> None:
        if getattr(self, "_idle_task", None) is not None and self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
        await self.runner.stop()


def _idle_stop_s(args: argparse.Namespace) -> float:
    """Seconds a demo daemon waits without clients before stopping; 0 for a real daemon or 'never'."""
    if not getattr(args, "demo", None):
        return 0.0
    try:
        return max(0.0, parse_duration(str(getattr(args, "idle_stop", DEMO_IDLE_STOP) or "0")))
    except ValueError:
        log.warning("--idle-stop %r is not a duration; using %s", getattr(args, "idle_stop", None), DEMO_IDLE_STOP)
        return parse_duration(DEMO_IDLE_STOP)


def _control(ctx: DaemonContext) -> DaemonExtension | None:
    return None if getattr(ctx.args, "no_control", False) else _Control(ctx)


EXTENSIONS: list[ExtensionBuilder] = [_probe_jsonl, _event_jsonl, _control]


# -- demo --------------------------------------------------------------------------------------
def demo_config(config: Config, base_urls: dict[str, str]) -> Config:
    """Point every configured exchange at the simulator with fast, demo-friendly probing."""
    demo = config.model_copy(deep=True)
    for name, ex in demo.exchanges.items():
        sim_venue = DEMO_VENUES.get(ex.kind or "")
        if sim_venue is None or sim_venue not in base_urls:
            ex.enabled = False  # generic targets would leave the loopback demo
            log.info("demo: %s (%s) is not simulated; disabled for this run", name, ex.kind)
            continue
        ex.base_url = base_urls[sim_venue]
        ex.interval = DEMO_INTERVAL_S
        ex.timeout = DEMO_TIMEOUT_S
        ex.budget_share = max(ex.budget_share or 0.0, DEMO_BUDGET_SHARE)
    demo.probing.breaker.cooldown = 2.0
    demo.probing.breaker.max_cooldown = 10.0
    # a demo never shares the user's socket, history or HTTP port
    if demo.daemon.control.transport == "unix":
        demo.daemon.control.socket_path = runtime_dir() / "cryptomon-demo.sock"
    demo.daemon.http.port = 0
    demo.storage.path = data_dir() / "cryptomon-demo.sqlite3"
    return demo


def apply_cli_overrides(config: Config, args: argparse.Namespace) -> Config:
    """``--socket`` and ``--store`` win over the file and over the demo's own socket and database."""
    if getattr(args, "socket", None):
        config.daemon.control.transport = "unix"
        config.daemon.control.socket_path = args.socket
    if getattr(args, "store", None):
        config.storage.path = args.store
    return config


# -- run -----------------------------------------------------------------------------------------
def run_daemon(args: argparse.Namespace) -> int:
    from cryptomon_tui.daemon.logging import setup_logging
    from cryptomon_tui.redaction import collect_secrets

    config, source = load_or_exit(getattr(args, "config", None))
    level = getattr(args, "log_level", None) or config.daemon.log.level
    json_logs = bool(getattr(args, "log_json", False)) or config.daemon.log.format == "json"
    args.log_filter = setup_logging(json_logs, level, collect_secrets(config), stream=sys.stderr)
    args.config_source = source
    from cryptomon_tui.config.loader import config_file_warnings

    for warning in config_file_warnings(source, config):
        log.warning("config: %s", warning)
    config = apply_cli_overrides(config, args)
    duration: float | None = None
    if getattr(args, "run_for", None):
        try:
            duration = parse_duration(args.run_for)
        except ValueError as exc:
            print(f"cryptomon: --for: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        return asyncio.run(_serve(args, config, duration))
    except KeyboardInterrupt:  # a Ctrl-C before the handlers were installed
        return 130


async def _serve(args: argparse.Namespace, config: Config, duration: float | None) -> int:
    from cryptomon_tui.daemon.control import ControlServerError
    from cryptomon_tui.daemon.http import HttpServerError

    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, _on_signal, stop_event, sig)
    simulator = None
    if getattr(args, "demo", None):
        simulator = await _start_simulator(args.demo)
        if simulator is None:
            return EXIT_CONFIG
        config = apply_cli_overrides(demo_config(config, simulator.base_urls), args)
    urls = simulator.base_urls if simulator is not None else None

    def transform(c: Config) -> Config:
        # A reloaded file gets the same treatment as the first one: demo wiring, then --socket/--store.
        return apply_cli_overrides(demo_config(c, urls) if urls is not None else c, args)

    try:
        from cryptomon_tui.engine.engine import Engine

        engine = Engine(config, config_path=getattr(args, "config_source", None), config_transform=transform)
    except ValueError as exc:
        print(f"cryptomon: {exc}", file=sys.stderr)
        if simulator is not None:
            await simulator.stop()
        return EXIT_CONFIG
    ctx = DaemonContext(args=args, config=config, engine=engine, stop_event=stop_event, simulator=simulator,
                        log_filter=getattr(args, "log_filter", None))
    for build in EXTENSIONS:
        extension = build(ctx)
        if extension is not None:
            ctx.extensions.append(extension)
    try:
        try:
            await engine.prepare()  # restored state is in the very first snapshot the control API serves
            for extension in ctx.extensions:
                await extension.start()
        except OSError as exc:
            where = f" {exc.filename}" if exc.filename else ""
            print(f"cryptomon: cannot open{where}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        except (ControlServerError, HttpServerError) as exc:
            # another daemon holds the socket or the port: say so, no traceback
            print(f"cryptomon: {exc}", file=sys.stderr)
            return 1
        await engine.start()
        # Everything built so far lives as long as the daemon: keep it out of the GC's full collections,
        # whose pauses would otherwise land inside measured latencies.
        gc.freeze()
        watching = ", ".join(f"{name} ({len(w.slots)} probes)" for name, w in engine.runner.workers.items())
        log.info("daemon running%s: %s", f" against the simulator ({args.demo})" if simulator else "",
                 watching or "nothing enabled")
        try:
            await asyncio.wait_for(stop_event.wait(), duration)
        except TimeoutError:
            log.info("--for %ss elapsed; stopping", f"{duration:g}")
    finally:
        await engine.stop()
        for extension in reversed(ctx.extensions):
            try:
                await extension.stop()
            except Exception as exc:
                log.warning("stopping %s failed: %s", type(extension).__name__, exc)
        if simulator is not None:
            await simulator.stop()
    return 0


async def _start_simulator(scenario: str) -> Simulator | None:
    from cryptomon_tui.config.errors import ConfigError
    from cryptomon_tui.simulator import Simulator

    try:
        simulator = Simulator(scenario)
    except (ConfigError, ValueError, OSError) as exc:
        render = getattr(exc, "render", None)
        print(render() if callable(render) else f"cryptomon: --demo: {exc}", file=sys.stderr)
        return None
    await simulator.start()
    # Wall time of the scenario's zero, so a reader of --probes-jsonl can line results up with its faults.
    zero = time.time() - simulator.elapsed()
    log.info("simulator started: scenario %s, time zero %s, %s", simulator.scenario.name, iso_utc(zero),
             ", ".join(f"{k}={v}" for k, v in simulator.base_urls.items()))
    return simulator


def _on_signal(stop_event: asyncio.Event, sig: signal.Signals) -> None:
    if stop_event.is_set():
        if sig is signal.SIGINT:
            raise SystemExit(130)  # a second Ctrl-C: stop now
        log.info("received %s while already stopping; finishing the clean stop", sig.name)
        return  # e.g. systemd's SIGTERM after a `shutdown` command: the flush in progress must finish
    log.info("received %s; stopping", sig.name)
    stop_event.set()
