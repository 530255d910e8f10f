"""Rolling metrics: windowed counts that recover, accurate bounded percentiles, rings, rollups."""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections import deque
from typing import Any

import pytest

from cryptomon_tui.kernel.results import BreakerState, Outcome, ProbeResult
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics import MetricsRegistry, Series
from cryptomon_tui.metrics.histogram import LogHistogram, bin_index

T0 = 1_700_000_040.0  # on a minute boundary


def r(t: float, outcome: Outcome = Outcome.OK, latency: float | None = 20.0, **kw: object) -> ProbeResult:
    return ProbeResult("binance", "ping", t, latency if outcome is Outcome.OK or latency else None, outcome, **kw)  # type: ignore[arg-type]


def test_error_rate_counts_timeouts_and_ignores_skipped() -> None:
    s = Series("binance", "ping")
    for i in range(6):
        s.record(r(T0 + i))
    s.record(r(T0 + 6, Outcome.TIMEOUT, None))
    s.record(r(T0 + 7, Outcome.HTTP_5XX, 40.0, http_status=503))
    s.record(r(T0 + 8, Outcome.SKIPPED_OPEN_CIRCUIT, None, breaker=BreakerState.OPEN))
    assert s.attempts == 8 and s.errors == 2 and s.timeouts == 1
    assert s.error_rate == pytest.approx(2 / 8)
    assert s.count(Outcome.TIMEOUT) == 1 and s.count(Outcome.SKIPPED_OPEN_CIRCUIT) == 0
    assert s.breaker is BreakerState.OPEN
    assert s.consecutive_failures == 2  # the skipped probe neither breaks nor extends the streak
    assert s.last_error_code == "503" and s.last_error_at == T0 + 7


def test_error_rate_recovers_when_errors_leave_the_window() -> None:
    s = Series("binance", "ping", window_s=300, bucket_s=5)
    for i in range(60):
        s.record(r(T0 + i, Outcome.TIMEOUT, None))
    assert s.error_rate == 1.0
    for i in range(60, 400):
        s.record(r(T0 + i))
    assert s.errors == 0 and s.timeouts == 0 and s.error_rate == 0.0
    assert s.attempts == 300
    # a silent series also forgets when asked later
    s.advance(T0 + 2000)
    assert s.attempts == 0 and s.hist.total == 0 and s.quantile(0.99) is None


def test_percentiles_within_two_percent_of_exact() -> None:
    rnd = random.Random(5)
    s = Series("binance", "ping", window_s=300, bucket_s=5)
    values = []
    for i in range(3000):
        v = rnd.lognormvariate(math.log(80), 0.8)
        values.append(v)
        s.record(r(T0 + i * 0.1, latency=v))
    values.sort()
    for q in (0.5, 0.95, 0.99):
        exact = values[math.ceil(q * len(values)) - 1]
        assert s.quantile(q) == pytest.approx(exact, rel=0.02), q


def test_histogram_subtract_and_count_above() -> None:
    h = LogHistogram()
    for v in (1.0, 10.0, 100.0, 1000.0, 1000.0):
        h.add(bin_index(v))
    assert h.count_above(500.0) == 2
    h.subtract_counts({bin_index(1000.0): 2})
    assert h.total == 3 and h.quantile(1.0) == pytest.approx(100.0, rel=0.02)
    assert bin_index(0.0) == bin_index(1e-9)  # clamped to the floor, never log(0)


def test_rings_and_last_values() -> None:
    s = Series("binance", "time", sparkline_points=5, offset_history=3)
    for i in range(8):
        s.record(r(T0 + i, latency=float(i), clock_offset_ms=-float(i), clock_error_ms=1.0, rate_limit_used=i / 10))
    s.record(r(T0 + 8, Outcome.CONNECT, None, error_code="ECONNREFUSED", error_message="refused"))
    assert list(s.latencies) == [3.0, 4.0, 5.0, 6.0, 7.0]  # failed probes are not latency points
    assert list(s.ok_flags) == [True, True, True, True, False]
    assert [o for _, o, _ in s.offsets] == [-5.0, -6.0, -7.0]
    assert s.clock_offset_ms == -7.0 and s.clock_error_ms == 1.0
    assert s.usage_peak(T0 + 8) == pytest.approx(0.7)
    assert (s.last_error_code, s.last_error_message, s.last_outcome) == ("ECONNREFUSED", "refused", Outcome.CONNECT)
    assert s.consecutive_network_failures == 1


