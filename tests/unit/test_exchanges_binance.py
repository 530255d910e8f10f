"""Binance adapters: probes, classification corners, signing vectors (exchanges.md §1)."""

from __future__ import annotations

import json
import urllib.parse

from cryptomon_tui.exchanges.base import Credentials, RawResponse
from cryptomon_tui.exchanges.binance import (
    BinanceFuturesAdapter,
    BinanceSpotAdapter,
    binance_signature,
    parse_ban_until,
)
from cryptomon_tui.kernel.results import Outcome

SPOT_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
SPOT_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
VECTOR_PAYLOAD = (
    "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
)


def raw(status: int, body: object, **headers: str) -> RawResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return RawResponse(status=status, headers={k.replace("_", "-").lower(): v for k, v in headers.items()}, body=data)


def test_official_signature_vector() -> None:
    assert binance_signature(SPOT_SECRET, VECTOR_PAYLOAD) == (
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    )


def test_official_non_ascii_signature_vector() -> None:
    payload = VECTOR_PAYLOAD.replace("symbol=LTCBTC", "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96")
    assert binance_signature(SPOT_SECRET, payload) == "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3"
    # The encoded form is what the adapter signs: percent-encoding the raw symbol gives the same bytes.
    assert urllib.parse.quote("１２３４５６") == "%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96"


def test_sign_appends_timestamp_and_signature_last() -> None:
    adapter = BinanceSpotAdapter()
    spec = adapter.probes()["account"]
    query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1"
    signed = adapter.sign(spec, Credentials(SPOT_KEY, SPOT_SECRET), 1499827319559, query)
    assert signed.headers == {"X-MBX-APIKEY": SPOT_KEY}
    expected_sig = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert signed.query == f"{VECTOR_PAYLOAD}&signature={expected_sig}"
    assert list(signed.params) == ["recvWindow", "timestamp", "signature"]
    assert SPOT_SECRET not in repr(signed)


def test_probe_paths_and_weights() -> None:
    spot = BinanceSpotAdapter().probes()
    assert (spot["ticker"].path, dict(spot["ticker"].params), spot["ticker"].weight) == (
        "/api/v3/ticker/bookTicker",
        {"symbol": "BTCUSDT"},
        2,
    )
    assert spot["status"].path == "/sapi/v1/system/status"
    assert (spot["book"].path, spot["book"].weight) == ("/api/v3/depth", 5)
    assert spot["account"].signed and not spot["time"].signed
    fut = BinanceFuturesAdapter(symbol="ETHUSDT").probes()
    assert "status" not in fut and fut["time"].path == "/fapi/v1/time"
    assert dict(fut["ticker"].params) == {"symbol": "ETHUSDT"}
    assert BinanceFuturesAdapter.default_probes == ("time", "ticker")
    assert BinanceSpotAdapter.rate_limit.capacity == 6000 and BinanceFuturesAdapter.rate_limit.capacity == 2400


def test_weight_header_is_a_fraction_of_each_limit_case_insensitive() -> None:
    body = {"serverTime": 1499827319559}
    response = RawResponse(200, {"X-MBX-USED-WEIGHT-1M": "600"}, json.dumps(body).encode())
    spot = BinanceSpotAdapter().classify("time", response)
    assert spot.rate_limit_used == 0.1
    fut = BinanceFuturesAdapter().classify("time", raw(200, body, x_mbx_used_weight="1200"))
    assert fut.rate_limit_used == 0.5
    # fapi bookTicker's header is documented as inaccurate: ignored.
    ticker = {"symbol": "BTCUSDT", "bidPrice": "1", "bidQty": "1", "askPrice": "2", "askQty": "1"}
    ticker["time"] = 1729906600499
    result = BinanceFuturesAdapter().classify("ticker", raw(200, ticker, x_mbx_used_weight_1m="1"))
    assert result.outcome is Outcome.OK and result.rate_limit_used is None


def test_ban_expiry_from_message_and_retry_after() -> None:
    assert parse_ban_until("IP banned until 1660090423228.") == 1660090423.228
    assert parse_ban_until("no date") is None
    body = {"code": -1003, "msg": "Way too many requests; IP banned until 1660090423228."}
    result = BinanceSpotAdapter().classify("ticker", raw(418, body, retry_after="7200"))
    assert result.outcome is Outcome.IP_BANNED
    assert result.ban_until == 1660090423.228 and result.retry_after_s == 7200


def test_418_without_json_uses_date_plus_retry_after() -> None:
    headers = {"retry-after": "120", "date": "Wed, 10 Aug 2022 00:00:00 GMT"}
    result = BinanceSpotAdapter().classify("time", RawResponse(418, headers, b"I'm a teapot"))
    assert result.outcome is Outcome.IP_BANNED
    assert result.ban_until == 1660089600 + 120


def test_429_is_rate_limited_with_retry_after() -> None:
    body = {"code": -1003, "msg": "Too much request weight used; current limit is 6000 request weight per 1 MINUTE."}
    result = BinanceSpotAdapter().classify("time", raw(429, body, retry_after="30"))
    assert (result.outcome, result.error_code, result.retry_after_s) == (Outcome.RATE_LIMITED, "-1003", 30)


