"""The delivery invariants of docs/notifications.md, one regression test per bug issue 12 reported
(each found by hand or by the stateful test in tests/unit/test_notify_stateful.py), on the in-memory
outbox and on the real SQLite one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cryptomon_tui.incidents.model import EventType, IncidentState
from cryptomon_tui.notify.channels.base import SendResult, Verdict
from cryptomon_tui.notify.model import NoticeKind
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.store.store import Store
from tests.unit.test_notify_notifier import Rig, ev, incident, make_config

pytestmark = pytest.mark.timeout(60)

DOWN = SendResult(Verdict.RETRY, "connection failed: ConnectError")


@pytest.fixture(params=["memory", "sqlite"])
async def make_rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    stores: list[Store] = []

    async def make(**cfg: object) -> Rig:
        rig = Rig(make_config(**cfg))
        if request.param == "sqlite":
            store = Store(path=tmp_path / "db.sqlite3")
            assert await store.open(background=False)
            stores.append(store)
            rig.outbox = StoreOutbox(store)  # type: ignore[assignment]
            rig.notifier.outbox = rig.outbox
        return rig

    yield make
    for s in stores:
        await s.close()


async def drain(rig: Rig, seconds: float, step: float = 1.0) -> None:
    """Advance the injected clock, dispatching every channel after each step (no background workers)."""
    t = 0.0
    while t < seconds:
        await rig.clock.advance(step)
        t += step
        for name in rig.notifier.channels:
            for _ in range(50):
                if await rig.notifier.dispatch_once(name) > 0:
                    break


def seq(rig: Rig, ch: str) -> list[tuple[str, str]]:
    return [(n.kind.value, n.incident_id) for n, _ in rig.ch[ch].sent]


async def test_due_firing_of_a_resolved_incident_is_delivered_then_resolved(make_rig) -> None:  # type: ignore[no-untyped-def]
    """Was: the channel was down when group_wait ended, the incident resolved, the firing row was deleted."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}], backoff_base=1, backoff_cap=5)
    await rig.notifier.start(workers=False)
    ch = rig.ch["ops"]
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    ch.script.extend([DOWN] * 3)
    await drain(rig, 12)  # due at 10 s: tried and refused (the receiver is down)
    resolved = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now())
    await rig.notifier.on_event(ev(EventType.RESOLVED, resolved, rig.now()))
    await drain(rig, 60)
    delivered = [k for k, _ in seq(rig, "ops")][len([1 for n, _ in ch.sent]) - 2 :]
    assert delivered == ["firing", "resolved"]
    await rig.notifier.stop()


async def test_due_but_not_yet_tried_firing_survives_the_resolve(make_rig) -> None:  # type: ignore[no-untyped-def]
    """Was: a firing due while the channel was paused by a 429 was withdrawn with its resolve."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}])
    await rig.notifier.start(workers=False)
    ch = rig.ch["ops"]
    await rig.notifier.on_event(ev(EventType.OPENED, incident(1, exchange="okx"), rig.now()))
    ch.script.append(SendResult(Verdict.RETRY, "429", retry_after=120.0, rate_limited=True))
    await drain(rig, 11)  # inc-1's firing hits the 429: the channel pauses 120 s
    inc = incident(2)
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await drain(rig, 20)  # inc-2 is due now, but the channel is paused: never tried
    await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 200)
    assert [x for x in seq(rig, "ops") if x[1] == "inc-2"] == [("firing", "inc-2"), ("resolved", "inc-2")]
    await rig.notifier.stop()


async def test_resolve_never_overtakes_its_firing_after_backoff(make_rig) -> None:  # type: ignore[no-untyped-def]
    """Was: the firing backed off into the future, the resolve (due now) went first."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": 0}], backoff_base=30, backoff_cap=60)
    await rig.notifier.start(workers=False)
    ch = rig.ch["ops"]
    ch.script.append(SendResult(Verdict.RETRY, "503", status=503))
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await drain(rig, 2)
    await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 120)
    assert seq(rig, "ops") == [("firing", "inc-1"), ("firing", "inc-1"), ("resolved", "inc-1")]
    await rig.notifier.stop()


