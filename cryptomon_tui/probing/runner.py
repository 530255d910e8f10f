"""The probe runner: owns the probe workers (one per exchange) and fans their results out to subscribers.

The engine (``engine.engine.Engine``) owns one and subscribes metrics, detection, the store and the
daemon's JSONL writer: plain sync callbacks run on the event loop for every ProbeResult; they must be
cheap and must not block. A subscriber that raises is logged once and kept: one broken consumer never
stops probing or the other consumers.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config.root import Config
from cryptomon_tui.exchanges.base import ExchangeAdapter
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.probing.budget import AdapterFactory, PlannedProbe, plan_schedule
from cryptomon_tui.probing.scheduler import ExchangeWorker, LagHook, connections_needed
from cryptomon_tui.probing.transport import (
    Transport,
    TransportFactory,
    TransportOptions,
    aiohttp_transport_factory,
)

log = logging.getLogger(__name__)

ResultCallback = Callable[[ProbeResult], None]


class ProbeRunner:
    """Runs the probe plan of a config. Construct, ``await start()``, subscribe, ``await stop()``."""

    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        transport_factory: TransportFactory | None = None,
        adapter_factory: AdapterFactory | None = None,
        rng: random.Random | None = None,
        lag_hook: LagHook | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or RealClock()
        self._transport_factory = transport_factory or aiohttp_transport_factory
        self._adapter_factory = adapter_factory
        self._rng = rng or random.Random()
        self._lag_hook = lag_hook
        self._subscribers: list[ResultCallback] = []
        self._broken_subscribers: set[int] = set()
        self.plan: list[PlannedProbe] = plan_schedule(config, adapter_factory)
        self.workers: dict[str, ExchangeWorker] = {}
        self._transports: list[Transport] = []
        self._adopted: dict[str, ExchangeWorker] = {}
        self.started = False

    # -- results -------------------------------------------------------------------------
    def subscribe_results(self, callback: ResultCallback) -> Callable[[], None]:
        """Call ``callback`` with every ProbeResult; returns a function that unsubscribes it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _publish(self, result: ProbeResult) -> None:
        for callback in tuple(self._subscribers):
            try:
                callback(result)
            except Exception:
                key = id(callback)
                if key not in self._broken_subscribers:
                    self._broken_subscribers.add(key)
                    log.exception("result subscriber %r failed (logged once; it stays subscribed)", callback)

    # -- lifecycle -----------------------------------------------------------------------
    def _adapter(self, name: str) -> ExchangeAdapter:
        if self._adapter_factory is not None:
            return self._adapter_factory(name, self.config.exchanges[name])
        from cryptomon_tui.exchanges.registry import create_adapter

        return create_adapter(name, self.config.exchanges[name])

    async def start(self) -> None:
        if self.started:
            return
        by_exchange: dict[str, list[PlannedProbe]] = {}
        for item in self.plan:
            by_exchange.setdefault(item.exchange, []).append(item)
        probing = self.config.probing
        for name, planned in by_exchange.items():
            cfg = self.config.exchanges[name]
            options = TransportOptions(
                max_body_bytes=probing.max_body_bytes,
                user_agent=probing.user_agent,
                max_connections=connections_needed(planned, float(cfg.timeout)),
                wall=self.clock.now,
            )
            transport = self._transport_factory(name, options)
            self._transports.append(transport)
            worker = ExchangeWorker(
                name,
                cfg,
                self._adapter(name),
                planned,
                transport,
                self.clock,
                probing,
                self._publish,
                rng=random.Random(self._rng.random()),
                lag_hook=self._lag_hook,
            )
            previous = self._adopted.get(name)
            if previous is not None:
                worker.backoff = previous.backoff  # a rebuild must never end a ban or a rate-limit pause early
                if previous.breaker.threshold == worker.breaker.threshold and (
                    previous.breaker.base_cooldown_s == worker.breaker.base_cooldown_s
                ):
                    worker.breaker = previous.breaker
            self.workers[name] = worker
        self._adopted.clear()
        for item in self.plan:
            if item.stretched:
                log.info("budget: %s", item.explain())
        for worker in self.workers.values():
            worker.start()
        self.started = True

    async def stop(self) -> None:
        for worker in self.workers.values():
            await worker.stop()
        for transport in self._transports:
            try:
                await transport.aclose()
            except Exception as exc:  # closing must never block shutdown
                log.debug("closing a transport failed: %s", type(exc).__name__)
        self._transports.clear()
        self.started = False

    def adopt_state(self, previous: ProbeRunner) -> None:
        """Carry rate-limit/ban pauses and breakers over from the engine this one replaces (config reload).

        Call before ``start()``. Exchanges are matched by name; a breaker is kept only when its settings
        did not change.
        """
        self._adopted = dict(previous.workers)

    # -- commands ------------------------------------------------------------------------
    def _worker(self, exchange: str) -> ExchangeWorker:
        try:
            return self.workers[exchange]
        except KeyError:
            raise KeyError(f"unknown exchange {exchange!r}; watching: {', '.join(self.workers) or 'none'}") from None

    def pause(self, exchange: str) -> None:
        self._worker(exchange).pause()

    def resume(self, exchange: str) -> None:
        self._worker(exchange).resume()

    # -- observation ---------------------------------------------------------------------
    def probe_state(self) -> dict[str, dict[str, object]]:
        """Per exchange: breaker, backoff, schedule lag, effective intervals, pause flag."""
        out: dict[str, dict[str, object]] = {}
        for name, worker in self.workers.items():
            try:
                out[name] = worker.snapshot()
            except Exception as exc:  # one exchange's bad state must not hide the others (issue 13)
                out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        return out
