"""Bybit v5 adapter: symbol scheme, retCode-in-200 errors, 403 IP ban, usage headers, signing (§2)."""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.exchanges.base import Credentials, RawResponse
from cryptomon_tui.exchanges.bybit import BybitAdapter, bybit_signature, bybit_ws_auth_signature, parse_symbol
from cryptomon_tui.kernel.results import Outcome

TIME_MS = 1688639403423


def envelope(code: int = 0, msg: str = "OK", result: object = None, **extra: object) -> bytes:
    return json.dumps({"retCode": code, "retMsg": msg, "result": result or {}, "retExtInfo": {}, "time": TIME_MS,
                       **extra}).encode()


def outcome_of(probe: str, result: object, adapter: BybitAdapter | None = None) -> Outcome:
    return (adapter or BybitAdapter()).classify(probe, RawResponse(200, {}, envelope(result=result))).outcome


def test_self_computed_signature_vector() -> None:
    plain_query = "category=option&symbol=BTC-29JUL22-25000-C"
    assert bybit_signature("TEST_SECRET_DO_NOT_USE", 1658384314791, "XXXXXXXXXX", 5000, plain_query) == (
        "0732b85d286ff2e8ccdeffe1ffbd41b4766a153e804f0604bbff970ac75075ad"
    )


def test_sign_builds_bapi_headers_and_keeps_the_query() -> None:
    adapter = BybitAdapter()
    spec = adapter.probes()["account"]
    signed = adapter.sign(spec, Credentials("XXXXXXXXXX", "TEST_SECRET_DO_NOT_USE"), 1658384314791,
                          "category=option&symbol=BTC-29JUL22-25000-C")
    assert signed.headers["X-BAPI-SIGN"] == "0732b85d286ff2e8ccdeffe1ffbd41b4766a153e804f0604bbff970ac75075ad"
    assert signed.headers["X-BAPI-TIMESTAMP"] == "1658384314791"
    assert signed.headers["X-BAPI-RECV-WINDOW"] == "5000"
    assert signed.headers["X-BAPI-API-KEY"] == "XXXXXXXXXX"
    assert signed.query == "category=option&symbol=BTC-29JUL22-25000-C" and not signed.params


def test_ws_auth_signature_is_hmac_of_get_realtime_expires() -> None:
    import hashlib
    import hmac

    assert bybit_ws_auth_signature("s", 1700000000000) == hmac.new(b"s", b"GET/realtime1700000000000",
                                                                   hashlib.sha256).hexdigest()


def test_symbol_scheme() -> None:
    assert parse_symbol("BTCUSDT") == ("spot", "BTCUSDT")
    assert parse_symbol("linear:BTCUSDT") == ("linear", "BTCUSDT")
    assert parse_symbol("Inverse:BTCUSD") == ("inverse", "BTCUSD")
    with pytest.raises(ValueError, match="category"):
        parse_symbol("futures:BTCUSDT")
    with pytest.raises(ValueError, match="empty"):
        parse_symbol("linear:")
    adapter = BybitAdapter(symbol="linear:ETHUSDT")
    assert dict(adapter.probes()["ticker"].params) == {"category": "linear", "symbol": "ETHUSDT"}
    assert adapter.default_ws_url == "wss://stream.bybit.com/v5/public/linear"
    assert dict(adapter.probes()["book"].params)["limit"] == "1"
    assert BybitAdapter.rate_limit.capacity == 600 and BybitAdapter.rate_limit.window_s == 5


def test_envelope_time_on_every_response_and_time_nano_precision() -> None:
    adapter = BybitAdapter()
    result = adapter.classify("time", RawResponse(200, {}, envelope(
        result={"timeSecond": "1688639403", "timeNano": "1688639403423213947"})))
    assert result.outcome is Outcome.OK
    assert result.server_time_ms == pytest.approx(1688639403423.214, abs=1e-3)
    mismatch = envelope(result={"timeSecond": "1588639403", "timeNano": "1688639403423213947"})
    assert adapter.classify("time", RawResponse(200, {}, mismatch)).outcome is Outcome.BAD_PAYLOAD


