"""The LLM analyzer against a local OpenAI-compatible server that behaves like real providers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from cryptomon_tui.analysis.context import AnalysisContext, build_context
from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.service import AnalysisService
from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.analysis import AnalysisConfig, LlmConfig
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import VALID_ANALYSIS, FakeOpenAIServer, Step

API_KEY = "sk-test-0123456789abcdefSECRETKEY"


class AutoClock(FakeClock):
    """A fake clock whose sleep returns at once after moving time: retries run instantly, waits are recorded."""

    def __init__(self) -> None:
        super().__init__(sc.T0 + 600)
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.set(self.now() + seconds)
        await asyncio.sleep(0)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    await srv.start()
    yield srv
    await srv.stop()


def make_config(server: FakeOpenAIServer, **llm: Any) -> Config:
    analysis_extra = llm.pop("analysis", {})
    settings: dict[str, Any] = {
        "base_url": server.url,
        "model": "deepseek-chat",
        "api_key": SecretStr(API_KEY),
        "timeout": 2.0,
        "stream": False,
        **llm,
    }
    return Config(analysis=AnalysisConfig(llm=LlmConfig(**settings), **analysis_extra))


def ctx_for(config: Config, scenario: sc.Scenario | None = None) -> AnalysisContext:
    s = scenario or sc.binance_ip_ban()
    return build_context(s.incident, s.stats, s.results, s.others, config, now=s.now)


def service(config: Config, clock: FakeClock | None = None) -> tuple[AnalysisService, InMemoryUsageLedger]:
    ledger = InMemoryUsageLedger()
    return AnalysisService(config, ledger, clock or AutoClock()), ledger


async def test_json_mode_reply_is_validated_and_its_usage_priced(server: FakeOpenAIServer) -> None:
    server.script(Step(prompt_tokens=1_000_000, completion_tokens=500_000))
    config = make_config(server)
    svc, ledger = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat"
    assert a.severity.value == "CRITICAL" and a.confidence == 0.9
    assert a.root_cause.startswith("The exchange banned this IP")
    # deepseek-chat is an alias of DeepSeek V3.2: $0.28 in + $0.42 out per million
    assert a.cost_usd == Decimal("0.49")
    assert (a.prompt_tokens, a.completion_tokens) == (1_000_000, 500_000)
    body = server.requests[0].json
    assert body["response_format"] == {"type": "json_object"}
    assert body["model"] == "deepseek-chat" and body["max_tokens"] == 500
    assert server.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    usage = await ledger.month_usage("2023-11")
    assert len(usage) == 1 and usage[0].incident_id == "inc-ip_banned-binance" and not usage[0].estimated
    await svc.aclose()


async def test_streamed_reply_arrives_in_parts_with_usage_from_the_final_chunk(server: FakeOpenAIServer) -> None:
    server.script(Step(prompt_tokens=800, completion_tokens=120, chunk_chars=7))
    config = make_config(server, stream=True)
    svc, ledger = service(config)
    parts: list[str] = []
    a = await svc.analyze(ctx_for(config), on_partial=parts.append)
    assert len(parts) > 10 and "".join(parts) == VALID_ANALYSIS
    assert a.source == "deepseek-chat"
    assert (a.prompt_tokens, a.completion_tokens) == (800, 120)
    body = server.requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (await ledger.month_total("2023-11")) == Decimal("0.0002744")  # 800*0.28/1e6 + 120*0.42/1e6
    await svc.aclose()


async def test_async_partial_callbacks_are_awaited(server: FakeOpenAIServer) -> None:
    config = make_config(server, stream=True)
    svc, _ = service(config)
    seen: list[str] = []

    async def on_partial(text: str) -> None:
        seen.append(text)

    await svc.analyze(ctx_for(config), on_partial=on_partial)
    assert "".join(seen) == VALID_ANALYSIS
    await svc.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_content_is_tolerated(server: FakeOpenAIServer, stream: bool) -> None:
    server.script(Step(reasoning="The 418 follows 429s, so { this is a ban }. " * 5))
    config = make_config(server, stream=stream)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat" and a.raw_text is None
    await svc.aclose()


async def test_provider_without_stream_options_is_retried_without_them(server: FakeOpenAIServer) -> None:
    server.script(Step(reject_stream_options=True), Step(prompt_tokens=None))
    config = make_config(server, stream=True)
    svc, ledger = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat"
    assert "stream_options" not in server.requests[1].json
    assert any("estimated" in n for n in a.notes)  # no usage without include_usage
    usage = await ledger.month_usage("2023-11")
    assert usage[0].estimated and usage[0].prompt_tokens > 100
    await svc.aclose()


async def test_401_says_the_key_was_rejected_and_answers_offline(server: FakeOpenAIServer) -> None:
    server.script(Step(status=401))
    config = make_config(server)
    svc, ledger = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and a.category == "ip_banned"
    assert a.notes[0].startswith("API key rejected: Incorrect API key provided")
    assert API_KEY not in json.dumps(a.to_json_dict())
    assert await ledger.month_usage("2023-11") == []
    await svc.aclose()


async def test_429_waits_retry_after_then_succeeds(server: FakeOpenAIServer) -> None:
    server.script(
        Step(status=429, headers={"Retry-After": "3"}), Step(status=429, headers={"Retry-After": "2"}), Step()
    )
    config = make_config(server)
    clock = AutoClock()
    svc, _ = service(config, clock)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat"
    assert clock.slept == [3.0, 2.0]
    assert len(server.requests) == 3
    await svc.aclose()


async def test_429_past_the_retry_budget_goes_offline_with_a_bounded_wait(server: FakeOpenAIServer) -> None:
    server.default = Step(status=429, headers={"Retry-After": "8"})
    config = make_config(server, max_retries=5, max_retry_wait=20)
    clock = AutoClock()
    svc, _ = service(config, clock)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline"
    assert sum(clock.slept) <= 20 and clock.slept == [8.0, 8.0]
    assert "rate limit (429)" in a.notes[0] and "retry after 8s" in a.notes[0]
    await svc.aclose()


async def test_429_with_a_long_retry_after_does_not_wait_at_all(server: FakeOpenAIServer) -> None:
    server.script(Step(status=429, headers={"Retry-After": "3600"}))
    config = make_config(server)
    clock = AutoClock()
    svc, _ = service(config, clock)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and clock.slept == []
    assert len(server.requests) == 1
    await svc.aclose()


async def test_429_retry_after_ms_and_http_date_are_understood() -> None:
    from cryptomon_tui.analysis.llm import retry_after_seconds

    assert retry_after_seconds({"retry-after-ms": "1500"}, 0) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 1445412470.0) == 10.0
    assert retry_after_seconds({"retry-after": "soon"}, 0) is None
    assert retry_after_seconds({}, 0) is None


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_answers_offline_with_the_reason(server: FakeOpenAIServer, status: int) -> None:
    server.script(Step(status=status), Step(status=status))
    config = make_config(server)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline"
    assert a.notes[0].startswith(f"LLM provider error {status}")
    assert len(server.requests) == 2  # one retry after a pause, then offline
    await svc.aclose()


async def test_one_5xx_is_retried_once_after_a_pause(server: FakeOpenAIServer) -> None:
    """Issue 12 item 6: a passing 5xx costs nothing and the second try answers."""
    server.script(Step(status=502))
    config = make_config(server)
    clock = AutoClock()
    svc, ledger = service(config, clock)
    a = await svc.analyze(ctx_for(config))
    assert a.source != "offline" and len(server.requests) == 2
    assert clock.slept == [1.0]
    assert len(ledger._items) == 1  # the failed try was not billed
    await svc.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_reply_that_never_ends_times_out_to_offline(server: FakeOpenAIServer, stream: bool) -> None:
    server.script(Step(hang=True), Step(hang=True))  # the timeout is retried once
    config = make_config(server, stream=stream, timeout=0.4)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline"
    assert a.notes == ["LLM did not answer within 0.4s"]
    await svc.aclose()


async def test_unreachable_endpoint_answers_offline(server: FakeOpenAIServer) -> None:
    config = make_config(server)
    await server.stop()
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and a.notes[0].startswith("cannot reach the LLM endpoint")
    await svc.aclose()


async def test_invalid_json_gets_one_repair_try(server: FakeOpenAIServer) -> None:
    server.script(
        Step(content="The IP is banned. Severity: critical.", prompt_tokens=500, completion_tokens=20),
        Step(content="```json\n" + VALID_ANALYSIS + "\n```", prompt_tokens=200, completion_tokens=90),
    )
    config = make_config(server)
    svc, ledger = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat"
    repair = server.requests[1].json["messages"][1]["content"]
    assert "The IP is banned. Severity: critical." in repair and "root_cause" in repair
    purposes = [u.purpose for u in await ledger.month_usage("2023-11")]
    assert purposes == ["analysis", "repair"]
    assert (a.prompt_tokens, a.completion_tokens) == (700, 110)
    await svc.aclose()


async def test_invalid_json_twice_shows_offline_with_the_raw_text(server: FakeOpenAIServer) -> None:
    server.script(
        Step(content="I think the exchange is down."),
        Step(content='{"root_cause": "x", "severity": "BAD"}'),
    )
    config = make_config(server)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and a.category == "ip_banned"
    assert a.raw_text == "I think the exchange is down."
    assert "not valid JSON" in a.notes[-1]
    assert a.cost_usd > 0  # both calls were paid for
    await svc.aclose()


async def test_schema_violations_are_repaired_not_accepted(server: FakeOpenAIServer) -> None:
    bad = json.dumps({"root_cause": "Ban.", "severity": "CRITICAL", "confidence": 7})
    server.script(Step(content=bad), Step())
    config = make_config(server)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat" and len(server.requests) == 2
    assert "recommended_action" in server.requests[1].json["messages"][1]["content"]
    await svc.aclose()


async def test_asking_twice_does_not_pay_twice_unless_forced(server: FakeOpenAIServer) -> None:
    config = make_config(server)
    svc, ledger = service(config)
    ctx = ctx_for(config)
    first = await svc.analyze(ctx)
    second = await svc.analyze(ctx)
    assert len(server.requests) == 1
    assert second.root_cause == first.root_cause and "cached" in second.notes[-1]
    await svc.analyze(ctx, force=True)
    assert len(server.requests) == 2
    assert len(await ledger.month_usage("2023-11")) == 2
    await svc.aclose()


async def test_concurrent_requests_for_one_incident_share_one_call(server: FakeOpenAIServer) -> None:
    server.default = Step(delay=0.2)
    config = make_config(server)
    svc, _ = service(config)
    ctx = ctx_for(config)
    results = await asyncio.gather(*(svc.analyze(ctx) for _ in range(4)))
    assert len(server.requests) == 1 and all(r.source == "deepseek-chat" for r in results)
    await svc.aclose()


async def test_offline_flag_and_other_model(server: FakeOpenAIServer) -> None:
    server.script(Step(prompt_tokens=1_000_000, completion_tokens=1_000_000))
    config = make_config(server)
    svc, _ = service(config)
    ctx = ctx_for(config)
    off = await svc.analyze(ctx, offline=True)
    assert off.source == "offline" and server.requests == []
    other = await svc.analyze(ctx, model="gpt-4.1")
    assert other.source == "gpt-4.1" and server.requests[0].json["model"] == "gpt-4.1"
    assert other.cost_usd == Decimal("10.00")  # $2 in + $8 out per million
    await svc.aclose()


async def test_without_llm_config_everything_is_offline() -> None:
    svc = AnalysisService(Config(), InMemoryUsageLedger(), AutoClock())
    a = await svc.analyze(ctx_for(Config()))
    assert a.source == "offline" and a.cost_usd == 0
    await svc.aclose()


async def test_reasoning_model_parameter_refusals_are_adapted_to(server: FakeOpenAIServer) -> None:
    server.script(
        Step(
            status=400,
            body={
                "error": {
                    "message": "Unsupported parameter: 'max_tokens' is not supported with this "
                    "model. Use 'max_completion_tokens' instead."
                }
            },
        ),
        Step(status=400, body={"error": {"message": "Unsupported value: 'temperature' does not support 0.2."}}),
        Step(status=400, body={"error": {"message": "response_format json_object is not supported"}}),
        Step(),
    )
    config = make_config(server)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat"
    final = server.requests[-1].json
    assert "max_completion_tokens" in final and "max_tokens" not in final
    assert "temperature" not in final and "response_format" not in final
    await svc.aclose()


async def test_other_400s_are_reported_not_retried(server: FakeOpenAIServer) -> None:
    server.script(Step(status=400, body={"error": {"message": "Model Not Exist"}}))
    config = make_config(server)
    svc, _ = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and a.notes == ["LLM request rejected (400): Model Not Exist"]
    assert len(server.requests) == 1
    await svc.aclose()


async def test_a_model_without_a_price_is_refused_unless_priced(server: FakeOpenAIServer) -> None:
    """Issue 12 item 6: an unknown price would be recorded at $0 and escape the budget: no paid call."""
    config = make_config(server, model="mystery-model-9")
    svc, ledger = service(config)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "offline" and "no known price" in a.notes[0] and "price_in" in a.notes[0]
    assert server.requests == [] and ledger._items == []
    await svc.aclose()

    priced = make_config(server, model="mystery-model-9", price_in=Decimal("1.00"), price_out=Decimal("3.00"))
    server.script(Step(prompt_tokens=1_000_000, completion_tokens=1_000_000))
    svc, ledger = service(priced)
    b = await svc.analyze(ctx_for(priced))
    assert b.source == "mystery-model-9" and b.cost_usd == Decimal("4.00")
    assert ledger._items[0].cost_usd == Decimal("4.00")
    await svc.aclose()


@pytest.mark.parametrize("stream", [False, True])
async def test_hostile_usage_figures_are_estimated_not_believed(server: FakeOpenAIServer, stream: bool) -> None:
    """openai does not validate replies: a negative or absurd token count reached the ledger as is (a negative
    one failed the Usage record and lost the model's answer). Not believed: the call is priced on estimates."""
    for prompt, completion in ((-5, 95), (10**20, 95), (420, -1)):
        server.script(Step(prompt_tokens=prompt, completion_tokens=completion))
        config = make_config(server, stream=stream)
        svc, ledger = service(config)
        a = await svc.analyze(ctx_for(config))
        assert a.source == "deepseek-chat", (prompt, completion, a.notes)
        assert 0 < a.prompt_tokens < 100_000 and 0 < a.completion_tokens < 10_000
        usage = await ledger.month_usage("2023-11")
        assert len(usage) == 1 and usage[0].estimated
        await svc.aclose()


async def test_a_retry_after_that_is_no_number_falls_back_to_backoff(server: FakeOpenAIServer) -> None:
    server.script(Step(status=429, headers={"Retry-After": "inf"}), Step(status=429, headers={"retry-after-ms": "nan"}),
                  Step())
    config = make_config(server)
    clock = AutoClock()
    svc, _ = service(config, clock)
    a = await svc.analyze(ctx_for(config))
    assert a.source == "deepseek-chat" and clock.slept == [1.0, 2.0]
    await svc.aclose()
