"""Stored rows are read as untrusted: a row damaged by hand, by a disk error or by an old bug degrades
(absent values, a dropped row) and never fails the whole read (before, one bad JSON column or an unknown
enum value raised out of ``Store.incidents()`` / ``load_state()`` and took the restart with it)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import IncidentState, Matcher, Silence
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.store import CommandRecord, Store
from cryptomon_tui.store.commands import apply_command
from cryptomon_tui.store.rows import (
    command_from_row,
    incident_from_row,
    outbox_from_row,
    result_from_row,
    rollup_from_row,
    silence_from_dict,
    silence_from_row,
    timeline_from_row,
    usage_from_row,
    window_from_dict,
    window_from_row,
)
from cryptomon_tui.store.sql import SqlValue
from tests.unit.store_helpers import T0, event, make_incident

sql_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["{", "[1,", '{"a": NaN}', "[]", "{}", '"x"', "null", "firing", "error", "ok", "1e999"]),
    st.binary(max_size=8),
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(StorageConfig(path=tmp_path / "db.sqlite3"), FakeClock(T0 + 60))
    assert await s.open(background=False)
    yield s
    await s.close()


def _corrupt(store: Store, sql: str, *params: object) -> None:
    conn = sqlite3.connect(store.path)
    try:
        conn.execute(sql, params)
        conn.commit()
    finally:
        conn.close()


async def test_a_damaged_incident_row_reads_degraded_and_the_others_stay(store: Store) -> None:
    for n in (1, 2, 3):
        store.on_event(event(make_incident(n)))
    await store.flush()
    _corrupt(store, "UPDATE incidents SET labels = '{not json', severity = 'apocalyptic', state = 'odd', "
             "peak = '{\"error_rate\": \"x\", \"p99_ms\": 2400}' WHERE id = 'inc-0001'")  # fmt: skip
    _corrupt(store, "UPDATE incident_timeline SET data = '[1,' WHERE incident_id = 'inc-0001'")
    _corrupt(store, "UPDATE incidents SET id = NULL WHERE id = 'inc-0002'")
    items = {i.id: i for i in await store.incidents(timelines=True)}
    assert set(items) == {"inc-0001", "inc-0003"}  # the row without an id is left out
    damaged = items["inc-0001"]
    assert damaged.labels == {} and damaged.peak == {"p99_ms": 2400.0}
    assert damaged.severity is Severity.WARNING and damaged.state is IncidentState.FIRING
    assert damaged.timeline[0].data == {} and damaged.timeline[0].kind == "opened"
    assert items["inc-0003"] == make_incident(3)
    state = await store.load_state()
    assert {i.id for i in state.open_incidents} == {"inc-0001", "inc-0003"}


async def test_a_silence_whose_matchers_are_damaged_is_dropped_not_widened(store: Store) -> None:
    m = (Matcher("exchange", "binance"), Matcher("rule", "error_rate"))
    for sid in ("sil-a", "sil-b", "sil-c"):
        assert await store.add_silence(Silence(sid, m, T0, T0 + 3600, "ann", "deploy", T0))
    _corrupt(store, "UPDATE silences SET matchers = '[{\"name\": \"exchange\", \"value\": \"binance\"}, 7]' "
             "WHERE id = 'sil-a'")  # fmt: skip
    _corrupt(store, "UPDATE silences SET matchers = 'garbage' WHERE id = 'sil-b'")
    # dropping one matcher would silence every rule on binance: the silence goes instead
    assert [s.id for s in await store.silences()] == ["sil-c"]


async def test_a_damaged_outbox_payload_is_an_empty_payload_not_a_failed_claim(store: Store) -> None:
    for key in ("k1", "k2"):
        assert await store.outbox_enqueue(idempotency_key=key, channel="slack", event="firing", payload={"n": 1})
    _corrupt(store, "UPDATE outbox SET payload = '{oops' WHERE idempotency_key = 'k1'")
    claimed = await store.outbox_claim_due(T0 + 60)
    assert [(m.idempotency_key, m.payload, m.state, m.attempts) for m in claimed] == [
        ("k1", {}, "sending", 1),
        ("k2", {"n": 1}, "sending", 1),
    ]


async def test_a_queued_command_with_a_damaged_payload_is_skipped_with_a_reason(store: Store) -> None:
    assert await store.enqueue_command("ack", {"incident_id": "inc-0001", "by": "ann"})
    _corrupt(store, "UPDATE commands SET payload = 'not json'")
    (cmd,) = await store.poll_commands()
    assert cmd.payload == {}
    result, events = apply_command(_NoIncidents(), cmd)
    assert result.startswith("skipped") and events == []


class _NoIncidents:
    """A command target that must not be reached by a skipped command."""

    def __getattr__(self, name: str) -> object:
        def called(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"a command with no usable payload reached the manager ({name})")

        return called


def test_a_present_but_unusable_end_is_refused_never_read_as_until_resolved() -> None:
    shape = Silence("sil-1", (Matcher("exchange", "okx"),), T0, T0 + 60, "ann", "", T0).to_dict()
    assert silence_from_dict(shape).ends_at == pytest.approx(T0 + 60, abs=0.001)
    for bad in (math.nan, math.inf, True, "tomorrow-ish", [1]):
        with pytest.raises(ValueError):
            silence_from_dict({**shape, "ends_at": bad})
    assert silence_from_dict({**shape, "ends_at": None}).ends_at is None
    for not_a_silence in (None, [], "sil-1", {"matchers": []}, {**shape, "matchers": [{"name": "exchange"}]}):
        with pytest.raises(ValueError):
            silence_from_dict(not_a_silence)
    with pytest.raises(ValueError):
        window_from_dict({"id": "mw-1", "starts_at": T0})
    cmd = CommandRecord(1, T0, "silence", {"silence": {**shape, "ends_at": math.nan}})
    assert apply_command(_NoIncidents(), cmd)[0].startswith("skipped")


@settings(max_examples=300, deadline=None)
@given(st.lists(sql_values, min_size=25, max_size=25))
def test_any_stored_values_read_without_raising(row: list[SqlValue]) -> None:
    values = tuple(row)
    incident = incident_from_row(values)
    if incident is not None:
        incident.to_dict()
        assert all(math.isfinite(v) for v in incident.peak.values())
    result_from_row(values[:11]).to_json_dict()
    rollup_from_row(values[:15])
    timeline_from_row(values[:4]).to_dict()
    outbox_from_row(values[:14])
    usage_from_row(values[:9])
    command_from_row(values[:6])
    for item in (silence_from_row(values[:8]), window_from_row(values[:8])):
        if item is not None:
            item.to_dict()

