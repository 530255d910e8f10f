"""The probe result contract shared by probing, metrics, detection, storage and every face.

Part of the kernel: free of imports from the rest of the package so that exchange adapters, the
simulator, the store and the faces can all depend on it without cycles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.units import iso_utc


class Outcome(StrEnum):
    """The fixed failure taxonomy every layer classifies into. Values are a stable wire contract (JSONL exports,
    the store, the control API, Prometheus labels): add members, never rename them."""

    OK = "ok"
    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECT = "connect"
    TLS = "tls"
    RESET = "reset"
    HTTP_5XX = "http_5xx"
    HTTP_4XX = "http_4xx"
    RATE_LIMITED = "rate_limited"
    IP_BANNED = "ip_banned"
    CLOCK_SKEW = "clock_skew"
    AUTH = "auth"
    MAINTENANCE = "maintenance"
    BAD_PAYLOAD = "bad_payload"
    EXCHANGE_ERROR = "exchange_error"
    SKIPPED_OPEN_CIRCUIT = "skipped_open_circuit"

    @property
    def is_network(self) -> bool:
        """Failures that say the path to the exchange is broken (our side or theirs)."""
        return self in _NETWORK

    @property
    def counts_as_attempt(self) -> bool:
        """A skipped probe (open circuit) was never sent, so it is not an attempt."""
        return self is not Outcome.SKIPPED_OPEN_CIRCUIT


_NETWORK = frozenset({Outcome.DNS, Outcome.CONNECT, Outcome.TLS, Outcome.RESET, Outcome.TIMEOUT})

# Outcomes that make the monitor itself back off (never be the cause of a ban).
BACKOFF_OUTCOMES = frozenset({Outcome.RATE_LIMITED, Outcome.IP_BANNED})


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Phases:
    """Where the time of one request went, in milliseconds (None when not observable).

    ``reused`` tells whether the request rode on an already open connection, in which case
    dns/connect/tls are None rather than 0.
    """

    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    ttfb_ms: float | None = None
    transfer_ms: float | None = None
    reused: bool | None = None

    def as_dict(self) -> JsonObject:
        return {
            "dns_ms": self.dns_ms,
            "connect_ms": self.connect_ms,
            "tls_ms": self.tls_ms,
            "ttfb_ms": self.ttfb_ms,
            "transfer_ms": self.transfer_ms,
            "reused": self.reused,
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe, successful or not. A failed probe is a data point, never an exception.

    ``started_at`` is the wall time (epoch seconds) the request was sent. ``latency_ms``
    is None only when there is no meaningful latency (timeouts, skipped probes).
    ``clock_offset_ms`` = exchange time - local midpoint of send and receive;
    ``clock_error_ms`` bounds its error (half the round trip).
    """

    exchange: str
    probe: str
    started_at: float
    latency_ms: float | None
    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    rate_limit_used: float | None = None
    clock_offset_ms: float | None = None
    clock_error_ms: float | None = None
    retry_after_s: float | None = None
    ban_until: float | None = None
    maintenance_until: float | None = None
    phases: Phases | None = None
    breaker: BreakerState = BreakerState.CLOSED
    extra: JsonObject = field(default_factory=dict, compare=False)  # body facts, schedule lag, TLS names

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    def to_json_dict(self) -> JsonObject:
        """The ``--probes-jsonl`` / export shape (stable field names)."""
        return {
            "ts": iso_utc(self.started_at),
            "exchange": self.exchange,
            "probe": self.probe,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3),
            "outcome": self.outcome.value,
            "http_status": self.http_status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "rate_limit_used": None if self.rate_limit_used is None else round(self.rate_limit_used, 4),
            "clock_offset_ms": None if self.clock_offset_ms is None else round(self.clock_offset_ms, 3),
            "clock_error_ms": None if self.clock_error_ms is None else round(self.clock_error_ms, 3),
            "retry_after_s": self.retry_after_s,
            "ban_until": None if self.ban_until is None else iso_utc(self.ban_until),
            "maintenance_until": None if self.maintenance_until is None else iso_utc(self.maintenance_until),
            "phases": None if self.phases is None else self.phases.as_dict(),
            "breaker": self.breaker.value,
        }


_new_result = object.__new__
# The slots' own setters: frozen only blocks ``setattr``; these are what the generated __init__ reaches
# through object.__setattr__, one call per field, at about twice the cost.
(
    _set_exchange,
    _set_probe,
    _set_started_at,
    _set_latency_ms,
    _set_outcome,
    _set_http_status,
    _set_error_code,
    _set_error_message,
    _set_rate_limit_used,
    _set_clock_offset_ms,
    _set_clock_error_ms,
    _set_retry_after_s,
    _set_ban_until,
    _set_maintenance_until,
    _set_phases,
    _set_breaker,
    _set_extra,
) = (ProbeResult.__dict__[name].__set__ for name in ProbeResult.__dataclass_fields__)


def recorded_result(
    exchange: str,
    probe: str,
    started_at: float,
    latency_ms: float | None,
    outcome: Outcome,
    http_status: int | None,
    error_code: str | None,
    error_message: str | None,
    rate_limit_used: float | None,
    clock_offset_ms: float | None,
) -> ProbeResult:
    """``ProbeResult(...)`` with the fields a recording has (the rest at their defaults), built about
    twice as fast: a backtest parses hundreds of thousands of them. Arguments are not validated."""
    r: ProbeResult = _new_result(ProbeResult)
    _set_exchange(r, exchange)
    _set_probe(r, probe)
    _set_started_at(r, started_at)
    _set_latency_ms(r, latency_ms)
    _set_outcome(r, outcome)
    _set_http_status(r, http_status)
    _set_error_code(r, error_code)
    _set_error_message(r, error_message)
    _set_rate_limit_used(r, rate_limit_used)
    _set_clock_offset_ms(r, clock_offset_ms)
    _set_clock_error_ms(r, None)
    _set_retry_after_s(r, None)
    _set_ban_until(r, None)
    _set_maintenance_until(r, None)
    _set_phases(r, None)
    _set_breaker(r, BreakerState.CLOSED)
    _set_extra(r, {})
    return r
