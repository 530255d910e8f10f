"""Two incidents of one problem in a row (issue 14: a fault back after a quiet spell is a new incident
with the same fingerprint): receivers that key alerts by fingerprint (PagerDuty's dedup_key, Alertmanager's
labels) must never get the first incident's resolve after the second one's firing, or they would close
the alert that is firing again. On the in-memory outbox and on the real SQLite one."""

from __future__ import annotations

import pytest

from cryptomon_tui.incidents.model import EventType, IncidentState
from cryptomon_tui.notify.channels.base import SendResult, Verdict
from cryptomon_tui.notify.model import Notice
from tests.unit.test_notify_delivery_invariants import drain, make_rig  # noqa: F401  (make_rig: fixture)
from tests.unit.test_notify_notifier import Rig, ev, incident

pytestmark = pytest.mark.timeout(60)

DOWN = SendResult(Verdict.RETRY, "connection failed: ConnectError")


def _down_until(rig: Rig, name: str, until: float) -> list[Notice]:
    """The channel refuses every send before ``until``; returns the notices it took, in order."""
    ch = rig.ch[name]
    delivered: list[Notice] = []

    async def send(notice: Notice, idempotency_key: str) -> SendResult:
        ch.sent.append((notice, idempotency_key))
        if rig.clock.now() < until:
            return DOWN
        delivered.append(notice)
        return SendResult(Verdict.SUCCESS, "ok")

    ch._send = send  # type: ignore[method-assign]
    return delivered


def _receiver_state(delivered: list[Notice]) -> dict[str, str]:
    """What a fingerprint-keyed receiver (PagerDuty, Alertmanager) ends with per fingerprint."""
    state: dict[str, str] = {}
    for n in delivered:
        if n.kind.value in ("firing", "reopened", "reminder"):
            state[n.fingerprint] = "open"
        elif n.kind.value == "resolved":
            state[n.fingerprint] = "closed"
    return state


@pytest.mark.parametrize("second_resolves", [False, True])
async def test_a_late_resolve_of_the_first_incident_never_follows_the_second_ones_firing(
    make_rig, second_resolves: bool  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    rig = await make_rig(
        routes=[{"channels": ["ops"], "group_wait": "10s", "group_interval": "1m"}], backoff_base=2, backoff_cap=300
    )
    await rig.notifier.start(workers=False)
    first = incident(1)
    second = first.with_changes(id="inc-2", started_at=first.started_at + 120)
    assert second.fingerprint == first.fingerprint
    await rig.notifier.on_event(ev(EventType.OPENED, first, rig.now()))
    await drain(rig, 12)  # the first firing is delivered
    delivered = _down_until(rig, "ops", rig.now() + 150)  # then the receiver goes away for 150 s
    await rig.notifier.on_event(
        ev(EventType.RESOLVED, first.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now()), rig.now())
    )
    await drain(rig, 108)  # the resolve keeps failing and backs off
    await rig.notifier.on_event(ev(EventType.OPENED, second.with_changes(started_at=rig.now()), rig.now()))
    await drain(rig, 60)
    if second_resolves:
        done = second.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now())
        await rig.notifier.on_event(ev(EventType.RESOLVED, done, rig.now()))
    await drain(rig, 700)
    order = [(n.kind.value, n.incident_id) for n in delivered]
    expected = [("resolved", "inc-1"), ("firing", "inc-2")] + ([("resolved", "inc-2")] if second_resolves else [])
    assert order == expected
    assert _receiver_state(delivered) == {first.fingerprint: "closed" if second_resolves else "open"}
    await rig.notifier.stop()


async def test_an_earlier_incident_parked_behind_a_dead_firing_does_not_hold_the_next_one(  # type: ignore[no-untyped-def]
    make_rig,  # noqa: F811
) -> None:
    """A due firing is always delivered: the first incident's resolve waits for `notify resend` of its dead
    firing, and the second incident of the same fingerprint must not wait behind it."""
    rig = await make_rig(
        routes=[{"channels": ["ops"], "group_wait": "0s"}], backoff_base=1, backoff_cap=5, max_attempts=2
    )
    await rig.notifier.start(workers=False)
    first = incident(1)
    delivered = _down_until(rig, "ops", rig.now() + 60)
    await rig.notifier.on_event(ev(EventType.OPENED, first, rig.now()))
    await drain(rig, 30)  # two refused attempts: the firing is a dead letter
    assert [r.kind for r in await rig.outbox.outbox_dead("ops")] == ["firing"]
    await rig.notifier.on_event(
        ev(EventType.RESOLVED, first.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now()), rig.now())
    )
    await drain(rig, 60)
    second = first.with_changes(id="inc-2", started_at=rig.now())
    await rig.notifier.on_event(ev(EventType.OPENED, second, rig.now()))
    await drain(rig, 30)
    assert [(n.kind.value, n.incident_id) for n in delivered] == [("firing", "inc-2")]
    await rig.notifier.stop()
