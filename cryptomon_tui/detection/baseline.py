"""A probe's own latency baseline: median and MAD of its per-minute medians over the last hour.

Why robust statistics: a mean and standard deviation are dragged by the very spikes we want to
detect; the median of minute medians ignores a few bad minutes, and the MAD (median absolute
deviation, scaled by 1.4826 to match a standard deviation for normal data) gives a noise band
that one outlier cannot widen. Memory is two floats per minute of the window.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

MAD_SCALE = 1.4826


class LatencyBaseline:
    """The minute medians in arrival order (to drop the oldest) and sorted (median in O(1)).

    ``trigger`` is computed when read, and only then needs the MAD: a screen first compares the
    newest latencies with ``floor`` (the ratio and absolute bars, median only), which the trigger
    can never be below.
    """

    __slots__ = ("_factors", "_floor", "_mad", "_sorted", "_trigger", "last_minute", "minutes")

    def __init__(self, max_minutes: int = 60, factors: tuple[float, float, float] | None = None) -> None:
        self.minutes: deque[float] = deque(maxlen=max(3, max_minutes))
        self._sorted: list[float] = []
        self.last_minute = float("-inf")
        self._mad: float | None = None
        self._factors = factors  # (mad_factor, min_ratio, min_increase_ms); None = no trigger yet
        self._trigger: float | None = None
        self._floor: float | None = None

    def __len__(self) -> int:
        return len(self.minutes)

    def add(self, minute: float, p50_ms: float) -> None:
        if minute <= self.last_minute:
            return
        self.last_minute = minute
        minutes, ordered = self.minutes, self._sorted
        if len(minutes) == minutes.maxlen:
            del ordered[bisect_left(ordered, minutes[0])]  # the deque drops its oldest on append
        minutes.append(p50_ms)
        insort(ordered, p50_ms)
        self._mad = None
        self._trigger = None
        self._floor = None

    def skip(self, minute: float) -> None:
        """Consume a minute without learning from it (the rule is firing: don't learn the fault)."""
        if minute > self.last_minute:
            self.last_minute = minute

    def set_factors(self, mad_factor: float, min_ratio: float, min_increase_ms: float) -> None:
        factors = (mad_factor, min_ratio, min_increase_ms)
        if factors != self._factors:
            self._factors = factors
            self._trigger = None
            self._floor = None

    def median(self) -> float:
        return _median_sorted(self._sorted)

    def stats(self) -> tuple[float, float]:
        """(median, scaled MAD) of the stored minute medians."""
        med = _median_sorted(self._sorted)
        if self._mad is None:
            self._mad = _median_sorted(sorted([abs(v - med) for v in self._sorted])) * MAD_SCALE
        return med, self._mad

    def trigger_ms(self, mad_factor: float, min_ratio: float, min_increase_ms: float) -> float:
        """Latency above which the probe is anomalously slow: all three bars must be cleared."""
        med, mad = self.stats()
        return max(med + mad_factor * mad, med * min_ratio, med + min_increase_ms)

    @property
    def trigger(self) -> float:
        """``trigger_ms`` for the configured factors (infinite until there are factors and data)."""
        if self._trigger is None:
            if self._factors is None or not self._sorted:
                return float("inf")
            self._trigger = self.trigger_ms(*self._factors)
        return self._trigger

    @property
    def floor(self) -> float:
        """A lower bound of ``trigger`` from the median alone (read on every screen: cached)."""
        if self._floor is None:
            if self._factors is None or not self._sorted:
                return float("inf")
            med = _median_sorted(self._sorted)
            _, min_ratio, min_increase_ms = self._factors
            self._floor = max(med * min_ratio, med + min_increase_ms)
        return self._floor


def _median_sorted(values: list[float]) -> float:
    """statistics.median on an already sorted list (same result, without its copy and sort)."""
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2
