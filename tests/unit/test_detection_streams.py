"""Stream verdicts become incidents: one per unhealthy stream, held for its `for`, resolved after calm,
absorbed by a cause (maintenance), and said plainly when REST is fine."""

from __future__ import annotations

from dataclasses import replace

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.root import Config
from cryptomon_tui.detection.signals import WS_DISCONNECTED, WS_HEARTBEAT, WS_RECONNECT_STORM, WS_STALE
from cryptomon_tui.detection.streams import StreamDetector
from cryptomon_tui.engine.pipeline import DetectionPipeline
from cryptomon_tui.incidents.model import EventType
from cryptomon_tui.kernel.streams import StreamOutcome, StreamStats

BASE = StreamStats(
    exchange="okx", stream="tickers:BTC-USDT", outcome=StreamOutcome.OK, detail="ok", connected=True,
    subscribed=True, messages=100, msgs_per_s=10.0, silence_s=0.1, stale_after_s=3.0, gap_p50_ms=100.0,
    gap_p99_ms=150.0, gap_max_ms=200.0, lag_ms=20.0, lag_error_ms=2.0, seq_gaps=0, missed=0, reconnects=0,
    recent_reconnects=0, heartbeat_misses=0, connect_ms=30.0, subscribe_ms=5.0, first_message_ms=50.0,
    last_close_code=None, last_close_reason=None, planned_reconnects=0,
)


def stats(outcome: StreamOutcome, **kw) -> StreamStats:
    return replace(BASE, outcome=outcome, **kw)


def test_stale_fires_at_once_and_resolves_after_calm():
    det = StreamDetector(recover_s=10.0)
    assert det.evaluate(0.0, [stats(StreamOutcome.OK)]) == []
    fired = det.evaluate(1.0, [stats(StreamOutcome.WS_STALE, silence_s=40.0)], rest_healthy=lambda _: True)
    assert len(fired) == 1 and fired[0].firing and fired[0].rule == WS_STALE
    assert fired[0].summary.startswith("REST ok, stream tickers:BTC-USDT stale for 40s")
    assert det.evaluate(2.0, [stats(StreamOutcome.WS_STALE)]) == []
    assert det.evaluate(3.0, [stats(StreamOutcome.OK)]) == []
    assert det.evaluate(12.0, [stats(StreamOutcome.OK)]) == []
    resolved = det.evaluate(13.0, [stats(StreamOutcome.OK)])
    assert len(resolved) == 1 and not resolved[0].firing
    assert resolved[0].fingerprint == fired[0].fingerprint


def test_a_short_disconnect_is_not_news():
    det = StreamDetector()
    for t in range(9):
        assert det.evaluate(float(t), [stats(StreamOutcome.WS_DISCONNECTED, connected=False)]) == []
    assert det.evaluate(9.5, [stats(StreamOutcome.OK)]) == []
    for t in range(20, 31):
        out = det.evaluate(float(t), [stats(StreamOutcome.WS_DISCONNECTED, connected=False)])
    assert [s.rule for s in out] == [WS_DISCONNECTED]


def test_escalation_is_one_fingerprint():
    det = StreamDetector()
    first = det.evaluate(0.0, [stats(StreamOutcome.WS_HEARTBEAT)])
    more = det.evaluate(1.0, [stats(StreamOutcome.WS_RECONNECT_STORM)])
    assert [s.rule for s in first] == [WS_HEARTBEAT] and [s.rule for s in more] == [WS_RECONNECT_STORM]
    assert first[0].fingerprint == more[0].fingerprint


def test_pipeline_opens_one_incident_for_a_stream_fault_and_resolves_it():
    clock = FakeClock()
    config = Config.model_validate({"exchanges": {"okx": {}, "bybit": {}}})
    pipe = DetectionPipeline(config, clock)
    bybit = replace(BASE, exchange="bybit", stream="tickers.BTCUSDT")
    events = []
    for _ in range(5):
        pipe.record_streams([stats(StreamOutcome.WS_STALE, silence_s=12.0), bybit])
        clock.set(clock.now() + 1.0)
        events += pipe.tick()
    opened = [e for e in events if e.event is EventType.OPENED]
    assert len(opened) == 1
    inc = opened[0].incident
    assert inc.exchange == "okx" and inc.rule == WS_STALE and "REST ok" in inc.summary
    for _ in range(15):
        pipe.record_streams([stats(StreamOutcome.OK), bybit])
        clock.set(clock.now() + 1.0)
        events += pipe.tick()
    assert [e.event for e in events if e.incident.id == inc.id][-1] is EventType.RESOLVED
