"""One word per exchange for faces: ok / degraded / down / maintenance / banned / paused.

Derived from the probing state, the rolling metrics and the open incidents, in that order of
authority: what we are doing (paused), what the exchange told us (ban, maintenance), then what
we measured.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptomon_tui.incidents.model import Incident
from cryptomon_tui.kernel.results import BreakerState, Outcome
from cryptomon_tui.kernel.snapshot import BackoffView
from cryptomon_tui.metrics.series import SeriesStats

DOWN_ERROR_RATE = 0.5
DEGRADED_ERROR_RATE = 0.05
DOWN_CONSECUTIVE = 3


def exchange_status(
    stats: SeriesStats | None,
    *,
    paused: bool,
    breaker: BreakerState,
    backoff: BackoffView | None,
    incidents: Sequence[Incident],
) -> str:
    """``stats`` None: nothing measured yet."""
    if paused:
        return "paused"
    open_rules = {i.rule for i in incidents if i.is_open}
    backing_off = backoff is not None and backoff.paused
    if any(i.ban_until for i in incidents if i.is_open) or "ip_banned" in open_rules or (
        backoff is not None and backoff.paused and backoff.outcome == Outcome.IP_BANNED.value
    ):
        return "banned"
    last = None if stats is None else stats.last_outcome
    if "maintenance" in open_rules or last is Outcome.MAINTENANCE:
        return "maintenance"
    error_rate = 0.0 if stats is None else stats.error_rate
    consecutive = 0 if stats is None else stats.consecutive_failures
    mostly_failing = error_rate >= DOWN_ERROR_RATE and stats is not None and stats.attempts > 0
    if breaker is BreakerState.OPEN or consecutive >= DOWN_CONSECUTIVE or mostly_failing:
        return "down"
    if open_rules or error_rate > DEGRADED_ERROR_RATE or breaker is BreakerState.HALF_OPEN or backing_off:
        return "degraded"
    return "ok"
