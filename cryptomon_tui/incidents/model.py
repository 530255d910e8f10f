"""Incident, silence and event contracts shared by detection, store, notify, analysis and faces.

Plain dataclasses with explicit JSON shapes: the same objects travel over the control API,
into SQLite and into ``--events-jsonl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypedDict, Unpack

from cryptomon_tui.kernel.events import EventType
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import iso_utc


class IncidentState(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"



@dataclass(frozen=True, slots=True)
class TimelineEntry:
    ts: float
    kind: str  # opened, escalated, evidence, acknowledged, note, silenced, resolved, reopened, analysis, notified ...
    text: str
    data: JsonObject = field(default_factory=dict)

    def to_dict(self) -> JsonObject:
        return {"ts": iso_utc(self.ts), "kind": self.kind, "text": self.text, "data": self.data}


@dataclass(frozen=True, slots=True)
class Incident:
    """One real problem. Immutable: the manager replaces it on every change."""

    id: str
    fingerprint: str
    rule: str
    severity: Severity
    exchange: str | None
    probe: str | None
    state: IncidentState
    summary: str
    started_at: float
    updated_at: float
    resolved_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    ack_note: str | None = None
    silenced_by: str | None = None  # silence id
    silenced_until: float | None = None
    in_maintenance: bool = False
    flapping: bool = False
    reopen_count: int = 0
    peak: dict[str, float] = field(default_factory=dict)  # e.g. {"error_rate": 0.83, "p99_ms": 2400}
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"http_5xx": 12, "timeout": 3}
    evidence: tuple[str, ...] = ()  # symptom rules recorded on this (cause) incident
    last_error: str | None = None
    ban_until: float | None = None
    timeline: tuple[TimelineEntry, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.state is not IncidentState.RESOLVED

    @property
    def is_silenced(self) -> bool:
        return self.silenced_by is not None

    def with_changes(self, **changes: Unpack[IncidentChanges]) -> Incident:
        return replace(self, **changes)

    def event_dict(self) -> JsonObject:
        """The ``incident`` object of an ``--events-jsonl`` line (stable field names)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "severity": self.severity.value,
            "exchange": self.exchange,
            "probe": self.probe,
            "state": self.state.value,
            "summary": self.summary,
            "started_at": iso_utc(self.started_at),
            "resolved_at": None if self.resolved_at is None else iso_utc(self.resolved_at),
        }

    def to_dict(self) -> JsonObject:
        """Full shape for the control API, the store and the UI."""
        d = self.event_dict()
        d.update(
            {
                "updated_at": iso_utc(self.updated_at),
                "labels": {k: v for k, v in self.labels.items()},
                "acknowledged_by": self.acknowledged_by,
                "acknowledged_at": None if self.acknowledged_at is None else iso_utc(self.acknowledged_at),
                "ack_note": self.ack_note,
                "silenced_by": self.silenced_by,
                "silenced_until": None if self.silenced_until is None else iso_utc(self.silenced_until),
                "in_maintenance": self.in_maintenance,
                "flapping": self.flapping,
                "reopen_count": self.reopen_count,
                "peak": {k: v for k, v in self.peak.items()},
                "counts": {k: v for k, v in self.counts.items()},
                "evidence": list(self.evidence),
                "last_error": self.last_error,
                "ban_until": None if self.ban_until is None else iso_utc(self.ban_until),
                "timeline": [t.to_dict() for t in self.timeline],
            }
        )
        return d


class IncidentChanges(TypedDict, total=False):
    """The fields ``Incident.with_changes`` may replace, with their types (kept equal to the dataclass's
    fields by a test), so a change assembled step by step is still type-checked."""

    id: str
    fingerprint: str
    rule: str
    severity: Severity
    exchange: str | None
    probe: str | None
    state: IncidentState
    summary: str
    started_at: float
    updated_at: float
    resolved_at: float | None
    labels: dict[str, str]
    acknowledged_by: str | None
    acknowledged_at: float | None
    ack_note: str | None
    silenced_by: str | None
    silenced_until: float | None
    in_maintenance: bool
    flapping: bool
    reopen_count: int
    peak: dict[str, float]
    counts: dict[str, int]
    evidence: tuple[str, ...]
    last_error: str | None
    ban_until: float | None
    timeline: tuple[TimelineEntry, ...]


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """Everything that happens to an incident. Notify, store and faces consume the same events."""

    ts: float  # engine clock (simulated time in a backtest)
    event: EventType
    incident: Incident
    actor: str | None = None  # who acknowledged / silenced
    detail: JsonObject = field(default_factory=dict)

    def to_json_dict(self) -> JsonObject:
        """One ``--events-jsonl`` line."""
        out: JsonObject = {
            "ts": iso_utc(self.ts),
            "event": self.event.value,
            "incident": self.incident.event_dict(),
        }
        if self.actor:
            out["actor"] = self.actor
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True, slots=True)
class Matcher:
    """Label matcher (exchange, probe, rule, severity, incident id ...). Exact or regex."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_dict(self) -> JsonObject:
        return {"name": self.name, "value": self.value, "is_regex": self.is_regex, "is_equal": self.is_equal}


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float | None  # None = until the matched incident resolves
    created_by: str
    comment: str
    created_at: float
    expired_at: float | None = None  # set when removed early (unsilence) or after expiry

    def is_active(self, now: float) -> bool:
        if self.expired_at is not None and self.expired_at <= now:
            return False
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    def to_dict(self) -> JsonObject:
        return {
            "id": self.id,
            "matchers": [m.to_dict() for m in self.matchers],
            "starts_at": iso_utc(self.starts_at),
            "ends_at": None if self.ends_at is None else iso_utc(self.ends_at),
            "created_by": self.created_by,
            "comment": self.comment,
            "created_at": iso_utc(self.created_at),
            "expired_at": None if self.expired_at is None else iso_utc(self.expired_at),
        }


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """Planned downtime for one exchange: one-off (start/end) or recurring (cron-like weekly)."""

    id: str
    exchange: str | None  # None = all
    starts_at: float
    ends_at: float
    comment: str = ""
    recurrence: str | None = None  # e.g. "weekly" / "daily"; see incidents.maintenance
    # IANA zone the recurrence keeps its wall-clock time in (09:00 Europe/Berlin stays 09:00 across DST)
    timezone: str = "UTC"
    created_by: str | None = None

    def to_dict(self) -> JsonObject:
        return {
            "id": self.id,
            "exchange": self.exchange,
            "starts_at": iso_utc(self.starts_at),
            "ends_at": iso_utc(self.ends_at),
            "comment": self.comment,
            "recurrence": self.recurrence,
            "timezone": self.timezone,
            "created_by": self.created_by,
        }
