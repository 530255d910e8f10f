"""Pilot tests of every key flow against the real engine (``Engine``) on the simulator, attached
through the daemon client over a Unix socket, exactly as `cryptomon demo` runs it."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, RadioSet

from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.dashboard import DashboardScreen
from cryptomon_tui.ui.modals import AckModal, SilenceModal, SilencesModal, TextModal
from cryptomon_tui.ui.widgets import KeyedTable
from tests.ui.engine_harness import served_monitor
from tests.ui.harness import make_app, wait_for

SIZE = (120, 40)


def dash(app: CryptomonApp) -> DashboardScreen:
    return app.dashboard


def incidents_table(app: CryptomonApp) -> KeyedTable:
    return dash(app).query_one("#incidents", KeyedTable)


async def first_incident(app: CryptomonApp, pilot: Any) -> str:
    """Wait for the engine to open an incident, focus the incident pane and select it."""
    await wait_for(pilot, lambda: bool(incidents_table(app).keys), limit_s=10)
    table = incidents_table(app)
    table.focus()
    table.move_cursor(row=0)
    app.dashboard.user_moved_at = app.clock.now()  # as a key press would: the cursor stays on this row
    await pilot.pause()
    key = table.selected_key
    assert key is not None
    return key


def modal_text(app: CryptomonApp) -> str:
    from textual.widgets import Static

    return str(app.screen.query_one("#text-body", Static).content)


async def test_dashboard_shows_real_engine_state() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            await first_incident(app, pilot)
            ex = dash(app).query_one("#exchanges", KeyedTable)
            await wait_for(pilot, lambda: ex.shown_text("binance", "status") == "DOWN")
            assert set(ex.keys) == {"binance", "okx"}
            assert ex.shown_text("okx", "status") in ("OK", "DEGRADED")
            errors = dash(app).query_one("#errors", KeyedTable)
            assert any(k.startswith("binance/") for k in errors.keys)
            assert app.bridge.state == "connected"


async def test_analyse_runs_then_second_press_shows_cached() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            ident = await first_incident(app, pilot)
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, TextModal))
            text = modal_text(app)
            assert f"Analysis of {ident}" in str(app.screen.query_one(".dialog-title").content)
            for label in ("Root cause", "Severity", "Action", "Recovery", "Confidence", "Source", "Cost"):
                assert label in text
            assert "offline" in text
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, TextModal))
            assert "(cached)" in modal_text(app)


async def test_summary_of_open_incidents() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            await first_incident(app, pilot)
            await pilot.press("m")
            await wait_for(pilot, lambda: isinstance(app.screen, TextModal), limit_s=10)
            text = modal_text(app)
            assert "Open incidents" in text and "Source" in text


async def test_acknowledge_with_note_reaches_engine_and_a_second_ui() -> None:
    async with served_monitor() as served:
        first = make_app(served.address, actor="alice@desk")
        second = make_app(served.address, actor="bob@desk")
        async with first.run_test(size=SIZE) as pilot, second.run_test(size=SIZE) as pilot2:
            ident = await first_incident(first, pilot)
            await wait_for(pilot2, lambda: ident in incidents_table(second).keys, limit_s=10)
            await pilot.press("a")
            await wait_for(pilot, lambda: isinstance(first.screen, AckModal))
            first.screen.query_one("#ack-note", Input).value = "looking [/at] it"
            await pilot.press("enter")
            await wait_for(pilot, lambda: served.engine._incident(ident).acknowledged_by == "alice@desk")
            assert served.engine._incident(ident).ack_note == "looking [/at] it"
            # the other UI sees it within a second (event push + snapshot)
            await wait_for(pilot2, lambda: incidents_table(second).shown_text(ident, "ack") == "alice@desk",
                           limit_s=1.0)
            assert incidents_table(second).shown_text(ident, "state") == "ACK alice@desk"


async def test_silence_modal_requires_comment_then_silences_and_unsilences() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            ident = await first_incident(app, pilot)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SilenceModal))
            modal = app.screen
            await pilot.press("enter")  # no comment yet: refused with a message, modal stays
            await pilot.pause()
            assert isinstance(app.screen, SilenceModal)
            assert "comment is required" in str(modal.query_one("#silence-error").content)
            modal.query_one("#comment", Input).value = "known binance issue [ticket 42]"
            modal.query_one("#custom", Input).value = "30m"
            modal.query_one("#comment", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen))
            await wait_for(pilot, lambda: served.engine._incident(ident).silenced_by is not None)
            silence_id = served.engine._incident(ident).silenced_by
            silences = served.engine.snapshot().to_wire()["silences"]
            mine = next(s for s in silences if s["id"] == silence_id)
            assert mine["comment"] == "known binance issue [ticket 42]"
            assert [m["name"] for m in mine["matchers"]] == ["id"]
            await wait_for(pilot, lambda: incidents_table(app).shown_text(ident, "silenced").endswith("s"))
            # unsilence from the incident pane
            await pilot.press("u")
            await wait_for(pilot, lambda: served.engine._incident(ident).silenced_by is None)


async def test_silence_exchange_scope_and_unsilence_from_list() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            ident = await first_incident(app, pilot)
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, SilenceModal))
            modal = app.screen
            scope = modal.query_one("#scope", RadioSet)
            exchange_button = next(b for b in scope.query("RadioButton") if b.name == "exchange")
            exchange_button.value = True
            duration = modal.query_one("#duration", RadioSet)
            next(b for b in duration.query("RadioButton") if b.name == "until resolved").value = True
            modal.query_one("#comment", Input).value = "exchange-wide"
            modal.query_one("#comment", Input).focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: served.engine._incident(ident).silenced_by is not None)
            sil = next(s for s in served.engine.snapshot().to_wire()["silences"]
                       if s["id"] == served.engine._incident(ident).silenced_by)
            assert sil["matchers"][0]["name"] == "exchange" and sil["matchers"][0]["value"] == "binance"
            assert sil["ends_at"] is None
            await wait_for(pilot, lambda: bool(dash(app).snapshot is not None and dash(app).snapshot.silences))
            await pilot.press("S")
            await wait_for(pilot, lambda: isinstance(app.screen, SilencesModal))
            await pilot.press("u")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(pilot, lambda: served.engine._incident(ident).silenced_by is None)


async def test_pause_and_resume_selected_exchange() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            ex = dash(app).query_one("#exchanges", KeyedTable)
            await wait_for(pilot, lambda: "okx" in ex.keys)
            ex.focus()
            ex.select_key("okx")
            await pilot.press("p")
            await wait_for(pilot, lambda: served.engine.runner.workers["okx"].paused)
            await wait_for(pilot, lambda: ex.shown_text("okx", "status") == "PAUSED")
            await pilot.press("p")
            await wait_for(pilot, lambda: not served.engine.runner.workers["okx"].paused)


async def test_freeze_stops_the_view_not_the_engine() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            await first_incident(app, pilot)
            screen = dash(app)
            await pilot.press("f")
            assert screen.frozen
            shown = screen.shown_seq
            engine_seq = served.engine.snapshot().seq
            await wait_for(pilot, lambda: app.bridge.latest is not None and app.bridge.latest.seq > engine_seq,
                           limit_s=5)
            await pilot.pause(0.6)
            assert screen.shown_seq == shown  # view frozen ...
            assert "FROZEN" in str(screen.query_one("#status").content)  # ... and says so, with the age
            assert "data age" in str(screen.query_one("#status").content)
            await pilot.press("f")
            await wait_for(pilot, lambda: screen.shown_seq != shown)
            assert "FROZEN" not in str(screen.query_one("#status").content)


async def test_filter_narrows_every_pane_and_escape_clears() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            await first_incident(app, pilot)
            screen = dash(app)
            ex = screen.query_one("#exchanges", KeyedTable)
            await wait_for(pilot, lambda: len(ex.keys) == 2)
            await pilot.press("slash")
            assert isinstance(app.focused, Input)
            await pilot.press(*"okx")
            await wait_for(pilot, lambda: ex.keys == ["okx"])
            assert all(k.startswith("okx/") for k in screen.query_one("#errors", KeyedTable).keys)
            assert incidents_table(app).keys == []  # binance's incident is filtered out
            await pilot.press("enter", "escape")
            await wait_for(pilot, lambda: len(ex.keys) == 2)
            assert screen.filter_text == ""


async def test_sort_and_theme_keys() -> None:
    async with served_monitor() as served:
        app = make_app(served.address)
        async with app.run_test(size=SIZE) as pilot:
            screen = dash(app)
            ex = screen.query_one("#exchanges", KeyedTable)
            await wait_for(pilot, lambda: ex.shown_text("binance", "status") == "DOWN")
            ex.focus()
            await pilot.press("o")  # status: worst first
            assert screen.sort_mode == "status"
            await pilot.pause()
            assert ex.keys[0] == "binance"
            before = app.theme
            await pilot.press("t")
            assert app.theme != before
            assert app.theme in app.available_themes
