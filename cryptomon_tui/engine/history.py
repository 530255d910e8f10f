"""The answer to a ``history`` request: chart points and the latest raw results, read from the store.

Why here: faces (the UI over a socket or TCP, from any machine) get history through the control API, so
only the engine's process ever opens the SQLite file. Points merge the store's 1-minute rollups into
buckets of ``resolution_s`` (counts add up; the worst minute's percentile wins, so a spike stays visible
at any zoom). Bounds on the request are checked by the protocol before this runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from cryptomon_tui.engine.views import result_view
from cryptomon_tui.kernel.history import HistoryAnswer, HistoryPoint
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.store.rows import RollupRow

RECENT_LOOKBACK_S = 900.0  # raw results are kept for a short window only: look this far back for them
_PAGE = 2000


class HistorySource(Protocol):
    """The store's read side that history needs (``cryptomon_tui.store.Store``)."""

    async def rollups(
        self, exchange: str, probe: str | None, since: float, until: float | None = None
    ) -> list[RollupRow]: ...

    async def results_page(
        self,
        since: float,
        until: float,
        after: tuple[float, int] | None = None,
        limit: int = 5000,
        exchange: str | None = None,
    ) -> tuple[list[ProbeResult], tuple[float, int] | None]: ...


def bucket_points(rows: Sequence[RollupRow], resolution_s: float) -> list[HistoryPoint]:
    """Rollups (time-ordered) merged into buckets aligned to multiples of ``resolution_s``."""
    out: list[HistoryPoint] = []
    group: list[RollupRow] = []
    current: float | None = None
    for row in rows:
        start = (row.minute // resolution_s) * resolution_s
        if current is not None and start != current:
            out.append(_point(current, group))
            group = []
        current = start
        group.append(row)
    if group and current is not None:
        out.append(_point(current, group))
    return out


def _point(start: float, group: Sequence[RollupRow]) -> HistoryPoint:
    outcomes: dict[str, int] = {}
    for r in group:
        for k, v in r.outcomes.items():
            outcomes[k] = outcomes.get(k, 0) + v

    def worst(values: Sequence[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return max(present) if present else None

    return HistoryPoint(
        ts=float(start),
        attempts=sum(r.attempts for r in group),
        errors=sum(r.errors for r in group),
        timeouts=sum(r.timeouts for r in group),
        outcomes=outcomes,
        p50_ms=worst([r.p50_ms for r in group]),
        p95_ms=worst([r.p95_ms for r in group]),
        p99_ms=worst([r.p99_ms for r in group]),
    )


async def read_history(
    source: HistorySource | None,
    exchange: str,
    probe: str | None,
    since: float,
    until: float,
    resolution_s: float,
    recent: int,
) -> HistoryAnswer:
    """Chart points over the range and, when asked, the newest ``recent`` raw results (newest first, within
    the last 15 minutes of the range); without a store an answer that says so (``available`` False)."""
    if source is None:
        return HistoryAnswer(
            exchange=exchange, probe=probe, since=since, until=until, resolution_s=resolution_s,
            available=False, note="this daemon keeps no history (storage is off)",
        )
    rows = await source.rollups(exchange, probe, since, until)
    kept: list[ProbeResult] = []
    if recent > 0:
        cursor: tuple[float, int] | None = None
        lo = max(since, until - RECENT_LOOKBACK_S)
        while True:
            page, cursor = await source.results_page(lo, until + 1.0, cursor, _PAGE, exchange)
            kept.extend(r for r in page if probe is None or r.probe == probe)
            kept = kept[-recent:]
            if cursor is None or len(page) < _PAGE:
                break
    return HistoryAnswer(
        exchange=exchange, probe=probe, since=since, until=until, resolution_s=resolution_s,
        points=tuple(bucket_points(rows, resolution_s)), recent=tuple(result_view(r) for r in reversed(kept)),
    )
