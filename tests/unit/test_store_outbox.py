"""Outbox durability and lifecycle, notification log, analyses and the LLM ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.store import Store
from tests.unit.store_helpers import T0


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(StorageConfig(path=tmp_path / "db.sqlite3"), FakeClock(T0))
    assert await s.open(background=False)
    yield s
    await s.close()


async def test_enqueue_is_committed_before_it_returns(store: Store) -> None:
    # a second connection (another process, in real life) sees the row the moment enqueue returns
    other = sqlite3.connect(store.path)
    msg_id = await store.outbox_enqueue(
        idempotency_key="inc-1:slack:opened", channel="slack", incident_id="inc-1", fingerprint="fp",
        event="opened", payload={"text": "binance down"},
    )  # fmt: skip
    assert msg_id is not None
    row = other.execute("SELECT channel, state, payload FROM outbox WHERE id = ?", (msg_id,)).fetchone()
    assert row == ("slack", "pending", '{"text":"binance down"}')
    other.close()


async def test_idempotency_key_is_unique(store: Store) -> None:
    a = await store.outbox_enqueue(idempotency_key="k1", channel="slack", event="opened", payload={})
    b = await store.outbox_enqueue(idempotency_key="k1", channel="slack", event="opened", payload={"other": 1})
    assert a == b
    assert len(await store.outbox_pending()) == 1


async def test_claim_send_fail_dead_resend(store: Store) -> None:
    first = await store.outbox_enqueue(idempotency_key="a", channel="discord", event="opened", payload={})
    later = await store.outbox_enqueue(
        idempotency_key="b", channel="discord", event="opened", payload={}, next_attempt_at=T0 + 60
    )
    claimed = await store.outbox_claim_due(T0, limit=10)
    assert [m.id for m in claimed] == [first]
    assert claimed[0].state == "sending" and claimed[0].attempts == 1
    assert await store.outbox_claim_due(T0, limit=10) == []  # claimed rows are not handed out twice
    await store.outbox_mark_failed(first, "HTTP 503", next_attempt_at=T0 + 5, dead=False)  # type: ignore[arg-type]
    assert [m.id for m in await store.outbox_claim_due(T0 + 60, limit=10)] == [first, later]
    await store.outbox_mark_sent(later, T0 + 61)  # type: ignore[arg-type]
    await store.outbox_mark_failed(first, "401 invalid webhook", next_attempt_at=T0 + 99, dead=True)  # type: ignore[arg-type]
    dead = await store.outbox_dead()
    assert [(m.id, m.state, m.attempts, m.last_error) for m in dead] == [(first, "dead", 2, "401 invalid webhook")]
    stats = (await store.outbox_stats())["discord"]
    assert (stats.pending, stats.sending, stats.sent, stats.dead) == (0, 0, 1, 1)
    assert stats.last_sent_at == T0 + 61 and stats.last_error == "401 invalid webhook"
    assert await store.outbox_resend(all_dead=True) == 1
    again = await store.outbox_get(first)  # type: ignore[arg-type]
    assert again is not None and again.state == "pending" and again.attempts == 0
    assert await store.outbox_resend(later) == 0  # a sent message is not resent by id


async def test_inflight_messages_are_requeued_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    first = Store(StorageConfig(path=path), FakeClock(T0))
    await first.open(background=False)
    msg = await first.outbox_enqueue(idempotency_key="k", channel="slack", event="resolved", payload={})
    assert [m.id for m in await first.outbox_claim_due(T0, 10)] == [msg]
    # the process dies here: no mark_sent / mark_failed. Simulate by dropping the store without cleanup.
    assert first._writer is not None and first._reader is not None
    first._writer.stop()
    first._reader.stop()

    second = Store(StorageConfig(path=path), FakeClock(T0 + 10))
    await second.open(background=False)
    assert await second.outbox_claim_due(T0 + 10, 10) == []
    assert await second.outbox_requeue_inflight() == 1
    again = await second.outbox_claim_due(T0 + 10, 10)
    assert [(m.id, m.attempts) for m in again] == [(msg, 2)]
    await second.close()


async def test_notification_log_tracks_who_must_hear_the_resolution(store: Store) -> None:
    await store.notification_fired("inc-1", "slack", "fp1")
    await store.notification_fired("inc-1", "email", "fp1")
    await store.notification_resolved("inc-1", "slack")
    entries = {e.channel: e for e in await store.notification_log("inc-1")}
    assert entries["slack"].fired_notified and entries["slack"].resolved_notified
    assert entries["email"].fired_notified and not entries["email"].resolved_notified
    assert [(e.incident_id, e.channel) for e in await store.notification_fired_unresolved()] == [("inc-1", "email")]
    # a reopen fires again: the resolution is owed again
    await store.notification_fired("inc-1", "slack", "fp1")
    assert {e.channel for e in await store.notification_fired_unresolved()} == {"email", "slack"}


async def test_analyses_and_llm_ledger(store: Store) -> None:
    await store.analyses_put("inc-1", {"root_cause": "dns"}, source="offline", created_at=T0)
    await store.analyses_put("inc-1", {"root_cause": "ban"}, source="deepseek-chat", model="deepseek-chat",
                             cost_usd=Decimal("0.000420"), created_at=T0 + 5)  # fmt: skip
    latest = await store.analyses_latest("inc-1")
    assert latest is not None and latest.result == {"root_cause": "ban"} and latest.cost_usd == Decimal("0.000420")
    offline = await store.analyses_latest("inc-1", source="offline")
    assert offline is not None and offline.cost_usd is None
    assert await store.analyses_latest("inc-2") is None
    await store.llm_usage_add(model="gpt-4.1", provider="openai", tokens_in=1200, tokens_out=300,
                              cost_usd=Decimal("0.0048"), incident_id="inc-1", purpose="analysis", ts=T0)  # fmt: skip
    await store.llm_usage_add(model="gpt-4.1", tokens_in=1, tokens_out=1, cost_usd=Decimal("0.1"), ts=T0 + 86400 * 40)
    rows = await store.llm_usage_between(T0 - 1, T0 + 86400)
    assert len(rows) == 1
    assert rows[0].cost_usd == Decimal("0.0048") and isinstance(rows[0].cost_usd, Decimal)
    assert (rows[0].tokens_in, rows[0].tokens_out, rows[0].purpose) == (1200, 300, "analysis")
