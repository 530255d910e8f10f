"""One word per exchange for faces: ok / degraded / down / maintenance / banned / paused.

Derived from the probing state, the rolling metrics and the open incidents, in that order of
authority: what we are doing (paused), what the exchange told us (ban, maintenance), then what
we measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptomon_tui.incidents.model import Incident

DOWN_ERROR_RATE = 0.5
DEGRADED_ERROR_RATE = 0.05
DOWN_CONSECUTIVE = 3


def exchange_status(stats: dict[str, Any], probe_state: dict[str, Any], incidents: Sequence[Incident]) -> str:
    if probe_state.get("paused"):
        return "paused"
    open_rules = {i.rule for i in incidents if i.is_open}
    backoff = probe_state.get("backoff") or {}
    if any(i.ban_until for i in incidents if i.is_open) or "ip_banned" in open_rules or (
        backoff.get("paused") and backoff.get("outcome") == "ip_banned"
    ):
        return "banned"
    last = stats.get("last_outcome")
    if "maintenance" in open_rules or last == "maintenance":
        return "maintenance"
    breaker = (probe_state.get("breaker") or {}).get("state")
    error_rate = float(stats.get("error_rate") or 0.0)
    consecutive = int(stats.get("consecutive_failures") or 0)
    mostly_failing = error_rate >= DOWN_ERROR_RATE and bool(stats.get("attempts"))
    if breaker == "open" or consecutive >= DOWN_CONSECUTIVE or mostly_failing:
        return "down"
    if open_rules or error_rate > DEGRADED_ERROR_RATE or breaker == "half_open" or backoff.get("paused"):
        return "degraded"
    return "ok"
