"""Generic HTTP target: safe condition language, expected statuses, latency limit, registry."""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.config.exchanges import ExchangeConfig
from cryptomon_tui.exchanges.base import Classification, RawResponse
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter, BinanceSpotAdapter
from cryptomon_tui.exchanges.bybit import BybitAdapter
from cryptomon_tui.exchanges.deribit import DeribitAdapter
from cryptomon_tui.exchanges.generic import ConditionError, GenericAdapter, compile_condition
from cryptomon_tui.exchanges.okx import OkxAdapter
from cryptomon_tui.exchanges.registry import ADAPTERS, adapter_class, create_adapter
from cryptomon_tui.kernel.results import Outcome

DOC = {
    "status": "ok",
    "count": 5,
    "count_text": "7",
    "data": [{"healthy": True, "name": "a"}, {"healthy": False}],
    "items": [1, 2],
    "x": None,
    "nested": {"key with space": 3},
}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ("$.status == 'ok'", True),
        ('$.status == "ok"', True),
        ("$.status != 'ok'", False),
        ("$.data[0].healthy == true", True),
        ("$.data[1].healthy == true", False),
        ("$.data[-1].healthy == false", True),
        ("$.data[5].healthy == true", False),
        ("$.count > 3", True),
        ("$.count >= 5 and $.count < 6", True),
        ("$.count > 5", False),
        ("$.count_text > 6", True),  # numeric strings compare as numbers
        ("$.count == 5.0", True),
        ("len($.items) >= 1", True),
        ("len($.items) > 2", False),
        ("len($.missing) >= 0", False),
        ("has($.x)", True),
        ("has($.y)", False),
        ("$.x == null", True),
        ("not has($.y) && $.status == 'ok'", True),
        ("!($.count > 3)", False),
        ("$.missing == 1 || $.status == 'ok'", True),
        ("$.nested['key with space'] == 3", True),
        ("$.data[0].healthy == 1", False),  # booleans never equal numbers
        ("$.count == true", False),
        ("$.status > 3", False),
        ("$.data[0].healthy", True),
        ("$.missing", False),
    ],
)
def test_condition_language(condition: str, holds: bool) -> None:
    assert compile_condition(condition).holds(DOC) is holds


@pytest.mark.parametrize(
    "bad",
    ["", "$.status ==", "status == 'ok'", "$.a == 'unterminated", "__import__('os')", "$.a = 1", "$.a[", "$..a",
     "len($.a", "x" * 1001, "$.a == 1 1", "eval($.a)", "$.a[b]"],
)
def test_bad_conditions_are_rejected_with_a_reason(bad: str) -> None:
    with pytest.raises(ConditionError):
        compile_condition(bad)


def test_condition_never_raises_on_odd_documents() -> None:
    condition = compile_condition("$.a[0].b > 1 and len($.a) == 1")
    for doc in (None, [], "x", 5, {"a": None}, {"a": [None]}, {"a": [{"b": "nan"}]}, {"a": [{"b": [1]}]}):
        assert condition.holds(doc) is False


def target(**kwargs: object) -> GenericAdapter:
    return GenericAdapter("bot-health", "https://health.example.test/v1/health?deep=1", **kwargs)  # type: ignore[arg-type]


def test_probe_is_named_after_the_target_and_splits_the_url() -> None:
    adapter = target(method="head", headers={"Authorization": "Bearer x"})
    spec = adapter.probes()["bot-health"]
    assert adapter.default_probes == ("bot-health",)
    assert adapter.default_base_url == "https://health.example.test"
    assert (spec.method, spec.path, dict(spec.params)) == ("HEAD", "/v1/health", {"deep": "1"})
    assert dict(spec.headers) == {"Authorization": "Bearer x"}
    with pytest.raises(ValueError, match="absolute"):
        GenericAdapter("x", "ftp://host/")


