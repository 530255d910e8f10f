"""Every fault type, observed through a real HTTP client against the in-process simulator on 127.0.0.1.

The timeline runs on a FakeClock (moved with ``advance``) while the servers run for real.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.simulator import Scenario, Simulator, scenario_from_data

WALL = 1_700_000_000.0  # fixed server wall clock: server times are exact in these tests

PROBE_PATHS = {
    "binance": {
        "ping": "/api/v3/ping",
        "time": "/api/v3/time",
        "status": "/sapi/v1/system/status",
        "ticker": "/api/v3/ticker/bookTicker?symbol=BTCUSDT",
        "book": "/api/v3/depth?symbol=BTCUSDT&limit=5",
    },
    "binance_futures": {
        "ping": "/fapi/v1/ping",
        "time": "/fapi/v1/time",
        "ticker": "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT",
        "book": "/fapi/v1/depth?symbol=BTCUSDT&limit=5",
    },
    "bybit": {
        "time": "/v5/market/time",
        "status": "/v5/system/status",
        "ticker": "/v5/market/tickers?category=spot&symbol=BTCUSDT",
        "book": "/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=1",
    },
    "okx": {
        "time": "/api/v5/public/time",
        "status": "/api/v5/system/status",
        "ticker": "/api/v5/market/ticker?instId=BTC-USDT",
        "book": "/api/v5/market/books?instId=BTC-USDT&sz=1",
    },
    "deribit": {
        "ping": "/api/v2/public/test",
        "time": "/api/v2/public/get_time",
        "status": "/api/v2/public/status",
        "ticker": "/api/v2/public/ticker?instrument_name=BTC-PERPETUAL",
        "book": "/api/v2/public/get_order_book?instrument_name=BTC-PERPETUAL&depth=1",
    },
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(None, clock=clock, wall=lambda: WALL, seed=1)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def get(
    http: aiohttp.ClientSession, sim: Simulator, exchange: str, path: str, **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    async with http.get(sim.base_urls[exchange] + path, **kw) as resp:
        return resp.status, dict(resp.headers), await resp.read()


# ---------------------------------------------------------------- healthy shapes


async def test_healthy_payloads_match_the_reference_shapes(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, headers, body = await get(http, sim, "binance", "/api/v3/time")
    assert status == 200 and json.loads(body) == {"serverTime": int(WALL * 1000)}
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    _, headers, body = await get(http, sim, "binance", "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert headers["X-MBX-USED-WEIGHT-1M"] == "3"  # weight 2 on top of the 1 above
    ticker = json.loads(body)
    assert set(ticker) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
    assert all(isinstance(v, str) for v in ticker.values())
    assert float(ticker["bidPrice"]) < float(ticker["askPrice"])
    _, _, body = await get(http, sim, "binance", "/api/v3/ping")
    assert body == b"{}"
    _, _, body = await get(http, sim, "binance", "/sapi/v1/system/status")
    assert json.loads(body) == {"status": 0, "msg": "normal"}
    _, _, body = await get(http, sim, "binance_futures", "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT")
    assert isinstance(json.loads(body)["time"], int)

    _, headers, body = await get(http, sim, "bybit", "/v5/market/time")
    env = json.loads(body)
    assert env["retCode"] == 0 and env["time"] == int(WALL * 1000)
    assert env["result"]["timeSecond"] == str(int(WALL)) and isinstance(env["result"]["timeNano"], str)
    assert {"X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"} <= set(headers)
    _, _, body = await get(http, sim, "bybit", "/v5/system/status")
    assert all(item["state"] == "completed" for item in json.loads(body)["result"]["list"])

    _, _, body = await get(http, sim, "okx", "/api/v5/public/time")
    assert json.loads(body) == {"code": "0", "msg": "", "data": [{"ts": str(int(WALL * 1000))}]}
    _, _, body = await get(http, sim, "okx", "/api/v5/market/books?instId=BTC-USDT&sz=1")
    level = json.loads(body)["data"][0]["asks"][0]
    assert len(level) == 4 and level[2] == "0"

    _, _, body = await get(http, sim, "deribit", "/api/v2/public/get_time")
    rpc = json.loads(body)
    assert rpc["result"] == int(WALL * 1000) and rpc["testnet"] is False
    assert rpc["usOut"] - rpc["usIn"] == rpc["usDiff"] >= 0 and abs(rpc["usIn"] - WALL * 1e6) < 1e3
    _, _, body = await get(http, sim, "deribit", "/api/v2/public/ticker?instrument_name=BTC-PERPETUAL")
    assert isinstance(json.loads(body)["result"]["best_bid_price"], float | int)


async def test_prices_move(http: aiohttp.ClientSession) -> None:
    walls = iter([WALL + i for i in range(100)])
    async with Simulator(None, wall=lambda: next(walls), seed=3) as moving:
        seen = set()
        for _ in range(5):
            _, _, body = await get(http, moving, "binance", "/api/v3/ticker/price?symbol=BTCUSDT")
            seen.add(json.loads(body)["price"])
        assert len(seen) > 1


@pytest.mark.parametrize(
    ("exchange", "content_type", "marker"),
    [
        ("binance", "text/html", b"404 Not Found"),
        ("binance_futures", "text/html", b"404 Not Found"),
        ("bybit", "application/json", b'"retCode":404'),
        ("okx", "application/json", b'"code":"404"'),
        ("deribit", "application/json", b"-32601"),
    ],
)
async def test_unknown_paths_answer_404_like_the_exchange(
    sim: Simulator, http: aiohttp.ClientSession, exchange: str, content_type: str, marker: bytes
) -> None:
    path = "/api/v2/public/nope" if exchange == "deribit" else "/no/such/path"
    status, headers, body = await get(http, sim, exchange, path)
    assert status == 404 and headers["Content-Type"].startswith(content_type) and marker in body


# ---------------------------------------------------------------- latency


async def test_fixed_latency_and_bench_endpoint(sim: Simulator, http: aiohttp.ClientSession) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await get(http, sim, "binance", "/bench/fixed?ms=40")
    assert loop.time() - start >= 0.040
    sim.inject({"type": "latency", "exchange": "okx", "ms": 60, "probes": ["time"]})
    start = loop.time()
    await get(http, sim, "okx", "/api/v5/public/time")
    assert loop.time() - start >= 0.060
    sim.inject({"type": "hang", "exchange": "okx", "probes": ["time"]})
    with pytest.raises(asyncio.TimeoutError):
        await get(http, sim, "okx", "/api/v5/public/time", timeout=aiohttp.ClientTimeout(total=0.2))
    assert (await get(http, sim, "okx", "/api/v5/market/ticker?instId=BTC-USDT"))[0] == 200  # filtered out


async def test_drift_grows_across_the_fault(sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "drift", "exchange": "bybit", "duration": "10s", "from_ms": 0, "to_ms": 80})
    loop = asyncio.get_running_loop()
    await clock.advance(9.9)  # 79.2 ms added by now
    start = loop.time()
    await get(http, sim, "bybit", "/v5/market/time")
    assert loop.time() - start >= 0.079


# ---------------------------------------------------------------- error envelopes


async def test_error_bursts_use_each_exchange_envelope(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "errors", "exchange": "binance", "status": 500, "code": -1001})
    sim.inject({"type": "errors", "exchange": "bybit", "code": 10016})
    sim.inject({"type": "errors", "exchange": "okx", "status": 500})
    sim.inject({"type": "errors", "exchange": "deribit", "code": 11094})
    status, _, body = await get(http, sim, "binance", "/api/v3/time")
    assert status == 500 and json.loads(body) == {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    }
    status, _, body = await get(http, sim, "bybit", "/v5/market/time")
    env = json.loads(body)
    assert status == 200 and env["retCode"] == 10016 and env["time"] == int(WALL * 1000)
    status, _, body = await get(http, sim, "okx", "/api/v5/public/time")
    assert status == 500 and json.loads(body)["code"] == "50026"
    status, _, body = await get(http, sim, "deribit", "/api/v2/public/get_time")
    rpc = json.loads(body)
    assert status == 400 and rpc["error"] == {"message": "internal_server_error", "code": 11094} and "usIn" in rpc


async def test_error_rate_hits_a_share_of_requests(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "errors", "exchange": "okx", "status": 503, "rate": 0.5})
    statuses = []
    for _ in range(40):
        sim.reset_limits()  # OKX allows 10 time calls per 2 s, and the fake clock stands still
        statuses.append((await get(http, sim, "okx", "/api/v5/public/time"))[0])
    assert 5 <= statuses.count(503) <= 35 and statuses.count(200) == 40 - statuses.count(503)


async def test_rate_limit_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    for exchange in ("binance", "binance_futures", "bybit", "okx", "deribit"):
        sim.inject({"type": "rate_limit", "exchange": exchange, "duration": "30s", "retry_after": "7s"})
    status, headers, body = await get(http, sim, "binance", "/api/v3/time")
    assert status == 429 and json.loads(body)["code"] == -1003 and headers["Retry-After"] == "7"
    status, headers, body = await get(http, sim, "binance_futures", "/fapi/v1/time")
    assert status == 429 and json.loads(body)["code"] == -1003
    status, headers, body = await get(http, sim, "bybit", "/v5/market/time")
    assert status == 200 and json.loads(body)["retCode"] == 10006
    assert headers["X-Bapi-Limit-Status"] == "0"
    assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) == int(WALL * 1000) + 7000
    status, headers, body = await get(http, sim, "okx", "/api/v5/public/time")
    assert status == 429 and json.loads(body) == {"msg": "Too Many Requests", "code": "50011"}
    assert headers["Retry-After"] == "7"
    status, headers, body = await get(http, sim, "deribit", "/api/v2/public/get_time")
    assert status == 429 and json.loads(body)["error"]["code"] == 10028


async def test_ban_carries_its_expiry(sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "ban", "exchange": "binance", "duration": "120s"})
    sim.inject({"type": "ban", "exchange": "bybit", "duration": "120s"})
    await clock.advance(20)
    status, headers, body = await get(http, sim, "binance", "/api/v3/ping")
    msg = json.loads(body)
    assert status == 418 and msg["code"] == -1003
    until = int(msg["msg"].split("banned until ")[1].split(".")[0])
    assert until == int(WALL * 1000) + 100_000  # the fault ends in 100 s
    assert headers["Retry-After"] == "100"
    status, _, body = await get(http, sim, "bybit", "/v5/market/time")
    assert status == 403 and b"access too frequent" in body


async def test_weight_climbs_toward_the_limit(sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "weight_climb", "exchange": "binance", "duration": "10s", "usage_from": 0.1, "usage_to": 0.9})
    sim.inject({"type": "weight_climb", "exchange": "bybit", "duration": "10s", "usage_from": 0.0, "usage_to": 1.0})
    used, left = [], []
    for _ in range(3):
        used.append(int((await get(http, sim, "binance", "/api/v3/ping"))[1]["X-MBX-USED-WEIGHT-1M"]))
        left.append(int((await get(http, sim, "bybit", "/v5/market/time"))[1]["X-Bapi-Limit-Status"]))
        await clock.advance(4.99)
    assert used == [600, 2995, 5390] and used[-1] < 6000
    assert left[0] > left[1] > left[2] >= 0


# ---------------------------------------------------------------- connection-level faults


async def test_hang_never_answers(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "hang", "exchange": "bybit"})
    with pytest.raises(asyncio.TimeoutError):
        await get(http, sim, "bybit", "/v5/market/time", timeout=aiohttp.ClientTimeout(total=0.2))
    status, _, _ = await get(http, sim, "okx", "/api/v5/public/time")  # other exchanges unaffected
    assert status == 200


async def test_refuse_closes_the_port_then_reopens_it(clock: FakeClock, http: aiohttp.ClientSession) -> None:
    scenario = scenario_from_data({"faults": [{"exchange": "okx", "type": "refuse", "start": "1s", "end": "2s"}]})
    async with Simulator(scenario, clock=clock, wall=lambda: WALL) as sim:
        port = sim.ports["okx"]
        assert (await get(http, sim, "okx", "/api/v5/public/time"))[0] == 200  # keep-alive connection now open
        await clock.advance(1.5)
        await sim.sync()
        for _ in range(2):  # the pooled connection was closed too: every attempt is refused
            with pytest.raises(aiohttp.ClientConnectorError) as info:
                await get(http, sim, "okx", "/api/v5/public/time")
            assert isinstance(info.value.os_error, ConnectionRefusedError)
        assert (await get(http, sim, "bybit", "/v5/market/time"))[0] == 200
        await clock.advance(1.0)
        await sim.sync()
        assert sim.ports["okx"] == port
        assert (await get(http, sim, "okx", "/api/v5/public/time"))[0] == 200


async def test_reset_sends_rst(sim: Simulator) -> None:
    sim.inject({"type": "reset", "exchange": "binance_futures"})
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.ports["binance_futures"])
    writer.write(b"GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(ConnectionResetError):
        data = await reader.read(1000)
        assert data == b""  # a FIN would land here; an RST raises
        raise AssertionError("connection closed without a reset")
    writer.close()


async def test_reset_seen_by_an_http_client(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "reset", "exchange": "deribit"})
    with pytest.raises(aiohttp.ClientOSError):
        await get(http, sim, "deribit", "/api/v2/public/test")


# ---------------------------------------------------------------- broken bodies


async def test_malformed_json_is_truncated(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "malformed", "exchange": "okx", "keep": 0.5})
    status, headers, body = await get(http, sim, "okx", "/api/v5/public/time")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert body.startswith(b'{"code":"0"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_wrong_types_everywhere(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "wrong_types", "exchange": "all"})
    _, _, body = await get(http, sim, "okx", "/api/v5/public/time")
    okx = json.loads(body)
    assert okx["code"] == {"value": "0"} and isinstance(okx["data"], dict)
    assert okx["data"]["0"]["ts"] == {"value": str(int(WALL * 1000))}
    _, _, body = await get(http, sim, "binance", "/api/v3/time")
    assert json.loads(body) == {"serverTime": f"{int(WALL * 1000)}x"}
    _, _, body = await get(http, sim, "deribit", "/api/v2/public/status")
    rpc = json.loads(body)
    assert rpc["result"]["locked"] == "maybe" and rpc["jsonrpc"] == {"value": "2.0"}


@pytest.mark.parametrize(
    ("status", "marker", "header"), [(403, b"CloudFront", "X-Amz-Cf-Id"), (502, b"cloudflare", "CF-RAY")]
)
async def test_html_error_pages(
    sim: Simulator, http: aiohttp.ClientSession, status: int, marker: bytes, header: str
) -> None:
    sim.inject({"type": "html", "exchange": "binance", "status": status})
    got, headers, body = await get(http, sim, "binance", "/api/v3/time")
    assert got == status and headers["Content-Type"].startswith("text/html")
    assert marker in body and header in headers


async def test_huge_body_is_streamed(sim: Simulator, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "huge_body", "exchange": "deribit", "size_mb": 3})
    async with http.get(sim.base_urls["deribit"] + "/api/v2/public/test") as resp:
        assert resp.status == 200 and resp.content_length == 3 * 1024 * 1024
        first = await resp.content.read(64)
        assert first.startswith(b'{"data":"')
    # A client that reads everything gets every byte.
    status, _, body = await get(http, sim, "deribit", "/api/v2/public/test")
    assert status == 200 and len(body) == 3 * 1024 * 1024 and json.loads(body)["data"]


# ---------------------------------------------------------------- clocks and maintenance


async def test_clock_skew_moves_every_server_time(
    sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    sim.inject({"type": "clock_skew", "exchange": "all", "duration": "10s", "offset_ms": 2000, "to_ms": 4000})
    await clock.advance(5)
    want = int(WALL * 1000) + 3000
    assert json.loads((await get(http, sim, "binance", "/api/v3/time"))[2])["serverTime"] == want
    assert json.loads((await get(http, sim, "bybit", "/v5/market/time"))[2])["time"] == want
    assert json.loads((await get(http, sim, "okx", "/api/v5/public/time"))[2])["data"][0]["ts"] == str(want)
    assert json.loads((await get(http, sim, "deribit", "/api/v2/public/get_time"))[2])["result"] == want
    date = (await get(http, sim, "okx", "/api/v5/public/time"))[1]["Date"]
    assert parsedate_to_datetime(date).timestamp() == int(WALL + 3)  # the Date header follows the skew
    await clock.advance(5)
    assert json.loads((await get(http, sim, "binance", "/api/v3/time"))[2])["serverTime"] == int(WALL * 1000)


async def test_maintenance_per_exchange(sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession) -> None:
    sim.inject({"type": "maintenance", "exchange": "all", "start": 0, "duration": "60s", "title": "Upgrade"})
    await clock.advance(10)
    now = int(WALL * 1000)
    assert json.loads((await get(http, sim, "binance", "/sapi/v1/system/status"))[2])["status"] == 1
    status, _, body = await get(http, sim, "binance", "/api/v3/ticker/bookTicker?symbol=BTCUSDT")
    assert status == 503 and json.loads(body)["code"] == -1016
    status, _, body = await get(http, sim, "binance_futures", "/fapi/v1/ping")
    assert status == 503 and json.loads(body)["code"] == -1016

    items = json.loads((await get(http, sim, "bybit", "/v5/system/status"))[2])["result"]["list"]
    ongoing = [i for i in items if i["state"] == "ongoing"]
    assert len(ongoing) == 1
    assert abs(int(ongoing[0]["begin"]) - (now - 10_000)) <= 1 and abs(int(ongoing[0]["end"]) - (now + 50_000)) <= 1
    assert (await get(http, sim, "bybit", "/v5/market/time"))[0] == 200  # market data still served

    status, _, body = await get(http, sim, "okx", "/api/v5/public/time")
    assert status == 503 and json.loads(body)["code"] == "50001"
    data = json.loads((await get(http, sim, "okx", "/api/v5/system/status"))[2])["data"]
    assert data[0]["state"] == "ongoing" and data[0]["title"] == "Upgrade"

    status, _, body = await get(http, sim, "deribit", "/api/v2/public/ticker?instrument_name=BTC-PERPETUAL")
    assert status == 400 and json.loads(body)["error"] == {"message": "system_maintenance", "code": 11051}
    assert json.loads((await get(http, sim, "deribit", "/api/v2/public/status"))[2])["result"]["locked"] is True


# ---------------------------------------------------------------- signed endpoints


async def test_binance_signed_account_checks_timestamp_and_signature(
    clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    # The official vector from exchanges.md 1.6, with the server clock 100 ms after its timestamp.
    secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
    key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    payload = (
        "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
    )
    signature = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    assert hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest() == signature
    wall = [1499827319.659]
    async with Simulator(None, clock=clock, wall=lambda: wall[0], secrets={"binance": {key: secret}}) as sim:
        url = sim.base_urls["binance"] + "/api/v3/account?"
        async with http.get(url + payload + "&signature=" + signature, headers={"X-MBX-APIKEY": key}) as resp:
            assert resp.status == 200 and (await resp.json())["accountType"] == "SPOT"
        async with http.get(url + payload + "&signature=" + "0" * 64, headers={"X-MBX-APIKEY": key}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == -1022
        wall[0] = 1499827319.559 + 6.0  # older than recvWindow 5000
        async with http.get(url + payload + "&signature=" + signature, headers={"X-MBX-APIKEY": key}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body == {
                "code": -1021,
                "msg": "Timestamp for this request is outside of the recvWindow.",
            }
        wall[0] = 1499827319.559 - 1.5  # our timestamp is 1500 ms ahead of the server
        async with http.get(url + payload + "&signature=" + signature, headers={"X-MBX-APIKEY": key}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["code"] == -1021 and "ahead" in body["msg"]
        async with http.get(url + "timestamp=1&signature=x") as resp:
            assert resp.status == 401 and (await resp.json())["code"] == -2014


async def test_signed_endpoints_without_credentials(sim: Simulator, http: aiohttp.ClientSession) -> None:
    status, _, body = await get(http, sim, "bybit", "/v5/account/wallet-balance?accountType=UNIFIED")
    assert status == 401 and json.loads(body)["retCode"] == 10003
    now = int(WALL * 1000)
    headers = {"X-BAPI-API-KEY": "k", "X-BAPI-SIGN": "s", "X-BAPI-TIMESTAMP": str(now + 2000)}
    status, _, body = await get(http, sim, "bybit", "/v5/account/wallet-balance?accountType=UNIFIED", headers=headers)
    env = json.loads(body)
    assert status == 200 and env["retCode"] == 10002 and f"server_timestamp[{now}]" in env["retMsg"]
    headers["X-BAPI-TIMESTAMP"] = str(now)
    status, _, body = await get(http, sim, "bybit", "/v5/account/wallet-balance?accountType=UNIFIED", headers=headers)
    assert json.loads(body)["retCode"] == 0
    okx_headers = {
        "OK-ACCESS-KEY": "k",
        "OK-ACCESS-SIGN": "s",
        "OK-ACCESS-PASSPHRASE": "p",
        "OK-ACCESS-TIMESTAMP": "2023-11-14T22:13:20.000Z",
    }  # == WALL
    assert json.loads((await get(http, sim, "okx", "/api/v5/account/balance", headers=okx_headers))[2])["code"] == "0"
    okx_headers["OK-ACCESS-TIMESTAMP"] = "2023-11-14T22:12:40.000Z"  # 40 s behind
    status, _, body = await get(http, sim, "okx", "/api/v5/account/balance", headers=okx_headers)
    assert status == 401 and json.loads(body) == {"msg": "Timestamp request expired", "code": "50102"}
    status, _, body = await get(
        http,
        sim,
        "deribit",
        "/api/v2/private/get_account_summary?currency=BTC",
        headers={"Authorization": "bearer token"},
    )
    assert status == 200 and json.loads(body)["result"]["currency"] == "BTC"


# ---------------------------------------------------------------- the exchanges' own limits


async def test_binance_enforces_its_weight_limit(sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession) -> None:
    path = "/api/v3/depth?symbol=BTCUSDT&limit=5000"  # weight 250
    statuses = [(await get(http, sim, "binance", path))[0] for _ in range(25)]
    assert statuses[:24] == [200] * 24 and statuses[24] == 429
    await clock.advance(61)
    assert (await get(http, sim, "binance", path))[0] == 200  # the rolling minute moved on


async def test_okx_status_endpoint_allows_one_call_per_5s(
    sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    first = await get(http, sim, "okx", "/api/v5/system/status")
    second = await get(http, sim, "okx", "/api/v5/system/status")
    assert first[0] == 200 and second[0] == 429 and json.loads(second[2])["code"] == "50011"
    await clock.advance(5)
    assert (await get(http, sim, "okx", "/api/v5/system/status"))[0] == 200


# ---------------------------------------------------------------- timeline


async def test_scenario_timeline_follows_the_clock_and_loops(clock: FakeClock, http: aiohttp.ClientSession) -> None:
    scenario = scenario_from_data(
        {
            "duration": "10s",
            "loop": True,
            "faults": [
                {
                    "exchange": "binance",
                    "type": "errors",
                    "status": 502,
                    "start": "2s",
                    "duration": "3s",
                    "probes": ["time"],
                }
            ],
        }
    )
    async with Simulator(scenario, clock=clock, wall=lambda: WALL) as sim:
        seen = []
        for t in (0, 2.5, 5.5, 12.5):
            await clock.advance(t - sim.elapsed())
            seen.append((await get(http, sim, "binance", "/api/v3/time"))[0])
        assert seen == [200, 502, 200, 502]
        assert (await get(http, sim, "binance", "/api/v3/ping"))[0] == 200  # filtered to the time probe


async def test_clear_faults_and_ground_truth_of_injected(
    sim: Simulator, clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    await clock.advance(3)
    sim.inject({"type": "reset", "exchange": "okx", "duration": "2s"})
    truth = sim.expected()
    assert [(t.exchange, t.type, t.start, t.end, t.outcome.value) for t in truth] == [("okx", "reset", 3, 5, "reset")]
    sim.clear_faults()
    assert (await get(http, sim, "okx", "/api/v5/public/time"))[0] == 200


async def test_fixed_port_base_layout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    if base > 65000:
        base = 20000 + base % 20000
    try:
        sim = Simulator(Scenario(), port_base=base)
        await sim.start()
    except OSError:
        pytest.skip("ports in use")
    try:
        assert sim.ports == {
            "binance": base,
            "binance_futures": base + 1,
            "bybit": base + 2,
            "okx": base + 3,
            "deribit": base + 4,
        }
        assert sim.base_urls["okx"] == f"http://127.0.0.1:{base + 3}"
    finally:
        await sim.stop()


async def test_a_taken_port_fails_start_and_leaves_nothing_open() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        taken = blocker.getsockname()[1]
        sim = Simulator(None, port_base=taken - 2)  # bybit (offset 2) collides
        for port in (taken - 2, taken - 1):
            with socket.socket() as probe:
                if port <= 0 or probe.connect_ex(("127.0.0.1", port)) == 0:
                    pytest.skip("the ports below the taken one are not free")
        with pytest.raises(OSError):
            await sim.start()
        # binance and binance_futures were opened first; they must be closed again
        for port in (taken - 2, taken - 1):
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0