def test_rollups_per_minute_with_grace_for_late_results() -> None:
    s = Series("binance", "ping", rollup_grace_s=10)
    for i in range(60):
        s.record(r(T0 + i, latency=10.0 + i))
    s.record(r(T0 + 59.5, Outcome.TIMEOUT, None))
    s.record(r(T0 + 61, latency=5.0, rate_limit_used=0.4, clock_offset_ms=12.0, clock_error_ms=3.0))
    s.record(r(T0 + 58, Outcome.HTTP_5XX, 50.0))  # late: lands after the next minute started
    s.advance(T0 + 69)
    assert s.drain_rollups() == []  # inside the grace period
    s.advance(T0 + 71)
    [m0] = s.drain_rollups()
    assert m0.minute == T0 and m0.attempts == 62 and m0.errors == 2 and m0.timeouts == 1
    assert m0.counts == {"ok": 60, "timeout": 1, "http_5xx": 1}
    assert m0.min_ms == 10.0 and m0.max_ms == 69.0 and m0.mean_ms == pytest.approx(39.5)
    assert m0.p50_ms == pytest.approx(39.0, rel=0.02) and m0.p99_ms == pytest.approx(69.0, rel=0.02)
    s.advance(T0 + 131)
    [m1] = s.drain_rollups()
    assert m1.minute == T0 + 60 and m1.rate_limit_peak == 0.4 and m1.clock_offset_ms == 12.0
    assert json.dumps(m1.to_dict())
    assert next(iter(s.minute_p50))[0] == T0


def test_registry_snapshot_is_json_and_documented_keys() -> None:
    reg = MetricsRegistry()
    reg.record(r(T0, rate_limit_used=0.2, clock_offset_ms=-3.0, clock_error_ms=1.0))
    reg.record(ProbeResult("binance", "book", T0 + 1, None, Outcome.TIMEOUT))
    typed = reg.snapshot(T0 + 2)
    snap = json.loads(json.dumps(typed.to_json()))
    ex = snap["exchanges"]["binance"]
    keys = {
        "attempts", "error_rate", "p50_ms", "p95_ms", "p99_ms", "timeouts", "consecutive_failures", "counts",
        "rate_limit_peak", "clock_offset_ms", "clock_error_ms", "last_error_code", "last_error_message",
        "last_error_at", "sparkline", "sparkline_ok", "last_outcome", "last_latency_ms", "breaker",
    }  # fmt: skip
    assert keys <= set(ex) and keys <= set(ex["probes"]["ping"])
    assert ex["attempts"] == 2 and ex["error_rate"] == 0.5 and ex["probes"]["book"]["timeouts"] == 1
    record = typed.exchanges["binance"]  # the typed record says the same as its wire form
    assert (record.totals.attempts, record.totals.error_rate, record.probes["book"].timeouts) == (2, 0.5, 1)
    assert record.probes["ping"].last_outcome is Outcome.OK and ex["probes"]["ping"]["last_outcome"] == "ok"
    assert record.totals.last_at == T0 + 1 and ex["last_at"] == iso_utc(T0 + 1)
    assert ex["clock_offset_history"] == [[iso_utc(T0), -3.0]]
    rollups = reg.drain_rollups(T0 + 200)
    assert {(x.probe, x.attempts) for x in rollups} == {("ping", 1), ("book", 1)}


def _deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes reachable from ``obj`` (containers, slots, instance dicts), each object counted once."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, type):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset | deque):
        size += sum(_deep_size(x, seen) for x in obj)
    else:
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                size += _deep_size(getattr(obj, name), seen)
        if hasattr(obj, "__dict__"):
            size += _deep_size(vars(obj), seen)
    return size


@pytest.mark.slow  # pushes 10^5-10^6 results
@pytest.mark.timeout(240)  # ~5 s alone; the 2 shared cores can be much slower under a full suite
def test_one_million_results_through_one_series_stay_bounded() -> None:
    """Memory is flat: size after 1M results equals size after the first window."""
    s = Series("binance", "ping")
    rnd = random.Random(9)
    lat = [rnd.lognormvariate(math.log(50), 0.6) for _ in range(4096)]
    outcomes = [Outcome.OK] * 40 + [Outcome.TIMEOUT, Outcome.HTTP_5XX]
    n = 1_000_000
    size_after_window = 0
    mem_after_window = 0
    started = time.perf_counter()
    for i in range(n):
        o = outcomes[i % len(outcomes)]
        s.record(ProbeResult("binance", "ping", T0 + i * 0.05, lat[i & 4095] if o is Outcome.OK else None, o))
        if i == 200_000:
            s.drain_rollups()
            size_after_window = s.approx_size()
            mem_after_window = _deep_size(s)
    elapsed = time.perf_counter() - started
    s.drain_rollups()
    mem_end = _deep_size(s)
    size_end = s.approx_size()
    print(f"\n1M results: {n / elapsed:,.0f}/s; size {size_after_window} -> {size_end} items; "
          f"deep size {mem_after_window / 1e3:.0f} kB -> {mem_end / 1e3:.0f} kB")  # fmt: skip
    assert s.total_results == n
    assert size_end <= size_after_window * 1.2
    assert mem_end <= mem_after_window * 1.2 + 50_000
    assert len(s.latencies) == 120 and len(s.pending_rollups) == 0


