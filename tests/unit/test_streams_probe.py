"""The stream probe loop on the injected clock against a scripted socket: reconnect discipline,
heartbeats, planned renewals, and a stall with the socket open."""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.exchanges.registry import adapter_class
from cryptomon_tui.exchanges.ws import StreamSpec
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.streams.attempts import AttemptLimiter, ReconnectBackoff, attempt_cap
from cryptomon_tui.streams.probe import Frame, StreamProbe

pytestmark = pytest.mark.timeout(30)


class ScriptedConnection:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        self.sent.append(text)

    async def receive(self) -> Frame:
        if self.closed:
            return Frame("closed", "", 1000)
        return await self.inbox.get()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.inbox.put_nowait(Frame("closed", "", 1000))

    def push(self, data: object) -> None:
        self.inbox.put_nowait(Frame("text", data if isinstance(data, str) else json.dumps(data)))


class ScriptedConnector:
    def __init__(self, clock: FakeClock, refuse: bool = False) -> None:
        self.clock = clock
        self.refuse = refuse
        self.attempt_times: list[float] = []
        self.connections: list[ScriptedConnection] = []

    async def connect(self, url: str, timeout_s: float, max_frame_bytes: int) -> ScriptedConnection:
        self.attempt_times.append(self.clock.monotonic())
        if self.refuse:
            raise ConnectionRefusedError(111, "Connect call failed")
        conn = ScriptedConnection()
        self.connections.append(conn)
        return conn

    async def aclose(self) -> None:
        return None


def trade(seq: int, event_ms: float) -> dict[str, object]:
    return {"e": "trade", "E": event_ms, "s": "BTCUSDT", "t": seq, "p": "1", "q": "1", "T": event_ms}


async def test_refused_connections_back_off_and_respect_the_attempt_limit():
    clock = FakeClock()
    connector = ScriptedConnector(clock, refuse=True)
    spec = StreamSpec(name="s", url="ws://127.0.0.1:9/ws/s", venue_connect_attempts=500, venue_connect_window_s=300.0)
    assert attempt_cap(500, 300.0, 0.02) == (10, 300.0)
    probe = StreamProbe("binance", spec, adapter_class("binance_spot")().classify_ws_message, connector, clock,
                        rng=random.Random(7))
    probe.start()
    await clock.advance(900, step=0.5)
    times = connector.attempt_times
    # backoff grows: the first gaps are short, later ones long
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < 2.0 and max(gaps) >= 30.0
    # never more than the cap in any sliding 300 s window
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t - start < 300.0 - 1e-6) <= 10  # float noise at the edge
    s = probe.stats()
    assert s.outcome in (StreamOutcome.WS_DISCONNECTED, StreamOutcome.WS_RECONNECT_STORM)
    assert "ConnectionRefusedError" in (s.last_close_reason or "")
    await probe.stop()


async def test_backoff_resets_only_after_a_connection_lived():
    backoff = ReconnectBackoff(random.Random(1), base_s=1.0, max_s=64.0)
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.5 * min(64, 2**i) <= d <= min(64, 2**i) for i, d in enumerate(delays))
    backoff.connection_lived(5.0)
    assert backoff.next_delay() >= 32.0
    backoff.connection_lived(61.0)
    assert backoff.next_delay() <= 1.0


async def test_attempt_limiter_waits_for_the_window():
    clock = FakeClock()
    limiter = AttemptLimiter(clock, attempts=3, window_s=10.0)
    for _ in range(3):
        assert await limiter.acquire() == 0.0
    task = asyncio.create_task(limiter.acquire())
    await clock.advance(9.0)
    assert not task.done()
    await clock.advance(1.5)
    assert task.done() and task.result() == pytest.approx(10.0)


