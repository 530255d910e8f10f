"""The typed snapshot: everything a face draws, as the engine builds it and as the control API carries it.

The engine builds these views; the daemon sends ``Snapshot.to_wire()`` in its ``snapshot`` frames and
replies; faces (UI, ``cryptomon status``, /metrics) read them. ``from_wire`` reads untrusted input (a frame
from another process) and never raises: a hostile value degrades to its default (see ``kernel.wire``), so
a snapshot with one bad field still shows the rest. Unknown keys are ignored.

Conventions: times are ISO-8601 UTC strings as the engine writes them (``kernel.units.iso_utc``) unless a
name ends in ``_s``/``_ms`` or the field says "epoch"; ``None`` means "not known (yet)". Enumerations that
may grow (outcomes, statuses, states) stay strings so a newer daemon's value is shown, not dropped.

Versioning (``SCHEMA_VERSION``, the ``"schema"`` key of a snapshot and an event): adding a key or a value
keeps the number (older faces ignore what they do not know, and read a missing key as its default); renaming
or removing a key, or changing its type or meaning, bumps it. A face that meets a higher number than its own
says so (``schema_problem``) instead of drawing a misread screen. A snapshot without the key is schema 1 (the
untyped dicts before this model), which has the same keys and reads fine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptomon_tui.kernel.jsonvalue import JsonObject, finite, integer, text
from cryptomon_tui.kernel.results import Phases
from cryptomon_tui.kernel.wire import INT_MAX, ITEMS_MAX, NAME_MAX, NUM_MAX, TEXT_MAX, Reader

SCHEMA_VERSION = 2

# a probe's extra facts (key permissions, TLS facts): scalars and short lists of scalars
FactScalar = str | int | bool
FactValue = str | int | float | bool | None | tuple[FactScalar, ...]


def schema_problem(schema: int, face: int = SCHEMA_VERSION) -> str | None:
    """The message a face shows when the daemon speaks a newer schema than it reads; None when it is fine."""
    if schema <= face:
        return None
    return f"daemon speaks schema {schema}, this face {face}: upgrade cryptomon here (or run the same version)"


def _schema(r: Reader) -> int:
    return r.count("schema", 1)


# ----------------------------------------------------------------------------------------------- probes
def phases_from_wire(value: object) -> Phases:
    """A result's phases (``Phases.as_dict()``) read from a frame; a hostile entry reads as None."""
    r = Reader(value)
    return Phases(r.opt_number("dns_ms"), r.opt_number("connect_ms"), r.opt_number("tls_ms"),
                  r.opt_number("ttfb_ms"), r.opt_number("transfer_ms"), r.opt_flag("reused"))


@dataclass(frozen=True, slots=True)
class ProbeResultView:
    """One probe result (``ProbeResult.to_json_dict()``, the ``--probes-jsonl`` shape)."""

    ts: str | None = None  # when the request was sent
    exchange: str = ""
    probe: str = ""
    latency_ms: float | None = None  # None for timeouts and skipped probes
    outcome: str = "ok"  # kernel.results.Outcome value
    http_status: int | None = None
    error_code: str | None = None  # the exchange's own error code
    error_message: str | None = None
    rate_limit_used: float | None = None  # share of the exchange's limit in use, 0..1
    clock_offset_ms: float | None = None  # exchange time - local time
    clock_error_ms: float | None = None  # bound on that estimate (half the round trip)
    retry_after_s: float | None = None
    ban_until: str | None = None
    maintenance_until: str | None = None
    phases: Phases | None = None  # /metrics exports them as probe_http_duration_seconds{phase}
    breaker: str = "closed"  # the breaker state when the probe ran

    def to_wire(self) -> JsonObject:
        return {
            "ts": self.ts, "exchange": self.exchange, "probe": self.probe, "latency_ms": self.latency_ms,
            "outcome": self.outcome, "http_status": self.http_status, "error_code": self.error_code,
            "error_message": self.error_message, "rate_limit_used": self.rate_limit_used,
            "clock_offset_ms": self.clock_offset_ms, "clock_error_ms": self.clock_error_ms,
            "retry_after_s": self.retry_after_s, "ban_until": self.ban_until,
            "maintenance_until": self.maintenance_until,
            "phases": None if self.phases is None else self.phases.as_dict(), "breaker": self.breaker,
        }

    @classmethod
    def from_wire(cls, value: object) -> ProbeResultView:
        r = Reader(value)
        phases = r.raw("phases")
        return cls(
            ts=r.time("ts"), exchange=r.string("exchange"), probe=r.string("probe"),
            latency_ms=r.opt_number("latency_ms"), outcome=r.string("outcome", "ok"),
            http_status=r.opt_count("http_status"), error_code=r.opt_str("error_code", NAME_MAX),
            error_message=r.opt_str("error_message"), rate_limit_used=r.opt_number("rate_limit_used"),
            clock_offset_ms=r.opt_number("clock_offset_ms"), clock_error_ms=r.opt_number("clock_error_ms"),
            retry_after_s=r.opt_number("retry_after_s"), ban_until=r.time("ban_until"),
            maintenance_until=r.time("maintenance_until"),
            phases=phases_from_wire(phases) if isinstance(phases, dict) else None,
            breaker=r.string("breaker", "closed"),
        )


