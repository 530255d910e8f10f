"""Details screens: exchange history from the store file (read-only, in a thread), recent probes
with phases, range keys; incident timeline live from events."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.kernel.results import Outcome, Phases, ProbeResult
from cryptomon_tui.store.rows import RollupRow
from cryptomon_tui.store.store import Store
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.details import ExchangeDetails, IncidentDetails
from cryptomon_tui.ui.history import HistoryUnavailable, bucket, read_rollups
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.widgets import KeyedTable
from tests.ui.harness import FIXED_EPOCH, FrozenClient, fixture_snapshot, wait_for

NOW = FIXED_EPOCH + 95


async def make_store(path: Path) -> None:
    clock = FakeClock(start=NOW)
    store = Store(None, clock, path=path)
    assert await store.open()
    minute = int(NOW // 60 * 60)
    rows = [RollupRow("okx", "book", minute - 60 * i, 20, 4, 1, {"ok": 16, "http_5xx": 3, "timeout": 1},
                      40.0 + i, 90.0 + i, 300.0 + i) for i in range(30)]
    store.write_rollups(rows)
    for i in range(5):
        store.on_result(ProbeResult(exchange="okx", probe="book", started_at=NOW - 10 + i, latency_ms=41.0 + i,
                                    outcome=Outcome.OK if i % 2 else Outcome.HTTP_5XX, http_status=200,
                                    phases=Phases(dns_ms=1.0, connect_ms=2.0, tls_ms=3.0, ttfb_ms=30.0,
                                                  transfer_ms=1.0, reused=False)))
    await store.flush()
    await store.close()


def test_history_reader_and_bucketing(tmp_path: Path) -> None:
    with pytest.raises(HistoryUnavailable):
        read_rollups(None, "okx", 0, 1)
    with pytest.raises(HistoryUnavailable):
        read_rollups(tmp_path / "missing.sqlite3", "okx", 0, 1)
    rows = [RollupRow("x", None, 60 * i, 1, 0, 0, {"ok": 1}, float(i), float(i), float(i)) for i in range(600)]
    merged = bucket(rows, 0, 600 * 60, max_points=60)
    assert len(merged) <= 60 and sum(r.attempts for r in merged) == 600
    assert merged[-1].p99_ms == 599.0  # the worst minute of a bucket wins


async def test_exchange_details_reads_store_and_switches_range(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    await make_store(db)
    app = CryptomonApp(FrozenClient(fixture_snapshot()), state=UiState(), persist_state=False, watch_signals=False,
                       history_path=db, clock=FakeClock(start=NOW))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.dashboard.query_one("#exchanges", KeyedTable)
        table.focus()
        table.select_key("okx")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExchangeDetails) and app.screen.loads > 0)
        screen = app.screen
        assert isinstance(screen, ExchangeDetails)
        assert screen.history_error is None
        assert 10 <= len(screen.rollups) <= 16  # 15 minutes of 1-minute rollups
        probes = screen.query_one("#probe-table", DataTable)
        assert probes.row_count == 5
        await pilot.press("3")
        await wait_for(pilot, lambda: screen.loads > 1)
        assert screen.range == "24h" and len(screen.rollups) == 30
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.dashboard


async def test_incident_details_timeline_and_keys() -> None:
    app = CryptomonApp(FrozenClient(fixture_snapshot()), state=UiState(), persist_state=False, watch_signals=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.dashboard.query_one("#incidents", KeyedTable)
        table.focus()
        key = next(k for k in table.keys if table.shown_text(k, "state").startswith("ACK "))
        table.select_key(key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentDetails))
        screen = app.screen
        assert isinstance(screen, IncidentDetails) and screen.incident_id == key
        assert screen.query_one("#timeline", DataTable).row_count == 2
        assert "alice@ops" in str(screen.query_one("#detail-body").content)
        await pilot.press("a")
        await pilot.pause()
        from cryptomon_tui.ui.modals import AckModal

        assert isinstance(app.screen, AckModal)
