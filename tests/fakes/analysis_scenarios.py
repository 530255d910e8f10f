"""Incident situations built from ProbeResults the way the probing layer records them.

Used by the analysis tests (offline verdicts, prompt size, redaction). Each scenario returns the
incident, the recent results, the open incidents around it and optional metrics-style window stats.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptomon_tui.incidents.model import Incident, IncidentState, TimelineEntry
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.results import BreakerState, Outcome, Phases, ProbeResult
from cryptomon_tui.kernel.severity import Severity

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
EXCHANGES = ("binance", "binance_futures", "bybit", "okx", "deribit")
PROBES = {
    "binance": ("ping", "time", "ticker"),
    "binance_futures": ("ping", "time", "ticker"),
    "bybit": ("time", "ticker", "book"),
    "okx": ("time", "ticker", "book", "status"),
    "deribit": ("time", "ticker"),
}


def result(
    exchange: str,
    probe: str,
    t: float,
    outcome: Outcome = Outcome.OK,
    latency_ms: float | None = 50.0,
    **kw: Any,
) -> ProbeResult:
    if outcome in (Outcome.TIMEOUT, Outcome.SKIPPED_OPEN_CIRCUIT):
        latency_ms = None
    return ProbeResult(exchange=exchange, probe=probe, started_at=t, latency_ms=latency_ms, outcome=outcome, **kw)


def healthy(
    exchange: str,
    start: float,
    end: float,
    interval: float = 5.0,
    latency_ms: float = 50.0,
    probes: Iterable[str] | None = None,
    **kw: Any,
) -> list[ProbeResult]:
    out = []
    t = start
    i = 0
    names = tuple(probes or PROBES.get(exchange, ("time",)))
    while t < end:
        lat = latency_ms * (1.0 + 0.1 * ((i * 7) % 5) / 5)
        out.append(result(exchange, names[i % len(names)], t, latency_ms=lat, http_status=200, **kw))
        t += interval / len(names)
        i += 1
    return out


def incident(
    rule: str,
    exchange: str | None,
    started_at: float,
    severity: Severity = Severity.ERROR,
    probe: str | None = None,
    summary: str = "",
    timeline: Iterable[TimelineEntry] = (),
    **kw: Any,
) -> Incident:
    labels = {"exchange": exchange or "", "probe": probe or ""}
    return Incident(
        id=f"inc-{rule}-{exchange or 'all'}",
        fingerprint=fingerprint(rule, {"exchange": exchange, "probe": probe}),
        rule=rule,
        severity=severity,
        exchange=exchange,
        probe=probe,
        state=IncidentState.FIRING,
        summary=summary or f"{rule} on {exchange or 'all exchanges'}",
        started_at=started_at,
        updated_at=started_at,
        labels={k: v for k, v in labels.items() if v},
        timeline=tuple(timeline) or (TimelineEntry(started_at, "opened", f"{rule} fired"),),
        **kw,
    )


@dataclass
class Scenario:
    name: str
    incident: Incident
    results: list[ProbeResult]
    others: list[Incident] = field(default_factory=list)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    now: float = T0 + 600


def all_healthy(start: float, end: float, skip: Iterable[str] = ()) -> list[ProbeResult]:
    out: list[ProbeResult] = []
    for ex in EXCHANGES:
        if ex not in skip:
            out += healthy(ex, start, end)
    return out


def local_dns_outage() -> Scenario:
    res = all_healthy(T0, T0 + 300)
    for k, ex in enumerate(EXCHANGES):
        for j in range(8):
            t = T0 + 300 + k * 0.7 + j * 5
            outcome = Outcome.DNS if (j + k) % 4 else Outcome.CONNECT
            msg = f"Cannot connect to host api.{ex}.com:443 ssl:default [Temporary failure in name resolution]"
            res.append(result(ex, PROBES[ex][j % len(PROBES[ex])], t, outcome, latency_ms=3.0, error_message=msg))
    inc = incident("all_exchanges_down", None, T0 + 320, Severity.CRITICAL)
    others = [incident("exchange_down", ex, T0 + 315, Severity.ERROR) for ex in EXCHANGES]
    return Scenario("local_network", inc, res, others, now=T0 + 345)


BAN_UNTIL_MS = int((T0 + 900) * 1000)


def binance_ip_ban() -> Scenario:
    res: list[ProbeResult] = []
    for i in range(40):
        t = T0 + i * 5
        res.append(
            result("binance", "ticker", t, latency_ms=40, http_status=200, rate_limit_used=min(0.99, 0.5 + i * 0.0125))
        )
    res.append(
        result(
            "binance",
            "ticker",
            T0 + 200,
            Outcome.RATE_LIMITED,
            latency_ms=30,
            http_status=429,
            error_code="-1003",
            error_message="Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API.",
            rate_limit_used=1.0,
            retry_after_s=20,
        )
    )
    res.append(
        result(
            "binance",
            "ticker",
            T0 + 205,
            Outcome.RATE_LIMITED,
            latency_ms=30,
            http_status=429,
            error_code="-1003",
            error_message="Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
            rate_limit_used=1.0,
            retry_after_s=15,
        )
    )
    for j in range(4):
        res.append(
            result(
                "binance",
                "ticker",
                T0 + 210 + j * 5,
                Outcome.IP_BANNED,
                latency_ms=25,
                http_status=418,
                error_code="-1003",
                error_message=f"Way too much request weight used; IP banned until {BAN_UNTIL_MS}. "
                "Please use WebSocket Streams for live updates to avoid bans.",
                ban_until=BAN_UNTIL_MS / 1000,
                retry_after_s=690,
            )
        )
    res += all_healthy(T0, T0 + 240, skip=("binance",))
    inc = incident("ip_banned", "binance", T0 + 210, Severity.CRITICAL, probe="ticker", ban_until=BAN_UNTIL_MS / 1000)
    return Scenario("ip_banned", inc, res, now=T0 + 240)


def clock_drift(kind: str = "binance") -> Scenario:
    """The host clock runs fast: the offset (exchange - local) grows more negative on every exchange."""
    res: list[ProbeResult] = []
    for i in range(30):
        t = T0 + i * 20
        offset = -100.0 - i * 50.0  # -100 .. -1550 ms: local clock ahead and drifting 150 ms/min
        for ex in EXCHANGES:
            res.append(
                result(
                    ex, "time", t + 0.1, latency_ms=40, http_status=200, clock_offset_ms=offset + 3, clock_error_ms=20
                )
            )
    if kind == "binance":
        for j in range(5):
            res.append(
                result(
                    "binance",
                    "account",
                    T0 + 500 + j * 10,
                    Outcome.CLOCK_SKEW,
                    latency_ms=35,
                    http_status=400,
                    error_code="-1021",
                    error_message="Timestamp for this request was 1000ms ahead of the server's time.",
                )
            )
        inc = incident("clock_skew", "binance", T0 + 500, Severity.ERROR, probe="account")
    else:
        for j in range(5):
            t = T0 + 500 + j * 10
            server = int(t * 1000)
            req = server + 1400
            res.append(
                result(
                    "bybit",
                    "account",
                    t,
                    Outcome.CLOCK_SKEW,
                    latency_ms=35,
                    http_status=200,
                    error_code="10002",
                    error_message=f"invalid request, please check your server timestamp or recv_window param. "
                    f"req_timestamp[{req}],server_timestamp[{server}],recv_window[5000]",
                )
            )
        inc = incident("clock_skew", "bybit", T0 + 500, Severity.ERROR, probe="account")
    return Scenario(f"clock_skew_{kind}", inc, res, now=T0 + 560)


MAINT_END = T0 + 3600


def okx_maintenance(via_status: bool = False) -> Scenario:
    res = all_healthy(T0, T0 + 180, skip=("okx",)) + healthy("okx", T0, T0 + 120)
    for j in range(12):
        t = T0 + 120 + j * 5
        if via_status and j % 4 == 0:
            res.append(
                result(
                    "okx",
                    "status",
                    t,
                    Outcome.MAINTENANCE,
                    latency_ms=60,
                    http_status=200,
                    error_message="system upgrade: ongoing (scheduled)",
                    maintenance_until=MAINT_END,
                )
            )
        else:
            res.append(
                result(
                    "okx",
                    "ticker",
                    t,
                    Outcome.MAINTENANCE if via_status else Outcome.HTTP_5XX,
                    latency_ms=20,
                    http_status=503,
                    error_code="50001",
                    error_message="Service temporarily unavailable",
                )
            )
    inc = incident("exchange_down", "okx", T0 + 125, Severity.ERROR)
    return Scenario("maintenance" + ("_status" if via_status else ""), inc, res, now=T0 + 180)


def bybit_slow() -> Scenario:
    res = all_healthy(T0, T0 + 600, skip=("bybit",))
    res += healthy("bybit", T0, T0 + 300, latency_ms=60)
    for r in healthy("bybit", T0 + 300, T0 + 600, latency_ms=650):
        res.append(
            ProbeResult(
                r.exchange,
                r.probe,
                r.started_at,
                r.latency_ms,
                r.outcome,
                http_status=200,
                phases=Phases(ttfb_ms=(r.latency_ms or 0) - 5, reused=True),
            )
        )
    inc = incident("latency_p99", "bybit", T0 + 330, Severity.WARNING, peak={"p99_ms": 720.0})
    stats = {"bybit": {"p99_ms": 720.0, "baseline_p99_ms": 70.0, "error_rate": 0.0, "attempts": 120}}
    return Scenario("exchange_degraded", inc, res, stats=stats, now=T0 + 600)


def okx_endpoint_5xx() -> Scenario:
    res = all_healthy(T0, T0 + 300, skip=("okx",))
    res += healthy("okx", T0, T0 + 300, probes=("time", "ticker", "status"))
    for j in range(10):
        res.append(
            result(
                "okx",
                "book",
                T0 + 150 + j * 15,
                Outcome.HTTP_5XX,
                latency_ms=80,
                http_status=502 if j % 2 else 500,
                error_message="<html><body>502 Bad Gateway</body></html>" if j % 2 else "Internal Server Error",
            )
        )
    inc = incident("error_rate", "okx", T0 + 180, Severity.WARNING, probe="book")
    return Scenario("endpoint_5xx", inc, res, now=T0 + 300)


def bybit_auth() -> Scenario:
    res = all_healthy(T0, T0 + 300)
    for j in range(6):
        res.append(
            result(
                "bybit",
                "account",
                T0 + 100 + j * 30,
                Outcome.AUTH,
                latency_ms=45,
                http_status=200,
                error_code="10010",
                error_message="Unmatched IP, please check your API key's bound IP addresses.",
            )
        )
    inc = incident("auth_failed", "bybit", T0 + 100, Severity.ERROR, probe="account")
    return Scenario("auth", inc, res, now=T0 + 300)


def binance_usage_climbing() -> Scenario:
    res = all_healthy(T0, T0 + 300, skip=("binance",))
    for i in range(60):
        res.append(
            result("binance", "ticker", T0 + i * 5, latency_ms=45, http_status=200, rate_limit_used=0.3 + i * 0.011)
        )
    inc = incident("rate_limit_usage", "binance", T0 + 250, Severity.WARNING)
    return Scenario("rate_limit_climbing", inc, res, now=T0 + 300)


def deribit_timeouts() -> Scenario:
    res = all_healthy(T0, T0 + 300, skip=("deribit",)) + healthy("deribit", T0, T0 + 150)
    for j in range(12):
        res.append(
            result(
                "deribit",
                "ticker",
                T0 + 150 + j * 12,
                Outcome.TIMEOUT,
                http_status=None,
                error_message="no response within 5s",
            )
        )
    inc = incident("exchange_down", "deribit", T0 + 170, Severity.ERROR)
    return Scenario("exchange_unreachable", inc, res, now=T0 + 300)


def binance_proxy_page() -> Scenario:
    res = all_healthy(T0, T0 + 300, skip=("binance_futures",)) + healthy("binance_futures", T0, T0 + 100)
    for j in range(10):
        res.append(
            result(
                "binance_futures",
                "ticker",
                T0 + 100 + j * 15,
                Outcome.BAD_PAYLOAD,
                latency_ms=12,
                http_status=200,
                error_message="expected JSON, got text/html: <!DOCTYPE html><html><head><title>Access "
                "denied | Squid proxy</title>",
            )
        )
    inc = incident("bad_payload", "binance_futures", T0 + 110, Severity.ERROR)
    return Scenario("proxy_page", inc, res, now=T0 + 300)


def circuit_open() -> Scenario:
    res = all_healthy(T0, T0 + 180, skip=("deribit",))
    for j in range(5):
        res.append(
            result(
                "deribit",
                "ticker",
                T0 + 100 + j * 5,
                Outcome.RESET,
                latency_ms=20,
                error_message="Connection reset by peer",
            )
        )
    for j in range(10):
        res.append(
            result("deribit", "ticker", T0 + 130 + j * 5, Outcome.SKIPPED_OPEN_CIRCUIT, breaker=BreakerState.OPEN)
        )
    inc = incident("exchange_down", "deribit", T0 + 110, Severity.ERROR)
    return Scenario("circuit_open", inc, res, now=T0 + 180)


ALL_SCENARIOS = (
    local_dns_outage,
    binance_ip_ban,
    clock_drift,
    lambda: clock_drift("bybit"),
    okx_maintenance,
    lambda: okx_maintenance(True),
    bybit_slow,
    okx_endpoint_5xx,
    bybit_auth,
    binance_usage_climbing,
    deribit_timeouts,
    binance_proxy_page,
    circuit_open,
)
