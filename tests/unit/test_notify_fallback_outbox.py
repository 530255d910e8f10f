"""FallbackOutbox: rows the store refuses are sent from memory, and spilled back once it takes writes."""

from __future__ import annotations

from collections.abc import Sequence

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
