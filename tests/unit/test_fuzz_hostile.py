"""Issue 13 item 9: fuzzing in the normal suite, bounded and with a fixed seed (derandomize, no database).

- every exchange adapter's classifier, fed random statuses, headers and bodies (random bytes, and the
  reference samples with fields replaced by hostile values): always a classified outcome, never an exception
  nor the last-resort ``classifier_error``; after ``bound_times`` every time value is finite and bounded, and
  the backoff it feeds never fails its snapshot;
- the control protocol's frame parser: any bytes either decode to a message or raise ProtocolError;
- every command's arguments: validated params reach the real engine, which answers or refuses with a
  CommandError, and the snapshot still builds afterwards.
Any counterexample found becomes a named regression test at the bottom.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.protocol import METHOD_PARAMS, ProtocolError, decode, encode, validate_params
from cryptomon_tui.engine.api import CommandError
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.exchanges.base import RawResponse
from cryptomon_tui.exchanges.common import bound_times
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.units import MAX_EPOCH_S, MAX_EXCHANGE_WAIT_S, MIN_EPOCH_S
from cryptomon_tui.probing.backoff import MARGIN_S, Backoff
from tests.fakes.exchange_samples import SAMPLES, sample_files
from tests.unit.test_exchanges_hostile import ADAPTERS

FUZZ = settings(derandomize=True, database=None, max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

HOSTILE_NUMBERS = st.sampled_from(
    [1e12, 1e308, -1, 0, 9999999999999, 1234567890123456, 10**30, "1e12", "inf", "-inf", "nan", "NaN", "1e400",
     "", " ", "٣", "∞", "0x10", "1_000", None, True, [], {}]
)
HEADER_NAMES = st.sampled_from(
    ["retry-after", "date", "x-mbx-used-weight-1m", "x-mbx-used-weight", "x-bapi-limit-status", "x-bapi-limit",
     "x-bapi-limit-reset-timestamp", "x-ratelimit-remaining", "x-ratelimit-limit", "content-type", "server",
     "x-cache", "cf-ray"]
)
HEADER_VALUES = st.one_of(
    HOSTILE_NUMBERS.map(lambda v: json.dumps(v) if not isinstance(v, str) else v),
    st.sampled_from(["Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Mon, 32 Foo 2024",
                     "text/html", "application/json"]),
    st.text(max_size=40),
)
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), HOSTILE_NUMBERS)
JSON_VALUE = st.recursive(JSON_LEAF, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                            st.dictionaries(st.text(max_size=10), kids, max_size=4)),
                          max_leaves=20)


def _mutate(doc: Any, path_choice: int, value: Any) -> Any:
    """``doc`` with the ``path_choice``-th leaf (in walk order) replaced by ``value``."""
    counter = [0]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        counter[0] += 1
        return value if counter[0] - 1 == path_choice else node

    return walk(doc)


SAMPLE_BODIES = [(SAMPLES / name).read_bytes() for name in sample_files() if name.endswith(".json")]


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:
        return json.dumps(draw(JSON_VALUE), allow_nan=True).encode()
    if kind == 2 and SAMPLE_BODIES:
        raw = draw(st.sampled_from(SAMPLE_BODIES))
        try:
            doc = json.loads(raw)
        except (ValueError, TypeError):
            return bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw).encode()
        return json.dumps(_mutate(doc, draw(st.integers(0, 40)), draw(HOSTILE_NUMBERS)), allow_nan=True).encode()
    ban = draw(st.sampled_from(["1234567890123456", "9999999999999", "1", "0", "99999999999999999999"]))
    return json.dumps({"code": draw(st.sampled_from([-1003, 10006, 50011, 10028, 403])),
                       "msg": f"Way too many requests; IP banned until {ban}."}).encode()


def _finite_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


@FUZZ
@given(
    adapter_index=st.integers(0, len(ADAPTERS) - 1),
    probe_index=st.integers(0, 10),
    status=st.one_of(st.sampled_from([200, 400, 401, 403, 404, 418, 429, 500, 502, 503, 504]),
                     st.integers(0, 999)),
    headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
    body=bodies(),
    truncated=st.booleans(),
)
def test_every_classifier_answers_hostile_responses_with_a_bounded_outcome(
    adapter_index: int, probe_index: int, status: int, headers: dict[str, str], body: bytes, truncated: bool
) -> None:
    adapter = ADAPTERS[adapter_index]
    probes = list(adapter.probes())
    probe = probes[probe_index % len(probes)]
    c = adapter.classify(probe, RawResponse(status, headers, body, truncated))
    assert isinstance(c.outcome, Outcome)
    assert c.error_code != "classifier_error", (adapter.kind, probe, status, headers, body[:200], c.error_message)
    b = bound_times(c)
    assert all(_finite_or_none(v) for v in (b.retry_after_s, b.ban_until, b.maintenance_until, b.server_time_ms))
    assert b.retry_after_s is None or 0 <= b.retry_after_s <= MAX_EXCHANGE_WAIT_S
    for epoch in (b.ban_until, b.maintenance_until):
        assert epoch is None or MIN_EPOCH_S <= epoch <= MAX_EPOCH_S
    clock = FakeClock()
    backoff = Backoff(clock)
    pause = backoff.record(b.outcome, b.retry_after_s, b.ban_until, adapter.name)
    if pause is not None:
        assert pause.until_wall - clock.now() <= MAX_EXCHANGE_WAIT_S + MARGIN_S
    backoff.snapshot()


@FUZZ
@given(st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200),
    JSON_VALUE.map(lambda v: json.dumps(v, allow_nan=True)),
    st.builds(lambda kind, extra: json.dumps({"type": kind, **extra}, allow_nan=True),
              st.sampled_from(["hello", "welcome", "request", "response", "snapshot", "event", "error", "bye", "x"]),
              st.dictionaries(st.sampled_from(["protocol", "id", "method", "params", "ok", "result", "error", "data",
                                               "pid", "token", "client"]), JSON_VALUE, max_size=5)),
))
def test_the_frame_parser_decodes_or_refuses(frame: bytes | str) -> None:
    try:
        message = decode(frame)
    except ProtocolError:
        return
    encode(message)  # whatever decodes can be sent on


@st.composite
def commands(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    method = draw(st.sampled_from(sorted(m for m in METHOD_PARAMS if m not in ("shutdown", "reload", "analyze"))))
    params: dict[str, Any] = {}
    for name in METHOD_PARAMS[method]:
        if draw(st.integers(0, 5)) == 0:
            continue
        params[name] = draw(st.one_of(
            HOSTILE_NUMBERS, st.floats(), st.integers(), st.text(max_size=12),
            st.just([{"name": "exchange", "value": "binance"}]),
            st.lists(st.dictionaries(st.sampled_from(["name", "value", "is_regex", "is_equal"]),
                                     st.one_of(st.text(max_size=6), st.booleans(), st.just("(")), max_size=4),
                     max_size=3),
            st.sampled_from(["binance", "nope", "S-1", "ab" * 100, "\u202e", "1.5e9"]),
            st.sampled_from([1_750_000_000.0, 1_750_003_600.0, 60.0]),
        ))
    return method, params


@settings(derandomize=True, database=None, max_examples=200, deadline=None)
@given(st.lists(commands(), min_size=1, max_size=4))
def test_every_command_with_hostile_arguments_is_answered_or_refused(calls: list[tuple[str, dict[str, Any]]]) -> None:
    async def run() -> None:
        clock = FakeClock(start=1_750_000_000.0)
        engine = Engine(config_from_data({"exchanges": {"binance": {"interval": "1s"}}}), clock=clock,
                        use_store=False, notify=False)
        engine._build_analysis()  # what start() does; summary needs it
        handlers = {
            "ack": lambda p: engine.ack(p["incident_id"], p.get("by") or "fuzz", p.get("note")),
            "silence": lambda p: engine.silence(p["matchers"], p.get("duration_s"), p["comment"], p.get("by") or "f"),
            "unsilence": lambda p: engine.unsilence(p["silence_id"], p.get("by") or "fuzz"),
            "summary": lambda p: engine.summary(p.get("since_s"), offline=True),
            "pause": lambda p: engine.pause(p["exchange"]),
            "resume": lambda p: engine.resume(p["exchange"]),
            "history": lambda p: engine.history(p["exchange"], p.get("probe"), float(p["since"]), float(p["until"]),
                                                float(p["resolution_s"]), int(p.get("recent", 0))),
        }
        for method, params in calls:
            try:
                valid = validate_params(method, params)
            except ProtocolError:
                continue
            if method in handlers:
                try:
                    await handlers[method](valid)
                except CommandError:
                    pass
        snap = engine.snapshot().to_wire()
        assert "error" not in snap, snap.get("error")
        json.dumps(snap, allow_nan=False)
        assert engine.health().snapshot is True

    asyncio.run(run())


# -- counterexamples kept as regression tests ------------------------------------------------------

@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"request","id":1,"method":"silence","params":{"duration_s":NaN}}',
        b'{"type":"request","id":1,"method":"silence","params":{"duration_s":Infinity}}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"type":"welcome","protocol":1,"pid":"abc"}',
        b'{"type":"welcome","protocol":1,"pid":1e400}',
    ],
    ids=["nan", "infinity", "100k-deep", "pid-text", "pid-1e400"],
)
def test_frames_that_python_json_accepts_but_json_does_not_are_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(frame)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("silence", {"matchers": [{"name": "exchange", "value": "x"}], "comment": "c", "duration_s": 1e308}),
        ("subscribe", {"snapshot_hz": 1e300}),
        ("summary", {"since_s": -1.0}),
        ("summary", {"since_s": 1e300}),
    ],
)
def test_hostile_command_numbers_are_refused(method: str, params: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        validate_params(method, params)