def test_waf_403_html_is_a_block() -> None:
    page = b"<!DOCTYPE html><html><head><title>ERROR: The request could not be satisfied</title></head></html>"
    result = BinanceSpotAdapter().classify("ticker", RawResponse(403, {"server": "CloudFront"}, page))
    assert result.outcome is Outcome.IP_BANNED
    assert result.error_code == "http_403"
    assert "could not be satisfied" in (result.error_message or "")


def test_status_one_is_maintenance_and_unknown_status_is_an_error() -> None:
    adapter = BinanceSpotAdapter()
    maintenance = adapter.classify("status", raw(200, {"status": 1, "msg": "system maintenance"}))
    assert maintenance.outcome is Outcome.MAINTENANCE
    assert adapter.classify("status", raw(200, {"status": 7, "msg": "?"})).outcome is Outcome.EXCHANGE_ERROR
    assert adapter.classify("status", raw(200, {"status": "x", "msg": "?"})).outcome is Outcome.BAD_PAYLOAD


def test_5xx_and_internal_codes() -> None:
    adapter = BinanceFuturesAdapter()
    assert adapter.classify("time", raw(503, b"<html>Service Unavailable</html>")).outcome is Outcome.HTTP_5XX
    body = {"code": -1007, "msg": "Timeout waiting for response from backend server."}
    assert adapter.classify("time", raw(408, body)).outcome is Outcome.HTTP_5XX
    assert adapter.classify("time", raw(503, {"code": -1016, "msg": "shutting down"})).outcome is Outcome.MAINTENANCE


def test_ticker_shape_checks() -> None:
    adapter = BinanceSpotAdapter(symbol="LTCBTC")
    good = {"symbol": "LTCBTC", "bidPrice": "4.0", "bidQty": "1", "askPrice": "4.1", "askQty": "2"}
    assert adapter.classify("ticker", raw(200, good)).outcome is Outcome.OK
    assert adapter.classify("ticker", raw(200, {**good, "bidPrice": "abc"})).outcome is Outcome.BAD_PAYLOAD
    assert adapter.classify("ticker", raw(200, {**good, "symbol": "BTCUSDT"})).outcome is Outcome.BAD_PAYLOAD
    assert adapter.classify("ticker", raw(200, [good])).outcome is Outcome.BAD_PAYLOAD


def test_account_permissions() -> None:
    adapter = BinanceSpotAdapter()
    result = adapter.classify("account", raw(200, {"enableReading": True, "enableWithdrawals": True}))
    assert result.outcome is Outcome.OK and result.extra["read_only"] is False
    assert adapter.classify("account", raw(401, {"code": -2015, "msg": "Invalid API-key"})).outcome is Outcome.AUTH


def test_ws_frames() -> None:
    adapter = BinanceSpotAdapter()
    assert adapter.classify_ws_message({"result": None, "id": 1}).kind == "subscribed"
    combined = {"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1672515782136}}
    assert adapter.classify_ws_message(json.dumps(combined)).event_time_ms == 1672515782136
    assert adapter.classify_ws_message({"u": 1, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1"}).kind == "data"
    assert adapter.classify_ws_message({"error": {"code": 2, "msg": "Invalid request"}, "id": 1}).kind == "error"
    assert adapter.classify_ws_message(b"\xff\xfe").kind == "error"


def test_account_probe_is_what_a_bot_reads_and_its_shapes() -> None:
    spot, fut = BinanceSpotAdapter(), BinanceFuturesAdapter()
    spec = spot.probes()["account"]
    assert (spec.path, dict(spec.params), spec.weight) == ("/api/v3/account", {"omitZeroBalances": "true"}, 20)
    assert (fut.probes()["account"].path, fut.probes()["account"].weight) == ("/fapi/v2/account", 5)
    balances = {"canTrade": False, "canWithdraw": False, "balances": [{"asset": "BTC", "free": "0.1", "locked": "0"}]}
    result = spot.classify("account", raw(200, balances))
    assert result.outcome is Outcome.OK and result.extra == {"assets": 1, "can_trade": False, "can_withdraw": False}
    assert fut.classify("account", raw(200, {"assets": [{"asset": "USDT"}], "positions": []})).outcome is Outcome.OK
    assert spot.classify("account", raw(200, {"balances": "none"})).outcome is Outcome.BAD_PAYLOAD
    assert spot.classify("account", raw(200, {"uid": 1})).outcome is Outcome.BAD_PAYLOAD


def test_signed_query_verifies_the_way_the_server_checks_it() -> None:
    """Server side: strip the trailing signature, HMAC the rest, compare."""
    adapter = BinanceSpotAdapter()
    spec = adapter.probes()["account"]
    query = urllib.parse.urlencode(dict(spec.params))
    signed = adapter.sign(spec, Credentials(SPOT_KEY, SPOT_SECRET), 1_700_000_000_000, query)
    assert signed.query is not None
    payload, _, signature = signed.query.rpartition("&signature=")
    assert payload == "omitZeroBalances=true&recvWindow=5000&timestamp=1700000000000"
    assert binance_signature(SPOT_SECRET, payload) == signature
