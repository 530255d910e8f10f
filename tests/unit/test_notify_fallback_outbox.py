"""FallbackOutbox: rows the store refuses are sent from memory, and spilled back once it takes writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.notify.fallback_outbox import FallbackOutbox
from cryptomon_tui.notify.model import NewOutboxRow
from cryptomon_tui.notify.outbox import InMemoryOutbox
from cryptomon_tui.notify.store_outbox import OutboxUnavailable


class FlakyStore(InMemoryOutbox):
    """The store-backed outbox's contract, with an enqueue that fails while ``broken``."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    async def outbox_enqueue(self, rows: Sequence[NewOutboxRow]) -> list[int]:
        if self.broken:
            raise OutboxUnavailable("outbox_enqueue: database or disk is full")
        return await super().outbox_enqueue(rows)


def row(n: int, kind: str = "firing", incident: str = "inc-1") -> NewOutboxRow:
    return NewOutboxRow(channel="hook", kind=kind, incident_id=incident, fingerprint="fp", group_key="g",
                        payload="{}", idempotency_key=f"k{n}", not_before=0.0, created_at=0.0)


async def test_refused_rows_go_out_from_memory_and_spill_back() -> None:
    store = FlakyStore()
    clock = FakeClock()
    outbox = FallbackOutbox(store, clock, lambda: not store.broken)
    store.broken = True
    ids = await outbox.outbox_enqueue([row(1)])
    assert ids[0] < 0 and outbox.in_memory() == 1 and not store.rows
    claimed = await outbox.outbox_claim_due("hook", 1.0, 10)
    assert [r.idempotency_key for r in claimed] == ["k1"]
    await outbox.outbox_mark_sent([claimed[0].id], 1.0)
    assert outbox.in_memory() == 0
    assert await outbox.outbox_fired_channels("inc-1") == {"hook"}  # the resolve will reach it
    # queued while broken, not sent yet: moves to the store when it works again, in order
    await outbox.outbox_enqueue([row(2, "acknowledged"), row(3, "resolved")])
    assert outbox.in_memory() == 2
    store.broken = False
    await outbox.outbox_enqueue([row(4, "firing", "inc-2")])
    assert outbox.in_memory() == 0
    assert [r.idempotency_key for r in sorted(store.rows.values(), key=lambda r: r.id)] == ["k2", "k3", "k4"]
    assert outbox.spilled_rows == 2


async def test_a_failing_store_is_retried_at_most_every_spill_interval() -> None:
    store = FlakyStore()
    clock = FakeClock()
    calls = 0
    original = store.outbox_enqueue

    async def counting(rows: Sequence[NewOutboxRow]) -> list[int]:
        nonlocal calls
        calls += 1
        return await original(rows)

    store.outbox_enqueue = counting  # type: ignore[method-assign]
    outbox = FallbackOutbox(store, clock, lambda: not store.broken)
    store.broken = True
    await outbox.outbox_enqueue([row(1)])
    before = calls
    for _ in range(20):
        await outbox.outbox_claim_due("other", 0.0, 10)
    assert calls - before <= 1  # a locked store costs its busy timeout per try: not on every claim


async def test_flush_at_shutdown_moves_what_waits_in_memory() -> None:
    store = FlakyStore()
    outbox = FallbackOutbox(store, FakeClock(), lambda: not store.broken)
    store.broken = True
    await outbox.outbox_enqueue([row(1), row(2, "resolved")])
    assert await outbox.flush() == 2  # still broken: reported as lost
    store.broken = False
    assert await outbox.flush() == 0
    assert sorted(r.idempotency_key for r in store.rows.values()) == ["k1", "k2"]


class FallbackMachine(RuleBasedStateMachine):
    """Any interleaving of enqueues, store failures and recoveries, claims and sends: every row is sent once
    (from memory or from the store) or still queued; none is lost, none sent twice, per incident in order."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = FlakyStore()
        self.clock = FakeClock()
        self.outbox = FallbackOutbox(self.store, self.clock, lambda: not self.store.broken)
        self.enqueued: list[str] = []
        self.sent: list[str] = []
        self.incident_by_key: dict[str, str] = {}
        self.n = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @rule(incident=st.sampled_from(["a", "b"]), kind=st.sampled_from(["firing", "acknowledged", "resolved"]))
    def enqueue(self, incident: str, kind: str) -> None:
        self.n += 1
        try:
            self.run(self.outbox.outbox_enqueue([row(self.n, kind, incident)]))
        except OutboxUnavailable:
            return  # only past MAX_MEMORY_ROWS, out of reach here
        self.enqueued.append(f"k{self.n}")
        self.incident_by_key[f"k{self.n}"] = incident

    @rule()
    def store_breaks(self) -> None:
        self.store.broken = True

    @rule()
    def store_recovers(self) -> None:
        self.store.broken = False

    @rule(seconds=st.sampled_from([0.0, 1.0, 11.0]))
    def time_passes(self, seconds: float) -> None:
        self.run(self.clock.advance(seconds))

    @rule(limit=st.integers(1, 4), ok=st.booleans())
    def dispatch(self, limit: int, ok: bool) -> None:
        rows = self.run(self.outbox.outbox_claim_due("hook", self.clock.now() + 1e6, limit))
        ids = [r.id for r in rows]
        if ok:
            self.run(self.outbox.outbox_mark_sent(ids, self.clock.now()))
            self.sent += [r.idempotency_key for r in rows]
        else:
            self.run(self.outbox.outbox_release(ids, self.clock.now(), "retry"))

    @invariant()
    def nothing_lost_nothing_twice(self) -> None:
        assert len(self.sent) == len(set(self.sent)), self.sent
        waiting = {r.idempotency_key for r in self.store.rows.values() if r.status != "sent"}
        waiting |= {r.idempotency_key for r in self.outbox.memory.rows.values() if r.status != "sent"}
        assert set(self.enqueued) == set(self.sent) | waiting
        assert not set(self.sent) & waiting

    @invariant()
    def per_incident_order(self) -> None:
        order = {k: i for i, k in enumerate(self.enqueued)}
        for inc in ("a", "b"):
            mine = [k for k in self.sent if self.incident_by_key[k] == inc]
            assert mine == sorted(mine, key=order.__getitem__), (inc, mine)


TestFallbackOutbox = FallbackMachine.TestCase
TestFallbackOutbox.settings = settings(max_examples=60, stateful_step_count=40, derandomize=True, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