async def test_stall_with_socket_open_is_stale_then_recovers():
    clock = FakeClock()
    connector = ScriptedConnector(clock)
    adapter = adapter_class("binance_spot")()
    spec = adapter.stream_specs("ws://127.0.0.1:1")[0]
    probe = StreamProbe("binance", spec, adapter.classify_ws_message, connector, clock, rng=random.Random(1),
                        offset=lambda: (0.0, 2.0))
    probe.start()
    await clock.advance(0.1)
    conn = connector.connections[0]
    assert conn.sent == []  # raw /ws/<name> URL: no subscribe frame needed
    seq = 0
    for _ in range(100):
        seq += 1
        conn.push(trade(seq, clock.now() * 1000.0 - 20.0))
        await clock.advance(0.1)
    assert probe.stats().outcome is StreamOutcome.OK
    assert probe.stats().lag_ms == pytest.approx(20.0, abs=0.5)
    await clock.advance(spec.stale_floor_s - 1.0)
    assert probe.stats().outcome is StreamOutcome.OK
    await clock.advance(2.0)  # silent longer than the floor; the socket stays open
    stalled = probe.stats()
    assert stalled.connected and stalled.outcome is StreamOutcome.WS_STALE
    for _ in range(5):
        seq += 1
        conn.push(trade(seq, clock.now() * 1000.0))
        await clock.advance(0.1)
    assert probe.stats().outcome is StreamOutcome.OK
    await probe.stop()


async def test_client_heartbeat_sent_and_missing_pong_reconnects():
    clock = FakeClock()
    connector = ScriptedConnector(clock)
    adapter = adapter_class("okx")()
    spec = adapter.stream_specs("ws://127.0.0.1:1/ws/v5/public")[0]
    probe = StreamProbe("okx", spec, adapter.classify_ws_message, connector, clock, rng=random.Random(1))
    probe.start()
    await clock.advance(0.1)
    conn = connector.connections[0]
    assert json.loads(conn.sent[0])["op"] == "subscribe"
    conn.push({"event": "subscribe", "arg": {"channel": "tickers", "instId": "BTC-USDT"}, "connId": "1"})
    await clock.advance(20.5)
    assert "ping" in conn.sent
    conn.push("pong")
    await clock.advance(31.0)  # the second ping (at 40 s) is still unanswered 10 s later
    assert probe.tracker.heartbeat_misses == 1
    assert conn.closed
    await clock.advance(5.0)
    assert len(connector.connections) == 2  # reconnected after a short backoff
    await probe.stop()


async def test_deribit_test_request_is_answered():
    clock = FakeClock()
    connector = ScriptedConnector(clock)
    adapter = adapter_class("deribit")()
    spec = adapter.stream_specs("ws://127.0.0.1:1/ws/api/v2")[0]
    probe = StreamProbe("deribit", spec, adapter.classify_ws_message, connector, clock, rng=random.Random(1))
    probe.start()
    await clock.advance(0.1)
    conn = connector.connections[0]
    methods = [json.loads(m)["method"] for m in conn.sent]
    assert methods == ["public/set_heartbeat", "public/subscribe"]
    conn.push({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}})
    await clock.advance(0.1)
    assert json.loads(conn.sent[-1])["method"] == "public/test"
    await probe.stop()


async def test_server_shutdown_renews_at_once_without_a_storm():
    clock = FakeClock()
    connector = ScriptedConnector(clock)
    adapter = adapter_class("binance_spot")()
    spec = adapter.stream_specs("ws://127.0.0.1:1")[0]
    probe = StreamProbe("binance", spec, adapter.classify_ws_message, connector, clock, rng=random.Random(1))
    probe.start()
    for n in range(4):  # Binance: 2 % of 300 attempts / 5 min = 6 connections in the window
        await clock.advance(10.0)  # each connection lived a while before its notice
        connector.connections[-1].push({"e": "serverShutdown", "E": clock.now() * 1000})
        await clock.advance(0.01)
        assert len(connector.connections) == n + 2, "renewed at once, no backoff"
    s = probe.stats()
    assert s.planned_reconnects == 4 and s.recent_reconnects == 0
    assert s.outcome is not StreamOutcome.WS_RECONNECT_STORM
    # a notice on a connection that has barely started is churn: back off instead of spending the budget
    connector.connections[-1].push({"e": "serverShutdown", "E": clock.now() * 1000})
    await clock.advance(0.01)
    assert len(connector.connections) == 5
    await clock.advance(0.5)
    connector.connections[-1].push({"e": "serverShutdown", "E": clock.now() * 1000})
    await clock.advance(0.01)
    assert len(connector.connections) == 5 and probe.backoff.failures >= 1
    await clock.advance(2.0)
    assert len(connector.connections) == 6
    await probe.stop()


