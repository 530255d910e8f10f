"""The typed snapshot and event model: exact round trips, and ``from_wire`` never raising on hostile frames.

Strategies are derived from the dataclasses' own type hints, so a field added to the model is covered
without touching this file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.kernel import events as events_mod
from cryptomon_tui.kernel import jsonvalue
from cryptomon_tui.kernel import snapshot as snapshot_mod
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.results import Phases
from cryptomon_tui.kernel.snapshot import (
    SCHEMA_VERSION,
    ExchangeView,
    IncidentView,
    ProbeView,
    Snapshot,
    schema_problem,
)
from cryptomon_tui.kernel.wire import NAME_MAX, NUM_MAX, TEXT_MAX, clean_json

RECORDED = Path(__file__).with_name("snapshot_demo_outage.json")

# --------------------------------------------------------------------------------- strategies from hints
json_leaves = (
    st.none() | st.booleans() | st.integers(-(10**12), 10**12)
    | st.floats(-1e12, 1e12, allow_nan=False) | st.text(max_size=12)
)
json_values: st.SearchStrategy[JsonValue] = st.recursive(
    json_leaves,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=3)

# what a hostile peer may send: every JSON value, non-finite and huge numbers, long strings, deep nesting
hostile_leaves = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["x" * 20_000, "1e400", "NaN", "-1", "9" * 40, 10**400, -(10**30)])
)
hostile_json = st.recursive(
    hostile_leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=30,
)

_NAMESPACE = {**vars(jsonvalue), **vars(snapshot_mod), **vars(events_mod)}
_BY_NAME: dict[str, st.SearchStrategy[object]] = {
    "cost_usd": st.decimals(0, 1000, places=6).map(str),
    "schema": st.integers(1, 9),
    "actor": st.none() | st.text(min_size=1, max_size=12),
    "data": json_objects,  # JsonObject (free-form JSON)
    "detail": json_objects,
}
_JSON_FIELDS = ("data", "detail")  # JsonObject where typed so (StreamView.detail is text)


def _for_type(tp: object) -> st.SearchStrategy[typing.Any]:
    if tp is str:
        return st.text(max_size=20)
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(0, 10**12)
    if tp is float:
        return st.floats(-1e12, 1e12, allow_nan=False)
    if tp is type(None):
        return st.none()
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for_type(a) for a in args))
    if origin is tuple:
        return st.lists(_for_type(args[0]), max_size=3).map(tuple)
    if origin in (dict, Mapping):
        return st.dictionaries(st.text(max_size=8), _for_type(args[1]), max_size=3)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return models(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def models(cls: type) -> st.SearchStrategy[typing.Any]:
    hints = typing.get_type_hints(cls, globalns=_NAMESPACE)
    return st.builds(
        cls, **{f.name: _BY_NAME[f.name] if f.name in _BY_NAME and not (f.name in _JSON_FIELDS and hints[f.name] is str)
                else st.deferred(lambda t=hints[f.name]: _for_type(t)) for f in dataclasses.fields(cls)}
    )


def _all_models() -> list[type]:
    found = [v for v in vars(snapshot_mod).values()
             if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == snapshot_mod.__name__]
    return [*found, EventView]


def _walk(value: object) -> typing.Iterator[object]:
    yield value
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


def _bounded(wire: JsonObject) -> None:
    """What a face gets out of ``from_wire`` is plain, finite, bounded JSON."""
    json.dumps(wire, allow_nan=False)
    for item in _walk(wire):
        if isinstance(item, float):
            assert math.isfinite(item) and abs(item) <= NUM_MAX
        elif isinstance(item, int) and not isinstance(item, bool):
            assert abs(item) <= 2**53
        elif isinstance(item, str):
            assert len(item) <= TEXT_MAX


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("cls", _all_models(), ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_model_round_trips_through_json(cls: typing.Any, data: st.DataObject) -> None:
    value = data.draw(models(cls))
    wire = value.to_wire()
    assert cls.from_wire(wire) == value
    assert cls.from_wire(json.loads(json.dumps(wire, allow_nan=False))) == value


@settings(max_examples=60, deadline=None)
@given(models(Snapshot))
def test_snapshot_round_trip(snap: Snapshot) -> None:
    assert Snapshot.from_wire(json.loads(json.dumps(snap.to_wire()))) == snap


@settings(max_examples=60, deadline=None)
@given(models(Phases))
def test_a_results_phases_round_trip(phases: Phases) -> None:
    """A result's phases are the kernel's ``Phases`` on the wire too (``as_dict`` out, ``phases_from_wire`` in)."""
    assert snapshot_mod.phases_from_wire(json.loads(json.dumps(phases.as_dict(), allow_nan=False))) == phases


@settings(max_examples=60, deadline=None)
@given(value=hostile_json)
def test_phases_from_wire_never_raises_on_any_json(value: object) -> None:
    _bounded(snapshot_mod.phases_from_wire(value).as_dict())


# ------------------------------------------------------------------------------------- hostile frames
@pytest.mark.parametrize("cls", _all_models(), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(value=hostile_json)
def test_from_wire_never_raises_on_any_json(cls: typing.Any, value: object) -> None:
    parsed = cls.from_wire(value)
    _bounded(parsed.to_wire())


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _recorded() -> JsonObject:
    data = json.loads(RECORDED.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


_RECORDED_PATHS = [p for p in _paths(_recorded()) if p]


@settings(max_examples=200, deadline=None)
@given(path=st.sampled_from(_RECORDED_PATHS), bad=hostile_json)
def test_one_bad_field_degrades_that_field_only(path: tuple[str | int, ...], bad: object) -> None:
    """A recorded snapshot with any one value replaced by hostile JSON still parses, bounded, and every
    exchange the bad value is not inside reads exactly as before."""
    clean = Snapshot.from_wire(_recorded())
    raw = _recorded()
    node: typing.Any = raw
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = bad
    parsed = Snapshot.from_wire(raw)
    _bounded(parsed.to_wire())
    if path[0] == "exchanges" and len(path) > 1:  # inside one exchange: every other one reads as before
        for name, view in clean.exchanges.items():
            if name != path[1]:
                assert parsed.exchanges[name] == view
    if path[0] != "exchanges":
        assert parsed.exchanges == clean.exchanges
    if path[0] != "incidents":
        assert parsed.incidents == clean.incidents


def test_hostile_values_degrade_to_defaults() -> None:
    ex = ExchangeView.from_wire({
        "kind": "x" * 10_000, "status": 7, "p99_ms": float("nan"), "p50_ms": float("inf"), "error_rate": "1e400",
        "attempts": -5, "timeouts": 10**30, "counts": {"ok": "12", "http_5xx": -1, "timeout": 1.5, "dns": True},
        "sparkline": [1.0, "x", None, float("-inf"), 2], "sparkline_ok": [True, 1, "no", False],
        "probes": {"ping": {"p50_ms": "40.5", "facts": {"ips": ["a", 1, {"x": 1}], "deep": {"a": 1}}}, "bad": 3},
        "breaker": "open", "backoff": [], "tls": [{"host": "h", "days_left": "soon"}, "junk"],
    })
    assert len(ex.kind) == NAME_MAX and ex.status == "error" and ex.view_error  # never shown as OK
    assert ex.p99_ms is None and ex.p50_ms is None and ex.error_rate == 0.0
    assert ex.attempts == 0 and ex.timeouts == 0
    assert ex.counts == {"ok": 12}
    assert ex.sparkline == (1.0, None, None, None, 2.0)
    assert ex.sparkline_ok == (True, False)
    assert set(ex.probes) == {"ping"} and ex.probes["ping"].p50_ms == 40.5
    assert ex.probes["ping"].facts == {"ips": ("a", 1), "deep": None}
    assert ex.breaker.state == "closed" and ex.backoff is None
    assert len(ex.tls) == 1 and ex.tls[0].days_left is None
    assert Snapshot.from_wire("not an object") == Snapshot(schema=1)
    assert Snapshot.from_wire({"exchanges": [1, 2], "incidents": {"a": 1}, "seq": True}).exchanges == {}


def test_clean_json_bounds_depth_and_numbers() -> None:
    deep: object = 1
    for _ in range(50):
        deep = [deep]
    out = clean_json({"a": deep, "n": float("nan"), "big": 10**40, "ok": 1.5})
    assert isinstance(out, dict) and out["n"] is None and out["big"] is None and out["ok"] == 1.5
    assert "50" not in json.dumps(out) and json.dumps(out).count("[") < 10


# ------------------------------------------------------------------------------------ recorded snapshot
def test_recorded_daemon_snapshot_parses_field_by_field() -> None:
    """A snapshot recorded from `cryptomon daemon --demo outage` (schema 1: no "schema" key) with a silence,
    a maintenance window and an offline analysis added through the control API."""
    raw = _recorded()
    snap = Snapshot.from_wire(raw)
    assert snap.schema == 1 and schema_problem(snap.schema) is None
    assert snap.seq == raw["seq"] and snap.ts == raw["ts"] and snap.version == raw["version"]
    assert set(snap.exchanges) == set(typing.cast(dict[str, object], raw["exchanges"]))
    raw_ex = typing.cast(dict[str, dict[str, typing.Any]], raw["exchanges"])
    for name, view in snap.exchanges.items():
        src = raw_ex[name]
        assert (view.kind, view.status, view.attempts, view.error_rate) == (
            src["kind"], src["status"], src["attempts"], src["error_rate"])
        assert view.breaker.state == src["breaker"]["state"]
        assert view.p99_ms == src["p99_ms"] and view.counts == src["counts"]
        assert list(view.sparkline) == src["sparkline"] and list(view.sparkline_ok) == src["sparkline_ok"]
        assert set(view.probes) == set(src["probes"])
        for probe, pv in view.probes.items():
            assert pv.to_wire() == {**src["probes"][probe]}
        assert view.schedule_lag is not None and view.schedule_lag.to_wire() == src["schedule_lag"]
        assert view.intervals == src["intervals"]
    # the whole wire form is what the engine sent, plus the schema key
    again = snap.to_wire()
    assert again.pop("schema") == 1
    assert again == raw
    assert any(i.analysis is not None for i in snap.incidents)
    assert snap.silences and snap.maintenance and snap.store is not None and snap.streams


def test_schema_rule() -> None:
    assert Snapshot().to_wire()["schema"] == SCHEMA_VERSION
    assert schema_problem(SCHEMA_VERSION) is None and schema_problem(1) is None
    msg = schema_problem(SCHEMA_VERSION + 1)
    assert msg == f"daemon speaks schema {SCHEMA_VERSION + 1}, this face {SCHEMA_VERSION}: " \
                  "upgrade cryptomon here (or run the same version)"
    assert Snapshot.from_wire({"schema": 3}).schema == 3


def test_event_view_reads_the_engine_event_and_its_analysis() -> None:
    incident = IncidentView(id="I-1", rule="consecutive_failures", severity="error", exchange="okx")
    wire = {"ts": "2026-12-07T18:25:30.500Z", "event": "analysis_ready", "incident": incident.to_wire(),
            "detail": {"analysis": {"root_cause": "okx refuses connections.", "severity": "HIGH",
                                    "confidence": 0.8, "cost_usd": "0", "source": "offline"}}}
    ev = EventView.from_wire(wire)
    assert ev.schema == 1 and ev.event == "analysis_ready" and ev.incident == incident
    assert ev.analysis is not None and ev.analysis.root_cause == "okx refuses connections."
    assert ev.analysis.confidence == 0.8 and ev.actor is None
    assert EventView.from_wire({**wire, "detail": {"analysis": "junk"}}).analysis is None


def test_probe_view_keeps_wire_keys() -> None:
    assert set(ProbeView().to_wire()) == {
        "last", "facts", "attempts", "error_rate", "p50_ms", "p95_ms", "p99_ms", "timeouts", "counts",
        "last_error_code", "last_error_message", "consecutive_failures",
    }
