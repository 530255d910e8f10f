"""The Streams view at 80x24: every stream's state as a word, silence against its threshold, lag with its
error bound, holes and reconnects; hostile stream names are shown inert."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable

from cryptomon_tui.kernel.snapshot import IncidentView, Snapshot, StreamView
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.streams import StreamsScreen, sparkline, stream_cells
from tests.ui.harness import HOSTILE, FrozenClient

pytestmark = pytest.mark.timeout(60)


def stream(exchange: str, name: str, outcome: str, **kw):
    base = {
        "exchange": exchange, "stream": name, "outcome": outcome, "detail": "", "connected": True,
        "subscribed": True, "messages": 1000, "msgs_per_s": 10.0, "silence_s": 0.1, "stale_after_s": 3.0,
        "gap_p50_ms": 100.0, "gap_p99_ms": 180.0, "gap_max_ms": 400.0, "lag_ms": 23.0, "lag_error_ms": 2.0,
        "seq_gaps": 0, "missed": 0, "reconnects": 0, "recent_reconnects": 0, "heartbeat_misses": 0,
        "connect_ms": 40.0, "subscribe_ms": 5.0, "first_message_ms": 60.0, "last_close_code": None,
        "last_close_reason": None, "planned_reconnects": 0,
    }
    return StreamView.from_wire({**base, **kw})


SNAP = {
    "seq": 1, "ts": "2026-12-07T12:00:00Z", "location": "local", "version": "t", "started_at": None,
    "exchanges": {}, "incidents": [], "silences": [], "maintenance": [], "notify": [], "analysis": {},
    "store": None,
    "streams": [
        stream("binance", "btcusdt@trade", "ok").to_wire(),
        stream("okx", "tickers:BTC-USDT", "ws_stale", silence_s=41.7, msgs_per_s=0.0).to_wire(),
        stream("bybit", "tickers.BTCUSDT", "ws_gap", seq_gaps=3).to_wire(),
        stream("deribit", HOSTILE, "ws_disconnected", connected=False, lag_ms=None, lag_error_ms=None).to_wire(),
    ],
}


def test_cells_say_state_in_words():
    cells = stream_cells(stream("okx", "t", "ws_stale", silence_s=41.7, stale_after_s=3.0), "▁▂")
    assert cells[2] == "STALE" and cells[4] == "41.7s/3s"
    assert stream_cells(stream("x", "t", "ws_reconnect_storm"), "")[2] == "STORM"
    assert "±" in stream_cells(stream("x", "t", "ok"), "")[6]


def test_sparkline_has_one_scale_and_marks_missing_data():
    assert sparkline([0.0, 50.0, 100.0, None], 100.0) == "▁▅█×"


async def test_streams_view_at_80x24():
    app = CryptomonApp(FrozenClient(SNAP), state=UiState(), persist_state=False, watch_signals=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("w")
        await pilot.pause(0.2)
        assert isinstance(app.screen, StreamsScreen)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        states = {row[0]: row[2] for row in rows}
        assert states == {"binance": "OK", "okx": "STALE", "bybit": "GAP", "deribit": "DOWN"}
        hostile_row = next(row for row in rows if row[0] == "deribit")
        assert "\x1b" not in hostile_row[1] and "\u202e" not in hostile_row[1] and "\x07" not in hostile_row[1]
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, StreamsScreen)


def test_incident_details_show_the_stream_now():
    from cryptomon_tui.ui.details import _stream_evidence

    snap = Snapshot.from_wire(SNAP)
    inc = IncidentView(exchange="okx", labels={"exchange": "okx", "stream": "tickers:BTC-USDT"})
    line = _stream_evidence(inc, snap)
    assert line is not None and line.startswith("STALE") and "silence 41.7s/3s" in line
    assert _stream_evidence(IncidentView(exchange="okx", labels={"exchange": "okx"}), snap) is None
    assert _stream_evidence(IncidentView(exchange="kraken", labels={"stream": "x"}), snap) == "not watched any more"