def _fact(value: object) -> FactValue:
    if value is None or isinstance(value, bool | str):
        return value[:TEXT_MAX] if isinstance(value, str) else value
    if isinstance(value, int):
        return integer(value, -INT_MAX, INT_MAX)
    if isinstance(value, float):
        return finite(value, -NUM_MAX, NUM_MAX)
    if isinstance(value, list):
        out: list[FactScalar] = []
        for v in value[:ITEMS_MAX]:
            if isinstance(v, bool | str):
                out.append(v[:TEXT_MAX] if isinstance(v, str) else v)
            elif isinstance(v, int) and (n := integer(v, -INT_MAX, INT_MAX)) is not None:
                out.append(n)
        return tuple(out)
    return None


@dataclass(frozen=True, slots=True)
class ProbeView:
    """One probe (ping, time, status, ticker, book, account, ...) of one exchange over the rolling window."""

    last: ProbeResultView | None = None  # the newest result, None before the first
    facts: Mapping[str, FactValue] = field(default_factory=dict)  # what it learnt besides its outcome
    attempts: int = 0  # probes actually sent in the window
    error_rate: float = 0.0  # 0..1
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    timeouts: int = 0  # in the window
    counts: Mapping[str, int] = field(default_factory=dict)  # by Outcome value, in the window
    last_error_code: str | None = None
    last_error_message: str | None = None
    consecutive_failures: int = 0  # failed attempts in a row right now (0 after a success)

    def to_wire(self) -> JsonObject:
        facts: JsonObject = {k: list(v) if isinstance(v, tuple) else v for k, v in self.facts.items()}
        return {
            "last": None if self.last is None else self.last.to_wire(), "facts": facts,
            "attempts": self.attempts, "error_rate": self.error_rate, "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms, "p99_ms": self.p99_ms, "timeouts": self.timeouts, "counts": dict(self.counts),
            "last_error_code": self.last_error_code, "last_error_message": self.last_error_message,
            "consecutive_failures": self.consecutive_failures,
        }

    @classmethod
    def from_wire(cls, value: object) -> ProbeView:
        r = Reader(value)
        last = r.raw("last")
        return cls(
            last=ProbeResultView.from_wire(last) if isinstance(last, dict) else None,
            facts={k: _fact(v) for k, v in r.entries("facts")},
            attempts=r.count("attempts"), error_rate=r.number("error_rate"), p50_ms=r.opt_number("p50_ms"),
            p95_ms=r.opt_number("p95_ms"), p99_ms=r.opt_number("p99_ms"), timeouts=r.count("timeouts"),
            counts=r.int_map("counts"), last_error_code=r.opt_str("last_error_code", NAME_MAX),
            last_error_message=r.opt_str("last_error_message"),
            consecutive_failures=r.count("consecutive_failures"),
        )


# -------------------------------------------------------------------------------------------- exchanges
@dataclass(frozen=True, slots=True)
class BreakerView:
    state: str = "closed"  # closed | open | half_open
    next_trial_at: str | None = None  # when an open breaker lets one trial through

    def to_wire(self) -> JsonObject:
        return {"state": self.state, "next_trial_at": self.next_trial_at}

    @classmethod
    def from_wire(cls, value: object) -> BreakerView:
        r = Reader(value)
        return cls(r.string("state", "closed"), r.time("next_trial_at"))


@dataclass(frozen=True, slots=True)
class BackoffView:
    """The monitor's own pause after a 429/418 (it must never be the cause of a ban)."""

    paused: bool = False
    paused_until: str | None = None
    reason: str | None = None
    outcome: str | None = None  # the outcome that started the pause (only while paused)
    strikes: int = 0  # pauses in a row (each one longer)

    def to_wire(self) -> JsonObject:
        out: JsonObject = {"paused": self.paused, "paused_until": self.paused_until, "reason": self.reason}
        if self.outcome is not None:
            out["outcome"] = self.outcome
        out["strikes"] = self.strikes
        return out

    @classmethod
    def from_wire(cls, value: object) -> BackoffView:
        r = Reader(value)
        return cls(r.flag("paused"), r.time("paused_until"), r.opt_str("reason"),
                   r.opt_str("outcome", NAME_MAX), r.count("strikes"))


