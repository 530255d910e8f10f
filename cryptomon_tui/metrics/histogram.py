"""Fixed-resolution log histogram for latency percentiles.

Why: exact percentiles need every sample (unbounded memory); a log-binned histogram keeps one
counter per occupied bin, so memory depends on the spread of latencies, never on the run time,
and every reported value is within ``RELATIVE_ERROR`` of a real sample (DDSketch-style bins).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
MIN_MS = 0.001  # 1 µs: anything faster is clamped (loopback noise floor)
MAX_MS = 3_600_000.0  # 1 h: nothing sane takes longer; bounds the bin range


def bin_index(ms: float) -> int:
    """Bin of a latency in milliseconds (bins are (GAMMA^(i-1), GAMMA^i])."""
    if ms < MIN_MS:
        ms = MIN_MS
    elif ms > MAX_MS:
        ms = MAX_MS
    return math.ceil(math.log(ms) * INV_LOG_GAMMA)


def bin_value(index: int) -> float:
    """Representative value of a bin: within RELATIVE_ERROR of every value in it."""
    return 2.0 * GAMMA**index / (GAMMA + 1.0)


class LogHistogram:
    """Counts per occupied bin plus the sorted list of occupied bins.

    ``keys`` only changes when a bin becomes occupied or empty, which is rare once a series has
    warmed up, so quantile queries walk a short sorted list from the nearer end.
    """

    __slots__ = ("counts", "keys", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.keys: list[int] = []
        self.total = 0

    def add(self, index: int, n: int = 1) -> None:
        counts = self.counts
        c = counts.get(index)
        if c is None:
            counts[index] = n
            insort(self.keys, index)
        else:
            counts[index] = c + n
        self.total += n

    def add_counts(self, other: dict[int, int]) -> None:
        for index, n in other.items():
            self.add(index, n)

    def subtract_counts(self, other: dict[int, int]) -> None:
        """Remove a bucket's contribution (the bucket fell out of the window)."""
        counts = self.counts
        if len(other) == 1:  # the common case: the expired bucket saw one latency bin
            [(index, n)] = other.items()
            left = counts.get(index, 0) - n
            if left > 0:
                counts[index] = left
                self.total -= n
                return
        for index, n in other.items():
            left = counts.get(index, 0) - n
            if left > 0:
                counts[index] = left
            else:
                if index in counts:
                    del counts[index]
                    pos = bisect_left(self.keys, index)
                    if pos < len(self.keys) and self.keys[pos] == index:
                        del self.keys[pos]
            self.total -= n
        if self.total <= 0:
            self.total = 0
            self.counts.clear()
            self.keys.clear()

    def clear(self) -> None:
        self.counts.clear()
        self.keys.clear()
        self.total = 0

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile (q in [0, 1]); None when empty."""
        total = self.total
        if total <= 0:
            return None
        return _quantile_sorted(self.counts, self.keys, total, q)

    def count_above(self, ms: float) -> int:
        """Samples in bins strictly above the bin of ``ms``."""
        threshold = bin_index(ms)
        n = 0
        for index in reversed(self.keys):
            if index <= threshold:
                break
            n += self.counts[index]
        return n


def quantile_of_counts(counts: dict[int, int], q: float) -> float | None:
    """Quantile of a plain bin->count dict (used for merged sub-windows and rollups)."""
    total = sum(counts.values())
    if total <= 0:
        return None
    return _quantile_sorted(counts, sorted(counts), total, q)


def quantiles_of_counts(counts: dict[int, int], qs: tuple[float, ...]) -> tuple[float | None, ...]:
    """Several quantiles of one bin->count dict with a single sort (rollups want p50, p95 and p99)."""
    total = sum(counts.values())
    if total <= 0:
        return tuple(None for _ in qs)
    keys = sorted(counts)
    return tuple(_quantile_sorted(counts, keys, total, q) for q in qs)


def _quantile_sorted(counts: dict[int, int], keys: list[int], total: int, q: float) -> float:
    rank = max(1, math.ceil(q * total))  # 1-based rank of the wanted sample
    if q <= 0.5:
        seen = 0
        for index in keys:
            seen += counts[index]
            if seen >= rank:
                return bin_value(index)
    else:
        from_top = total - rank + 1
        seen = 0
        for index in reversed(keys):
            seen += counts[index]
            if seen >= from_top:
                return bin_value(index)
    return bin_value(keys[-1])
