"""Signature checks of the simulated private endpoints and the automatic ban after ignored 429s."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator

import aiohttp
import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.simulator import Simulator

WALL = 1_607_418_537.715  # 2020-12-08T09:08:57.715Z, the OKX vector's timestamp
SECRETS = {
    "bybit": {"XXXXXXXXXX": "TEST_SECRET_DO_NOT_USE"},
    "okx": {"okx-key": "22582BD0CFF14C41EDBF1AB98506286D"},
    "deribit": {"client-id": "ABCD"},
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(None, clock=FakeClock(), wall=lambda: WALL, secrets=SECRETS) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bybit_sign(secret: str, ts: str, key: str, recv: str, query: str) -> str:
    return hmac.new(secret.encode(), f"{ts}{key}{recv}{query}".encode(), hashlib.sha256).hexdigest()


def test_signing_formulas_match_the_reference_vectors() -> None:
    """The formulas used below reproduce the vectors in exchanges.md (2.6 and 3.6)."""
    assert (
        bybit_sign(
            "TEST_SECRET_DO_NOT_USE",
            "1658384314791",
            "XXXXXXXXXX",
            "5000",
            "category=option&symbol=BTC-29JUL22-25000-C",
        )
        == "0732b85d286ff2e8ccdeffe1ffbd41b4766a153e804f0604bbff970ac75075ad"
    )
    okx = hmac.new(
        b"22582BD0CFF14C41EDBF1AB98506286D",
        b"2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC",
        hashlib.sha256,
    ).digest()
    assert base64.b64encode(okx).decode() == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="


async def test_bybit_verifies_hmac(sim: Simulator, http: aiohttp.ClientSession) -> None:
    ts, key, recv, query = str(int(WALL * 1000)), "XXXXXXXXXX", "5000", "accountType=UNIFIED"
    url = f"{sim.base_urls['bybit']}/v5/account/wallet-balance?{query}"
    headers = {
        "X-BAPI-API-KEY": key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": recv,
        "X-BAPI-SIGN": bybit_sign("TEST_SECRET_DO_NOT_USE", ts, key, recv, query),
    }
    async with http.get(url, headers=headers) as resp:
        assert (await resp.json())["retCode"] == 0
    async with http.get(url, headers={**headers, "X-BAPI-SIGN": "0" * 64}) as resp:
        assert resp.status == 401 and (await resp.json())["retCode"] == 10004
    async with http.get(url, headers={**headers, "X-BAPI-API-KEY": "other"}) as resp:
        assert (await resp.json())["retCode"] == 10003


async def test_okx_verifies_hmac(sim: Simulator, http: aiohttp.ClientSession) -> None:
    url = f"{sim.base_urls['okx']}/api/v5/account/balance?ccy=BTC"
    headers = {
        "OK-ACCESS-KEY": "okx-key",
        "OK-ACCESS-PASSPHRASE": "p",
        "OK-ACCESS-TIMESTAMP": "2020-12-08T09:08:57.715Z",
        "OK-ACCESS-SIGN": "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY=",
    }
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200 and (await resp.json())["code"] == "0"
    async with http.get(url, headers={**headers, "OK-ACCESS-SIGN": "bad="}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "50113"
    async with http.get(url, headers={**headers, "OK-ACCESS-TIMESTAMP": "1607418537"}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == "50112"


async def test_deribit_verifies_rest_signature(sim: Simulator, http: aiohttp.ClientSession) -> None:
    uri = "/api/v2/private/get_account_summary?currency=BTC"
    ts, nonce = str(int(WALL * 1000)), "fdbmmz79"
    sig = hmac.new(b"ABCD", f"{ts}\n{nonce}\nGET\n{uri}\n\n".encode(), hashlib.sha256).hexdigest()
    auth = f"deri-hmac-sha256 id=client-id,ts={ts},sig={sig},nonce={nonce}"
    async with http.get(sim.base_urls["deribit"] + uri, headers={"Authorization": auth}) as resp:
        assert resp.status == 200 and (await resp.json())["result"]["currency"] == "BTC"
    async with http.get(sim.base_urls["deribit"] + uri, headers={"Authorization": auth.replace(sig, "0" * 64)}) as r:
        body = await r.json()
        assert r.status == 400 and body["error"]["code"] == 13009 and "usIn" in body
    stale = f"deri-hmac-sha256 id=client-id,ts={int(ts) - 61_000},sig={sig},nonce={nonce}"
    async with http.get(sim.base_urls["deribit"] + uri, headers={"Authorization": stale}) as resp:
        assert (await resp.json())["error"]["code"] == 13009


async def test_binance_bans_a_client_that_ignores_429s(http: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with Simulator(None, clock=clock, wall=lambda: WALL) as sim:
        url = sim.base_urls["binance"] + "/api/v3/depth?symbol=BTCUSDT&limit=5000"  # weight 250
        statuses = []
        for _ in range(50):
            async with http.get(url) as resp:
                statuses.append(resp.status)
                if resp.status == 418:
                    body = await resp.json()
                    retry_after = resp.headers["Retry-After"]
        assert statuses[:24] == [200] * 24
        assert statuses[24:44] == [429] * 20 and set(statuses[44:]) == {418}
        assert body["code"] == -1003 and f"banned until {int(WALL * 1000) + 120_000}" in body["msg"]
        assert retry_after == "120"
        await clock.advance(119)
        async with http.get(url) as resp:
            assert resp.status == 418 and resp.headers["Retry-After"] == "1"
        await clock.advance(2)
        async with http.get(url) as resp:
            assert resp.status == 200  # the minute rolled over and the ban ended
