"""Builders shared by the store tests."""

from __future__ import annotations

from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState, TimelineEntry
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.severity import Severity

T0 = 1_700_000_000.0


def make_incident(
    n: int = 1,
    *,
    state: IncidentState = IncidentState.FIRING,
    exchange: str | None = "binance",
    rule: str = "error_rate",
    at: float = T0,
) -> Incident:
    return Incident(
        id=f"inc-{n:04d}",
        fingerprint=fingerprint(rule, {"exchange": exchange, "probe": "ticker"}),
        rule=rule,
        severity=Severity.ERROR,
        exchange=exchange,
        probe="ticker",
        state=state,
        summary=f"{exchange} ticker error rate 40%",
        started_at=at,
        updated_at=at,
        resolved_at=at + 60 if state is IncidentState.RESOLVED else None,
        labels={"exchange": exchange or "", "probe": "ticker"},
        peak={"error_rate": 0.4},
        counts={"http_5xx": 12, "timeout": 3},
        evidence=("p99_latency",),
        last_error="503 Service Unavailable",
        timeline=(TimelineEntry(at, "opened", "error rate 40% > 5%", {"error_rate": 0.4}),),
    )


def event(incident: Incident, kind: EventType = EventType.OPENED, ts: float | None = None) -> IncidentEvent:
    return IncidentEvent(ts=incident.updated_at if ts is None else ts, event=kind, incident=incident)


def result(
    i: int = 0,
    *,
    exchange: str = "binance",
    probe: str = "ping",
    at: float = T0,
    outcome: Outcome = Outcome.OK,
    latency: float | None = 12.5,
) -> ProbeResult:
    return ProbeResult(
        exchange=exchange,
        probe=probe,
        started_at=at + i,
        latency_ms=latency,
        outcome=outcome,
        http_status=200 if outcome is Outcome.OK else 503,
        rate_limit_used=0.1,
        clock_offset_ms=-3.0,
    )
