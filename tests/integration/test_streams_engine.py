"""The real engine with REST and stream probes against the simulator: one incident per stream fault,
"REST ok, stream stale" when only the stream fails, and maintenance silencing its streams."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from typing import Any

import pytest
from prometheus_client import generate_latest

from cryptomon_tui.cli.daemon_cmd import demo_config
from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.metrics import build_registry
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.incidents.model import IncidentEvent
from cryptomon_tui.simulator import Simulator, scenario_from_data

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def run(exchange: str, faults: list[dict[str, Any]], seconds: float,
              until: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    sim = Simulator(scenario_from_data({"name": "t", "faults": faults}), exchanges=[exchange], stream_rate=20.0)
    await sim.start()
    events: list[dict[str, Any]] = []
    engine: Engine | None = None
    snap: dict[str, Any] = {}
    try:
        t0 = time.time() - sim.elapsed()
        config = demo_config(config_from_data({"exchanges": {exchange: {"probes": ["time", "ticker"]}}}),
                             sim.base_urls)
        engine = Engine(config, use_store=False, notify=False)
        done = asyncio.Event()

        def sink(event: IncidentEvent) -> None:
            d = event.to_json_dict()
            d["t"] = round(event.ts - t0, 2)
            events.append(d)
            if until is not None and until(events):
                done.set()

        engine.add_event_sink(sink)
        await engine.start()
        try:
            await asyncio.wait_for(done.wait(), seconds)
        except TimeoutError:
            pass
        snap = engine.snapshot().to_wire()
        snap["_metrics"] = generate_latest(build_registry(engine, lambda: "test", time.time)).decode()
    finally:
        if engine is not None:
            await engine.stop()
        await sim.stop()
    return events, snap


def timeline(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["t"], e["event"], e["incident"]["rule"], e["incident"]["summary"]) for e in events]


async def test_stale_stream_with_healthy_rest_is_one_incident_that_resolves() -> None:
    faults = [{"exchange": "okx", "type": "ws_stall", "start": "6s", "duration": "8s"}]
    events, snap = await run("okx", faults, 45.0, until=lambda ev: any(e["event"] == "resolved" for e in ev))
    opened = [e for e in events if e["event"] == "opened"]
    assert len(opened) == 1, timeline(events)
    inc = opened[0]["incident"]
    assert inc["exchange"] == "okx" and inc["rule"] == "ws_stale", timeline(events)
    assert "REST ok" in inc["summary"], timeline(events)
    assert opened[0]["t"] - 6.0 <= 10.0 + 1.0, timeline(events)  # detected within the stall threshold
    resolved = [e for e in events if e["event"] == "resolved"]
    assert [e["incident"]["id"] for e in resolved] == [inc["id"]], timeline(events)
    assert resolved[0]["t"] - 14.0 <= 15.0, timeline(events)
    assert snap["streams"] and snap["streams"][0]["exchange"] == "okx"


async def test_calm_streams_give_no_incident() -> None:
    events, snap = await run("binance", [], 8.0)
    assert [e for e in events if e["event"] == "opened"] == [], timeline(events)
    [stream] = snap["streams"]
    assert stream["outcome"] == "ok" and stream["messages"] > 100 and stream["lag_ms"] is not None
    text = snap["_metrics"]

    def value(name: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith(name + "{") and 'stream="btcusdt@trade"' in ln]
        assert len(lines) == 1, (name, lines)
        return float(lines[0].split()[-1])

    assert value("cryptomon_stream_up") == 1.0 and value("cryptomon_stream_healthy") == 1.0
    assert value("cryptomon_stream_messages_total") > 100
    assert value("cryptomon_stream_seq_gaps_total") == 0.0
    assert 'cryptomon_stream_gap_seconds_bucket{exchange="binance",le="+Inf"' in text
    promtool = shutil.which("promtool")
    if promtool is not None:
        check = await asyncio.to_thread(
            subprocess.run, [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


async def test_maintenance_silences_its_streams_without_extra_incidents() -> None:
    faults = [{"exchange": "deribit", "type": "maintenance", "start": "5s", "duration": "14s"}]
    events, _ = await run("deribit", faults, 60.0, until=lambda ev: any(e["event"] == "resolved" for e in ev))
    opened = [e for e in events if e["event"] == "opened"]
    assert len(opened) == 1, timeline(events)
    assert opened[0]["incident"]["rule"] == "maintenance", timeline(events)


FAULT_SETS = {
    "gap-shutdown-storm-heartbeat-lag": (
        [
            {"exchange": "binance", "type": "ws_seq_gap", "start": "6s", "duration": "6s", "skip": 3, "every": "1s"},
            {"exchange": "binance_futures", "type": "ws_shutdown", "start": "6s", "duration": "3s", "after": "500ms"},
            {"exchange": "bybit", "type": "ws_disconnect", "start": "6s", "duration": "10s", "every": "1s"},
            {"exchange": "okx", "type": "ws_heartbeat", "start": "6s", "duration": "6s", "after": "2s"},
            {"exchange": "deribit", "type": "ws_lag", "start": "6s", "duration": "12s", "ms": 2500},
        ],
        {"binance": {"ws_gap"}, "bybit": {"ws_disconnected", "ws_reconnect_storm"}, "okx": {"ws_heartbeat"},
         "deribit": {"ws_lag"}},
    ),
    "drip-burst-malformed-huge": (
        [
            {"exchange": "bybit", "type": "ws_drip", "start": "8s", "duration": "12s", "every": "5s"},
            {"exchange": "binance", "type": "ws_burst", "start": "8s", "duration": "12s", "count": 40,
             "every": "6s"},
            {"exchange": "okx", "type": "ws_malformed", "start": "6s", "duration": "12s", "rate": 0.5},
            {"exchange": "deribit", "type": "ws_huge", "start": "6s", "duration": "8s", "mb": 2},
        ],
        {"bybit": {"ws_stale"}, "binance": {"ws_stale"},
         "deribit": {"ws_disconnected", "ws_reconnect_storm"}},
    ),
}


@pytest.mark.parametrize("name", list(FAULT_SETS))
async def test_each_stream_fault_is_one_incident_of_its_kind_on_its_exchange(name: str) -> None:
    """All five venues at once, each with a different stream fault, REST healthy throughout."""
    exchanges = ["binance", "binance_futures", "bybit", "okx", "deribit"]
    faults, expected = FAULT_SETS[name]
    sim = Simulator(scenario_from_data({"name": "t", "faults": faults}), exchanges=exchanges, stream_rate=20.0)
    await sim.start()
    events: list[dict[str, Any]] = []
    engine: Engine | None = None
    try:
        t0 = time.time() - sim.elapsed()
        config = demo_config(config_from_data({"exchanges": {ex: {"probes": ["time"]} for ex in exchanges}}),
                             sim.base_urls)
        engine = Engine(config, use_store=False, notify=False)
        all_resolved = asyncio.Event()

        def sink(event: IncidentEvent) -> None:
            d = event.to_json_dict()
            d["t"] = round(event.ts - t0, 2)
            events.append(d)
            opened = {e["incident"]["id"] for e in events if e["event"] == "opened"}
            resolved = {e["incident"]["id"] for e in events if e["event"] == "resolved"}
            if len(opened) >= len(expected) and opened <= resolved:
                all_resolved.set()

        engine.add_event_sink(sink)
        await engine.start()
        try:
            await asyncio.wait_for(all_resolved.wait(), 75.0)
        except TimeoutError:
            pass
    finally:
        if engine is not None:
            await engine.stop()
        await sim.stop()
    print("timeline:", *timeline(events), sep="\n  ")
    opened = [e["incident"] for e in events if e["event"] == "opened"]
    by_exchange: dict[str, list[str]] = {}
    for inc in opened:
        by_exchange.setdefault(inc["exchange"], []).append(inc["rule"])
    assert set(by_exchange) == set(expected), timeline(events)
    for exchange, rules in by_exchange.items():
        assert len(rules) == 1, (exchange, timeline(events))
        final = [e["incident"]["rule"] for e in events if e["incident"]["exchange"] == exchange][-1]
        assert {rules[0], final} <= expected[exchange], (exchange, timeline(events))
    resolved = {e["incident"]["id"] for e in events if e["event"] == "resolved"}
    assert {e["incident"]["id"] for e in events if e["event"] == "opened"} <= resolved, timeline(events)
