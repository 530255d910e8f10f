"""OKX v5 adapter: string codes, per-endpoint limits, maintenance states, signing (§3)."""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.exchanges.base import Credentials, ProbeSpec, RawResponse
from cryptomon_tui.exchanges.okx import OkxAdapter, okx_signature, okx_timestamp, okx_ws_login_signature
from cryptomon_tui.kernel.results import Outcome

SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
TS = "2020-12-08T09:08:57.715Z"
TS_MS = 1607418537715


def body(code: str = "0", msg: str = "", data: object = None) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": [] if data is None else data}).encode()


def test_self_computed_rest_vectors() -> None:
    assert okx_signature(SECRET, TS, "GET", "/api/v5/account/balance?ccy=BTC") == (
        "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    )
    post_body = '{"instId":"BTC-USDT","lever":"5","mgnMode":"isolated"}'
    assert okx_signature(SECRET, TS, "post", "/api/v5/account/set-leverage", post_body) == (
        "eCnnCgWLjlQ9XnpUkrcny3qNq3WW/81KNrDr/XR6Xv8="
    )


def test_self_computed_ws_login_vector() -> None:
    assert okx_ws_login_signature(SECRET, 1538054050) == "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M="


def test_iso_millisecond_timestamp() -> None:
    assert okx_timestamp(TS_MS) == TS
    assert okx_timestamp(1607418537000) == "2020-12-08T09:08:57.000Z"


def test_sign_headers_use_path_with_query() -> None:
    adapter = OkxAdapter()
    spec = ProbeSpec("account", "GET", "/api/v5/account/balance", signed=True)
    signed = adapter.sign(spec, Credentials("key", SECRET, passphrase="pp"), TS_MS, "ccy=BTC")
    assert signed.headers["OK-ACCESS-SIGN"] == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    assert signed.headers["OK-ACCESS-TIMESTAMP"] == TS
    assert signed.headers["OK-ACCESS-PASSPHRASE"] == "pp" and signed.headers["OK-ACCESS-KEY"] == "key"
    assert signed.query == "ccy=BTC"
    with pytest.raises(ValueError, match="passphrase"):
        adapter.sign(spec, Credentials("key", SECRET), TS_MS, "")


def test_endpoint_limits_and_tolerances() -> None:
    probes = OkxAdapter(symbol="ETH-USDT").probes()
    assert probes["status"].min_interval_s == 5.0 and probes["status"].path == "/api/v5/system/status"
    assert probes["ticker"].path == "/api/v5/market/ticker" and dict(probes["ticker"].params) == {"instId": "ETH-USDT"}
    assert probes["ticker"].min_interval_s == pytest.approx(0.1)
    assert probes["time"].endpoint_limit is not None and probes["time"].endpoint_limit.per_second == 5
    # ping and time share public/time: together they stay within 10 per 2 s.
    assert 1 / probes["ping"].min_interval_s + 1 / probes["time"].min_interval_s <= 5
    assert dict(probes["book"].params) == {"instId": "ETH-USDT", "sz": "1"}
    assert OkxAdapter.clock_ahead_tolerance_ms == OkxAdapter.clock_behind_tolerance_ms == 30_000


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("50011", 200, Outcome.RATE_LIMITED), ("50011", 429, Outcome.RATE_LIMITED),
        ("50061", 200, Outcome.RATE_LIMITED),
        ("50102", 401, Outcome.CLOCK_SKEW), ("50112", 401, Outcome.AUTH),
        ("50113", 401, Outcome.AUTH), ("50111", 401, Outcome.AUTH), ("50105", 401, Outcome.AUTH),
        ("50101", 401, Outcome.AUTH), ("50110", 401, Outcome.AUTH), ("50035", 403, Outcome.AUTH),
        ("50001", 503, Outcome.MAINTENANCE), ("50005", 410, Outcome.MAINTENANCE), ("50026", 500, Outcome.HTTP_5XX),
        ("50004", 400, Outcome.HTTP_5XX), ("51001", 200, Outcome.EXCHANGE_ERROR),
        ("50014", 400, Outcome.EXCHANGE_ERROR),
        ("51008_1000", 200, Outcome.EXCHANGE_ERROR),
    ],
)
def test_error_codes(code: str, status: int, outcome: Outcome) -> None:
    payload = json.dumps({"code": code, "msg": "text from okx"}).encode()  # recorded errors carry no data
    result = OkxAdapter().classify("ticker", RawResponse(status, {}, payload))
    assert (result.outcome, result.error_code, result.error_message) == (outcome, code, "text from okx")


