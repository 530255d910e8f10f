"""The prompt for any incident stays under 2,000 estimated tokens and keeps the evidence that matters."""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.analysis.prompt import analysis_messages, estimate_messages, estimate_tokens
from cryptomon_tui.config import Config
from cryptomon_tui.incidents.model import TimelineEntry
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.redaction import Redactor
from tests.fakes import analysis_scenarios as sc

LIMIT = 2000


def prompt_for(s: sc.Scenario, config: Config | None = None) -> list[dict[str, str]]:
    cfg = config or Config()
    ctx = build_context(s.incident, s.stats, s.results, s.others, cfg, now=s.now)
    offline = OfflineAnalyzer().analyze_sync(ctx)
    return analysis_messages(ctx, offline, Redactor([]), LIMIT)


def _long(text: str, n: int) -> str:
    return (text + " ") * (n // (len(text) + 1) + 1)


def stressed(s: sc.Scenario) -> sc.Scenario:
    """The same incident with everything made as large as it gets in practice (and beyond)."""
    long_msg = _long("Internal error; unable to process your request. Please try again. 錯誤", 6000)
    results = list(s.results)
    for i in range(150):
        results.append(sc.result("bybit", f"probe{i % 12}", s.now - 200 + i, Outcome.EXCHANGE_ERROR,
                                 http_status=200, error_code=str(10000 + i), error_message=long_msg))
    timeline = [TimelineEntry(s.incident.started_at + i, "evidence", long_msg[: 200 + i]) for i in range(600)]
    others = [sc.incident(f"rule{i}", sc.EXCHANGES[i % 5], s.now - i, Severity.WARNING, summary=long_msg)
              for i in range(60)]
    inc = s.incident.with_changes(
        summary=long_msg, last_error=long_msg, timeline=tuple(timeline),
        counts={o.value: 10 for o in Outcome}, evidence=tuple(f"symptom_{i}" for i in range(40)),
        peak={f"metric_{i}": float(i) for i in range(30)},
    )
    stats = {
        ex: {"attempts": 1000, "p99_ms": 1234.5, "last_error_message": long_msg,
             "clock_offset_history": list(range(500)),
             "probes": {f"probe{i}": {"p99_ms": 1.0, "counts": {"timeout": 3}} for i in range(40)}}
        for ex in [*sc.EXCHANGES, *(f"generic{i}" for i in range(15))]
    }
    return sc.Scenario(s.name + "+stress", inc, results, others, stats, now=s.now)


SCENARIOS = [make() for make in sc.ALL_SCENARIOS]


@pytest.mark.parametrize("scenario", SCENARIOS + [stressed(s) for s in SCENARIOS], ids=lambda s: s.name)
def test_prompt_stays_under_2000_tokens(scenario: sc.Scenario) -> None:
    messages = prompt_for(scenario)
    assert estimate_messages(messages) <= LIMIT
    user = messages[1]["content"]
    assert scenario.incident.rule in user
    if "+stress" not in scenario.name:
        bundle = json.loads(user.split("\n", 1)[1])
        assert bundle["rule_based_verdict"]["category"]
        assert bundle["incident"]["exchange"] == (scenario.incident.exchange or "all")


def test_plain_prompts_keep_their_detail() -> None:
    """Trimming only kicks in when needed: a normal incident keeps timeline, failures and code meanings."""
    messages = prompt_for(sc.binance_ip_ban())
    bundle = json.loads(messages[1]["content"].split("\n", 1)[1])
    assert "timeline" in bundle and "recent_failures" in bundle
    assert "TOO_MANY_REQUESTS" in json.dumps(bundle["error_code_meanings"])
    assert bundle["documented_limits"]["binance"].startswith("6,000")
    assert bundle["exchanges"]["binance"]["rate_limit_peak"] == 1.0
    assert estimate_messages(messages) < 1500


def test_clock_trend_reaches_the_prompt() -> None:
    bundle = json.loads(prompt_for(sc.clock_drift())[1]["content"].split("\n", 1)[1])
    assert bundle["exchanges"]["binance"]["clock_offset_trend_ms"][0] > bundle["exchanges"]["binance"][
        "clock_offset_trend_ms"][-1]


def test_token_estimate_is_conservative() -> None:
    assert estimate_tokens("a" * 350) == 100
    assert estimate_tokens("錯" * 10) == 13  # 10/3.5 rounded up + one per non-ASCII char
