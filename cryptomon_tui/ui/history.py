"""History for the details screens, asked of the daemon over the control API (``history`` request).

The UI never opens the daemon's SQLite file: a UI attached over TCP from another machine or working
directory gets the same charts as one on the daemon's own socket. The answer is untrusted input
(another process, maybe another host): ``parse_points`` keeps only finite, bounded numbers and at most
``MAX_POINTS`` points; recent results are read as typed probe results (``ProbeResultView``, never
raising) that the table renders through the usual scrubbing (``present.clean_text``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptomon_tui.kernel.jsonvalue import as_object
from cryptomon_tui.kernel.snapshot import ProbeResultView

RANGES: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0}
CHART_POINTS = 120  # per chart: what a terminal-wide plot can show
MIN_RESOLUTION_S = 60.0  # the daemon keeps 1-minute rollups
MAX_POINTS = 1500
MAX_RECENT = 500
MAX_COUNT = 10**12
MAX_MS = 3_600_000.0
MAX_OUTCOMES = 32


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One chart bucket: counts add up over its minutes; a percentile is the worst minute's."""

    ts: float
    attempts: int = 0
    errors: int = 0
    timeouts: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None


def resolution_for(range_s: float) -> float:
    """Bucket width giving at most CHART_POINTS points over ``range_s``, never finer than a minute."""
    return max(MIN_RESOLUTION_S, math.ceil(range_s / CHART_POINTS / 60.0) * 60.0)


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(min(max(value, 0), MAX_COUNT))


def _ms(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value) if 0.0 <= value <= MAX_MS else None


def parse_points(answer: Mapping[str, object]) -> list[HistoryPoint]:
    """The ``points`` of a history answer as typed, bounded values, in time order; junk entries dropped."""
    raw = answer.get("points")
    if not isinstance(raw, list):
        return []
    out: list[HistoryPoint] = []
    for item in raw[:MAX_POINTS]:
        if not isinstance(item, Mapping):
            continue
        ts = item.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            continue
        outcomes_raw = item.get("outcomes")
        outcomes: dict[str, int] = {}
        if isinstance(outcomes_raw, Mapping):
            for k, v in list(outcomes_raw.items())[:MAX_OUTCOMES]:
                if isinstance(k, str) and len(k) <= 40:
                    outcomes[k] = _count(v)
        out.append(
            HistoryPoint(
                ts=float(ts),
                attempts=_count(item.get("attempts")),
                errors=_count(item.get("errors")),
                timeouts=_count(item.get("timeouts")),
                outcomes=outcomes,
                p50_ms=_ms(item.get("p50_ms")),
                p95_ms=_ms(item.get("p95_ms")),
                p99_ms=_ms(item.get("p99_ms")),
            )
        )
    out.sort(key=lambda p: p.ts)
    return out


def parse_recent(answer: Mapping[str, object]) -> list[ProbeResultView]:
    """The ``recent`` raw results (newest first) that are objects, at most MAX_RECENT."""
    raw = answer.get("recent")
    if not isinstance(raw, list):
        return []
    return [ProbeResultView.from_wire(r) for r in raw[:MAX_RECENT] if as_object(r) is not None]


def note_of(answer: Mapping[str, object]) -> str | None:
    note = answer.get("note")
    return note[:200] if isinstance(note, str) else None
