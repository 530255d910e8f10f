"""AnalysisService without a network: auto-analysis policy, offline summaries, context lookup, background tasks."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from cryptomon_tui.analysis.context import AnalysisContext, build_context
from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.model import Usage
from cryptomon_tui.analysis.service import AnalysisService, UnknownIncident
from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.analysis import AnalysisConfig, AutoAnalyzeConfig, LlmConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState
from cryptomon_tui.kernel.severity import Severity
from tests.fakes import analysis_scenarios as sc


def auto_config(**auto: object) -> Config:
    return Config(analysis=AnalysisConfig(auto_analyze=AutoAnalyzeConfig(enabled=True, **auto)))  # type: ignore[arg-type]


def event(kind: EventType, severity: Severity = Severity.ERROR, ident: str = "i1", **changes: object) -> IncidentEvent:
    inc = sc.incident("exchange_down", "okx", sc.T0, severity).with_changes(id=ident, **changes)
    return IncidentEvent(ts=sc.T0, event=kind, incident=inc)


def test_auto_analysis_follows_severity_threshold_and_event_kind() -> None:
    svc = AnalysisService(auto_config(min_severity="error"), InMemoryUsageLedger(), FakeClock())
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.WARNING, "w"))
    assert svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, "e"))
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, "e"))  # once per incident
    assert not svc.should_auto_analyze(event(EventType.UPDATED, Severity.ERROR, "e"))  # same severity
    assert svc.should_auto_analyze(event(EventType.UPDATED, Severity.CRITICAL, "e"))  # escalated
    assert not svc.should_auto_analyze(event(EventType.ACKNOWLEDGED, Severity.CRITICAL, "a"))
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.CRITICAL, "s", silenced_by="sil-1"))
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.CRITICAL, "r", state=IncidentState.RESOLVED))
    assert svc.should_auto_analyze(event(EventType.REOPENED, Severity.CRITICAL, "e"))


async def test_auto_analysis_is_rate_limited_per_hour() -> None:
    clock = FakeClock()
    svc = AnalysisService(auto_config(min_severity="warning", max_per_hour=3), InMemoryUsageLedger(), clock)
    answers = [svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, f"i{n}")) for n in range(5)]
    assert answers == [True, True, True, False, False]
    await clock.advance(3601)
    assert svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, "later"))


def test_auto_analysis_disabled_by_default() -> None:
    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock())
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.CRITICAL))


async def test_auto_analysis_over_budget_can_be_turned_off() -> None:
    llm = LlmConfig(base_url="http://127.0.0.1:9/v1")
    cfg = Config(
        analysis=AnalysisConfig(
            llm=llm, monthly_budget_usd=Decimal("1"),
            auto_analyze=AutoAnalyzeConfig(enabled=True, offline_when_over_budget=False),
        )
    )
    ledger = InMemoryUsageLedger()
    clock = FakeClock(sc.T0)
    await ledger.add(Usage(ts=sc.T0, model="deepseek-chat", prompt_tokens=1, completion_tokens=1,
                           cost_usd=Decimal("1.5")))
    svc = AnalysisService(cfg, ledger, clock)
    assert svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, "a"))  # spend not known yet
    assert await svc.remaining_budget() == Decimal("-0.5")
    assert not svc.should_auto_analyze(event(EventType.OPENED, Severity.ERROR, "b"))
    await svc.aclose()


async def test_offline_summary_groups_a_local_outage() -> None:
    s = sc.local_dns_outage()
    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock(s.now))
    summary = await svc.summarize([s.incident, *s.others], {}, recent_results=s.results)
    assert summary.source == "offline"
    assert "Your own network or DNS" in summary.headline
    assert summary.severity.value == "CRITICAL"
    assert len(summary.details) == 6 and len(summary.incident_ids) == 6


async def test_offline_summary_of_mixed_incidents_and_of_none() -> None:
    a, b = sc.okx_maintenance(True), sc.binance_ip_ban()
    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock(b.now))
    summary = await svc.summarize([a.incident, b.incident], {}, recent_results=a.results + b.results)
    assert "2 open incidents" in summary.headline and "ip_banned" in summary.headline
    assert summary.details[0].startswith("CRITICAL binance")  # worst first
    assert summary.recommended_action.startswith("Stop or slow every bot")
    empty = await svc.summarize([], {})
    assert empty.headline.startswith("No open incidents")


async def test_analyze_by_incident_id_uses_the_context_source() -> None:
    s = sc.binance_ip_ban()

    async def source(incident_id: str) -> AnalysisContext | None:
        if incident_id != s.incident.id:
            return None
        return build_context(s.incident, s.stats, s.results, s.others, Config(), now=s.now)

    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock(s.now), context_source=source)
    a = await svc.analyze(s.incident.id)
    assert a.category == "ip_banned" and a.incident_id == s.incident.id
    with pytest.raises(UnknownIncident):
        await svc.analyze("nope")


async def test_background_analysis_reports_through_on_done() -> None:
    s = sc.okx_maintenance(True)
    ctx = build_context(s.incident, s.stats, s.results, s.others, Config(), now=s.now)
    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock(s.now))
    done: list[str] = []
    task = svc.start_background(ctx, on_done=lambda a: done.append(a.category or ""))
    assert isinstance(task, asyncio.Task)
    result = await task
    assert done == ["maintenance"] and result.category == "maintenance"
    await svc.aclose()
