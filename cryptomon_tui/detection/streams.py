"""Stream verdicts -> signals: one incident per unhealthy stream, whatever its verdict goes through.

The stream probe's tracker already judges each stream against its own learnt rhythm (stale after
3x its p99 gap, lag beyond its error bound, holes in its numbering). What is left here is the
incident side: how long a verdict must hold before it is news, and how long a stream must be ok
before the incident resolves. A heartbeat failure that turns into disconnects and then a reconnect
storm is still one problem, so every stream rule of one stream shares one fingerprint and the
incident's rule follows the verdict (as rate_limited -> ip_banned escalate in place).

Cause over symptom: the stream rules are symptoms (rank 0), so maintenance, a ban or our own
network being down absorb them as evidence; a stream that fails while REST is healthy is its own
incident, and the summary says so ("REST ok, stream stale for 40s").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptomon_tui.detection.signals import (
    WS_AUTH,
    WS_DISCONNECTED,
    WS_GAP,
    WS_HEARTBEAT,
    WS_LAG,
    WS_RECONNECT_STORM,
    WS_STALE,
    Signal,
)
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.streams import StreamOutcome, StreamStats

STREAM_RULE_OF: dict[StreamOutcome, str] = {
    StreamOutcome.WS_STALE: WS_STALE,
    StreamOutcome.WS_LAG: WS_LAG,
    StreamOutcome.WS_GAP: WS_GAP,
    StreamOutcome.WS_DISCONNECTED: WS_DISCONNECTED,
    StreamOutcome.WS_RECONNECT_STORM: WS_RECONNECT_STORM,
    StreamOutcome.WS_HEARTBEAT: WS_HEARTBEAT,
    StreamOutcome.WS_AUTH: WS_AUTH,
}

# How long a verdict must hold before it opens an incident. A stale verdict already waited 3x the
# stream's p99 gap; a disconnect gets a few seconds to reconnect (a bot's client would too).
FOR_S: dict[str, float] = {
    WS_STALE: 0.0,
    WS_LAG: 5.0,
    WS_GAP: 0.0,
    WS_DISCONNECTED: 10.0,
    WS_RECONNECT_STORM: 0.0,
    WS_HEARTBEAT: 0.0,
    WS_AUTH: 0.0,  # a rejected login does not heal by waiting
}
SEVERITY: dict[str, Severity] = {
    WS_STALE: Severity.ERROR,  # bots trade on what they last saw
    WS_LAG: Severity.WARNING,
    WS_GAP: Severity.WARNING,
    WS_DISCONNECTED: Severity.ERROR,
    WS_RECONNECT_STORM: Severity.ERROR,
    WS_HEARTBEAT: Severity.WARNING,
    WS_AUTH: Severity.ERROR,  # the bot's own order/balance stream would be refused too
}
RECOVER_S = 10.0  # ok this long before the incident resolves


def stream_fingerprint(exchange: str, stream: str) -> str:
    return fingerprint("stream", {"exchange": exchange, "stream": stream})


@dataclass(slots=True)
class _State:
    pending_rule: str | None = None
    pending_since: float = 0.0
    firing_rule: str | None = None
    fired_at: float = 0.0
    ok_since: float | None = None


RestHealthy = Callable[[str], bool]


class StreamDetector:
    """Keeps one small state machine per (exchange, stream)."""

    def __init__(self, recover_s: float = RECOVER_S) -> None:
        self.recover_s = recover_s
        self._states: dict[tuple[str, str], _State] = {}

    def active(self) -> list[tuple[str, str, str]]:
        """(exchange, stream, rule) of every firing stream instance."""
        return [(ex, st, s.firing_rule) for (ex, st), s in self._states.items() if s.firing_rule is not None]

    def evaluate(self, now: float, streams: Iterable[StreamStats],
                 rest_healthy: RestHealthy | None = None) -> list[Signal]:
        signals: list[Signal] = []
        seen: set[tuple[str, str]] = set()
        for stats in streams:
            key = (stats.exchange, stats.stream)
            seen.add(key)
            state = self._states.setdefault(key, _State())
            rule = STREAM_RULE_OF.get(stats.outcome)
            signal = self._step(now, state, rule, stats, rest_healthy)
            if signal is not None:
                signals.append(signal)
        for key in [k for k in self._states if k not in seen]:  # a stream removed (reload, pause)
            state = self._states.pop(key)
            if state.firing_rule is not None:
                signals.append(self._signal(now, key[0], key[1], state.firing_rule, None, False, "stream removed"))
        return signals

    def _step(self, now: float, state: _State, rule: str | None, stats: StreamStats,
              rest_healthy: RestHealthy | None) -> Signal | None:
        if rule is None:  # ok (or connecting / planned renewal)
            state.pending_rule = None
            if state.firing_rule is None:
                return None
            if state.ok_since is None:
                state.ok_since = now
            if now - state.ok_since < self.recover_s:
                return None
            fired = state.firing_rule
            state.firing_rule, state.ok_since = None, None
            return self._signal(now, stats.exchange, stats.stream, fired, stats, False,
                                f"{stats.stream}: healthy again")
        state.ok_since = None
        if state.firing_rule is not None:
            if rule != state.firing_rule and SEVERITY[rule] >= SEVERITY[state.firing_rule]:
                state.firing_rule = rule  # the verdict moved on (heartbeat -> disconnect -> storm): same incident
                return self._signal(now, stats.exchange, stats.stream, rule, stats, True,
                                    _summary(rule, stats, rest_healthy))
            return None
        if state.pending_rule != rule:
            state.pending_rule, state.pending_since = rule, now
        if now - state.pending_since < FOR_S[rule]:
            return None
        state.firing_rule, state.fired_at, state.pending_rule = rule, now, None
        return self._signal(now, stats.exchange, stats.stream, rule, stats, True, _summary(rule, stats, rest_healthy))

    def _signal(self, now: float, exchange: str, stream: str, rule: str, stats: StreamStats | None,
                firing: bool, summary: str) -> Signal:
        values: dict[str, float] = {}
        if stats is not None:
            for name in ("silence_s", "stale_after_s", "lag_ms", "lag_error_ms", "gap_p99_ms", "msgs_per_s"):
                value = getattr(stats, name)
                if isinstance(value, int | float) and math.isfinite(value):
                    values[name] = round(float(value), 3)
            values["seq_gaps"] = float(stats.seq_gaps)
            values["reconnects_5m"] = float(stats.recent_reconnects)
        return Signal(
            rule=rule,
            fingerprint=stream_fingerprint(exchange, stream),
            exchange=exchange,
            probe=None,
            severity=SEVERITY[rule],
            firing=firing,
            summary=summary,
            ts=now,
            labels={"exchange": exchange, "stream": stream},
            values=values,
            last_error=None if stats is None else (stats.detail or None),
        )


def _summary(rule: str, stats: StreamStats, rest_healthy: RestHealthy | None) -> str:
    rest = "REST ok, " if rest_healthy is not None and rest_healthy(stats.exchange) else ""
    name = stats.stream
    if rule == WS_STALE:
        return f"{rest}stream {name} stale for {stats.silence_s:.0f}s (its p99 gap says < {stats.stale_after_s:.1f}s)"
    if rule == WS_LAG:
        lag = f"{stats.lag_ms:.0f}" if stats.lag_ms is not None else "?"
        err = f" ±{stats.lag_error_ms:.0f}" if stats.lag_error_ms is not None else ""
        return f"{rest}stream {name} lags the exchange by {lag}{err} ms"
    if rule == WS_GAP:
        missed = f", {stats.missed} missed" if stats.missed else ""
        return f"{rest}stream {name} skipped updates ({stats.seq_gaps} gap(s){missed})"
    if rule == WS_DISCONNECTED:
        return f"{rest}stream {name} disconnected: {stats.detail}"
    if rule == WS_RECONNECT_STORM:
        return f"{rest}stream {name} dropped {stats.recent_reconnects} times in 5 min"
    if rule == WS_AUTH:
        return f"{rest}user-data stream {name}: {stats.detail}"
    return f"{rest}stream {name} heartbeat failing ({stats.heartbeat_misses} miss(es))"
