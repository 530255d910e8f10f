"""JSON as a type, and the narrowing every boundary uses to read it.

Everything that crosses a process or network boundary (exchange bodies, control frames, stored JSON,
receivers' replies, LLM replies) is a ``JsonValue`` until it is read through these helpers into typed
values. They never raise and never pass a non-finite or out-of-range number on: a hostile value reads
as "absent" (``None``), which the caller already has to handle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
JsonObject = dict[str, JsonValue]
JsonArray = list[JsonValue]

# A JSON number or numeric string an exchange or peer may send; longer strings are never numbers here.
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_INT_RE = re.compile(r"^[+-]?\d{1,30}$")
_NUMBER_TEXT_MAX = 64


def as_object(value: object) -> JsonObject | None:
    """``value`` when it is a JSON object (a dict with string keys), else None."""
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return value
    return None


def as_array(value: object) -> JsonArray | None:
    """``value`` when it is a JSON array, else None."""
    return value if isinstance(value, list) else None


def objects(value: object) -> list[JsonObject]:
    """The JSON objects in a JSON array (other elements skipped); [] when ``value`` is no array."""
    if not isinstance(value, list):
        return []
    return [o for item in value if (o := as_object(item)) is not None]


def finite(value: object, low: float = -math.inf, high: float = math.inf) -> float | None:
    """A finite number within [low, high] from a JSON number or numeric string; bools and all else -> None."""
    if isinstance(value, bool):
        return None
    number: float
    if isinstance(value, int):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str) and len(value) <= _NUMBER_TEXT_MAX and _NUMBER_RE.match(value.strip()):
        number = float(value.strip())
    else:
        return None
    if not math.isfinite(number) or not low <= number <= high:
        return None
    return number


def integer(value: object, low: int | None = None, high: int | None = None) -> int | None:
    """An integer within [low, high] from a JSON integer, an integral float or a decimal-integer string."""
    result: int
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        result = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        result = int(value)
    elif isinstance(value, str) and _INT_RE.match(value.strip()):
        result = int(value.strip())
    else:
        return None
    if (low is not None and result < low) or (high is not None and result > high):
        return None
    return result


def text(value: object, limit: int | None = None) -> str | None:
    """``value`` when it is a string (cut to ``limit`` characters), else None. Not scrubbed: callers that
    show, store or send it pass it through the project's scrubber."""
    if not isinstance(value, str):
        return None
    return value if limit is None else value[:limit]


def flag(value: object) -> bool | None:
    """A JSON boolean, else None (no truthiness: ``"false"`` is not False, it is absent)."""
    return value if isinstance(value, bool) else None


def get_object(obj: Mapping[str, object], key: str) -> JsonObject | None:
    return as_object(obj.get(key))


def get_finite(obj: Mapping[str, object], key: str, low: float = -math.inf, high: float = math.inf) -> float | None:
    return finite(obj.get(key), low, high)


def get_int(obj: Mapping[str, object], key: str, low: int | None = None, high: int | None = None) -> int | None:
    return integer(obj.get(key), low, high)


def get_text(obj: Mapping[str, object], key: str, limit: int | None = None) -> str | None:
    return text(obj.get(key), limit)


def get_flag(obj: Mapping[str, object], key: str) -> bool | None:
    return flag(obj.get(key))
