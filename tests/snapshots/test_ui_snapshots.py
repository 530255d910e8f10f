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


# ----------------------------------------------------------------------------- dialogs at 80x24
LONG_ANALYSIS = {
    "root_cause": "bybit banned our IP after bursts of ~1200 weight/min from two bots sharing the egress "
                  "address; every probe since answers 403 with retCode 10006.",
    "severity": "critical",
    "recommended_action": "stop the bots on this IP now, wait for the ban to expire, then restart them at "
                          "half the request rate",
    "estimated_recovery": "about 10 minutes (ban expiry)",
    "confidence": 0.8,
    "evidence": [f"evidence {i}: 429 then 403 (retCode 10006) on /v5/market/tickers at 12:0{i}:00Z"
                 for i in range(8)],
    "notes": ["offline analyzer: no LLM configured"],
}
LONG_SUMMARY = {
    "open_incidents": 5,
    "summary": {
        "headline": "two exchanges are failing: bybit banned our IP, okx answers 5xx on every probe",
        "details": [f"detail {i}: one line about incident I-{i} and what it means for trading" for i in range(6)],
        "severity": "critical",
        "recommended_action": "stop bots on the banned IP; keep okx orders on hold until it answers again",
        "source": "offline",
    },
}


def _dialog(name: str) -> Any:
    from cryptomon_tui.kernel.snapshot import SilenceView
    from cryptomon_tui.ui import present
    from cryptomon_tui.ui.modals import ConfirmModal, QuitModal, SilencesModal, TextModal

    async def run_before(pilot: Any) -> None:
        await settle(pilot)
        app = pilot.app
        if name in ("ack", "silence-error"):
            await pilot.press("tab")  # the incident pane
            await pilot.press("a" if name == "ack" else "s")
            await pilot.pause()
            if name == "silence-error":
                await pilot.press("enter")  # no comment: the error shows under the comment box
        elif name == "analysis":
            lines = present.analysis_lines(present.normalize_analysis(LONG_ANALYSIS) or {})
            await app.push_screen(TextModal("Analysis of I-1", lines))
        elif name == "summary":
            await app.push_screen(TextModal("Summary of open incidents", present.summary_lines(LONG_SUMMARY)))
        elif name == "confirm":
            await app.push_screen(ConfirmModal("Remove silence S-1?"))
        elif name == "quit":
            await app.push_screen(QuitModal())
        elif name == "silences":
            silences = [SilenceView.from_wire({"id": f"S-{i}", "matchers": [{"name": "exchange", "value": "bybit"}],
                                               "ends_at": None, "created_by": "alice@ops", "comment": "ban expected"})
                        for i in range(3)]
            await app.push_screen(SilencesModal(lambda: (silences, None), lambda _sid: None))
        elif name == "help":
            await pilot.press("question_mark")
        await pilot.pause()

    return run_before


DIALOGS = ("ack", "silence-error", "analysis", "summary", "confirm", "quit", "silences", "help")


@pytest.mark.parametrize("theme", SHIPPED_THEMES)
@pytest.mark.parametrize("dialog", DIALOGS)
def test_dialog_80x24(snap_compare: Any, theme: str, dialog: str) -> None:
    assert snap_compare(snapshot_app(theme), terminal_size=(80, 24), run_before=_dialog(dialog))
