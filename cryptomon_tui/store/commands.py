"""Apply a command to an ``IncidentManager``, idempotently: the one piece of code behind every command
that did not travel over the control API.

Used twice, always with the manager deciding (never SQL of its own):
- ``engine.offline``: ``cryptomon ack|silence|unsilence|maintenance`` with no daemon running restores a
  manager from the store, applies the command here and writes the result plus the queued command in
  one transaction (``Store.record_change``);
- the engine at start (and within ``COMMAND_CHECK_S`` while it runs, for a CLI that found no control
  address: a daemon run with ``--no-control``, or one still starting) applies the queued
  commands on top of its restored state, publishes the events (store, notify, faces) and marks them done.
Every command carries the ids the CLI chose, so applying one twice changes nothing; an acknowledgement
or a silence made offline (``"offline": true``) that the restored state already holds is announced once,
so the channels and faces hear about it when the daemon starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cryptomon_tui.incidents.model import (
    EventType,
    Incident,
    IncidentEvent,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
)
from cryptomon_tui.kernel.jsonvalue import JsonObject, get_text
from cryptomon_tui.store.rows import CommandRecord, silence_from_dict, window_from_dict


class CommandTarget(Protocol):
    """The parts of ``incidents.manager.IncidentManager`` the commands use."""

    def get(self, incident_id: str) -> Incident | None: ...

    def open_incidents(self) -> list[Incident]: ...

    def announce_restored_silence(self, silence_id: str) -> bool: ...

    def ack(self, incident_id: str, by: str, note: str | None = None) -> list[IncidentEvent]: ...

    def silences(self, include_expired: bool = False) -> list[Silence]: ...

    def silence(
        self,
        matchers: Sequence[Matcher],
        duration_s: float | None,
        comment: str,
        by: str,
        *,
        starts_at: float | None = None,
        silence_id: str | None = None,
    ) -> tuple[Silence, list[IncidentEvent]]: ...

    def unsilence(self, silence_id: str, by: str | None = None) -> list[IncidentEvent]: ...

    def maintenance_windows(self) -> list[MaintenanceWindow]: ...

    def add_maintenance(
        self,
        exchange: str | None,
        starts_at: float,
        ends_at: float,
        comment: str = "",
        recurrence: str | None = None,
        timezone: str = "UTC",
        by: str | None = None,
        window_id: str | None = None,
    ) -> tuple[MaintenanceWindow, list[IncidentEvent]]: ...

    def remove_maintenance(self, window_id: str) -> list[IncidentEvent]: ...


def apply_command(target: CommandTarget, command: CommandRecord) -> tuple[str, list[IncidentEvent]]:
    """Returns (result text for ``mark_command_done``, events to publish). Never raises for bad input."""
    try:
        handler = _HANDLERS.get(command.kind)
        if handler is None:
            return f"skipped: unknown command {command.kind!r}", []
        return handler(target, command.payload)
    except (KeyError, ValueError, TypeError) as exc:
        return f"skipped: {exc}", []


def _required_text(p: JsonObject, key: str) -> str:
    value = get_text(p, key)
    if value is None:
        raise ValueError(f"no {key} in the command")
    return value


def _ack(target: CommandTarget, p: JsonObject) -> tuple[str, list[IncidentEvent]]:
    incident = target.get(_required_text(p, "incident_id"))
    if incident is None:
        return "skipped: not open in the daemon", []
    if incident.state is IncidentState.RESOLVED:
        return "skipped: already resolved", []
    if incident.state is IncidentState.ACKNOWLEDGED:
        at = incident.acknowledged_at
        if p.get("offline") and at is not None and at == p.get("ts") and incident.acknowledged_by == p.get("by"):
            # this very ack was decided offline (same time, same person): the channels have not heard of it
            note = get_text(p, "note")
            announce = IncidentEvent(at, EventType.ACKNOWLEDGED, incident, actor=incident.acknowledged_by,
                                     detail={"note": note} if note else {})
            return "ok: announced", [announce]
        return "ok: already acknowledged", []
    return "ok", target.ack(incident.id, _required_text(p, "by"), get_text(p, "note"))


def _silence(target: CommandTarget, p: JsonObject) -> tuple[str, list[IncidentEvent]]:
    s = silence_from_dict(p.get("silence"))
    if any(existing.id == s.id for existing in target.silences(include_expired=True)):
        if p.get("offline") and target.announce_restored_silence(s.id):
            # made offline: the restored incidents already carry it, but nobody has heard of it (issue 13 item 7)
            announce = [
                IncidentEvent(s.created_at, EventType.SILENCED, inc, actor=s.created_by,
                              detail={"silence": s.id, "comment": s.comment})
                for inc in target.open_incidents() if inc.silenced_by == s.id
            ]
            return "ok: announced", announce
        return "ok: already known", []
    duration = None if s.ends_at is None else s.ends_at - s.starts_at
    _, events = target.silence(s.matchers, duration, s.comment, s.created_by, starts_at=s.starts_at, silence_id=s.id)
    return "ok", events


def _unsilence(target: CommandTarget, p: JsonObject) -> tuple[str, list[IncidentEvent]]:
    silence_id = _required_text(p, "silence_id")
    if not any(s.id == silence_id for s in target.silences(include_expired=True)):
        return "skipped: unknown silence", []
    return "ok", target.unsilence(silence_id, get_text(p, "by") or "cli")


def _maintenance_add(target: CommandTarget, p: JsonObject) -> tuple[str, list[IncidentEvent]]:
    w = window_from_dict(p.get("window"))
    if any(existing.id == w.id for existing in target.maintenance_windows()):
        return "ok: already known", []
    _, events = target.add_maintenance(
        w.exchange,
        w.starts_at,
        w.ends_at,
        w.comment,
        w.recurrence,
        w.timezone,
        w.created_by,
        window_id=w.id,
    )
    return "ok", events


def _maintenance_remove(target: CommandTarget, p: JsonObject) -> tuple[str, list[IncidentEvent]]:
    window_id = _required_text(p, "window_id")
    if not any(w.id == window_id for w in target.maintenance_windows()):
        return "ok: already gone", []
    return "ok", target.remove_maintenance(window_id)


_HANDLERS = {
    "ack": _ack,
    "silence": _silence,
    "unsilence": _unsilence,
    "maintenance_add": _maintenance_add,
    "maintenance_remove": _maintenance_remove,
}
