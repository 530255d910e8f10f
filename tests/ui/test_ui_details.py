"""Details screens: exchange history asked of the daemon (control API ``history``), recent probes with
phases, range keys; incident timeline live from events."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from textual.widgets import DataTable

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.engine.history import bucket_points
from cryptomon_tui.kernel.history import MAX_MS, HistoryAnswer, HistoryPoint
from cryptomon_tui.kernel.results import Outcome, Phases, ProbeResult
from cryptomon_tui.store.rows import RollupRow
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.details import ExchangeDetails, IncidentDetails
from cryptomon_tui.ui.history import resolution_for
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.widgets import KeyedTable
from tests.fakes.fake_engine import MemoryHistory
from tests.ui.harness import FIXED_EPOCH, FrozenClient, fixture_snapshot, wait_for

NOW = FIXED_EPOCH + 95


def make_history() -> MemoryHistory:
    history = MemoryHistory()
    minute = int(NOW // 60 * 60)
    history.rows = [RollupRow("okx", "book", minute - 60 * i, 20, 4, 1, {"ok": 16, "http_5xx": 3, "timeout": 1},
                              40.0 + i, 90.0 + i, 300.0 + i) for i in range(30)]
    for i in range(5):
        history.results.append(ProbeResult(
            exchange="okx", probe="book", started_at=NOW - 10 + i, latency_ms=41.0 + i,
            outcome=Outcome.OK if i % 2 else Outcome.HTTP_5XX, http_status=200,
            phases=Phases(dns_ms=1.0, connect_ms=2.0, tls_ms=3.0, ttfb_ms=30.0, transfer_ms=1.0, reused=False)))
    return history


def test_bucketing_keeps_counts_and_the_worst_minute() -> None:
    rows = [RollupRow("x", None, 60 * i, 1, 0, 0, {"ok": 1}, float(i), float(i), float(i)) for i in range(600)]
    points = bucket_points(rows, resolution_for(600 * 60))
    assert len(points) <= 120 and sum(p.attempts for p in points) == 600
    assert points[-1].p99_ms == 599.0  # the worst minute of a bucket wins
    # what the daemon sends reads back as the same points
    answer = HistoryAnswer(exchange="x", points=tuple(points), resolution_s=resolution_for(600 * 60))
    assert HistoryAnswer.from_wire(json.loads(json.dumps(answer.to_wire()))) == answer
    assert resolution_for(86400) == 720 and resolution_for(900) == 60


@given(st.lists(st.one_of(
    st.none(), st.text(max_size=5), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.fixed_dictionaries({"ts": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3))},
                          optional={"attempts": st.one_of(st.integers(), st.floats(), st.booleans()),
                                    "p99_ms": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.text()),
                                    "outcomes": st.dictionaries(st.text(max_size=50), st.integers())})),
    max_size=30))
def test_hostile_history_answers_become_bounded_points(raw: list[Any]) -> None:
    answer = HistoryAnswer.from_wire({"points": raw, "note": raw, "recent": raw, "resolution_s": "nan"})
    assert answer.note is None and answer.resolution_s == 60.0
    assert [p.ts for p in answer.points] == sorted(p.ts for p in answer.points)
    for point in answer.points:
        assert isinstance(point, HistoryPoint)
        assert math.isfinite(point.ts) and 0 <= point.attempts <= 10**12
        assert point.p99_ms is None or 0 <= point.p99_ms <= MAX_MS
        assert all(len(k) <= 40 and v >= 0 for k, v in point.outcomes.items())


async def test_exchange_details_ask_the_daemon_and_switch_range() -> None:
    client = FrozenClient(fixture_snapshot())
    client.history_source = make_history()
    app = CryptomonApp(client, state=UiState(), persist_state=False, watch_signals=False, clock=FakeClock(start=NOW))
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
        charts = [args for name, args in client.calls if name == "history" and args[5] == 100]
        exchange, since, until, resolution, _probe, recent = charts[-1]
        assert (exchange, until - since, resolution, recent) == ("okx", 900.0, 60.0, 100)
        # the 24 h uptime strip asks for its own 5-minute buckets and draws the stored half hour
        await wait_for(pilot, lambda: any(n == "history" and a[3] == 300.0 for n, a in client.calls))
        await wait_for(pilot, lambda: "█" in str(screen.query_one("#uptime").content))
        assert str(screen.query_one("#uptime").content).startswith("24h uptime")
        await pilot.press("3")
        await wait_for(pilot, lambda: screen.loads > 1)
        # 24 h at 12-minute buckets (at most 120 points): the 30 stored minutes merge into 3, nothing lost
        assert screen.range == "24h" and len(screen.rollups) == 3
        assert sum(p.attempts for p in screen.rollups) == 600 and max(p.p99_ms or 0 for p in screen.rollups) == 329
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.dashboard


async def test_exchange_details_without_history_say_why() -> None:
    client = FrozenClient(fixture_snapshot())  # history_source None: a daemon without a store
    app = CryptomonApp(client, state=UiState(), persist_state=False, watch_signals=False, clock=FakeClock(start=NOW))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.dashboard.query_one("#exchanges", KeyedTable)
        table.focus()
        table.select_key("okx")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ExchangeDetails) and app.screen.loads > 0)
        screen = app.screen
        assert isinstance(screen, ExchangeDetails)
        assert screen.rollups == [] and "storage is off" in (screen.history_error or "")
        # the live snapshot's last result per probe still fills the table
        assert screen.query_one("#probe-table", DataTable).row_count == 3


async def test_incident_details_timeline_and_keys() -> None:
    app = CryptomonApp(FrozenClient(fixture_snapshot()), state=UiState(), persist_state=False, watch_signals=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.dashboard.query_one("#incidents", KeyedTable)
        table.focus()
        key = next(k for k in table.keys if table.shown_text(k, "state").startswith("ACK "))
        table.select_key(key)
        # the cursor is on the chosen row before Enter (under load the first press raced the cursor move)
        await wait_for(pilot, lambda: table.selected_key == key)
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


async def test_dashboard_shows_24h_uptime_strips_at_120_columns() -> None:
    from cryptomon_tui.clock import FakeClock

    client = FrozenClient(fixture_snapshot())
    client.history_source = make_history()  # okx: 30 minutes with 20 % errors; the others: no history
    app = CryptomonApp(client, state=UiState(), persist_state=False, watch_signals=False,
                       clock=FakeClock(start=NOW))
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.dashboard.query_one("#exchanges", KeyedTable)
        await wait_for(pilot, lambda: "█" in table.shown_text("okx", "uptime"), limit_s=10)
        strip = table.shown_text("okx", "uptime")
        assert len(strip) == 12 and strip.endswith("█") and strip.startswith("·")
        assert set(table.shown_text("binance", "uptime")) == {"·"}  # probed nothing in the store: said so
        # the history was asked of the daemon, 24 h at 5-minute buckets
        assert any(n == "history" and a[2] - a[1] == 86400.0 and a[3] == 300.0 for n, a in client.calls)
