"""What detection tells the incident manager: a rule instance fired, changed, or recovered.

Rule names are a stable contract (events, metrics, silences). ``RANK`` orders causes over
symptoms on the same exchange: a signal is recorded as evidence on an open incident of a
higher-ranked rule instead of opening its own (see incidents.manager).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptomon_tui.kernel.severity import Severity

ERROR_RATE = "error_rate"
LATENCY_P99 = "latency_p99"
LATENCY_ANOMALY = "latency_anomaly"
RATE_LIMIT_USAGE = "rate_limit_usage"
TIMEOUTS = "timeouts"
CONSECUTIVE_FAILURES = "consecutive_failures"
CLOCK_OFFSET = "clock_offset"
MAINTENANCE = "maintenance"
IP_BANNED = "ip_banned"
RATE_LIMITED = "rate_limited"
CIRCUIT_OPEN = "circuit_open"
LOCAL_NETWORK = "local_network"
# WebSocket stream rules (one incident per stream: they share the stream's fingerprint)
WS_STALE = "ws_stale"
WS_LAG = "ws_lag"
WS_GAP = "ws_gap"
WS_DISCONNECTED = "ws_disconnected"
WS_RECONNECT_STORM = "ws_reconnect_storm"
WS_HEARTBEAT = "ws_heartbeat"
WS_AUTH = "ws_auth"  # a signed user-data stream's login rejected
STREAM_RULES: tuple[str, ...] = (WS_STALE, WS_LAG, WS_GAP, WS_DISCONNECTED, WS_RECONNECT_STORM, WS_HEARTBEAT,
                                 WS_AUTH)

RULE_NAMES: tuple[str, ...] = (
    ERROR_RATE,
    LATENCY_P99,
    LATENCY_ANOMALY,
    RATE_LIMIT_USAGE,
    TIMEOUTS,
    CONSECUTIVE_FAILURES,
    CLOCK_OFFSET,
    MAINTENANCE,
    IP_BANNED,
    RATE_LIMITED,
    CIRCUIT_OPEN,
    LOCAL_NETWORK,
)  # configurable under detection.rules; the stream rules are judged by the stream probes (STREAM_RULES)

# Rules evaluated per (exchange, probe); the others are per exchange (local_network: global).
PROBE_RULES = frozenset({ERROR_RATE, LATENCY_P99, LATENCY_ANOMALY, TIMEOUTS, CONSECUTIVE_FAILURES})

# Cause over symptom. Symptoms (rank 0) also group with each other on one exchange, so one outage
# that trips consecutive_failures, timeouts and error_rate is one incident. clock_offset is a cause
# of its own: only local_network holds it back, and it never absorbs other rules.
RANK: dict[str, int] = {
    LOCAL_NETWORK: 100,
    MAINTENANCE: 80,
    IP_BANNED: 60,
    RATE_LIMITED: 60,
    CLOCK_OFFSET: -1,
}
STANDALONE = frozenset({CLOCK_OFFSET})


# Among symptoms firing in the same evaluation, which one names the incident: the most telling first.
# circuit_open is last because it is our own breaker reacting to the failures the others describe.
SYMPTOM_ORDER: dict[str, int] = {
    CONSECUTIVE_FAILURES: 0,
    TIMEOUTS: 1,
    ERROR_RATE: 2,
    LATENCY_P99: 3,
    LATENCY_ANOMALY: 4,
    RATE_LIMIT_USAGE: 5,
    CIRCUIT_OPEN: 6,
    WS_DISCONNECTED: 7,
    WS_RECONNECT_STORM: 8,
    WS_HEARTBEAT: 9,
    WS_STALE: 10,
    WS_GAP: 11,
    WS_LAG: 12,
    WS_AUTH: 13,
}


def rank_of(rule: str) -> int:
    return RANK.get(rule, 0)


# The taxonomy of what explains what (issue 14): evidence joins an open incident only when its cause
# explains it; an unrelated symptom on the same exchange opens its own incident.
# Failure symptoms: one outage trips several of these at once, so they group with each other.
FAILURE_SYMPTOMS = frozenset({CONSECUTIVE_FAILURES, TIMEOUTS, ERROR_RATE, CIRCUIT_OPEN, LATENCY_P99, LATENCY_ANOMALY})
# A stream that is down, dropping or silent is what an exchange outage looks like from the socket side:
# these group with the REST failure symptoms (one outage, one incident), and every cause that takes the
# exchange away (our network, maintenance, a ban of our IP) explains them. Lag, holes and heartbeats are
# the stream's own problems: nothing on the REST side explains them.
STREAM_OUTAGE = frozenset({WS_DISCONNECTED, WS_RECONNECT_STORM, WS_STALE})
OUTAGE_SYMPTOMS = FAILURE_SYMPTOMS | STREAM_OUTAGE
EXPLAINS: dict[str, frozenset[str]] = {
    # our network failing explains every exchange failing or being slow, not their limits or clocks
    LOCAL_NETWORK: OUTAGE_SYMPTOMS | frozenset(STREAM_RULES),
    # a venue in maintenance fails, answers slowly and drops or silences its streams
    MAINTENANCE: OUTAGE_SYMPTOMS | frozenset(STREAM_RULES),
    # 429s / a ban: the usage climb that led there, and the failures and breaker they cause
    RATE_LIMITED: frozenset({RATE_LIMIT_USAGE, CONSECUTIVE_FAILURES, ERROR_RATE, CIRCUIT_OPEN, IP_BANNED}),
    # a banned IP is refused on the streams too
    IP_BANNED: frozenset({RATE_LIMIT_USAGE, CONSECUTIVE_FAILURES, ERROR_RATE, CIRCUIT_OPEN, RATE_LIMITED})
    | STREAM_OUTAGE,
}


def explains(host_rule: str, rule: str) -> bool:
    """Whether an open incident named ``host_rule`` explains a firing ``rule`` (so it is evidence)."""
    if rank_of(host_rule) > 0:
        return rule in EXPLAINS.get(host_rule, frozenset())
    return host_rule in OUTAGE_SYMPTOMS and rule in OUTAGE_SYMPTOMS


@dataclass(frozen=True, slots=True)
class Signal:
    """State of one rule instance at one evaluation.

    ``firing`` True: the rule fired now or is still firing (sent again when a value peaks, the
    severity changes or flapping starts). False: it recovered. ``fingerprint`` may be shared by two
    rules (rate_limited and ip_banned) so that an escalation stays one incident.
    """

    rule: str
    fingerprint: str
    exchange: str | None
    probe: str | None
    severity: Severity
    firing: bool
    summary: str
    ts: float
    labels: dict[str, str] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    ban_until: float | None = None
    flapping: bool = False
    recent_fires: int = 0  # how often this rule instance fired within flap_window, this fire included

    @property
    def rank(self) -> int:
        return rank_of(self.rule)
