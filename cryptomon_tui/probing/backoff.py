"""Rate-limit and ban backoff per exchange: the monitor must never be the cause of a ban.

On RATE_LIMITED (Binance 429/-1003, Bybit 10006, OKX 50011, Deribit 10028) or IP_BANNED (Binance
418, Bybit 403) every probe of that exchange pauses:
- until ``ban_until`` when the exchange states it (Binance's "IP banned until <epoch ms>"),
- else for ``retry_after_s`` when given (Retry-After header or the adapter's reading of the body),
- else exponentially: rate limits from 2 s doubling to 10 min, bans from 10 min (Bybit's documented
  minimum) doubling to 6 h.
A small safety margin is added so the first request after the pause does not land on the edge. The
exponent resets after the first successful probe following a pause.

No pause is longer than ``MAX_EXCHANGE_WAIT_S`` (24 h): a ``Retry-After: 1e12`` or a ban "until 2286" pauses
a day, and the pause's reason (and the probe result's message, so the incident's evidence) says what the
exchange asked for. A ban whose stated expiry has already passed (their clock, or ours, is off) is treated
as ended: probing resumes after the short rate-limit backoff, and a ban still in force says so again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from cryptomon_tui.clock import Clock
from cryptomon_tui.exchanges.base import Classification
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.snapshot import BackoffView
from cryptomon_tui.kernel.units import MAX_EXCHANGE_WAIT_S, format_duration, iso_utc, plausible_epoch

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
    capped: bool = False  # the exchange asked for longer than MAX_EXCHANGE_WAIT_S


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
        ban_until = plausible_epoch(ban_until)
        if retry_after_s is not None and not math.isfinite(retry_after_s):
            retry_after_s = None
        strikes = min(self._strikes, 64)
        if ban_until is not None and ban_until > now_wall:
            wait = ban_until - now_wall
            why = f"IP banned until {iso_utc(ban_until)}"
        elif ban_until is not None:
            wait = min(RATE_LIMIT_BASE_S * 2 ** (strikes - 1), RATE_LIMIT_MAX_S)
            why = f"ban stated as ended at {iso_utc(ban_until)} (a clock is off?): retrying in {wait:g}s"
        elif retry_after_s is not None and retry_after_s > 0:
            wait = retry_after_s
            why = f"{kind}; Retry-After {format_duration(retry_after_s)}"
        else:
            base, cap = (BAN_BASE_S, BAN_MAX_S) if banned else (RATE_LIMIT_BASE_S, RATE_LIMIT_MAX_S)
            wait = min(base * 2 ** (strikes - 1), cap)
            why = f"{kind} (no expiry given): backing off {wait:g}s"
        capped = wait > MAX_EXCHANGE_WAIT_S
        if capped:
            why += f"; the exchange asked for {format_duration(wait)}, capped at {format_duration(MAX_EXCHANGE_WAIT_S)}"
            wait = MAX_EXCHANGE_WAIT_S
        wait += MARGIN_S
        until_mono = now_mono + wait
        if self.pause is not None and self.pause.until_mono >= until_mono:
            return None  # an in-flight answer to an earlier request must not shorten a longer pause
        label = f"{exchange} " if exchange else ""
        self.pause = Pause(until_mono, now_wall + wait, f"{label}{why}".strip(), outcome, capped)
        return self.pause

    @property
    def active(self) -> bool:
        return self.pause is not None and self._clock.monotonic() < self.pause.until_mono

    def remaining_s(self) -> float:
        if self.pause is None:
            return 0.0
        return max(0.0, self.pause.until_mono - self._clock.monotonic())

    def view(self) -> BackoffView:
        """What the snapshot shows: the same as ``snapshot()``, typed."""
        if not self.active or self.pause is None:
            return BackoffView(strikes=self._strikes)
        p = self.pause
        return BackoffView(True, iso_utc(p.until_wall), p.reason, p.outcome.value, self._strikes)

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


def with_pause(c: Classification, pause: Pause) -> Classification:
    """The probe result that started a capped pause says so, and carries the expiry actually used."""
    if not pause.capped:
        return c
    note = pause.reason.split("; ", 1)[-1]
    message = f"{c.error_message}; {note}" if c.error_message else note
    ban_until = pause.until_wall if c.ban_until is not None else None
    return replace(c, error_message=message[:300], ban_until=ban_until, extra={**c.extra, "pause_capped": True})