def test_usage_headers_are_used_fraction() -> None:
    headers = {"x-bapi-limit": "10", "x-bapi-limit-status": "9", "x-bapi-limit-reset-timestamp": "1672738134824"}
    result = BybitAdapter().classify("ping", RawResponse(200, headers, envelope()))
    assert result.rate_limit_used == pytest.approx(0.1)
    upper = {"X-Bapi-Limit": "600", "X-Bapi-Limit-Status": "0"}
    assert BybitAdapter().classify("ping", RawResponse(200, upper, envelope())).rate_limit_used == 1.0
    assert BybitAdapter().classify("ping", RawResponse(200, {"x-bapi-limit": "0"}, envelope())).rate_limit_used is None


def test_10006_waits_until_the_reset_timestamp() -> None:
    headers = {"x-bapi-limit": "10", "x-bapi-limit-status": "0", "x-bapi-limit-reset-timestamp": str(TIME_MS + 1500)}
    result = BybitAdapter().classify("ticker", RawResponse(200, headers, envelope(10006, "Too many visits")))
    assert (result.outcome, result.error_code) == (Outcome.RATE_LIMITED, "10006")
    assert result.retry_after_s == pytest.approx(1.5)
    # "global" 10006 without the reset header: no crash, no invented wait.
    bare = BybitAdapter().classify("ticker", RawResponse(200, {}, envelope(10006, "Too many visits")))
    assert bare.outcome is Outcome.RATE_LIMITED and bare.retry_after_s is None


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (10003, Outcome.AUTH), (10004, Outcome.AUTH), (10005, Outcome.AUTH), (10007, Outcome.AUTH),
        (10010, Outcome.AUTH), (33004, Outcome.AUTH), (10016, Outcome.HTTP_5XX), (10000, Outcome.HTTP_5XX),
        (10001, Outcome.EXCHANGE_ERROR), (429, Outcome.RATE_LIMITED), (10002, Outcome.CLOCK_SKEW),
    ],
)
def test_ret_codes(code: int, outcome: Outcome) -> None:
    result = BybitAdapter().classify("account", RawResponse(200, {}, envelope(code, "message text")))
    assert (result.outcome, result.error_code, result.error_message) == (outcome, str(code), "message text")


def test_clock_skew_reads_server_timestamp_from_the_message() -> None:
    msg = ("invalid request, please check your server timestamp or recv_window param. "
           "req_timestamp[1677853520948],server_timestamp[1677853421570],recv_window[5000]")
    body = json.dumps({"retCode": 10002, "retMsg": msg, "result": {}, "retExtInfo": {}}).encode()  # no envelope time
    result = BybitAdapter().classify("account", RawResponse(200, {}, body))
    assert result.outcome is Outcome.CLOCK_SKEW and result.server_time_ms == 1677853421570


def test_legacy_ret_code_bodies() -> None:
    body = json.dumps({"ret_code": 10006, "ret_msg": "too many requests", "result": None}).encode()
    assert BybitAdapter().classify("ticker", RawResponse(200, {}, body)).outcome is Outcome.RATE_LIMITED
    ok = json.dumps({"ret_code": 0, "ret_msg": "OK", "result": {}}).encode()
    assert BybitAdapter().classify("ping", RawResponse(200, {}, ok)).outcome is Outcome.OK


def test_403_is_an_ip_ban_of_at_least_ten_minutes() -> None:
    headers = {"date": "Wed, 10 Aug 2022 00:00:00 GMT"}
    result = BybitAdapter().classify("ticker", RawResponse(403, headers, b"403 Forbidden: access too frequent"))
    assert result.outcome is Outcome.IP_BANNED
    assert result.retry_after_s == 600 and result.ban_until == 1660089600 + 600
    longer = BybitAdapter().classify("ticker", RawResponse(403, {"retry-after": "1800"}, b""))
    assert longer.retry_after_s == 1800


def test_http_429_and_5xx() -> None:
    assert BybitAdapter().classify("time", RawResponse(429, {}, b"")).outcome is Outcome.RATE_LIMITED
    bad_gateway = BybitAdapter().classify("time", RawResponse(502, {}, b"<html>Bad gateway</html>"))
    assert bad_gateway.outcome is Outcome.HTTP_5XX


