"""Typed rows the repositories return, and the (de)serialisation of the shared contracts.

Times are stored as epoch seconds (REAL) rather than ISO text: exact round trips, cheap
range queries. JSON columns hold the dict/list fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from cryptomon_tui.incidents.model import (
    Incident,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
    TimelineEntry,
)
from cryptomon_tui.kernel.results import BreakerState, Outcome, Phases, ProbeResult
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import MAX_SILENCE_S, parse_iso_utc, plausible_epoch


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# --- probe results ----------------------------------------------------------------------------

RESULT_COLUMNS = (
    "ts, exchange, probe, outcome, latency_ms, http_status, error_code, error_message, "
    "rate_limit_used, clock_offset_ms, extra"
)


def result_to_row(r: ProbeResult) -> tuple[Any, ...]:
    extra: dict[str, Any] = {}
    if r.clock_error_ms is not None:
        extra["clock_error_ms"] = r.clock_error_ms
    if r.retry_after_s is not None:
        extra["retry_after_s"] = r.retry_after_s
    if r.ban_until is not None:
        extra["ban_until"] = r.ban_until
    if r.maintenance_until is not None:
        extra["maintenance_until"] = r.maintenance_until
    if r.phases is not None:
        extra["phases"] = r.phases.as_dict()
    if r.breaker is not BreakerState.CLOSED:
        extra["breaker"] = r.breaker.value
    return (
        r.started_at,
        r.exchange,
        r.probe,
        r.outcome.value,
        r.latency_ms,
        r.http_status,
        r.error_code,
        r.error_message,
        r.rate_limit_used,
        r.clock_offset_ms,
        dumps(extra) if extra else None,
    )


def result_from_row(row: tuple[Any, ...]) -> ProbeResult:
    ts, exchange, probe, outcome, latency, status, code, message, usage, offset, extra_text = row
    extra: dict[str, Any] = json.loads(extra_text) if extra_text else {}
    phases = extra.get("phases")
    try:
        parsed_outcome = Outcome(outcome)
    except ValueError:
        parsed_outcome = Outcome.EXCHANGE_ERROR
    return ProbeResult(
        exchange=exchange,
        probe=probe,
        started_at=float(ts),
        latency_ms=latency,
        outcome=parsed_outcome,
        http_status=status,
        error_code=code,
        error_message=message,
        rate_limit_used=usage,
        clock_offset_ms=offset,
        clock_error_ms=extra.get("clock_error_ms"),
        retry_after_s=extra.get("retry_after_s"),
        ban_until=extra.get("ban_until"),
        maintenance_until=extra.get("maintenance_until"),
        phases=Phases(**phases) if isinstance(phases, dict) else None,
        breaker=BreakerState(extra.get("breaker", "closed")),
    )


# --- rollups ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollupRow:
    """One minute of one (exchange, probe) series, or of a whole exchange when probe is None."""

    exchange: str
    probe: str | None
    minute: int  # epoch seconds at the start of the minute
    attempts: int
    errors: int
    timeouts: int
    outcomes: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    peak_usage: float | None = None
    clock_offset_ms: float | None = None

    @property
    def error_rate(self) -> float:
        return self.errors / self.attempts if self.attempts else 0.0


def _first(obj: Any, *names: str) -> Any:
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


def rollup_to_row(r: Any) -> tuple[Any, ...]:
    """Accept ``RollupRow`` or metrics' ``Rollup`` (attribute names may differ slightly)."""
    minute = _first(r, "minute", "start", "ts", "started_at")
    outcomes = _first(r, "outcomes", "counts", "outcome_counts") or {}
    return (
        r.exchange,
        r.probe or "",
        int(float(minute) // 60 * 60),
        int(r.attempts),
        int(r.errors),
        int(r.timeouts),
        dumps({str(k): int(v) for k, v in dict(outcomes).items()}),
        _first(r, "p50_ms", "p50"),
        _first(r, "p95_ms", "p95"),
        _first(r, "p99_ms", "p99"),
        _first(r, "min_ms", "latency_min_ms", "min"),
        _first(r, "max_ms", "latency_max_ms", "max"),
        _first(r, "mean_ms", "latency_mean_ms", "mean"),
        _first(r, "peak_usage", "rate_limit_peak", "peak_rate_limit_used", "rate_limit_used"),
        _first(r, "clock_offset_ms", "last_clock_offset_ms"),
    )


ROLLUP_COLUMNS = (
    "exchange, probe, minute, attempts, errors, timeouts, outcomes, p50_ms, p95_ms, p99_ms, "
    "min_ms, max_ms, mean_ms, peak_usage, clock_offset_ms"
)


def rollup_from_row(row: tuple[Any, ...]) -> RollupRow:
    return RollupRow(
        exchange=row[0],
        probe=row[1] or None,
        minute=int(row[2]),
        attempts=int(row[3]),
        errors=int(row[4]),
        timeouts=int(row[5]),
        outcomes=json.loads(row[6]) if row[6] else {},
        p50_ms=row[7],
        p95_ms=row[8],
        p99_ms=row[9],
        min_ms=row[10],
        max_ms=row[11],
        mean_ms=row[12],
        peak_usage=row[13],
        clock_offset_ms=row[14],
    )


def merge_rollups(exchange: str, minute: int, rows: list[RollupRow]) -> RollupRow:
    """Whole-exchange view of one minute. Counts add up; percentiles cannot be merged exactly,
    so p50/mean are attempt-weighted means and p95/p99/max the worst probe's (a chart of the
    exchange should show its worst tail, not hide it)."""
    attempts = sum(r.attempts for r in rows)
    outcomes: dict[str, int] = {}
    for r in rows:
        for k, v in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v

    def weighted(attr: str) -> float | None:
        pairs = [(getattr(r, attr), r.attempts) for r in rows if getattr(r, attr) is not None]
        weight = sum(w for _, w in pairs)
        if not pairs:
            return None
        if weight == 0:
            return sum(v for v, _ in pairs) / len(pairs)
        return sum(v * w for v, w in pairs) / weight

    def worst(attr: str, pick: Any = max) -> float | None:
        values = [getattr(r, attr) for r in rows if getattr(r, attr) is not None]
        return pick(values) if values else None

    offsets = [r.clock_offset_ms for r in rows if r.clock_offset_ms is not None]
    return RollupRow(
        exchange=exchange,
        probe=None,
        minute=minute,
        attempts=attempts,
        errors=sum(r.errors for r in rows),
        timeouts=sum(r.timeouts for r in rows),
        outcomes=outcomes,
        p50_ms=weighted("p50_ms"),
        p95_ms=worst("p95_ms"),
        p99_ms=worst("p99_ms"),
        min_ms=worst("min_ms", min),
        max_ms=worst("max_ms"),
        mean_ms=weighted("mean_ms"),
        peak_usage=worst("peak_usage"),
        clock_offset_ms=max(offsets, key=abs) if offsets else None,
    )


# --- incidents ----------------------------------------------------------------------------------

INCIDENT_COLUMNS = (
    "id, fingerprint, rule, severity, exchange, probe, state, summary, started_at, updated_at, resolved_at, "
    "acknowledged_by, acknowledged_at, ack_note, silenced_by, silenced_until, in_maintenance, flapping, "
    "reopen_count, last_error, ban_until, labels, peak, counts, evidence"
)


def incident_to_row(i: Incident) -> tuple[Any, ...]:
    return (
        i.id,
        i.fingerprint,
        i.rule,
        i.severity.value,
        i.exchange,
        i.probe,
        i.state.value,
        i.summary,
        i.started_at,
        i.updated_at,
        i.resolved_at,
        i.acknowledged_by,
        i.acknowledged_at,
        i.ack_note,
        i.silenced_by,
        i.silenced_until,
        int(i.in_maintenance),
        int(i.flapping),
        i.reopen_count,
        i.last_error,
        i.ban_until,
        dumps(i.labels),
        dumps(i.peak),
        dumps(i.counts),
        dumps(list(i.evidence)),
    )


def incident_from_row(row: tuple[Any, ...], timeline: tuple[TimelineEntry, ...] = ()) -> Incident:
    return Incident(
        id=row[0],
        fingerprint=row[1],
        rule=row[2],
        severity=Severity(row[3]),
        exchange=row[4],
        probe=row[5],
        state=IncidentState(row[6]),
        summary=row[7],
        started_at=float(row[8]),
        updated_at=float(row[9]),
        resolved_at=row[10],
        acknowledged_by=row[11],
        acknowledged_at=row[12],
        ack_note=row[13],
        silenced_by=row[14],
        silenced_until=row[15],
        in_maintenance=bool(row[16]),
        flapping=bool(row[17]),
        reopen_count=int(row[18]),
        last_error=row[19],
        ban_until=row[20],
        labels=json.loads(row[21]),
        peak=json.loads(row[22]),
        counts=json.loads(row[23]),
        evidence=tuple(json.loads(row[24])),
        timeline=timeline,
    )


def timeline_to_rows(i: Incident) -> list[tuple[Any, ...]]:
    return [(i.id, seq, t.ts, t.kind, t.text, dumps(t.data)) for seq, t in enumerate(i.timeline)]


def timeline_from_row(row: tuple[Any, ...]) -> TimelineEntry:
    # row: ts, kind, text, data
    return TimelineEntry(ts=float(row[0]), kind=row[1], text=row[2], data=json.loads(row[3]) if row[3] else {})


# --- silences and maintenance windows -----------------------------------------------------------

SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at"


def silence_to_row(s: Silence) -> tuple[Any, ...]:
    return (
        s.id,
        dumps([m.to_dict() for m in s.matchers]),
        s.starts_at,
        s.ends_at,
        s.created_by,
        s.comment,
        s.created_at,
        s.expired_at,
    )


def matcher_from_dict(d: dict[str, Any]) -> Matcher:
    return Matcher(
        name=str(d["name"]),
        value=str(d["value"]),
        is_regex=bool(d.get("is_regex", False)),
        is_equal=bool(d.get("is_equal", True)),
    )


def _stored_span(starts: Any, ends: Any) -> tuple[float, float | None]:
    """A stored (start, end) made finite and bounded on load: a row written before the bounds existed (an end
    in the year 33715, NaN, inf) must not break every snapshot after a restart. Such an end becomes start + 90
    days (the longest silence one can make now); an unusable start becomes the epoch (long over)."""
    start = plausible_epoch(_number(starts)) or 0.0
    if ends is None:
        return start, None
    end = plausible_epoch(_number(ends))
    if end is None or end - start > MAX_SILENCE_S:
        end = start + MAX_SILENCE_S
    return start, end


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def silence_from_row(row: tuple[Any, ...]) -> Silence:
    starts, ends = _stored_span(row[2], row[3])
    return Silence(
        id=row[0],
        matchers=tuple(matcher_from_dict(m) for m in json.loads(row[1])),
        starts_at=starts,
        ends_at=ends,
        created_by=row[4],
        comment=row[5],
        created_at=plausible_epoch(_number(row[6])) or starts,
        expired_at=None if row[7] is None else plausible_epoch(_number(row[7])) or starts,
    )


def _time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return parse_iso_utc(str(value))


def silence_from_dict(d: dict[str, Any]) -> Silence:
    """Inverse of ``Silence.to_dict`` (ISO times) — how silences travel in commands and events."""
    starts = _time(d["starts_at"])
    created = _time(d.get("created_at", d["starts_at"]))
    assert starts is not None and created is not None
    return Silence(
        id=str(d["id"]),
        matchers=tuple(matcher_from_dict(m) for m in d.get("matchers", [])),
        starts_at=starts,
        ends_at=_time(d.get("ends_at")),
        created_by=str(d.get("created_by", "")),
        comment=str(d.get("comment", "")),
        created_at=created,
        expired_at=_time(d.get("expired_at")),
    )


WINDOW_COLUMNS = "id, exchange, starts_at, ends_at, comment, recurrence, timezone, created_by"
_WINDOW_FIELDS = {f.name for f in fields(MaintenanceWindow)}


def window_to_row(w: MaintenanceWindow) -> tuple[Any, ...]:
    return (
        w.id,
        w.exchange,
        w.starts_at,
        w.ends_at,
        w.comment,
        w.recurrence,
        getattr(w, "timezone", "UTC"),
        getattr(w, "created_by", None),
    )


def _window(**values: Any) -> MaintenanceWindow:
    # tolerate model versions with or without timezone/created_by
    return MaintenanceWindow(**{k: v for k, v in values.items() if k in _WINDOW_FIELDS})


def window_from_row(row: tuple[Any, ...]) -> MaintenanceWindow:
    starts, ends = _stored_span(row[2], row[3])
    return _window(
        id=row[0],
        exchange=row[1],
        starts_at=starts,
        ends_at=starts if ends is None else max(starts, ends),
        comment=row[4],
        recurrence=row[5],
        timezone=row[6] or "UTC",
        created_by=row[7],
    )


def window_from_dict(d: dict[str, Any]) -> MaintenanceWindow:
    starts, ends = _time(d["starts_at"]), _time(d["ends_at"])
    assert starts is not None and ends is not None
    return _window(
        id=str(d["id"]),
        exchange=d.get("exchange"),
        starts_at=starts,
        ends_at=ends,
        comment=str(d.get("comment", "")),
        recurrence=d.get("recurrence"),
        timezone=str(d.get("timezone") or "UTC"),
        created_by=d.get("created_by"),
    )


# --- outbox, analyses, LLM usage, commands ------------------------------------------------------

OUTBOX_COLUMNS = (
    "id, idempotency_key, channel, incident_id, fingerprint, event, payload, state, attempts, "
    "next_attempt_at, last_error, last_attempt_at, created_at, sent_at"
)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    idempotency_key: str
    channel: str
    incident_id: str | None
    fingerprint: str | None
    event: str
    payload: dict[str, Any]
    state: str  # pending, sending, sent, dead
    attempts: int
    next_attempt_at: float
    last_error: str | None
    last_attempt_at: float | None
    created_at: float
    sent_at: float | None


def outbox_from_row(row: tuple[Any, ...]) -> OutboxMessage:
    return OutboxMessage(
        id=int(row[0]),
        idempotency_key=row[1],
        channel=row[2],
        incident_id=row[3],
        fingerprint=row[4],
        event=row[5],
        payload=json.loads(row[6]),
        state=row[7],
        attempts=int(row[8]),
        next_attempt_at=float(row[9]),
        last_error=row[10],
        last_attempt_at=row[11],
        created_at=float(row[12]),
        sent_at=row[13],
    )


@dataclass(frozen=True, slots=True)
class OutboxChannelStats:
    channel: str
    pending: int = 0
    sending: int = 0
    sent: int = 0
    dead: int = 0
    failed_attempts: int = 0  # attempts beyond the first, over messages still stored
    last_sent_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass(frozen=True, slots=True)
class NotificationLogEntry:
    incident_id: str
    channel: str
    fingerprint: str | None
    fired_notified: bool
    fired_at: float | None
    resolved_notified: bool
    resolved_at: float | None


@dataclass(frozen=True, slots=True)
class AnalysisRecord:
    id: int
    incident_id: str
    created_at: float
    source: str  # "offline" or the model name
    model: str | None
    result: dict[str, Any]
    cost_usd: Decimal | None


@dataclass(frozen=True, slots=True)
class LlmUsageRecord:
    id: int
    ts: float
    model: str
    provider: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    incident_id: str | None
    purpose: str | None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    id: int
    ts: float
    kind: str  # ack, silence, unsilence, maintenance_add, maintenance_remove
    payload: dict[str, Any]
    done_at: float | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class StoredState:
    """What ``IncidentManager.restore`` needs after a restart."""

    open_incidents: list[Incident] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = field(default_factory=list)
    recently_resolved: list[Incident] = field(default_factory=list)  # within the reopen cool-down
