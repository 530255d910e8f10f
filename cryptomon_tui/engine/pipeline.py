"""Metrics -> detection -> incidents in one object, shared by the engine (``engine.engine.Engine``) and the backtest.

It lives in the engine because it drives the incident manager: detection only turns metrics into signals.
Commands (ack, silence, maintenance, restore) go to ``pipeline.incidents`` directly, rollups to
``pipeline.metrics``.

Evaluation runs on the engine clock's tick grid (``evaluate_every``): ``on_result`` first runs the
ticks the clock has crossed, then records the result, so a backtest that sets a FakeClock from the
input timestamps evaluates at exactly the same instants as a live run would, and twice the same
input gives the same events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.root import Config
from cryptomon_tui.detection.detector import Detector
from cryptomon_tui.detection.signals import LOCAL_NETWORK, STANDALONE, STREAM_RULES
from cryptomon_tui.detection.streams import StreamDetector
from cryptomon_tui.incidents.maintenance import next_occurrence, window_active
from cryptomon_tui.incidents.manager import IncidentManager
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics.registry import MetricsRegistry
from cryptomon_tui.metrics.series import ExchangeSeries

log = logging.getLogger(__name__)

MAX_CATCH_UP_TICKS = 900  # after a longer gap, jump: nothing is recorded in between anyway


def evaluation_interval(config: Config) -> float:
    """``evaluate_every``, but never coarser than the fastest probe interval (floor 100 ms).

    Why: a hard failure must be seen within a few probe intervals; with 250 ms probes a 1 s tick
    alone would add up to four intervals. Recovery counts evaluations, so K keeps meaning about K
    probes' worth of good news.
    """
    intervals = [ex.interval for ex in config.exchanges.values() if ex.enabled]
    every = config.detection.evaluate_every
    if intervals:
        every = min(every, min(intervals))
    return max(0.1, every)


RESTORED_HEALTHY_STREAK = 3  # answers in a row that prove a restored incident's problem is over


def _healthy_since(agg: ExchangeSeries, since: float) -> bool:
    last_ok = agg.last_ok_at
    return bool(agg.consecutive_ok >= RESTORED_HEALTHY_STREAK and last_ok is not None and last_ok >= since)


class DetectionPipeline:
    def __init__(
        self,
        config: Config,
        clock: Clock,
        clock_tolerances: dict[str, tuple[float, float]] | None = None,
        canaries: set[str] | None = None,
        *,
        id_seed: int | None = None,
        rollups: bool = True,
    ) -> None:
        """``rollups=False``: no 1-minute rollups for the store (a backtest has none), only what detection reads."""
        self._config = config
        self.clock = clock
        det = config.detection
        self._canaries_from_config = canaries is None
        if canaries is None:
            canaries = {name for name, ex in config.exchanges.items() if ex.canary}
        self.metrics = MetricsRegistry(
            window_s=det.window,
            bucket_s=det.bucket,
            sparkline_points=det.sparkline_points,
            rollup_grace_s=max(10.0, max((ex.timeout for ex in config.exchanges.values()), default=5.0) * 2),
            rollups=rollups,
        )
        self.detector = Detector(det, config.incidents, self.metrics, clock_tolerances, canaries)
        self.incidents = IncidentManager(clock, config.incidents, id_seed=id_seed)
        self.streams = StreamDetector()
        self._stream_stats: dict[tuple[str, str], StreamStats] = {}
        self.every = evaluation_interval(config)
        self._next_tick: float | None = None
        self.evaluation_errors = 0

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, new: Config) -> None:
        self.reconfigure(new)

    def reconfigure(self, new: Config) -> None:
        """Hot reload: new rules, cool-downs and canaries; metrics, rule states and incidents are kept."""
        self._config = new
        self.detector.reconfigure(new.detection, new.incidents)
        self.incidents.config = new.incidents
        if self._canaries_from_config:
            self.detector.canaries = {name for name, ex in new.exchanges.items() if ex.canary}
        every = evaluation_interval(new)
        if every != self.every:
            self.every = every
            self._next_tick = None

    # ------------------------------------------------------------------ flow
    def on_result(self, result: ProbeResult) -> list[IncidentEvent]:
        """Record one probe result; returns the events of any evaluation tick it crossed."""
        now = self.clock.now()
        events = self._run_due(now) if self._next_tick is None or now >= self._next_tick else []
        self.metrics.record(result)
        return events

    def on_results(self, results: Iterable[ProbeResult]) -> list[IncidentEvent]:
        events: list[IncidentEvent] = []
        for r in results:
            events.extend(self.on_result(r))
        return events

    def record_streams(self, stats: Iterable[StreamStats]) -> None:
        """The stream probes' current verdicts (all of them: a stream missing here was removed)."""
        self._stream_stats = {(s.exchange, s.stream): s for s in stats}

    def record_stream(self, stats: StreamStats) -> None:
        """One stream's verdict (a backtest replays them one record at a time)."""
        self._stream_stats[(stats.exchange, stats.stream)] = stats

    def stream_stats(self) -> list[StreamStats]:
        return list(self._stream_stats.values())

    def _rest_healthy(self, exchange: str) -> bool:
        return not any(
            inc.exchange == exchange and inc.rule not in STREAM_RULES for inc in self.incidents.open_incidents()
        )

    def tick(self, now: float | None = None) -> list[IncidentEvent]:
        """Run every evaluation due up to ``now`` (call it about every ``evaluate_every``)."""
        return self._run_due(self.clock.now() if now is None else now)

    def _run_due(self, now: float) -> list[IncidentEvent]:
        every = self.every
        if self._next_tick is None:
            self._next_tick = math.floor(now / every) * every
        events: list[IncidentEvent] = []
        behind = (now - self._next_tick) / every
        if behind > MAX_CATCH_UP_TICKS:
            self._next_tick += math.floor(behind - MAX_CATCH_UP_TICKS) * every
        while self._next_tick <= now:
            t = self._next_tick
            self._next_tick = t + every
            try:
                signals = self.detector.evaluate(t)
                if self._stream_stats or self.streams.active():
                    signals = [*signals, *self.streams.evaluate(t, self._stream_stats.values(), self._rest_healthy)]
                self.incidents.pending_causes = self.detector.pending_causes()
                new = self.incidents.process(signals, t) if signals else []
                if not signals and self.incidents.holding:
                    new = self.incidents.release_held(t)
            except Exception:  # a rule bug must not stop monitoring: skip this tick, keep the rest going
                self.evaluation_errors += 1
                log.exception("detection evaluation failed at %s (error %d)", iso_utc(t), self.evaluation_errors)
                continue
            for ev in new:
                # the incident covered the errors so far: windowed symptoms restart from fresh data
                inc = ev.incident
                if (
                    ev.event is EventType.RESOLVED
                    and not ev.detail
                    and inc.rule not in STANDALONE
                    and not self.incidents.is_external(inc.fingerprint)
                    and (inc.exchange is not None or inc.rule == LOCAL_NETWORK)
                ):
                    self.detector.rearm(inc.exchange, t)
            if new:
                events.extend(new)
            ticked = self.incidents.tick(t)
            if ticked:
                events.extend(ticked)
            if self.incidents.has_unconfirmed_restored:
                events.extend(self._rejudge_restored(t))
        return events

    def _rejudge_restored(self, now: float) -> list[IncidentEvent]:
        """Restored incidents are judged on fresh probes: once their exchange (any exchange for a global
        one) has answered ``RESTORED_HEALTHY_STREAK`` times in a row since the restart, they resolve;
        an exchange still failing keeps them until a rule confirms them or the grace ends."""
        events: list[IncidentEvent] = []
        by_name = self.metrics.exchanges()
        for incident_id, exchange, since in self.incidents.unconfirmed_restored():
            targets = [by_name[exchange]] if exchange is not None and exchange in by_name else (
                list(by_name.values()) if exchange is None else [])
            if any(_healthy_since(exm.aggregate, since) for exm in targets):
                events.extend(self.incidents.healthy_after_restore(incident_id, now))
        return events

    # ------------------------------------------------------------------ views
    def snapshot(self) -> JsonObject:
        """Metrics (see MetricsRegistry.snapshot) plus incidents, silences, windows and rule states: the
        detection state as JSON for tests and tools (the engine builds its typed views from the parts)."""
        now = self.clock.now()
        snap = self.metrics.snapshot(now).to_json()
        incidents: list[JsonValue] = [i.to_dict() for i in self.incidents.open_incidents()]
        silences: list[JsonValue] = [s.to_dict() for s in self.incidents.silences()]
        windows: list[JsonValue] = []
        for w in self.incidents.maintenance_windows():
            nxt = next_occurrence(w, now)
            windows.append(
                {
                    **w.to_dict(),
                    "active": window_active(w, now),
                    "next_start": None if nxt is None else iso_utc(nxt[0]),
                    "next_end": None if nxt is None else iso_utc(nxt[1]),
                }
            )
        rules: list[JsonValue] = list(self.detector.active_instances())
        streams: list[JsonValue] = [st.to_wire() for st in self._stream_stats.values()]
        snap.update(incidents=incidents, silences=silences, maintenance=windows, rules=rules, streams=streams,
                    evaluated_at=iso_utc(now))
        return snap
