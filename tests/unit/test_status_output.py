"""``cryptomon status`` prints the same text and ``--json`` the same object as before the typed snapshot model:
the golden file was written by the dict-reading implementation (commit 16fc2ba) from the UI's busy fixture
snapshot (a banned, a down and a degraded exchange with an open breaker, hostile text, incidents in every
state, a failing channel), and the typed one must reproduce it byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

from cryptomon_tui.cli import status_cmd
from cryptomon_tui.kernel.snapshot import Snapshot
from tests.ui.harness import FIXED_EPOCH, fixture_snapshot

GOLDEN = Path(__file__).parent / "golden" / "status_fixture.txt"
HEALTH = {"loop": True, "config_loaded": True, "store_writable": False, "probes_running": True}


def test_status_text_and_json_unchanged() -> None:
    snapshot = Snapshot.from_wire(fixture_snapshot())  # as `cryptomon status` reads the daemon's reply
    summary = status_cmd.summarize(snapshot, dict(HEALTH))
    text = status_cmd.render_text(snapshot, dict(HEALTH), "daemon pid 1 on unix socket /x", FIXED_EPOCH + 100)
    out = json.dumps(summary, ensure_ascii=False, default=str) + "\n" + text + "\n"
    assert out == GOLDEN.read_text(encoding="utf-8")


def test_status_of_a_hostile_reply_still_prints() -> None:
    """A reply with junk where fields should be: every exchange is listed, the bad values read as unknown."""
    wire = {"location": 5, "exchanges": {"a": {"status": [], "p99_ms": "1e999", "breaker": 3}, "b": 7},
            "incidents": [{"severity": {}, "state": None}, "x"], "notify": "y", "silences": [1, 2]}
    snapshot = Snapshot.from_wire(wire)
    text = status_cmd.render_text(snapshot, {}, "here", FIXED_EPOCH)
    # an unreadable status is never printed as ok: the exchange reads as "error" (cannot be shown)
    assert "\na                 error" in text and "\nINCIDENTS: 1 open\n" in text
    summary = status_cmd.summarize(snapshot, {})
    assert list(summary["exchanges"]) == ["a"] and summary["ok"] is False  # type: ignore[call-overload]
    assert set(summary) == {"ok", "location", "version", "ts", "exchanges", "not_ok", "incidents", "silences",
                            "notify", "health"}
