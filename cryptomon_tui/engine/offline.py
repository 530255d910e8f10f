"""Commands with no daemon running: the daemon's own domain code, then one store transaction.

``cryptomon ack|silence|unsilence|maintenance`` send their command to a running daemon over the control
API. Only when none runs do they come here: the incident state is restored from the store into an
``IncidentManager`` (as a starting daemon does), the command is applied by ``store.commands.apply_command``
(the code the daemon runs for queued commands), and what the manager decided is written together with the
queued command (``Store.record_change``), so the next daemon start applies it idempotently and announces
an acknowledgement to the notification channels. Nothing here writes SQL or decides a state change itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptomon_tui.clock import Clock
from cryptomon_tui.config import Config
from cryptomon_tui.incidents.manager import IncidentManager
from cryptomon_tui.incidents.model import Incident, IncidentEvent, IncidentState, MaintenanceWindow, Silence
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.store import Store
from cryptomon_tui.store.commands import apply_command
from cryptomon_tui.store.repo_state import exact_times
from cryptomon_tui.store.rows import CommandRecord


class OfflineCommandError(Exception):
    """The command cannot apply (unknown id, already resolved, a bad window ...). The message is for people."""


@dataclass(slots=True)
class Applied:
    """What the manager decided for one command."""

    result: str
    events: list[IncidentEvent] = field(default_factory=list)
    incident: Incident | None = None


class OfflineCommands:
    """One command per instance is the usual use (a CLI run); each method restores the newest stored state."""

    def __init__(self, store: Store, config: Config, clock: Clock) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    async def _manager(self) -> IncidentManager:
        manager = IncidentManager(self.clock, self.config.incidents)
        state = await self.store.load_state(self.clock.now(), manager.resolved_kept_for)
        manager.restore(
            state.open_incidents, state.silences, state.maintenance_windows, state.recently_resolved,
            grace_s=self.config.incidents.restore_grace,
        )
        return manager

    def _apply(self, manager: IncidentManager, kind: str, payload: JsonObject) -> Applied:
        result, events = apply_command(manager, CommandRecord(0, self.clock.now(), kind, payload))
        if not result.startswith("ok"):
            raise OfflineCommandError(result.removeprefix("skipped: "))
        return Applied(result, list(events))

    async def _record(self, kind: str, payload: JsonObject, applied: Applied, *,
                      silences: Iterable[Silence] = (), windows: Iterable[MaintenanceWindow] = (),
                      removed: Iterable[str] = ()) -> None:
        incidents = {e.incident.id: e.incident for e in applied.events}
        done = await self.store.record_change(
            kind, payload, incidents=incidents.values(), silences=silences, windows=windows, removed_windows=removed
        )
        if done is None:
            health = self.store.health()
            raise OfflineCommandError(f"storage error at {self.store.path}: {health.last_error}")

    async def ack(self, ident: str, by: str, note: str | None) -> Applied:
        manager = await self._manager()
        stored = await self.store.incident(ident)  # exact id or a unique prefix
        if stored is None:
            raise OfflineCommandError(f"no incident {ident!r} (or the prefix matches more than one)")
        if stored.state is IncidentState.RESOLVED or manager.get(stored.id) is None:
            raise OfflineCommandError(f"incident {stored.id} is already resolved")
        if stored.state is IncidentState.ACKNOWLEDGED:
            return Applied("ok: already acknowledged", incident=stored)
        payload: JsonObject = {"incident_id": stored.id, "by": by, "note": note, "offline": True}
        applied = self._apply(manager, "ack", payload)
        applied.incident = manager.get(stored.id)
        if applied.events and applied.incident is not None:
            payload["ts"] = applied.incident.acknowledged_at  # tells a starting daemon this ack is unannounced
            await self._record("ack", payload, applied)
        return applied

    async def silence(self, silence: Silence) -> Silence:
        manager = await self._manager()
        payload: JsonObject = {"silence": exact_times(silence.to_dict(), silence), "offline": True}
        applied = self._apply(manager, "silence", payload)
        stored = next(s for s in manager.silences(include_expired=True) if s.id == silence.id)
        await self._record("silence", payload, applied, silences=[stored])
        return stored

    async def unsilence(self, ident: str, by: str) -> Silence:
        manager = await self._manager()
        known = await self.store.silences(include_expired=True)
        matches = [s for s in known if s.id == ident] or [s for s in known if s.id.startswith(ident)]
        if len(matches) != 1:
            raise OfflineCommandError(f"no silence {ident!r} (or the prefix matches more than one)")
        target = matches[0]
        if not any(s.id == target.id for s in manager.silences()):
            raise OfflineCommandError(f"silence {target.id} has already expired")
        payload: JsonObject = {"silence_id": target.id, "by": by}
        applied = self._apply(manager, "unsilence", payload)
        ended = next(s for s in manager.silences(include_expired=True) if s.id == target.id)
        await self._record("unsilence", payload, applied, silences=[ended])
        return ended

    async def maintenance_add(self, window: MaintenanceWindow) -> MaintenanceWindow:
        manager = await self._manager()
        payload: JsonObject = {"window": exact_times(window.to_dict(), window)}
        applied = self._apply(manager, "maintenance_add", payload)
        added = next(w for w in manager.maintenance_windows() if w.id == window.id)
        await self._record("maintenance_add", payload, applied, windows=[added])
        return added

    async def maintenance_remove(self, window_id: str) -> None:
        manager = await self._manager()
        if not any(w.id == window_id for w in manager.maintenance_windows()):
            raise OfflineCommandError(f"no maintenance window {window_id!r}")
        payload: JsonObject = {"window_id": window_id}
        applied = self._apply(manager, "maintenance_remove", payload)
        await self._record("maintenance_remove", payload, applied, removed=[window_id])
