"""The whole engine: probing -> metrics -> detection -> incidents -> store / notify / analysis / faces.

``Engine`` implements ``EngineAPI`` (engine/api.py), the only thing the daemon's control API,
/metrics and the UI see. It owns the wiring and nothing else: each step lives in its package.

Event flow: probe results are recorded synchronously (cheap); incident events go onto one
ordered queue drained by a single task, which persists them, hands them to the notifier,
starts auto-analysis and fans them out to subscribers. So a slow webhook, LLM or client
never delays a probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptomon_tui import __version__
from cryptomon_tui.analysis.ledger import AnalysisCache, CountingLedger, UsageLedger, UsageTotals
from cryptomon_tui.analysis.model import Analysis
from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config import Config, ConfigError, load_config
from cryptomon_tui.engine.api import CommandError, EngineCounters, Health, ReloadResult
from cryptomon_tui.engine.pipeline import DetectionPipeline
from cryptomon_tui.engine.status import exchange_status
from cryptomon_tui.engine.tls import TlsAction, TlsWatch
from cryptomon_tui.engine.views import (
    analysis_json,
    channel_view,
    event_view,
    facts,
    incident_view,
    maintenance_view,
    result_view,
    silence_view,
    stream_view,
)
from cryptomon_tui.exchanges.registry import create_adapter
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, Matcher
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.history import HistoryAnswer
from cryptomon_tui.kernel.jsonvalue import JsonObject, text
from cryptomon_tui.kernel.results import BreakerState, ProbeResult
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.snapshot import (
    AnalysisView,
    BreakerView,
    ExchangeView,
    IncidentView,
    ProbeView,
    Snapshot,
    StoreView,
)
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics.series import SeriesStats
from cryptomon_tui.metrics.totals import DURATION_BUCKETS_S, DurationCounts
from cryptomon_tui.probing.runner import ProbeRunner
from cryptomon_tui.probing.scheduler import ExchangeWorker
from cryptomon_tui.probing.transport import TransportFactory
from cryptomon_tui.streams.runner import ConnectorFactory, StreamRunner

if TYPE_CHECKING:  # built lazily (start-up cost): only their types are needed here
    from cryptomon_tui.analysis.context import AnalysisContext
    from cryptomon_tui.analysis.service import AnalysisService
    from cryptomon_tui.notify.fallback_outbox import FallbackOutbox
    from cryptomon_tui.notify.notifier import Notifier
    from cryptomon_tui.notify.outbox import OutboxRepository
    from cryptomon_tui.store.store import Store

log = logging.getLogger("cryptomon.engine")

RECENT_RESULTS_PER_EXCHANGE = 60
# Failures are kept apart so an incident's evidence outlives its recovery: at a 250 ms cadence the
# last 60 results cover 5 s, and an analysis asked for after the fault would see only successes.
RECENT_FAILURES_PER_EXCHANGE = 60
SNAPSHOT_MIN_INTERVAL_S = 0.2
ROLLUP_EVERY_S = 15.0
STORE_FAILING_RULE = "store_failing"
STORE_ERROR_RECENT_S = 10.0  # a store write failed this recently: not ready (yet)
STORE_FAILING_AFTER_S = 3.0  # one locked write is no incident; a store refusing writes for seconds is
COSTS_REFRESH_S = 60.0
# how often the daemon asks the store whether another process committed (a queued CLI command): one pragma
COMMAND_CHECK_S = 0.5
EventSink = Callable[[IncidentEvent], None]


# events whose message must say what broke and what to do
_VERDICT_EVENTS = frozenset({EventType.OPENED, EventType.REOPENED})


StreamKey = tuple[str, str]  # (exchange, stream)


@dataclass(frozen=True, slots=True)
class _StreamTotals:
    """Cumulative stream counts by (exchange, stream), for /metrics (see EngineCounters)."""

    messages: dict[StreamKey, int] = field(default_factory=dict)
    seq_gaps: dict[StreamKey, int] = field(default_factory=dict)
    reconnects: dict[StreamKey, int] = field(default_factory=dict)
    gap_seconds: dict[StreamKey, DurationCounts] = field(default_factory=dict)
    lag_seconds: dict[StreamKey, DurationCounts] = field(default_factory=dict)


class Engine:
    """The engine: owns a ProbeRunner and a DetectionPipeline and wires store, notify and analysis to them.

    Construct, ``await start()``, use the EngineAPI methods, ``await stop()``."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        config_path: Path | None = None,
        use_store: bool = True,
        store_path: Path | None = None,
        transport_factory: TransportFactory | None = None,
        notify: bool = True,
        config_transform: Callable[[Config], Config] | None = None,
        stream_connector_factory: ConnectorFactory | None = None,
    ) -> None:
        self.config = config
        self._transform = config_transform  # e.g. --demo: point a reloaded config at the simulator
        self.config_path = config_path
        self.clock: Clock = clock or RealClock()
        self._use_store = use_store
        self._store_path = store_path
        self._transport_factory = transport_factory
        self._notify_enabled = notify
        self.store: Store | None = None
        self._tls = TlsWatch()
        self._fallback_outbox: FallbackOutbox | None = None
        self._store_failing_since: float | None = None
        self._store_incident = False
        self.notifier: Notifier | None = None
        self.analysis: AnalysisService | None = None
        self.pipeline = self._new_pipeline(config)
        self.runner = self._new_runner(config)
        self._stream_connector_factory = stream_connector_factory
        self.streams = self._new_streams(config)
        self._stream_base = _StreamTotals()  # what stream probes replaced by a reload had counted
        self._recent: dict[str, deque[ProbeResult]] = {}
        self._recent_failures: dict[str, deque[ProbeResult]] = {}
        self._events: asyncio.Queue[IncidentEvent | None] = asyncio.Queue()
        self._subscribers: set[asyncio.Queue[EventView]] = set()
        self._sinks: list[EventSink] = []
        self._result_sinks: list[Callable[[ProbeResult], None]] = []
        self._stream_sinks: list[Callable[[float, list[StreamStats]], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._analyses: dict[str, Analysis] = {}
        self._analysis_pending = 0
        self._version = 0
        self._snap: Snapshot | None = None
        self._snapshot_error: str | None = None  # why the last snapshot could not be built (None = it could)
        self._snap_version = -1
        self._snap_at = -1e18
        self._seq = 0
        self._started_at: float | None = None
        self._running = False
        self._prepared = False
        self._config_loaded = True
        self._llm_spend: float | None = None  # month-to-date LLM spend, refreshed after analyses and each minute
        # /metrics counters that must keep growing when a reload replaces the notifier or the analysis service
        self._incidents_opened: dict[tuple[str, str], int] = {}
        self._llm_usage = UsageTotals()
        self._notify_base: dict[tuple[str, str], int] = {}

    # ------------------------------------------------------------------ construction
    def _tolerances(self, config: Config) -> dict[str, tuple[float, float]]:
        out: dict[str, tuple[float, float]] = {}
        for name, cfg in config.enabled_exchanges().items():
            try:
                adapter = create_adapter(name, cfg)
            except Exception:  # an adapter that cannot be built is reported by the probing engine
                continue
            out[name] = (adapter.clock_ahead_tolerance_ms, adapter.clock_behind_tolerance_ms)
        return out

    def _new_pipeline(self, config: Config) -> DetectionPipeline:
        return DetectionPipeline(config, self.clock, clock_tolerances=self._tolerances(config))

    def _new_runner(self, config: Config) -> ProbeRunner:
        runner = ProbeRunner(config, self.clock, transport_factory=self._transport_factory)
        runner.subscribe_results(self._on_result)
        return runner

    def _new_streams(self, config: Config) -> StreamRunner:
        """Stream probes. With an injected REST transport (a replay, a test double) and no injected
        stream connector the engine is not talking to the real exchanges: no real socket is opened."""
        if self._transport_factory is not None and self._stream_connector_factory is None:
            config = config.model_copy(update={"exchanges": {
                name: ex.model_copy(update={"streams": False}) for name, ex in config.exchanges.items()}})
        return StreamRunner(config, self.clock, self._clock_offset, self._stream_connector_factory,
                            bounds=DURATION_BUCKETS_S)

    def _clock_offset(self, exchange: str) -> tuple[float, float] | None:
        """The REST probes' latest clock offset (server - local, ms) and its error bound, for stream lag."""
        metrics = self.pipeline.metrics.exchange(exchange)
        if metrics is None or not metrics.aggregate.offsets:
            return None
        _, offset, error = metrics.aggregate.offsets[-1]
        return offset, (error if error is not None else 50.0)

    def add_event_sink(self, sink: EventSink) -> None:
        """Sync callback per incident event, in order (the daemon's --events-jsonl writer)."""
        self._sinks.append(sink)

    def add_stream_sink(self, sink: Callable[[float, list[StreamStats]], None]) -> None:
        """Sync callback per detection tick with every stream's verdict (the --probes-jsonl writer)."""
        self._stream_sinks.append(sink)

    def add_result_sink(self, sink: Callable[[ProbeResult], None]) -> None:
        """Sync callback per probe result (the daemon's --probes-jsonl writer)."""
        self._result_sinks.append(sink)

    # ------------------------------------------------------------------ lifecycle
    async def prepare(self) -> None:
        """Open the store and restore incidents, silences and windows, so the first snapshot a face
        sees after a restart is already complete. Idempotent; ``start`` calls it when needed."""
        if self._prepared:
            return
        self._prepared = True
        if self._use_store:
            await self._open_store()

    async def start(self) -> None:
        self._started_at = self.clock.now()
        await self.prepare()
        if self.store is not None:
            # commands the CLI applied while no daemon ran: apply them (idempotent) on top of the restore and
            # announce them (an offline ack reaches the channels now). Baseline first: a command committed
            # after it is seen by the command loop.
            await self.store.others_committed()
            await self._apply_pending_commands()
        self._build_analysis()
        with contextlib.suppress(Exception):
            await self._require_analysis().warm_up()  # one-time imports off the loop, before probes are timed
        await self.refresh_costs()
        if self._notify_enabled:
            await self._start_notifier()
        self._tasks.append(asyncio.create_task(self._event_loop(), name="cryptomon-events"))
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="cryptomon-detect"))
        if self.store is not None:
            self._tasks.append(asyncio.create_task(self._command_loop(), name="cryptomon-commands"))
        await self.runner.start()
        await self.streams.start()
        self._running = True
        self._invalidate_snapshot()  # one cached while starting (a face, a scrape) has no workers in it
        log.info("engine started: %s", ", ".join(self.runner.workers) or "no exchanges")

    async def stop(self) -> None:
        self._running = False
        await self.runner.stop()
        await self.streams.stop()
        # final evaluation + flush the event queue so nothing decided is lost
        self._emit(self.pipeline.tick())
        await self._events.put(None)
        for task in self._tasks:
            if task.get_name() == "cryptomon-events":
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=10)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.analysis is not None:
            with contextlib.suppress(Exception):
                await self.analysis.aclose()
        if self.notifier is not None:
            with contextlib.suppress(Exception):
                await self.notifier.stop()
        if self._fallback_outbox is not None:
            with contextlib.suppress(Exception):
                await self._fallback_outbox.flush()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._tls.save)
        if self.store is not None:
            if rollups := self.pipeline.metrics.drain_rollups(self.clock.now() + 3600):
                self.store.write_rollups(rollups)
            with contextlib.suppress(Exception):
                await self.store.close()
        log.info("engine stopped")

    async def _open_store(self) -> None:
        from cryptomon_tui.store.store import Store

        store = Store(self.config.storage, self.clock, path=self._store_path)
        await store.open()
        self.store = store
        self._tls.path = Path(str(store.path) + ".tls-issuers.json")  # known TLS issuers survive restarts
        await asyncio.to_thread(self._tls.load)
        state = await store.load_state(self.clock.now(), self.pipeline.incidents.resolved_kept_for)
        self.pipeline.incidents.restore(
            state.open_incidents,
            state.silences,
            state.maintenance_windows,
            state.recently_resolved,
            grace_s=self.config.incidents.restore_grace,
        )
        if state.open_incidents:
            log.info("restored %d open incident(s) from %s", len(state.open_incidents), store.path)

    def _build_analysis(self) -> None:
        from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
        from cryptomon_tui.analysis.service import AnalysisService

        ledger: UsageLedger = InMemoryUsageLedger()
        cache: AnalysisCache | None = None
        if self.store is not None:
            try:
                from cryptomon_tui.analysis.store_backed import StoreAnalysisCache, StoreUsageLedger

                ledger = StoreUsageLedger(self.store)
                cache = StoreAnalysisCache(self.store, self.clock, self.config.analysis.cache_ttl)
            except ImportError:
                pass
        self.analysis = AnalysisService(
            self.config, CountingLedger(ledger, self._llm_usage), self.clock, cache, context_source=self._context_for
        )

    async def _start_notifier(self) -> None:
        from cryptomon_tui.notify.notifier import Notifier
        from cryptomon_tui.notify.outbox import InMemoryOutbox

        outbox: OutboxRepository
        if self.store is not None:
            from cryptomon_tui.notify.fallback_outbox import FallbackOutbox
            from cryptomon_tui.notify.store_outbox import StoreOutbox

            store = self.store
            # A failing store must not silence alerts: rows it refuses wait (and go out) from memory.
            outbox = self._fallback_outbox = FallbackOutbox(StoreOutbox(store), self.clock, lambda: store.health().ok)
        else:
            outbox = InMemoryOutbox()
        self.notifier = Notifier(
            self.config,
            outbox,
            self.clock,
            on_channel_broken=self._channel_broken,
            on_channel_recovered=self._channel_recovered,
        )
        await self.notifier.start()

    # ------------------------------------------------------------------ data flow
    def _on_result(self, result: ProbeResult) -> None:
        recent = self._recent.get(result.exchange)
        if recent is None:
            recent = self._recent[result.exchange] = deque(maxlen=RECENT_RESULTS_PER_EXCHANGE)
        if result.ok and recent and not recent[-1].ok:  # after failures or open-circuit skips
            self.streams.retry_now(result.exchange)  # the exchange answers again: so may its streams
        recent.append(result)
        if not result.ok and result.outcome.counts_as_attempt:
            failures = self._recent_failures.get(result.exchange)
            if failures is None:
                failures = self._recent_failures[result.exchange] = deque(maxlen=RECENT_FAILURES_PER_EXCHANGE)
            failures.append(result)
        if self.store is not None:
            self.store.on_result(result)
        for sink in self._result_sinks:
            sink(result)
        self._emit(self.pipeline.on_result(result))
        if result.extra and "tls_fingerprint" in result.extra:  # once per new TLS connection
            self._apply_tls(self._tls.observe(result.exchange, result.extra, self.clock.now()))
        self._version += 1

    def _apply_tls(self, actions: list[TlsAction]) -> None:
        incidents = self.pipeline.incidents
        for a in actions:
            if a.raise_it:
                self._emit(incidents.raise_external(a.rule, a.labels, a.severity, a.summary))
            else:
                self._emit(incidents.resolve_external(a.rule, a.labels))

    def _emit(self, events: list[IncidentEvent]) -> None:
        for event in events:
            if event.event is EventType.OPENED:
                key = (event.incident.rule, event.incident.severity.value)
                self._incidents_opened[key] = self._incidents_opened.get(key, 0) + 1
            self._events.put_nowait(event)
        if events:
            self._version += 1

    async def _event_loop(self) -> None:
        while True:
            event = await self._events.get()
            if event is None:
                return
            try:
                await self._handle_event(event)
            except Exception:
                log.exception("handling %s of %s failed", event.event.value, event.incident.id)

    async def _handle_event(self, event: IncidentEvent, analysis: JsonObject | None = None) -> None:
        if analysis is None and event.event in _VERDICT_EVENTS:
            analysis = await self._verdict_now(event.incident)
        if self.store is not None:
            self.store.on_event(event)
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                log.exception("event sink failed")
        # the notification goes at once: analysis never holds a firing back (a hung LLM would delay it past
        # the incident's end); the verdict follows as an update, or rides along if it is ready first
        await self._notify(event, analysis)
        self._broadcast(event)
        analysis_service = self.analysis
        auto = analysis_service is not None and event.event is not EventType.ANALYSIS_READY
        if auto and analysis_service is not None and analysis_service.should_auto_analyze(event):
            self._start_analysis(event.incident.id, force=False, offline=False, notify_update=True)

    async def _notify(self, event: IncidentEvent, analysis: JsonObject | None) -> None:
        if self.notifier is None or event.event is EventType.ANALYSIS_READY:
            return
        try:
            await self.notifier.on_event(event, analysis)
        except Exception:
            log.exception("notifier failed on %s of %s", event.event.value, event.incident.id)

    def _broadcast(self, event: IncidentEvent) -> None:
        item = event_view(event)
        for queue in tuple(self._subscribers):
            queue.put_nowait(item)

    def _store_ok(self, h: StoreView) -> bool:
        """Writable, and no write failed lately: on a full disk small writes still fit in free pages while
        the batches fail, and readiness must not flap with every one that gets through."""
        recent = h.last_error_at is not None and self.clock.now() - h.last_error_at < STORE_ERROR_RECENT_S
        return bool(h.ok) and not recent

    @staticmethod
    def _store_reason(h: StoreView) -> str:
        if not h.open:
            return f"cannot open {h.path}: {h.last_error_kind or 'error'}: {h.last_error or 'unknown'}"
        return f"writes to {h.path} fail: {h.last_error_kind or 'error'}: {h.last_error or 'unknown'}"

    def check_store(self) -> None:
        """Raise the "store failing" incident (through the channels, which keep working from memory) once the
        store has refused writes for ``STORE_FAILING_AFTER_S``; resolve it when a write succeeds again."""
        if self.store is None:
            return
        h = self.store.health()
        now = self.clock.monotonic()
        if self._store_ok(h):
            self._store_failing_since = None
            if self._store_incident:
                self._store_incident = False
                self._emit(self.pipeline.incidents.resolve_external(STORE_FAILING_RULE, {}))
            return
        if self._store_failing_since is None:
            self._store_failing_since = now
        if not self._store_incident and now - self._store_failing_since >= STORE_FAILING_AFTER_S:
            self._store_incident = True
            summary = f"store failing ({self._store_reason(h)}); notifications continue from memory"
            self._emit(self.pipeline.incidents.raise_external(STORE_FAILING_RULE, {}, Severity.ERROR, summary))

    async def _tick_loop(self) -> None:
        every = float(self.config.detection.evaluate_every)
        last_rollup = self.clock.monotonic()
        while True:
            await self.clock.sleep(every)
            try:
                self.check_store()
                if self._tls.dirty:
                    await asyncio.to_thread(self._tls.save)
                stream_stats = self.streams.stats()
                self.pipeline.record_streams(stream_stats)
                for stream_sink in self._stream_sinks:
                    stream_sink(self.clock.now(), stream_stats)
                self._emit(self.pipeline.tick())
                self._sync_store_state()
                if self.store is not None and self.clock.monotonic() - last_rollup >= ROLLUP_EVERY_S:
                    last_rollup = self.clock.monotonic()
                    if rollups := self.pipeline.metrics.drain_rollups(self.clock.now()):
                        self.store.write_rollups(rollups)
            except Exception:
                log.exception("detection tick failed")

    async def _command_loop(self) -> None:
        """Commands a CLI queued in the store, applied within ``COMMAND_CHECK_S``; LLM spend recorded by
        ``cryptomon analyze`` runs once a minute. A CLI sends its commands over the control API when it can;
        it queues one when it finds no control address (a daemon run with ``--no-control``, or one still
        starting). Checking costs one ``PRAGMA data_version`` while idle; the queue is read only after
        another process committed."""
        assert self.store is not None
        last_costs = self.clock.monotonic()
        while True:
            await self.clock.sleep(COMMAND_CHECK_S)
            if await self.store.others_committed():
                await self._apply_pending_commands()
                self._sync_store_state()
            if self.clock.monotonic() - last_costs >= COSTS_REFRESH_S:
                last_costs = self.clock.monotonic()
                await self.refresh_costs()
                self._sync_store_state()

    async def _apply_pending_commands(self) -> None:
        from cryptomon_tui.store.commands import apply_command

        store = self.store
        if store is None:
            return
        try:
            commands = await store.poll_commands()
        except Exception:
            return
        for cmd in commands:
            try:
                result, events = apply_command(self.pipeline.incidents, cmd)
            except Exception as exc:
                result, events = f"failed: {type(exc).__name__}: {exc}", []
            self._emit(list(events))
            await store.mark_command_done(cmd.id, result)

    def _sync_store_state(self) -> None:
        if self.store is not None:
            incidents = self.pipeline.incidents
            silences = incidents.silences(include_expired=True)
            self.store.sync_silences_and_windows(silences, incidents.maintenance_windows())

    # ------------------------------------------------------------------ notifier callbacks
    async def _channel_broken(self, channel: str, reason: str) -> None:
        summary = f"notification channel {channel} broken: {reason}"
        labels = {"channel": channel}
        self._emit(self.pipeline.incidents.raise_external("channel_broken", labels, Severity.ERROR, summary))

    async def _channel_recovered(self, channel: str, reason: str = "") -> None:
        self._emit(self.pipeline.incidents.resolve_external("channel_broken", {"channel": channel}))

    # ------------------------------------------------------------------ analysis
    def _exchange_stats(self) -> dict[str, JsonObject]:
        """The metrics snapshot's ``exchanges`` (what the analysis context reads), with the bans incidents know."""
        snap = self.pipeline.metrics.snapshot(self.clock.now())
        stats = {name: ex.to_json() for name, ex in snap.exchanges.items()}
        for incident in self.pipeline.incidents.open_incidents():
            if incident.exchange and incident.exchange in stats and incident.ban_until:
                stats[incident.exchange]["ban_until"] = incident.ban_until
        return stats

    async def _verdict_now(self, incident: Incident) -> JsonObject | None:
        """A verdict every firing can carry at once: the analysis already made for this incident, else the
        offline analyzer's (milliseconds, no network). The LLM's, if configured, follows as an update."""
        known = self._analyses.get(incident.id)
        if known is not None:
            return analysis_json(known)
        if self.analysis is None:
            return None
        try:
            from cryptomon_tui.analysis.context import build_context
            from cryptomon_tui.analysis.worker import off_loop

            others = [i for i in self.pipeline.incidents.open_incidents() if i.id != incident.id]
            ctx = build_context(
                incident, self._exchange_stats(), self._recent_results(), others, self.config, now=self.clock.now()
            )
            result = await off_loop(self.analysis.offline.analyze_sync, ctx)
        except Exception:
            log.exception("offline verdict for %s failed", incident.id)
            return None
        return analysis_json(result)

    async def _context_for(self, incident_id: str) -> AnalysisContext:
        from cryptomon_tui.analysis.context import build_context

        incident = self._incident(incident_id)
        recent = self._recent_results()
        others = [i for i in self.pipeline.incidents.open_incidents() if i.id != incident.id]
        return build_context(incident, self._exchange_stats(), recent, others, self.config, now=self.clock.now())

    def _require_analysis(self) -> AnalysisService:
        if self.analysis is None:
            raise CommandError("analysis is not running yet (the engine has not started)", "invalid")
        return self.analysis

    def _recent_results(self) -> list[ProbeResult]:
        """Latest results plus the latest failures (deduplicated, oldest first)."""
        seen: set[int] = set()
        out: list[ProbeResult] = []
        for ring in (*self._recent_failures.values(), *self._recent.values()):
            for r in ring:
                if id(r) not in seen:
                    seen.add(id(r))
                    out.append(r)
        out.sort(key=lambda r: r.started_at)
        return out

    def _start_analysis(
        self, incident_id: str, *, force: bool, offline: bool, notify_update: bool = False
    ) -> asyncio.Task[Analysis]:
        self._analysis_pending += 1
        self._version += 1

        async def done(result: Analysis) -> None:
            self._analysis_pending -= 1
            await self.refresh_costs()
            data = analysis_json(result)
            self._analyses[incident_id] = result
            incident = self.pipeline.incidents.get(incident_id)
            if notify_update and incident is not None and self.notifier is not None:
                try:
                    await self.notifier.on_analysis(incident, data)
                except Exception:
                    log.exception("notifier failed on the analysis of %s", incident_id)
            if incident is not None:
                ready = IncidentEvent(self.clock.now(), EventType.ANALYSIS_READY, incident, detail={"analysis": data})
                self._broadcast(ready)
                for sink in self._sinks:
                    with contextlib.suppress(Exception):
                        sink(ready)
            self._version += 1

        task: asyncio.Task[Analysis] = self._require_analysis().start_background(
            incident_id, force=force, offline=offline, on_done=done
        )

        def _finished(t: asyncio.Task[Analysis]) -> None:
            if t.cancelled() or t.exception() is not None:
                self._analysis_pending = max(0, self._analysis_pending - 1)

        task.add_done_callback(_finished)
        return task

    # ------------------------------------------------------------------ EngineAPI: views
    def snapshot(self) -> Snapshot:
        now_mono = self.clock.monotonic()
        if self._snap is not None and (
            self._snap_version == self._version or now_mono - self._snap_at < SNAPSHOT_MIN_INTERVAL_S
        ):
            return self._snap
        self._snap_version = self._version
        self._snap_at = now_mono
        self._seq += 1
        try:
            self._snap = self._build_snapshot()
            self._snapshot_error = None
        except Exception as exc:  # the faces still get an answer; /healthz says the engine is broken
            self._snapshot_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            _log_once(log, f"snapshot:{type(exc).__name__}", "building the snapshot failed: %s", self._snapshot_error)
            self._snap = self._fallback_snapshot(self._snapshot_error)
        return self._snap

    def _invalidate_snapshot(self) -> None:
        """The next ``snapshot()`` builds a new one, even within ``SNAPSHOT_MIN_INTERVAL_S`` of the cached one:
        for changes of what the engine runs (start, reload), where a version bump alone would still let the
        rate limit serve the snapshot from before for up to 0.2 s."""
        self._version += 1
        self._snap = None

    def _fallback_snapshot(self, error: str) -> Snapshot:
        """What faces get when even the degraded snapshot cannot be built: shape intact, the error said."""
        return Snapshot(seq=self._seq, ts=iso_utc(self.clock.now()), location=self.config.daemon.location,
                        version=__version__, error=error)

    def _build_snapshot(self) -> Snapshot:
        now = self.clock.now()
        incidents = self.pipeline.incidents
        open_incidents = incidents.open_incidents()
        metrics = self.pipeline.metrics.snapshot(now).exchanges
        exchanges: dict[str, ExchangeView] = {}
        for name, cfg in self.config.enabled_exchanges().items():
            try:
                worker = self.runner.workers.get(name)
                ex = metrics.get(name)
                stats = (ex.totals, ex.probes) if ex is not None else None
                exchanges[name] = self._exchange_view(name, cfg.kind or "", stats, worker, open_incidents, now)
            except Exception as exc:  # one exchange's bad value degrades that exchange only (issue 13)
                exchanges[name] = self._broken_view(name, cfg.kind or "", exc, now)
        shown = [i for i in sorted(open_incidents, key=_incident_order)] + incidents.recently_resolved()[-20:]
        budget = self.config.analysis.monthly_budget_usd
        return Snapshot(
            seq=self._seq,
            ts=iso_utc(now),
            location=self.config.daemon.location,
            version=__version__,
            started_at=None if self._started_at is None else iso_utc(self._started_at),
            exchanges=exchanges,
            incidents=tuple(v for i in shown if (v := self._incident_view(i)) is not None),
            silences=tuple(silence_view(s) for s in incidents.silences()),
            maintenance=tuple(maintenance_view(w, now) for w in incidents.maintenance_windows()),
            notify=tuple(channel_view(c) for c in self.notifier.status()) if self.notifier is not None else (),
            analysis=AnalysisView(
                llm_spend_usd_month=self._llm_spend,
                budget_usd_month=None if budget is None else float(budget),
                model=self.config.analysis.llm.model if self.config.analysis.llm else None,
                pending=self._analysis_pending,
            ),
            store=self.store.health() if self.store is not None else None,
            streams=tuple(stream_view(st) for st in self.pipeline.stream_stats()),
        )

    def _exchange_view(
        self,
        name: str,
        kind: str,
        stats: tuple[SeriesStats, dict[str, SeriesStats]] | None,
        worker: ExchangeWorker | None,
        incidents: list[Incident],
        now: float,
    ) -> ExchangeView:
        aggregate, by_probe = stats if stats is not None else (None, {})
        mine = [i for i in incidents if i.exchange == name]
        ban_until = max((i.ban_until for i in mine if i.ban_until), default=None)
        probes: dict[str, ProbeView] = {}
        for probe, s in by_probe.items():
            last = self._last_result(name, probe)
            probes[probe] = ProbeView(
                last=result_view(last) if last is not None else None,
                # what a probe learnt besides its outcome (a key's permissions, TLS certificate facts)
                facts=facts(last.extra) if last is not None and last.extra else {},
                attempts=s.attempts, error_rate=s.error_rate, p50_ms=s.p50_ms, p95_ms=s.p95_ms, p99_ms=s.p99_ms,
                timeouts=s.timeouts, counts=s.counts, last_error_code=s.last_error_code,
                last_error_message=s.last_error_message, consecutive_failures=s.consecutive_failures,
            )
        breaker = worker.breaker.view() if worker is not None else BreakerView()
        backoff = worker.backoff.view() if worker is not None else None
        paused = worker is not None and worker.paused
        status = exchange_status(aggregate, paused=paused, breaker=worker.breaker.state if worker else
                                 BreakerState.CLOSED, backoff=backoff, incidents=mine)
        tls = tuple(self._tls.view(name, now))
        if aggregate is None:
            return ExchangeView(kind=kind, status=status, tls=tls, breaker=breaker, backoff=backoff, paused=paused,
                                ban_until=None if ban_until is None else iso_utc(ban_until),
                                schedule_lag=worker.lag.view() if worker is not None else None,
                                intervals=dict(worker.intervals()) if worker is not None else {}, probes=probes)
        a = aggregate
        return ExchangeView(
            kind=kind,
            status=status,
            tls=tls,  # per host: issuer, fingerprint, days left
            breaker=breaker,
            backoff=backoff,
            paused=paused,
            rate_limit_used=a.rate_limit_last if a.rate_limit_last is not None else a.rate_limit_peak,
            rate_limit_peak=a.rate_limit_peak,
            ban_until=None if ban_until is None else iso_utc(ban_until),
            clock_offset_ms=a.clock_offset_ms,
            clock_error_ms=a.clock_error_ms,
            p50_ms=a.p50_ms,
            p95_ms=a.p95_ms,
            p99_ms=a.p99_ms,
            error_rate=a.error_rate,
            attempts=a.attempts,
            timeouts=a.timeouts,
            consecutive_failures=a.consecutive_failures,
            counts=a.counts,
            last_error_code=a.last_error_code,
            last_error_message=a.last_error_message,
            last_error_at=None if a.last_error_at is None else iso_utc(a.last_error_at),
            sparkline=a.sparkline,
            sparkline_ok=a.sparkline_ok,
            schedule_lag=worker.lag.view() if worker is not None else None,
            intervals=dict(worker.intervals()) if worker is not None else {},
            probes=probes,
        )

    def _broken_view(self, name: str, kind: str, exc: Exception, now: float) -> ExchangeView:
        """An exchange whose state cannot be shown: every key a face reads, status ``error`` and the reason."""
        reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        _log_once(log, f"view:{name}:{type(exc).__name__}", "cannot show %s: %s", name, reason)
        return ExchangeView(kind=kind, status="error", view_error=reason,
                            last_error_message=f"cannot show this exchange: {reason}")

    def _incident_view(self, incident: Incident) -> IncidentView | None:
        """An incident for the snapshot; one that cannot be shown is logged once and left out, not fatal."""
        try:
            return incident_view(incident, self._analyses.get(incident.id))
        except Exception as exc:
            _log_once(log, f"incident:{incident.id}", "cannot show incident %s: %s: %s", incident.id,
                      type(exc).__name__, str(exc)[:200])
            return None

    def _last_result(self, exchange: str, probe: str) -> ProbeResult | None:
        for r in reversed(self._recent.get(exchange, ())):
            if r.probe == probe:
                return r
        return None

    def _notify_totals(self) -> dict[tuple[str, str], int]:
        out = dict(self._notify_base)
        if self.notifier is not None:
            for s in self.notifier.status():
                for result, n in (("sent", s.total_sent), ("failed", s.total_failures)):
                    out[(s.channel, result)] = out.get((s.channel, result), 0) + n
        return out

    async def history(
        self, exchange: str, probe: str | None, since: float, until: float, resolution_s: float, recent: int = 0
    ) -> HistoryAnswer:
        from cryptomon_tui.engine.history import read_history

        return await read_history(self.store, exchange, probe, since, until, resolution_s, recent)

    def counters(self) -> EngineCounters:
        totals = self.pipeline.metrics.totals
        streams = self._stream_totals()
        return EngineCounters(
            probes=totals.probe_outcomes(),
            probe_durations=totals.probe_durations(),
            incidents_opened=dict(self._incidents_opened),
            notifications=self._notify_totals(),
            llm_tokens=dict(self._llm_usage.tokens),
            llm_cost_usd={m: float(v) for m, v in self._llm_usage.cost_usd.items()},
            stream_messages=streams.messages,
            stream_seq_gaps=streams.seq_gaps,
            stream_reconnects=streams.reconnects,
            stream_gap_seconds=streams.gap_seconds,
            stream_lag_seconds=streams.lag_seconds,
        )

    def _stream_totals(self) -> _StreamTotals:
        """Cumulative stream counts: the running probes' plus what probes replaced by a reload had counted."""
        base = self._stream_base
        messages, seq_gaps, reconnects = dict(base.messages), dict(base.seq_gaps), dict(base.reconnects)
        gap_seconds, lag_seconds = dict(base.gap_seconds), dict(base.lag_seconds)
        for probe in self.streams.probes:
            t, key = probe.tracker, (probe.exchange, probe.spec.name)
            for counts, value in ((messages, t.messages), (seq_gaps, t.total_seq_gaps()), (reconnects, t.reconnects)):
                counts[key] = counts.get(key, 0) + value
            for hists, hist in ((gap_seconds, t.gap_hist), (lag_seconds, t.lag_hist)):
                prev = hists.get(key)
                buckets = [a + b for a, b in zip(prev.buckets, hist.counts, strict=True)] if prev else hist.counts
                total = (prev.count if prev else 0) + sum(hist.counts)
                hists[key] = DurationCounts(tuple(buckets), total, (prev.sum_s if prev else 0.0) + hist.sum_s)
        return _StreamTotals(messages, seq_gaps, reconnects, gap_seconds, lag_seconds)

    def subscribe_events(self) -> AsyncIterator[EventView]:
        queue: asyncio.Queue[EventView] = asyncio.Queue()
        self._subscribers.add(queue)

        async def gen() -> AsyncIterator[EventView]:
            try:
                while True:
                    yield await queue.get()
            finally:
                self._subscribers.discard(queue)

        return gen()

    def health(self) -> Health:
        store_ok = not self._use_store
        store: StoreView | None = None
        reason: str | None = None
        in_memory: int | None = None
        if self.store is not None:
            h = self.store.health()
            store_ok = self._store_ok(h)
            store = h
            if not store_ok:
                reason = self._store_reason(h)
            if self._fallback_outbox is not None:
                in_memory = self._fallback_outbox.in_memory()
        if self._running:
            self.snapshot()  # cached; rebuilt at most a few times a second
        return Health(
            loop=True,
            snapshot=self._snapshot_error is None,
            config_loaded=self._config_loaded,
            store_writable=store_ok,
            probes_running=self._running and bool(self.runner.workers),
            store=store,
            store_reason=reason,
            notify_in_memory=in_memory,
            snapshot_error=self._snapshot_error,
        )

    # ------------------------------------------------------------------ EngineAPI: commands
    def _incident(self, ident: str) -> Incident:
        incident = self.pipeline.incidents.get(ident)
        if incident is None:
            matches = [
                i
                for i in [*self.pipeline.incidents.open_incidents(), *self.pipeline.incidents.recently_resolved()]
                if i.id.lower().startswith(ident.lower()) or i.id.lower().endswith(ident.lower())
            ]
            if len(matches) == 1:
                return matches[0]
            raise CommandError(f"unknown incident {ident!r}", code="not_found")
        return incident

    async def ack(self, incident_id: str, by: str, note: str | None) -> JsonObject:
        incident = self._incident(incident_id)
        if not incident.is_open:
            raise CommandError(f"incident {incident.id} is already resolved", code="invalid")
        self._emit(self.pipeline.incidents.ack(incident.id, by, note))
        return {"incident": self._incident(incident.id).to_dict()}

    async def silence(
        self, matchers: list[JsonObject], duration_s: float | None, comment: str, by: str
    ) -> JsonObject:
        if not comment or not comment.strip():
            raise CommandError("a silence needs a comment (why, and for how long)")
        if not matchers:
            raise CommandError("a silence needs at least one matcher (exchange, rule, probe, severity or id)")
        parsed = [_matcher(m) for m in matchers]
        if duration_s is not None and duration_s <= 0:
            raise CommandError("a silence needs a positive duration, or none for 'until resolved'")
        try:
            silence, events = self.pipeline.incidents.silence(parsed, duration_s, comment.strip(), by)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if self.store is not None:
            self.store.on_silence(silence)
        self._emit(events)
        return {"silence": silence.to_dict()}

    async def unsilence(self, silence_id: str, by: str) -> JsonObject:
        known = {s.id: s for s in self.pipeline.incidents.silences(include_expired=True)}
        if silence_id not in known:
            raise CommandError(f"unknown silence {silence_id!r}", code="not_found")
        events = self.pipeline.incidents.unsilence(silence_id, by)
        updated = {s.id: s for s in self.pipeline.incidents.silences(include_expired=True)}.get(silence_id)
        if self.store is not None and updated is not None:
            self.store.on_silence(updated)
        self._emit(events)
        return {"silence": updated.to_dict() if updated else None}

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> JsonObject:
        incident = self._incident(incident_id)
        if not force and incident.id in self._analyses and not offline:
            return {"incident_id": incident.id, "analysis": analysis_json(self._analyses[incident.id]), "cached": True}
        task = self._start_analysis(incident.id, force=force, offline=offline)
        result = await asyncio.shield(task)
        return {"incident_id": incident.id, "analysis": analysis_json(result), "cached": False}

    async def summary(self, since_s: float | None = None, offline: bool = False) -> JsonObject:
        """The smart summary of the open incidents and, with ``since_s``, of those resolved since then."""
        incidents = self.pipeline.incidents.open_incidents()
        recent = self._recent_results()
        resolved: list[Incident] = []
        if since_s is not None:
            cutoff = self.clock.now() - since_s
            resolved = [i for i in self.pipeline.incidents.recently_resolved() if (i.resolved_at or 0.0) >= cutoff]
        result = await self._require_analysis().summarize(
            incidents, self._exchange_stats(), recent_results=recent, offline=offline, resolved=resolved,
            since_s=since_s,
        )
        return {"summary": result.model_dump(mode="json"), "open_incidents": len(incidents)}

    async def maintenance_add(
        self,
        exchange: str | None,
        starts_at: float,
        ends_at: float,
        comment: str,
        recurrence: str | None,
        timezone: str,
        by: str,
    ) -> JsonObject:
        if exchange is not None and exchange not in self.config.exchanges:
            raise CommandError(f"unknown exchange {exchange!r}", code="not_found")
        try:
            window, events = self.pipeline.incidents.add_maintenance(
                exchange, starts_at, ends_at, comment, recurrence, timezone, by
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if self.store is not None:
            self.store.on_maintenance(window)
        self._emit(events)
        self._sync_store_state()
        self._version += 1
        return {"window": window.to_dict()}

    async def maintenance_remove(self, window_id: str, by: str) -> JsonObject:
        if not any(w.id == window_id for w in self.pipeline.incidents.maintenance_windows()):
            raise CommandError(f"no maintenance window {window_id!r}", code="not_found")
        events = self.pipeline.incidents.remove_maintenance(window_id)
        if self.store is not None:
            self.store.on_maintenance_removed(window_id)
        self._emit(events)
        self._sync_store_state()
        self._version += 1
        log.info("maintenance window %s removed by %s", window_id, by)
        return {"window_id": window_id, "removed": True}

    async def pause(self, exchange: str) -> JsonObject:
        try:
            self.runner.pause(exchange)
        except KeyError as exc:
            raise CommandError(str(exc.args[0]), code="not_found") from None
        await self.streams.pause(exchange)
        self._version += 1
        return {"exchange": exchange, "status": "paused"}

    async def resume(self, exchange: str) -> JsonObject:
        try:
            self.runner.resume(exchange)
        except KeyError as exc:
            raise CommandError(str(exc.args[0]), code="not_found") from None
        self.streams.resume(exchange)
        self._version += 1
        return {"exchange": exchange, "status": "resumed"}

    async def reload(self) -> ReloadResult:
        """Re-read the file; rebuild probing with the new config, keep incidents, silences and metrics."""
        try:
            new, _ = await asyncio.to_thread(load_config, self.config_path)
            if self._transform is not None:
                new = self._transform(new)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config:\n%s", exc.render())
            return ReloadResult(False, error=exc.render())
        changed = _changed_sections(self.config, new)
        if not changed:
            return ReloadResult(True)
        paused = {n for n, w in self.runner.workers.items() if getattr(w, "paused", False)}
        old_runner = self.runner
        try:
            runner = self._new_runner(new)  # builds the probe plan: a bad probe list fails here, before any change
        except Exception as exc:
            return ReloadResult(False, tuple(changed), f"{type(exc).__name__}: {exc}")
        self.config = new
        self.pipeline.config = new
        self.pipeline.detector.clock_tolerances = self._tolerances(new)
        runner.adopt_state(old_runner)  # bans, rate-limit pauses and breakers survive a reload
        await old_runner.stop()
        self.runner = runner
        await runner.start()
        for name in paused & set(runner.workers):
            runner.pause(name)
        if "exchanges" in changed:
            self._stream_base = self._stream_totals()  # the new probes count from zero
            old_streams, self.streams = self.streams, self._new_streams(new)
            await old_streams.stop()
            self.streams.paused = paused & {p.exchange for p in self.streams.probes}
            await self.streams.start()
        if self.notifier is not None and ("notify" in changed or "daemon" in changed):
            old_notifier = self.notifier
            self._notify_base = self._notify_totals()  # the new notifier counts from zero
            await old_notifier.stop()  # flushes; its queued rows stay in the outbox for the new one
            await self._start_notifier()
        if self.analysis is not None and "analysis" in changed:
            old_analysis = self.analysis
            self._build_analysis()
            await old_analysis.aclose()
        self._invalidate_snapshot()  # one cached during the reload mixes the new config with the old runner
        log.info("config reloaded; changed: %s", ", ".join(changed))
        return ReloadResult(True, tuple(changed))

    # ------------------------------------------------------------------ helpers for faces
    async def refresh_costs(self) -> None:
        """Month-to-date spend from the ledger, for the snapshot (UI, /metrics)."""
        if self.analysis is not None:
            with contextlib.suppress(Exception):
                self._llm_spend = float(await self.analysis.month_spent())
                self._version += 1


def _changed_sections(old: Config, new: Config) -> list[str]:
    out = []
    for section in Config.model_fields:
        if getattr(old, section) != getattr(new, section):
            out.append(section)
    return out


_logged: set[str] = set()


def _log_once(logger: logging.Logger, key: str, message: str, *args: object) -> None:
    if key not in _logged and len(_logged) < 1000:
        _logged.add(key)
        logger.error(message, *args)


def _matcher(m: JsonObject) -> Matcher:
    """A silence matcher from a command. Flags must be JSON booleans: read by truthiness, ``"is_equal": null``
    would turn "silence exchange X" into "silence every exchange but X"."""
    name, value = text(m.get("name")), text(m.get("value"))
    if name is None or value is None:
        raise CommandError("bad matcher: 'name' and 'value' must be text")
    is_regex, is_equal = m.get("is_regex", False), m.get("is_equal", True)
    if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
        raise CommandError("bad matcher: 'is_regex' and 'is_equal' must be true or false")
    return Matcher(name, value, is_regex, is_equal)


def _incident_order(i: Incident) -> tuple[int, int, float]:
    return (0 if i.state.value == "firing" else 1, -i.severity.rank, -i.started_at)
