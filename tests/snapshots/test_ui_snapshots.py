"""Screenshots of the dashboard at 80x24 and 160x48 in every shipped theme, on a frozen snapshot
(no wall clock on screen, animations off). Update with `pytest tests/snapshots --snapshot-update`
and look at snapshot_report.html before committing."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon_tui.ui.app import SHIPPED_THEMES, CryptomonApp
from cryptomon_tui.ui.state import UiState
from tests.ui.harness import FrozenClient, fixture_snapshot


def snapshot_app(theme: str) -> CryptomonApp:
    return CryptomonApp(FrozenClient(fixture_snapshot()), theme=theme, state=UiState(), persist_state=False,
                        watch_signals=False, actor="snap@test")


async def settle(pilot: Any) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("theme", SHIPPED_THEMES)
@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_dashboard(snap_compare: Any, theme: str, size: tuple[int, int]) -> None:
    assert snap_compare(snapshot_app(theme), terminal_size=size, run_before=settle)
