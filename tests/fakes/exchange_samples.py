"""Expectations for every file in the shared reference samples folder (exchanges.md samples/).

Shared by the sample classification test and the hostile-response test, which mutates the
success bodies listed here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon_tui.exchanges.base import ExchangeAdapter
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter, BinanceSpotAdapter
from cryptomon_tui.exchanges.bybit import BybitAdapter
from cryptomon_tui.exchanges.deribit import DeribitAdapter
from cryptomon_tui.exchanges.okx import OkxAdapter
from cryptomon_tui.kernel.results import Outcome

REPO = Path(__file__).resolve().parents[2]
# The exchanges' documented and recorded bodies (provenance in SOURCES.md), kept in the repo so that every
# clone runs the sample tests (they skipped on a clone without the shared reference folder beside it).
SAMPLES = Path(os.environ.get("CRYPTOMON_SAMPLES", REPO / "tests" / "fixtures" / "exchange_samples"))
DOCS = {"SOURCES.md"}

Factory = Callable[[], ExchangeAdapter]


@dataclass(frozen=True)
class Rest:
    adapter: Factory
    probe: str
    status: int
    outcome: Outcome
    error_code: str | None = None
    server_time_ms: float | None = None
    ban_until: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Ws:
    adapter: Factory
    kind: str
    event_time_ms: float | None = None
    error_code: str | None = None


spot = BinanceSpotAdapter
fut = BinanceFuturesAdapter
OK = Outcome.OK

EXPECTED: dict[str, Rest | Ws] = {
    # Binance
    "binance/error_1003_ip_banned_http418_recorded.json": Rest(
        spot, "ticker", 418, Outcome.IP_BANNED, "-1003", ban_until=1660090423.228
    ),
    "binance/error_1021_recvwindow_http400_recorded.json": Rest(fut, "account", 400, Outcome.CLOCK_SKEW, "-1021"),
    "binance/error_2015_invalid_key_http401_recorded.json": Rest(fut, "account", 401, Outcome.AUTH, "-2015"),
    "binance/error_invalid_symbol_doc.json": Rest(spot, "ticker", 400, Outcome.EXCHANGE_ERROR, "-1121"),
    "binance/futures_ticker_price_success_recorded.json": Rest(fut, "ticker", 200, OK, extra={"price": 66554.0}),
    "binance/spot_book_ticker_success.json": Rest(
        lambda: BinanceSpotAdapter(symbol="LTCBTC"), "ticker", 200, OK, extra={"bid": 4.0, "ask": 4.000002}
    ),
    "binance/spot_depth_success.json": Rest(spot, "book", 200, OK),
    "binance/spot_ping_success.json": Rest(spot, "ping", 200, OK),
    "binance/spot_system_status_success.json": Rest(spot, "status", 200, OK),
    "binance/spot_time_success.json": Rest(spot, "time", 200, OK, server_time_ms=1499827319559),
    "binance/ws_server_shutdown_event.json": Ws(spot, "server_shutdown", 1770123456789),
    "binance/ws_spot_ticker_event.json": Ws(spot, "data", 1672515782136),
    # Bybit (business errors inside HTTP 200; envelope time on every response)
    "bybit/envelope_success_doc.json": Rest(BybitAdapter, "ping", 200, OK, server_time_ms=1671017382656),
    "bybit/error_10002_recv_window_recorded.json": Rest(
        BybitAdapter, "account", 200, Outcome.CLOCK_SKEW, "10002", server_time_ms=1677853421570
    ),
    "bybit/error_10006_rate_limit_recorded.json": Rest(
        BybitAdapter, "ticker", 200, Outcome.RATE_LIMITED, "10006", server_time_ms=1693924869139
    ),
    "bybit/orderbook_success.json": Rest(BybitAdapter, "book", 200, OK, server_time_ms=1716863719382),
    "bybit/server_time_success.json": Rest(BybitAdapter, "time", 200, OK, server_time_ms=1688639403423.213947),
    # Only completed events are listed: no maintenance now.
    "bybit/system_status_success.json": Rest(BybitAdapter, "status", 200, OK, server_time_ms=1751858399649),
    "bybit/tickers_inverse_success.json": Rest(
        lambda: BybitAdapter(symbol="inverse:BTCUSD"), "ticker", 200, OK, server_time_ms=1760352369814
    ),
    "bybit/tickers_spot_success.json": Rest(
        BybitAdapter, "ticker", 200, OK, server_time_ms=1673859087947, extra={"bid": 20517.96, "ask": 20527.77}
    ),
    "bybit/ws_auth_success.json": Ws(BybitAdapter, "auth_ok"),
    "bybit/ws_pong_linear.json": Ws(BybitAdapter, "pong"),
    "bybit/ws_ticker_linear_snapshot.json": Ws(BybitAdapter, "data", 1760325052630),
    # OKX (string codes)
    "okx/error_50011_rate_limit_http429_recorded.json": Rest(OkxAdapter, "ticker", 429, Outcome.RATE_LIMITED, "50011"),
    "okx/error_50102_timestamp_expired_recorded.json": Rest(OkxAdapter, "account", 401, Outcome.CLOCK_SKEW, "50102"),
    "okx/market_books_success.json": Rest(OkxAdapter, "book", 200, OK),
    "okx/market_ticker_success.json": Rest(
        lambda: OkxAdapter(symbol="BTC-USD-SWAP"), "ticker", 200, OK, extra={"bid": 8888.88, "ask": 9999.99}
    ),
    "okx/public_time_success.json": Rest(OkxAdapter, "time", 200, OK, server_time_ms=1597026383085),
    "okx/system_status_success.json": Rest(OkxAdapter, "status", 200, OK),  # one completed event
    "okx/ws_login_error_60009.json": Ws(OkxAdapter, "error", error_code="60009"),
    "okx/ws_notice_64008.json": Ws(OkxAdapter, "notice_reconnect", error_code="64008"),
    "okx/ws_subscribe_ack.json": Ws(OkxAdapter, "subscribed"),
    "okx/ws_tickers_push.json": Ws(OkxAdapter, "data", 1597026383085),
    # Deribit (JSON-RPC; usIn/usOut midpoint is the server time)
    "deribit/error_13004_invalid_credentials_recorded.json": Rest(
        DeribitAdapter, "account", 400, Outcome.AUTH, "13004", server_time_ms=1616444742558.4665
    ),
    "deribit/error_13009_unauthorized_recorded.json": Rest(
        DeribitAdapter, "account", 400, Outcome.AUTH, "13009", server_time_ms=1620162727414.4545
    ),
    "deribit/get_time_success.json": Rest(DeribitAdapter, "time", 200, OK, server_time_ms=1550147385946),
    "deribit/set_heartbeat_success.json": Ws(DeribitAdapter, "subscribed"),
    "deribit/status_success.json": Rest(DeribitAdapter, "status", 200, Outcome.MAINTENANCE, "locked"),
    "deribit/test_success.json": Rest(DeribitAdapter, "ping", 200, OK, extra={"version": "1.2.26"}),
    "deribit/ticker_btc_perpetual_success.json": Rest(
        DeribitAdapter, "ticker", 200, OK, extra={"bid": 36289.5, "ask": 36290.0}
    ),
    "deribit/ws_heartbeat_test_request.json": Ws(DeribitAdapter, "heartbeat_request"),
    "deribit/ws_ticker_notification_data.json": Ws(DeribitAdapter, "data", 1623060194301),
}




def sample_files() -> list[str]:
    """Every sample file (relative path), documentation excluded."""
    if not SAMPLES.is_dir():
        return []
    return sorted(p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*") if p.is_file() and p.name not in DOCS)
