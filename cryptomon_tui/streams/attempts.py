"""Reconnect discipline: the monitor must never cause a ban or a reconnect storm itself.

Two independent brakes, both on the injected clock:
- ``AttemptLimiter``: a sliding-window cap on connection attempts per exchange, set well under the
  exchange's documented per-IP limit (Binance 300 per 5 min, Bybit 500 per 5 min, OKX 3 per s);
- ``ReconnectBackoff``: exponential delay with jitter between failed attempts, reset only after a
  connection has stayed up for a while (a socket that opens and drops at once still backs off).
"""

from __future__ import annotations

import random
from collections import deque

from cryptomon_tui.clock import Clock

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0  # with the attempt limiter: at most ~10 attempts per 5 min from backoff alone
HEALTHY_AFTER_S = 60.0  # a connection that lived this long resets the backoff
MIN_ATTEMPTS = 4  # per CAP_WINDOW_S, whatever the share: enough to notice a storm, far under every limit
CAP_WINDOW_S = 300.0


def attempt_cap(venue_attempts: int, venue_window_s: float, share: float) -> tuple[int, float]:
    """Our connection attempts per 5 min: the budget share of the exchange's documented limit.

    The venue's limit is scaled to 5 minutes first (OKX: 3 per second -> 900 per 5 min), so every
    exchange's cap is comparable and the monitor's share of it is what ``probing.budget_share`` says.
    """
    per_window = venue_attempts * (CAP_WINDOW_S / max(venue_window_s, 0.001))
    return max(MIN_ATTEMPTS, int(per_window * share)), CAP_WINDOW_S


class AttemptLimiter:
    """At most ``attempts`` connection attempts in any ``window_s`` (sliding, monotonic clock)."""

    def __init__(self, clock: Clock, attempts: int, window_s: float) -> None:
        self._clock = clock
        self.attempts = max(1, int(attempts))
        self.window_s = max(1.0, float(window_s))
        self._times: deque[float] = deque()

    def wait_s(self) -> float:
        """Seconds until the next attempt is allowed (0 when it is allowed now)."""
        now = self._clock.monotonic()
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        if len(self._times) < self.attempts:
            return 0.0
        return max(0.0, self._times[0] + self.window_s - now)

    async def acquire(self) -> float:
        """Wait for a free slot and take it; returns how long it waited."""
        waited = 0.0
        while (delay := self.wait_s()) > 0:
            await self._clock.sleep(delay)
            waited += delay
        self._times.append(self._clock.monotonic())
        return waited

    def used(self) -> int:
        self.wait_s()
        return len(self._times)


class ReconnectBackoff:
    """Exponential backoff with jitter ("equal jitter": half fixed, half random) between attempts."""

    def __init__(self, rng: random.Random | None = None, base_s: float = BACKOFF_BASE_S,
                 max_s: float = BACKOFF_MAX_S) -> None:
        self._rng = rng or random.Random()
        self.base_s = base_s
        self.max_s = max_s
        self.failures = 0

    def next_delay(self) -> float:
        """The wait before the next attempt after one more failure."""
        ceiling = min(self.max_s, self.base_s * (2 ** min(self.failures, 30)))
        self.failures += 1
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    def connection_lived(self, seconds: float) -> None:
        """A connection that stayed up long enough proves the path works again."""
        if seconds >= HEALTHY_AFTER_S:
            self.failures = 0
