"""Time as people write and read it: durations (``500ms``, ``20s``, ``5m``, ``1h``, ``7d`` or plain
seconds) and ISO-8601 UTC timestamps.

One parser for config and CLI, so ``--for 20s`` and ``interval: 20s`` mean the same; one timestamp form
for the wire, the store and exports. Part of the kernel: imports nothing of the project.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> float:
    """Return seconds. Accepts numbers, numeric strings and unit strings (``1h30m`` too)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 20s, 5m, 1h or a number of seconds")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            raise ValueError("empty duration")
        try:
            seconds = float(text)
        except ValueError:
            pos = 0
            seconds = 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or pos == 0:
                raise ValueError(
                    f"{value!r} is not a duration: use 500ms, 20s, 5m, 1h, 7d or a number of seconds"
                ) from None
        if seconds < 0:
            raise ValueError("a duration cannot be negative")
        return seconds
    raise ValueError("expected a duration such as 500ms, 20s, 5m, 1h or a number of seconds")


def format_duration(seconds: float) -> str:
    """Shortest readable form: 0.5 -> '500ms', 90 -> '1m30s', 7200 -> '2h'."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.0f}ms" if ms >= 1 or ms == 0 else f"{ms:.2f}ms"
    if seconds < 60:
        return f"{seconds:g}s" if seconds != int(seconds) else f"{int(seconds)}s"
    out = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            n, rest = divmod(rest, size)
            out.append(f"{n}{unit}")
    return "".join(out)


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A pydantic field type holding seconds, written in config as 500ms / 20s / 5m / 1h."""


def iso_utc(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z."""
    dt = _dt.datetime.fromtimestamp(epoch_seconds, tz=_dt.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso_utc(text: str) -> float:
    """Inverse of ``iso_utc``; accepts any ISO-8601 form Python understands (naive = UTC)."""
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    dt = _dt.datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.UTC)
    return dt.timestamp()
