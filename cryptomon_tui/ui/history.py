"""Read-only history for the details screens, straight from the daemon's SQLite file.

The control API has no history command, so the UI opens the store file read-only (``mode=ro``;
WAL lets it read while the daemon writes) through the store's own query functions. Blocking:
call from a thread worker, never on the UI loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptomon_tui.kernel.results import ProbeResult

# TODO(issue 11 item 4, worktree metrics-history): replace these store imports and the SQLite reads with the
# control API's `history` request; then drop the matching ignore_imports in pyproject's "ui" contract.
from cryptomon_tui.store import repo_data
from cryptomon_tui.store.rows import RollupRow

T = TypeVar("T")

RANGES: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0}


class HistoryUnavailable(Exception):
    pass


def _with_conn(path: Path | None, fn: Callable[[sqlite3.Connection], T]) -> T:
    if path is None:
        raise HistoryUnavailable("no local store (the daemon runs elsewhere or storage is off)")
    if not path.exists():
        raise HistoryUnavailable(f"no history yet ({path} does not exist)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"cannot open {path}: {exc}") from None
    try:
        return fn(conn)
    except sqlite3.Error as exc:
        raise HistoryUnavailable(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()


def read_rollups(path: Path | None, exchange: str, since: float, until: float) -> list[RollupRow]:
    """1-minute rollups of one exchange (its probes merged per minute)."""
    return _with_conn(path, lambda c: repo_data.rollups(c, exchange=exchange, probe=None, since=since, until=until))


def read_recent_results(path: Path | None, exchange: str, since: float, until: float,
                        limit: int = 200) -> list[ProbeResult]:
    """The newest ``limit`` raw results of one exchange in [since, until), newest first."""

    def run(conn: sqlite3.Connection) -> list[ProbeResult]:
        out: list[ProbeResult] = []
        cursor: tuple[float, int] | None = None
        while True:
            page, cursor = repo_data.results_page(conn, since, until, cursor, 2000, exchange)
            out.extend(page)
            out = out[-limit:]
            if cursor is None or len(page) < 2000:
                break
        return list(reversed(out))

    return _with_conn(path, run)


def bucket(rows: list[RollupRow], since: float, until: float, max_points: int = 120) -> list[RollupRow]:
    """Keep charts cheap: merge minutes into at most ``max_points`` buckets (worst percentile wins)."""
    if len(rows) <= max_points:
        return rows
    width = max(60.0, (until - since) / max_points)
    out: list[RollupRow] = []
    group: list[RollupRow] = []
    start = None
    for row in rows:
        b = int((row.minute - since) // width)
        if start is not None and b != start:
            out.append(_merge(group))
            group = []
        start = b
        group.append(row)
    if group:
        out.append(_merge(group))
    return out


def _merge(group: list[RollupRow]) -> RollupRow:
    outcomes: dict[str, int] = {}
    for r in group:
        for k, v in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v

    def worst(attr: str) -> float | None:
        vals = [v for r in group if (v := getattr(r, attr)) is not None]
        return max(vals) if vals else None

    return RollupRow(
        exchange=group[0].exchange,
        probe=None,
        minute=group[0].minute,
        attempts=sum(r.attempts for r in group),
        errors=sum(r.errors for r in group),
        timeouts=sum(r.timeouts for r in group),
        outcomes=outcomes,
        p50_ms=worst("p50_ms"),
        p95_ms=worst("p95_ms"),
        p99_ms=worst("p99_ms"),
    )
