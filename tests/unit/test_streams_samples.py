"""Every recorded WebSocket sample goes through the real stream probe (loop, reader, tracker)."""

from __future__ import annotations

import json
import random

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.streams.probe import RENEW_AT_ONCE_AFTER_S, StreamProbe
from tests.fakes.exchange_samples import EXPECTED, SAMPLES, Ws
from tests.unit.test_streams_probe import ScriptedConnector

pytestmark = pytest.mark.timeout(30)

WS_SAMPLES = sorted(name for name, exp in EXPECTED.items() if isinstance(exp, Ws))


def test_every_ws_sample_file_is_covered():
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES}")
    on_disk = sorted(str(p.relative_to(SAMPLES)) for p in SAMPLES.glob("*/ws_*.json"))
    assert set(on_disk) <= set(WS_SAMPLES), "every ws_* sample has a WebSocket expectation"


@pytest.mark.parametrize("name", WS_SAMPLES)
async def test_sample_through_the_stream_probe(name: str) -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES}")
    expected = EXPECTED[name]
    assert isinstance(expected, Ws)
    adapter = expected.adapter()
    spec = adapter.stream_specs("ws://127.0.0.1:1/x")[0]
    clock = FakeClock(start=(expected.event_time_ms or 1_700_000_000_000) / 1000.0 + 0.25)
    connector = ScriptedConnector(clock)
    probe = StreamProbe(adapter.name, spec, adapter.classify_ws_message, connector, clock,
                        rng=random.Random(0), offset=lambda: (0.0, 1.0))
    probe.start()
    await clock.advance(0.01)
    conn = connector.connections[0]
    sent_before = len(conn.sent)
    if expected.kind in ("server_shutdown", "notice_reconnect"):
        await clock.advance(RENEW_AT_ONCE_AFTER_S + 1.0)  # a connection that lived: renewed at once
    conn.push((SAMPLES / name).read_text())
    await clock.advance(0.01)
    stats = probe.stats()
    kind = expected.kind
    if kind == "data":
        assert stats.messages == 1 and stats.subscribed
        if expected.event_time_ms is not None:
            assert stats.lag_ms == pytest.approx(250.0, abs=15.0)
    elif kind == "subscribed":
        assert stats.subscribed and stats.messages == 0
    elif kind == "heartbeat_request":
        assert len(conn.sent) == sent_before + 1
        assert json.loads(conn.sent[-1])["method"] == "public/test"
    elif kind in ("server_shutdown", "notice_reconnect"):
        await clock.advance(0.05)
        assert len(connector.connections) == 2, "a planned shutdown renews the connection at once"
        assert probe.stats().recent_reconnects == 0
    else:  # pong, auth_ok, error: read without effect on the data counters, never a crash
        assert stats.messages == 0 and stats.connected
    await probe.stop()
