"""Every adapter probe, signed ones included, against the in-process simulator on loopback.

Checks the adapters and the simulator agree on paths, params, signatures and payload
shapes, and that each injected fault is classified as the outcome it stands for.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from cryptomon_tui.config.exchanges import ExchangeConfig
from cryptomon_tui.exchanges.base import Classification, Credentials, ExchangeAdapter, RawResponse
from cryptomon_tui.exchanges.registry import create_adapter
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.simulator import Simulator

KINDS = {
    "binance": "binance_spot",
    "binance_futures": "binance_futures",
    "bybit": "bybit",
    "okx": "okx",
    "deribit": "deribit",
}
KEY, SECRET = "sim-key", "sim-secret"
CREDENTIALS = Credentials(KEY, SECRET, passphrase="sim-pass")
BODY_CAP = 2_000_000
ADAPTERS: dict[str, ExchangeAdapter] = {
    name: create_adapter(name, ExchangeConfig(kind=kind)) for name, kind in KINDS.items()  # type: ignore[arg-type]
}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(None, secrets={name: {KEY: SECRET} for name in KINDS})
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def probe(sim: Simulator, session: aiohttp.ClientSession, name: str, probe_name: str) -> Classification:
    """What the probing layer does, minus timing: build, sign, send, cap the body, classify."""
    adapter = ADAPTERS[name]
    spec = adapter.probes()[probe_name]
    query = urllib.parse.urlencode(dict(spec.params))
    headers = dict(spec.headers)
    if spec.signed:
        signed = adapter.sign(spec, CREDENTIALS, int(time.time() * 1000), query)
        headers.update(signed.headers)
        query = signed.query if signed.query is not None else query
    url = sim.base_urls[name] + spec.path + (f"?{query}" if query else "")
    async with session.request(spec.method, url, headers=headers) as response:
        body = await response.content.read(BODY_CAP + 1)
        raw = RawResponse(
            status=response.status,
            headers={k.lower(): v for k, v in response.headers.items()},
            body=body[:BODY_CAP],
            truncated=len(body) > BODY_CAP,
        )
    return adapter.classify(probe_name, raw)


async def run_all(sim: Simulator, probes: tuple[str, ...] | None = None) -> dict[tuple[str, str], Classification]:
    sim.reset_limits()  # OKX status allows 1 call per 5 s: each round starts fresh
    results: dict[tuple[str, str], Classification] = {}
    async with aiohttp.ClientSession() as session:
        for name, adapter in ADAPTERS.items():
            for probe_name in adapter.probes():
                if probes is None or probe_name in probes:
                    results[(name, probe_name)] = await probe(sim, session, name, probe_name)
    return results


async def test_healthy_simulator_every_probe_ok_including_signed(sim: Simulator) -> None:
    results = await run_all(sim)
    assert len(results) == sum(len(a.probes()) for a in ADAPTERS.values())
    bad = {key: (c.outcome, c.error_code, c.error_message) for key, c in results.items() if c.outcome is not Outcome.OK}
    assert not bad
    now_ms = time.time() * 1000
    for name in KINDS:
        server = results[(name, "time")].server_time_ms
        assert server is not None and abs(server - now_ms) < 5000, name
    assert results[("binance", "time")].rate_limit_used is not None
    assert results[("bybit", "ticker")].rate_limit_used is not None


FAULTS: list[tuple[dict[str, Any], Outcome]] = [
    ({"type": "errors", "exchange": "all", "status": 500}, Outcome.HTTP_5XX),
    ({"type": "rate_limit", "exchange": "all", "retry_after": "7s"}, Outcome.RATE_LIMITED),
    ({"type": "html", "exchange": "all", "status": 403, "page": "cloudfront"}, Outcome.IP_BANNED),
    ({"type": "html", "exchange": "all", "status": 502}, Outcome.HTTP_5XX),
    ({"type": "malformed", "exchange": "all"}, Outcome.BAD_PAYLOAD),
    ({"type": "huge_body", "exchange": "all"}, Outcome.BAD_PAYLOAD),
]


@pytest.mark.parametrize(("fault", "outcome"), FAULTS, ids=[f"{f['type']}-{f.get('status', '')}" for f, _ in FAULTS])
async def test_fault_outcomes(sim: Simulator, fault: dict[str, Any], outcome: Outcome) -> None:
    sim.inject(fault)
    results = await run_all(sim, probes=("time", "status", "ticker", "account"))
    wrong = {key: (c.outcome, c.error_code) for key, c in results.items() if c.outcome is not outcome}
    assert not wrong
    if outcome is Outcome.RATE_LIMITED:
        assert all(c.retry_after_s == 7 for c in results.values())


async def test_bans_carry_their_expiry(sim: Simulator) -> None:
    sim.inject({"type": "ban", "exchange": ["binance", "binance_futures", "bybit"], "ban_for": "2m"})
    results = await run_all(sim, probes=("time", "ticker"))
    now = time.time()
    for name in ("binance", "binance_futures", "bybit"):
        result = results[(name, "ticker")]
        assert result.outcome is Outcome.IP_BANNED
        assert result.ban_until is not None and now + 60 < result.ban_until < now + 900, name
    assert results[("binance", "ticker")].ban_until == pytest.approx(now + 120, abs=5)
    assert results[("okx", "ticker")].outcome is Outcome.OK


async def test_maintenance(sim: Simulator) -> None:
    sim.inject({"type": "maintenance", "exchange": "all"})
    results = await run_all(sim, probes=("status", "ticker"))
    for name in ("binance", "bybit", "okx", "deribit"):
        assert results[(name, "status")].outcome is Outcome.MAINTENANCE, name
    for name in ("binance", "binance_futures", "okx", "deribit"):
        assert results[(name, "ticker")].outcome is Outcome.MAINTENANCE, name
    assert results[("bybit", "ticker")].outcome is Outcome.OK  # Bybit market data keeps flowing


async def test_clock_skew_hits_signed_probes_by_each_exchange_tolerance(sim: Simulator) -> None:
    sim.inject({"type": "clock_skew", "exchange": "all", "offset_ms": 40_000})
    results = await run_all(sim, probes=("time", "account"))
    for name in ("binance", "binance_futures", "bybit", "okx"):
        assert results[(name, "account")].outcome is Outcome.CLOCK_SKEW, name
    assert results[("deribit", "account")].outcome is Outcome.OK  # 40 s is inside Deribit's 60 s
    server = results[("okx", "time")].server_time_ms
    assert server is not None and abs(server - time.time() * 1000 - 40_000) < 5000
