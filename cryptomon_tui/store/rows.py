"""Typed rows the repositories return, and the (de)serialisation of the shared contracts.

Times are stored as epoch seconds (REAL) rather than ISO text: exact round trips, cheap
range queries. JSON columns hold the dict/list fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TypedDict

from cryptomon_tui.incidents.model import (
    Incident,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
    TimelineEntry,
)
from cryptomon_tui.kernel.jsonvalue import (
    JsonArray,
    JsonObject,
    JsonValue,
    as_array,
    as_object,
    finite,
    get_flag,
    get_text,
    integer,
)
from cryptomon_tui.kernel.results import BreakerState, Outcome, Phases, ProbeResult
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import MAX_SILENCE_S, parse_iso_utc, plausible_epoch
from cryptomon_tui.metrics.series import Rollup
from cryptomon_tui.store.sql import (
    SqlRow,
    SqlValue,
    sql_int,
    sql_json,
    sql_opt_text,
    sql_real,
    sql_text,
)


def dumps(value: object) -> str:
    """Compact, key-sorted JSON for a JSON column (anything not JSON is written as its ``str``)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


# --- probe results ----------------------------------------------------------------------------

RESULT_COLUMNS = (
    "ts, exchange, probe, outcome, latency_ms, http_status, error_code, error_message, "
    "rate_limit_used, clock_offset_ms, extra"
)


def result_to_row(r: ProbeResult) -> SqlRow:
    extra: JsonObject = {}
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


_OUTCOMES = {o.value: o for o in Outcome}
_BREAKERS = {b.value: b for b in BreakerState}


def _object(value: JsonValue) -> JsonObject:
    """A parsed JSON column as an object ({} when it is none): json.loads only makes string keys, so the
    isinstance check is the whole narrowing (cheaper than ``as_object`` on every row of an export)."""
    return value if isinstance(value, dict) else {}


def _ms(value: object) -> float | None:
    """``finite`` with fast paths for what a stored measurement almost always is: a plain float, or absent."""
    if value is None:
        return None
    if type(value) is float:
        return value if value - value == 0.0 else None  # NaN and +-inf fail x - x == 0
    return finite(value)


def _phases(value: JsonValue) -> Phases | None:
    if not isinstance(value, dict):
        return None
    get = value.get
    return Phases(
        dns_ms=_ms(get("dns_ms")),
        connect_ms=_ms(get("connect_ms")),
        tls_ms=_ms(get("tls_ms")),
        ttfb_ms=_ms(get("ttfb_ms")),
        transfer_ms=_ms(get("transfer_ms")),
        reused=get_flag(value, "reused"),
    )