def test_status_and_condition_outcomes() -> None:
    adapter = target(expect_status=[200, 204], condition="$.status == 'ok'")
    ok = json.dumps({"status": "ok"}).encode()
    assert adapter.classify("bot-health", RawResponse(200, {}, ok)).outcome is Outcome.OK
    failed = adapter.classify("bot-health", RawResponse(200, {}, b'{"status": "degraded"}'))
    assert (failed.outcome, failed.error_code) == (Outcome.EXCHANGE_ERROR, "condition_failed")
    assert "$.status == 'ok'" in (failed.error_message or "")
    assert adapter.classify("bot-health", RawResponse(200, {}, b"<html/>")).outcome is Outcome.BAD_PAYLOAD
    assert adapter.classify("bot-health", RawResponse(503, {}, ok)).outcome is Outcome.HTTP_5XX
    assert adapter.classify("bot-health", RawResponse(404, {}, ok)).outcome is Outcome.HTTP_4XX
    limited = adapter.classify("bot-health", RawResponse(429, {"retry-after": "3"}, b""))
    assert (limited.outcome, limited.retry_after_s) == (Outcome.RATE_LIMITED, 3)
    assert adapter.classify("bot-health", RawResponse(301, {}, b"")).outcome is Outcome.EXCHANGE_ERROR
    plain = target(expect_status=[204])
    assert plain.classify("bot-health", RawResponse(204, {}, b"")).outcome is Outcome.OK
    assert plain.classify("bot-health", RawResponse(200, {}, b"")).error_code == "http_200"


def test_latency_limit() -> None:
    adapter = target(latency_limit_s=0.25)
    ok = Classification(outcome=Outcome.OK)
    assert adapter.judge_latency(ok, 250.0) is ok
    slow = adapter.judge_latency(ok, 312.5)
    assert (slow.outcome, slow.error_code) == (Outcome.EXCHANGE_ERROR, "latency_limit")
    assert slow.error_message == "took 312.5 ms, over the 250 ms latency limit"
    failed = Classification(outcome=Outcome.HTTP_5XX)
    assert adapter.judge_latency(failed, 10_000) is failed
    assert target().judge_latency(ok, 1e9) is ok
    assert BinanceSpotAdapter().judge_latency(ok, 1e9) is ok  # exchanges: latency is measured, not judged here


def test_registry_kinds_and_creation() -> None:
    assert set(ADAPTERS) == {"binance_spot", "binance_futures", "bybit", "okx", "deribit", "generic"}
    assert adapter_class("okx") is OkxAdapter
    with pytest.raises(KeyError, match="known"):
        adapter_class("kraken")
    spot = create_adapter("binance", ExchangeConfig(kind="binance_spot", symbol="ETHUSDT"))
    assert isinstance(spot, BinanceSpotAdapter) and spot.symbol == "ETHUSDT" and spot.name == "binance"
    assert isinstance(create_adapter("binance_futures", ExchangeConfig(kind="binance_futures")), BinanceFuturesAdapter)
    bybit = create_adapter("bybit-perp", ExchangeConfig(kind="bybit", symbol="linear:BTCUSDT"))
    assert isinstance(bybit, BybitAdapter) and bybit.category == "linear" and bybit.name == "bybit-perp"
    assert isinstance(create_adapter("deribit", ExchangeConfig()), DeribitAdapter)  # kind from the name
    cfg = ExchangeConfig(kind="generic", url="http://127.0.0.1:8080/health", condition="$.ok == true",
                         latency_limit="300ms", expect_status=[200], headers={"X-Token": "t"})
    generic = create_adapter("my-bot", cfg)
    assert isinstance(generic, GenericAdapter)
    assert list(generic.probes()) == ["my-bot"] and generic.latency_limit_s == 0.3
    with pytest.raises(ValueError, match="condition"):
        create_adapter("my-bot", ExchangeConfig(kind="generic", url="http://127.0.0.1/", condition="$.ok =="))
    with pytest.raises(ValueError, match="category"):
        create_adapter("bybit", ExchangeConfig(kind="bybit", symbol="perp:BTCUSDT"))


@pytest.mark.parametrize("kind", ["binance_spot", "binance_futures", "bybit", "okx", "deribit"])
def test_every_exchange_adapter_fulfils_the_contract(kind: str) -> None:
    adapter = adapter_class(kind)()
    probes = adapter.probes()
    assert set(adapter.default_probes) <= set(probes)
    assert set(probes) <= {"ping", "time", "status", "ticker", "book", "account"}
    for name, spec in probes.items():
        assert spec.name == name and spec.path.startswith("/") and spec.weight > 0
        assert spec.signed is (name == "account")
        if spec.endpoint_limit is not None:
            assert spec.min_interval_s >= 1 / spec.endpoint_limit.per_second - 1e-9  # never above the endpoint limit
    assert adapter.default_base_url.startswith("https://") and adapter.default_ws_url
    assert adapter.rate_limit.capacity > 0
    assert adapter.clock_ahead_tolerance_ms > 0 and adapter.clock_behind_tolerance_ms > 0
