"""The monthly budget cap stops paid calls; summaries and auto-analysis respect it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.model import Usage
from cryptomon_tui.analysis.service import AnalysisService
from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.analysis import AnalysisConfig, LlmConfig
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import FakeOpenAIServer, Step


class AutoClock(FakeClock):
    """Sleeping moves the fake time at once (the LLM's 5xx retry pauses a second)."""

    async def sleep(self, seconds: float) -> None:
        self.set(self.now() + seconds)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    await srv.start()
    yield srv
    await srv.stop()


def config(server: FakeOpenAIServer, budget: str | None, model: str = "gpt-4.1", **extra: Any) -> Config:
    llm = LlmConfig(base_url=server.url, model=model, api_key=SecretStr("sk-x-123456"), stream=False, timeout=2)
    return Config(
        analysis=AnalysisConfig(llm=llm, monthly_budget_usd=None if budget is None else Decimal(budget), **extra)
    )


def ctx(cfg: Config, scenario: sc.Scenario | None = None):  # type: ignore[no-untyped-def]
    s = scenario or sc.okx_maintenance(True)
    return build_context(s.incident, s.stats, s.results, s.others, cfg, now=s.now)


async def test_past_the_budget_analysis_is_offline_with_a_clear_note(server: FakeOpenAIServer) -> None:
    cfg = config(server, "1.00")
    ledger = InMemoryUsageLedger()
    clock = FakeClock(sc.T0 + 600)
    await ledger.add(
        Usage(ts=clock.now() - 60, model="gpt-4.1", prompt_tokens=1, completion_tokens=1, cost_usd=Decimal("1.00"))
    )
    svc = AnalysisService(cfg, ledger, clock)
    a = await svc.analyze(ctx(cfg))
    assert a.source == "offline" and a.category == "maintenance"
    assert "budget of $1.00 is used up for 2023-11" in a.notes[0]
    assert server.requests == []
    await svc.aclose()


async def test_the_budget_cap_stops_paid_calls_once_reached(server: FakeOpenAIServer) -> None:
    # each call: 100,000 in + 10,000 out on gpt-4.1 = 0.20 + 0.08 = $0.28
    server.default = Step(prompt_tokens=100_000, completion_tokens=10_000)
    cfg = config(server, "0.60")
    ledger = InMemoryUsageLedger()
    svc = AnalysisService(cfg, ledger, FakeClock(sc.T0 + 600))
    sources = []
    for s in (sc.okx_maintenance(True), sc.binance_ip_ban(), sc.bybit_auth(), sc.deribit_timeouts()):
        sources.append((await svc.analyze(ctx(cfg, s))).source)
    # $0.28 + $0.28 = $0.56 spent; a third call could cost up to ~$0.006 prompt + $0.004 reply: still fits,
    # and after it ($0.84) the budget is exhausted.
    assert sources == ["gpt-4.1", "gpt-4.1", "gpt-4.1", "offline"]
    assert len(server.requests) == 3
    assert await ledger.month_total("2023-11") == Decimal("0.84")
    report = await svc.costs()
    assert report.budget_left == Decimal("0") and report.calls == 3
    await svc.aclose()


async def test_a_call_that_would_exceed_the_remaining_budget_is_not_made(server: FakeOpenAIServer) -> None:
    cfg = config(server, "0.005")  # the worst case of one gpt-4.1 call here is ~$0.007 (prompt + 500 out)
    svc = AnalysisService(cfg, InMemoryUsageLedger(), FakeClock(sc.T0 + 600))
    a = await svc.analyze(ctx(cfg))
    assert a.source == "offline" and server.requests == []
    assert "would exceed" in a.notes[0]
    cheap = config(server, "0.005", model="deepseek-chat")  # ~$0.0008 worst case: allowed
    svc2 = AnalysisService(cheap, InMemoryUsageLedger(), FakeClock(sc.T0 + 600))
    assert (await svc2.analyze(ctx(cheap))).source == "deepseek-chat"
    await svc.aclose()
    await svc2.aclose()


async def test_a_new_month_resets_the_budget(server: FakeOpenAIServer) -> None:
    cfg = config(server, "1.00")
    ledger = InMemoryUsageLedger()
    clock = FakeClock(sc.T0 + 600)  # 2023-11-14
    await ledger.add(
        Usage(ts=clock.now(), model="gpt-4.1", prompt_tokens=1, completion_tokens=1, cost_usd=Decimal("2.00"))
    )
    svc = AnalysisService(cfg, ledger, clock)
    assert (await svc.analyze(ctx(cfg))).source == "offline"
    clock.set(1_701_388_800.0 + 60)  # 2023-12-01 00:01 UTC
    assert (await svc.analyze(ctx(cfg), force=True)).source == "gpt-4.1"
    await svc.aclose()


async def test_summary_uses_the_llm_and_falls_back_offline(server: FakeOpenAIServer) -> None:
    import json

    reply = json.dumps(
        {
            "headline": "OKX is in planned maintenance; Binance banned this IP.",
            "details": ["okx: maintenance until 23:13 UTC", "binance: IP ban until 22:28 UTC"],
            "severity": "HIGH",
            "recommended_action": "Stop the bots hammering Binance.",
        }
    )
    server.script(Step(content=reply), Step(status=500), Step(status=500))  # a 5xx is retried once
    cfg = config(server, None)
    svc = AnalysisService(cfg, InMemoryUsageLedger(), AutoClock(sc.T0 + 600))  # the 5xx retry pauses
    a, b = sc.okx_maintenance(True), sc.binance_ip_ban()
    summary = await svc.summarize([a.incident, b.incident], {}, recent_results=a.results + b.results)
    assert summary.source == "gpt-4.1" and summary.headline.startswith("OKX is in planned maintenance")
    assert summary.cost_usd > 0
    prompt = server.requests[0].json["messages"][1]["content"]
    assert "maintenance" in prompt and "ip_banned" in prompt
    fallback = await svc.summarize([a.incident, b.incident], {}, recent_results=a.results + b.results)
    assert fallback.source == "offline" and "LLM provider error 500" in fallback.notes[0]
    assert len(fallback.details) == 2
    await svc.aclose()
