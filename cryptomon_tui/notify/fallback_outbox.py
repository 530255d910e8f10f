"""An outbox that keeps alerting when SQLite fails: rows the store cannot take live in memory until it can.

A corrupt, full, read-only or locked database must not silence every alert (issue 13). ``FallbackOutbox``
wraps the store-backed outbox: an enqueue the store refuses goes to an ``InMemoryOutbox`` instead, and the
dispatcher claims from both, so notifications go out from memory while the store is down. When the store
takes writes again, rows still pending in memory are spilled back into it (durable again) and leave memory.

Row ids: the store's are positive; memory rows are shown to the notifier as negative ids, so every
``mark``/``release`` call goes back to the side that owns the row. Rows sent from memory are forgotten once
sent (what stays is who was told about which incident, so resolves still reach the right channels).
What memory cannot give: rows queued in the store before it broke wait in the store until it recovers, and
a later row of the same incident and channel waits behind them (it is not sent from memory first: a
resolve never overtakes its firing); new incidents go out from memory at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

from cryptomon_tui.clock import Clock
from cryptomon_tui.notify.model import ChannelStats, NewOutboxRow, OutboxRow, RowStatus
from cryptomon_tui.notify.outbox import InMemoryOutbox, OutboxRepository
from cryptomon_tui.notify.store_outbox import OutboxUnavailable

log = logging.getLogger(__name__)

MAX_MEMORY_ROWS = 10_000  # beyond it enqueue fails as before (the notifier keeps retrying)
SPILL_RETRY_S = 10.0  # a failing store is retried this often (a locked one costs its busy timeout)


class FallbackOutbox:
    """``OutboxRepository`` over a store-backed outbox, with memory while the store refuses writes."""

    def __init__(self, store: OutboxRepository, clock: Clock, store_ok: Callable[[], bool]) -> None:
        self.store = store
        self.memory = InMemoryOutbox()
        self.clock = clock
        self._store_ok = store_ok
        self._originals: dict[int, NewOutboxRow] = {}  # memory id -> the row as first enqueued
        self._next_spill = 0.0
        # Rows this process put in the store and has not seen sent, per (incident, channel): a memory row of
        # the same incident waits behind them (a resolve never overtakes its firing stuck in a broken store).
        self._in_store: dict[tuple[str, str], set[int]] = {}
        self._store_key: dict[int, tuple[str, str]] = {}
        self.fallback_rows = 0  # rows that went to memory instead of the store (for health/metrics)
        self.spilled_rows = 0

    # -- which side --

    @staticmethod
    def _split(ids: Sequence[int]) -> tuple[list[int], list[int]]:
        return [i for i in ids if i > 0], [-i for i in ids if i < 0]

    @staticmethod
    def _shown(row: OutboxRow) -> OutboxRow:
        return replace(row, id=-row.id)

    def _track(self, ids: Sequence[int], rows: Sequence[NewOutboxRow]) -> None:
        for rid, row in zip(ids, rows, strict=False):
            if row.incident_id:
                key = (row.incident_id, row.channel)
                self._in_store.setdefault(key, set()).add(rid)
                self._store_key[rid] = key

    def _untrack(self, ids: Sequence[int]) -> None:
        for rid in ids:
            key = self._store_key.pop(rid, None)
            if key is not None and (left := self._in_store.get(key)) is not None:
                left.discard(rid)
                if not left:
                    del self._in_store[key]

    def _blocked(self, row: OutboxRow) -> bool:
        """A memory row waits while an earlier row of its incident sits in the store unsent."""
        return row.incident_id is not None and (row.incident_id, row.channel) in self._in_store

    def _memory_due(self, channel: str, now: float | None) -> list[OutboxRow]:
        return [
            r for r in sorted(self.memory.rows.values(), key=lambda r: (r.not_before, r.id))
            if r.channel == channel and r.status == RowStatus.PENDING and (now is None or r.not_before <= now)
            and not self.memory._waits(r) and not self._blocked(r)
        ]

    def in_memory(self) -> int:
        """Rows waiting in memory (not yet sent, not yet spilled to the store)."""
        return sum(1 for r in self.memory.rows.values() if r.status != RowStatus.SENT)

    def _waiting_in_memory(self) -> bool:
        return any(r.status in (RowStatus.PENDING, RowStatus.SENDING) for r in self.memory.rows.values())

    async def _spill(self) -> None:
        """Store back: move rows still pending in memory into it, oldest first, in one transaction."""
        pending = sorted(
            (r for r in self.memory.rows.values() if r.status == RowStatus.PENDING and r.id in self._originals),
            key=lambda r: r.id,
        )
        if not pending:
            return
        now = self.clock.monotonic()
        if not self._store_ok() and now < self._next_spill:
            return
        self._next_spill = now + SPILL_RETRY_S
        rows = [replace(self._originals[r.id], not_before=r.not_before) for r in pending]
        try:
            ids = await self.store.outbox_enqueue(rows)
        except OutboxUnavailable:
            return
        self._track(ids, rows)
        for r in pending:
            self.memory.rows.pop(r.id, None)
            self.memory.due.pop(r.id, None)
            self._originals.pop(r.id, None)
        self.spilled_rows += len(pending)
        log.warning("notify: the store takes writes again; %d queued message(s) moved back to it", len(pending))

    async def flush(self) -> int:
        """At shutdown: one last try to move what waits in memory into the store; returns what is left
        (lost with the process, and said so in the log)."""
        self._next_spill = 0.0
        await self._spill()
        left = self.in_memory()
        if left:
            log.error("notify: %d message(s) still wait in memory and the store refuses them: they are lost "
                      "with this process", left)
        return left

    # -- OutboxRepository --

    async def outbox_enqueue(self, rows: Sequence[NewOutboxRow]) -> list[int]:
        await self._spill()
        if not self._waiting_in_memory():
            try:
                ids = await self.store.outbox_enqueue(rows)
                self._track(ids, rows)
                return ids
            except OutboxUnavailable as exc:
                reason = str(exc)
        else:
            reason = "earlier messages still wait in memory"  # keep per-incident order: queue behind them
        if self.in_memory() + len(rows) > MAX_MEMORY_ROWS:
            raise OutboxUnavailable(f"store failing and {MAX_MEMORY_ROWS} messages already wait in memory")
        ids = await self.memory.outbox_enqueue(rows)
        for rid, row in zip(ids, rows, strict=True):
            self._originals[rid] = row
        if self.fallback_rows == 0 or len(ids) == self.in_memory():
            log.warning("notify: the store refuses writes (%s); %d message(s) queued in memory", reason, len(ids))
        self.fallback_rows += len(ids)
        return [-i for i in ids]

    async def outbox_claim_due(self, channel: str, now: float, limit: int) -> list[OutboxRow]:
        await self._spill()
        mem = []
        for r in self._memory_due(channel, now)[:limit]:
            claimed = replace(r, status=RowStatus.SENDING.value, attempts=r.attempts + 1)
            self.memory.rows[r.id] = claimed
            mem.append(self._shown(claimed))
        if len(mem) >= limit:
            return mem
        return mem + await self.store.outbox_claim_due(channel, now, limit - len(mem))

    async def outbox_mark_sent(self, ids: Sequence[int], now: float, answer: str | None = None) -> None:
        stored, mem = self._split(ids)
        if stored:
            await self.store.outbox_mark_sent(stored, now, answer)
            self._untrack(stored)
        if mem:
            await self.memory.outbox_mark_sent(mem, now, answer)
            for i in mem:  # sent: nothing left to keep but who heard the firing (memory.fired)
                self.memory.rows.pop(i, None)
                self.memory.due.pop(i, None)
                self._originals.pop(i, None)

    async def outbox_mark_failed(
        self, ids: Sequence[int], now: float, error: str, next_attempt_at: float, *, dead: bool = False
    ) -> None:
        stored, mem = self._split(ids)
        if stored:
            await self.store.outbox_mark_failed(stored, now, error, next_attempt_at, dead=dead)
            if dead:
                self._untrack(stored)
        if mem:
            await self.memory.outbox_mark_failed(mem, now, error, next_attempt_at, dead=dead)

    async def outbox_release(self, ids: Sequence[int], next_attempt_at: float, error: str | None = None) -> None:
        stored, mem = self._split(ids)
        if stored:
            await self.store.outbox_release(stored, next_attempt_at, error)
        if mem:
            await self.memory.outbox_release(mem, next_attempt_at, error)

    async def outbox_requeue_inflight(self) -> int:
        return await self.store.outbox_requeue_inflight() + await self.memory.outbox_requeue_inflight()

    async def outbox_dead(self, channel: str | None = None) -> list[OutboxRow]:
        mem = [self._shown(r) for r in await self.memory.outbox_dead(channel)]
        return await self.store.outbox_dead(channel) + mem

    async def outbox_resend(self, ids: Sequence[int] | None = None, *, all_dead: bool = False, now: float) -> int:
        stored, mem = self._split(list(ids or ()))
        n = await self.store.outbox_resend(stored or None, all_dead=all_dead, now=now)
        return n + await self.memory.outbox_resend(mem or None, all_dead=all_dead, now=now)

    async def outbox_stats(self) -> dict[str, ChannelStats]:
        out = dict(await self.store.outbox_stats())
        for name, m in (await self.memory.outbox_stats()).items():
            s = out.get(name, ChannelStats())
            out[name] = replace(
                s,
                queued=s.queued + m.queued,
                sending=s.sending + m.sending,
                dead=s.dead + m.dead,
                failed_attempts=s.failed_attempts + m.failed_attempts,
                last_error=m.last_error or s.last_error,
            )
        return out

    async def outbox_mark_fired(self, incident_id: str, channel: str, fingerprint: str | None) -> None:
        await self.store.outbox_mark_fired(incident_id, channel, fingerprint)
        await self.memory.outbox_mark_fired(incident_id, channel, fingerprint)

    async def outbox_notified_channels(self, incident_id: str) -> set[str]:
        return await self.store.outbox_notified_channels(incident_id) | await self.memory.outbox_notified_channels(
            incident_id
        )

    async def outbox_cancel_pending(self, incident_id: str, channel: str, now: float) -> int:
        n = await self.store.outbox_cancel_pending(incident_id, channel, now)
        return n + await self.memory.outbox_cancel_pending(incident_id, channel, now)

    async def outbox_fired_channels(self, incident_id: str) -> set[str]:
        return await self.store.outbox_fired_channels(incident_id) | await self.memory.outbox_fired_channels(
            incident_id
        )

    async def outbox_attach_analysis(self, incident_id: str, text: str) -> set[str]:
        return await self.store.outbox_attach_analysis(incident_id, text) | await self.memory.outbox_attach_analysis(
            incident_id, text
        )

    async def outbox_next_due(self, channel: str) -> float | None:
        mem = self._memory_due(channel, None)
        dues = [d for d in (min((r.not_before for r in mem), default=None), await self.store.outbox_next_due(channel))
                if d is not None]
        return min(dues) if dues else None

    async def outbox_open_firing(self, channel: str) -> list[str]:
        return await self.store.outbox_open_firing(channel) + await self.memory.outbox_open_firing(channel)

    async def outbox_set_channel_state(self, channel: str, *, broken: bool, reason: str | None) -> None:
        await self.memory.outbox_set_channel_state(channel, broken=broken, reason=reason)
        await self.store.outbox_set_channel_state(channel, broken=broken, reason=reason)

    async def outbox_channel_states(self) -> dict[str, tuple[bool, str | None]]:
        return {**await self.store.outbox_channel_states(), **await self.memory.outbox_channel_states()}