def _status_item(state: str, end: str = "1751597011000", env: int = 1) -> dict[str, object]:
    return {"id": "x", "title": f"upgrade {state}", "state": state, "begin": "1751596902000", "end": end,
            "href": "", "serviceTypes": [2], "product": [1], "uidSuffix": [], "maintainType": 1, "env": env}


def test_ongoing_maintenance_with_end_and_scheduled_as_extra() -> None:
    adapter = BybitAdapter()
    body = envelope(result={"list": [_status_item("ongoing"), _status_item("scheduled", "1751700000000")]})
    result = adapter.classify("status", RawResponse(200, {}, body))
    assert result.outcome is Outcome.MAINTENANCE
    assert result.maintenance_until == 1751597011.0
    assert result.extra["scheduled"][0]["title"] == "upgrade scheduled"
    scheduled = envelope(result={"list": [_status_item("scheduled")]})
    scheduled_only = adapter.classify("status", RawResponse(200, {}, scheduled))
    assert scheduled_only.outcome is Outcome.OK and scheduled_only.extra["scheduled"]
    assert outcome_of("status", {"list": [_status_item("ongoing", env=2)]}) is Outcome.OK  # demo environment only
    assert outcome_of("status", {"list": []}) is Outcome.OK


def test_ticker_checks_symbol_and_prices() -> None:
    item = {"symbol": "BTCUSDT", "bid1Price": "1", "ask1Price": "2", "lastPrice": "1.5"}
    adapter = BybitAdapter()
    assert outcome_of("ticker", {"list": [item]}, adapter) is Outcome.OK
    assert outcome_of("ticker", {"list": [{**item, "symbol": "ETHUSDT"}]}, adapter) is Outcome.BAD_PAYLOAD
    assert outcome_of("ticker", {"list": [{**item, "bid1Price": ""}]}, adapter) is Outcome.BAD_PAYLOAD
    assert outcome_of("ticker", {"list": []}, adapter) is Outcome.BAD_PAYLOAD


def test_account_read_only_flag() -> None:
    result = BybitAdapter().classify("account", RawResponse(200, {}, envelope(result={"readOnly": 1, "ips": ["*"]})))
    assert result.outcome is Outcome.OK and result.extra["read_only"] is True


def test_ws_frames() -> None:
    adapter = BybitAdapter()
    spot_pong = {"success": True, "ret_msg": "pong", "conn_id": "x", "op": "ping"}
    assert adapter.classify_ws_message(spot_pong).kind == "pong"
    assert adapter.classify_ws_message({"op": "pong", "args": ["1675418560633"], "conn_id": "x"}).event_time_ms == (
        1675418560633
    )
    assert adapter.classify_ws_message({"success": True, "ret_msg": "", "op": "subscribe", "conn_id": "x"}).kind == (
        "subscribed"
    )
    fail = adapter.classify_ws_message({"success": False, "ret_msg": "error:invalid topic", "op": "subscribe"})
    assert fail.kind == "error" and fail.message == "error:invalid topic"
    option_ack = {"success": True, "type": "COMMAND_RESP", "data": {"failTopics": ["x"], "successTopics": []}}
    assert adapter.classify_ws_message(option_ack).kind == "error"
    assert adapter.classify_ws_message({"success": False, "ret_msg": "Invalid sign", "op": "auth"}).kind == "error"


def test_wallet_balance_account_probe() -> None:
    spec = BybitAdapter().probes()["account"]
    assert (spec.path, dict(spec.params)) == ("/v5/account/wallet-balance", {"accountType": "UNIFIED"})
    wallet = {"list": [{"accountType": "UNIFIED", "totalEquity": "250.00", "coin": []}]}
    result = BybitAdapter().classify("account", RawResponse(200, {}, envelope(result=wallet)))
    assert result.outcome is Outcome.OK and result.extra["account_type"] == "UNIFIED"
    assert outcome_of("account", {"list": []}) is Outcome.BAD_PAYLOAD
