"""Deribit v2 adapter: JSON-RPC errors, usIn/usOut clock, lock status forms, signing (§4)."""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.exchanges.base import Credentials, RawResponse
from cryptomon_tui.exchanges.deribit import DeribitAdapter, deribit_rest_signature, deribit_ws_signature
from cryptomon_tui.kernel.results import Outcome

US_IN, US_OUT = 1616444742558343, 1616444742558590


def reply(result: object = None, error: object = None, **extra: object) -> bytes:
    doc: dict[str, object] = {"jsonrpc": "2.0", "id": 1, "usIn": US_IN, "usOut": US_OUT, "usDiff": 247,
                              "testnet": False, **extra}
    if error is not None:
        doc["error"] = error
    else:
        doc["result"] = result
    return json.dumps(doc).encode()


def test_official_ws_client_signature_vector() -> None:
    assert deribit_ws_signature("ABCD", 1554883365000, "fdbmmz79", "") == (
        "e20c9cd5639d41f8bbc88f4d699c4baf94a4f0ee320e9a116b72743c449eb994"
    )


def test_rest_signature_header() -> None:
    adapter = DeribitAdapter()
    spec = adapter.probes()["account"]
    assert dict(spec.params) == {"currency": "BTC"}
    signed = adapter.sign(spec, Credentials("client-id", "ABCD"), 1554883365000, "currency=BTC", nonce="fdbmmz79")
    expected_sig = deribit_rest_signature("ABCD", 1554883365000, "fdbmmz79", "GET",
                                          "/api/v2/private/get_account_summary?currency=BTC")
    assert signed.headers["Authorization"] == (
        f"deri-hmac-sha256 id=client-id,ts=1554883365000,sig={expected_sig},nonce=fdbmmz79"
    )
    import hashlib
    import hmac

    plain = b"1554883365000\nfdbmmz79\nGET\n/api/v2/private/get_account_summary?currency=BTC\n\n"
    assert expected_sig == hmac.new(b"ABCD", plain, hashlib.sha256).hexdigest()
    # Without an explicit nonce a fresh one is drawn each time.
    first = adapter.sign(spec, Credentials("id", "s"), 1, "currency=BTC").headers["Authorization"]
    second = adapter.sign(spec, Credentials("id", "s"), 1, "currency=BTC").headers["Authorization"]
    assert first != second


def test_probe_paths_and_limits() -> None:
    probes = DeribitAdapter(symbol="ETH-PERPETUAL").probes()
    assert probes["time"].path == "/api/v2/public/get_time"
    assert probes["ping"].path == "/api/v2/public/test"
    assert probes["status"].path == "/api/v2/public/status"
    assert dict(probes["ticker"].params) == {"instrument_name": "ETH-PERPETUAL"}
    assert dict(probes["book"].params) == {"instrument_name": "ETH-PERPETUAL", "depth": "1"}
    assert dict(probes["account"].params) == {"currency": "ETH"}
    assert DeribitAdapter(symbol="SOL_USDC").currency == "USDC"
    assert DeribitAdapter.rate_limit.per_second == 20
    assert DeribitAdapter.clock_ahead_tolerance_ms == 60_000


def test_server_time_is_the_us_midpoint_on_every_reply() -> None:
    result = DeribitAdapter().classify("time", RawResponse(200, {}, reply(1616444742000)))
    assert result.server_time_ms == pytest.approx((US_IN + US_OUT) / 2000)
    ticker_like = DeribitAdapter().classify("ping", RawResponse(200, {}, reply({"version": "1.2.26"})))
    assert ticker_like.server_time_ms == pytest.approx((US_IN + US_OUT) / 2000)
    assert ticker_like.extra["version"] == "1.2.26"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (10028, Outcome.RATE_LIMITED), (10066, Outcome.RATE_LIMITED), (13004, Outcome.AUTH), (13009, Outcome.AUTH),
        (10000, Outcome.AUTH), (11051, Outcome.MAINTENANCE), (13025, Outcome.MAINTENANCE),
        (13503, Outcome.MAINTENANCE), (13028, Outcome.MAINTENANCE), (11056, Outcome.MAINTENANCE),
        (11094, Outcome.HTTP_5XX), (10001, Outcome.HTTP_5XX), (-32602, Outcome.EXCHANGE_ERROR),
        (-32600, Outcome.EXCHANGE_ERROR), (-32700, Outcome.EXCHANGE_ERROR), (10009, Outcome.EXCHANGE_ERROR),
    ],
)
def test_json_rpc_errors(code: int, outcome: Outcome) -> None:
    body = reply(error={"code": code, "message": "token_text", "data": {"reason": "x"}})
    result = DeribitAdapter().classify("ticker", RawResponse(400, {}, body))
    assert (result.outcome, result.error_code, result.error_message) == (outcome, str(code), "token_text")
    assert result.server_time_ms is not None


