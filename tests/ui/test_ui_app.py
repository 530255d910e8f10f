"""App-level behaviour on a frozen snapshot: quit choice, keymap, help, small terminals, theme
persistence and reporting, signals."""

from __future__ import annotations

from typing import Any

from textual.widgets import Static

from cryptomon_tui.config.daemon import UiConfig
from cryptomon_tui.config.paths import user_themes_dir
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.dashboard import DashboardScreen
from cryptomon_tui.ui.modals import AckModal, HelpModal, QuitModal
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.widgets import KeyedTable
from tests.ui.harness import FrozenClient, fixture_snapshot


def frozen_app(**kwargs: Any) -> tuple[CryptomonApp, FrozenClient]:
    client = FrozenClient(fixture_snapshot())
    kwargs.setdefault("state", UiState())
    kwargs.setdefault("persist_state", False)
    kwargs.setdefault("watch_signals", False)
    return CryptomonApp(client, **kwargs), client


async def test_quit_asks_once_and_remembers_stop() -> None:
    # "remember my choice" is off by default: stopping once asks again next time
    app0, client0 = frozen_app(owns_daemon=True, state=UiState(), persist_state=True)
    async with app0.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app0.screen, QuitModal)
        await pilot.press("s")
        await pilot.pause()
    assert ("shutdown", ()) in client0.calls and UiState.load().on_quit is None
    state = UiState()
    app, client = frozen_app(owns_daemon=True, state=state, persist_state=True)
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitModal)
        await pilot.press("r")  # tick "remember my choice"
        await pilot.press("s")
        await pilot.pause()
    assert ("shutdown", ()) in client.calls
    assert app.return_value is not None and app.return_value.daemon == "stopped"
    assert UiState.load().on_quit == "stop"
    # next time: no question, the remembered choice applies
    app2, client2 = frozen_app(owns_daemon=True, state=UiState.load())
    async with app2.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert ("shutdown", ()) in client2.calls


async def test_quit_keep_and_config_preset_and_attached_ui() -> None:
    app, client = frozen_app(owns_daemon=True)
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("k")
        await pilot.pause()
    assert app.return_value is not None and app.return_value.daemon == "kept" and not client.calls
    preset, client = frozen_app(owns_daemon=True, ui_config=UiConfig(on_quit="keep"))
    async with preset.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert preset.return_value is not None and preset.return_value.daemon == "kept"
    attached, client = frozen_app(owns_daemon=False)
    async with attached.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
    assert attached.return_value is not None and attached.return_value.daemon == "attached" and not client.calls


async def test_keymap_remaps_binding_ids_and_help_lists_them() -> None:
    app, _ = frozen_app(ui_config=UiConfig(keymap={"acknowledge": "A", "quit": "ctrl+q"}))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.dashboard.query_one("#incidents", KeyedTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("a")  # the old key does nothing now
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, AckModal)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("q")  # no longer quits
        await pilot.pause()
        assert app.is_running
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpModal)
        rows = app.screen.rows
        assert ("A", "Acknowledge the selected incident", "acknowledge") in [(k, d, i) for k, d, i in rows]
        assert any(i == "analyse" for _, _, i in rows) and any(i == "freeze" for _, _, i in rows)


async def test_small_terminal_shows_a_clear_message() -> None:
    app, _ = frozen_app()
    async with app.run_test(size=(50, 12)) as pilot:
        await pilot.pause()
        screen = app.dashboard
        assert screen.has_class("-too-small")
        assert "terminal too small" in str(screen.query_one("#too-small", Static).content)
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not screen.has_class("-too-small")


async def test_theme_choice_persists_and_broken_theme_is_reported() -> None:
    folder = user_themes_dir()
    folder.mkdir(parents=True)
    (folder / "bad.yaml").write_text("name: bad\nprimary: '#zz'\n")
    app, _ = frozen_app(persist_state=True, theme="nope-theme")
    async with app.run_test(notifications=True) as pilot:
        await pilot.pause()
        messages = [str(n.message) for n in app._notifications]
        assert any("bad.yaml" in m for m in messages)
        assert any("unknown theme 'nope-theme'" in m for m in messages)
        assert app.theme == "cryptomon-dark"
        await pilot.press("t")
        await pilot.pause()
        chosen = app.theme
    assert chosen != "cryptomon-dark" and UiState.load().theme == chosen


async def test_signal_exits_and_keeps_the_daemon() -> None:
    app, client = frozen_app(owns_daemon=True)
    async with app.run_test() as pilot:
        await pilot.pause()
        app._on_signal()
        await pilot.pause()
    assert app.return_value is not None
    assert app.return_value.reason == "signal" and app.return_value.daemon == "kept" and not client.calls


async def test_big_dashboards_redraw_less_often() -> None:
    snap = fixture_snapshot()
    template = snap["exchanges"]["binance"]
    snap["exchanges"] = {f"ex{i:02d}": template for i in range(40)}  # 40 exchanges x 3 probes
    small, _ = frozen_app()
    big = CryptomonApp(FrozenClient(snap), state=UiState(), persist_state=False, watch_signals=False)
    async with small.run_test() as pilot:
        await pilot.pause()
        assert small.dashboard.tick_interval == 1.0
    async with big.run_test() as pilot:
        await pilot.pause()
        assert 2.0 < big.dashboard.tick_interval <= 3.0
