"""The durable outbox contract the dispatcher relies on, and an in-memory twin for unit tests.

``cryptomon_tui.notify.store_outbox.StoreOutbox`` adapts the SQLite store to it. Rules every
implementation keeps: a row is committed before ``outbox_enqueue`` returns; ``claim`` moves rows to
``sending`` and counts the attempt, so a crash leaves them visible to ``outbox_requeue_inflight``;
nothing is dropped (a firing that was never due, resolved inside group_wait, is the one thing ``cancel``
withdraws); per channel and incident, rows are claimed in the order they were written, and a row waits
while an earlier one of its incident is queued, in flight, or a dead firing (a resolve never overtakes
its firing).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from cryptomon_tui.notify.model import ChannelStats, NewOutboxRow, OutboxRow, RowStatus

FIRING_KIND_VALUES = ("firing", "reopened", "reminder")
OPENING_KIND_VALUES = ("firing", "reopened")


@runtime_checkable
class OutboxRepository(Protocol):
    async def outbox_enqueue(self, rows: Sequence[NewOutboxRow]) -> list[int]: ...

    async def outbox_claim_due(self, channel: str, now: float, limit: int) -> list[OutboxRow]:
        """Pending rows of ``channel`` due by ``now`` and not waiting for an earlier row of their incident,
        oldest first, committed as ``sending`` with the attempt counted before anything is sent."""
        ...

    async def outbox_mark_sent(self, ids: Sequence[int], now: float, answer: str | None = None) -> None: ...

    async def outbox_mark_failed(
        self, ids: Sequence[int], now: float, error: str, next_attempt_at: float, *, dead: bool = False
    ) -> None:
        """Back to ``pending`` (due at ``next_attempt_at``) or, with ``dead``, a dead letter."""
        ...

    async def outbox_release(self, ids: Sequence[int], next_attempt_at: float, error: str | None = None) -> None:
        """Claimed but not (really) attempted: back to pending without using up an attempt."""
        ...

    async def outbox_requeue_inflight(self) -> int:
        """Rows a killed process left in ``sending`` go back to ``pending``; returns how many."""
        ...

    async def outbox_dead(self, channel: str | None = None) -> list[OutboxRow]: ...

    async def outbox_resend(self, ids: Sequence[int] | None = None, *, all_dead: bool = False, now: float) -> int:
        """Dead (or given) rows back to ``pending`` with a fresh attempt budget; returns how many."""
        ...

    async def outbox_stats(self) -> dict[str, ChannelStats]: ...

    async def outbox_mark_fired(self, incident_id: str, channel: str, fingerprint: str | None) -> None:
        """Remember (durably) that ``channel`` was told the incident fired, so it will hear the resolve."""
        ...

    async def outbox_notified_channels(self, incident_id: str) -> set[str]:
        """Channels told the incident fired (and not yet told it resolved)."""
        ...

    async def outbox_cancel_pending(self, incident_id: str, channel: str, now: float) -> int:
        """Withdraw a firing that is not due yet (resolved inside group_wait) and what was queued after it."""
        ...

    async def outbox_fired_channels(self, incident_id: str) -> set[str]:
        """Channels that were told (or have a due firing queued) that the incident fired, ever."""
        ...

    async def outbox_attach_analysis(self, incident_id: str, text: str) -> set[str]:
        """Put the verdict into firing rows not attempted yet; returns those rows' channels."""
        ...

    async def outbox_next_due(self, channel: str) -> float | None: ...

    async def outbox_open_firing(self, channel: str) -> list[str]:
        """Notice JSON of the latest firing row per incident the channel was told fired and not resolved."""
        ...

    async def outbox_set_channel_state(self, channel: str, *, broken: bool, reason: str | None) -> None: ...

    async def outbox_channel_states(self) -> dict[str, tuple[bool, str | None]]: ...


