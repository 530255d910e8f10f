"""Issue 12 item 7: `cryptomon summary` - at most three sentences from the LLM and from the offline writer,
open and recently resolved incidents, through the daemon when one runs, from the store otherwise."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.model import Summary
from cryptomon_tui.analysis.service import AnalysisService
from cryptomon_tui.cli import main
from cryptomon_tui.clock import FakeClock, RealClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.analysis import AnalysisConfig, LlmConfig
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState
from cryptomon_tui.store import Store
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import FakeOpenAIServer, Step

# an independent count: a sentence ends at . ! or ? followed by a space or the end
END = re.compile(r"[.!?](?:\s|$)")
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
SENTENCE = st.builds(
    lambda words, end: " ".join(words).capitalize() + end, st.lists(WORD, min_size=1, max_size=6),
    st.sampled_from([".", "!", "?"]),
)
PARAGRAPH = st.lists(SENTENCE, min_size=1, max_size=9).map(" ".join)


OPTIONAL = st.one_of(st.just(""), PARAGRAPH)


@given(headline=PARAGRAPH, action=PARAGRAPH, recent=OPTIONAL, text=OPTIONAL)
@settings(max_examples=300, deadline=None)
def test_a_summary_never_says_more_than_three_sentences(headline: str, action: str, recent: str, text: str) -> None:
    s = Summary(headline=headline, recommended_action=action, recent=recent, text=text, severity="LOW",
                source="x", created_at=0.0)
    assert 1 <= len(END.findall(s.text)) <= 3
    assert s.text.split(".")[0].split("!")[0].split("?")[0] in (text or headline)  # it starts where it should


async def test_llm_summary_is_cut_to_three_sentences() -> None:
    chatty = " ".join(f"Sentence number {n} says something." for n in range(1, 8))
    server = FakeOpenAIServer()
    await server.start()
    try:
        server.script(Step(content=json.dumps({"headline": chatty, "severity": "HIGH", "recommended_action": chatty})))
        llm = LlmConfig(base_url=server.url, model="gpt-4.1", api_key=SecretStr("sk-x-123456"), stream=False, timeout=2)
        svc = AnalysisService(Config(analysis=AnalysisConfig(llm=llm)), InMemoryUsageLedger(), FakeClock(sc.T0 + 600))
        a, b = sc.okx_maintenance(True), sc.binance_ip_ban()
        summary = await svc.summarize([a.incident, b.incident], {}, recent_results=a.results + b.results)
        await svc.aclose()
    finally:
        await server.stop()
    assert summary.source == "gpt-4.1"
    assert len(END.findall(summary.text)) <= 3 and summary.text.startswith("Sentence number 1")


async def test_offline_summary_of_many_incidents_and_recent_ones_stays_short() -> None:
    scenarios = [sc.local_dns_outage(), sc.binance_ip_ban(), sc.okx_maintenance(), sc.bybit_slow(),
                 sc.okx_endpoint_5xx()]
    svc = AnalysisService(Config(), InMemoryUsageLedger(), FakeClock(sc.T0 + 900))
    for group in ([s.incident for s in scenarios[1:]], [scenarios[0].incident, *scenarios[0].others]):
        resolved = [sc.binance_ip_ban().incident.with_changes(
            id="old-1", state=IncidentState.RESOLVED, resolved_at=sc.T0 + 800)]
        summary = await svc.summarize(group, {}, resolved=resolved, since_s=3600)
        assert len(END.findall(summary.text)) <= 3, summary.text
        assert "1 incident resolved in the last 1h" in summary.text and "old-1" in summary.text
    empty = await svc.summarize([], {})
    assert empty.text == "No open incidents: every watched exchange looks healthy. Nothing to do."


def test_cli_summary_without_a_daemon_reads_the_store(capsys: pytest.CaptureFixture[str]) -> None:
    s = sc.binance_ip_ban()
    now = time.time()
    incident = s.incident.with_changes(started_at=now - 120, updated_at=now - 5)
    old = sc.okx_maintenance().incident.with_changes(
        id="inc-old", started_at=now - 1800, updated_at=now - 600, resolved_at=now - 600,
        state=IncidentState.RESOLVED,
    )

    async def seed() -> None:
        store = Store(StorageConfig(), RealClock())
        assert await store.open(background=False)
        store.on_event(IncidentEvent(ts=now, event=EventType.OPENED, incident=incident))
        store.on_event(IncidentEvent(ts=now, event=EventType.RESOLVED, incident=old))
        await store.flush()
        await store.close()

    asyncio.run(seed())
    assert main(["summary", "--json", "--since", "1h"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from"].startswith("store") and out["source"] == "offline"
    assert len(END.findall(out["text"])) <= 3 and "inc-old" in out["text"]
    assert incident.id in out["incident_ids"]
    assert main(["summary", "--offline"]) == 0
    text = capsys.readouterr().out
    assert "binance" in text and f"Incidents: {incident.id}" in text
    assert main(["summary", "--since", "soon"]) == 2
