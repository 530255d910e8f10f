"""Issue 13 item 2, the UI's side: a snapshot carrying the extreme (but finite, bounded) times the engine may
now show — a 24 h capped pause, a ban until year 9999 from an old store row, an exchange in ``status: error``
— renders every row, cell and line without raising (the UI never fails as a whole)."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon_tui.kernel.snapshot import Snapshot
from cryptomon_tui.ui import present

FAR = "9999-12-31T23:59:59.000Z"
EPOCH = "1970-01-01T00:00:00.000Z"
NOW = 1_765_000_000.0


def _exchange(status: str, when: str) -> dict[str, Any]:
    return {
        "kind": "binance_spot", "status": status, "paused": status == "banned",
        "breaker": {"state": "open", "next_trial_at": when},
        "backoff": {"paused": True, "paused_until": when, "reason": "capped at 1d", "strikes": 3},
        "ban_until": when, "rate_limit_used": 0.5, "rate_limit_peak": 1.0, "clock_offset_ms": 1e12,
        "clock_error_ms": None, "p50_ms": 1.0, "p95_ms": None, "p99_ms": 1e9, "error_rate": 1.0, "attempts": 3,
        "timeouts": 0, "consecutive_failures": 3, "counts": {"rate_limited": 3}, "last_error_code": "-1003",
        "last_error_message": "asked to wait 3.17e+04 years; capped at 1d", "last_error_at": when,
        "sparkline": [1.0, None, 3.0], "sparkline_ok": [True, False, True], "schedule_lag": None,
        "intervals": {"time": 1.0}, "view_error": "ValueError: year 33715 is out of range",
        "probes": {"time": {"last": {"ts": when, "outcome": "rate_limited", "latency_ms": 1.0, "retry_after_s": 86400,
                                     "ban_until": when},
                            "attempts": 3, "error_rate": 1.0, "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0,
                            "timeouts": 0, "counts": {"rate_limited": 3}, "last_error_code": "-1003",
                            "last_error_message": "x", "consecutive_failures": 3}},
    }


@pytest.mark.parametrize("when", [FAR, EPOCH, "not a time", None])
@pytest.mark.parametrize("status", ["error", "banned", "down"])
def test_rows_render_with_extreme_times(status: str, when: str | None) -> None:
    wire = {"ts": FAR, "exchanges": {"x": _exchange(status, when)},  # type: ignore[arg-type]
            "incidents": [{"id": "I-1", "rule": "ip_banned", "severity": "critical", "exchange": "x",
                           "state": "firing", "summary": "banned", "started_at": when, "ban_until": when,
                           "silenced_until": when, "acknowledged_at": when, "updated_at": when}],
            "silences": [], "notify": [], "maintenance": [], "analysis": {}}
    snapshot = Snapshot.from_wire(wire)  # as the daemon client reads the frame
    ex, incident = snapshot.exchanges["x"], snapshot.incidents[0]
    assert ex.view_error is not None and ex.probes["time"].last is not None  # the frame was read, not dropped
    present.exchange_row("x", ex, NOW)
    present.breaker_cell(ex.breaker, NOW)
    present.rate_limit_cell(ex, NOW)
    assert [k for k, _ in present.error_rows(snapshot, ["x"])] == ["x/time"]
    present.incident_row(incident, NOW, [])
    present.incident_countdown(incident, snapshot, NOW)
    present.status_line(snapshot)
    present.verdict_line(snapshot, [incident])
    present.sorted_exchanges(snapshot.exchanges, "status")
