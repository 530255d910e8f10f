"""The typed incident event a face receives (the control API's ``event`` frames, ``subscribe_events``).

The engine sends every incident event (``incidents.model.IncidentEvent``) with the full incident, so a
face can update its list without asking again. Same rules as the snapshot (``kernel.snapshot``): the
``"schema"`` key carries ``SCHEMA_VERSION``, ``from_wire`` reads untrusted input and never raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.snapshot import SCHEMA_VERSION, AnalysisResultView, IncidentView
from cryptomon_tui.kernel.wire import NAME_MAX, Reader


class EventType(StrEnum):
    """What happened to an incident. Values are a wire contract (control API, webhooks, the store): add members,
    never rename them; a newer daemon may send kinds this face does not know, and faces show those as is."""

    OPENED = "opened"
    UPDATED = "updated"
    ACKNOWLEDGED = "acknowledged"
    SILENCED = "silenced"
    UNSILENCED = "unsilenced"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    FLAPPING = "flapping"
    ANALYSIS_READY = "analysis_ready"
    NOTIFICATION_FAILED = "notification_failed"


@dataclass(frozen=True, slots=True)
class EventView:
    """One thing that happened to an incident, and the incident as it is after it."""

    ts: str | None = None  # engine clock, ISO-8601 UTC
    event: str = ""  # one of the kinds above
    incident: IncidentView = field(default_factory=IncidentView)
    actor: str | None = None  # who acknowledged / silenced (sent only when set)
    detail: JsonObject = field(default_factory=dict)  # free-form; {"analysis": ...} on analysis_ready
    schema: int = SCHEMA_VERSION

    @property
    def analysis(self) -> AnalysisResultView | None:
        """The analysis an ``analysis_ready`` event carries."""
        value = self.detail.get("analysis")
        return AnalysisResultView.from_wire(value) if isinstance(value, dict) else None

    def to_wire(self) -> JsonObject:
        out: JsonObject = {"schema": self.schema, "ts": self.ts, "event": self.event,
                           "incident": self.incident.to_wire()}
        if self.actor:
            out["actor"] = self.actor
        if self.detail:
            out["detail"] = self.detail
        return out

    @classmethod
    def from_wire(cls, value: object) -> EventView:
        r = Reader(value)
        return cls(
            ts=r.time("ts"), event=r.string("event"), incident=IncidentView.from_wire(r.raw("incident")),
            actor=r.opt_str("actor", NAME_MAX) or None, detail=r.json("detail"), schema=r.count("schema", 1),
        )
