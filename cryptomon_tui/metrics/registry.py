"""All rolling series of a run: one per (exchange, probe) and one aggregate per exchange."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics.histogram import INV_LOG_GAMMA, MAX_MS, MIN_MS, LogHistogram
from cryptomon_tui.metrics.series import OUTCOME_INDEX, ExchangeSeries, Rollup, Series, SeriesStats
from cryptomon_tui.metrics.totals import ProbeTotals, Totals

_log = math.log
_ceil = math.ceil
_OK = OUTCOME_INDEX[Outcome.OK]


@dataclass(frozen=True, slots=True)
class ExchangeStats:
    """An exchange at a snapshot: its aggregate over all probes (latency merged from the probes'
    histograms) and each probe's own figures."""

    totals: SeriesStats
    probes: dict[str, SeriesStats]

    def to_json(self) -> JsonObject:
        out = self.totals.to_json()
        out["probes"] = {p: s.to_json() for p, s in self.probes.items()}
        return out


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Every exchange's window figures at ``ts`` (epoch seconds); ``to_json`` is the documented wire shape."""

    ts: float
    window_s: float
    exchanges: dict[str, ExchangeStats]

    def to_json(self) -> JsonObject:
        exchanges: dict[str, JsonValue] = {name: ex.to_json() for name, ex in self.exchanges.items()}
        return {"ts": iso_utc(self.ts), "window_s": self.window_s, "exchanges": exchanges}


class ExchangeMetrics:
    """An exchange's aggregate series plus its probe series."""

    __slots__ = ("aggregate", "name", "probes")

    def __init__(self, name: str, *, window_s: float, bucket_s: float, sparkline_points: int) -> None:
        self.name = name
        self.probes: dict[str, Series] = {}
        self.aggregate = ExchangeSeries(
            name, self.probes, window_s=window_s, bucket_s=bucket_s, sparkline_points=sparkline_points
        )

    def latency_histogram(self) -> LogHistogram:
        """Window latency of every probe of the exchange (merged on demand: cheaper than recording twice)."""
        merged = LogHistogram()
        for s in self.probes.values():
            merged.add_counts(s.hist.counts)
        return merged