async def test_lifetime_renewal_before_forced_disconnect():
    clock = FakeClock()
    connector = ScriptedConnector(clock)
    adapter = adapter_class("binance_spot")()
    spec = adapter.stream_specs("ws://127.0.0.1:1")[0]
    assert spec.max_lifetime_s is not None and spec.max_lifetime_s < 24 * 3600
    probe = StreamProbe("binance", spec, adapter.classify_ws_message, connector, clock, rng=random.Random(1))
    probe.start()
    await clock.advance(spec.max_lifetime_s + 5.0, step=30.0)
    assert len(connector.connections) == 2
    assert probe.stats().planned_reconnects == 1
    await probe.stop()


def test_stream_plan_urls_and_reasons():
    from cryptomon_tui.config import config_from_data
    from cryptomon_tui.streams.runner import stream_plan

    config = config_from_data({"exchanges": {
        "binance": {},  # mainnet default
        "okx": {"base_url": "https://proxy.example.com"},  # overridden elsewhere: off, with the reason
        "bybit": {"base_url": "http://127.0.0.1:18002", "symbol": "linear:BTCUSDT"},  # simulator: derived
        "deribit": {"ws_url": "wss://test.deribit.com/ws/api/v2"},  # explicit
        "binance_futures": {"streams": False},
    }})
    plan = {p.exchange: p for p in stream_plan(config)}
    assert plan["binance"].spec is not None and plan["binance"].spec.url == "wss://stream.binance.com:9443/ws/btcusdt@trade"
    assert plan["okx"].spec is None and "ws_url" in plan["okx"].note
    assert plan["bybit"].spec is not None and plan["bybit"].spec.url == "ws://127.0.0.1:18002/v5/public/linear"
    assert plan["deribit"].spec is not None and plan["deribit"].spec.url == "wss://test.deribit.com/ws/api/v2"
    assert "binance_futures" not in plan


async def test_retry_now_ends_a_reconnect_backoff_once():
    """The exchange answers again (the engine saw its REST probes recover): a stream waiting out its backoff
    tries at once instead of staying down for its own wait; a second call in the same wait does nothing."""
    clock = FakeClock()
    connector = ScriptedConnector(clock, refuse=True)
    spec = StreamSpec(name="s", url="ws://127.0.0.1:9/ws/s", venue_connect_attempts=500, venue_connect_window_s=300.0)
    probe = StreamProbe("binance", spec, adapter_class("binance_spot")().classify_ws_message, connector, clock,
                        rng=random.Random(7))
    assert probe.retry_now() is False  # not waiting: nothing to cut short
    probe.start()
    await clock.advance(20, step=0.5)  # refused a few times: the backoff has grown to seconds
    assert len(connector.attempt_times) >= 4 and probe.backoff.failures >= 4
    connector.refuse = False  # the exchange is back
    before = len(connector.attempt_times)
    assert probe.retry_now() is True
    assert probe.retry_now() is False  # once per wait
    await clock.advance(0)  # no clock time passes
    assert len(connector.attempt_times) == before + 1
    assert connector.attempt_times[-1] == clock.monotonic()
    assert connector.connections and not connector.connections[-1].closed
    await probe.stop()
