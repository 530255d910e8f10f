"""A face fed a crafted snapshot frame (fields of the wrong type, non-finite numbers as text, missing
keys, junk list items, an event without an incident) still draws everything else: the daemon client
reads each frame into the typed model (``Snapshot.from_wire`` never raises), so one bad field degrades
to its default instead of taking the screen down.

The frames come from a tiny impostor daemon on a real Unix socket that speaks the control protocol, so
the whole path (socket, ``decode``, the client's typed parse, the bridge, the dashboard) is exercised."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Log

from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.ui.widgets import KeyedTable
from tests.fakes.impostor_daemon import impostor_daemon
from tests.ui.harness import make_app, wait_for

pytestmark = pytest.mark.timeout(60)

TS = "2026-08-17T10:00:00.000Z"
HEALTHY: JsonObject = {
    "kind": "binance_spot", "status": "degraded", "breaker": {"state": "closed", "next_trial_at": None},
    "rate_limit_used": 0.42, "ban_until": None, "clock_offset_ms": 1.5, "p50_ms": 40.0, "p99_ms": 812.0,
    "error_rate": 0.12, "sparkline": [40.0, 41.0, 43.0],
    "probes": {"book": {"attempts": 50, "error_rate": 0.12, "timeouts": 0, "counts": {"ok": 44, "http_5xx": 6},
                        "last_error_code": "503", "last_error_message": "Service Unavailable",
                        "last": {"ts": TS, "outcome": "http_5xx", "http_status": 503}}},
}
HOSTILE_EXCHANGE: JsonObject = {
    "status": 42, "p50_ms": "NaN", "p99_ms": "1e999", "error_rate": "Infinity", "rate_limit_used": [1],
    "breaker": "open", "ban_until": 12345, "clock_offset_ms": {"ms": 1}, "sparkline": "▁▂▃",
    "sparkline_ok": {"x": True}, "intervals": [1, 2],
    "probes": {"ping": "nope", "book": {"counts": {"ok": -5, "http_5xx": 1e300, "timeout": "3"}, "last": 7,
                                        "attempts": -1, "timeouts": True}},
}
CRAFTED_SNAPSHOT: JsonObject = {
    "schema": 2, "seq": 7, "ts": TS, "location": ["not", "text"], "version": None,
    "exchanges": {"binance": HEALTHY, "evil": HOSTILE_EXCHANGE, "empty": {}, "junk": 5},
    "incidents": [
        {"id": "I-1", "rule": "error_rate", "severity": "critical", "state": "firing", "exchange": "binance",
         "probe": "book", "summary": "binance book failing", "started_at": TS, "timeline": "no"},
        "junk",
        {"id": "I-2", "severity": {"x": 1}, "state": 3, "summary": None, "started_at": "yesterday",
         "silenced_until": 1.0, "labels": [1], "peak": {"p99_ms": "NaN"}},
    ],
    "silences": {"not": "a list"}, "notify": [{"channel": 5, "queue": "lots"}, None], "analysis": "x",
    "maintenance": [{"active": "yes", "next_end": []}], "streams": 12,
}
HOSTILE_EVENT: JsonObject = {"event": 5, "incident": "not an incident", "detail": [1, 2], "ts": 12}


FRAMES: list[JsonObject] = [{"type": "snapshot", "data": CRAFTED_SNAPSHOT}, {"type": "event", "data": HOSTILE_EVENT}]


async def test_client_reads_a_crafted_frame_into_defaults_and_keeps_the_good_fields() -> None:
    async with impostor_daemon(FRAMES) as address, DaemonClient(address, reconnect=False) as client:
        events = client.events()
        event = await asyncio.wait_for(anext(events), 5)
        snap = await asyncio.wait_for(anext(client.snapshots(hz=1)), 5)
    good = snap.exchanges["binance"]
    assert (good.status, good.p99_ms, good.error_rate, good.probes["book"].counts) == (
        "degraded", 812.0, 0.12, {"ok": 44, "http_5xx": 6})
    evil = snap.exchanges["evil"]
    assert (evil.status, evil.p50_ms, evil.p99_ms, evil.error_rate, evil.rate_limit_used) == (
        "error", None, None, 0.0, None)  # an unreadable status is never shown as OK
    assert evil.view_error is not None and "no readable status" in evil.view_error
    assert evil.breaker.state == "closed" and evil.ban_until is None and evil.sparkline == ()
    assert set(evil.probes) == {"book"} and evil.probes["book"].last is None
    assert evil.probes["book"].counts == {"timeout": 3}  # negative and absurd counts dropped
    assert set(snap.exchanges) == {"binance", "evil", "empty"} and snap.location == ""
    assert [i.id for i in snap.incidents] == ["I-1", "I-2"] and snap.incidents[1].severity == ""
    assert snap.silences == () and snap.streams == () and snap.notify[0].queue == 0
    assert event.incident.id == "" and event.event == "" and event.detail == {}


async def test_dashboard_draws_the_rest_of_a_crafted_snapshot() -> None:
    async with impostor_daemon(FRAMES) as address:
        app = make_app(address)
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.dashboard
            exchanges = screen.query_one("#exchanges", KeyedTable)
            incidents = screen.query_one("#incidents", KeyedTable)
            await wait_for(pilot, lambda: set(exchanges.keys) == {"binance", "evil", "empty"})
            await wait_for(pilot, lambda: "I-1" in incidents.keys)
            assert exchanges.shown_text("binance", "status") == "DEGRADED"
            assert exchanges.shown_text("binance", "p99") == "812ms"
            assert exchanges.shown_text("binance", "err") == "12%"
            assert exchanges.shown_text("evil", "p99") == "-" and exchanges.shown_text("evil", "status") == "ERROR"
            assert incidents.shown_text("I-1", "summary") == "binance book failing"
            assert screen.query_one("#errors", KeyedTable).shown_text("binance/book", "code") == "503"
            verdict = "".join(c.text for c in screen._verdict_shown or ())
            assert verdict.startswith("CRIT binance ERRORS")
            # the event without an incident reaches the log but never becomes an incident row
            await wait_for(pilot, lambda: screen.query_one("#events", Log).line_count >= 1)
            assert "" not in incidents.keys and "?" not in incidents.keys
            app.export_screenshot()  # a full render of every cell
            assert app.is_running
