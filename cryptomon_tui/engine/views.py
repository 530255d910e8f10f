"""The engine's own objects as the typed views of ``kernel.snapshot`` (the only place that maps them).

The engine builds the snapshot from these directly: no intermediate dicts. Every view here says the
same as the wire shapes the faces have always read (``Incident.to_dict()``, ``ProbeResult.to_json_dict()``,
``StreamStats.to_wire()``), now with types. The store reports its health as ``StoreView`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from cryptomon_tui.analysis.model import Analysis
from cryptomon_tui.incidents.maintenance import next_occurrence, window_active
from cryptomon_tui.incidents.model import Incident, IncidentEvent, MaintenanceWindow, Matcher, Silence, TimelineEntry
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.snapshot import (
    AnalysisResultView,
    ChannelView,
    FactScalar,
    FactValue,
    IncidentView,
    MaintenanceView,
    MatcherView,
    ProbeResultView,
    SilenceView,
    StreamView,
    TimelineView,
)
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.kernel.units import iso_utc

if TYPE_CHECKING:  # annotations only: importing notify at load pulls its channels and httpx into every face
    from cryptomon_tui.notify.model import ChannelStatus

FACTS_MAX = 32
FACT_TEXT_MAX = 200


def _iso(ts: float | None) -> str | None:
    return None if ts is None else iso_utc(ts)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def result_view(r: ProbeResult) -> ProbeResultView:
    """``ProbeResult.to_json_dict()`` as a view (same rounding)."""
    return ProbeResultView(
        ts=iso_utc(r.started_at), exchange=r.exchange, probe=r.probe, latency_ms=_r(r.latency_ms, 3),
        outcome=r.outcome.value, http_status=r.http_status, error_code=r.error_code,
        error_message=r.error_message, rate_limit_used=_r(r.rate_limit_used, 4),
        clock_offset_ms=_r(r.clock_offset_ms, 3), clock_error_ms=_r(r.clock_error_ms, 3),
        retry_after_s=r.retry_after_s, ban_until=_iso(r.ban_until), maintenance_until=_iso(r.maintenance_until),
        phases=r.phases, breaker=r.breaker.value,
    )


def facts(extra: Mapping[str, object]) -> dict[str, FactValue]:
    """A probe's extra facts (key permissions, TLS facts): scalars and short lists of scalars, bounded."""
    out: dict[str, FactValue] = {}
    for key, value in list(extra.items())[:FACTS_MAX]:
        if value is None or isinstance(value, bool | int):
            out[str(key)] = value
        elif isinstance(value, str):
            out[str(key)] = value[:FACT_TEXT_MAX]
        elif isinstance(value, float):
            if math.isfinite(value):
                out[str(key)] = value
        elif isinstance(value, list | tuple):
            items: list[FactScalar] = [v for v in value[:FACTS_MAX] if isinstance(v, str | int | bool)]
            out[str(key)] = tuple(v[:FACT_TEXT_MAX] if isinstance(v, str) else v for v in items)
    return out



def analysis_view(a: Analysis) -> AnalysisResultView:
    """``Analysis.model_dump(mode="json")`` as a view (what faces have read under an incident's ``analysis``)."""
    return AnalysisResultView(
        root_cause=a.root_cause, severity=a.severity.value, recommended_action=a.recommended_action,
        estimated_recovery=a.estimated_recovery, confidence=a.confidence, evidence=tuple(a.evidence),
        incident_id=a.incident_id, category=a.category, source=a.source, latency_ms=a.latency_ms,
        cost_usd=str(a.cost_usd), prompt_tokens=a.prompt_tokens, completion_tokens=a.completion_tokens,
        notes=tuple(a.notes), raw_text=a.raw_text, created_at=a.created_at,
    )


def _timeline(t: TimelineEntry) -> TimelineView:
    return TimelineView(iso_utc(t.ts), t.kind, t.text, dict(t.data))


