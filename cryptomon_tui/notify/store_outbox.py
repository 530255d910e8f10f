"""``OutboxRepository`` on the SQLite store, through the store's public methods only (its general
``outbox_*`` ones and the batched ``notify_*`` ones made for the notifier).

The store never raises storage errors (it returns a neutral value and reports health); a failed
enqueue must not look like success here, so it raises ``OutboxUnavailable`` and the notifier keeps
the rows in memory until the store takes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from cryptomon_tui.notify.model import ChannelStats, NewOutboxRow, OutboxRow
from cryptomon_tui.store.rows import NewOutboxMessage, OutboxMessage
from cryptomon_tui.store.store import Store


class OutboxUnavailable(Exception):
    """The store could not commit the rows (disk full, locked, read-only ...)."""


def _row(m: OutboxMessage) -> OutboxRow:
    payload = m.payload if isinstance(m.payload, dict) else {}
    notice = payload.get("notice", {})
    return OutboxRow(
        id=m.id,
        channel=m.channel,
        kind=m.event,
        incident_id=m.incident_id,
        fingerprint=m.fingerprint,
        group_key=str(payload.get("group", "")),
        payload=json.dumps(notice, ensure_ascii=False),
        idempotency_key=m.idempotency_key,
        status=m.state,
        attempts=m.attempts,
        not_before=m.next_attempt_at,
        created_at=m.created_at,
        last_error=m.last_error,
        sent_at=m.sent_at,
    )


class StoreOutbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def outbox_enqueue(self, rows: Sequence[NewOutboxRow]) -> list[int]:
        dicts: list[NewOutboxMessage] = [
            {
                "idempotency_key": r.idempotency_key,
                "channel": r.channel,
                "incident_id": r.incident_id,
                "fingerprint": r.fingerprint,
                "event": r.kind,
                "payload": {
                    "notice": json.loads(r.payload),
                    "group": r.group_key,
                    "due": r.not_before if r.due_at is None else r.due_at,
                },
                "next_attempt_at": r.not_before,
            }
            for r in rows
        ]
        now = rows[0].created_at if rows else 0.0
        ids = await self.store.notify_enqueue(dicts, now)
        if ids is None:
            raise OutboxUnavailable(self.store.health().last_error or "store unavailable")
        return list(ids)

    async def outbox_claim_due(self, channel: str, now: float, limit: int) -> list[OutboxRow]:
        return [_row(m) for m in await self.store.notify_claim_due(channel, now, limit)]

    async def outbox_mark_sent(self, ids: Sequence[int], now: float, answer: str | None = None) -> None:
        if ids:
            await self.store.notify_mark_sent(ids, now)

    async def outbox_mark_failed(
        self, ids: Sequence[int], now: float, error: str, next_attempt_at: float, *, dead: bool = False
    ) -> None:
        if ids:
            await self.store.notify_mark_failed(ids, error, next_attempt_at, dead)

    async def outbox_release(self, ids: Sequence[int], next_attempt_at: float, error: str | None = None) -> None:
        if ids:
            await self.store.notify_release(ids, next_attempt_at, error)

    async def outbox_requeue_inflight(self) -> int:
        return await self.store.outbox_requeue_inflight()

    async def outbox_dead(self, channel: str | None = None) -> list[OutboxRow]:
        return [_row(m) for m in await self.store.notify_dead(channel)]

    async def outbox_resend(self, ids: Sequence[int] | None = None, *, all_dead: bool = False, now: float) -> int:
        n = 0
        if all_dead:
            n += await self.store.outbox_resend(all_dead=True)
        if ids:
            n += await self.store.notify_resend(ids, now)
        return n

    async def outbox_stats(self) -> dict[str, ChannelStats]:
        out = {}
        for name, s in (await self.store.outbox_stats()).items():
            out[name] = ChannelStats(
                queued=s.pending,
                sending=s.sending,
                dead=s.dead,
                sent=s.sent,
                last_success=s.last_sent_at,
                last_error=s.last_error,
                last_error_at=s.last_error_at,
                failed_attempts=s.failed_attempts,
            )
        return out

    async def outbox_mark_fired(self, incident_id: str, channel: str, fingerprint: str | None) -> None:
        return None  # enqueue_many records it in the same transaction as the row

    async def outbox_notified_channels(self, incident_id: str) -> set[str]:
        return set(await self.store.notify_notified_channels(incident_id))

    async def outbox_cancel_pending(self, incident_id: str, channel: str, now: float) -> int:
        return await self.store.notify_cancel_pending(incident_id, channel, now)

    async def outbox_fired_channels(self, incident_id: str) -> set[str]:
        return set(await self.store.notify_fired_channels(incident_id))

    async def outbox_attach_analysis(self, incident_id: str, text: str) -> set[str]:
        return set(await self.store.notify_attach_analysis(incident_id, text))

    async def outbox_open_firing(self, channel: str) -> list[str]:
        payloads = await self.store.notify_open_firing(channel)
        return [json.dumps(p.get("notice", {}), ensure_ascii=False) for p in payloads]

    async def outbox_next_due(self, channel: str) -> float | None:
        return await self.store.notify_next_due(channel)

    async def outbox_set_channel_state(self, channel: str, *, broken: bool, reason: str | None) -> None:
        await self.store.notify_set_channel_state(channel, broken=broken, reason=reason)

    async def outbox_channel_states(self) -> dict[str, tuple[bool, str | None]]:
        return await self.store.notify_channel_states()
