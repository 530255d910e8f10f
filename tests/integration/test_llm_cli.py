"""`cryptomon analyze` and `cryptomon costs` on a real store, with the LLM on a local fake provider."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon_tui.cli import main
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent, TimelineEntry
from cryptomon_tui.store import Store
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import FakeOpenAIServer, Step


def shifted(s: sc.Scenario, delta: float) -> sc.Scenario:
    def move(t: float | None) -> float | None:
        return None if t is None else t + delta

    results = [
        dataclasses.replace(
            r, started_at=r.started_at + delta, ban_until=move(r.ban_until), maintenance_until=move(r.maintenance_until)
        )
        for r in s.results
    ]
    inc = s.incident.with_changes(
        started_at=s.incident.started_at + delta,
        updated_at=s.now + delta,
        ban_until=move(s.incident.ban_until),
        timeline=tuple(TimelineEntry(e.ts + delta, e.kind, e.text) for e in s.incident.timeline),
    )
    return sc.Scenario(s.name, inc, results, s.others, s.stats, now=s.now + delta)


def seed(scenario: sc.Scenario) -> None:
    async def run() -> None:
        store = Store(StorageConfig(), RealClock())
        assert await store.open(background=False)
        for r in scenario.results:
            store.on_result(r)
        store.on_event(
            IncidentEvent(ts=scenario.incident.started_at, event=EventType.OPENED, incident=scenario.incident)
        )
        await store.flush()
        await store.close()

    asyncio.run(run())


@pytest.fixture
def banned() -> sc.Scenario:
    s = shifted(sc.binance_ip_ban(), time.time() - sc.binance_ip_ban().now - 2)
    seed(s)
    return s


@pytest.fixture
def provider() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    srv.default = Step(prompt_tokens=1_000_000, completion_tokens=250_000)  # $0.28 + $0.105 on DeepSeek V3.2
    srv.start_in_thread()
    yield srv
    srv.stop_thread()


def llm_config(tmp_path: Path, url: str, budget: str = "5") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        "analysis:\n"
        "  llm:\n"
        f"    base_url: {url}\n"
        "    model: deepseek-chat\n"
        "    api_key: ${TEST_LLM_KEY}\n"
        "    stream: false\n"
        "    timeout: 5s\n"
        f"  monthly_budget_usd: {budget}\n",
        encoding="utf-8",
    )
    return str(path)


def test_offline_analysis_of_a_stored_incident(banned: sc.Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", banned.incident.id, "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["category"] == "ip_banned" and out["source"] == "offline"
    assert out["incident"]["id"] == banned.incident.id
    assert main(["analyze", banned.incident.id[:8]]) == 0  # unique prefix, human output
    text = capsys.readouterr().out
    assert "Root cause  binance has banned this IP" in text and "Recovery" in text


def test_unknown_incident_is_a_clear_error(banned: sc.Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "no-such-incident"]) == 1
    assert "no incident 'no-such-incident'" in capsys.readouterr().err


def test_model_without_an_llm_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", "x", "--model", "gpt-4.1"]) == 2
    assert "analysis.llm" in capsys.readouterr().err


def test_llm_analysis_is_paid_once_and_shows_in_costs(
    banned: sc.Scenario,
    provider: FakeOpenAIServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-cli-123456")
    cfg = llm_config(tmp_path, provider.url)
    assert main(["analyze", banned.incident.id, "--json", "-c", cfg]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["source"] == "deepseek-chat" and Decimal(first["cost_usd"]) == Decimal("0.385")
    assert main(["analyze", banned.incident.id, "--json", "-c", cfg]) == 0  # another process, same store
    second = json.loads(capsys.readouterr().out)
    assert second["root_cause"] == first["root_cause"] and len(provider.requests) == 1
    assert main(["analyze", banned.incident.id, "--json", "--force", "-c", cfg]) == 0
    assert len(provider.requests) == 2
    capsys.readouterr()

    assert main(["costs", "--json", "-c", cfg]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Decimal(report["spent_usd"]) == Decimal("0.770") and report["calls"] == 2
    assert Decimal(report["budget_left_usd"]) == Decimal("4.230")
    assert Decimal(report["what_if_usd"]["gpt-4.1"]) == Decimal("8.00")  # 2M in * $2 + 0.5M out * $8
    assert main(["costs", "-c", cfg]) == 0
    text = capsys.readouterr().out
    assert "$0.77" in text and "deepseek-chat" in text and "claude-sonnet-4.5" in text


def test_costs_rejects_a_bad_month(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["costs", "--month", "2025-13"]) == 2
    assert "YYYY-MM" in capsys.readouterr().err
    assert main(["costs", "--month", "2024-02"]) == 0
    assert "LLM costs for 2024-02" in capsys.readouterr().out


HOSTILE = "\x1b[2J\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\u202eevil\u2066\x08\x7f\r"
HOSTILE_JSON = json.dumps(
    {
        "root_cause": f"cause {HOSTILE}",
        "severity": "ERROR",
        "recommended_action": f"act {HOSTILE}",
        "estimated_recovery": f"soon {HOSTILE}",
        "confidence": 0.5,
        "evidence": [f"ev {HOSTILE}"],
    }
)
# what no CLI output may carry: ESC, BEL, C0 but newline/tab, DEL, C1, bidi controls
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("stream", [False, True])
def test_hostile_llm_replies_never_reach_the_terminal(
    banned: sc.Scenario,
    provider: FakeOpenAIServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stream: bool,
) -> None:
    """Issue 12: escape sequences (clear screen, OSC title, OSC 52 clipboard write), BEL, C1 and bidi
    overrides in an LLM reply, raw and JSON-escaped, fresh and cached, valid and not valid JSON."""
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-cli-123456")
    cfg = llm_config(tmp_path, provider.url)
    if stream:
        text = Path(cfg).read_text().replace("stream: false", "stream: true")
        Path(cfg).write_text(text)
    raw_hostile = HOSTILE_JSON.replace("\\u001b", "\x1b").replace("\\u0007", "\x07")  # raw bytes inside JSON
    provider.script(
        Step(content=HOSTILE_JSON),  # JSON escapes
        Step(content=f"not json at all {HOSTILE}"),  # "Model reply (not valid JSON)", twice (repair too)
        Step(content=f"still not json {HOSTILE}"),
        Step(content=raw_hostile),
    )
    outputs = []
    for args in (
        ["analyze", banned.incident.id, "-c", cfg],  # fresh
        ["analyze", banned.incident.id, "-c", cfg],  # cached
        ["analyze", banned.incident.id, "--force", "-c", cfg],  # not valid JSON
        ["analyze", banned.incident.id, "--force", "-c", cfg],  # raw controls inside the JSON strings
        ["analyze", banned.incident.id, "--json", "-c", cfg],
        ["incidents", "--json"],
        ["incidents"],
    ):
        main(args)
        out, err = capfd.readouterr()
        outputs.append((args, out + err))
    assert len(provider.requests) >= 3
    assert any("cause" in o for _, o in outputs) and any("not valid JSON" in o or "not json" in o for _, o in outputs)
    for args, out in outputs:
        bad = UNSAFE.search(out)
        assert bad is None, f"{args}: {bad.group(0)!r} in {out[max(0, bad.start() - 40):bad.end() + 20]!r}"


def test_costs_roi_prices_this_months_ledger_on_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12 item 6: from the real ledger (SQLite), this month's tokens priced on each model of the table,
    monthly and yearly differences against the configured model, the seed's figures and the break-even."""
    now = time.time()

    async def spend() -> None:
        store = Store(StorageConfig(), RealClock())
        assert await store.open(background=False)
        await store.llm_usage_add(model="deepseek-chat", tokens_in=2_000_000, tokens_out=1_000_000,
                                  cost_usd=Decimal("0.98"), ts=now - 1)
        await store.close()

    asyncio.run(spend())
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-cli-123456")
    cfg = llm_config(tmp_path, "http://127.0.0.1:9/v1")
    assert main(["costs", "--roi", "--json", "-c", cfg]) == 0
    roi = json.loads(capsys.readouterr().out)["roi"]
    assert roi["tokens_month_to_date"] == 3_000_000 and roi["current_model"] == "deepseek-v3.2"
    models = {m["model"]: m for m in roi["models"]}
    assert set(models) >= {"gpt-4.1", "deepseek-v3.2", "claude-sonnet-4.5", "gemini-2.5-flash"}
    assert Decimal(models["gpt-4.1"]["month_to_date_usd"]) == Decimal("12.00")  # 2M * $2 + 1M * $8
    assert Decimal(models["deepseek-v3.2"]["month_to_date_usd"]) == Decimal("0.98")
    gpt = models["gpt-4.1"]
    assert abs(Decimal(gpt["diff_yearly_usd"]) - Decimal(gpt["diff_monthly_usd"]) * 12) < Decimal("0.002")
    assert Decimal(gpt["diff_monthly_usd"]) > 0 and Decimal(models["deepseek-v3.2"]["diff_monthly_usd"]) == 0
    seed = roi["seed"]
    assert seed["figures_usd"] == {"gpt-4.1": "80.00", "deepseek-v3.2": "4.20"}
    assert seed["table_usd"] == {"gpt-4.1": "80.00", "deepseek-v3.2": "4.20"}  # the table agrees with the seed
    assert Decimal(seed["monthly_saving_usd"]) == Decimal("75.80")
    assert Decimal(seed["yearly_saving_usd"]) == Decimal("909.60")
    assert roi["break_even_tokens_per_month"] == 659630  # $5 budget / ($75.80 / 10 M tokens)
    assert main(["costs", "--roi", "-c", cfg]) == 0
    text = capsys.readouterr().out
    assert "ROI for" in text and "seed reference, 10 M tokens/month" in text and "break-even" in text