@pytest.mark.slow  # pushes 10^5-10^6 results
def test_record_throughput_is_reported() -> None:
    reg = MetricsRegistry()
    rnd = random.Random(1)
    results = [
        ProbeResult(f"ex{i % 5}", f"p{i % 4}", T0 + i * 0.01, rnd.lognormvariate(3, 0.5), Outcome.OK,
                    rate_limit_used=0.1)
        for i in range(100_000)
    ]  # fmt: skip
    started = time.perf_counter()
    for res in results:
        reg.record(res)
    elapsed = time.perf_counter() - started
    print(f"\nMetricsRegistry.record: {len(results) / elapsed:,.0f} results/s")
    assert reg.recorded == len(results)


def test_exchange_series_equals_one_series_recording_every_result_of_its_probes() -> None:
    """The exchange series sums its probes' buckets instead of recording each result a second time: at
    any moment its figures equal those of a single series fed every result (what it used to be), late
    results, skipped probes, failures, bans and usage included."""
    rng = random.Random(11)
    registry = MetricsRegistry(window_s=60.0, bucket_s=5.0)
    reference = Series("okx", None, window_s=60.0, bucket_s=5.0)
    outcomes = [Outcome.OK] * 12 + [Outcome.TIMEOUT, Outcome.HTTP_5XX, Outcome.RATE_LIMITED, Outcome.RESET]
    t = T0
    for step in range(3000):
        t += rng.uniform(0.0, 1.2)
        late = rng.random() < 0.05
        ts = t - rng.uniform(5.0, 90.0) if late else t  # a slow probe lands after newer ones, some out of window
        outcome = rng.choice(outcomes)
        skipped = rng.random() < 0.03
        result = ProbeResult(
            "okx",
            rng.choice(["time", "ticker", "book"]),
            ts,
            None if skipped or outcome is Outcome.TIMEOUT else rng.uniform(5.0, 900.0),
            Outcome.SKIPPED_OPEN_CIRCUIT if skipped else outcome,
            rate_limit_used=rng.choice([None, rng.random()]),
            clock_offset_ms=rng.choice([None, rng.uniform(-50.0, 50.0)]),
            retry_after_s=2.0 if outcome is Outcome.RATE_LIMITED else None,
        )
        registry.record(result)
        reference.record(result)
        agg = registry.exchange("okx").aggregate  # type: ignore[union-attr]
        if step % 7 == 0:
            now = t + rng.choice([0.0, 3.0, 30.0])
            if rng.random() < 0.3:
                agg.advance(now)
                reference.advance(now)
            totals = agg.recent(None, None, bins=False)
            assert (totals.attempts, totals.errors, totals.timeouts) == (
                reference.attempts,
                reference.errors,
                reference.timeouts,
            )
            assert agg.counts_dict() == reference.counts_dict() and totals.error_rate == reference.error_rate
            assert agg.newest_usage_peak() == reference.newest_usage_peak()
            for seconds in (None, 5.0, 20.0, 60.0):
                assert agg.usage_peak(now, seconds) == reference.usage_peak(now, seconds)
            assert agg.recent_count(2, now, 30.0) == reference.recent_count(2, now, 30.0)
            got, want = agg.recent(now, 20.0, bins=False), reference.recent(now, 20.0, bins=False)
            assert (got.attempts, got.errors, got.timeouts) == (want.attempts, want.errors, want.timeouts)
            for name in ("consecutive_failures", "consecutive_network_failures", "consecutive_ok", "last_ok_at",
                         "last_error_code", "last_error_outcome", "retry_until", "clock_offset_ms", "last_at"):
                assert getattr(agg, name) == getattr(reference, name), name
            assert list(agg.latencies) == list(reference.latencies) and list(agg.offsets) == list(reference.offsets)
    assert reference.attempts > 0 and reference.errors > 0