def incident_view(i: Incident, analysis: Analysis | None = None) -> IncidentView:
    """``Incident.to_dict()`` as a view, with its analysis when one was made."""
    return IncidentView(
        id=i.id, fingerprint=i.fingerprint, rule=i.rule, severity=i.severity.value, exchange=i.exchange,
        probe=i.probe, state=i.state.value, summary=i.summary, started_at=iso_utc(i.started_at),
        resolved_at=_iso(i.resolved_at), updated_at=iso_utc(i.updated_at), labels=dict(i.labels),
        acknowledged_by=i.acknowledged_by, acknowledged_at=_iso(i.acknowledged_at), ack_note=i.ack_note,
        silenced_by=i.silenced_by, silenced_until=_iso(i.silenced_until), in_maintenance=i.in_maintenance,
        flapping=i.flapping, reopen_count=i.reopen_count, peak=dict(i.peak), counts=dict(i.counts),
        evidence=tuple(i.evidence), last_error=i.last_error, ban_until=_iso(i.ban_until),
        timeline=tuple(_timeline(t) for t in i.timeline),
        analysis=None if analysis is None else analysis_view(analysis),
    )


def _matcher(m: Matcher) -> MatcherView:
    return MatcherView(m.name, m.value, m.is_regex, m.is_equal)


def silence_view(s: Silence) -> SilenceView:
    return SilenceView(s.id, tuple(_matcher(m) for m in s.matchers), iso_utc(s.starts_at), _iso(s.ends_at),
                       s.created_by, s.comment, iso_utc(s.created_at), _iso(s.expired_at))


def maintenance_view(w: MaintenanceWindow, now: float) -> MaintenanceView:
    nxt = next_occurrence(w, now)
    return MaintenanceView(
        id=w.id, exchange=w.exchange, starts_at=iso_utc(w.starts_at), ends_at=iso_utc(w.ends_at),
        comment=w.comment, recurrence=w.recurrence, timezone=w.timezone, created_by=w.created_by,
        active=window_active(w, now), next_start=None if nxt is None else iso_utc(nxt[0]),
        next_end=None if nxt is None else iso_utc(nxt[1]),
    )


def channel_view(s: ChannelStatus) -> ChannelView:
    state = "broken" if s.broken else ("failing" if s.failures else "ok")
    return ChannelView(s.channel, s.type, state, s.queued, s.dead, s.last_error,
                       iso_utc(s.last_success) if s.last_success else None)


def stream_view(s: StreamStats) -> StreamView:
    return StreamView(
        exchange=s.exchange, stream=s.stream, outcome=s.outcome.value, detail=s.detail, connected=s.connected,
        subscribed=s.subscribed, messages=s.messages, msgs_per_s=s.msgs_per_s, silence_s=s.silence_s,
        stale_after_s=s.stale_after_s, gap_p50_ms=s.gap_p50_ms, gap_p99_ms=s.gap_p99_ms,
        gap_max_ms=s.gap_max_ms, lag_ms=s.lag_ms, lag_error_ms=s.lag_error_ms, seq_gaps=s.seq_gaps,
        missed=s.missed, reconnects=s.reconnects, recent_reconnects=s.recent_reconnects,
        heartbeat_misses=s.heartbeat_misses, connect_ms=s.connect_ms, subscribe_ms=s.subscribe_ms,
        first_message_ms=s.first_message_ms, last_close_code=s.last_close_code,
        last_close_reason=s.last_close_reason, planned_reconnects=s.planned_reconnects,
    )


def event_view(e: IncidentEvent) -> EventView:
    """An incident event for subscribers: ``IncidentEvent.to_json_dict()`` with the full incident."""
    return EventView(ts=iso_utc(e.ts), event=e.event.value, incident=incident_view(e.incident),
                     actor=e.actor or None, detail=dict(e.detail))


def analysis_json(a: Analysis) -> JsonObject:
    """An analysis as the notifier and command replies carry it (``model_dump(mode="json")``)."""
    data: JsonObject = a.model_dump(mode="json")
    return data
