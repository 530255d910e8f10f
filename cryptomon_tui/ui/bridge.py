"""The UI's one connection to the engine: a ``DaemonClient`` (or anything with its interface).

Snapshots are *pulled* by the screens on their own timer (``bridge.latest``; latest-only, cheap
when nothing changed). Incident events are *pushed* as Textual messages to the widgets/screens
that registered for them (each event counts, so no ``can_replace``). Commands are plain async
methods the screens call from workers. Reconnection with backoff is the client's job; the bridge
only reports connection state changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from textual.message import Message
from textual.message_pump import MessagePump

from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.history import HistoryAnswer
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.snapshot import Snapshot

log = logging.getLogger(__name__)


class ClientLike(Protocol):
    """What the bridge needs from ``cryptomon_tui.daemon.client.DaemonClient``."""

    state: str

    @property
    def latest_snapshot(self) -> Snapshot | None: ...

    async def connect(self) -> object: ...

    async def close(self) -> None: ...

    async def subscribe(self, snapshot_hz: float = 0.0, events: bool = False) -> JsonObject: ...

    def events(self) -> AsyncIterator[EventView]: ...

    async def ack(self, incident_id: str, note: str | None = None, by: str | None = None) -> JsonObject: ...

    async def silence(
        self, matchers: Sequence[JsonObject], duration_s: float | None, comment: str, by: str | None = None
    ) -> JsonObject: ...

    async def unsilence(self, silence_id: str, by: str | None = None) -> JsonObject: ...

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> JsonObject: ...

    async def summary(self) -> JsonObject: ...

    async def history(
        self, exchange: str, since: float, until: float, resolution_s: float, probe: str | None = None,
        recent: int = 0,
    ) -> HistoryAnswer: ...

    async def pause(self, exchange: str) -> JsonObject: ...

    async def resume(self, exchange: str) -> JsonObject: ...

    async def shutdown(self) -> JsonObject: ...


class IncidentEventMessage(Message):
    """One incident event from the engine, with the incident as it is after it."""

    def __init__(self, event: EventView) -> None:
        super().__init__()
        self.event = event


class ConnectionChanged(Message):
    def __init__(self, state: str, detail: str = "") -> None:
        super().__init__()
        self.state = state
        self.detail = detail

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ConnectionChanged)


class Bridge:
    def __init__(self, client: ClientLike, *, snapshot_hz: float = 2.0, actor: str | None = None) -> None:
        self.client = client
        self.snapshot_hz = snapshot_hz
        self.actor = actor
        self._listeners: list[MessagePump] = []
        self._pump: asyncio.Task[None] | None = None
        self.error: str | None = None
        self.events_seen = 0

    # -- lifecycle --

    async def start(self) -> None:
        """Connect and subscribe; raises the client's errors (NoDaemonRunning, VersionMismatch ...)."""
        if hasattr(self.client, "on_state") and getattr(self.client, "on_state", None) is None:
            self.client.on_state = self.on_client_state
        await self.client.connect()
        await self.client.subscribe(self.snapshot_hz, True)
        self._pump = asyncio.create_task(self._pump_events(), name="ui-bridge-events")
        self._broadcast(ConnectionChanged(self.client.state))

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        with contextlib.suppress(Exception):
            await self.client.close()

    def on_client_state(self, state: str) -> None:
        """Give this to the client as ``on_state`` so screens learn about reconnects."""
        self._broadcast(ConnectionChanged(state))

    # -- listeners --

    def add_listener(self, target: MessagePump) -> None:
        if target not in self._listeners:
            self._listeners.append(target)

    def remove_listener(self, target: MessagePump) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(target)

    def _broadcast(self, message_factory: Message) -> None:
        for target in list(self._listeners):
            # A message object belongs to one pump: send each target its own copy.
            if isinstance(message_factory, IncidentEventMessage):
                msg: Message = IncidentEventMessage(message_factory.event)
            elif isinstance(message_factory, ConnectionChanged):
                msg = ConnectionChanged(message_factory.state, message_factory.detail)
            else:  # pragma: no cover - only the two kinds above exist
                msg = message_factory
            if not target.post_message(msg):
                self.remove_listener(target)  # closed screen

    async def _pump_events(self) -> None:
        try:
            async for event in self.client.events():
                self.events_seen += 1
                self._broadcast(IncidentEventMessage(event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client gave up (version mismatch, auth, closed)
            self.error = str(exc)
            log.warning("event stream ended: %s", exc)
            self._broadcast(ConnectionChanged("disconnected", str(exc)))

    # -- state --

    @property
    def latest(self) -> Snapshot | None:
        return self.client.latest_snapshot

    @property
    def state(self) -> str:
        return self.client.state

    # -- commands (raise the client's CommandFailed / ConnectionLost; callers show the message) --

    async def ack(self, incident_id: str, note: str | None) -> JsonObject:
        return await self.client.ack(incident_id, note=note, by=self.actor)

    async def silence(self, matchers: list[JsonObject], duration_s: float | None, comment: str) -> JsonObject:
        return await self.client.silence(matchers, duration_s, comment, by=self.actor)

    async def unsilence(self, silence_id: str) -> JsonObject:
        return await self.client.unsilence(silence_id, by=self.actor)

    async def analyze(self, incident_id: str, force: bool = False) -> JsonObject:
        return await self.client.analyze(incident_id, force=force)

    async def summary(self) -> JsonObject:
        return await self.client.summary()

    async def history(
        self, exchange: str, since: float, until: float, resolution_s: float, recent: int = 0
    ) -> HistoryAnswer:
        return await self.client.history(exchange, since, until, resolution_s, recent=recent)

    async def pause(self, exchange: str) -> JsonObject:
        return await self.client.pause(exchange)

    async def resume(self, exchange: str) -> JsonObject:
        return await self.client.resume(exchange)

    async def shutdown_daemon(self) -> JsonObject:
        return await self.client.shutdown()
