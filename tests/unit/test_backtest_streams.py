"""Stream verdicts in a backtest: a calm day with streams gives no incident, a stall gives exactly one,
and the recorded format (what `cryptomon daemon --probes-jsonl` writes) round-trips through read_input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cryptomon_tui.backtest import read_input, replay
from cryptomon_tui.config import config_from_data
from cryptomon_tui.exchanges.ws import WsEvent
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.streams.tracker import StreamTracker

pytestmark = pytest.mark.timeout(120)
T0 = 1_765_000_000.0
STREAMS = [("binance", "btcusdt@trade"), ("bybit", "tickers.BTCUSDT"), ("okx", "tickers:BTC-USDT")]


def record_day(path: Path, hours: float, stall: tuple[float, float] | None = None, seed: int = 7,
               every: float = 5.0) -> int:
    """Real trackers fed jittered ~1 msg/s arrivals (lag 20±5 ms); a verdict record every ``every`` s."""
    rng = random.Random(seed)
    trackers = {key: StreamTracker(key[0], key[1], seq_rule="contiguous") for key in STREAMS}
    next_at = {key: 0.0 for key in STREAMS}
    seq = dict.fromkeys(STREAMS, 0)
    for t in trackers.values():
        t.connecting(0.0)
        t.connected_now(0.05)
    lines = 0
    end = hours * 3600.0
    with path.open("w") as out:
        for step in range(1, int(end / every) + 1):
            until = step * every
            for key, tracker in trackers.items():
                while next_at[key] <= until:
                    now = next_at[key]
                    stalled = stall is not None and key[0] == "okx" and stall[0] <= now < stall[1]
                    if not stalled:
                        seq[key] += 1
                        event_ms = (T0 + now) * 1000.0 - rng.gauss(20.0, 5.0)
                        tracker.frame(now, T0 + now, WsEvent(kind="data", event_time_ms=event_ms, seq=seq[key],
                                                             topic="t"), offset_ms=0.0, offset_error_ms=2.0)
                    next_at[key] = now + rng.uniform(0.5, 1.5)
                stats = tracker.stats(until)
                out.write(json.dumps(stats.to_record(iso_utc(T0 + until))) + "\n")
                lines += 1
    return lines


def run(path: Path) -> list[IncidentEvent]:
    parsed = read_input(path)
    assert not parsed.problems and parsed.streams and not parsed.results
    events: list[IncidentEvent] = []
    config = config_from_data({"exchanges": {name: {} for name, _ in STREAMS}})
    replay(parsed.results, config, events.append, streams=parsed.streams)
    return events


@pytest.mark.slow
def test_a_calm_day_with_streams_gives_no_incident(tmp_path: Path) -> None:
    path = tmp_path / "calm.jsonl"
    assert record_day(path, 24.0, every=10.0) == 3 * 24 * 360
    events = run(path)
    assert [e for e in events if e.event is EventType.OPENED] == []


def test_a_stall_is_one_incident_that_resolves(tmp_path: Path) -> None:
    path = tmp_path / "stall.jsonl"
    record_day(path, 2.0, stall=(3600.0, 3640.0))
    events = run(path)
    opened = [e for e in events if e.event is EventType.OPENED]
    assert len(opened) == 1
    inc = opened[0].incident
    assert (inc.exchange, inc.rule) == ("okx", "ws_stale")
    assert T0 + 3600.0 < opened[0].ts <= T0 + 3600.0 + 15.0
    resolved = [e for e in events if e.event is EventType.RESOLVED]
    assert [e.incident.id for e in resolved] == [inc.id]
    assert resolved[0].ts <= T0 + 3640.0 + 25.0


@pytest.mark.parametrize("bad", [
    {"lag_ms": float("nan")}, {"lag_ms": 1e300}, {"silence_s": float("inf")}, {"outcome": "bogus"},
    {"exchange": None}, {"messages": "many"}, {"ts": "yesterday"},
])
def test_hostile_stream_records_are_problems_not_crashes(tmp_path: Path, bad: dict) -> None:
    good = {"kind": "stream", "ts": "2026-12-07T00:00:00Z", "exchange": "okx", "stream": "s", "outcome": "ok",
            "connected": True, "subscribed": True, "messages": 5, "silence_s": 0.1, "stale_after_s": 3.0}
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **bad}) + "\n")
    parsed = read_input(path)
    assert len(parsed.streams) == 1 and len(parsed.problems) == 1