@dataclass(frozen=True, slots=True)
class TlsHostView:
    """The certificate one host of an exchange presented (a changed issuer may be interception)."""

    host: str = ""
    fingerprint: str = ""
    issuer: str = ""
    days_left: float | None = None  # until the certificate expires (negative: expired)
    known_issuers: tuple[str, ...] = ()
    issuer_changed: bool = False

    def to_wire(self) -> JsonObject:
        return {"host": self.host, "fingerprint": self.fingerprint, "issuer": self.issuer,
                "days_left": self.days_left, "known_issuers": list(self.known_issuers),
                "issuer_changed": self.issuer_changed}

    @classmethod
    def from_wire(cls, value: object) -> TlsHostView:
        r = Reader(value)
        return cls(r.string("host"), r.string("fingerprint"), r.string("issuer", limit=TEXT_MAX),
                   r.opt_number("days_left"), r.strs("known_issuers"), r.flag("issuer_changed"))


@dataclass(frozen=True, slots=True)
class ScheduleLagView:
    """How late the scheduler sent probes (ms) — a busy host shows here before it shows as exchange latency."""

    count: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float = 0.0

    def to_wire(self) -> JsonObject:
        return {"count": self.count, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms, "max_ms": self.max_ms}

    @classmethod
    def from_wire(cls, value: object) -> ScheduleLagView:
        r = Reader(value)
        return cls(r.count("count"), r.opt_number("p50_ms"), r.opt_number("p99_ms"), r.number("max_ms"))


@dataclass(frozen=True, slots=True)
class ExchangeView:
    """One exchange: its status and the aggregate over all its probes in the rolling window."""

    kind: str = ""  # ExchangeConfig.kind, e.g. binance_spot
    status: str = "ok"  # ok | degraded | down | maintenance | banned | paused | error (engine.api)
    tls: tuple[TlsHostView, ...] = ()
    breaker: BreakerView = field(default_factory=BreakerView)
    backoff: BackoffView | None = None  # None: the worker's state is unknown (sent as {})
    paused: bool = False  # paused by a person (`cryptomon pause`)
    rate_limit_used: float | None = None  # share of the exchange's limit in use, 0..1 (latest)
    rate_limit_peak: float | None = None  # highest in the window
    ban_until: str | None = None
    clock_offset_ms: float | None = None  # exchange time - local time
    clock_error_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float = 0.0  # 0..1 over the window, all probes
    attempts: int = 0
    timeouts: int = 0
    consecutive_failures: int = 0
    counts: Mapping[str, int] = field(default_factory=dict)  # by Outcome value
    last_error_code: str | None = None
    last_error_message: str | None = None
    last_error_at: str | None = None
    sparkline: tuple[float | None, ...] = ()  # latencies of recent successful probes, oldest first (ms)
    sparkline_ok: tuple[bool, ...] = ()  # ok/failed of the latest attempts, oldest first
    schedule_lag: ScheduleLagView | None = None
    intervals: Mapping[str, float | None] = field(default_factory=dict)  # effective interval per probe (s)
    probes: Mapping[str, ProbeView] = field(default_factory=dict)
    view_error: str | None = None  # set when the engine could not build this view (status "error")

    def to_wire(self) -> JsonObject:
        out: JsonObject = {
            "kind": self.kind, "status": self.status, "tls": [t.to_wire() for t in self.tls],
            "breaker": self.breaker.to_wire(), "backoff": {} if self.backoff is None else self.backoff.to_wire(),
            "paused": self.paused, "rate_limit_used": self.rate_limit_used, "rate_limit_peak": self.rate_limit_peak,
            "ban_until": self.ban_until, "clock_offset_ms": self.clock_offset_ms,
            "clock_error_ms": self.clock_error_ms, "p50_ms": self.p50_ms, "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms, "error_rate": self.error_rate, "attempts": self.attempts,
            "timeouts": self.timeouts, "consecutive_failures": self.consecutive_failures,
            "counts": dict(self.counts), "last_error_code": self.last_error_code,
            "last_error_message": self.last_error_message, "last_error_at": self.last_error_at,
            "sparkline": list(self.sparkline), "sparkline_ok": list(self.sparkline_ok),
            "schedule_lag": None if self.schedule_lag is None else self.schedule_lag.to_wire(),
            "intervals": dict(self.intervals), "probes": {k: p.to_wire() for k, p in self.probes.items()},
        }
        if self.view_error is not None:
            out["view_error"] = self.view_error
        return out

    @classmethod
    def from_wire(cls, value: object) -> ExchangeView:
        r = Reader(value)
        backoff, lag = r.raw("backoff"), r.raw("schedule_lag")
        # A view without a readable status is not "ok": a face says it cannot show it (status "error").
        status = r.opt_str("status", NAME_MAX)
        view_error = r.opt_str("view_error")
        if status is None:
            status, view_error = "error", view_error or "the daemon's snapshot has no readable status for this exchange"
        return cls(
            kind=r.string("kind"), status=status, tls=r.many("tls", TlsHostView.from_wire),
            breaker=BreakerView.from_wire(r.raw("breaker")),
            backoff=BackoffView.from_wire(backoff) if isinstance(backoff, dict) and backoff else None,
            paused=r.flag("paused"), rate_limit_used=r.opt_number("rate_limit_used"),
            rate_limit_peak=r.opt_number("rate_limit_peak"), ban_until=r.time("ban_until"),
            clock_offset_ms=r.opt_number("clock_offset_ms"), clock_error_ms=r.opt_number("clock_error_ms"),
            p50_ms=r.opt_number("p50_ms"), p95_ms=r.opt_number("p95_ms"), p99_ms=r.opt_number("p99_ms"),
            error_rate=r.number("error_rate"), attempts=r.count("attempts"), timeouts=r.count("timeouts"),
            consecutive_failures=r.count("consecutive_failures"), counts=r.int_map("counts"),
            last_error_code=r.opt_str("last_error_code", NAME_MAX),
            last_error_message=r.opt_str("last_error_message"), last_error_at=r.time("last_error_at"),
            sparkline=tuple(finite(v, -NUM_MAX, NUM_MAX) for v in r.items("sparkline")),
            sparkline_ok=tuple(v for v in r.items("sparkline_ok") if isinstance(v, bool)),
            schedule_lag=ScheduleLagView.from_wire(lag) if isinstance(lag, dict) else None,
            intervals=r.opt_num_map("intervals"), probes=r.keyed("probes", ProbeView.from_wire),
            view_error=view_error,
        )


