"""Error codes the exchanges document, each read from its documented body and HTTP status (issue 14).

Auth refusals a signed probe can receive must read as ``auth`` (a key/permission problem the user
fixes), not ``exchange_error``; a malformed timestamp is not clock drift; a busy venue is server-side
and still makes the scheduler back off, saying it is the venue's load.
"""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.exchanges.base import ExchangeAdapter, RawResponse
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter, BinanceSpotAdapter
from cryptomon_tui.exchanges.bybit import BybitAdapter
from cryptomon_tui.exchanges.common import VENUE_OVERLOAD
from cryptomon_tui.exchanges.deribit import DeribitAdapter
from cryptomon_tui.exchanges.okx import OkxAdapter
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.probing.backoff import Backoff


def _binance(code: int, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg}).encode()


def _okx(code: str, msg: str) -> bytes:
    return json.dumps({"code": code, "msg": msg, "data": []}).encode()


def _bybit(code: int, msg: str) -> bytes:
    return json.dumps({"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": 1700000000000}).encode()


def _deribit(code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": message},
                       "usIn": 1, "usOut": 2, "usDiff": 1, "testnet": False}).encode()


SPOT, FUT, BYBIT = BinanceSpotAdapter(), BinanceFuturesAdapter(), BybitAdapter()
OKX, DERIBIT = OkxAdapter(), DeribitAdapter()
BUSY_SPOT = "Spot server is currently overloaded with other requests. Please try again in a few minutes."

CASES: list[tuple[ExchangeAdapter, int, bytes, Outcome]] = [
    # Binance spot (errors.md)
    (SPOT, 401, _binance(-1099, "Not found, unauthenticated, or unauthorized."), Outcome.AUTH),
    (SPOT, 400, _binance(-1099, "Not found, unauthenticated, or unauthorized."), Outcome.AUTH),
    (SPOT, 503, _binance(-1004, "Server is busy, please wait and try again"), Outcome.HTTP_5XX),
    (SPOT, 400, _binance(-1004, "Server is busy, please wait and try again"), Outcome.HTTP_5XX),
    # Binance USD-M futures (error-code page)
    (FUT, 401, _binance(-1005, "No such IP has been white listed"), Outcome.AUTH),
    (FUT, 401, _binance(-1011, "This IP cannot access this route."), Outcome.AUTH),
    (FUT, 401, _binance(-1099, "Not found, unauthenticated, or unauthorized."), Outcome.AUTH),
    (FUT, 400, _binance(-1109, "Invalid account."), Outcome.AUTH),
    (FUT, 401, _binance(-2017, "API Keys are locked on this account."), Outcome.AUTH),
    (FUT, 400, _binance(-4056, "API key is invalid."), Outcome.AUTH),
    (FUT, 400, _binance(-4057, "API key IP is not correct."), Outcome.AUTH),
    # Bybit v5 (HTTP 200 with retCode)
    (BYBIT, 200, _bybit(10008, "Common banned, please check your account mode"), Outcome.AUTH),
    # OKX v5
    (OKX, 401, _okx("50007", "Account blocked"), Outcome.AUTH),
    (OKX, 401, _okx("50008", "User does not exist"), Outcome.AUTH),
    (OKX, 401, _okx("50112", "Invalid OK-ACCESS-TIMESTAMP"), Outcome.AUTH),
    (OKX, 401, _okx("50102", "Timestamp request expired"), Outcome.CLOCK_SKEW),
    (OKX, 400, _okx("50115", "Invalid request method."), Outcome.AUTH),
    (OKX, 401, _okx("50108", "Exchange ID does not exist"), Outcome.AUTH),
    (OKX, 401, _okx("50109", "Exchange domain does not exist"), Outcome.AUTH),
    (OKX, 400, _okx("50122", "Order amount must exceed minimum amount"), Outcome.EXCHANGE_ERROR),
    # Deribit JSON-RPC (official RPC error table)
    (DERIBIT, 400, _deribit(9999, "api_not_enabled"), Outcome.AUTH),
    (DERIBIT, 400, _deribit(11042, "permission_denied"), Outcome.AUTH),
    (DERIBIT, 400, _deribit(13001, "account_locked"), Outcome.AUTH),
    (DERIBIT, 400, _deribit(13002, "account_not_activated"), Outcome.AUTH),
    (DERIBIT, 400, _deribit(13007, "user_not_found"), Outcome.AUTH),
]


@pytest.mark.parametrize(("adapter", "status", "body", "outcome"), CASES,
                         ids=[f"{a.kind}-{s}-{i}" for i, (a, s, _, _) in enumerate(CASES)])
def test_documented_code_is_classified(adapter: ExchangeAdapter, status: int, body: bytes, outcome: Outcome) -> None:
    result = adapter.classify("account", RawResponse(status, {}, body))
    assert result.outcome is outcome
    assert result.error_code is not None and result.error_message


@pytest.mark.parametrize(
    ("adapter", "status", "body", "code"),
    [
        (SPOT, 503, _binance(-1008, BUSY_SPOT), "-1008"),
        (SPOT, 429, _binance(-1008, BUSY_SPOT), "-1008"),
        (OKX, 429, _okx("50013", "Systems are busy. Please try again later."), "50013"),
        (OKX, 200, _okx("50013", "Systems are busy. Please try again later."), "50013"),
    ],
)
def test_venue_overload_is_server_side_and_backs_off_saying_so(
    adapter: ExchangeAdapter, status: int, body: bytes, code: str
) -> None:
    result = adapter.classify("ticker", RawResponse(status, {}, body))
    assert result.outcome is Outcome.HTTP_5XX  # the venue's load, not our rate limit
    assert result.error_code == code and result.extra.get(VENUE_OVERLOAD) is True
    assert result.error_message is not None and result.error_message.startswith("venue overloaded")
    backoff = Backoff(FakeClock(1_000_000.0))
    pause = backoff.record(result.outcome, result.retry_after_s, result.ban_until, adapter.kind,
                           overload=bool(result.extra.get(VENUE_OVERLOAD)))
    assert pause is not None and "venue overloaded" in pause.reason and "rate limited" not in pause.reason
    # a plain 5xx does not pause probing
    assert Backoff(FakeClock(0.0)).record(Outcome.HTTP_5XX, None, None, adapter.kind) is None
