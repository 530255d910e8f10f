"""Token bucket per channel at the service's documented rate, on the injected clock."""

from __future__ import annotations

from cryptomon_tui.clock import Clock

_EPS = 1e-9  # float dust: a token that is 0.9999999999 full is a token (else a sleeper wakes forever)
MIN_WAIT_S = 0.001


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: int, clock: Clock) -> None:
        self.rate = max(rate_per_s, 1e-9)
        self.burst = max(1, burst)
        self.clock = clock
        self._tokens = float(self.burst)
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        if self._tokens >= 1.0 - _EPS:
            return 0.0
        return max(MIN_WAIT_S, (1.0 - self._tokens) / self.rate)

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0 - _EPS:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def drain(self) -> None:
        """The service said its bucket is empty: ours is too."""
        self._refill()
        self._tokens = min(self._tokens, 0.0)
