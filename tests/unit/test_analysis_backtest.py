"""Every simulator scenario, replayed through detection as backtest input: each incident it opens gets a
prompt under 2,000 tokens and a sensible offline verdict.

The probe results are synthesised from each scenario's ground truth (``Scenario.expected``): the outcome,
error code and message its faults produce, at the fault's hit rate, one probe per second per endpoint.
"""

from __future__ import annotations

import random

import pytest

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.analysis.prompt import analysis_messages, estimate_messages
from cryptomon_tui.backtest import replay
from cryptomon_tui.config import Config
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.redaction import Redactor
from cryptomon_tui.simulator.scenario import builtin_scenarios, load_scenario

T0 = 1_700_000_000.0
PROBES = {
    "binance": ("ping", "time", "ticker"),
    "binance_futures": ("ping", "time", "ticker"),
    "bybit": ("time", "ticker", "book"),
    "okx": ("time", "ticker", "book", "status"),
    "deribit": ("time", "ticker"),
}
HTTP = {Outcome.RATE_LIMITED: 429, Outcome.IP_BANNED: 418, Outcome.HTTP_5XX: 503, Outcome.MAINTENANCE: 503}


def synthesise(name: str) -> list[ProbeResult]:
    scenario = load_scenario(name)
    horizon = (scenario.duration or 60.0) * 2
    expected = scenario.expected(horizon)
    rng = random.Random(7)
    results = []
    t = 0.0
    while t < horizon:
        for exchange, probes in PROBES.items():
            for i, probe in enumerate(probes):
                ts = t + i * 0.05
                outcome, code, message = Outcome.OK, None, None
                for e in expected:
                    if e.exchange != exchange or not e.active_at(ts) or rng.random() >= e.rate:
                        continue
                    hit = e.outcome_for(probe)
                    if hit is not None:
                        fault = scenario.faults[e.fault_index]
                        outcome = hit
                        code = getattr(fault, "code", None)
                        message = getattr(fault, "message", None) or e.detail
                latency = None if outcome is Outcome.TIMEOUT else (40.0 if outcome is Outcome.OK else 15.0)
                results.append(
                    ProbeResult(
                        exchange,
                        probe,
                        T0 + ts,
                        latency,
                        outcome,
                        http_status=HTTP.get(outcome),
                        error_code=None if code is None else str(code),
                        error_message=message,
                    )
                )
        t += 1.0
    return results


CASES = []
for _name in builtin_scenarios():
    _results = synthesise(_name)
    _events: list[IncidentEvent] = []
    replay(_results, Config(), _events.append)
    for _ev in _events:
        if _ev.event is EventType.OPENED:
            CASES.append((_name, _ev, _results, [e.incident for e in _events if e.event is EventType.OPENED]))


def test_the_scenarios_open_incidents() -> None:
    assert len(CASES) >= 10
    assert {name for name, *_ in CASES} >= {"maintenance", "rate-limit-storm", "outage", "flaky"}


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{n}-{ev.incident.rule}-{ev.incident.exchange or 'all'}" for n, ev, *_ in CASES]
)
def test_prompt_and_verdict_for_each_simulated_incident(case: tuple) -> None:  # type: ignore[type-arg]
    name, event, results, opened = case
    inc = event.incident
    now = event.ts + 5
    seen = [r for r in results if r.started_at <= now]
    others = [o for o in opened if o.id != inc.id and o.started_at <= now]
    ctx = build_context(inc, {}, seen, others, Config(), now=now)
    analysis = OfflineAnalyzer().analyze_sync(ctx)
    messages = analysis_messages(ctx, analysis, Redactor([]), 2000)
    assert estimate_messages(messages) <= 2000
    assert analysis.category is not None
    if inc.rule == "maintenance":
        assert analysis.category == "maintenance"
    if inc.rule == "local_network" or inc.exchange is None:
        assert analysis.category == "local_network"
    if name == "rate-limit-storm" and inc.exchange == "binance":
        assert analysis.category in ("ip_banned", "rate_limited")
