"""A small but honest EngineAPI for daemon, client, /metrics and UI tests.

It keeps real ``Incident``/``Silence`` objects, emits real ``IncidentEvent`` dicts to every
subscriber (never dropping), bumps ``seq`` on every change, and builds snapshots with exactly the
keys documented in ``cryptomon_tui.engine.api``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

from cryptomon_tui import __version__
from cryptomon_tui.clock import Clock
from cryptomon_tui.engine.api import CommandError, EngineCounters, Health, ReloadResult
from cryptomon_tui.engine.history import read_history
from cryptomon_tui.engine.views import event_view
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState, Matcher, Silence
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.jsonvalue import JsonValue
from cryptomon_tui.kernel.results import Outcome, Phases, ProbeResult
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.snapshot import Snapshot
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.metrics.totals import Totals
from cryptomon_tui.store.rows import RollupRow

DEFAULT_EXCHANGES = {"binance": "binance_spot", "okx": "okx"}
DEFAULT_PROBES = ("ping", "time", "book")


class MemoryHistory:
    """The store's history reads over lists (``engine.history.HistorySource``): rows and raw results."""

    def __init__(self) -> None:
        self.rows: list[RollupRow] = []
        self.results: list[ProbeResult] = []
        self.reads = 0

    async def rollups(
        self, exchange: str, probe: str | None, since: float, until: float | None = None
    ) -> list[RollupRow]:
        self.reads += 1
        end = float("inf") if until is None else until
        return sorted((r for r in self.rows if r.exchange == exchange and (probe is None or r.probe == probe)
                       and since // 60 * 60 <= r.minute <= end), key=lambda r: r.minute)

    async def results_page(
        self, since: float, until: float, after: tuple[float, int] | None = None, limit: int = 5000,
        exchange: str | None = None,
    ) -> tuple[list[ProbeResult], tuple[float, int] | None]:
        items = sorted((r for r in self.results if since <= r.started_at < until
                        and (exchange is None or r.exchange == exchange)), key=lambda r: r.started_at)
        return items, None


class FakeEngine:
    def __init__(
        self,
        clock: Clock,
        *,
        location: str = "test",
        exchanges: dict[str, str] | None = None,
        probes: tuple[str, ...] = DEFAULT_PROBES,
    ) -> None:
        self.clock = clock
        self.location = location
        self.seq = 0
        self.started_at = clock.now()
        self.totals = Totals()  # cumulative counts behind /metrics counters: every result the fake "saw"
        self.incidents_opened: dict[tuple[str, str], int] = {}
        self.history_source: MemoryHistory | None = MemoryHistory()
        self.exchanges: dict[str, dict[str, Any]] = {}
        for name, kind in (exchanges or DEFAULT_EXCHANGES).items():
            self.exchanges[name] = self._healthy_exchange(name, kind, probes)
        self.incidents: dict[str, Incident] = {}
        self.silences: dict[str, Silence] = {}
        self.notify: list[dict[str, Any]] = [
            {
                "channel": "ops-discord",
                "kind": "discord",
                "state": "ok",
                "queue": 0,
                "dead_letters": 0,
                "last_error": None,
                "last_sent_at": None,
            }
        ]
        self.analysis: dict[str, Any] = {
            "llm_spend_usd_month": 0.0,
            "budget_usd_month": 5.0,
            "model": None,
            "pending": 0,
        }
        self.health_state: dict[str, Any] = {
            "loop": True,
            "config_loaded": True,
            "store_writable": True,
            "probes_running": True,
        }
        self.reloads = 0
        self.commands: list[tuple[str, tuple[Any, ...]]] = []
        self.snapshot_builds = 0
        self._subscribers: list[asyncio.Queue[EventView]] = []
        self._ids = itertools.count(1)
        self._cached: dict[str, Any] | None = None

    # -- state the tests drive --

    def _healthy_exchange(self, name: str, kind: str, probes: tuple[str, ...]) -> dict[str, Any]:
        now = self.clock.now()
        probe_rows: dict[str, Any] = {}
        for probe in probes:
            result = ProbeResult(
                exchange=name,
                probe=probe,
                started_at=now,
                latency_ms=42.0,
                outcome=Outcome.OK,
                http_status=200,
                rate_limit_used=0.01,
                phases=Phases(dns_ms=1.0, connect_ms=5.0, tls_ms=12.0, ttfb_ms=20.0, transfer_ms=4.0, reused=False),
            )
            for _ in range(100):
                self.totals.record(name, probe, "ok", 42.0)
            probe_rows[probe] = {
                "last": result.to_json_dict(),
                "attempts": 100,
                "error_rate": 0.0,
                "p50_ms": 40.0,
                "p95_ms": 80.0,
                "p99_ms": 120.0,
                "timeouts": 0,
                "consecutive_failures": 0,
                "counts": {"ok": 100},
            }
        return {
            "kind": kind,
            "status": "ok",
            "breaker": {"state": "closed", "next_trial_at": None},
            "rate_limit_used": 0.01,
            "ban_until": None,
            "clock_offset_ms": 1.5,
            "clock_error_ms": 0.8,
            "p50_ms": 40.0,
            "p99_ms": 120.0,
            "error_rate": 0.0,
            "sparkline": [40.0, 41.0, 43.0, None, 39.0],
            "probes": probe_rows,
        }

    def changed(self) -> None:
        self.seq += 1
        self._cached = None

    def set_exchange(self, name: str, **fields: Any) -> None:
        self.exchanges[name].update(fields)
        self.changed()

    def set_probe(self, exchange: str, probe: str, **fields: Any) -> None:
        self.exchanges[exchange]["probes"][probe].update(fields)
        self.changed()

    def fail_exchange(self, name: str, outcome: Outcome = Outcome.HTTP_5XX, status: int | None = 503) -> None:
        """Every probe of ``name`` failing now (an outage as /metrics and the UI see it)."""
        now = self.clock.now()
        for probe, row in self.exchanges[name]["probes"].items():
            result = ProbeResult(
                exchange=name,
                probe=probe,
                started_at=now,
                latency_ms=None if outcome is Outcome.TIMEOUT else 900.0,
                outcome=outcome,
                http_status=status,
                error_message="Service Unavailable",
            )
            for _ in range(20):
                self.totals.record(name, probe, outcome.value, None)
            row.update(
                {
                    "last": result.to_json_dict(),
                    "error_rate": 1.0,
                    "timeouts": 20 if outcome is Outcome.TIMEOUT else 0,
                    "counts": {outcome.value: 20, "ok": 80},
                    "p99_ms": 2500.0,
                }
            )
        self.exchanges[name].update({"status": "down", "error_rate": 1.0, "p99_ms": 2500.0})
        self.changed()

    def open_incident(
        self,
        rule: str = "error_rate",
        exchange: str | None = "binance",
        probe: str | None = "book",
        severity: Severity = Severity.ERROR,
        summary: str = "binance book failing",
    ) -> Incident:
        now = self.clock.now()
        labels = {"exchange": exchange or "", "probe": probe or ""}
        incident = Incident(
            id=f"inc-{next(self._ids)}",
            fingerprint=fingerprint(rule, dict(labels)),
            rule=rule,
            severity=severity,
            exchange=exchange,
            probe=probe,
            state=IncidentState.FIRING,
            summary=summary,
            started_at=now,
            updated_at=now,
            labels=labels,
        )
        self.incidents[incident.id] = incident
        key = (rule, severity.value)
        self.incidents_opened[key] = self.incidents_opened.get(key, 0) + 1
        self.emit(EventType.OPENED, incident)
        return incident

    def emit(self, event: EventType, incident: Incident, actor: str | None = None, **detail: JsonValue) -> None:
        ev = IncidentEvent(ts=self.clock.now(), event=event, incident=incident, actor=actor, detail=detail)
        data = event_view(ev)
        self.changed()
        for queue in list(self._subscribers):
            queue.put_nowait(data)

    def flood(self, n: int, incident: Incident | None = None) -> None:
        """``n`` update events at once (a storm)."""
        target = incident or next(iter(self.incidents.values()), None) or self.open_incident()
        for i in range(n):
            self.emit(EventType.UPDATED, target, note=f"update {i}")

    # -- EngineAPI --

    def snapshot(self) -> Snapshot:
        """What the daemon sends: the test data read through the typed model, as a face would read it."""
        return Snapshot.from_wire(self.snapshot_dict())

    def snapshot_dict(self) -> dict[str, Any]:
        """The snapshot as the test data (the UI's screenshot fixtures draw this as is)."""
        if self._cached is not None and self._cached["seq"] == self.seq:
            return self._cached
        self.snapshot_builds += 1
        incidents = sorted(self.incidents.values(), key=lambda i: (not i.is_open, -i.started_at))
        self._cached = {
            "seq": self.seq,
            "ts": iso_utc(self.clock.now()),
            "location": self.location,
            "version": __version__,
            "started_at": iso_utc(self.started_at),
            "exchanges": {
                name: {**ex, "probes": {p: dict(row) for p, row in ex["probes"].items()}}
                for name, ex in self.exchanges.items()
            },
            "incidents": [i.to_dict() for i in incidents],
            "silences": [s.to_dict() for s in self.silences.values() if s.expired_at is None],
            "notify": [dict(n) for n in self.notify],
            "analysis": dict(self.analysis),
        }
        return self._cached

    async def history(
        self, exchange: str, probe: str | None, since: float, until: float, resolution_s: float, recent: int = 0
    ) -> dict[str, Any]:
        self.commands.append(("history", (exchange, probe, since, until, resolution_s, recent)))
        return await read_history(self.history_source, exchange, probe, since, until, resolution_s, recent)

    def counters(self) -> EngineCounters:
        return EngineCounters(
            probes=self.totals.probe_outcomes(),
            probe_durations=self.totals.probe_durations(),
            incidents_opened=dict(self.incidents_opened),
            notifications={("ops-discord", "sent"): 3, ("ops-discord", "failed"): 1},
            llm_tokens={("deepseek-chat", "prompt"): 1200, ("deepseek-chat", "completion"): 300},
            llm_cost_usd={"deepseek-chat": 0.0021},
        )

    async def subscribe_events(self) -> AsyncIterator[EventView]:  # type: ignore[override]
        queue: asyncio.Queue[EventView] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    def _incident(self, incident_id: str) -> Incident:
        try:
            return self.incidents[incident_id]
        except KeyError:
            raise CommandError(f"no incident {incident_id!r}", "not_found") from None

    async def ack(self, incident_id: str, by: str, note: str | None) -> dict[str, Any]:
        self.commands.append(("ack", (incident_id, by, note)))
        incident = self._incident(incident_id).with_changes(
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_by=by,
            acknowledged_at=self.clock.now(),
            ack_note=note,
            updated_at=self.clock.now(),
        )
        self.incidents[incident_id] = incident
        self.emit(EventType.ACKNOWLEDGED, incident, actor=by)
        return {"incident": incident.to_dict()}

    async def silence(
        self, matchers: list[dict[str, Any]], duration_s: float | None, comment: str, by: str
    ) -> dict[str, Any]:
        self.commands.append(("silence", (matchers, duration_s, comment, by)))
        now = self.clock.now()
        silence = Silence(
            id=f"sil-{next(self._ids)}",
            matchers=tuple(Matcher(name=m["name"], value=m["value"]) for m in matchers),
            starts_at=now,
            ends_at=None if duration_s is None else now + duration_s,
            created_by=by,
            comment=comment,
            created_at=now,
        )
        self.silences[silence.id] = silence
        for incident in list(self.incidents.values()):
            if all(incident.to_dict().get(m.name) == m.value or incident.labels.get(m.name) == m.value
                   for m in silence.matchers):
                updated = incident.with_changes(silenced_by=silence.id, silenced_until=silence.ends_at)
                self.incidents[incident.id] = updated
                self.emit(EventType.SILENCED, updated, actor=by)
        self.changed()
        return {"silence": silence.to_dict()}

    async def unsilence(self, silence_id: str, by: str) -> dict[str, Any]:
        self.commands.append(("unsilence", (silence_id, by)))
        silence = self.silences.get(silence_id)
        if silence is None:
            raise CommandError(f"no silence {silence_id!r}", "not_found")
        from dataclasses import replace

        self.silences[silence_id] = replace(silence, expired_at=self.clock.now())
        for incident in list(self.incidents.values()):
            if incident.silenced_by == silence_id:
                updated = incident.with_changes(silenced_by=None, silenced_until=None)
                self.incidents[incident.id] = updated
                self.emit(EventType.UNSILENCED, updated, actor=by)
        self.changed()
        return {"silence": self.silences[silence_id].to_dict()}

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> dict[str, Any]:
        self.commands.append(("analyze", (incident_id, force, offline)))
        incident = self._incident(incident_id)
        return {
            "incident_id": incident.id,
            "root_cause": f"{incident.exchange} returned 503 on {incident.probe}",
            "severity": incident.severity.value,
            "action": "wait; the exchange is failing, not us",
            "recovery_estimate": "minutes",
            "confidence": 0.7,
            "source": "offline",
            "cost_usd": 0.0,
            "cached": not force,
        }

    async def summary(self, since_s: float | None = None, offline: bool = False) -> dict[str, Any]:
        self.commands.append(("summary", ()))
        open_ = [i for i in self.incidents.values() if i.is_open]
        return {"open": len(open_), "text": f"{len(open_)} open incident(s)", "source": "offline"}

    async def maintenance_add(
        self, exchange: str | None, starts_at: float, ends_at: float, comment: str, recurrence: str | None,
        timezone: str, by: str,
    ) -> dict[str, Any]:
        self.commands.append(("maintenance_add", (exchange, starts_at, ends_at, comment, recurrence, timezone, by)))
        window_id = f"mw-{next(self._ids)}"
        return {"window": {"id": window_id, "exchange": exchange, "starts_at": iso_utc(starts_at),
                           "ends_at": iso_utc(ends_at), "comment": comment, "recurrence": recurrence}}

    async def maintenance_remove(self, window_id: str, by: str) -> dict[str, Any]:
        self.commands.append(("maintenance_remove", (window_id, by)))
        return {"window_id": window_id, "removed": True}

    async def pause(self, exchange: str) -> dict[str, Any]:
        if exchange not in self.exchanges:
            raise CommandError(f"no exchange {exchange!r}", "not_found")
        self.commands.append(("pause", (exchange,)))
        self.set_exchange(exchange, status="paused")
        return {"exchange": exchange, "status": "paused"}

    async def resume(self, exchange: str) -> dict[str, Any]:
        if exchange not in self.exchanges:
            raise CommandError(f"no exchange {exchange!r}", "not_found")
        self.commands.append(("resume", (exchange,)))
        self.set_exchange(exchange, status="ok")
        return {"exchange": exchange, "status": "ok"}

    async def reload(self) -> ReloadResult:
        self.reloads += 1
        self.commands.append(("reload", ()))
        self.changed()
        return ReloadResult(True)

    def health(self) -> Health:
        # fake_reloads: FakeEngine only (Health.extra is passed through), lets process tests see reloads
        s = self.health_state
        return Health(loop=bool(s.get("loop", True)), snapshot=bool(s.get("snapshot", True)),
                      config_loaded=bool(s.get("config_loaded")), store_writable=bool(s.get("store_writable")),
                      probes_running=bool(s.get("probes_running")), extra={"fake_reloads": self.reloads})
