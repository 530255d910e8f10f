"""What the faces (daemon control API, /metrics, ``cryptomon status``, the UI) need from the engine.

The engine implements ``EngineAPI``; the daemon only ever talks to it through this Protocol, so a
fake engine can stand in for tests and the wire contract stays stable while the engine grows.

The snapshot and the events are typed models in the kernel (``kernel.snapshot.Snapshot``,
``kernel.events.EventView``): their fields say what each value means, their ``to_wire()`` is what the
control API sends and ``from_wire()`` is how a face reads it back (versioned with ``"schema"``).

Commands return a JSON object describing the new state (e.g. ``{"incident": Incident.to_dict()}``,
``{"silence": Silence.to_dict()}``, ``{"exchange": name, "status": "paused"}``). A command the engine
refuses for a reason the user can fix (unknown incident id, unknown exchange, a bad matcher) raises
``CommandError``; its message is shown to the user as is, so it must not contain secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.history import HistoryAnswer
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.snapshot import Snapshot, StoreView
from cryptomon_tui.metrics.totals import DurationCounts

EXCHANGE_STATUSES = ("ok", "degraded", "down", "maintenance", "banned", "paused", "error")  # error: cannot be shown
BREAKER_STATES = ("closed", "half_open", "open")


class CommandError(Exception):
    """A command the engine refuses; ``code`` is machine-readable (``not_found``, ``invalid``, ...)."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class EngineCounters:
    """Counts since the engine started; they only grow (across reloads too), so Prometheus can ``rate()``
    and sum them over locations. Keys are label tuples."""

    probes: Mapping[tuple[str, str, str], int] = field(default_factory=dict)  # (exchange, probe, outcome)
    probe_durations: Mapping[tuple[str, str], DurationCounts] = field(default_factory=dict)  # successful probes
    incidents_opened: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (rule, severity)
    notifications: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (channel, "sent" | "failed")
    llm_tokens: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (model, "prompt" | "completion")
    llm_cost_usd: Mapping[str, float] = field(default_factory=dict)  # model
    # WebSocket streams, keyed (exchange, stream): data messages, sequence holes, reconnects, and the
    # inter-message gap and event-time lag histograms (same bucket bounds as probe durations)
    stream_messages: Mapping[tuple[str, str], int] = field(default_factory=dict)
    stream_seq_gaps: Mapping[tuple[str, str], int] = field(default_factory=dict)
    stream_reconnects: Mapping[tuple[str, str], int] = field(default_factory=dict)
    stream_gap_seconds: Mapping[tuple[str, str], DurationCounts] = field(default_factory=dict)
    stream_lag_seconds: Mapping[tuple[str, str], DurationCounts] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a config reload did: ``changed`` names the top-level sections that differ; ``error`` why a
    refused reload kept the running config. ``to_wire`` is the control API's ``reload`` reply."""

    ok: bool
    changed: tuple[str, ...] = ()
    error: str | None = None

    def to_wire(self) -> JsonObject:
        return {"ok": self.ok, "changed": list(self.changed), "error": self.error}


@dataclass(frozen=True, slots=True)
class Health:
    """What /healthz, /readyz, the control API's ``health`` and /metrics' store gauges read. ``to_wire`` is the
    ``health`` reply: the flags at the top, the reasons under ``detail``, ``extra`` merged in as is."""

    loop: bool = True  # the engine's loop answers
    snapshot: bool = True  # a snapshot can be built (False: the faces see nothing)
    config_loaded: bool = True
    store_writable: bool = True  # open, and no write failed lately (readiness)
    probes_running: bool = False
    store: StoreView | None = None  # the store's own health (``detail.store``); None without a store
    store_reason: str | None = None  # why the store is not writable (``/readyz`` says it)
    notify_in_memory: int | None = None  # notifications waiting in memory while the store refuses them
    snapshot_error: str | None = None  # why no snapshot could be built
    extra: Mapping[str, JsonValue] = field(default_factory=dict)  # passed through (a fake's own keys, ...)

    def detail(self) -> JsonObject:
        out: JsonObject = {}
        if self.store is not None:
            out["store"] = self.store.to_wire()
        if self.store_reason is not None:
            out["store_reason"] = self.store_reason
        if self.notify_in_memory is not None:
            out["notify_in_memory"] = self.notify_in_memory
        if self.snapshot_error is not None:
            out["snapshot_error"] = self.snapshot_error
        return out

    def to_wire(self) -> JsonObject:
        return {
            "loop": self.loop, "snapshot": self.snapshot, "config_loaded": self.config_loaded,
            "store_writable": self.store_writable, "probes_running": self.probes_running, "detail": self.detail(),
            **self.extra,
        }


@runtime_checkable
class EngineAPI(Protocol):
    """The engine as seen by every face. Implemented by ``cryptomon_tui.engine.engine.Engine``."""

    def snapshot(self) -> Snapshot:
        """The current state. Cheap: cached per ``seq``."""
        ...

    def counters(self) -> EngineCounters:
        """Cumulative counts for /metrics (read at scrape time; never reset while the engine runs)."""
        ...

    def subscribe_events(self) -> AsyncIterator[EventView]:
        """Every incident event from now on, in order, never dropped, with the full incident.
        Leaving the iteration unsubscribes."""
        ...

    async def history(
        self, exchange: str, probe: str | None, since: float, until: float, resolution_s: float, recent: int = 0
    ) -> HistoryAnswer:
        """Chart points and the newest ``recent`` raw results from the engine's store
        (``cryptomon_tui.engine.history.read_history``); bounds are checked by the protocol first."""
        ...

    async def ack(self, incident_id: str, by: str, note: str | None) -> JsonObject: ...

    async def silence(
        self, matchers: list[JsonObject], duration_s: float | None, comment: str, by: str
    ) -> JsonObject:
        """Matchers are ``Matcher.to_dict()`` shapes; ``duration_s=None`` = until the incident resolves."""
        ...

    async def unsilence(self, silence_id: str, by: str) -> JsonObject: ...

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> JsonObject:
        """Root-cause analysis of one incident; cached unless ``force``; ``offline`` skips the LLM."""
        ...

    async def summary(self, since_s: float | None = None, offline: bool = False) -> JsonObject:
        """One analysis of all open incidents together (and of those resolved in the last ``since_s``)."""
        ...

    async def maintenance_add(
        self,
        exchange: str | None,
        starts_at: float,
        ends_at: float,
        comment: str,
        recurrence: str | None,
        timezone: str,
        by: str,
    ) -> JsonObject:
        """A maintenance window (exchange None = all); ``{"window": MaintenanceWindow.to_dict()}``."""
        ...

    async def maintenance_remove(self, window_id: str, by: str) -> JsonObject: ...

    async def pause(self, exchange: str) -> JsonObject: ...

    async def resume(self, exchange: str) -> JsonObject: ...

    async def reload(self) -> ReloadResult:
        """Re-read the config file and apply it without losing state or open incidents (a broken file keeps
        the old config and says why)."""
        ...

    def health(self) -> Health:
        """Liveness and readiness (never raises for a broken part: it says so)."""
        ...
