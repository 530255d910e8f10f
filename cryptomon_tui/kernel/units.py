"""Durations and timestamps, finite and bounded: the one validator every entry point uses.

Durations as people write them: ``500ms``, ``20s``, ``5m``, ``1h``, ``7d`` or plain seconds. One parser for
config, CLI and control API, so ``--for 20s`` and ``interval: 20s`` mean the same, and none of them can
carry NaN, an infinity or a value so large that a timestamp built from it leaves the calendar (issue 13:
``Retry-After: 1e12`` made every snapshot fail with "year 33715 is out of range").

Documented limits (sample_config.yaml and docs repeat them):
- any duration: 0 .. ``MAX_DURATION_S`` (10 years); fields narrow this with ``duration_range``;
- a wait an exchange asks for (Retry-After, ban expiry): capped at ``MAX_EXCHANGE_WAIT_S`` (24 h);
- a silence: at most ``MAX_SILENCE_S`` (90 days);
- a timestamp from outside: ``MIN_EPOCH_S`` .. ``MAX_EPOCH_S`` (years 2000 .. 3000).

ISO-8601 UTC timestamps: one form for the wire, the store and exports. Part of the kernel: imports nothing of
the project.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

MAX_DURATION_S = 10 * 365 * 86400.0
MAX_EXCHANGE_WAIT_S = 24 * 3600.0
MAX_SILENCE_S = 90 * 86400.0
MIN_EPOCH_S = 946_684_800.0  # 2000-01-01T00:00:00Z
MAX_EPOCH_S = 32_503_680_000.0  # 3000-01-01T00:00:00Z

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Return seconds. Accepts numbers, numeric strings and unit strings (``1h30m`` too)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 20s, 5m, 1h or a number of seconds")
    if isinstance(value, int | float):
        return check_duration(value)
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
        return check_duration(seconds)
    raise ValueError("expected a duration such as 500ms, 20s, 5m, 1h or a number of seconds")


def check_duration(value: float, lo: float = 0.0, hi: float = MAX_DURATION_S) -> float:
    """``value`` as float when finite and within ``lo .. hi`` seconds; ValueError saying which limit otherwise."""
    try:
        seconds = float(value)
    except (OverflowError, TypeError, ValueError):
        raise ValueError("expected a finite number of seconds") from None
    if math.isnan(seconds):
        raise ValueError("a duration cannot be NaN")
    if math.isinf(seconds):
        raise ValueError("a duration must be finite")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    if seconds < lo or seconds > hi:
        raise ValueError(f"must be between {format_duration(lo)} and {format_duration(hi)}")
    return seconds


def check_silence_length(seconds: float) -> float:
    """A silence's or maintenance window's length: finite, more than 0, at most ``MAX_SILENCE_S`` (90 days)."""
    value = check_duration(seconds, 0.0, MAX_SILENCE_S)
    if value <= 0:
        raise ValueError("must be longer than 0")
    return value


def check_epoch(seconds: float, what: str = "time") -> float:
    """A timestamp given by a person or a client: finite and within 2000..3000 (ValueError otherwise)."""
    value = plausible_epoch(seconds)
    if value is None:
        raise ValueError(f"{what} must be a finite time between the years 2000 and 3000")
    return value


def exchange_wait(seconds: float | None) -> tuple[float | None, bool]:
    """A wait an exchange asked for, made usable: (seconds within 0 .. 24 h, whether it was capped).

    NaN and negative waits are unusable (None): the caller falls back to its own backoff.
    """
    if seconds is None or math.isnan(seconds):
        return None, False
    if seconds < 0:
        return None, False
    if seconds > MAX_EXCHANGE_WAIT_S:
        return MAX_EXCHANGE_WAIT_S, True
    return float(seconds), False


def plausible_epoch(seconds: float | None) -> float | None:
    """An epoch timestamp from outside (exchange body, header, store) when finite and in 2000..3000; else None."""
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (OverflowError, TypeError, ValueError):
        return None
    if not math.isfinite(value) or not MIN_EPOCH_S <= value <= MAX_EPOCH_S:
        return None
    return value


def format_duration(seconds: float | None, *, compact: bool = False) -> str:
    """The one way a duration is written (config, CLI, notifications, analysis, the UI).

    Full (default), the shortest exact form that ``parse_duration`` reads back: 0.5 -> '500ms',
    90 -> '1m30s', 7200 -> '2h'. ``compact`` is for table cells and countdowns: whole seconds, the two
    largest units, at most 5 characters (45s, 3m12s, 2h05m, 3d04h), negatives as 0s.
    Unknown (None) is '-', and so is NaN/inf in compact form.
    """
    if seconds is None:
        return "-"
    if not math.isfinite(seconds):
        return "-" if compact else str(seconds)  # full: 'inf'/'nan' in an error message says what was given
    if compact:
        s = int(max(0.0, seconds))
        if s < 60:
            return f"{s}s"
        if s < 3600:
            return f"{s // 60}m{s % 60:02d}s"
        if s < 86400:
            return f"{s // 3600}h{(s % 3600) // 60:02d}m"
        return f"{s // 86400}d{(s % 86400) // 3600:02d}h"
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


def format_ms(value: object, *, compact: bool = False) -> str:
    """The one way a latency or offset in milliseconds is written (incident summaries, CLI, analysis, UI).

    Full (default): 3 significant figures below 10 ms and above 1 s (4.25ms, 123ms, 1.23s, 12.35s).
    ``compact`` is for table cells, at most 5 characters: 4.2ms, 123ms, 1.2s, 12s.
    Anything that is not a finite number (None, NaN, a string from a hostile peer) is '-'.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    v = float(value)
    if compact:
        if v >= 10_000:
            return f"{v / 1000:.0f}s"
        if v >= 1000:
            return f"{v / 1000:.1f}s"
        return f"{v:.1f}ms" if v < 10 else f"{v:.0f}ms"
    if v >= 1000:
        return f"{v / 1000:.2f}s"
    if v >= 10:
        return f"{v:.0f}ms"
    return f"{v:.2f}ms"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""A pydantic field type holding seconds, written in config as 500ms / 20s / 5m / 1h; finite, 0 .. 10 years."""


def duration_range(lo: float, hi: float, *, above: bool = False) -> AfterValidator:
    """Narrow a ``Duration`` field: ``Annotated[Duration, duration_range(0.1, 3600)]``.

    ``above``: ``lo`` itself is refused (a timeout of 0 never succeeds).
    """

    def check(value: float) -> float:
        if value < lo or value > hi or (above and value == lo):
            low = f"more than {format_duration(lo)}" if above else f"at least {format_duration(lo)}"
            raise ValueError(f"must be {low} and at most {format_duration(hi)}")
        return value

    return AfterValidator(check)


_ISO_MIN_S = 0.0
_ISO_MAX_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last second datetime can hold


def iso_utc(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and a trailing Z. Total: a time outside years 1970..9999 (or NaN) is
    clamped rather than raised, so one bad value can never fail a whole snapshot (entry points bound times
    long before this; this is the last guard)."""
    value = epoch_seconds if epoch_seconds == epoch_seconds else _ISO_MIN_S
    value = min(max(value, _ISO_MIN_S), _ISO_MAX_S)
    dt = _dt.datetime.fromtimestamp(value, tz=_dt.UTC)
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
