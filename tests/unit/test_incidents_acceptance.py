"""Issue 14 acceptance, cause before symptom and the canary, as backtest replays (``backtest.replay``: the
real pipeline on a FakeClock following the rows) in the daemon's default configuration, with one answer per
probe per second: a 429 storm is one incident, all exchanges down is one incident, a canary-configured
network outage resolves and the next fault opens its own incident. Each one lets go within 30 s of its end
and nothing else opens."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptomon_tui.backtest import replay
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import Outcome, ProbeResult

T0 = 1_700_000_000.0
EXCHANGES = ("binance", "bybit", "okx", "deribit", "binance_futures")
PROBES = ("ping", "time")

Answer = Callable[[str, str, float], ProbeResult]  # exchange, probe, ts -> result


def healthy(ex: str, probe: str, ts: float) -> ProbeResult:
    return ProbeResult(ex, probe, ts, 40.0, Outcome.OK, http_status=200, rate_limit_used=0.1)


def refused(ex: str, probe: str, ts: float) -> ProbeResult:
    return ProbeResult(ex, probe, ts, None, Outcome.CONNECT, error_message="connection refused")


def _rows(
    seconds: int,
    targets: tuple[str, ...],
    answer: Callable[[str, float], Answer],
    every: dict[str, float] | None = None,
    probes: tuple[str, ...] = PROBES,
) -> list[ProbeResult]:
    """One answer per target and probe every ``every[target]`` seconds (1 s by default), the targets a little
    apart in time; ``answer(target, t)`` picks how it answers at ``t``."""
    rows = []
    for i, ex in enumerate(targets):
        step = (every or {}).get(ex, 1.0)
        offset = 0.1 * i
        for n in range(1, int(seconds / step) + 1):
            t = n * step + offset
            rows.extend(answer(ex, t)(ex, probe, T0 + t) for probe in probes)
    return rows


def _replay(rows: list[ProbeResult], config: dict[str, Any] | None = None) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    replay(rows, config_from_data(config or {}), events.append)
    return events


def _life(events: list[IncidentEvent]) -> list[tuple[float, str, str, str, str | None]]:
    return [
        (e.ts - T0, e.event.value, e.incident.id, e.incident.rule, e.incident.exchange)
        for e in events
        if e.event is not EventType.UPDATED
    ]


def test_a_429_storm_with_climbing_usage_is_one_incident_that_lets_go() -> None:
    """Binance answers 429 (Retry-After 10 s) on every probe for 60 s while its usage header climbs past
    80 % to 100 %: one rate_limited incident with the usage climb as evidence; nothing opens elsewhere or
    after it. It lets go once the usage evidence recovers: rate_limit_usage judges the peak of the last
    `window` (60 s, the exchanges' per-minute weight budgets), so within that window + 15 s of the end."""
    start, end = 120, 180

    def answer(ex: str, t: float) -> Answer:
        if ex == "binance" and start < t <= end:
            used = min(1.0, 0.85 + (t - start) / 200)
            return lambda e, p, ts: ProbeResult(e, p, ts, 20.0, Outcome.RATE_LIMITED, http_status=429,
                                                rate_limit_used=used, retry_after_s=10.0)
        return healthy

    events = _replay(_rows(end + 300, ("binance", "bybit"), answer))
    life = _life(events)
    opened = [e for e in events if e.event in (EventType.OPENED, EventType.REOPENED)]
    assert len(opened) == 1 and opened[0].event is EventType.OPENED, life
    inc = opened[0].incident
    assert (inc.rule, inc.exchange) == ("rate_limited", "binance"), life
    assert opened[0].ts - T0 <= start + 10
    [resolved] = [e for e in events if e.event is EventType.RESOLVED]
    assert resolved.incident.id == inc.id and "rate_limit_usage" in resolved.incident.evidence, life
    usage_window = config_from_data({}).detection.rules.rate_limit_usage.window
    assert end < resolved.ts - T0 <= end + usage_window + 15, life


def test_all_exchanges_down_is_one_incident_that_lets_go() -> None:
    """Every exchange refuses connections for 60 s: one local_network incident (no per-exchange incident
    first or after), resolved within 30 s of the end. The exchanges probe one endpoint at 1, 1, 2, 3 and
    5 s, so the fast ones have failed often enough for their own incident (3 in a row) before enough slow
    ones have (2 network failures each on 80 % of them) to say it is our network: their symptoms wait."""
    start, end = 120, 180

    def answer(ex: str, t: float) -> Answer:
        return refused if start < t <= end else healthy

    every = {"okx": 2.0, "deribit": 3.0, "binance_futures": 5.0}
    events = _replay(_rows(end + 300, EXCHANGES, answer, every, probes=("ping",)))
    life = _life(events)
    assert [(k, rule, ex) for _, k, _, rule, ex in life] == [
        ("opened", "local_network", None), ("resolved", "local_network", None)
    ], life
    assert start < life[0][0] <= start + 10 and end < life[1][0] <= end + 30, life


def test_a_canary_configured_network_outage_resolves_and_the_next_fault_opens_its_own_incident() -> None:
    """With a canary configured, our network failing (every exchange and the canary refuse for 60 s) is one
    local_network incident that resolves within 30 s of the end (the canary's own lingering errors do not
    hold it). A binance outage two minutes later opens its own incident (a new id, a binance rule) and
    resolves too; nothing else opens."""
    config = {"exchanges": {"canary": {"kind": "generic", "url": "https://example.com/", "canary": True}}}
    outage, fault = (120, 180), (300, 345)
    targets = (*EXCHANGES[:3], "canary")

    def answer(ex: str, t: float) -> Answer:
        if outage[0] < t <= outage[1]:
            return refused
        if ex == "binance" and fault[0] < t <= fault[1]:
            return lambda e, p, ts: ProbeResult(e, p, ts, 30.0, Outcome.HTTP_5XX, http_status=503)
        return healthy

    events = _replay(_rows(fault[1] + 300, targets, answer), config)
    life = _life(events)
    kinds = [(k, rule if rule == "local_network" else "symptom", ex) for _, k, _, rule, ex in life]
    assert kinds == [
        ("opened", "local_network", None), ("resolved", "local_network", None),
        ("opened", "symptom", "binance"), ("resolved", "symptom", "binance"),
    ], life
    (t_open, _, net_id, _, _), (t_res, *_), (t_next, _, next_id, _, _), (t_done, *_) = life
    assert outage[0] < t_open <= outage[0] + 10 and outage[1] < t_res <= outage[1] + 30, life
    assert next_id != net_id and fault[0] < t_next <= fault[0] + 15 and fault[1] < t_done <= fault[1] + 30, life


def test_an_unrelated_symptom_on_the_same_exchange_opens_its_own_incident() -> None:
    """Item 5: binance's ping answers 503 for 60 s (an error burst) while its ticker, answering fine, reports
    its usage climbing past 80 % from 20 s into the burst: the taxonomy says failures do not explain a usage
    climb, so that is a second incident, not evidence on the first; each resolves on its own."""
    start, end = 120, 180

    def during(e: str, p: str, ts: float) -> ProbeResult:
        if p == "ping":
            return ProbeResult(e, p, ts, 30.0, Outcome.HTTP_5XX, http_status=503)
        used = 0.95 if ts - T0 > start + 20 else 0.1
        return ProbeResult(e, p, ts, 40.0, Outcome.OK, http_status=200, rate_limit_used=used)

    def answer(ex: str, t: float) -> Answer:
        return during if start < t <= end else healthy

    events = _replay(_rows(end + 300, ("binance",), answer, probes=("ping", "ticker")))
    life = _life(events)
    opened = [e for e in events if e.event in (EventType.OPENED, EventType.REOPENED)]
    assert len(opened) == 2 and all(e.event is EventType.OPENED for e in opened), life
    burst, usage = (e.incident for e in opened)
    assert burst.rule != "rate_limit_usage" and usage.rule == "rate_limit_usage", life
    done = {e.incident.id: e.incident for e in events if e.event is EventType.RESOLVED}
    assert set(done) == {burst.id, usage.id}, life
    assert "rate_limit_usage" not in done[burst.id].evidence
