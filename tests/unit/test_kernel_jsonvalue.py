"""The JSON narrowing helpers never raise and never pass a non-finite or out-of-range value on."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from cryptomon_tui.kernel.jsonvalue import as_object, finite, flag, get_finite, get_int, integer, objects, text

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(json_values, st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_finite_is_finite_and_within_bounds(value: object, a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)
    out = finite(value, low, high)
    assert out is None or (math.isfinite(out) and low <= out <= high)


@given(json_values)
def test_helpers_never_raise_and_narrow(value: object) -> None:
    assert as_object(value) is None or isinstance(value, dict)
    assert all(isinstance(o, dict) for o in objects(value))
    assert integer(value) is None or isinstance(integer(value), int)
    assert text(value, 3) is None or len(text(value, 3) or "") <= 3
    assert flag(value) is None or isinstance(value, bool)


def test_numbers_from_wire_strings_and_hostile_values() -> None:
    assert finite("1.5e3") == 1500.0
    assert finite(" 42 ") == 42.0
    assert finite(True) is None
    assert finite("nan") is None and finite("inf") is None and finite(float("inf")) is None
    assert finite(10**400) is None
    assert finite("1" * 100) is None
    assert finite(5, 0, 1) is None
    assert integer(3.0) == 3 and integer(3.5) is None and integer("-7") == -7 and integer(False) is None
    assert integer(10, high=5) is None
    obj = json.loads('{"a": "2", "b": 1e999, "c": [1, {"x": 1}]}')
    assert get_finite(obj, "a") == 2.0 and get_finite(obj, "b") is None and get_int(obj, "missing") is None
    assert objects(obj["c"]) == [{"x": 1}]
    assert as_object({1: "x"}) is None
