"""Venue internals without HTTP: limit counters, weights, envelopes, symbols."""

from __future__ import annotations

import json
import random

import pytest

from cryptomon_tui.simulator.market import Market, split_symbol
from cryptomon_tui.simulator.venues import BinanceFutures, BinanceSpot, Ctx, Deribit, Okx, RollingCounter

NOW_MS = 1_700_000_000_000.0


def ctx(path: str, query: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Ctx:
    q = query or {}
    return Ctx(path, "&".join(f"{k}={v}" for k, v in q.items()), q, headers or {}, "127.0.0.1", NOW_MS, NOW_MS)


def test_rolling_counter_forgets_buckets_as_they_leave_the_window() -> None:
    counter = RollingCounter(60.0, 60)
    assert counter.add("ip", 0.5, 10) == 10
    assert counter.add("ip", 30.2, 5) == 15
    assert counter.add("ip", 59.9, 1) == 16
    assert counter.add("ip", 60.0, 1) == 7  # the first second left the window
    assert counter.add("ip", 90.5, 0) == 2  # so did second 30
    assert counter.add("other", 90.5, 3) == 3
    assert counter.add("ip", 500, 4) == 4  # long idle: everything forgotten


@pytest.mark.parametrize(
    ("limit", "weight"), [("5", 5), ("100", 5), ("101", 25), ("500", 25), ("1000", 50), ("5000", 250)]
)
def test_binance_depth_weights(limit: str, weight: int) -> None:
    venue = BinanceSpot(Market(random.Random(1)))
    request = ctx("/api/v3/depth", {"symbol": "BTCUSDT", "limit": limit})
    venue.account(request, venue.routes["/api/v3/depth"], 0.0)
    assert request.used == weight


def test_futures_weights_and_limit() -> None:
    venue = BinanceFutures(Market(random.Random(1)))
    request = ctx("/fapi/v2/account")
    venue.account(request, venue.routes["/fapi/v2/account"], 0.0)
    assert request.used == 5
    request.usage_override = 0.5
    assert venue.usage_headers(request)["X-MBX-USED-WEIGHT-1M"] == "1200"  # half of 2400


def test_okx_error_statuses_follow_the_documented_table() -> None:
    venue = Okx(Market(random.Random(1)))
    for code, status in (("50001", 503), ("50011", 429), ("50102", 401), ("50026", 500), ("51001", 200)):
        got, body, _, _ = venue.error(ctx("/api/v5/public/time"), None, code, None)
        assert got == status and json.loads(body)["code"] == code
    got, body, _, _ = venue.error(ctx("/x"), 503, None, None)
    assert (got, json.loads(body)["code"]) == (503, "50001")


def test_deribit_credits_refill() -> None:
    venue = Deribit(Market(random.Random(1)))
    results = [venue.account(ctx("/api/v2/public/test"), None, 0.0) for _ in range(101)]
    assert all(r is None for r in results[:100]) and results[100] is not None  # burst of 100
    assert results[100][0] == 429
    assert venue.account(ctx("/api/v2/public/test"), None, 0.05) is None  # 500 credits back after 50 ms


@pytest.mark.parametrize(
    ("symbol", "pair"),
    [
        ("BTCUSDT", ("BTC", "USDT")),
        ("LTCBTC", ("LTC", "BTC")),
        ("BTC-USDT-SWAP", ("BTC", "USDT")),
        ("BTC-PERPETUAL", ("BTC", "USD")),
        ("ETH_USDC", ("ETH", "USDC")),
        ("BTCUSD", ("BTC", "USD")),
    ],
)
def test_symbols_split_into_base_and_quote(symbol: str, pair: tuple[str, str]) -> None:
    assert split_symbol(symbol) == pair


def test_prices_walk_but_stay_plausible() -> None:
    market = Market(random.Random(5))
    first = market.mid("BTCUSDT", 0.0)
    assert market.mid("BTCUSDT", 0.0) == first  # no time, no move
    later = [market.mid("BTCUSDT", float(t)) for t in range(1, 600)]
    assert len(set(later)) > 500 and all(0.9 * first < p < 1.1 * first for p in later)
    cross = market.mid("LTCBTC", 600.0)  # moves LTC and BTC to t=600; the USDT pairs then agree with it
    assert cross == pytest.approx(market.mid("LTCUSDT", 600.0) / market.mid("BTCUSDT", 600.0), rel=1e-12)
    bid, _, ask, _ = market.quote("ETHUSDT", 601.0)
    assert ask > bid


def test_retry_after_covers_the_wait_until_usage_is_back_under_the_limit() -> None:
    counter = RollingCounter(60.0, 60)
    counter.add("ip", 10.5, 4000)
    counter.add("ip", 40.5, 3000)  # 7000 > 6000 until second 10 leaves the window at t=70
    assert counter.seconds_until_within("ip", 40.5, 6000) == pytest.approx(29.5)
    assert counter.seconds_until_within("ip", 40.5, 8000) == 0.0
    assert counter.seconds_until_within("nobody", 40.5, 1) == 0.0
    venue = BinanceSpot(Market(random.Random(1)))
    depth = venue.routes["/api/v3/depth"]
    for _ in range(24):
        assert venue.account(ctx("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "5000"}), depth, 5.25) is None
    reply = venue.account(ctx("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "5000"}), depth, 5.25)
    assert reply is not None and reply[0] == 429 and reply[3] == {"Retry-After": "60"}
