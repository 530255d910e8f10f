"""Everything around a running engine in the daemon process: control API, HTTP, reload, signals.

``cryptomon daemon`` builds and starts the engine, then hands it to ``DaemonRunner.run()``, which
serves until SIGTERM/SIGINT or a ``shutdown`` command. The test harness runs the same runner around
a fake engine, so switching the acceptance tests to the real daemon changes one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.errors import ConfigError
from cryptomon_tui.config.loader import load_config
from cryptomon_tui.config.root import Config
from cryptomon_tui.daemon.control import ControlServer
from cryptomon_tui.daemon.http import HttpServer
from cryptomon_tui.daemon.logging import RedactingFilter
from cryptomon_tui.daemon.reload import ConfigWatcher, install_sighup
from cryptomon_tui.engine.api import EngineAPI, ReloadResult
from cryptomon_tui.redaction import Redactor, collect_secrets

log = logging.getLogger(__name__)


class LoopLagMonitor:
    """How late the event loop wakes a sleeper: the daemon's own scheduling health (and the
    acceptance check that slow clients do not slow probes)."""

    def __init__(self, clock: Clock, interval: float = 0.25, keep: int = 240) -> None:
        self.clock = clock
        self.interval = interval
        self.keep = keep
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        while True:
            start = self.clock.monotonic()
            await self.clock.sleep(self.interval)
            lag = max(0.0, self.clock.monotonic() - start - self.interval)
            self.samples.append(lag)
            if len(self.samples) > self.keep:
                del self.samples[: len(self.samples) - self.keep]

    @property
    def last_s(self) -> float:
        return self.samples[-1] if self.samples else 0.0

    @property
    def max_s(self) -> float:
        return max(self.samples) if self.samples else 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class DaemonRunner:
    def __init__(
        self,
        engine: EngineAPI,
        config: Config,
        clock: Clock,
        *,
        config_path: Path | None = None,
        log_filter: RedactingFilter | None = None,
        on_config: Callable[[Config], None] | None = None,
        stop_event: asyncio.Event | None = None,
        handle_stop_signals: bool = True,
    ) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.config_path = config_path
        self.log_filter = log_filter
        self.on_config = on_config
        self.redactor = Redactor(collect_secrets(config))
        # Shared with ``cryptomon daemon``'s own stop event when it runs this as an extension.
        self.stop_requested = stop_event or asyncio.Event()
        self.handle_stop_signals = handle_stop_signals
        self.lag = LoopLagMonitor(clock)
        self._background: set[asyncio.Future[ReloadResult]] = set()
        self.control = ControlServer(engine, config, clock, redactor=self.redactor, on_shutdown=self.request_stop,
                                     on_reload=self._reload_requested)
        self.http: HttpServer | None = None
        if config.daemon.http.enabled:
            self.http = HttpServer(engine, config, clock, redactor=self.redactor, extra_metrics=self._extra_metrics)
        self.watcher: ConfigWatcher | None = None
        if config_path is not None:
            self.watcher = ConfigWatcher(config_path, clock, self.reload, interval=config.daemon.reload.interval)

    def _extra_metrics(self) -> dict[str, float]:
        return {
            "event_loop_lag_seconds": self.lag.last_s,
            "event_loop_lag_max_seconds": self.lag.max_s,
            "control_clients": float(len(self.control.clients)),
        }

    def request_stop(self) -> None:
        self.stop_requested.set()

    async def reload(self) -> ReloadResult:
        """Let the engine re-read the file, then pick up what the daemon itself uses (location, secrets)."""
        result = await self.engine.reload()
        if result.ok and self.config_path is not None:
            try:
                config, _ = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                log.error("config reload: %s", exc.render())
                return result
            self.config = config
            self.redactor.set_secrets(collect_secrets(config))
            if self.log_filter is not None:
                self.log_filter.set_secrets(self.redactor.secrets)
            self.control.config = config
            if self.http is not None:
                self.http.config = config
            if self.on_config is not None:
                self.on_config(config)
        return result

    async def _reload_requested(self) -> ReloadResult:
        """A reload asked for over the control API: the same path as a file change or SIGHUP, so the daemon's
        own secrets (the redactor), location and HTTP config follow the new file too."""
        if self.watcher is not None:
            return await self.watcher.trigger("control API")
        return await self.reload()

    def _on_sighup(self) -> None:
        coro = self.watcher.trigger("SIGHUP") if self.watcher is not None else self.reload()
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def start(self) -> None:
        self.lag.start()
        await self.control.start()
        try:
            if self.http is not None:
                await self.http.start()
        except BaseException:
            await self.control.stop()
            raise
        if self.watcher is not None:
            await self.watcher.prime()
            if self.config.daemon.reload.watch:
                self.watcher.start()
        install_sighup(self._on_sighup)
        if self.handle_stop_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.request_stop)

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        mine = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if self.handle_stop_signals else (signal.SIGHUP,)
        for sig in mine:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
        if self.watcher is not None:
            await self.watcher.stop()
        if self.http is not None:
            await self.http.stop()
        await self.control.stop()
        await self.lag.stop()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT or a ``shutdown`` command."""
        await self.start()
        try:
            await self.stop_requested.wait()
            log.info("daemon stopping")
        finally:
            await self.stop()
