"""Never-raising readers for the typed wire models (snapshot, events).

A control frame comes from another process: every value is read through these, so a hostile or
newer-than-us value degrades to a default (``None``, 0, "", empty) instead of raising, numbers are
finite and bounded, strings and collections are capped, and unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object, finite, flag, integer, text

T = TypeVar("T")

NUM_MAX = 1e15  # any float on the wire (ms, seconds, ratios, dollars) is within +-NUM_MAX
INT_MAX = 2**53  # counts, sequence numbers, ids: non-negative and exact in a JSON double
NAME_MAX = 256  # exchange, probe, rule, channel names, ids, kinds, states
TIME_MAX = 64  # ISO-8601 timestamps
TEXT_MAX = 4096  # messages, summaries, comments, analysis text
ITEMS_MAX = 2000  # any list or map on the wire
JSON_DEPTH_MAX = 8  # free-form JSON (timeline data, event detail): deeper values read as None


class Reader:
    """One JSON object read key by key; anything that is not an object reads as the empty object."""

    __slots__ = ("d",)

    def __init__(self, value: object) -> None:
        self.d: Mapping[str, object] = as_object(value) or {}

    def raw(self, key: str) -> object:
        return self.d.get(key)

    def has(self, key: str) -> bool:
        return key in self.d

    def opt_str(self, key: str, limit: int = TEXT_MAX) -> str | None:
        return text(self.d.get(key), limit)

    def string(self, key: str, default: str = "", limit: int = NAME_MAX) -> str:
        value = text(self.d.get(key), limit)
        return default if value is None else value

    def time(self, key: str) -> str | None:
        """An ISO-8601 timestamp as sent (kept as text: faces format it, the wire stays byte-compatible)."""
        return text(self.d.get(key), TIME_MAX)

    def opt_number(self, key: str) -> float | None:
        return finite(self.d.get(key), -NUM_MAX, NUM_MAX)

    def number(self, key: str, default: float = 0.0) -> float:
        value = finite(self.d.get(key), -NUM_MAX, NUM_MAX)
        return default if value is None else value

    def opt_count(self, key: str) -> int | None:
        return integer(self.d.get(key), 0, INT_MAX)

    def count(self, key: str, default: int = 0) -> int:
        value = integer(self.d.get(key), 0, INT_MAX)
        return default if value is None else value

    def opt_flag(self, key: str) -> bool | None:
        return flag(self.d.get(key))

    def flag(self, key: str, default: bool = False) -> bool:
        value = flag(self.d.get(key))
        return default if value is None else value

    def items(self, key: str) -> list[object]:
        value = self.d.get(key)
        return list(value[:ITEMS_MAX]) if isinstance(value, list) else []

    def entries(self, key: str) -> list[tuple[str, object]]:
        """A JSON object's (key, value) pairs, keys cut to ``NAME_MAX``, at most ``ITEMS_MAX`` of them."""
        obj = as_object(self.d.get(key))
        return [] if obj is None else [(k[:NAME_MAX], v) for k, v in list(obj.items())[:ITEMS_MAX]]

    def int_map(self, key: str) -> dict[str, int]:
        return {k: n for k, v in self.entries(key) if (n := integer(v, 0, INT_MAX)) is not None}

    def num_map(self, key: str) -> dict[str, float]:
        return {k: n for k, v in self.entries(key) if (n := finite(v, -NUM_MAX, NUM_MAX)) is not None}

    def opt_num_map(self, key: str) -> dict[str, float | None]:
        return {k: finite(v, -NUM_MAX, NUM_MAX) for k, v in self.entries(key)}

    def str_map(self, key: str) -> dict[str, str]:
        return {k: s for k, v in self.entries(key) if (s := text(v, TEXT_MAX)) is not None}

    def strs(self, key: str, limit: int = TEXT_MAX) -> tuple[str, ...]:
        return tuple(s for v in self.items(key) if (s := text(v, limit)) is not None)

    def json(self, key: str) -> JsonObject:
        cleaned = clean_json(self.d.get(key))
        return cleaned if isinstance(cleaned, dict) else {}

    def many(self, key: str, parse: Callable[[object], T]) -> tuple[T, ...]:
        return tuple(parse(v) for v in self.items(key) if as_object(v) is not None)

    def keyed(self, key: str, parse: Callable[[object], T]) -> dict[str, T]:
        return {k: parse(v) for k, v in self.entries(key) if as_object(v) is not None}


def clean_json(value: object, depth: int = 0) -> JsonValue:
    """Free-form JSON made safe: finite bounded numbers, capped strings and collections, bounded depth.
    Anything else (a non-JSON object, a too-deep value) is None."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -INT_MAX <= value <= INT_MAX else None
    if isinstance(value, float):
        return finite(value, -NUM_MAX, NUM_MAX)
    if isinstance(value, str):
        return value[:TEXT_MAX]
    if depth >= JSON_DEPTH_MAX:
        return None
    if isinstance(value, list):
        return [clean_json(v, depth + 1) for v in value[:ITEMS_MAX]]
    if isinstance(value, dict):
        return {
            k[:NAME_MAX]: clean_json(v, depth + 1) for k, v in list(value.items())[:ITEMS_MAX] if isinstance(k, str)
        }
    return None
