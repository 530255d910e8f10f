"""The notifier on the real SQLite store (StoreOutbox + repo_notify): the same rules as in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cryptomon_tui.incidents.model import EventType, IncidentState
from cryptomon_tui.notify.channels.base import SendResult, Verdict
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.store.store import Store
from tests.unit.test_notify_notifier import Rig, ev, incident, make_config


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(path=tmp_path / "db.sqlite3")
    assert await s.open(background=False)
    yield s
    await s.close()


def rig_on(store: Store, **cfg: object) -> Rig:
    rig = Rig(make_config(**cfg))
    rig.outbox = StoreOutbox(store)  # type: ignore[assignment]
    rig.notifier.outbox = rig.outbox
    rig.io_wait = 0.02
    return rig


async def test_group_wait_cancel_resolve_and_restart_on_store(store: Store) -> None:
    async with rig_on(store) as rig:
        quick = incident(1)
        await rig.notifier.on_event(ev(EventType.OPENED, quick, rig.now()))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(2, exchange="okx"), rig.now()))
        await rig.advance(2)
        await rig.notifier.on_event(ev(EventType.RESOLVED, quick.with_changes(state=IncidentState.RESOLVED), rig.now()))
        await rig.advance(20)
        assert [(n.kind.value, n.incident_id) for n, _ in rig.ch["ops"].sent] == [("firing", "inc-2")]
    async with rig_on(store) as rig2:  # a restarted process: only the store remembers who was told
        resolved = incident(2, exchange="okx").with_changes(state=IncidentState.RESOLVED)
        await rig2.notifier.on_event(ev(EventType.RESOLVED, resolved, rig2.now()))
        await rig2.advance(2)
        assert [(n.kind.value, n.incident_id) for n, _ in rig2.ch["ops"].sent] == [("resolved", "inc-2")]
        stats = await store.outbox_stats()
        assert stats["ops"].sent == 2 and stats["ops"].pending == 0


async def test_dead_letters_resend_and_broken_state_survive_on_store(store: Store) -> None:
    cfg = {"routes": [{"channels": ["ops"], "group_wait": 0}], "max_attempts": 2, "backoff_base": 1, "backoff_cap": 2}
    async with rig_on(store, **cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.extend([SendResult(Verdict.RETRY, "500 a"), SendResult(Verdict.RETRY, "500 b")])
        await rig.notifier.on_event(ev(EventType.OPENED, incident(1), rig.now()))
        await rig.advance(10)
        dead = await rig.outbox.outbox_dead()
        assert [d.incident_id for d in dead] == ["inc-1"] and "500 b" in (dead[0].last_error or "")
        assert await rig.notifier.resend(dead[0].id) == 1
        await rig.advance(2)
        assert len(ch.sent) == 3 and not await rig.outbox.outbox_dead()
        ch.script.append(SendResult(Verdict.BROKEN, "403 invalid key"))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(2, exchange="okx"), rig.now()))
        await rig.advance(2)
        assert rig.broken == [("ops", "403 invalid key")]
    assert await rig.outbox.outbox_channel_states() == {"ops": (True, "403 invalid key")}
    async with rig_on(store, **cfg) as rig2:
        await rig2.advance(20)  # broken at the last stop: one message is tried at once, and it works now
        assert [n.incident_id for n, _ in rig2.ch["ops"].sent] == ["inc-2"]
        assert rig2.recovered == ["ops"]
    assert await rig2.outbox.outbox_channel_states() == {"ops": (False, None)}
