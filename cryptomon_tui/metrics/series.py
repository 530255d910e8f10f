"""One rolling series: a ring of time buckets over a sliding window, plus bounded recent history.

Why a ring of buckets: the seed counted errors forever, so an error rate never recovered. Here a
bucket that falls out of the window is subtracted from the window totals, so totals always describe
the last ``window`` seconds and memory is ``window / bucket`` buckets whatever the run time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.results import BreakerState, Outcome, ProbeResult
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics.histogram import (
    INV_LOG_GAMMA,
    MAX_MS,
    MIN_MS,
    LogHistogram,
    quantile_of_counts,
    quantiles_of_counts,
)

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
OUTCOME_INDEX: dict[Outcome, int] = {o: i for i, o in enumerate(OUTCOMES)}
N_OUTCOMES = len(OUTCOMES)
_OK = OUTCOME_INDEX[Outcome.OK]
_TIMEOUT = OUTCOME_INDEX[Outcome.TIMEOUT]
_SKIPPED = OUTCOME_INDEX[Outcome.SKIPPED_OPEN_CIRCUIT]
_NETWORK_INDEXES = frozenset(OUTCOME_INDEX[o] for o in OUTCOMES if o.is_network)
_CLOSED = BreakerState.CLOSED
_log = math.log
_ceil = math.ceil

ROLLUP_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Rollup:
    """One minute of one (exchange, probe) series, for long history in the store.

    ``minute`` is the epoch second the minute starts at. Latency fields cover successful probes
    only (a timeout has no latency); they are None when the minute had none.
    """

    exchange: str
    probe: str
    minute: float
    attempts: int
    errors: int
    timeouts: int
    counts: dict[str, int]
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    min_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    rate_limit_peak: float | None
    clock_offset_ms: float | None
    clock_error_ms: float | None

    def to_dict(self) -> JsonObject:
        return {
            "exchange": self.exchange,
            "probe": self.probe,
            "minute": iso_utc(self.minute),
            "attempts": self.attempts,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "counts": dict(self.counts),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "rate_limit_peak": self.rate_limit_peak,
            "clock_offset_ms": self.clock_offset_ms,
            "clock_error_ms": self.clock_error_ms,
        }


@dataclass(frozen=True, slots=True)
class SeriesStats:
    """What one series (a probe, or a whole exchange) says at a snapshot: window figures over the last
    ``window_s`` and the latest state. Read by the engine, analysis and tests; ``to_json`` is the wire shape
    (documented on ``MetricsRegistry.snapshot``). Times are epoch seconds here, ISO-8601 on the wire."""

    attempts: int  # in the window, skipped probes excluded
    error_rate: float  # 0..1 over all attempts, timeouts included (rounded to 6 places)
    p50_ms: float | None  # successful probes in the window; None when none
    p95_ms: float | None
    p99_ms: float | None
    timeouts: int
    consecutive_failures: int
    counts: dict[str, int]  # {outcome: n} in the window
    rate_limit_peak: float | None  # 0..1, highest in the window
    rate_limit_last: float | None
    clock_offset_ms: float | None  # last measured: exchange - local (negative = host ahead)
    clock_error_ms: float | None
    clock_offset_history: tuple[tuple[float, float | None], ...]  # (epoch s, offset ms)
    last_error_code: str | None
    last_error_message: str | None
    last_error_at: float | None
    last_outcome: Outcome | None
    last_latency_ms: float | None
    last_at: float | None
    breaker: BreakerState
    sparkline: tuple[float, ...]  # latest latencies of successful probes, oldest first
    sparkline_ok: tuple[bool, ...]  # ok/fail of the latest attempts, oldest first

    def to_json(self) -> JsonObject:
        return {
            "attempts": self.attempts,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "timeouts": self.timeouts,
            "consecutive_failures": self.consecutive_failures,
            "counts": dict[str, JsonValue](self.counts),
            "rate_limit_peak": self.rate_limit_peak,
            "rate_limit_last": self.rate_limit_last,
            "clock_offset_ms": self.clock_offset_ms,
            "clock_error_ms": self.clock_error_ms,
            "clock_offset_history": [[iso_utc(t), o] for t, o in self.clock_offset_history],
            "last_error_code": self.last_error_code,
            "last_error_message": self.last_error_message,
            "last_error_at": None if self.last_error_at is None else iso_utc(self.last_error_at),
            "last_outcome": None if self.last_outcome is None else self.last_outcome.value,
            "last_latency_ms": self.last_latency_ms,
            "last_at": None if self.last_at is None else iso_utc(self.last_at),
            "breaker": self.breaker.value,
            "sparkline": list[JsonValue](self.sparkline),
            "sparkline_ok": list[JsonValue](self.sparkline_ok),
        }


@dataclass(slots=True)
class WindowStats:
    """Totals over a (sub-)window, computed on demand for recovery and anomaly checks."""

    attempts: int = 0
    errors: int = 0
    timeouts: int = 0
    latency_bins: dict[int, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    def quantile(self, q: float) -> float | None:
        return quantile_of_counts(self.latency_bins, q)


class _Bucket:
    __slots__ = ("attempts", "bins", "counts", "errors", "idx", "timeouts", "usage_peak")

    def __init__(self) -> None:
        self.idx = -1
        self.attempts = 0
        self.errors = 0
        self.timeouts = 0
        self.counts = [0] * N_OUTCOMES
        self.bins: dict[int, int] = {}
        self.usage_peak: float | None = None

    def reset(self, idx: int) -> None:
        self.idx = idx
        self.usage_peak = None
        if self.attempts:  # counts, bins and the peak only move with an attempt: an empty bucket is clean
            if self.errors:
                self.counts = [0] * N_OUTCOMES
            else:
                self.counts[_OK] = 0  # no error: only the ok counter moved (the calm common case)
            self.attempts = 0
            self.errors = 0
            self.timeouts = 0
            if self.bins:
                self.bins = {}


class _Minute:
    __slots__ = (
        "attempts",
        "bins",
        "counts",
        "errors",
        "lat_max",
        "lat_min",
        "lat_n",
        "lat_sum",
        "offset",
        "offset_err",
        "start",
        "timeouts",
        "usage_peak",
    )  # fmt: skip

    def __init__(self, start: float) -> None:
        self.start = start
        self.attempts = 0
        self.errors = 0
        self.timeouts = 0
        self.counts = [0] * N_OUTCOMES
        self.bins: dict[int, int] = {}
        self.lat_min = math.inf
        self.lat_max = -math.inf
        self.lat_sum = 0.0
        self.lat_n = 0
        self.usage_peak: float | None = None
        self.offset: float | None = None
        self.offset_err: float | None = None


class SeriesState:
    """What the latest results of a series say: streaks, last error, last usage and clock offset,
    the rate-limit and maintenance deadlines, and the sparkline rings.

    Shared by a probe's ``Series`` and an exchange's ``ExchangeSeries``: both follow results in the
    order they are recorded, so a streak of failures spans every probe of an exchange.
    """

    __slots__ = (
        "ban_until",
        "breaker",
        "clock_error_ms",
        "clock_offset_ms",
        "consecutive_failures",
        "consecutive_network_failures",
        "consecutive_ok",
        "exchange",
        "last_at",
        "last_error_at",
        "last_error_code",
        "last_error_message",
        "last_error_outcome",
        "last_latency_ms",
        "last_ok_at",
        "last_outcome",
        "last_seen",
        "last_usage",
        "latencies",
        "maintenance_until",
        "offsets",
        "ok_flags",
        "ok_latency_count",
        "probe",
        "retry_until",
        "total_results",
    )

    def __init__(self, exchange: str, probe: str | None, sparkline_points: int, offset_history: int) -> None:
        self.exchange = exchange
        self.probe = probe
        self.total_results = 0  # all-time, skipped probes included
        # latest state
        self.consecutive_failures = 0
        self.consecutive_network_failures = 0
        self.consecutive_ok = 0
        self.last_outcome: Outcome | None = None
        self.last_latency_ms: float | None = None
        self.last_at: float | None = None
        self.last_ok_at: float | None = None
        self.last_error_code: str | None = None
        self.last_error_message: str | None = None
        self.last_error_outcome: Outcome | None = None
        self.last_error_at: float | None = None
        self.last_usage: float | None = None
        self.clock_offset_ms: float | None = None
        self.clock_error_ms: float | None = None
        self.offsets: deque[tuple[float, float, float | None]] = deque(maxlen=offset_history)
        self.breaker = BreakerState.CLOSED
        self.ban_until: float | None = None
        self.maintenance_until: float | None = None
        self.retry_until: float | None = None
        self.last_seen = [0.0] * N_OUTCOMES  # time of the last result of each outcome (0 = never)
        # sparkline rings: latency of successful probes, and ok/fail of every attempt
        self.latencies: deque[float] = deque(maxlen=sparkline_points)
        self.ok_flags: deque[bool] = deque(maxlen=sparkline_points)
        self.ok_latency_count = 0  # all-time appends to ``latencies`` (the anomaly model reads the new ones)

    def _note(self, r: ProbeResult, oi: int, ts: float) -> None:
        """Update the latest state with one result (a skipped probe only marks that it was skipped)."""
        self.total_results += 1
        last_at = self.last_at
        if last_at is None or ts >= last_at:
            self.last_at = ts
        self.breaker = r.breaker
        self.last_seen[oi] = ts
        if r.maintenance_until is not None:
            self.maintenance_until = r.maintenance_until
        if oi == _SKIPPED:
            return  # never sent: not an attempt, not a failure, not a latency
        lat = r.latency_ms
        self.last_outcome = r.outcome
        self.last_latency_ms = lat
        if oi == _OK:
            self.consecutive_failures = 0
            self.consecutive_network_failures = 0
            self.consecutive_ok += 1
            self.last_ok_at = ts
            self.ok_flags.append(True)
            if lat is not None:
                self.latencies.append(lat)
                self.ok_latency_count += 1
        else:
            self.ok_flags.append(False)
            self._note_failure(r, oi, ts)
        usage = r.rate_limit_used
        if usage is not None:
            self.last_usage = usage
        offset = r.clock_offset_ms
        if offset is not None:
            self.clock_offset_ms = offset
            self.clock_error_ms = r.clock_error_ms
            self.offsets.append((ts, offset, r.clock_error_ms))

    def _note_failure(self, r: ProbeResult, oi: int, ts: float) -> None:
        self.consecutive_failures += 1
        self.consecutive_ok = 0
        if oi in _NETWORK_INDEXES:
            self.consecutive_network_failures += 1
        else:
            self.consecutive_network_failures = 0
        if r.error_code is not None:
            self.last_error_code = r.error_code
        else:
            self.last_error_code = str(r.http_status) if r.http_status is not None else r.outcome.value
        self.last_error_message = r.error_message
        self.last_error_outcome = r.outcome
        self.last_error_at = ts
        if r.ban_until is not None:
            self.ban_until = r.ban_until
        if r.retry_after_s is not None:
            self.retry_until = ts + r.retry_after_s

    def _snapshot(
        self,
        attempts: int,
        error_rate: float,
        hist: LogHistogram,
        timeouts: int,
        counts: dict[str, int],
        usage_peak: float | None,
    ) -> SeriesStats:
        return SeriesStats(
            attempts=attempts,
            error_rate=round(error_rate, 6),
            p50_ms=_r(hist.quantile(0.5)),
            p95_ms=_r(hist.quantile(0.95)),
            p99_ms=_r(hist.quantile(0.99)),
            timeouts=timeouts,
            consecutive_failures=self.consecutive_failures,
            counts=counts,
            rate_limit_peak=usage_peak,
            rate_limit_last=self.last_usage,
            clock_offset_ms=_r(self.clock_offset_ms),
            clock_error_ms=_r(self.clock_error_ms),
            clock_offset_history=tuple((t, _r(o)) for t, o, _ in self.offsets),
            last_error_code=self.last_error_code,
            last_error_message=self.last_error_message,
            last_error_at=self.last_error_at,
            last_outcome=self.last_outcome,
            last_latency_ms=_r(self.last_latency_ms),
            last_at=self.last_at,
            breaker=self.breaker,
            sparkline=tuple(round(x, 3) for x in self.latencies),
            sparkline_ok=tuple(self.ok_flags),
        )


class Series(SeriesState):
    """Rolling metrics of one (exchange, probe) pair.

    ``record`` is O(1): it touches one bucket, the window totals and a few rings. Buckets are
    expired lazily by ``advance(now)`` (also called from ``record``) so a silent series still
    recovers when asked at a later time. ``rollups=False`` keeps only the per-minute medians the
    latency baseline learns from (a backtest never stores rollups).
    """

    __slots__ = (
        "_buckets",
        "_closed_through",
        "_grace",
        "_head",
        "_minutes",
        "_oldest_open",
        "_rollups_enabled",
        "attempts",
        "bucket_s",
        "counts",
        "errors",
        "hist",
        "minute_p50",
        "n_buckets",
        "pending_rollups",
        "timeouts",
        "window_s",
    )

    def __init__(
        self,
        exchange: str,
        probe: str | None,
        *,
        window_s: float = 300.0,
        bucket_s: float = 5.0,
        sparkline_points: int = 120,
        offset_history: int = 60,
        minute_history: int = 60,
        rollups: bool = True,
        rollup_grace_s: float = 10.0,
        max_pending_rollups: int = 1440,
    ) -> None:
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError("window must be at least one bucket long")
        super().__init__(exchange, probe, sparkline_points, offset_history)
        self.bucket_s = float(bucket_s)
        self.n_buckets = max(1, round(window_s / bucket_s))
        self.window_s = self.n_buckets * self.bucket_s
        self._buckets = [_Bucket() for _ in range(self.n_buckets)]
        self._head = -1  # index of the newest bucket seen (time // bucket_s)
        # window totals
        self.attempts = 0
        self.errors = 0
        self.timeouts = 0
        self.counts = [0] * N_OUTCOMES
        self.hist = LogHistogram()
        # per-minute history (baseline input) and rollups
        self.minute_p50: deque[tuple[float, float, int]] = deque(maxlen=minute_history)
        self._rollups_enabled = rollups
        self._grace = rollup_grace_s
        self._minutes: dict[float, _Minute] = {}
        self._closed_through = -math.inf  # minutes starting before this are closed
        self._oldest_open = math.inf
        self.pending_rollups: deque[Rollup] = deque(maxlen=max_pending_rollups)

    # ------------------------------------------------------------------ recording
    def record(self, r: ProbeResult) -> None:
        lat = r.latency_ms
        bin_ = None
        if lat is not None and r.outcome is Outcome.OK:
            bin_ = _ceil(_log(MIN_MS if lat < MIN_MS else (MAX_MS if lat > MAX_MS else lat)) * INV_LOG_GAMMA)
        self.record_indexed(r, OUTCOME_INDEX[r.outcome], bin_)

    def record_indexed(self, r: ProbeResult, oi: int, bin_: int | None) -> None:
        """``record`` with the outcome index and latency bin already computed (shared by the registry)."""
        ts = r.started_at
        self._note(r, oi, ts)
        if oi == _SKIPPED:
            return

        bidx = int(ts // self.bucket_s)
        n = self.n_buckets
        bucket = self._buckets[bidx % n]
        if bidx > self._head:
            if bidx == self._head + 1 and (bucket.idx == -1 or bucket.idx < bidx - n + 1):
                # the common case: the next bucket; its slot holds the one that just left the window
                if bucket.attempts:
                    self._expire(bucket)
                bucket.reset(bidx)
                self._head = bidx
            else:
                self._advance_to(bidx)
        in_window = True
        if bucket.idx != bidx:
            if bidx <= self._head - n:
                in_window = False  # older than the window: only the latest state and the minute take it
            else:
                # first result of this bucket: whatever the slot held is older than the window
                if bucket.idx != -1:
                    self._expire(bucket)
                bucket.reset(bidx)

        ok = oi == _OK
        usage = r.rate_limit_used
        if in_window:
            bucket.attempts += 1
            bucket.counts[oi] += 1
            self.attempts += 1
            self.counts[oi] += 1
            if not ok:
                bucket.errors += 1
                self.errors += 1
                if oi == _TIMEOUT:
                    bucket.timeouts += 1
                    self.timeouts += 1
            if bin_ is not None:
                bins = bucket.bins
                bins[bin_] = bins.get(bin_, 0) + 1
                hist = self.hist
                c = hist.counts.get(bin_)
                if c is None:
                    hist.add(bin_)
                else:
                    hist.counts[bin_] = c + 1
                    hist.total += 1
            if usage is not None and (bucket.usage_peak is None or usage > bucket.usage_peak):
                bucket.usage_peak = usage

        self._record_minute(r, oi, ok, r.latency_ms, bin_, ts)

    def _record_minute(self, r: ProbeResult, oi: int, ok: bool, lat: float | None, bin_: int | None, ts: float) -> None:
        start = ts - ts % ROLLUP_SECONDS
        if start < self._closed_through:
            start = self._closed_through  # late result: fold into the oldest minute still open
        m = self._minutes.get(start)
        if m is None:
            if len(self._minutes) > 4:
                self.close_minutes(ts)
            m = self._minutes[start] = _Minute(start)
            if start < self._oldest_open:
                self._oldest_open = start
        if bin_ is not None and lat is not None:
            m.bins[bin_] = m.bins.get(bin_, 0) + 1
            m.lat_n += 1
            if not self._rollups_enabled:
                return  # minute medians only (the baseline's input): nothing else is read
            m.lat_sum += lat
            if lat < m.lat_min:
                m.lat_min = lat
            if lat > m.lat_max:
                m.lat_max = lat
        elif not self._rollups_enabled:
            return
        m.attempts += 1
        m.counts[oi] += 1
        if not ok:
            m.errors += 1
            if oi == _TIMEOUT:
                m.timeouts += 1
        u = r.rate_limit_used
        if u is not None and (m.usage_peak is None or u > m.usage_peak):
            m.usage_peak = u
        if r.clock_offset_ms is not None:
            m.offset = r.clock_offset_ms
            m.offset_err = r.clock_error_ms

    # ------------------------------------------------------------------ time
    def advance(self, now: float) -> None:
        """Expire buckets that fell out of the window at ``now`` and close finished minutes."""
        bidx = int(now // self.bucket_s)
        if bidx > self._head:
            self._advance_to(bidx)
        if self._oldest_open + ROLLUP_SECONDS + self._grace <= now:
            self.close_minutes(now)

    def _advance_to(self, bidx: int) -> None:
        oldest_kept = bidx - self.n_buckets + 1
        if self.attempts or self.hist.total:
            start = max(self._head + 1, bidx - self.n_buckets + 1)
            # every slot whose bucket is older than the window start gets expired
            for j in range(start, bidx + 1):
                b = self._buckets[j % self.n_buckets]
                if b.idx != -1 and b.idx < oldest_kept:
                    self._expire(b)
                    b.reset(-1)
        self._head = bidx

    def _expire(self, b: _Bucket) -> None:
        if b.attempts == 0:
            return
        self.attempts -= b.attempts
        counts = self.counts
        if b.errors:
            self.errors -= b.errors
            self.timeouts -= b.timeouts
            for i, c in enumerate(b.counts):
                if c:
                    counts[i] -= c
        else:
            counts[_OK] -= b.attempts  # no error in the bucket: every attempt was ok (the calm common case)
        if b.bins:
            self.hist.subtract_counts(b.bins)

    def close_minutes(self, now: float) -> None:
        """Turn minutes that ended at least ``grace`` ago into rollups and baseline points."""
        if not self._minutes:
            self._oldest_open = math.inf
            return
        limit = now - ROLLUP_SECONDS - self._grace
        for start in sorted(self._minutes):
            if start > limit and len(self._minutes) <= 4:
                break
            m = self._minutes.pop(start)
            self._closed_through = max(self._closed_through, start + ROLLUP_SECONDS)
            self._emit_minute(m)
        self._oldest_open = min(self._minutes) if self._minutes else math.inf

    def _emit_minute(self, m: _Minute) -> None:
        if not self._rollups_enabled:
            if m.bins:
                p50 = quantile_of_counts(m.bins, 0.5)
                if p50 is not None:
                    self.minute_p50.append((m.start, p50, m.lat_n))
            return
        p50 = p95 = p99 = None
        if m.bins:
            p50, p95, p99 = quantiles_of_counts(m.bins, (0.5, 0.95, 0.99))
        if p50 is not None:
            self.minute_p50.append((m.start, p50, m.lat_n))
        self.pending_rollups.append(
            Rollup(
                exchange=self.exchange,
                probe=self.probe or "*",
                minute=m.start,
                attempts=m.attempts,
                errors=m.errors,
                timeouts=m.timeouts,
                counts={OUTCOMES[i].value: c for i, c in enumerate(m.counts) if c},
                p50_ms=p50,
                p95_ms=p95,
                p99_ms=p99,
                min_ms=m.lat_min if m.lat_n else None,
                max_ms=m.lat_max if m.lat_n else None,
                mean_ms=m.lat_sum / m.lat_n if m.lat_n else None,
                rate_limit_peak=m.usage_peak,
                clock_offset_ms=m.offset,
                clock_error_ms=m.offset_err,
            )
        )

    def drain_rollups(self) -> list[Rollup]:
        out = list(self.pending_rollups)
        self.pending_rollups.clear()
        return out

    # ------------------------------------------------------------------ queries
    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0

    def quantile(self, q: float) -> float | None:
        return self.hist.quantile(q)

    def count(self, outcome: Outcome) -> int:
        return self.counts[OUTCOME_INDEX[outcome]]

    def counts_dict(self) -> dict[str, int]:
        return {OUTCOMES[i].value: c for i, c in enumerate(self.counts) if c}

    def usage_peak(self, now: float | None = None, seconds: float | None = None) -> float | None:
        """Highest rate-limit usage over the window (or its last ``seconds``)."""
        lo = self._lowest_bucket(now, seconds)
        peak: float | None = None
        for b in self._buckets:
            if b.idx >= lo and b.usage_peak is not None and (peak is None or b.usage_peak > peak):
                peak = b.usage_peak
        return peak

    def recent_count(self, outcome_index: int, now: float, seconds: float) -> int:
        """Results of one outcome (index into OUTCOMES) over the last ``seconds`` of the window."""
        lo = self._lowest_bucket(now, seconds)
        return sum(b.counts[outcome_index] for b in self._buckets if b.idx >= lo)

    def newest_usage_peak(self) -> float | None:
        """Highest usage in the two newest buckets: O(1) gate for an idle usage rule."""
        head = self._head
        peak: float | None = None
        for idx in (head, head - 1):
            b = self._buckets[idx % self.n_buckets]
            if b.idx == idx and b.usage_peak is not None and (peak is None or b.usage_peak > peak):
                peak = b.usage_peak
        return peak

    def recent(self, now: float, seconds: float, *, since: float | None = None, bins: bool = True) -> WindowStats:
        """Totals over the last ``seconds`` (rounded to buckets), optionally only from ``since`` on."""
        lo = self._lowest_bucket(now, seconds)
        if since is not None:
            lo = max(lo, math.ceil(since / self.bucket_s))  # whole buckets only: nothing from before `since`
        return _window_stats([b for b in self._buckets if b.idx >= lo and b.attempts], bins)

    def _lowest_bucket(self, now: float | None, seconds: float | None) -> int:
        head = self._head if now is None else max(self._head, int(now // self.bucket_s))
        span = self.n_buckets if seconds is None else max(1, min(self.n_buckets, _ceil(seconds / self.bucket_s)))
        return head - span + 1

    def approx_size(self) -> int:
        """Stored items (bins, ring slots, pending records): proves memory is bounded."""
        return (
            sum(len(b.bins) + N_OUTCOMES for b in self._buckets)
            + len(self.hist.counts)
            + len(self.latencies)
            + len(self.ok_flags)
            + len(self.offsets)
            + len(self.minute_p50)
            + len(self._minutes)
            + len(self.pending_rollups)
        )

    def snapshot(self, now: float) -> SeriesStats:
        self.advance(now)
        return self._snapshot(
            self.attempts, self.error_rate, self.hist, self.timeouts, self.counts_dict(), self.usage_peak(now)
        )


class ExchangeSeries(SeriesState):
    """A whole exchange: the latest state follows every result of every probe in recording order (a
    failure streak spans probes); window figures are summed from the probes' buckets when asked.

    Why summed and not recorded twice: the probes share one bucket grid, so the sum over their buckets
    in the exchange's window is exactly what a second ring would hold, and it is read at most once per
    evaluation tick or snapshot while results arrive several times per tick.
    """

    __slots__ = (
        "_head",
        "_usage_idx",
        "_usage_peak",
        "_usage_prev",
        "bucket_s",
        "n_buckets",
        "probes",
        "unusual",
        "window_s",
    )

    def __init__(
        self,
        exchange: str,
        probes: dict[str, Series],
        *,
        window_s: float = 300.0,
        bucket_s: float = 5.0,
        sparkline_points: int = 120,
        offset_history: int = 60,
    ) -> None:
        if bucket_s <= 0 or window_s < bucket_s:
            raise ValueError("window must be at least one bucket long")
        super().__init__(exchange, None, sparkline_points, offset_history)
        self.probes = probes
        self.bucket_s = float(bucket_s)
        self.n_buckets = max(1, round(window_s / bucket_s))
        self.window_s = self.n_buckets * self.bucket_s
        self._head = -1  # newest bucket of any probe (or of ``advance``): the window ends there
        # highest usage in the newest bucket that had one (_usage_idx) and in the bucket before it
        self._usage_idx = -1
        self._usage_peak: float | None = None
        self._usage_prev: float | None = None
        # results that were not a plain success (failed, skipped, breaker not closed, maintenance announced):
        # while it does not move, only usage and clock offset can have changed what the exchange looks like
        self.unusual = 0

    def record(self, r: ProbeResult) -> None:
        self.record_indexed(r, OUTCOME_INDEX[r.outcome], None)

    def record_indexed(self, r: ProbeResult, oi: int, bin_: int | None = None) -> None:
        """Latest state only: the probe's own series holds the result's bucket."""
        ts = r.started_at
        self._note(r, oi, ts)
        if oi != _OK or r.breaker is not _CLOSED or r.maintenance_until is not None:
            self.unusual += 1
        if oi != _SKIPPED:
            bidx = int(ts // self.bucket_s)
            if bidx > self._head:
                self._head = bidx
            usage = r.rate_limit_used
            if usage is not None:
                self._note_usage(bidx, usage)

    def _note_usage(self, bidx: int, usage: float) -> None:
        last = self._usage_idx
        if bidx > last:
            self._usage_prev = self._usage_peak if bidx == last + 1 else None
            self._usage_peak = usage
            self._usage_idx = bidx
        elif bidx == last:
            if self._usage_peak is None or usage > self._usage_peak:
                self._usage_peak = usage
        elif bidx == last - 1 and (self._usage_prev is None or usage > self._usage_prev):
            self._usage_prev = usage

    def advance(self, now: float) -> None:
        bidx = int(now // self.bucket_s)
        if bidx > self._head:
            self._head = bidx

    def _lowest_bucket(self, now: float | None, seconds: float | None) -> int:
        # A probe advanced to the evaluation time may already have dropped buckets from before its own
        # window: the exchange's window ends at the newest time any of its probes has seen.
        head = self._head
        for s in self.probes.values():
            if s._head > head:
                head = s._head
        if now is not None:
            head = max(head, int(now // self.bucket_s))
        span = self.n_buckets if seconds is None else max(1, min(self.n_buckets, _ceil(seconds / self.bucket_s)))
        return head - span + 1

    def _buckets_from(self, lo: int) -> list[_Bucket]:
        """The probes' buckets at or after bucket ``lo`` that saw an attempt."""
        return [b for s in self.probes.values() for b in s._buckets if b.idx >= lo and b.attempts]

    def counts_dict(self) -> dict[str, int]:
        """Results per outcome over the exchange's window (totals: ``recent(None, None)``)."""
        counts = [0] * N_OUTCOMES
        for b in self._buckets_from(self._lowest_bucket(None, None)):
            for i, c in enumerate(b.counts):
                if c:
                    counts[i] += c
        return {OUTCOMES[i].value: c for i, c in enumerate(counts) if c}

    def usage_peak(self, now: float | None = None, seconds: float | None = None) -> float | None:
        """Highest rate-limit usage over the window (or its last ``seconds``) on any probe."""
        lo = self._lowest_bucket(now, seconds)
        peak: float | None = None
        for b in self._buckets_from(lo):
            if b.usage_peak is not None and (peak is None or b.usage_peak > peak):
                peak = b.usage_peak
        return peak

    def recent_count(self, outcome_index: int, now: float, seconds: float) -> int:
        return sum(b.counts[outcome_index] for b in self._buckets_from(self._lowest_bucket(now, seconds)))

    def newest_usage_peak(self) -> float | None:
        """Highest usage in the two newest buckets: O(1) gate for an idle usage rule."""
        head, idx = self._head, self._usage_idx
        if idx == head:
            prev = self._usage_prev if self.n_buckets > 1 else None
            peak = self._usage_peak
            return prev if peak is None or (prev is not None and prev > peak) else peak
        if idx == head - 1 and self.n_buckets > 1:
            return self._usage_peak
        return None

    def recent(
        self, now: float | None, seconds: float | None, *, since: float | None = None, bins: bool = True
    ) -> WindowStats:
        lo = self._lowest_bucket(now, seconds)
        if since is not None:
            lo = max(lo, math.ceil(since / self.bucket_s))
        return _window_stats(self._buckets_from(lo), bins)

    def snapshot(self, now: float) -> SeriesStats:
        """Window totals of the exchange; latency percentiles are filled in by the registry, which merges
        the probes' histograms once they are advanced to ``now``."""
        self.advance(now)
        totals = self.recent(None, None, bins=False)
        counts = self.counts_dict()
        peak = self.usage_peak(now)
        return self._snapshot(totals.attempts, totals.error_rate, _EMPTY_HIST, totals.timeouts, counts, peak)


_EMPTY_HIST = LogHistogram()


def _window_stats(buckets: list[_Bucket], bins: bool) -> WindowStats:
    """Totals (and merged latency bins) of the buckets a window covers."""
    stats = WindowStats()
    merged = stats.latency_bins
    for b in buckets:
        stats.attempts += b.attempts
        stats.errors += b.errors
        stats.timeouts += b.timeouts
        if bins:
            for k, c in b.bins.items():
                merged[k] = merged.get(k, 0) + c
    return stats


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