def test_integer_code_is_tolerated_and_retry_after_is_read() -> None:
    payload = json.dumps({"code": 50011, "msg": "Too Many Requests"}).encode()
    result = OkxAdapter().classify("ticker", RawResponse(429, {"retry-after": "2"}, payload))
    assert (result.outcome, result.error_code, result.retry_after_s) == (Outcome.RATE_LIMITED, "50011", 2)


def _event(state: str, env: str = "1") -> dict[str, str]:
    return {"begin": "1672823400000", "end": "1672823520000", "href": "", "preOpenBegin": "", "scheDesc": "",
            "serviceType": "8", "state": state, "maintType": "1", "env": env, "system": "unified",
            "title": f"upgrade {state}"}


def test_maintenance_states() -> None:
    ongoing = OkxAdapter().classify("status", RawResponse(200, {}, body(data=[_event("ongoing")])))
    assert ongoing.outcome is Outcome.MAINTENANCE and ongoing.maintenance_until == 1672823520.0
    for state in ("scheduled", "pre_open"):
        result = OkxAdapter().classify("status", RawResponse(200, {}, body(data=[_event(state)])))
        assert result.outcome is Outcome.OK and result.extra["scheduled"][0]["state"] == state
    assert OkxAdapter().classify("status", RawResponse(200, {}, body(data=[]))).outcome is Outcome.OK
    demo = OkxAdapter().classify("status", RawResponse(200, {}, body(data=[_event("ongoing", env="2")])))
    assert demo.outcome is Outcome.OK


def test_success_shapes() -> None:
    time_result = OkxAdapter().classify("time", RawResponse(200, {}, body(data=[{"ts": "1597026383085"}])))
    assert time_result.server_time_ms == 1597026383085
    ticker = {"instId": "BTC-USDT", "bidPx": "1", "askPx": "2", "last": "1.5", "ts": "1597026383085"}
    assert OkxAdapter().classify("ticker", RawResponse(200, {}, body(data=[ticker]))).outcome is Outcome.OK
    no_bids = {**ticker, "bidPx": ""}
    assert OkxAdapter().classify("ticker", RawResponse(200, {}, body(data=[no_bids]))).outcome is Outcome.BAD_PAYLOAD
    null_data = json.dumps({"code": "0", "msg": "", "data": None}).encode()
    assert OkxAdapter().classify("time", RawResponse(200, {}, null_data)).outcome is Outcome.BAD_PAYLOAD
    config = {"uid": "1", "perm": "read_only"}
    account = OkxAdapter().classify("account", RawResponse(200, {}, body(data=[config])))
    assert account.outcome is Outcome.OK and account.extra["read_only"] is True


def test_ws_frames() -> None:
    adapter = OkxAdapter()
    assert adapter.classify_ws_message("pong").kind == "pong"
    assert adapter.classify_ws_message(b"pong").kind == "pong"
    assert adapter.classify_ws_message({"event": "login", "code": "0", "msg": "", "connId": "x"}).kind == "auth_ok"
    err = adapter.classify_ws_message({"event": "error", "code": "60012", "msg": "Invalid request", "connId": "x"})
    assert (err.kind, err.error_code) == ("error", "60012")
    assert adapter.classify_ws_message("ping?").kind == "error"


def test_balance_account_probe() -> None:
    spec = OkxAdapter().probes()["account"]
    assert (spec.path, spec.min_interval_s) == ("/api/v5/account/balance", 0.2)
    balance = [{"totalEq": "250.0", "details": [{"ccy": "USDT", "eq": "250"}]}]
    result = OkxAdapter().classify("account", RawResponse(200, {}, body(data=balance)))
    assert result.outcome is Outcome.OK and result.extra["assets"] == 1
    assert OkxAdapter().classify("account", RawResponse(200, {}, body(data=[{"totalEq": "1"}]))).outcome is (
        Outcome.BAD_PAYLOAD
    )