def result_from_row(row: SqlRow) -> ProbeResult:
    """A stored result; a damaged column reads as absent (an unknown outcome as an exchange error)."""
    ts, exchange, probe, outcome, latency, status, code, message, usage, offset, extra_text = row
    extra = _object(sql_json(extra_text)) if extra_text else {}
    breaker = extra.get("breaker")
    return ProbeResult(
        exchange=sql_text(exchange),
        probe=sql_text(probe),
        started_at=_ms(ts) or 0.0,
        latency_ms=_ms(latency),
        outcome=_OUTCOMES.get(outcome, Outcome.EXCHANGE_ERROR) if isinstance(outcome, str) else Outcome.EXCHANGE_ERROR,
        http_status=integer(status),
        error_code=sql_opt_text(code),
        error_message=sql_opt_text(message),
        rate_limit_used=_ms(usage),
        clock_offset_ms=_ms(offset),
        clock_error_ms=_ms(extra.get("clock_error_ms")),
        retry_after_s=_ms(extra.get("retry_after_s")),
        ban_until=_ms(extra.get("ban_until")),
        maintenance_until=_ms(extra.get("maintenance_until")),
        phases=_phases(extra.get("phases")),
        breaker=_BREAKERS.get(breaker, BreakerState.CLOSED) if isinstance(breaker, str) else BreakerState.CLOSED,
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


def rollup_to_row(r: RollupRow | Rollup) -> SqlRow:
    """A store ``RollupRow`` or metrics' ``Rollup`` (which names outcomes ``counts`` and peak usage
    ``rate_limit_peak``); upserted per (exchange, probe, minute)."""
    if isinstance(r, RollupRow):
        outcomes, peak_usage = r.outcomes, r.peak_usage
    else:
        outcomes, peak_usage = r.counts, r.rate_limit_peak
    return (
        r.exchange,
        r.probe or "",
        int(float(r.minute) // 60 * 60),
        int(r.attempts),
        int(r.errors),
        int(r.timeouts),
        dumps({str(k): int(v) for k, v in outcomes.items()}),
        r.p50_ms,
        r.p95_ms,
        r.p99_ms,
        r.min_ms,
        r.max_ms,
        r.mean_ms,
        peak_usage,
        r.clock_offset_ms,
    )


ROLLUP_COLUMNS = (
    "exchange, probe, minute, attempts, errors, timeouts, outcomes, p50_ms, p95_ms, p99_ms, "
    "min_ms, max_ms, mean_ms, peak_usage, clock_offset_ms"
)


def _counts(value: JsonValue) -> dict[str, int]:
    """A stored ``{name: count}`` object; entries that are no integer are left out."""
    obj = as_object(value) or {}
    return {k: n for k, v in obj.items() if (n := integer(v)) is not None}


def rollup_from_row(row: SqlRow) -> RollupRow:
    return RollupRow(
        exchange=sql_text(row[0]),
        probe=sql_opt_text(row[1]) or None,
        minute=sql_int(row[2]),
        attempts=sql_int(row[3]),
        errors=sql_int(row[4]),
        timeouts=sql_int(row[5]),
        outcomes=_counts(sql_json(row[6])),
        p50_ms=finite(row[7]),
        p95_ms=finite(row[8]),
        p99_ms=finite(row[9]),
        min_ms=finite(row[10]),
        max_ms=finite(row[11]),
        mean_ms=finite(row[12]),
        peak_usage=finite(row[13]),
        clock_offset_ms=finite(row[14]),
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

    def weighted(field_of: Callable[[RollupRow], float | None]) -> float | None:
        pairs = [(v, r.attempts) for r in rows if (v := field_of(r)) is not None]
        weight = sum(w for _, w in pairs)
        if not pairs:
            return None
        if weight == 0:
            return sum(v for v, _ in pairs) / len(pairs)
        return sum(v * w for v, w in pairs) / weight

    def worst(field_of: Callable[[RollupRow], float | None], lowest: bool = False) -> float | None:
        values = [v for r in rows if (v := field_of(r)) is not None]
        if not values:
            return None
        return min(values) if lowest else max(values)

    offsets = [r.clock_offset_ms for r in rows if r.clock_offset_ms is not None]
    return RollupRow(
        exchange=exchange,
        probe=None,
        minute=minute,
        attempts=attempts,
        errors=sum(r.errors for r in rows),
        timeouts=sum(r.timeouts for r in rows),
        outcomes=outcomes,
        p50_ms=weighted(lambda r: r.p50_ms),
        p95_ms=worst(lambda r: r.p95_ms),
        p99_ms=worst(lambda r: r.p99_ms),
        min_ms=worst(lambda r: r.min_ms, lowest=True),
        max_ms=worst(lambda r: r.max_ms),
        mean_ms=weighted(lambda r: r.mean_ms),
        peak_usage=worst(lambda r: r.peak_usage),
        clock_offset_ms=max(offsets, key=abs) if offsets else None,
    )


# --- incidents ----------------------------------------------------------------------------------

INCIDENT_COLUMNS = (
    "id, fingerprint, rule, severity, exchange, probe, state, summary, started_at, updated_at, resolved_at, "
    "acknowledged_by, acknowledged_at, ack_note, silenced_by, silenced_until, in_maintenance, flapping, "
    "reopen_count, last_error, ban_until, labels, peak, counts, evidence"
)


def incident_to_row(i: Incident) -> SqlRow:
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


_SEVERITIES = {s.value: s for s in Severity}
_STATES = {s.value: s for s in IncidentState}


def incident_from_row(row: SqlRow, timeline: tuple[TimelineEntry, ...] = ()) -> Incident | None:
    """A stored incident, or None when the row has no id. Damaged columns degrade instead of failing the
    whole read: an unknown severity reads as warning, an unknown state as firing (still open, so the
    restored manager re-judges it and writes it back clean), unreadable JSON as empty, bad times as absent."""
    incident_id = sql_opt_text(row[0])
    if not incident_id:
        return None
    severity, state = row[3], row[6]
    labels = as_object(sql_json(row[21])) or {}
    peak = as_object(sql_json(row[22])) or {}
    started = sql_real(row[8])
    return Incident(
        id=incident_id,
        fingerprint=sql_text(row[1]),
        rule=sql_text(row[2]),
        severity=_SEVERITIES.get(severity, Severity.WARNING) if isinstance(severity, str) else Severity.WARNING,
        exchange=sql_opt_text(row[4]),
        probe=sql_opt_text(row[5]),
        state=_STATES.get(state, IncidentState.FIRING) if isinstance(state, str) else IncidentState.FIRING,
        summary=sql_text(row[7]),
        started_at=started,
        updated_at=sql_real(row[9], started),
        resolved_at=finite(row[10]),
        acknowledged_by=sql_opt_text(row[11]),
        acknowledged_at=finite(row[12]),
        ack_note=sql_opt_text(row[13]),
        silenced_by=sql_opt_text(row[14]),
        silenced_until=finite(row[15]),
        in_maintenance=bool(sql_int(row[16])),
        flapping=bool(sql_int(row[17])),
        reopen_count=sql_int(row[18]),
        last_error=sql_opt_text(row[19]),
        ban_until=finite(row[20]),
        labels={k: v for k, v in labels.items() if isinstance(v, str)},
        peak={k: n for k, v in peak.items() if (n := finite(v)) is not None},
        counts=_counts(sql_json(row[23])),
        evidence=tuple(e for e in as_array(sql_json(row[24])) or () if isinstance(e, str)),
        timeline=timeline,
    )


def timeline_to_rows(i: Incident) -> list[SqlRow]:
    return [(i.id, seq, t.ts, t.kind, t.text, dumps(t.data)) for seq, t in enumerate(i.timeline)]


def timeline_from_row(row: SqlRow) -> TimelineEntry:
    # row: ts, kind, text, data
    return TimelineEntry(
        ts=sql_real(row[0]), kind=sql_text(row[1]), text=sql_text(row[2]), data=as_object(sql_json(row[3])) or {}
    )


# --- silences and maintenance windows -----------------------------------------------------------

SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at"


def silence_to_row(s: Silence) -> SqlRow:
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


def _matcher_text(d: Mapping[str, object], key: str) -> str:
    value = d.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"a matcher needs a text {key!r}")


def matcher_from_dict(d: Mapping[str, object]) -> Matcher:
    """Inverse of ``Matcher.to_dict``; ValueError when name or value is missing (a flag that is no JSON
    boolean reads as its default)."""
    is_regex, is_equal = get_flag(d, "is_regex"), get_flag(d, "is_equal")
    return Matcher(
        name=_matcher_text(d, "name"),
        value=_matcher_text(d, "value"),
        is_regex=False if is_regex is None else is_regex,
        is_equal=True if is_equal is None else is_equal,
    )


def _stored_span(starts: SqlValue, ends: SqlValue) -> tuple[float, float | None]:
    """A stored (start, end) made finite and bounded on load: a row written before the bounds existed (an end
    in the year 33715, NaN, inf) must not break every snapshot after a restart. Such an end becomes start + 90
    days (the longest silence one can make now); an unusable start becomes the epoch (long over)."""
    start = plausible_epoch(finite(starts)) or 0.0
    if ends is None:
        return start, None
    end = plausible_epoch(finite(ends))
    if end is None or end - start > MAX_SILENCE_S:
        end = start + MAX_SILENCE_S
    return start, end


def silence_from_row(row: SqlRow) -> Silence | None:
    """A stored silence, or None when its id or any of its matchers is unreadable: a silence that lost a
    matcher would match more than it was made for, so it is dropped (incidents alert) rather than widened."""
    silence_id = sql_opt_text(row[0])
    matchers = as_array(sql_json(row[1]))
    if not silence_id or matchers is None:
        return None
    try:
        parsed = tuple(matcher_from_dict(m) for m in _all_objects(matchers))
    except ValueError:
        return None
    starts, ends = _stored_span(row[2], row[3])
    return Silence(
        id=silence_id,
        matchers=parsed,
        starts_at=starts,
        ends_at=ends,
        created_by=sql_text(row[4]),
        comment=sql_text(row[5]),
        created_at=plausible_epoch(finite(row[6])) or starts,
        expired_at=None if row[7] is None else plausible_epoch(finite(row[7])) or starts,
    )


def _all_objects(items: JsonArray) -> list[JsonObject]:
    """Every element as a JSON object; ValueError when one is not."""
    out = [o for item in items if (o := as_object(item)) is not None]
    if len(out) != len(items):
        raise ValueError("a matcher is not an object")
    return out


def _time(value: object) -> float | None:
    """A time from a command or an answer: epoch seconds or ISO text; None only when absent (a present but
    unusable time is a ValueError, never read as "no end")."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = finite(value)
        if number is None:
            raise ValueError(f"{value!r} is not a usable time")
        return number
    if isinstance(value, str):
        return parse_iso_utc(value)
    raise ValueError(f"{value!r} is not a time")


def _required_time(d: Mapping[str, object], key: str, fallback: str | None = None) -> float:
    value = d.get(key) if key in d or fallback is None else d.get(fallback)
    at = _time(value)
    if at is None:
        raise ValueError(f"{key} is missing")
    return at


def silence_from_dict(d: object) -> Silence:
    """Inverse of ``Silence.to_dict`` (ISO times) — how silences travel in commands and events.
    ValueError when ``d`` is no silence (no object, no id, no start, a matcher without name or value)."""
    obj = as_object(d)
    if obj is None:
        raise ValueError("a silence must be a JSON object")
    silence_id = get_text(obj, "id")
    if silence_id is None:
        raise ValueError("a silence needs an id")
    raw_matchers = obj.get("matchers", [])
    if not isinstance(raw_matchers, list):
        raise ValueError("a silence's matchers must be a list")
    matchers = _all_objects(raw_matchers)
    return Silence(
        id=silence_id,
        matchers=tuple(matcher_from_dict(m) for m in matchers),
        starts_at=_required_time(obj, "starts_at"),
        ends_at=_time(obj.get("ends_at")),
        created_by=get_text(obj, "created_by") or "",
        comment=get_text(obj, "comment") or "",
        created_at=_required_time(obj, "created_at", fallback="starts_at"),
        expired_at=_time(obj.get("expired_at")),
    )


WINDOW_COLUMNS = "id, exchange, starts_at, ends_at, comment, recurrence, timezone, created_by"


def window_to_row(w: MaintenanceWindow) -> SqlRow:
    return (w.id, w.exchange, w.starts_at, w.ends_at, w.comment, w.recurrence, w.timezone, w.created_by)


def window_from_row(row: SqlRow) -> MaintenanceWindow | None:
    """A stored window, or None when it has no id."""
    window_id = sql_opt_text(row[0])
    if not window_id:
        return None
    starts, ends = _stored_span(row[2], row[3])
    return MaintenanceWindow(
        id=window_id,
        exchange=sql_opt_text(row[1]),
        starts_at=starts,
        ends_at=starts if ends is None else max(starts, ends),
        comment=sql_text(row[4]),
        recurrence=sql_opt_text(row[5]),
        timezone=sql_opt_text(row[6]) or "UTC",
        created_by=sql_opt_text(row[7]),
    )


def window_from_dict(d: object) -> MaintenanceWindow:
    """Inverse of ``MaintenanceWindow.to_dict``; ValueError when ``d`` is no window."""
    obj = as_object(d)
    if obj is None:
        raise ValueError("a maintenance window must be a JSON object")
    window_id = get_text(obj, "id")
    if window_id is None:
        raise ValueError("a maintenance window needs an id")
    return MaintenanceWindow(
        id=window_id,
        exchange=get_text(obj, "exchange"),
        starts_at=_required_time(obj, "starts_at"),
        ends_at=_required_time(obj, "ends_at"),
        comment=get_text(obj, "comment") or "",
        recurrence=get_text(obj, "recurrence"),
        timezone=get_text(obj, "timezone") or "UTC",
        created_by=get_text(obj, "created_by"),
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
    payload: JsonObject
    state: str  # pending, sending, sent, dead
    attempts: int
    next_attempt_at: float
    last_error: str | None
    last_attempt_at: float | None
    created_at: float
    sent_at: float | None


def outbox_from_row(row: SqlRow) -> OutboxMessage:
    """A stored outbox row; an unreadable payload reads as ``{}`` (the sender then has nothing to say and
    the message fails visibly, instead of the whole claim failing)."""
    return OutboxMessage(
        id=sql_int(row[0]),
        idempotency_key=sql_text(row[1]),
        channel=sql_text(row[2]),
        incident_id=sql_opt_text(row[3]),
        fingerprint=sql_opt_text(row[4]),
        event=sql_text(row[5]),
        payload=as_object(sql_json(row[6])) or {},
        state=sql_text(row[7]),
        attempts=sql_int(row[8]),
        next_attempt_at=sql_real(row[9]),
        last_error=sql_opt_text(row[10]),
        last_attempt_at=finite(row[11]),
        created_at=sql_real(row[12]),
        sent_at=finite(row[13]),
    )


class NewOutboxMessage(TypedDict):
    """One row for ``Store.notify_enqueue`` (the outbox columns a writer chooses)."""

    idempotency_key: str
    channel: str
    incident_id: str | None
    fingerprint: str | None
    event: str
    payload: JsonObject
    next_attempt_at: float


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
    result: JsonObject
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
    payload: JsonObject
    done_at: float | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class StoredState:
    """What ``IncidentManager.restore`` needs after a restart."""

    open_incidents: list[Incident] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    maintenance_windows: list[MaintenanceWindow] = field(default_factory=list)
    recently_resolved: list[Incident] = field(default_factory=list)  # within the reopen cool-down


# --- decoding the record rows -------------------------------------------------------------------


def sql_decimal(value: SqlValue) -> Decimal | None:
    """Money stored as Decimal text; anything else (or NaN/infinity) reads as None."""
    if not isinstance(value, str | int):
        return None
    try:
        number = Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def analysis_from_row(row: SqlRow) -> AnalysisRecord:
    # row: id, incident_id, created_at, source, model, result, cost_usd
    return AnalysisRecord(
        id=sql_int(row[0]),
        incident_id=sql_text(row[1]),
        created_at=sql_real(row[2]),
        source=sql_text(row[3]),
        model=sql_opt_text(row[4]),
        result=as_object(sql_json(row[5])) or {},
        cost_usd=sql_decimal(row[6]),
    )


def usage_from_row(row: SqlRow) -> LlmUsageRecord | None:
    """row: id, ts, model, provider, tokens_in, tokens_out, cost_usd, incident_id, purpose. None when the cost is
    unreadable (a ledger entry without its money is no entry; it never turns into a cost of 0)."""
    cost = sql_decimal(row[6])
    if cost is None:
        return None
    return LlmUsageRecord(
        id=sql_int(row[0]),
        ts=sql_real(row[1]),
        model=sql_text(row[2]),
        provider=sql_opt_text(row[3]),
        tokens_in=sql_int(row[4]),
        tokens_out=sql_int(row[5]),
        cost_usd=cost,
        incident_id=sql_opt_text(row[7]),
        purpose=sql_opt_text(row[8]),
    )


def command_from_row(row: SqlRow) -> CommandRecord:
    """row: id, ts, kind, payload[, done_at, result]; an unreadable payload reads as ``{}`` (the command is then
    skipped with a reason, see ``store.commands``)."""
    return CommandRecord(
        id=sql_int(row[0]),
        ts=sql_real(row[1]),
        kind=sql_text(row[2]),
        payload=as_object(sql_json(row[3])) or {},
        done_at=finite(row[4]) if len(row) > 4 else None,
        result=sql_opt_text(row[5]) if len(row) > 5 else None,
    )


def log_entry_from_row(row: SqlRow) -> NotificationLogEntry:
    # row: incident_id, channel, fingerprint, fired_notified, fired_at, resolved_notified, resolved_at
    return NotificationLogEntry(
        incident_id=sql_text(row[0]),
        channel=sql_text(row[1]),
        fingerprint=sql_opt_text(row[2]),
        fired_notified=bool(sql_int(row[3])),
        fired_at=finite(row[4]),
        resolved_notified=bool(sql_int(row[5])),
        resolved_at=finite(row[6]),
    )
