"""Maintenance windows: one-off, or daily/weekly at a wall-clock time in an IANA time zone.

A recurring window repeats the local time of day (and weekday) of its first occurrence in its zone,
so "Tuesdays 09:00-10:00 Europe/Berlin" stays at 09:00 local across DST changes; the duration is
fixed in real seconds.
"""

from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptomon_tui.incidents.model import MaintenanceWindow
from cryptomon_tui.kernel.units import check_epoch, check_silence_length

RECURRENCES = {"daily": 1, "weekly": 7}


def check_window(w: MaintenanceWindow) -> None:
    """Every way a window is made (CLI, control API, store) passes here: finite times, end after start,
    at most 90 days long."""
    check_epoch(w.starts_at, "a maintenance window's start")
    check_epoch(w.ends_at, "a maintenance window's end")
    if w.ends_at <= w.starts_at:
        raise ValueError("a maintenance window must end after it starts")
    try:
        check_silence_length(w.ends_at - w.starts_at)
    except ValueError as exc:
        raise ValueError(f"a maintenance window's length {exc}") from None
    if w.recurrence is not None:
        if w.recurrence not in RECURRENCES:
            raise ValueError(f"recurrence must be one of {', '.join(RECURRENCES)} (or none), got {w.recurrence!r}")
        if w.ends_at - w.starts_at >= RECURRENCES[w.recurrence] * 86400:
            raise ValueError("a recurring window must be shorter than its period")
    try:
        ZoneInfo(w.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {w.timezone!r} (use an IANA name such as Europe/Berlin)") from None


def _occurrences_around(w: MaintenanceWindow, now: float, extra_periods: int = 0) -> list[tuple[float, float]]:
    """Occurrences that could contain ``now`` (and ``extra_periods`` more after it)."""
    if w.recurrence is None:
        return [(w.starts_at, w.ends_at)]
    period = RECURRENCES[w.recurrence]
    duration = w.ends_at - w.starts_at
    tz = ZoneInfo(w.timezone)
    first = dt.datetime.fromtimestamp(w.starts_at, tz)
    time_of_day = first.time().replace(tzinfo=None)
    today = dt.datetime.fromtimestamp(max(now, w.starts_at), tz).date()
    last = today - dt.timedelta(days=(today - first.date()).days % period)
    back = math.ceil(duration / (period * 86400)) + 1
    out = []
    for k in range(-extra_periods, back + 1):
        day = last - dt.timedelta(days=k * period)
        if day < first.date():
            break
        start = dt.datetime.combine(day, time_of_day, tzinfo=tz).timestamp()
        out.append((start, start + duration))
    out.sort()
    return out


def window_active(w: MaintenanceWindow, now: float) -> bool:
    return any(start <= now < end for start, end in _occurrences_around(w, now))


def next_occurrence(w: MaintenanceWindow, now: float) -> tuple[float, float] | None:
    """The occurrence in progress at ``now``, else the next one; None once a one-off is over."""
    for start, end in _occurrences_around(w, now, extra_periods=2):
        if end > now:
            return start, end
    return None


def covers(w: MaintenanceWindow, exchange: str | None) -> bool:
    """A window for all exchanges (None) covers every incident; one for X covers X's incidents."""
    return w.exchange is None or w.exchange == exchange