class InMemoryOutbox:
    """Same semantics as the SQLite outbox, minus the disk. For unit tests and dry runs."""

    def __init__(self) -> None:
        self.rows: dict[int, OutboxRow] = {}
        self.fired: dict[tuple[str, str], bool] = {}  # (incident, channel) -> resolved told?
        self.channel_states: dict[str, tuple[bool, str | None]] = {}
        self.due: dict[int, float] = {}
        self._next_id = 1

    async def outbox_enqueue(self, rows: Sequence[NewOutboxRow]) -> list[int]:
        ids = []
        for r in rows:
            rid = self._next_id
            self._next_id += 1
            self.rows[rid] = OutboxRow(
                id=rid,
                channel=r.channel,
                kind=r.kind,
                incident_id=r.incident_id,
                fingerprint=r.fingerprint,
                group_key=r.group_key,
                payload=r.payload,
                idempotency_key=r.idempotency_key,
                status=RowStatus.PENDING.value,
                attempts=0,
                not_before=r.not_before,
                created_at=r.created_at,
            )
            ids.append(rid)
            self.due[rid] = r.not_before if r.due_at is None else r.due_at
            if r.kind == "resolved" and r.incident_id:
                if (r.incident_id, r.channel) in self.fired:
                    self.fired[(r.incident_id, r.channel)] = True
            elif r.kind in FIRING_KIND_VALUES and r.incident_id:
                self.fired[(r.incident_id, r.channel)] = False
        return ids

    def _waits(self, r: OutboxRow) -> bool:
        """An earlier row of the same incident and channel is queued, in flight or a dead firing; or an
        earlier incident of the same fingerprint still has rows queued or in flight on the channel (unless
        it is parked behind a dead firing): a receiver keyed by fingerprint must hear the old incident's
        resolve before the new incident's firing (the SQLite outbox's ``_IN_ORDER`` says why)."""
        if r.incident_id is None:
            return False
        for p in self.rows.values():
            if p.id >= r.id or p.channel != r.channel or p.incident_id is None:
                continue
            if p.incident_id == r.incident_id:
                if p.status in (RowStatus.PENDING, RowStatus.SENDING) or (
                    p.status == RowStatus.DEAD and p.kind in OPENING_KIND_VALUES
                ):
                    return True
            elif (
                r.fingerprint
                and p.fingerprint == r.fingerprint
                and p.status in (RowStatus.PENDING, RowStatus.SENDING)
                and not self._parked(p.incident_id, p.channel)
            ):
                return True
        return False

    def _parked(self, incident_id: str, channel: str) -> bool:
        """The incident has a dead firing on the channel: its later rows wait for ``notify resend``."""
        return any(
            d.incident_id == incident_id
            and d.channel == channel
            and d.status == RowStatus.DEAD
            and d.kind in OPENING_KIND_VALUES
            for d in self.rows.values()
        )

    async def outbox_claim_due(self, channel: str, now: float, limit: int) -> list[OutboxRow]:
        due = [
            r
            for r in sorted(self.rows.values(), key=lambda r: (r.not_before, r.id))
            if r.channel == channel and r.status == RowStatus.PENDING and r.not_before <= now and not self._waits(r)
        ][:limit]
        out = []
        for r in due:
            claimed = replace(r, status=RowStatus.SENDING.value, attempts=r.attempts + 1)
            self.rows[r.id] = claimed
            out.append(claimed)
        return out

    async def outbox_mark_sent(self, ids: Sequence[int], now: float, answer: str | None = None) -> None:
        for i in ids:
            self.rows[i] = replace(self.rows[i], status=RowStatus.SENT.value, sent_at=now, answer=answer)

    async def outbox_mark_failed(
        self, ids: Sequence[int], now: float, error: str, next_attempt_at: float, *, dead: bool = False
    ) -> None:
        for i in ids:
            self.rows[i] = replace(
                self.rows[i],
                status=(RowStatus.DEAD if dead else RowStatus.PENDING).value,
                not_before=next_attempt_at,
                last_error=error,
            )

    async def outbox_release(self, ids: Sequence[int], next_attempt_at: float, error: str | None = None) -> None:
        for i in ids:
            r = self.rows[i]
            self.rows[i] = replace(
                r,
                status=RowStatus.PENDING.value,
                attempts=max(0, r.attempts - 1),
                not_before=next_attempt_at,
                last_error=error or r.last_error,
            )

    async def outbox_requeue_inflight(self) -> int:
        n = 0
        for i, r in list(self.rows.items()):
            if r.status == RowStatus.SENDING:
                self.rows[i] = replace(r, status=RowStatus.PENDING.value)
                n += 1
        return n

    async def outbox_dead(self, channel: str | None = None) -> list[OutboxRow]:
        return [
            r
            for r in sorted(self.rows.values(), key=lambda r: r.id)
            if r.status == RowStatus.DEAD and (channel is None or r.channel == channel)
        ]

    async def outbox_resend(self, ids: Sequence[int] | None = None, *, all_dead: bool = False, now: float) -> int:
        targets = {r.id for r in self.rows.values() if r.status == RowStatus.DEAD} if all_dead else set()
        for i in ids or ():
            if i in self.rows and self.rows[i].status in (RowStatus.DEAD, RowStatus.PENDING):
                targets.add(i)
        for i in targets:
            self.rows[i] = replace(self.rows[i], status=RowStatus.PENDING.value, attempts=0, not_before=now)
        return len(targets)

    async def outbox_stats(self) -> dict[str, ChannelStats]:
        out: dict[str, ChannelStats] = {}
        for r in sorted(self.rows.values(), key=lambda r: r.id):
            s = out.get(r.channel, ChannelStats())
            if r.status == RowStatus.PENDING:
                s = replace(s, queued=s.queued + 1)
            elif r.status == RowStatus.SENDING:
                s = replace(s, sending=s.sending + 1)
            elif r.status == RowStatus.DEAD:
                s = replace(s, dead=s.dead + 1)
            elif r.status == RowStatus.SENT:
                s = replace(s, sent=s.sent + 1, last_success=max(s.last_success or 0.0, r.sent_at or 0.0))
            if r.last_error:
                s = replace(s, last_error=r.last_error)
            s = replace(s, failed_attempts=s.failed_attempts + max(0, r.attempts - 1))
            out[r.channel] = s
        return out

    async def outbox_mark_fired(self, incident_id: str, channel: str, fingerprint: str | None) -> None:
        self.fired[(incident_id, channel)] = False

    async def outbox_notified_channels(self, incident_id: str) -> set[str]:
        return {ch for (inc, ch), resolved in self.fired.items() if inc == incident_id and not resolved}

    async def outbox_cancel_pending(self, incident_id: str, channel: str, now: float) -> int:
        mine = sorted((r for r in self.rows.values() if r.incident_id == incident_id and r.channel == channel),
                      key=lambda r: r.id)
        undue = [
            r.id
            for r in mine
            if r.status == RowStatus.PENDING
            and r.attempts == 0
            and r.kind in OPENING_KIND_VALUES
            and self.due.get(r.id, r.not_before) > now
        ]
        if not undue:
            return 0
        gone = [r.id for r in mine if r.id >= undue[0] and r.status == RowStatus.PENDING and r.attempts == 0]
        for i in gone:
            del self.rows[i]
        left = [r.kind for r in mine if r.id not in gone and r.kind in (*FIRING_KIND_VALUES, "resolved")]
        if not left:
            self.fired.pop((incident_id, channel), None)
        elif left[-1] == "resolved":
            self.fired[(incident_id, channel)] = True
        return len(gone)

    async def outbox_fired_channels(self, incident_id: str) -> set[str]:
        return {ch for (inc, ch) in self.fired if inc == incident_id}

    async def outbox_attach_analysis(self, incident_id: str, text: str) -> set[str]:
        out = set()
        for i, r in list(self.rows.items()):
            if (
                r.incident_id == incident_id
                and r.status == RowStatus.PENDING
                and r.attempts == 0
                and r.kind in OPENING_KIND_VALUES
            ):
                d = json.loads(r.payload)
                d["analysis"] = text
                self.rows[i] = replace(r, payload=json.dumps(d, separators=(",", ":"), ensure_ascii=False))
                out.add(r.channel)
        return out

    async def outbox_next_due(self, channel: str) -> float | None:
        due = [
            r.not_before
            for r in self.rows.values()
            if r.channel == channel and r.status == RowStatus.PENDING and not self._waits(r)
        ]
        return min(due) if due else None

    async def outbox_open_firing(self, channel: str) -> list[str]:
        latest: dict[str, OutboxRow] = {}
        for r in sorted(self.rows.values(), key=lambda r: r.id):
            told = r.incident_id is not None and self.fired.get((r.incident_id, channel)) is False
            if r.channel == channel and r.kind in FIRING_KIND_VALUES and told and r.incident_id:
                latest[r.incident_id] = r
        return [r.payload for r in latest.values()]

    async def outbox_set_channel_state(self, channel: str, *, broken: bool, reason: str | None) -> None:
        self.channel_states[channel] = (broken, reason)

    async def outbox_channel_states(self) -> dict[str, tuple[bool, str | None]]:
        return dict(self.channel_states)