@pytest.mark.parametrize(
    ("status_result", "outcome", "note"),
    [
        ({"locked": True, "locked_currencies": ["BTC"]}, Outcome.MAINTENANCE, None),
        ({"locked": "true", "locked_indices": ["btc_usd"]}, Outcome.MAINTENANCE, None),
        ({"locked": "TRUE"}, Outcome.MAINTENANCE, None),
        ({"locked": "partial", "locked_indices": ["sol_usdc"]}, Outcome.OK, "partially locked"),
        ({"locked": False, "locked_currencies": []}, Outcome.OK, None),
        ({"locked": "false", "locked_indices": []}, Outcome.OK, None),
        ({"locked": "maybe"}, Outcome.BAD_PAYLOAD, None),
        ({}, Outcome.BAD_PAYLOAD, None),
    ],
)
def test_lock_status_forms(status_result: dict[str, object], outcome: Outcome, note: str | None) -> None:
    result = DeribitAdapter().classify("status", RawResponse(200, {}, reply(status_result)))
    assert result.outcome is outcome
    assert result.extra.get("note") == note


def test_ticker_and_book_shapes() -> None:
    ticker = {"instrument_name": "BTC-PERPETUAL", "best_bid_price": 1.0, "best_ask_price": 2.0, "last_price": 1.5,
              "timestamp": 1623059681955, "state": "open"}
    adapter = DeribitAdapter()
    assert adapter.classify("ticker", RawResponse(200, {}, reply(ticker))).outcome is Outcome.OK
    no_bid = {**ticker, "best_bid_price": None}
    assert adapter.classify("ticker", RawResponse(200, {}, reply(no_bid))).outcome is Outcome.BAD_PAYLOAD
    book = {**ticker, "bids": [[1.0, 10]], "asks": [[2.0, 5]], "change_id": 1}
    assert adapter.classify("book", RawResponse(200, {}, reply(book))).outcome is Outcome.OK
    assert adapter.classify("book", RawResponse(200, {}, reply({**book, "asks": [["x", 1]]}))).outcome is (
        Outcome.BAD_PAYLOAD
    )
    testnet = adapter.classify("ticker", RawResponse(200, {}, reply(ticker, testnet=True)))
    assert testnet.extra["testnet"] is True


def test_malformed_error_and_missing_result() -> None:
    adapter = DeribitAdapter()
    assert adapter.classify("time", RawResponse(200, {}, reply(error="oops"))).outcome is Outcome.BAD_PAYLOAD
    no_result = json.dumps({"jsonrpc": "2.0", "id": 1}).encode()
    assert adapter.classify("time", RawResponse(200, {}, no_result)).outcome is Outcome.BAD_PAYLOAD
    assert adapter.classify("time", RawResponse(429, {}, b"Too Many Requests")).outcome is Outcome.RATE_LIMITED


def test_ws_frames() -> None:
    adapter = DeribitAdapter()
    beat = {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "heartbeat"}}
    assert adapter.classify_ws_message(beat).kind == "pong"
    notification = {"jsonrpc": "2.0", "method": "subscription",
                    "params": {"channel": "ticker.BTC-PERPETUAL.100ms", "data": {"timestamp": 1623060194301}}}
    event = adapter.classify_ws_message(notification)
    assert (event.kind, event.event_time_ms) == ("data", 1623060194301)
    locked = {"jsonrpc": "2.0", "method": "subscription",
              "params": {"channel": "platform_state", "data": {"price_index": "sol_usdc", "locked": True}}}
    assert adapter.classify_ws_message(locked).kind == "notice_reconnect"
    assert adapter.classify_ws_message(reply(["ticker.BTC-PERPETUAL.100ms"])).kind == "subscribed"
    assert adapter.classify_ws_message(reply({"access_token": "t", "token_type": "bearer"})).kind == "auth_ok"
    assert adapter.classify_ws_message(reply({"version": "1.2.26"})).kind == "pong"
    error = adapter.classify_ws_message(reply(error={"code": 10028, "message": "too_many_requests"}))
    assert (error.kind, error.error_code) == ("error", "10028")