# -------------------------------------------------------------------------------------------- incidents
@dataclass(frozen=True, slots=True)
class AnalysisResultView:
    """A root-cause analysis attached to an incident (``analysis.model.Analysis`` dumped as JSON)."""

    root_cause: str = ""
    severity: str = ""  # LOW | MEDIUM | HIGH | CRITICAL
    recommended_action: str = ""
    estimated_recovery: str = ""
    confidence: float = 0.0  # 0..1
    evidence: tuple[str, ...] = ()
    incident_id: str | None = None
    category: str | None = None  # the offline rule that matched, e.g. ip_banned
    source: str = ""  # "offline" or the model name
    latency_ms: float = 0.0
    cost_usd: str = "0"  # a decimal string (exact money)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: tuple[str, ...] = ()
    raw_text: str | None = None
    created_at: float | None = None  # epoch seconds

    def to_wire(self) -> JsonObject:
        return {
            "root_cause": self.root_cause, "severity": self.severity, "recommended_action": self.recommended_action,
            "estimated_recovery": self.estimated_recovery, "confidence": self.confidence,
            "evidence": list(self.evidence), "incident_id": self.incident_id, "category": self.category,
            "source": self.source, "latency_ms": self.latency_ms, "cost_usd": self.cost_usd,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "notes": list(self.notes), "raw_text": self.raw_text, "created_at": self.created_at,
        }

    @classmethod
    def from_wire(cls, value: object) -> AnalysisResultView:
        r = Reader(value)
        cost = r.raw("cost_usd")
        cost_text = text(cost, 64) if isinstance(cost, str) else None
        cost_num = finite(cost, 0, 1e9)
        return cls(
            root_cause=r.string("root_cause", limit=TEXT_MAX), severity=r.string("severity"),
            recommended_action=r.string("recommended_action", limit=TEXT_MAX),
            estimated_recovery=r.string("estimated_recovery", limit=TEXT_MAX),
            confidence=r.number("confidence"), evidence=r.strs("evidence"),
            incident_id=r.opt_str("incident_id", NAME_MAX), category=r.opt_str("category", NAME_MAX),
            source=r.string("source"), latency_ms=r.number("latency_ms"),
            cost_usd=cost_text if cost_text is not None and cost_num is not None else "0",
            prompt_tokens=r.count("prompt_tokens"), completion_tokens=r.count("completion_tokens"),
            notes=r.strs("notes"), raw_text=r.opt_str("raw_text"), created_at=r.opt_number("created_at"),
        )


