"""A probe's own latency baseline: median and MAD of its per-minute medians over the last hour.

Why robust statistics: a mean and standard deviation are dragged by the very spikes we want to
detect; the median of minute medians ignores a few bad minutes, and the MAD (median absolute
deviation, scaled by 1.4826 to match a standard deviation for normal data) gives a noise band
that one outlier cannot widen. Memory is one float per minute of the window.
"""

from __future__ import annotations

from collections import deque

MAD_SCALE = 1.4826


class LatencyBaseline:
    __slots__ = ("_cache", "last_minute", "minutes", "trigger")

    def __init__(self, max_minutes: int = 60) -> None:
        self.minutes: deque[float] = deque(maxlen=max(3, max_minutes))
        self.last_minute = float("-inf")
        self._cache: tuple[float, float] | None = None
        self.trigger = float("inf")  # cached trigger_ms() for the configured factors

    def __len__(self) -> int:
        return len(self.minutes)

    def add(self, minute: float, p50_ms: float) -> None:
        if minute <= self.last_minute:
            return
        self.last_minute = minute
        self.minutes.append(p50_ms)
        self._cache = None

    def skip(self, minute: float) -> None:
        """Consume a minute without learning from it (the rule is firing: don't learn the fault)."""
        if minute > self.last_minute:
            self.last_minute = minute

    def stats(self) -> tuple[float, float]:
        """(median, scaled MAD) of the stored minute medians."""
        if self._cache is None:
            values = sorted(self.minutes)
            med = _median_sorted(values)
            mad = _median_sorted(sorted([abs(v - med) for v in values])) * MAD_SCALE
            self._cache = (med, mad)
        return self._cache

    def trigger_ms(self, mad_factor: float, min_ratio: float, min_increase_ms: float) -> float:
        """Latency above which the probe is anomalously slow: all three bars must be cleared."""
        med, mad = self.stats()
        return max(med + mad_factor * mad, med * min_ratio, med + min_increase_ms)


def _median_sorted(values: list[float]) -> float:
    """statistics.median on an already sorted list (same result, without its copy and sort)."""
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
