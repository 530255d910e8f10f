"""What the faces (daemon control API, /metrics, ``cryptomon status``, the UI) need from the engine.

The engine implements ``EngineAPI``; the daemon only ever talks to it through this Protocol, so a
fake engine can stand in for tests and the wire contract stays stable while the engine grows.

Snapshot shape (``EngineAPI.snapshot()``), a JSON-able dict. Times are ISO-8601 UTC strings
(``iso_utc``) unless the key ends in ``_s``/``_ms``; ``None`` means "not known (yet)"::

    {
      "seq": 1234,                  # int, strictly increases whenever anything below changes
      "ts": "2026-08-23T10:00:00.000Z",
      "location": "tokyo",          # config daemon.location
      "version": "0.1.0",           # cryptomon_tui.__version__
      "started_at": "...",          # engine start (optional)
      "exchanges": {
        "<name>": {
          "kind": "binance_spot",   # ExchangeConfig.kind
          "status": "ok" | "degraded" | "down" | "maintenance" | "banned" | "paused",
          "breaker": {"state": "closed" | "open" | "half_open", "next_trial_at": iso | None},
          "rate_limit_used": 0.12,  # share of the exchange's limit in use, 0..1 (None = unknown)
          "ban_until": iso | None,
          "clock_offset_ms": -3.2,  # exchange time - local time
          "clock_error_ms": 1.1,    # bound on that estimate (half the round trip)
          "p50_ms": 41.0, "p99_ms": 180.0,
          "error_rate": 0.0,        # 0..1 over the rolling window, all probes
          "sparkline": [41.0, 43.5, None, ...],   # recent latency points, oldest first (ms)
          "probes": {
            "<probe>": {            # stable names: ping, time, status, ticker, book, account, ...
              "last": ProbeResult.to_json_dict() | None,
              "attempts": 120,      # probes actually sent in the window
              "error_rate": 0.0,
              "p50_ms": 40.0, "p95_ms": 90.0, "p99_ms": 170.0,
              "timeouts": 0,        # timeouts in the window
              "consecutive_failures": 0,   # failed attempts in a row right now (0 after a success)
              "counts": {"ok": 118, "http_5xx": 2, ...},   # by Outcome value
            },
          },
        },
      },
      "incidents": [Incident.to_dict(), ...],    # open incidents first, then recently resolved
      "silences": [Silence.to_dict(), ...],      # active and pending
      "notify": [                                # one per configured channel
        {"channel": "ops-discord", "kind": "discord", "state": "ok" | "failing" | "broken" | "disabled",
         "queue": 0,               # outbox entries waiting for this channel
         "dead_letters": 0,        # gave up after retries
         "last_error": str | None, "last_sent_at": iso | None},
      ],
      "analysis": {
        "llm_spend_usd_month": 0.42,   # spend this calendar month (ledger)
        "budget_usd_month": 5.0 | None,
        "model": "deepseek-chat" | None,   # None = offline analyzer only
        "pending": 0,                  # analyses running now
      },
    }

``ProbeResult.to_json_dict()["phases"]`` carries dns_ms / connect_ms / tls_ms / ttfb_ms / transfer_ms,
which /metrics exports as blackbox_exporter's ``probe_http_duration_seconds{phase}``.

Commands return a JSON-able dict describing the new state (e.g. ``{"incident": Incident.to_dict()}``,
``{"silence": Silence.to_dict()}``, ``{"exchange": name, "status": "paused"}``). A command the engine
refuses for a reason the user can fix (unknown incident id, unknown exchange, a bad matcher) raises
``CommandError``; its message is shown to the user as is, so it must not contain secrets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class EngineAPI(Protocol):
    """The engine as seen by every face. Implemented by ``cryptomon_tui.engine.engine.Engine``."""

    def snapshot(self) -> dict[str, Any]:
        """The current state (shape in the module docstring). Cheap: cached per ``seq``."""
        ...

    def counters(self) -> EngineCounters:
        """Cumulative counts for /metrics (read at scrape time; never reset while the engine runs)."""
        ...

    def subscribe_events(self) -> AsyncIterator[dict[str, Any]]:
        """Every incident event from now on, in order, never dropped.

        Each item is ``IncidentEvent.to_json_dict()`` with ``"incident"`` replaced by the full
        ``Incident.to_dict()`` (a superset of the event shape). Leaving the iteration unsubscribes.
        """
        ...

    async def history(
        self, exchange: str, probe: str | None, since: float, until: float, resolution_s: float, recent: int = 0
    ) -> dict[str, Any]:
        """Chart points and the newest ``recent`` raw results from the engine's store (shape:
        ``cryptomon_tui.engine.history.read_history``); bounds are checked by the protocol first."""
        ...

    async def ack(self, incident_id: str, by: str, note: str | None) -> dict[str, Any]: ...

    async def silence(
        self, matchers: list[dict[str, Any]], duration_s: float | None, comment: str, by: str
    ) -> dict[str, Any]:
        """Matchers are ``Matcher.to_dict()`` shapes; ``duration_s=None`` = until the incident resolves."""
        ...

    async def unsilence(self, silence_id: str, by: str) -> dict[str, Any]: ...

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> dict[str, Any]:
        """Root-cause analysis of one incident; cached unless ``force``; ``offline`` skips the LLM."""
        ...

    async def summary(self, since_s: float | None = None, offline: bool = False) -> dict[str, Any]:
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
    ) -> dict[str, Any]:
        """A maintenance window (exchange None = all); ``{"window": MaintenanceWindow.to_dict()}``."""
        ...

    async def maintenance_remove(self, window_id: str, by: str) -> dict[str, Any]: ...

    async def pause(self, exchange: str) -> dict[str, Any]: ...

    async def resume(self, exchange: str) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]:
        """Re-read the config file and apply it without losing state or open incidents.

        Returns ``{"ok": bool, "changed": [...], "error": str | None}``; a broken file keeps the old config.
        """
        ...

    def health(self) -> dict[str, Any]:
        """``{"loop": bool, "config_loaded": bool, "store_writable": bool, "probes_running": bool, ...}``.

        Extra keys (e.g. ``"detail": {...}``) are passed through to /healthz and /readyz.
        """
        ...
