"""Hostile responses give a classified outcome, never an exception (issue 2 acceptance).

Per adapter and probe: truncated JSON, HTML instead of JSON (with 200 and with error
statuses), a 50 MB body cut at the cap (and one the transport failed to cut), and wrong
types generated for every field of every reference sample body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cryptomon_tui.exchanges.base import ExchangeAdapter, RawResponse
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter, BinanceSpotAdapter
from cryptomon_tui.exchanges.bybit import BybitAdapter
from cryptomon_tui.exchanges.common import never_raise, to_float
from cryptomon_tui.exchanges.deribit import DeribitAdapter
from cryptomon_tui.exchanges.generic import GenericAdapter
from cryptomon_tui.exchanges.okx import OkxAdapter
from cryptomon_tui.kernel.results import Outcome
from tests.fakes.exchange_samples import EXPECTED, SAMPLES, Rest, sample_files

ADAPTERS: list[ExchangeAdapter] = [
    BinanceSpotAdapter(),
    BinanceFuturesAdapter(),
    BybitAdapter(),
    BybitAdapter(symbol="linear:BTCUSDT"),
    OkxAdapter(),
    DeribitAdapter(),
    GenericAdapter("bot-health", "http://127.0.0.1:9/health", condition="$.status == 'ok'"),
]
CASES = [(adapter, probe) for adapter in ADAPTERS for probe in adapter.probes()]
CASE_IDS = [f"{adapter.kind}-{getattr(adapter, 'category', '')}-{probe}" for adapter, probe in CASES]

FIFTY_MB = 50 * 1024 * 1024
CAP = 2_000_000

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>Attention Required! | Cloudflare</title></head>"
    b"<body><h1>Sorry, you have been blocked</h1></body></html>"
)
BODIES_ON_200: dict[str, bytes] = {
    "truncated_json": b'{"retCode":0,"result":{"timeSecond":"16886',
    "truncated_json_short": b"{",
    "html": HTML_PAGE,
    "empty": b"",
    "whitespace": b"  \r\n ",
    "binary": b"\x00\xff\xfe\x01garbage",
    "json_list": b"[1, 2, 3]",
    "json_null": b"null",
    "json_string": b'"ok"',
    "json_number": b"12345",
    "nan_constant": b'{"serverTime": NaN, "code": "0", "retCode": 0}',
    "deep_nesting": b"[" * 200_000 + b"]" * 200_000,
    "huge_integer": b'{"serverTime": ' + b"9" * 5000 + b"}",
    "bad_utf8": b'{"msg": "\xff\xfe"}',
}
STATUS_PAGES: dict[int, Outcome] = {
    403: Outcome.IP_BANNED,
    429: Outcome.RATE_LIMITED,
    502: Outcome.HTTP_5XX,
    503: Outcome.HTTP_5XX,
    504: Outcome.HTTP_5XX,
}


@pytest.fixture(scope="module")
def fifty_mb() -> bytes:
    return b'{"data": [' + b"1," * (FIFTY_MB // 2) + b"1]}"


def classify(adapter: ExchangeAdapter, probe: str, response: RawResponse) -> Any:
    result = adapter.classify(probe, response)
    assert isinstance(result.outcome, Outcome)
    assert result.error_code != "classifier_error", f"classifier raised on {response.body[:60]!r}: {result}"
    assert result.error_message is None or len(result.error_message) <= 300
    return result


@pytest.mark.parametrize(("adapter", "probe"), CASES, ids=CASE_IDS)
def test_unreadable_bodies_on_200_are_bad_payload(adapter: ExchangeAdapter, probe: str) -> None:
    for label, body in BODIES_ON_200.items():
        result = classify(adapter, probe, RawResponse(200, {}, body))
        expected = {Outcome.BAD_PAYLOAD, Outcome.EXCHANGE_ERROR} if adapter.kind == "generic" else {Outcome.BAD_PAYLOAD}
        assert result.outcome in expected, f"{label}: {result}"


@pytest.mark.parametrize(("adapter", "probe"), CASES, ids=CASE_IDS)
def test_html_error_pages_are_classified_by_status(adapter: ExchangeAdapter, probe: str) -> None:
    for status, outcome in STATUS_PAGES.items():
        result = classify(adapter, probe, RawResponse(status, {"content-type": "text/html"}, HTML_PAGE))
        if adapter.kind == "generic" and status == 403:
            outcome = Outcome.HTTP_4XX  # a user's own endpoint: plain 4xx, no ban semantics
        assert result.outcome is outcome, f"HTTP {status}: {result}"
        assert result.error_code == f"http_{status}"


@pytest.mark.parametrize(("adapter", "probe"), CASES, ids=CASE_IDS)
def test_fifty_megabyte_bodies(adapter: ExchangeAdapter, probe: str, fifty_mb: bytes) -> None:
    cut = fifty_mb[:CAP]
    result = classify(adapter, probe, RawResponse(200, {}, cut, truncated=True))
    assert result.outcome in (Outcome.BAD_PAYLOAD, Outcome.EXCHANGE_ERROR)
    assert result.outcome is Outcome.BAD_PAYLOAD or adapter.kind == "generic"
    assert classify(adapter, probe, RawResponse(503, {}, cut, truncated=True)).outcome is Outcome.HTTP_5XX
    # A transport that failed to cap: the adapter refuses to parse it rather than stall the loop.
    result = classify(adapter, probe, RawResponse(200, {}, fifty_mb))
    assert result.outcome in (Outcome.BAD_PAYLOAD, Outcome.EXCHANGE_ERROR)


def _truncations(body: bytes) -> Iterator[bytes]:
    step = max(1, len(body) // 12)
    yield from (body[:end] for end in range(1, len(body) - 1, step))


REST_SAMPLES = sorted(name for name, exp in EXPECTED.items() if isinstance(exp, Rest))


def _sample(name: str) -> tuple[ExchangeAdapter, Rest, Any]:
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES}")
    expected = EXPECTED[name]
    assert isinstance(expected, Rest)
    return expected.adapter(), expected, json.loads((SAMPLES / name).read_bytes())


@pytest.mark.parametrize("name", REST_SAMPLES)
def test_truncated_sample_bodies(name: str) -> None:
    adapter, expected, _ = _sample(name)
    body = (SAMPLES / name).read_bytes()
    for cut in _truncations(body):
        result = classify(adapter, expected.probe, RawResponse(expected.status, {}, cut))
        if expected.status == 200:
            assert result.outcome is Outcome.BAD_PAYLOAD, (cut, result)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    _get(copy, path[:-1])[path[-1]] = value
    return copy


def _wrong_values(original: Any) -> list[Any]:
    """Values of another type than the original (a numeric string also gets a non-numeric one)."""
    if isinstance(original, bool):
        return [None, [], {}, "abc", 12345]
    if isinstance(original, int | float):
        return [None, [], {}, True, "abc"]
    if isinstance(original, str):
        return [None, [], {}, True, "abc"] if to_float(original) is not None else [None, [], {}, True]
    if isinstance(original, list):
        return [None, "abc", 12345, {}, True]
    if isinstance(original, dict):
        return [None, "abc", 12345, [], True]
    return ["abc", [], {}]


# Fields a probe cannot do without: a wrong type there must be BAD_PAYLOAD, not OK.
CRITICAL: dict[str, list[tuple[Any, ...]]] = {
    "binance/spot_time_success.json": [("serverTime",)],
    "binance/spot_book_ticker_success.json": [("symbol",), ("bidPrice",), ("askPrice",), ("bidQty",), ("askQty",)],
    "binance/spot_depth_success.json": [("bids",), ("asks",), ("bids", 0), ("bids", 0, 0), ("lastUpdateId",)],
    "binance/spot_system_status_success.json": [("status",)],
    "binance/futures_ticker_price_success_recorded.json": [("symbol",), ("price",), ("time",)],
    "bybit/server_time_success.json": [("retCode",), ("result",), ("result", "timeNano"), ("result", "timeSecond")],
    "bybit/tickers_spot_success.json": [
        ("retCode",), ("result",), ("result", "list"), ("result", "list", 0),
        ("result", "list", 0, "bid1Price"), ("result", "list", 0, "ask1Price"), ("result", "list", 0, "symbol"),
    ],
    "bybit/orderbook_success.json": [("result", "b"), ("result", "a"), ("result", "a", 0, 1), ("result", "ts")],
    "bybit/system_status_success.json": [("result",), ("result", "list"), ("result", "list", 3, "state")],
    "okx/public_time_success.json": [("data",), ("data", 0), ("data", 0, "ts")],
    "okx/market_ticker_success.json": [
        ("data",), ("data", 0, "bidPx"), ("data", 0, "askPx"), ("data", 0, "instId"), ("data", 0, "ts"),
    ],
    "okx/market_books_success.json": [("data", 0, "asks"), ("data", 0, "bids", 0, 0)],
    "okx/system_status_success.json": [("data",), ("data", 0, "state")],
    "deribit/get_time_success.json": [("result",)],
    "deribit/status_success.json": [("result",), ("result", "locked")],
    "deribit/ticker_btc_perpetual_success.json": [
        ("result",), ("result", "best_bid_price"), ("result", "best_ask_price"),
        ("result", "instrument_name"), ("result", "timestamp"),
    ],
}


@pytest.mark.parametrize("name", REST_SAMPLES)
def test_wrong_types_in_every_field(name: str) -> None:
    adapter, expected, doc = _sample(name)
    critical = set(CRITICAL.get(name, []))
    checked = 0
    for path in _paths(doc):
        for value in _wrong_values(_get(doc, path)):
            body = json.dumps(_replaced(doc, path, value)).encode()
            result = classify(adapter, expected.probe, RawResponse(expected.status, {}, body))
            checked += 1
            if path in critical:
                assert result.outcome is Outcome.BAD_PAYLOAD, (path, value, result)
    assert checked or doc in ({}, [])
    assert critical <= set(_paths(doc)), "a CRITICAL path does not exist in the sample"


HUGE = 10**400  # within json.loads' 4300-digit limit, far beyond int64


@pytest.mark.parametrize("name", REST_SAMPLES)
def test_huge_integers_in_every_numeric_field(name: str) -> None:
    """A 400-digit integer where a number was: Bybit's timeNano and Deribit's usIn/usOut raised OverflowError in
    float arithmetic (the never_raise guard fired) and a 400-digit code became a 400-character error_code."""
    adapter, expected, doc = _sample(name)
    checked = 0
    for path in _paths(doc):
        original = _get(doc, path)
        if isinstance(original, bool) or not isinstance(original, int | float | str) or to_float(original) is None:
            continue
        for value in (HUGE, -HUGE, str(HUGE)):
            body = json.dumps(_replaced(doc, path, value)).encode()
            result = classify(adapter, expected.probe, RawResponse(expected.status, {}, body))
            assert result.error_code is None or len(result.error_code) <= 40, (path, result.error_code)
            checked += 1
    assert checked or name.endswith(".txt") or doc in ({}, [])


def test_every_critical_entry_names_a_sample() -> None:
    assert set(CRITICAL) <= set(REST_SAMPLES)
    assert {name for name in sample_files() if name in EXPECTED} >= set(CRITICAL) or not SAMPLES.is_dir()


def test_never_raise_turns_a_classifier_bug_into_a_data_point() -> None:
    def broken(probe: str, response: RawResponse) -> Any:
        raise KeyError("boom")

    result = never_raise(broken, "time", RawResponse(200, {}, b"{}"))
    assert (result.outcome, result.error_code) == (Outcome.BAD_PAYLOAD, "classifier_error")


@pytest.mark.parametrize("adapter", ADAPTERS, ids=[a.kind for a in ADAPTERS])
def test_hostile_websocket_frames(adapter: ExchangeAdapter) -> None:
    frames: list[Any] = [
        b"", "", b"\xff\xfe", "{", "[]", "null", 42, None, [1, 2], {"e": []}, {"op": []}, {"event": ["x"]},
        {"method": "subscription", "params": None}, {"error": "x"}, {"result": None}, {"arg": 1, "data": 2},
        {"topic": [], "data": None}, "[" * 10_000 + "]" * 10_000, "x" * 100_000,
        {"e": "trade", "E": HUGE, "t": HUGE, "s": "BTCUSDT"}, {"code": HUGE, "msg": "x"},
        {"topic": "orderbook.1.BTCUSDT", "ts": HUGE, "data": {"u": HUGE}}, {"arg": {}, "data": [{"seqId": HUGE}]},
        {"method": "subscription", "params": {"channel": "book", "data": {"change_id": HUGE}}},
        {"jsonrpc": "2.0", "result": {}, "usIn": HUGE, "usOut": HUGE},
    ]
    for frame in frames:
        event = adapter.classify_ws_message(frame)
        assert event.seq is None or abs(event.seq) < 2**63, frame
        assert event.kind in ("data", "pong", "subscribed", "auth_ok", "heartbeat_request", "server_shutdown",
                              "notice_reconnect", "error")
        assert event.message is None or len(event.message) <= 300
