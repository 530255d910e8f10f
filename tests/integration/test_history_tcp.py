"""Acceptance (issue 11 item 4): a UI attached over TCP, from another working directory and without
touching any SQLite file, shows the same details charts, because history comes through the control API.

A real ``cryptomon daemon`` (TCP control with a token) probes the simulator and keeps its store; the store
already holds half an hour of rollups (a daemon that has run before). The UI runs in this test process
with ``sqlite3.connect`` made to fail, in a directory that has nothing of the daemon's.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cryptomon_tui.clock import RealClock
from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.store.rows import RollupRow
from cryptomon_tui.store.store import Store
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.details import ExchangeDetails
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.widgets import KeyedTable
from tests.fakes.daemon_harness import (
    REAL_DAEMON_COMMAND,
    daemon_process,
    free_port,
    real_daemon_config,
    simulator_process,
)
from tests.ui.harness import wait_for

pytestmark = pytest.mark.slow
TOKEN = "history-over-tcp-token-0123456789"
HEALTHY = "name: calm\ndescription: nothing happens\nduration: 600s\nloop: false\nseed: 3\nfaults: []\n"


async def seed_store(path: Path) -> int:
    clock = RealClock()
    store = Store(None, clock, path=path)
    assert await store.open()
    minute = int(clock.now() // 60 * 60) - 120  # closed minutes, before the daemon's own
    store.write_rollups([RollupRow("okx", "book", minute - 60 * i, 20, 2, 1, {"ok": 18, "http_5xx": 1, "timeout": 1},
                                   40.0 + i, 90.0 + i, 300.0 + i) for i in range(30)])
    await store.flush()
    await store.close()
    return minute


@pytest.mark.timeout(90)
async def test_ui_over_tcp_from_elsewhere_shows_the_details_charts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon_dir, ui_dir = tmp_path / "daemon", tmp_path / "elsewhere"
    daemon_dir.mkdir()
    ui_dir.mkdir()
    db = daemon_dir / "cryptomon.sqlite3"
    await seed_store(db)
    (daemon_dir / "calm.yaml").write_text(HEALTHY)
    http_port, control_port = free_port(), free_port()
    with simulator_process(daemon_dir / "calm.yaml", daemon_dir / "simulator.log") as urls:
        config = daemon_dir / "daemon.yaml"
        real_daemon_config(
            config, location="tokyo", base_urls=urls, exchanges=["okx"], socket_path=None, store_path=db,
            http_port=http_port,
            extra={"daemon": {"control": {"transport": "tcp", "host": "127.0.0.1", "port": control_port,
                                          "token": TOKEN}}},
        )
        with daemon_process(config, f"http://127.0.0.1:{http_port}", command=REAL_DAEMON_COMMAND,
                            ready_path="/readyz"):
            monkeypatch.chdir(ui_dir)

            def no_sqlite(*args: Any, **kwargs: Any) -> None:
                raise AssertionError(f"the UI opened SQLite: {args}")

            monkeypatch.setattr(sqlite3, "connect", no_sqlite)
            client = DaemonClient(DaemonAddress(host="127.0.0.1", port=control_port, token=TOKEN))
            app = CryptomonApp(client, state=UiState(), persist_state=False, watch_signals=False)
            async with app.run_test(size=(120, 40)) as pilot:
                table = app.dashboard.query_one("#exchanges", KeyedTable)
                await wait_for(pilot, lambda: "okx" in table.keys, limit_s=20)
                table.focus()
                table.select_key("okx")
                await pilot.press("enter")
                await wait_for(pilot, lambda: isinstance(app.screen, ExchangeDetails) and app.screen.loads > 0,
                               limit_s=10)
                screen = app.screen
                assert isinstance(screen, ExchangeDetails)
                assert screen.history_error is None, screen.history_error
                assert len(screen.rollups) >= 10  # the 15-minute chart: the stored minutes, from the daemon
                assert any(p.outcomes.get("http_5xx") for p in screen.rollups)
                assert max(p.p99_ms or 0 for p in screen.rollups) >= 300
                await pilot.press("3")
                await wait_for(pilot, lambda: screen.loads > 1, limit_s=10)
                assert sum(p.attempts for p in screen.rollups) >= 30 * 20  # all 30 stored minutes in 24 h
                await pilot.press("escape")
            await client.close()