async def test_reopened_only_to_channels_that_heard_the_firing(make_rig) -> None:  # type: ignore[no-untyped-def]
    """Was: an incident resolved inside group_wait came back and the channel got REOPENED first."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}])
    await rig.notifier.start(workers=False)
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await drain(rig, 3)
    await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 3)
    await rig.notifier.on_event(ev(EventType.REOPENED, inc, rig.now()))
    await drain(rig, 15)
    assert seq(rig, "ops") == [("firing", "inc-1")]
    await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 3)
    await rig.notifier.on_event(ev(EventType.REOPENED, inc, rig.now()))
    await drain(rig, 15)
    assert [k for k, _ in seq(rig, "ops")] == ["firing", "resolved", "reopened"]
    await rig.notifier.stop()


async def test_reopen_withdrawn_inside_group_wait_sends_no_second_resolve(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}])
    await rig.notifier.start(workers=False)
    inc = incident()
    resolved = inc.with_changes(state=IncidentState.RESOLVED)
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await drain(rig, 12)
    await rig.notifier.on_event(ev(EventType.RESOLVED, resolved, rig.now()))
    await rig.notifier.on_event(ev(EventType.REOPENED, inc, rig.now()))
    await drain(rig, 2)
    await rig.notifier.on_event(ev(EventType.RESOLVED, resolved, rig.now()))
    await drain(rig, 30)
    assert [k for k, _ in seq(rig, "ops")] == ["firing", "resolved"]
    await rig.notifier.stop()


async def test_ack_inside_group_wait_is_withdrawn_with_the_firing(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}])
    await rig.notifier.start(workers=False)
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    acked = inc.with_changes(state=IncidentState.ACKNOWLEDGED, acknowledged_by="bob")
    await rig.notifier.on_event(ev(EventType.ACKNOWLEDGED, acked, rig.now(), actor="bob"))
    await drain(rig, 2)
    await rig.notifier.on_event(ev(EventType.RESOLVED, acked.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 30)
    assert seq(rig, "ops") == []
    await rig.notifier.stop()


async def test_late_verdict_rides_along_or_follows_as_an_update(make_rig) -> None:  # type: ignore[no-untyped-def]
    rig = await make_rig(routes=[{"channels": ["ops", "pager"], "group_wait": 0}])
    await rig.notifier.start(workers=False)
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await rig.notifier.dispatch_once("ops")  # ops got the firing at once; pager not yet
    await rig.notifier.on_analysis(inc, {"summary": "binance gateway 502s: wait"})
    await drain(rig, 2)
    ops, pager = rig.ch["ops"].sent, rig.ch["pager"].sent
    assert [n.kind for n, _ in ops] == [NoticeKind.FIRING, NoticeKind.ANALYSIS]
    assert ops[0][0].analysis is None and ops[1][0].analysis == "binance gateway 502s: wait"
    assert [n.kind for n, _ in pager] == [NoticeKind.FIRING] and pager[0][0].analysis == "binance gateway 502s: wait"
    await rig.notifier.stop()


async def test_firings_queued_behind_a_broken_channel_survive_their_resolve(make_rig) -> None:  # type: ignore[no-untyped-def]
    """Found by the stateful test: a broken channel tries one message per 10 min, so the other due
    firings were never attempted, and a resolve in between withdrew them (and their resolve)."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": "10s"}])
    await rig.notifier.start(workers=False)
    ch = rig.ch["ops"]
    ch.script.append(SendResult(Verdict.BROKEN, "401 invalid token"))
    first, second = incident(1, exchange="okx"), incident(2)
    await rig.notifier.on_event(ev(EventType.OPENED, first, rig.now()))
    await rig.notifier.on_event(ev(EventType.OPENED, second, rig.now()))
    await drain(rig, 30)  # both due; one tried (broken), the other waits for the half-open retry
    for inc in (first, second):
        await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 700, step=10)
    got = seq(rig, "ops")[1:]
    for n in ("inc-1", "inc-2"):
        assert [k for k, i in got if i == n] == ["firing", "resolved"], got
    await rig.notifier.stop()


async def test_resolve_waits_behind_a_dead_firing_until_it_is_resent(make_rig) -> None:  # type: ignore[no-untyped-def]
    """A firing the service refused for good (dead letter) keeps its resolve queued: the channel never heard
    it fire. ``notify resend`` sends the firing, then the resolve follows."""
    rig = await make_rig(routes=[{"channels": ["ops"], "group_wait": 0}])
    await rig.notifier.start(workers=False)
    ch = rig.ch["ops"]
    ch.script.append(SendResult(Verdict.REJECTED, "400 invalid payload", status=400))
    inc = incident()
    await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
    await drain(rig, 2)
    await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
    await drain(rig, 60)
    assert seq(rig, "ops") == [("firing", "inc-1")]  # the refused attempt; no resolve without a firing
    (dead,) = await rig.outbox.outbox_dead()
    assert await rig.notifier.resend(dead.id) == 1
    await drain(rig, 5)
    assert seq(rig, "ops") == [("firing", "inc-1"), ("firing", "inc-1"), ("resolved", "inc-1")]
    await rig.notifier.stop()
