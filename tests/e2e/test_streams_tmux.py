"""End to end in a real 80x24 terminal: `cryptomon demo --scenario streams` (a real demo daemon whose
stream probes hold real WebSocket connections to the simulator), `w` opens the Streams view, which
shows the five streams with their states as words; the scenario's OKX stall (socket open, no data,
REST healthy; 20 s to 45 s of the scenario) turns the OKX row STALE while it lasts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.test_ui_tmux import Tmux, _demo_80x24, _quit_stopping, _stop_demo_daemon, home  # noqa: F401

EXCHANGES = ("binance_futures", "binance", "bybit", "okx", "deribit")
STATE_WORDS = ("OK", "CONNECTING", "STALE", "LAG", "GAP", "DOWN", "STORM", "HEARTBEAT")


def stream_rows(screen: str) -> dict[str, str]:
    """Exchange -> state word, read from the Streams table's rows on screen."""
    rows: dict[str, str] = {}
    for line in screen.splitlines():
        words = line.replace("│", " ").split()
        if len(words) >= 3 and words[0] in EXCHANGES and words[0] not in rows:
            state = next((w for w in words[2:] if w in STATE_WORDS), None)
            if state is not None:
                rows[words[0]] = state
    return rows


def wait_rows(tmux: Tmux, predicate, limit_s: float) -> tuple[dict[str, str], str]:
    deadline = time.monotonic() + limit_s
    rows: dict[str, str] = {}
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux.screen()
        rows = stream_rows(screen)
        if predicate(rows):
            return rows, screen
        time.sleep(0.25)
    raise AssertionError(f"streams view never matched within {limit_s:g}s; last rows {rows}; screen:\n{screen}")


def wait_screen(tmux: Tmux, predicate, limit_s: float) -> str:
    """Poll the screen until ``predicate(screen)`` holds; fail with the last screen after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    screen = tmux.screen()
    while not predicate(screen):
        if time.monotonic() > deadline:
            raise AssertionError(f"screen never matched within {limit_s:g}s:\n{screen}")
        time.sleep(0.1)
        screen = tmux.screen()
    return screen


@pytest.mark.timeout(150)
def test_streams_view_in_tmux_shows_five_streams_and_the_okx_stall(home: Path) -> None:  # noqa: F811
    tmux = _demo_80x24(home, "streams")
    try:
        tmux.wait_for("Exchanges", limit_s=45)
        tmux.keys("w")
        screen = tmux.wait_for("WebSocket streams", limit_s=10)
        assert "Stream" in screen and "State" in screen, screen
        # every stream listed with its state as a word (not only a colour)
        rows, screen = wait_rows(tmux, lambda r: len(r) == len(EXCHANGES), 30.0)
        assert set(rows) == set(EXCHANGES), screen
        # the stall: OKX's socket stays open with no data from 20 s of the scenario; bounded wait
        rows, screen = wait_rows(tmux, lambda r: r.get("okx") == "STALE", 40.0)
        assert rows["okx"] == "STALE", screen
        # only OKX is stalled at this point of the scenario (binance's holes start at 55 s)
        assert all(state != "STALE" for ex, state in rows.items() if ex != "okx"), screen
        tmux.keys("w")  # back to the dashboard, seen on screen before quitting
        wait_screen(tmux, lambda sc: "WebSocket streams" not in sc and "Exchanges" in sc, 10.0)
        _quit_stopping(tmux)
    finally:
        tmux.run("kill-server")
        _stop_demo_daemon(home)