@dataclass(frozen=True, slots=True)
class TimelineView:
    ts: str | None = None
    kind: str = ""  # opened, escalated, evidence, acknowledged, note, silenced, resolved, reopened, ...
    text: str = ""
    data: JsonObject = field(default_factory=dict)  # free-form facts (rule, exchange, probe, ...)

    def to_wire(self) -> JsonObject:
        return {"ts": self.ts, "kind": self.kind, "text": self.text, "data": self.data}

    @classmethod
    def from_wire(cls, value: object) -> TimelineView:
        r = Reader(value)
        return cls(r.time("ts"), r.string("kind"), r.string("text", limit=TEXT_MAX), r.json("data"))


@dataclass(frozen=True, slots=True)
class IncidentView:
    """One incident (``Incident.to_dict()``), with its analysis when one was made."""

    id: str = ""
    fingerprint: str = ""
    rule: str = ""
    severity: str = ""  # kernel.severity.Severity value
    exchange: str | None = None  # None: global (e.g. our own network)
    probe: str | None = None
    state: str = "firing"  # firing | acknowledged | resolved
    summary: str = ""
    started_at: str | None = None
    resolved_at: str | None = None
    updated_at: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    ack_note: str | None = None
    silenced_by: str | None = None  # silence id
    silenced_until: str | None = None
    in_maintenance: bool = False
    flapping: bool = False
    reopen_count: int = 0
    peak: Mapping[str, float] = field(default_factory=dict)  # e.g. {"error_rate": 0.83, "p99_ms": 2400}
    counts: Mapping[str, int] = field(default_factory=dict)  # by Outcome value
    evidence: tuple[str, ...] = ()  # symptom rules recorded on this (cause) incident
    last_error: str | None = None
    ban_until: str | None = None
    timeline: tuple[TimelineView, ...] = ()
    analysis: AnalysisResultView | None = None  # sent only when present

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"

    def to_wire(self) -> JsonObject:
        out: JsonObject = {
            "id": self.id, "fingerprint": self.fingerprint, "rule": self.rule, "severity": self.severity,
            "exchange": self.exchange, "probe": self.probe, "state": self.state, "summary": self.summary,
            "started_at": self.started_at, "resolved_at": self.resolved_at, "updated_at": self.updated_at,
            "labels": dict(self.labels), "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at, "ack_note": self.ack_note, "silenced_by": self.silenced_by,
            "silenced_until": self.silenced_until, "in_maintenance": self.in_maintenance,
            "flapping": self.flapping, "reopen_count": self.reopen_count, "peak": dict(self.peak),
            "counts": dict(self.counts), "evidence": list(self.evidence), "last_error": self.last_error,
            "ban_until": self.ban_until, "timeline": [t.to_wire() for t in self.timeline],
        }
        if self.analysis is not None:
            out["analysis"] = self.analysis.to_wire()
        return out

    @classmethod
    def from_wire(cls, value: object) -> IncidentView:
        r = Reader(value)
        analysis = r.raw("analysis")
        return cls(
            id=r.string("id"), fingerprint=r.string("fingerprint"), rule=r.string("rule"),
            severity=r.string("severity"), exchange=r.opt_str("exchange", NAME_MAX),
            probe=r.opt_str("probe", NAME_MAX), state=r.string("state", "firing"),
            summary=r.string("summary", limit=TEXT_MAX), started_at=r.time("started_at"),
            resolved_at=r.time("resolved_at"), updated_at=r.time("updated_at"), labels=r.str_map("labels"),
            acknowledged_by=r.opt_str("acknowledged_by", NAME_MAX), acknowledged_at=r.time("acknowledged_at"),
            ack_note=r.opt_str("ack_note"), silenced_by=r.opt_str("silenced_by", NAME_MAX),
            silenced_until=r.time("silenced_until"), in_maintenance=r.flag("in_maintenance"),
            flapping=r.flag("flapping"), reopen_count=r.count("reopen_count"), peak=r.num_map("peak"),
            counts=r.int_map("counts"), evidence=r.strs("evidence", NAME_MAX), last_error=r.opt_str("last_error"),
            ban_until=r.time("ban_until"), timeline=r.many("timeline", TimelineView.from_wire),
            analysis=AnalysisResultView.from_wire(analysis) if isinstance(analysis, dict) else None,
        )


