"""Signed user-data streams (issue 16 item 1, last sentence) against the simulator on loopback: the real
stream probe logs in with read-only credentials (Bybit ``auth``, OKX ``login``, Deribit ``public/auth``),
the simulator checks the signature as the exchange does, and the probe reports login and keep-alive:
ok with the right secret, ``ws_auth`` (one incident) with a wrong one. The key, the secret and the
signature never appear in what the probe reports."""

from __future__ import annotations

import asyncio
import random

import pytest

from cryptomon_tui.clock import FakeClock, RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.detection.signals import WS_AUTH
from cryptomon_tui.detection.streams import StreamDetector
from cryptomon_tui.exchanges.base import Credentials
from cryptomon_tui.exchanges.registry import adapter_class
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.simulator.server import Simulator
from cryptomon_tui.streams.probe import AiohttpConnector, StreamProbe
from cryptomon_tui.streams.runner import StreamRunner, stream_plan

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

KEY, SECRET, PASSPHRASE = "ro-key-7f3a9c", "s3cr3t-9b1e77d0c4", "pass-phrase-42"
VENUES = ("bybit", "okx", "deribit")


async def wait_for(probe: StreamProbe, predicate, seconds: float) -> bool:
    for _ in range(int(seconds * 20)):
        if predicate(probe.stats()):
            return True
        await asyncio.sleep(0.05)
    return predicate(probe.stats())


async def run_login(exchange: str, secret: str) -> tuple[StreamProbe, Simulator]:
    sim = Simulator(seed=1, exchanges=[exchange], secrets={exchange: {KEY: SECRET}})
    await sim.start()
    adapter = adapter_class(exchange)()
    [spec] = adapter.user_stream_specs(Credentials(KEY, secret, PASSPHRASE), sim.ws_urls[exchange])
    probe = StreamProbe(exchange, spec, adapter.classify_ws_message, AiohttpConnector(), RealClock(),
                        rng=random.Random(1))
    probe.start()
    return probe, sim


async def stop(probe: StreamProbe, sim: Simulator) -> None:
    await probe.stop()
    await probe._connector.aclose()
    await sim.stop()


@pytest.mark.parametrize("exchange", VENUES)
async def test_login_with_the_right_secret_is_ok_and_kept_alive(exchange: str) -> None:
    probe, sim = await run_login(exchange, SECRET)
    try:
        assert await wait_for(probe, lambda s: s.subscribed, 10.0), probe.stats()
        stats = probe.stats()
        assert stats.outcome is StreamOutcome.OK and stats.connected, stats
        assert probe.tracker.logins == 1 and probe.tracker.auth_error is None
        publisher = sim._ports[exchange].publisher
        assert publisher is not None and publisher.logins == [(KEY, True)]
        assert stats.stale_after_s >= 3600  # no data is expected on a user-data stream: silence is not judged
    finally:
        await stop(probe, sim)


@pytest.mark.parametrize("exchange", VENUES)
async def test_rejected_login_is_an_auth_verdict_and_one_incident(exchange: str) -> None:
    probe, sim = await run_login(exchange, "not-the-secret")
    try:
        assert await wait_for(probe, lambda s: s.outcome is StreamOutcome.WS_AUTH, 10.0), probe.stats()
        stats = probe.stats()
        assert "login rejected (auth)" in stats.detail, stats
        for text in (KEY, SECRET, "not-the-secret", PASSPHRASE):
            assert text not in repr(stats), stats
        det = StreamDetector()
        signals = det.evaluate(0.0, [stats]) + det.evaluate(1.0, [stats])
        assert [s.rule for s in signals if s.firing] == [WS_AUTH], signals
    finally:
        await stop(probe, sim)


def test_user_streams_only_with_credentials_and_the_switch() -> None:
    base = {"base_url": "http://127.0.0.1:9", "credentials": {"api_key": KEY, "api_secret": SECRET,
                                                            "passphrase": PASSPHRASE}}
    on = config_from_data({"exchanges": {"okx": {**base, "user_stream": True}}})
    off = config_from_data({"exchanges": {"okx": base}})
    no_keys = config_from_data({"exchanges": {"okx": {"base_url": "http://127.0.0.1:9", "user_stream": True}}})
    names = [p.spec.name for p in stream_plan(on) if p.spec is not None]
    assert names == ["tickers:BTC-USDT", "private (login)"]
    assert [p.spec.url for p in stream_plan(on) if p.spec is not None][1] == "ws://127.0.0.1:9/ws/v5/private"
    assert [p.spec.name for p in stream_plan(off) if p.spec is not None] == ["tickers:BTC-USDT"]
    assert [p.spec.name for p in stream_plan(no_keys) if p.spec is not None] == ["tickers:BTC-USDT"]
    spec = next(p.spec for p in stream_plan(on) if p.spec is not None and p.spec.login is not None)
    assert SECRET not in repr(spec)  # the login builder is not part of the spec's repr
    market, user = StreamRunner(on, FakeClock()).probes
    assert market.limiter is user.limiter  # one connection-attempt budget per exchange