class MetricsRegistry:
    """Entry point for probe results. ``record`` is O(1); queries are cheap and on demand.

    ``changed`` collects the series recorded since the last ``take_changed()`` so detection only
    evaluates series that moved (plus those it is already watching).
    """

    def __init__(
        self,
        *,
        window_s: float = 300.0,
        bucket_s: float = 5.0,
        sparkline_points: int = 120,
        rollup_grace_s: float = 10.0,
        rollups: bool = True,
    ) -> None:
        self.window_s = window_s
        self.rollups = rollups
        self.bucket_s = bucket_s
        self.sparkline_points = sparkline_points
        self.rollup_grace_s = rollup_grace_s
        self._series: dict[tuple[str, str], Series] = {}
        self._pairs: dict[tuple[str, str], tuple[Series, ExchangeSeries, ProbeTotals]] = {}
        self._exchanges: dict[str, ExchangeMetrics] = {}
        self.changed: set[Series] = set()
        self.recorded = 0
        self.totals = Totals()  # cumulative, never windowed: what /metrics counters read

    def _new_series(self, exchange: str, probe: str) -> Series:
        return Series(
            exchange,
            probe,
            window_s=self.window_s,
            bucket_s=self.bucket_s,
            sparkline_points=self.sparkline_points,
            rollups=self.rollups,
            rollup_grace_s=self.rollup_grace_s,
        )

    def record(self, result: ProbeResult) -> Series:
        key = (result.exchange, result.probe)
        pair = self._pairs.get(key)
        if pair is None:
            pair = self._add(result.exchange, result.probe)
        oi = OUTCOME_INDEX[result.outcome]
        lat = result.latency_ms
        bin_ = None
        if oi == _OK and lat is not None:
            bin_ = _ceil(_log(MIN_MS if lat < MIN_MS else (MAX_MS if lat > MAX_MS else lat)) * INV_LOG_GAMMA)
        series, aggregate, totals = pair
        series.record_indexed(result, oi, bin_)
        aggregate.record_indexed(result, oi)  # latest state only: its window sums the probes' buckets
        totals.record_indexed(oi, lat if bin_ is not None else None)
        self.changed.add(series)
        self.recorded += 1
        return series

    def _add(self, exchange: str, probe: str) -> tuple[Series, ExchangeSeries, ProbeTotals]:
        ex = self._exchanges.get(exchange)
        if ex is None:
            ex = self._exchanges[exchange] = ExchangeMetrics(
                exchange, window_s=self.window_s, bucket_s=self.bucket_s, sparkline_points=self.sparkline_points
            )
        series = ex.probes[probe] = self._series[(exchange, probe)] = self._new_series(exchange, probe)
        pair = self._pairs[(exchange, probe)] = (series, ex.aggregate, self.totals.pair(exchange, probe))
        return pair

    def take_changed(self) -> set[Series]:
        changed, self.changed = self.changed, set()
        return changed

    # ------------------------------------------------------------------ queries
    def series(self, exchange: str, probe: str) -> Series | None:
        return self._series.get((exchange, probe))

    def exchange(self, exchange: str) -> ExchangeMetrics | None:
        return self._exchanges.get(exchange)

    def exchanges(self) -> dict[str, ExchangeMetrics]:
        return self._exchanges

    def advance(self, now: float) -> None:
        """Expire old buckets and close finished minutes everywhere (called once per evaluation)."""
        for ex in self._exchanges.values():
            ex.aggregate.advance(now)
            for s in ex.probes.values():
                s.advance(now)

    def drain_rollups(self, now: float) -> list[Rollup]:
        """Finished 1-minute rollups of every (exchange, probe) series since the last drain.

        A minute is finished once ``now`` is past its end plus a grace period (results carry
        their send time, so a slow probe can land after the minute ended). Undrained rollups are
        bounded per series (a day's worth), oldest dropped first.
        """
        out: list[Rollup] = []
        for s in self._series.values():
            s.advance(now)
            s.close_minutes(now)
            out.extend(s.drain_rollups())
        out.sort(key=lambda r: (r.minute, r.exchange, r.probe))
        return out

    def snapshot(self, now: float) -> MetricsSnapshot:
        """Every exchange's figures at ``now``; ``.to_json()`` is the plain view for the UI, control API and
        analysis, of shape::

            {"ts": ISO-8601, "window_s": 300.0,
             "exchanges": {name: {
                 **stats,                      # aggregate over all probes of the exchange
                 "probes": {probe: stats}}}}

        where ``stats`` has: attempts (in window, skipped probes excluded), error_rate (0..1, all
        attempts, timeouts included), p50_ms / p95_ms / p99_ms (successful probes in the window,
        None when none), timeouts (in window), consecutive_failures, counts ({outcome: n} in
        window), rate_limit_peak (0..1, highest in window), rate_limit_last, clock_offset_ms /
        clock_error_ms (last measured; offset = exchange - local, negative = host ahead),
        clock_offset_history ([[ts, offset_ms], ...]), last_error_code, last_error_message,
        last_error_at, last_outcome, last_latency_ms, last_at, breaker (closed/open/half_open),
        sparkline (latest latencies of successful probes, oldest first) and sparkline_ok (ok/fail
        flag of the latest attempts, oldest first).
        """
        exchanges: dict[str, ExchangeStats] = {}
        for name, ex in self._exchanges.items():
            totals = ex.aggregate.snapshot(now)
            probes = {p: s.snapshot(now) for p, s in ex.probes.items()}
            merged = ex.latency_histogram()  # after the probes advanced to ``now``
            p50, p95, p99 = (None if (v := merged.quantile(q)) is None else round(v, 3) for q in (0.5, 0.95, 0.99))
            exchanges[name] = ExchangeStats(replace(totals, p50_ms=p50, p95_ms=p95, p99_ms=p99), probes)
        return MetricsSnapshot(now, self.window_s, exchanges)