@dataclass(frozen=True, slots=True)
class MatcherView:
    name: str = ""  # label: exchange, probe, rule, severity, id, ...
    value: str = ""
    is_regex: bool = False
    is_equal: bool = True

    def to_wire(self) -> JsonObject:
        return {"name": self.name, "value": self.value, "is_regex": self.is_regex, "is_equal": self.is_equal}

    @classmethod
    def from_wire(cls, value: object) -> MatcherView:
        r = Reader(value)
        return cls(r.string("name"), r.string("value", limit=TEXT_MAX), r.flag("is_regex"), r.flag("is_equal", True))


@dataclass(frozen=True, slots=True)
class SilenceView:
    """An active or pending silence (``Silence.to_dict()``)."""

    id: str = ""
    matchers: tuple[MatcherView, ...] = ()
    starts_at: str | None = None
    ends_at: str | None = None  # None: until the matched incident resolves
    created_by: str = ""
    comment: str = ""
    created_at: str | None = None
    expired_at: str | None = None

    def to_wire(self) -> JsonObject:
        return {"id": self.id, "matchers": [m.to_wire() for m in self.matchers], "starts_at": self.starts_at,
                "ends_at": self.ends_at, "created_by": self.created_by, "comment": self.comment,
                "created_at": self.created_at, "expired_at": self.expired_at}

    @classmethod
    def from_wire(cls, value: object) -> SilenceView:
        r = Reader(value)
        return cls(r.string("id"), r.many("matchers", MatcherView.from_wire), r.time("starts_at"), r.time("ends_at"),
                   r.string("created_by"), r.string("comment", limit=TEXT_MAX), r.time("created_at"),
                   r.time("expired_at"))


@dataclass(frozen=True, slots=True)
class MaintenanceView:
    """A maintenance window (``MaintenanceWindow.to_dict()``) and whether it is on now / next."""

    id: str = ""
    exchange: str | None = None  # None: all exchanges
    starts_at: str | None = None
    ends_at: str | None = None
    comment: str = ""
    recurrence: str | None = None  # e.g. weekly, daily
    timezone: str = "UTC"  # the IANA zone a recurrence keeps its wall-clock time in
    created_by: str | None = None
    active: bool = False
    next_start: str | None = None
    next_end: str | None = None

    def to_wire(self) -> JsonObject:
        return {"id": self.id, "exchange": self.exchange, "starts_at": self.starts_at, "ends_at": self.ends_at,
                "comment": self.comment, "recurrence": self.recurrence, "timezone": self.timezone,
                "created_by": self.created_by, "active": self.active, "next_start": self.next_start,
                "next_end": self.next_end}

    @classmethod
    def from_wire(cls, value: object) -> MaintenanceView:
        r = Reader(value)
        return cls(r.string("id"), r.opt_str("exchange", NAME_MAX), r.time("starts_at"), r.time("ends_at"),
                   r.string("comment", limit=TEXT_MAX), r.opt_str("recurrence", NAME_MAX),
                   r.string("timezone", "UTC"), r.opt_str("created_by", NAME_MAX), r.flag("active"),
                   r.time("next_start"), r.time("next_end"))


# ------------------------------------------------------------------------------------- the engine's own
@dataclass(frozen=True, slots=True)
class ChannelView:
    """One configured notification channel."""

    channel: str = ""
    kind: str | None = None  # discord, slack, email, ...
    state: str = "ok"  # ok | failing | broken | disabled
    queue: int = 0  # outbox entries waiting for this channel
    dead_letters: int = 0  # gave up after retries
    last_error: str | None = None
    last_sent_at: str | None = None

    def to_wire(self) -> JsonObject:
        return {"channel": self.channel, "kind": self.kind, "state": self.state, "queue": self.queue,
                "dead_letters": self.dead_letters, "last_error": self.last_error, "last_sent_at": self.last_sent_at}

    @classmethod
    def from_wire(cls, value: object) -> ChannelView:
        r = Reader(value)
        return cls(r.string("channel"), r.opt_str("kind", NAME_MAX), r.string("state", "ok"), r.count("queue"),
                   r.count("dead_letters"), r.opt_str("last_error"), r.time("last_sent_at"))


@dataclass(frozen=True, slots=True)
class AnalysisView:
    """LLM analysis spend and what runs now."""

    llm_spend_usd_month: float | None = None  # this calendar month (ledger); None until the ledger answered
    budget_usd_month: float | None = None
    model: str | None = None  # None: offline analyzer only
    pending: int = 0  # analyses running now

    def to_wire(self) -> JsonObject:
        return {"llm_spend_usd_month": self.llm_spend_usd_month, "budget_usd_month": self.budget_usd_month,
                "model": self.model, "pending": self.pending}

    @classmethod
    def from_wire(cls, value: object) -> AnalysisView:
        r = Reader(value)
        return cls(r.opt_number("llm_spend_usd_month"), r.opt_number("budget_usd_month"), r.opt_str("model", NAME_MAX),
                   r.count("pending"))


