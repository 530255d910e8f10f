"""Cumulative counts since the engine started, for Prometheus counters and histograms.

Why apart from the rolling windows: a window forgets, so a gauge built from it cannot be summed or
``rate()``d across scrapes or locations. These only grow (a daemon restart resets them, which
Prometheus' ``rate()`` handles), and the duration histogram has fixed bucket bounds shared by every
daemon, so ``histogram_quantile`` over ``sum by (le)`` gives a true percentile across locations.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.metrics.series import N_OUTCOMES, OUTCOME_INDEX, OUTCOMES

# Upper bounds in seconds: 1 ms to 10 s, about three buckets per decade (1-2-5 plus finer steps where
# exchange latencies usually sit), so a p99 interpolated inside a bucket is off by at most its width.
DURATION_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)
_BOUNDS_MS = tuple(b * 1000.0 for b in DURATION_BUCKETS_S)
_INF = float("inf")


@dataclass(frozen=True, slots=True)
class DurationCounts:
    """A read-only copy of one histogram: per-bucket counts (not cumulative; last = above 10 s)."""

    buckets: tuple[int, ...]
    count: int
    sum_s: float

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count <= le)`` pairs ending with ``+Inf``, as Prometheus wants them."""
        out: list[tuple[str, int]] = []
        seen = 0
        for bound, n in zip((*(repr(b) for b in DURATION_BUCKETS_S), "+Inf"), self.buckets, strict=True):
            seen += n
            out.append((bound, seen))
        return out


class ProbeTotals:
    """Counts of one (exchange, probe) pair: results by outcome and the latency of successful probes.

    ``record_indexed`` is on the probe path (the registry calls it per result): list slots, one bisect.
    """

    __slots__ = ("buckets", "count", "outcomes", "sum_ms")

    def __init__(self) -> None:
        self.outcomes = [0] * N_OUTCOMES  # by metrics.series.OUTCOME_INDEX
        self.buckets = [0] * (len(DURATION_BUCKETS_S) + 1)
        self.count = 0
        self.sum_ms = 0.0

    def record_indexed(self, outcome_index: int, latency_ms: float | None) -> None:
        self.outcomes[outcome_index] += 1
        if latency_ms is not None and 0.0 <= latency_ms < _INF:
            self.buckets[bisect_left(_BOUNDS_MS, latency_ms)] += 1
            self.count += 1
            self.sum_ms += latency_ms

    def by_outcome(self) -> dict[str, int]:
        return {OUTCOMES[i].value: n for i, n in enumerate(self.outcomes) if n}

    def durations(self) -> DurationCounts:
        return DurationCounts(tuple(self.buckets), self.count, self.sum_ms / 1000.0)


class Totals:
    """Every probe pair's totals; recording is O(log buckets)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], ProbeTotals] = {}

    def pair(self, exchange: str, probe: str) -> ProbeTotals:
        """The totals of one pair (created on first use); the registry keeps it beside the pair's series."""
        found = self._pairs.get((exchange, probe))
        if found is None:
            found = self._pairs[(exchange, probe)] = ProbeTotals()
        return found

    def record(self, exchange: str, probe: str, outcome: str, latency_ms: float | None) -> None:
        """One result by outcome value (tests and fakes; the registry uses ``record_indexed``)."""
        self.pair(exchange, probe).record_indexed(OUTCOME_INDEX[Outcome(outcome)], latency_ms)

    def probe_outcomes(self) -> dict[tuple[str, str, str], int]:
        """``(exchange, probe, outcome) -> results`` (skipped probes included: they are outcomes too)."""
        return {(ex, pr, o): n for (ex, pr), t in self._pairs.items() for o, n in t.by_outcome().items()}

    def probe_durations(self) -> dict[tuple[str, str], DurationCounts]:
        """``(exchange, probe) -> latency histogram of successful probes``."""
        return {key: t.durations() for key, t in self._pairs.items() if t.count}
