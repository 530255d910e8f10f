"""The outage scenario end to end: 250 ms probes over 20 s of (fake) time see each fault as its ground truth says.

A deliberately small classifier stands in for the exchange adapters (written elsewhere): it only has
to tell the failure classes the outage scenario produces apart.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.simulator import Simulator

TICKER = {
    "binance": "/api/v3/ticker/bookTicker?symbol=BTCUSDT",
    "binance_futures": "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT",
    "bybit": "/v5/market/tickers?category=spot&symbol=BTCUSDT",
    "okx": "/api/v5/market/ticker?instId=BTC-USDT",
    "deribit": "/api/v2/public/ticker?instrument_name=BTC-PERPETUAL",
}


async def probe(http: aiohttp.ClientSession, url: str) -> Outcome:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.2)) as resp:
            body = await resp.read()
            status = resp.status
    except TimeoutError:
        return Outcome.TIMEOUT
    except aiohttp.ClientConnectorError:
        return Outcome.CONNECT
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
        return Outcome.RESET
    try:
        data = json.loads(body)
    except ValueError:
        return Outcome.BAD_PAYLOAD
    error = data.get("error") if isinstance(data, dict) else None
    if (isinstance(error, dict) and error.get("code") == 11051) or (
        isinstance(data, dict) and data.get("code") in (-1016, "50001")
    ):
        return Outcome.MAINTENANCE
    if status >= 500:
        return Outcome.HTTP_5XX
    if status != 200 or error or (isinstance(data, dict) and data.get("retCode", 0) != 0):
        return Outcome.EXCHANGE_ERROR
    return Outcome.OK


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_outage_faults_are_seen_with_their_outcomes_and_recover(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with Simulator("outage", clock=clock) as sim:
        truth = {item.exchange: item for item in sim.expected()}
        seen: dict[str, dict[Outcome, list[float]]] = defaultdict(lambda: defaultdict(list))
        for step in range(80):  # 20 s at 250 ms
            t = step * 0.25
            await clock.advance(t - sim.elapsed())
            await sim.sync()
            outcomes = await asyncio.gather(*(probe(http, sim.base_urls[ex] + path) for ex, path in TICKER.items()))
            for exchange, outcome in zip(TICKER, outcomes, strict=True):
                seen[exchange][outcome].append(t)
                expected = truth[exchange].outcome if truth[exchange].active_at(t) else Outcome.OK
                assert outcome is expected, (exchange, t, outcome, expected)
        for exchange, item in truth.items():
            during = seen[exchange][item.outcome]
            assert len(during) >= 19, (exchange, len(during))  # 5 s of 250 ms probes
            assert max(seen[exchange][Outcome.OK]) > item.end, f"{exchange} recovered before 20 s"