@dataclass(frozen=True, slots=True)
class StoreView:
    """The SQLite store's health, as ``Store.health()`` reports it."""

    ok: bool = False  # open, and the last write succeeded
    path: str = ""
    open: bool = False
    last_error: str | None = None
    last_error_kind: str | None = None  # disk_full, locked, corrupt, read_only, io_error, schema, other
    last_error_at: float | None = None  # epoch seconds
    errors: Mapping[str, int] = field(default_factory=dict)  # count per kind since start
    written_results: int = 0
    dropped_results: int = 0
    pending_results: int = 0
    pending_incidents: int = 0
    flushes: int = 0
    failed_flushes: int = 0
    last_flush_at: float | None = None  # epoch seconds
    size_bytes: int | None = None
    pruned_results: int = 0
    pruned_rollups: int = 0

    def to_wire(self) -> JsonObject:
        return {
            "ok": self.ok, "path": self.path, "open": self.open, "last_error": self.last_error,
            "last_error_kind": self.last_error_kind, "last_error_at": self.last_error_at, "errors": dict(self.errors),
            "written_results": self.written_results, "dropped_results": self.dropped_results,
            "pending_results": self.pending_results, "pending_incidents": self.pending_incidents,
            "flushes": self.flushes, "failed_flushes": self.failed_flushes, "last_flush_at": self.last_flush_at,
            "size_bytes": self.size_bytes, "pruned_results": self.pruned_results, "pruned_rollups": self.pruned_rollups,
        }

    @classmethod
    def from_wire(cls, value: object) -> StoreView:
        r = Reader(value)
        return cls(
            ok=r.flag("ok"), path=r.string("path", limit=TEXT_MAX), open=r.flag("open"),
            last_error=r.opt_str("last_error"), last_error_kind=r.opt_str("last_error_kind", NAME_MAX),
            last_error_at=r.opt_number("last_error_at"), errors=r.int_map("errors"),
            written_results=r.count("written_results"), dropped_results=r.count("dropped_results"),
            pending_results=r.count("pending_results"), pending_incidents=r.count("pending_incidents"),
            flushes=r.count("flushes"), failed_flushes=r.count("failed_flushes"),
            last_flush_at=r.opt_number("last_flush_at"), size_bytes=r.opt_count("size_bytes"),
            pruned_results=r.count("pruned_results"), pruned_rollups=r.count("pruned_rollups"),
        )


@dataclass(frozen=True, slots=True)
class StreamView:
    """One WebSocket stream at one moment (``kernel.streams.StreamStats.to_wire()``)."""

    exchange: str = ""
    stream: str = ""
    outcome: str = "ok"  # kernel.streams.StreamOutcome value
    detail: str = ""
    connected: bool = False
    subscribed: bool = False
    messages: int = 0  # data messages since the probe started
    msgs_per_s: float = 0.0  # over the last 60 s
    silence_s: float = 0.0  # since the last data message
    stale_after_s: float = 0.0  # the current stale threshold
    gap_p50_ms: float | None = None
    gap_p99_ms: float | None = None
    gap_max_ms: float | None = None
    lag_ms: float | None = None  # median event-time lag (positive: we see it late)
    lag_error_ms: float | None = None  # its error bound
    seq_gaps: int = 0  # sequence holes since start
    missed: int = 0  # messages known missing
    reconnects: int = 0
    recent_reconnects: int = 0  # unplanned drops in the last 5 min
    heartbeat_misses: int = 0
    connect_ms: float | None = None
    subscribe_ms: float | None = None
    first_message_ms: float | None = None
    last_close_code: int | None = None
    last_close_reason: str | None = None
    planned_reconnects: int = 0  # shutdown notices / lifetime renewals (not faults)

    def to_wire(self) -> JsonObject:
        return {
            "exchange": self.exchange, "stream": self.stream, "outcome": self.outcome, "detail": self.detail,
            "connected": self.connected, "subscribed": self.subscribed, "messages": self.messages,
            "msgs_per_s": self.msgs_per_s, "silence_s": self.silence_s, "stale_after_s": self.stale_after_s,
            "gap_p50_ms": self.gap_p50_ms, "gap_p99_ms": self.gap_p99_ms, "gap_max_ms": self.gap_max_ms,
            "lag_ms": self.lag_ms, "lag_error_ms": self.lag_error_ms, "seq_gaps": self.seq_gaps,
            "missed": self.missed, "reconnects": self.reconnects, "recent_reconnects": self.recent_reconnects,
            "heartbeat_misses": self.heartbeat_misses, "connect_ms": self.connect_ms,
            "subscribe_ms": self.subscribe_ms, "first_message_ms": self.first_message_ms,
            "last_close_code": self.last_close_code, "last_close_reason": self.last_close_reason,
            "planned_reconnects": self.planned_reconnects,
        }

    @classmethod
    def from_wire(cls, value: object) -> StreamView:
        r = Reader(value)
        return cls(
            exchange=r.string("exchange"), stream=r.string("stream"), outcome=r.string("outcome", "ok"),
            detail=r.string("detail", limit=TEXT_MAX), connected=r.flag("connected"),
            subscribed=r.flag("subscribed"), messages=r.count("messages"), msgs_per_s=r.number("msgs_per_s"),
            silence_s=r.number("silence_s"), stale_after_s=r.number("stale_after_s"),
            gap_p50_ms=r.opt_number("gap_p50_ms"), gap_p99_ms=r.opt_number("gap_p99_ms"),
            gap_max_ms=r.opt_number("gap_max_ms"), lag_ms=r.opt_number("lag_ms"),
            lag_error_ms=r.opt_number("lag_error_ms"), seq_gaps=r.count("seq_gaps"), missed=r.count("missed"),
            reconnects=r.count("reconnects"), recent_reconnects=r.count("recent_reconnects"),
            heartbeat_misses=r.count("heartbeat_misses"), connect_ms=r.opt_number("connect_ms"),
            subscribe_ms=r.opt_number("subscribe_ms"), first_message_ms=r.opt_number("first_message_ms"),
            last_close_code=r.opt_count("last_close_code"), last_close_reason=r.opt_str("last_close_reason"),
            planned_reconnects=r.count("planned_reconnects"),
        )


