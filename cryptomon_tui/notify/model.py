"""What travels through the outbox: a channel-neutral ``Notice`` and the row that carries it.

Notices are rendered per channel at send time, so a digest can merge rows that were written one by one,
and a message written before a restart is rendered by the code that finally sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum

from cryptomon_tui.incidents.model import Incident
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object, finite, get_finite, get_text, objects
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import iso_utc


class NoticeKind(StrEnum):
    FIRING = "firing"
    REOPENED = "reopened"
    REMINDER = "reminder"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DIGEST = "digest"
    TEST = "test"
    ANALYSIS = "analysis"  # the verdict, as an update to a firing that already went out


FIRING_KINDS = frozenset({NoticeKind.FIRING, NoticeKind.REOPENED, NoticeKind.REMINDER})


class RowStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEAD = "dead"
    CANCELLED = "cancelled"  # superseded before any attempt (e.g. resolved inside group_wait)


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a channel must say about one incident (or, for a digest, about many)."""

    kind: NoticeKind
    ts: float
    incident: JsonObject = field(default_factory=dict)  # Incident.to_dict() minus the timeline
    actor: str | None = None
    analysis: str | None = None
    location: str = "local"
    items: tuple[Notice, ...] = ()  # digest members
    text: str | None = None  # free text (test messages, reminders' "still failing for 42m")
    member_keys: tuple[str, ...] = ()  # digest: the idempotency key of every merged message

    @property
    def severity(self) -> Severity:
        if self.items:
            return max((i.severity for i in self.items), key=lambda s: s.rank)
        try:
            return Severity(get_text(self.incident, "severity") or "warning")
        except ValueError:
            return Severity.WARNING

    @property
    def incident_id(self) -> str:
        return str(self.incident.get("id", ""))

    @property
    def fingerprint(self) -> str:
        return str(self.incident.get("fingerprint") or self.incident.get("id") or "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)

    def to_dict(self) -> JsonObject:
        out: JsonObject = {"kind": self.kind.value, "ts": self.ts, "incident": self.incident}
        if self.actor:
            out["actor"] = self.actor
        if self.analysis:
            out["analysis"] = self.analysis
        if self.location != "local":
            out["location"] = self.location
        if self.items:
            out["items"] = [i.to_dict() for i in self.items]
        if self.text:
            out["text"] = self.text
        if self.member_keys:
            out["member_keys"] = list[JsonValue](self.member_keys)
        return out

    @classmethod
    def from_dict(cls, d: JsonObject) -> Notice:
        """A notice back from its stored JSON: ValueError when kind or ts is missing or wrong (a corrupt
        row), other fields narrowed to their types (a wrong one reads as absent)."""
        ts = get_finite(d, "ts")
        if ts is None:
            raise ValueError("notice without a finite ts")
        keys = d.get("member_keys")
        return cls(
            kind=NoticeKind(get_text(d, "kind") or ""),  # absent: ValueError
            ts=ts,
            incident=dict(as_object(d.get("incident")) or {}),
            actor=get_text(d, "actor"),
            analysis=get_text(d, "analysis"),
            location="local" if (location := get_text(d, "location")) is None else location,
            items=tuple(cls.from_dict(o) for o in objects(d.get("items"))),
            text=get_text(d, "text"),
            member_keys=tuple(k for k in (keys if isinstance(keys, list) else ()) if isinstance(k, str)),
        )

    @classmethod
    def from_json(cls, payload: str) -> Notice:
        d = as_object(json.loads(payload))
        if d is None:
            raise ValueError("a notice is a JSON object")
        return cls.from_dict(d)


def incident_payload(incident: Incident) -> JsonObject:
    """The incident as a notice carries it: everything a message shows, without the long timeline."""
    d: JsonObject = incident.to_dict()
    d.pop("timeline", None)
    d["started_ts"] = incident.started_at
    d["resolved_ts"] = incident.resolved_at
    return d


ANALYSIS_TEXT_LIMIT = 700


def _field(analysis: JsonObject, *keys: str) -> str | None:
    for key in keys:
        value = analysis.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def analysis_text(analysis: JsonObject | None) -> str | None:
    """The verdict as a message says it: root cause, severity (with confidence and source) and the action,
    one line each, from ``Analysis.model_dump(mode="json")`` (``analysis/model.py``). A dict without a
    ``root_cause`` passes its ``summary``/``headline``/``text`` through. None when there is nothing to tell."""
    if not analysis:
        return None
    cause = _field(analysis, "root_cause")
    if cause is None:
        bare = _field(analysis, "summary", "headline", "likely_cause", "text", "verdict")
        return None if bare is None else bare[:ANALYSIS_TEXT_LIMIT]
    lines = [f"Root cause: {cause}"]
    severity = _field(analysis, "severity")
    if severity:
        extra = []
        raw = analysis.get("confidence")
        confidence = None if isinstance(raw, str) else finite(raw, 0.0, 1.0)  # a number, not a numeric string
        if confidence is not None:
            extra.append(f"confidence {confidence:.0%}")
        source = _field(analysis, "source")
        if source:
            extra.append(source)
        lines.append(f"Severity: {severity}" + (f" ({', '.join(extra)})" if extra else ""))
    action = _field(analysis, "recommended_action")
    if action:
        lines.append(f"Action: {action}")
    recovery = _field(analysis, "estimated_recovery")
    if recovery:
        lines.append(f"Recovery: {recovery}")
    text = "\n".join(lines)
    return text if len(text) <= ANALYSIS_TEXT_LIMIT else text[: ANALYSIS_TEXT_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class NewOutboxRow:
    channel: str
    kind: str
    incident_id: str | None
    fingerprint: str | None
    group_key: str
    payload: str  # Notice JSON
    idempotency_key: str
    not_before: float
    created_at: float
    due_at: float | None = None  # a firing: when group_wait ends (resolved before it: withdrawn, never due)


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    channel: str
    kind: str
    incident_id: str | None
    fingerprint: str | None
    group_key: str
    payload: str
    idempotency_key: str
    status: str
    attempts: int
    not_before: float
    created_at: float
    last_error: str | None = None
    sent_at: float | None = None
    answer: str | None = None

    def notice(self) -> Notice:
        return Notice.from_json(self.payload)

    def to_dict(self) -> JsonObject:
        return {
            "id": self.id,
            "channel": self.channel,
            "kind": self.kind,
            "incident_id": self.incident_id,
            "status": self.status,
            "attempts": self.attempts,
            "not_before": self.not_before,
            "created_at": self.created_at,
            "last_error": self.last_error,
            "sent_at": self.sent_at,
        }


@dataclass(frozen=True, slots=True)
class ChannelStats:
    queued: int = 0
    sending: int = 0
    dead: int = 0
    sent: int = 0
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    failed_attempts: int = 0  # attempts that did not deliver, over the messages still stored


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel's health as the notifier reports it (the engine's snapshot, /metrics, the notify worker);
    never a secret: answers are scrubbed before they are recorded."""

    channel: str
    type: str
    last_success: float | None  # epoch seconds of the last accepted delivery
    failures: int  # failed attempts in a row (0 after a success)
    total_failures: int  # failed delivery attempts since start (a /metrics counter)
    total_sent: int  # deliveries accepted since start (a digest is one)
    queued: int  # waiting or being sent
    dead: int  # dead letters still stored
    sent: int  # sent messages still stored
    broken: bool
    broken_reason: str | None
    last_error: str | None

    def to_json(self) -> JsonObject:
        return {
            "channel": self.channel,
            "type": self.type,
            "last_success": iso_utc(self.last_success) if self.last_success else None,
            "failures": self.failures,
            "total_failures": self.total_failures,
            "total_sent": self.total_sent,
            "queued": self.queued,
            "dead": self.dead,
            "sent": self.sent,
            "broken": self.broken,
            "broken_reason": self.broken_reason,
            "last_error": self.last_error,
        }
