"""StreamStats on the wire: what ``to_wire`` writes ``from_wire`` reads back; a record that is not a stream's
stats is a ValueError naming the field, never a TypeError or a wrongly typed field."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.kernel.streams import StreamOutcome, StreamStats

FIXED = settings(derandomize=True, database=None, max_examples=200, deadline=None)
_FLOATS = st.floats(min_value=0, max_value=1e9, allow_nan=False)
_COUNTS = st.integers(min_value=0, max_value=10**9)


@st.composite
def stream_stats(draw: st.DrawFn) -> StreamStats:
    return StreamStats(
        exchange=draw(st.text(min_size=1, max_size=12)), stream=draw(st.text(min_size=1, max_size=20)),
        outcome=draw(st.sampled_from(list(StreamOutcome))), detail=draw(st.text(max_size=30)),
        connected=draw(st.booleans()), subscribed=draw(st.booleans()), messages=draw(_COUNTS),
        msgs_per_s=draw(_FLOATS), silence_s=draw(_FLOATS), stale_after_s=draw(_FLOATS),
        gap_p50_ms=draw(st.none() | _FLOATS), gap_p99_ms=draw(st.none() | _FLOATS),
        gap_max_ms=draw(st.none() | _FLOATS), lag_ms=draw(st.none() | st.floats(-1e6, 1e6)),
        lag_error_ms=draw(st.none() | _FLOATS), seq_gaps=draw(_COUNTS), missed=draw(_COUNTS),
        reconnects=draw(_COUNTS), recent_reconnects=draw(_COUNTS), heartbeat_misses=draw(_COUNTS),
        connect_ms=draw(st.none() | _FLOATS), subscribe_ms=draw(st.none() | _FLOATS),
        first_message_ms=draw(st.none() | _FLOATS), last_close_code=draw(st.none() | st.integers(1000, 4999)),
        last_close_reason=draw(st.none() | st.text(max_size=20)), planned_reconnects=draw(_COUNTS),
    )


@FIXED
@given(stream_stats())
def test_what_to_wire_writes_from_wire_reads_back_through_json(stats: StreamStats) -> None:
    assert StreamStats.from_wire(json.loads(json.dumps(stats.to_wire()))) == stats
    assert StreamStats.from_wire({**stats.to_record("2026-01-01T00:00:00Z"), "unknown": [1]}) == stats


def _wire() -> dict[str, object]:
    return dict(StreamStats("okx", "tickers", StreamOutcome.OK, "", True, True, 5, 1.0, 0.5, 3.0, None, None, None,
                            None, None, 0, 0, 0, 0, 0, None, None, None, None, None, 0).to_wire())


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [("messages", "many", "messages is not readable"), ("connected", "yes", "connected is not readable"),
     ("silence_s", float("nan"), "silence_s is not readable"), ("exchange", 7, "exchange is not readable"),
     ("outcome", "on_fire", "on_fire"), ("outcome", ["ok"], "ok")],
)
def test_a_mistyped_required_field_or_outcome_is_a_value_error(key: str, value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        StreamStats.from_wire({**_wire(), key: value})


def test_a_missing_required_field_is_named_and_unreadable_optional_ones_read_as_none() -> None:
    data = _wire()
    del data["stale_after_s"]
    with pytest.raises(ValueError, match="stale_after_s is missing"):
        StreamStats.from_wire(data)
    odd = StreamStats.from_wire({**_wire(), "lag_ms": "fast", "last_close_code": True, "last_close_reason": 5})
    assert (odd.lag_ms, odd.last_close_code, odd.last_close_reason) == (None, None, None)
