"""What travels through the outbox: a channel-neutral ``Notice`` and the row that carries it.

Notices are rendered per channel at send time, so a digest can merge rows that were written one by one,
and a message written before a restart is rendered by the code that finally sends it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptomon_tui.incidents.model import Incident
from cryptomon_tui.kernel.severity import Severity


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
    incident: dict[str, Any] = field(default_factory=dict)  # Incident.to_dict() minus the timeline
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
            return Severity(self.incident.get("severity", "warning"))
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

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value, "ts": self.ts, "incident": self.incident}
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
            out["member_keys"] = list(self.member_keys)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Notice:
        return cls(
            kind=NoticeKind(d["kind"]),
            ts=float(d["ts"]),
            incident=dict(d.get("incident") or {}),
            actor=d.get("actor"),
            analysis=d.get("analysis"),
            location=d.get("location", "local"),
            items=tuple(cls.from_dict(i) for i in d.get("items", ())),
            text=d.get("text"),
            member_keys=tuple(d.get("member_keys", ())),
        )

    @classmethod
    def from_json(cls, text: str) -> Notice:
        return cls.from_dict(json.loads(text))


def incident_payload(incident: Incident) -> dict[str, Any]:
    """The incident as a notice carries it: everything a message shows, without the long timeline."""
    d = incident.to_dict()
    d.pop("timeline", None)
    d["started_ts"] = incident.started_at
    d["resolved_ts"] = incident.resolved_at
    return d


ANALYSIS_TEXT_LIMIT = 700


def _field(analysis: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = analysis.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def analysis_text(analysis: dict[str, Any] | None) -> str | None:
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
        confidence = analysis.get("confidence")
        if isinstance(confidence, int | float) and 0 <= confidence <= 1:
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

    def to_dict(self) -> dict[str, Any]:
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
