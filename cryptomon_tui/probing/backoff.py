"""Rate-limit and ban backoff per exchange: the monitor must never be the cause of a ban.

On RATE_LIMITED (Binance 429/-1003, Bybit 10006, OKX 50011, Deribit 10028) or IP_BANNED (Binance
418, Bybit 403) every probe of that exchange pauses:
- until ``ban_until`` when the exchange states it (Binance's "IP banned until <epoch ms>"),
- else for ``retry_after_s`` when given (Retry-After header or the adapter's reading of the body),
- else exponentially: rate limits from 2 s doubling to 10 min, bans from 10 min (Bybit's documented
  minimum) doubling to 6 h.
A small safety margin is added so the first request after the pause does not land on the edge. The
exponent resets after the first successful probe following a pause.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptomon_tui.clock import Clock
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.units import iso_utc

RATE_LIMIT_BASE_S = 2.0
RATE_LIMIT_MAX_S = 600.0
BAN_BASE_S = 600.0
BAN_MAX_S = 6 * 3600.0
MARGIN_S = 1.0


@dataclass(frozen=True, slots=True)
class Pause:
    until_mono: float
    until_wall: float
    reason: str
    outcome: Outcome


class Backoff:
    """Pause state for one exchange. Driven by classified outcomes; time from the injected clock."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.pause: Pause | None = None
        self._strikes = 0  # consecutive limit hits without a success in between

    def record(
        self,
        outcome: Outcome,
        retry_after_s: float | None = None,
        ban_until: float | None = None,
        exchange: str = "",
        overload: bool = False,
    ) -> Pause | None:
        """Feed one probe's classification; returns the new pause when this result starts/extends one.

        ``overload``: the venue said it is overloaded (a server-side answer): back off like a rate
        limit, but say that it is the venue's load, not ours.
        """
        if outcome not in (Outcome.RATE_LIMITED, Outcome.IP_BANNED) and not overload:
            if outcome.counts_as_attempt and not self.active:
                self._strikes = 0
            return None
        now_wall = self._clock.now()
        now_mono = self._clock.monotonic()
        self._strikes += 1
        banned = outcome is Outcome.IP_BANNED
        kind = "banned" if banned else "venue overloaded" if overload else "rate limited"
        if ban_until is not None and ban_until > now_wall:
            wait = ban_until - now_wall
            why = f"IP banned until {iso_utc(ban_until)}"
        elif retry_after_s is not None and retry_after_s > 0:
            wait = retry_after_s
            why = f"{kind}; Retry-After {retry_after_s:g}s"
        else:
            base, cap = (BAN_BASE_S, BAN_MAX_S) if banned else (RATE_LIMIT_BASE_S, RATE_LIMIT_MAX_S)
            wait = min(base * 2 ** (self._strikes - 1), cap)
            why = f"{kind} (no expiry given): backing off {wait:g}s"
        wait += MARGIN_S
        until_mono = now_mono + wait
        if self.pause is not None and self.pause.until_mono >= until_mono:
            return None  # an in-flight answer to an earlier request must not shorten a longer pause
        label = f"{exchange} " if exchange else ""
        self.pause = Pause(until_mono, now_wall + wait, f"{label}{why}".strip(), outcome)
        return self.pause

    @property
    def active(self) -> bool:
        return self.pause is not None and self._clock.monotonic() < self.pause.until_mono

    def remaining_s(self) -> float:
        if self.pause is None:
            return 0.0
        return max(0.0, self.pause.until_mono - self._clock.monotonic())

    def snapshot(self) -> dict[str, object]:
        if not self.active:
            return {"paused": False, "paused_until": None, "reason": None, "strikes": self._strikes}
        assert self.pause is not None
        return {
            "paused": True,
            "paused_until": iso_utc(self.pause.until_wall),
            "reason": self.pause.reason,
            "outcome": self.pause.outcome.value,
            "strikes": self._strikes,
        }