# --------------------------------------------------------------------------------------------- snapshot
@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a face draws (``EngineAPI.snapshot()``), built at most a few times a second."""

    seq: int = 0  # strictly increases whenever anything below changes
    ts: str | None = None  # when it was built
    location: str = ""  # config daemon.location
    version: str = ""  # the daemon's cryptomon_tui.__version__
    started_at: str | None = None  # engine start
    exchanges: Mapping[str, ExchangeView] = field(default_factory=dict)  # enabled exchanges by name
    incidents: tuple[IncidentView, ...] = ()  # open ones first (most severe first), then recently resolved
    silences: tuple[SilenceView, ...] = ()  # active and pending
    maintenance: tuple[MaintenanceView, ...] = ()
    notify: tuple[ChannelView, ...] = ()  # one per configured channel
    analysis: AnalysisView = field(default_factory=AnalysisView)
    store: StoreView | None = None  # None: running without a store
    streams: tuple[StreamView, ...] = ()
    error: str | None = None  # set when even the degraded snapshot could not be built
    schema: int = SCHEMA_VERSION  # the wire schema the sender speaks (module docstring)

    def to_wire(self) -> JsonObject:
        out: JsonObject = {
            "schema": self.schema, "seq": self.seq, "ts": self.ts, "location": self.location,
            "version": self.version, "started_at": self.started_at,
            "exchanges": {k: v.to_wire() for k, v in self.exchanges.items()},
            "incidents": [i.to_wire() for i in self.incidents], "silences": [s.to_wire() for s in self.silences],
            "maintenance": [m.to_wire() for m in self.maintenance], "notify": [c.to_wire() for c in self.notify],
            "analysis": self.analysis.to_wire(), "store": None if self.store is None else self.store.to_wire(),
            "streams": [s.to_wire() for s in self.streams],
        }
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_wire(cls, value: object) -> Snapshot:
        r = Reader(value)
        store = r.raw("store")
        return cls(
            seq=r.count("seq"), ts=r.time("ts"), location=r.string("location"), version=r.string("version"),
            started_at=r.time("started_at"), exchanges=r.keyed("exchanges", ExchangeView.from_wire),
            incidents=r.many("incidents", IncidentView.from_wire), silences=r.many("silences", SilenceView.from_wire),
            maintenance=r.many("maintenance", MaintenanceView.from_wire),
            notify=r.many("notify", ChannelView.from_wire), analysis=AnalysisView.from_wire(r.raw("analysis")),
            store=StoreView.from_wire(store) if isinstance(store, dict) else None,
            streams=r.many("streams", StreamView.from_wire), error=r.opt_str("error"), schema=_schema(r),
        )

    def open_incidents(self) -> list[IncidentView]:
        return [i for i in self.incidents if i.is_open]

