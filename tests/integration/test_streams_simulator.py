"""The real stream probe (aiohttp client) against the simulator's real WebSocket streams on loopback.

Each stream fault gives the verdict it should, and a healthy stream stays ok. Real sockets and real
time: the faults are injected at once and the thresholds are the production defaults, so each case
takes a few seconds.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from cryptomon_tui.clock import FakeClock, RealClock
from cryptomon_tui.exchanges.registry import adapter_class
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.simulator.server import Simulator
from cryptomon_tui.streams.probe import AiohttpConnector, StreamProbe

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

ADAPTERS = {"binance": "binance_spot", "binance_futures": "binance_futures", "bybit": "bybit", "okx": "okx",
            "deribit": "deribit"}


async def wait_for(probe: StreamProbe, predicate, seconds: float) -> bool:
    for _ in range(int(seconds * 20)):
        if predicate(probe.stats()):
            return True
        await asyncio.sleep(0.05)
    return predicate(probe.stats())


def make_probe(sim: Simulator, exchange: str) -> tuple[StreamProbe, AiohttpConnector]:
    adapter = adapter_class(ADAPTERS[exchange])()
    spec = adapter.stream_specs(sim.ws_urls[exchange])[0]
    connector = AiohttpConnector()
    probe = StreamProbe(exchange, spec, adapter.classify_ws_message, connector, RealClock(),
                        rng=random.Random(3), offset=lambda: (0.0, 1.0))
    return probe, connector


@pytest.mark.parametrize("exchange", list(ADAPTERS))
async def test_healthy_stream_is_ok_with_messages_and_small_lag(exchange: str) -> None:
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        probe, connector = make_probe(sim, exchange)
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.messages >= 20, 10.0), probe.stats()
            stats = probe.stats()
            assert stats.outcome is StreamOutcome.OK, stats
            assert stats.connected and stats.subscribed
            assert stats.connect_ms is not None and stats.connect_ms < 5_000
            assert stats.lag_ms is not None and abs(stats.lag_ms) < 200, stats
        finally:
            await probe.stop()
            await connector.aclose()


async def test_stall_with_socket_open_is_stale_and_recovers() -> None:
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        probe, connector = make_probe(sim, "okx")
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.messages >= 40, 10.0)  # enough gaps to learn the stream
            fault = sim.inject({"type": "ws_stall", "exchange": "okx"})
            assert await wait_for(probe, lambda s: s.outcome is StreamOutcome.WS_STALE, 5.0), probe.stats()
            assert probe.stats().connected, "stale while the socket is still open"
            sim.remove(fault)
            assert await wait_for(probe, lambda s: s.outcome is StreamOutcome.OK, 5.0), probe.stats()
        finally:
            await probe.stop()
            await connector.aclose()


@pytest.mark.parametrize(("exchange", "fault", "outcome"), [
    ("binance", {"type": "ws_seq_gap", "skip": 3, "every": 0.5}, StreamOutcome.WS_GAP),
    ("bybit", {"type": "ws_seq_gap", "skip": 3, "every": 0.5}, StreamOutcome.WS_GAP),
    ("deribit", {"type": "ws_lag", "ms": 2500}, StreamOutcome.WS_LAG),
    ("okx", {"type": "ws_heartbeat", "after": 2}, StreamOutcome.WS_HEARTBEAT),
    ("bybit", {"type": "ws_disconnect", "every": 0.3, "code": 1011}, StreamOutcome.WS_RECONNECT_STORM),
])
async def test_stream_fault_gives_its_verdict(exchange: str, fault: dict, outcome: StreamOutcome) -> None:
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        probe, connector = make_probe(sim, exchange)
        probe.backoff.base_s = 0.05  # keep the storm case short; the limiter still applies
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.messages >= 10, 10.0)
            sim.inject({**fault, "exchange": exchange})
            seen: set[StreamOutcome] = set()

            def saw(s):
                seen.add(s.outcome)
                return outcome in seen

            assert await wait_for(probe, saw, 20.0), (probe.stats(), seen)
        finally:
            await probe.stop()
            await connector.aclose()


async def test_shutdown_notice_renews_without_a_fault() -> None:
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        probe, connector = make_probe(sim, "binance")
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.messages >= 10, 10.0)
            fault = sim.inject({"type": "ws_shutdown", "exchange": "binance", "after": 0.2})
            assert await wait_for(probe, lambda s: s.planned_reconnects >= 1, 10.0), probe.stats()
            sim.remove(fault)
            assert await wait_for(probe, lambda s: s.outcome is StreamOutcome.OK and s.connected, 5.0)
            assert probe.stats().recent_reconnects == 0
        finally:
            await probe.stop()
            await connector.aclose()


async def test_huge_frame_is_refused_not_buffered() -> None:
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        probe, connector = make_probe(sim, "binance")
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.messages >= 5, 10.0)
            sim.inject({"type": "ws_huge", "exchange": "binance", "mb": 5})
            assert await wait_for(probe, lambda s: s.last_close_code == 1009 or "1009" in (s.last_close_reason or "")
                                  or "too big" in (s.last_close_reason or "").lower(), 10.0), probe.stats()
        finally:
            await probe.stop()
            await connector.aclose()


async def test_unrouted_futures_url_receives_nothing() -> None:
    """A stream on a URL the simulator does not route gets a socket and never a message: stale, never ok.

    The routed stream beside it proves the simulator was streaming meanwhile; the 10 s of silence before the
    verdict pass on an injected clock (they were 10 s of real waiting)."""
    async with Simulator(seed=1, stream_rate=20.0) as sim:
        adapter = adapter_class("binance_futures")()
        spec = adapter.stream_specs(sim.ws_urls["binance_futures"])[0]
        assert "/public/ws/" in spec.url
        from dataclasses import replace

        unrouted = replace(spec, url=spec.url.replace("/public/ws/", "/ws/"))
        connector = AiohttpConnector()
        clock = FakeClock(start=time.time())
        probe = StreamProbe("binance_futures", unrouted, adapter.classify_ws_message, connector, clock)
        routed = StreamProbe("binance_futures", spec, adapter.classify_ws_message, connector, RealClock())
        probe.start()
        try:
            assert await wait_for(probe, lambda s: s.connected, 10.0), probe.stats()
            routed.start()
            assert await wait_for(routed, lambda s: s.messages >= 20, 10.0), routed.stats()
            assert probe.stats().messages == 0, probe.stats()  # the routed one got 20 meanwhile
            await clock.advance(15.0, step=1.0)
            stats = probe.stats()
            assert stats.outcome is StreamOutcome.WS_STALE, stats
            assert stats.messages == 0 and stats.connected, stats
        finally:
            await routed.stop()
            await probe.stop()
            await connector.aclose()
