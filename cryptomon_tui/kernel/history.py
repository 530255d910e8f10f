"""The ``history`` answer of the control API, typed: chart points and the latest raw results.

The daemon builds it from its store (``engine/history.py``); faces (the UI over a socket or TCP, from
any machine) read it with ``HistoryAnswer.from_wire``, which treats the frame as untrusted input: it
never raises, keeps only finite, bounded numbers, at most ``MAX_POINTS`` points in time order and
``MAX_RECENT`` results. Same wire keys as before the model existed (the snapshot's schema rule applies).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object, finite, text
from cryptomon_tui.kernel.snapshot import ProbeResultView
from cryptomon_tui.kernel.wire import NAME_MAX, NUM_MAX, Reader

MAX_POINTS = 1500  # also the most a ``history`` request may ask for (daemon.protocol)
MAX_RECENT = 500
MAX_COUNT = 10**12
MAX_MS = 3_600_000.0  # a percentile above an hour is junk
MAX_OUTCOMES = 32
OUTCOME_NAME_MAX = 40
NOTE_MAX = 200


def _count(value: object) -> int:
    """A count, clamped to 0..MAX_COUNT (a fractional or huge value from a peer is bounded, not dropped)."""
    number = finite(value)
    if number is None:
        return 0
    return int(min(max(number, 0.0), float(MAX_COUNT)))


def _ms(value: object) -> float | None:
    return finite(value, 0.0, MAX_MS)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One chart bucket: counts add up over its minutes; a percentile is the worst minute's."""

    ts: float  # bucket start, epoch seconds
    attempts: int = 0
    errors: int = 0
    timeouts: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)  # by Outcome value
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None

    def to_wire(self) -> JsonObject:
        return {
            "ts": self.ts, "attempts": self.attempts, "errors": self.errors, "timeouts": self.timeouts,
            "outcomes": dict[str, JsonValue](self.outcomes),
            "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
        }

    @classmethod
    def from_wire(cls, value: object) -> HistoryPoint | None:
        """None when ``value`` is no object or has no finite ``ts`` (the point cannot be placed)."""
        obj = as_object(value)
        if obj is None:
            return None
        ts = finite(obj.get("ts"), -NUM_MAX, NUM_MAX)
        if ts is None:
            return None
        outcomes: dict[str, int] = {}
        raw = as_object(obj.get("outcomes"))
        if raw is not None:
            for key, n in list(raw.items())[:MAX_OUTCOMES]:
                if len(key) <= OUTCOME_NAME_MAX:
                    outcomes[key] = _count(n)
        return cls(
            ts=ts, attempts=_count(obj.get("attempts")), errors=_count(obj.get("errors")),
            timeouts=_count(obj.get("timeouts")), outcomes=outcomes, p50_ms=_ms(obj.get("p50_ms")),
            p95_ms=_ms(obj.get("p95_ms")), p99_ms=_ms(obj.get("p99_ms")),
        )


@dataclass(frozen=True, slots=True)
class HistoryAnswer:
    """What ``history`` answers for one exchange (and optionally one probe) over ``since..until``."""

    exchange: str = ""
    probe: str | None = None  # None: all probes of the exchange
    since: float = 0.0
    until: float = 0.0
    resolution_s: float = 60.0  # bucket width of ``points``
    points: tuple[HistoryPoint, ...] = ()  # oldest first
    recent: tuple[ProbeResultView, ...] = ()  # newest first, within the last 15 minutes of the range
    available: bool = True  # False: the daemon keeps no history (storage off); ``note`` says so
    note: str | None = None

    def to_wire(self) -> JsonObject:
        return {
            "exchange": self.exchange, "probe": self.probe, "since": self.since, "until": self.until,
            "resolution_s": self.resolution_s, "points": [p.to_wire() for p in self.points],
            "recent": [r.to_wire() for r in self.recent], "available": self.available, "note": self.note,
        }

    @classmethod
    def from_wire(cls, value: object) -> HistoryAnswer:
        r = Reader(value)
        points = [p for item in r.items("points")[:MAX_POINTS] if (p := HistoryPoint.from_wire(item)) is not None]
        points.sort(key=lambda p: p.ts)
        recent = tuple(ProbeResultView.from_wire(v) for v in r.items("recent")[:MAX_RECENT] if as_object(v) is not None)
        note = text(r.raw("note"), NOTE_MAX)
        resolution = finite(r.raw("resolution_s"), 1.0, NUM_MAX)
        return cls(
            exchange=r.string("exchange", limit=NAME_MAX), probe=r.opt_str("probe", NAME_MAX),
            since=r.number("since"), until=r.number("until"),
            resolution_s=60.0 if resolution is None else resolution, points=tuple(points), recent=recent,
            available=r.flag("available", True), note=note,
        )

