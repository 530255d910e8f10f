"""Notifier logic on a fake clock with scripted in-process channels: routing, grouping, digests,
reminders, ack/resolve rules, quiet hours, backoff, dead letters, broken channels, restarts."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from typing import Any

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels.base import Channel, SendResult, Verdict
from cryptomon_tui.notify.model import Notice, NoticeKind
from cryptomon_tui.notify.notifier import BROKEN_RETRY_S, Notifier
from cryptomon_tui.notify.outbox import InMemoryOutbox

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


class ScriptedChannel(Channel):
    """Records what it was asked to send; answers from a script, then success."""

    type = "webhook"
    default_rate = (100.0, 1.0, 100)

    def __init__(self, name: str, base: Channel, supports_digest: bool = True) -> None:
        super().__init__(name, base.config, base.clock, base.location)
        self.sent: list[tuple[Notice, str]] = []
        self.script: deque[SendResult] = deque()
        self.supports_digest = supports_digest  # type: ignore[misc]

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        self.sent.append((notice, idempotency_key))
        if self.script:
            return self.script.popleft()
        return SendResult(Verdict.SUCCESS, "ok")

    def kinds(self) -> list[str]:
        return [n.kind.value for n, _ in self.sent]


def make_config(**notify: Any) -> Any:
    base: dict[str, Any] = {
        "channels": {
            "ops": {"type": "webhook", "url": "http://127.0.0.1:1/webhook/SECRETPATH"},
            "pager": {"type": "webhook", "url": "http://127.0.0.1:1/webhook/other"},
        },
        "routes": [{"channels": ["ops"], "group_wait": "10s", "group_interval": "1m"}],
        "poll_interval": "30s",  # new rows wake the workers; the poll only finds rows others wrote
    }
    base.update(notify)
    return config_from_data({"notify": base})


def incident(n: int = 1, exchange: str = "binance", severity: Severity = Severity.ERROR, **kw: Any) -> Incident:
    rule = kw.pop("rule", "endpoint_down")
    labels = {"exchange": exchange, "probe": "ping"}
    return Incident(
        id=f"inc-{n}",
        fingerprint=fingerprint(rule, {**labels, "n": str(n)}),
        rule=rule,
        severity=severity,
        exchange=exchange,
        probe="ping",
        state=kw.pop("state", IncidentState.FIRING),
        summary=kw.pop("summary", f"{exchange} ping failing ({n})"),
        started_at=kw.pop("started_at", T0),
        updated_at=T0,
        labels=labels,
        **kw,
    )


def ev(kind: EventType, inc: Incident, ts: float, actor: str | None = None) -> IncidentEvent:
    return IncidentEvent(ts=ts, event=kind, incident=inc, actor=actor)


class Rig:
    def __init__(self, config: Any, supports_digest: bool = True) -> None:
        self.clock = FakeClock(T0)
        self.outbox = InMemoryOutbox()
        self.broken: list[tuple[str, str]] = []
        self.recovered: list[str] = []

        async def on_broken(name: str, reason: str) -> None:
            self.broken.append((name, reason))

        self.notifier = Notifier(
            config,
            self.outbox,
            self.clock,
            on_broken,
            lambda name, _r: self.recovered.append(name),
        )
        self.ch: dict[str, ScriptedChannel] = {}
        for name, base in list(self.notifier.channels.items()):
            fake = ScriptedChannel(name, base, supports_digest)
            self.notifier.channels[name] = fake
            self.ch[name] = fake

    async def __aenter__(self) -> Rig:
        await self.notifier.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.notifier.stop()

    io_wait = 0.0  # real seconds to let thread-backed I/O (the SQLite store) finish between fake steps

    async def advance(self, seconds: float, step: float = 5.0) -> None:
        if not self.io_wait:
            await self.clock.advance(seconds, step=step)
            for _ in range(5):
                await asyncio.sleep(0)
            return
        left = seconds
        while left > 0:
            step = min(0.5, left)
            await self.clock.advance(step)
            await asyncio.sleep(self.io_wait)
            left -= step
        await asyncio.sleep(self.io_wait)

    def now(self) -> float:
        return self.clock.now()


async def test_group_wait_then_one_firing_and_one_resolved() -> None:
    async with Rig(make_config()) as rig:
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(5)
        assert rig.ch["ops"].sent == []  # still inside group_wait
        await rig.advance(6)
        assert rig.ch["ops"].kinds() == ["firing"]
        assert rig.ch["pager"].sent == []  # not routed there
        await rig.advance(30)
        resolved = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now())
        await rig.notifier.on_event(ev(EventType.RESOLVED, resolved, rig.now()))
        await rig.advance(1)
        assert rig.ch["ops"].kinds() == ["firing", "resolved"]
        notice = rig.ch["ops"].sent[1][0]
        assert notice.incident["id"] == "inc-1"


async def test_resolved_inside_group_wait_sends_nothing() -> None:
    async with Rig(make_config()) as rig:
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(3)
        await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
        await rig.advance(60)
        assert rig.ch["ops"].sent == []


async def test_storm_inside_group_window_becomes_one_digest() -> None:
    async with Rig(make_config()) as rig:
        for n in range(12):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n), rig.now()))
            await rig.advance(0.5)
        await rig.advance(10)
        sent = rig.ch["ops"].sent
        assert [n.kind for n, _ in sent] == [NoticeKind.DIGEST]
        digest = sent[0][0]
        assert len(digest.items) == 12 and len(digest.member_keys) == 12
        assert all(r.status == "sent" for r in rig.outbox.rows.values())


async def test_digest_not_used_for_channels_that_group_themselves() -> None:
    async with Rig(make_config(), supports_digest=False) as rig:
        for n in range(7):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n), rig.now()))
        await rig.advance(15)
        assert rig.ch["ops"].kinds() == ["firing"] * 7


async def test_silenced_and_maintenance_incidents_are_not_notified() -> None:
    async with Rig(make_config()) as rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(1, silenced_by="s1"), rig.now()))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(2, in_maintenance=True), rig.now()))
        await rig.advance(30)
        assert rig.ch["ops"].sent == []
        # lifting the silence while it still fires tells the channel now
        await rig.notifier.on_event(ev(EventType.UNSILENCED, incident(1), rig.now()))
        await rig.advance(15)
        assert rig.ch["ops"].kinds() == ["firing"]


async def test_resolve_reaches_every_channel_told_even_after_silence_and_ack() -> None:
    cfg = make_config(routes=[{"channels": ["ops", "pager"], "group_wait": 0}])
    async with Rig(cfg) as rig:
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(1)
        acked = inc.with_changes(state=IncidentState.ACKNOWLEDGED, acknowledged_by="alice")
        await rig.notifier.on_event(ev(EventType.ACKNOWLEDGED, acked, rig.now(), actor="alice"))
        silenced = acked.with_changes(silenced_by="s9")
        await rig.notifier.on_event(ev(EventType.SILENCED, silenced, rig.now()))
        await rig.advance(1)
        resolved = silenced.with_changes(state=IncidentState.RESOLVED, resolved_at=rig.now())
        await rig.notifier.on_event(ev(EventType.RESOLVED, resolved, rig.now()))
        await rig.advance(1)
        for name in ("ops", "pager"):
            assert rig.ch[name].kinds() == ["firing", "acknowledged", "resolved"], name


async def test_resolve_after_restart_uses_the_persisted_log() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    rig = Rig(cfg)
    async with rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
        await rig.advance(1)
    # a new notifier on the same outbox, knowing nothing in memory
    rig2 = Rig(cfg)
    rig2.outbox = rig.outbox
    rig2.notifier.outbox = rig.outbox
    async with rig2:
        resolved = incident().with_changes(state=IncidentState.RESOLVED)
        await rig2.notifier.on_event(ev(EventType.RESOLVED, resolved, rig2.now()))
        await rig2.advance(1)
        assert rig2.ch["ops"].kinds() == ["resolved"]


async def test_reminders_are_capped_and_stop_on_ack() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0, "reminder_interval": "10m", "max_reminders": 2}])
    async with Rig(cfg) as rig:
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(1)
        await rig.advance(11 * 60)
        assert rig.ch["ops"].kinds() == ["firing", "reminder"]
        assert "still failing for 10m" in (rig.ch["ops"].sent[1][0].text or "")
        await rig.advance(60 * 60, step=60)
        assert rig.ch["ops"].kinds() == ["firing", "reminder", "reminder"]  # capped at 2

    async with Rig(cfg) as rig:
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(60)
        acked = inc.with_changes(state=IncidentState.ACKNOWLEDGED, acknowledged_by="bob")
        await rig.notifier.on_event(ev(EventType.ACKNOWLEDGED, acked, rig.now(), actor="bob"))
        await rig.advance(3 * 3600, step=60)
        assert rig.ch["ops"].kinds() == ["firing", "acknowledged"]


async def test_routes_match_labels_and_continue() -> None:
    cfg = make_config(
        routes=[
            {"match": {"severity": ["critical"]}, "channels": ["pager"], "group_wait": 0, "continue": True},
            {"match": {"exchange": ["binance"]}, "channels": ["ops"], "group_wait": 0},
        ]
    )
    async with Rig(cfg) as rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(1, severity=Severity.CRITICAL), rig.now()))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(2, exchange="okx"), rig.now()))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(3), rig.now()))
        await rig.advance(2)
        assert sorted(n.incident_id for n, _ in rig.ch["pager"].sent) == ["inc-1"]
        assert sorted(n.incident_id for n, _ in rig.ch["ops"].sent) == ["inc-1", "inc-3"]


async def test_quiet_hours_hold_non_critical_and_let_critical_pass() -> None:
    # T0 is 22:13 UTC: inside 22:00-07:00
    cfg = make_config(
        channels={
            "ops": {"type": "webhook", "url": "http://127.0.0.1:1/w", "quiet_hours": {"start": "22:00", "end": "07:00"}}
        },
        routes=[{"channels": ["ops"], "group_wait": 0, "max_reminders": 0}],
    )
    async with Rig(cfg) as rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(1, severity=Severity.WARNING), rig.now()))
        await rig.notifier.on_event(
            ev(EventType.OPENED, incident(2, exchange="okx", severity=Severity.CRITICAL), rig.now())
        )
        await rig.advance(60)
        assert [n.incident_id for n, _ in rig.ch["ops"].sent] == ["inc-2"]
        await rig.advance(9 * 3600, step=60)  # past 07:00
        assert [n.incident_id for n, _ in rig.ch["ops"].sent] == ["inc-2", "inc-1"]


async def test_local_network_incident_holds_back_exchange_incidents() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    async with Rig(cfg) as rig:
        local = incident(100, exchange="", rule="local_network").with_changes(exchange=None)
        await rig.notifier.on_event(ev(EventType.OPENED, local, rig.now()))
        for n in range(3):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n), rig.now()))
        await rig.advance(5)
        assert [n.incident_id for n, _ in rig.ch["ops"].sent] == ["inc-100"]
        # one exchange incident resolves while held: never mentioned
        await rig.notifier.on_event(
            ev(EventType.RESOLVED, incident(0).with_changes(state=IncidentState.RESOLVED), rig.now())
        )
        await rig.notifier.on_event(ev(EventType.RESOLVED, local.with_changes(state=IncidentState.RESOLVED), rig.now()))
        await rig.advance(5)
        sent = [(n.kind.value, n.incident_id) for n, _ in rig.ch["ops"].sent]
        assert sent[:2] == [("firing", "inc-100"), ("resolved", "inc-100")]
        assert sorted(sent[2:]) == [("firing", "inc-1"), ("firing", "inc-2")]


async def test_retry_with_backoff_then_success_same_idempotency_key() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}], backoff_base="2s", backoff_cap="1m")
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.extend([SendResult(Verdict.RETRY, "503 unavailable", status=503)] * 3)
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
        await rig.advance(1)
        assert len(ch.sent) == 1
        await rig.advance(120)
        assert len(ch.sent) == 4
        assert len({key for _, key in ch.sent}) == 1
        row = next(iter(rig.outbox.rows.values()))
        assert row.status == "sent" and row.attempts == 4
        # the /metrics counters cryptomon_notifications_total{result="sent"|"failed"} read these
        ops = next(s for s in rig.notifier.status() if s.channel == "ops")
        assert (ops.total_sent, ops.total_failures) == (1, 3)


async def test_retry_after_pauses_the_channel_without_using_attempts() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}], max_attempts=2)
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.extend([SendResult(Verdict.RETRY, "429", retry_after=30.0, rate_limited=True)] * 3)
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
        await rig.advance(1)
        assert len(ch.sent) == 1
        await rig.advance(20)
        assert len(ch.sent) == 1  # honours retry_after
        await rig.advance(100)
        assert len(ch.sent) == 4
        assert next(iter(rig.outbox.rows.values())).status == "sent"  # 429s did not exhaust max_attempts=2


async def test_dead_letter_after_max_attempts_and_resend() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}], max_attempts=3, backoff_base=1, backoff_cap=2)
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.extend([SendResult(Verdict.RETRY, "500 boom", status=500)] * 3)
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
        await rig.advance(30)
        assert len(ch.sent) == 3
        dead = await rig.outbox.outbox_dead()
        assert len(dead) == 1 and "500 boom" in (dead[0].last_error or "")
        status = {s.channel: s for s in rig.notifier.status()}
        assert status["ops"].dead == 1
        assert await rig.notifier.resend(all_dead=True) == 1
        await rig.advance(2)
        assert len(ch.sent) == 4 and not await rig.outbox.outbox_dead()


async def test_rejected_message_is_dead_at_once_channel_stays_up() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.append(SendResult(Verdict.REJECTED, "400 invalid_payload", status=400))
        await rig.notifier.on_event(ev(EventType.OPENED, incident(1), rig.now()))
        await rig.advance(2)
        await rig.notifier.on_event(ev(EventType.OPENED, incident(2, exchange="okx"), rig.now()))
        await rig.advance(2)
        assert len(await rig.outbox.outbox_dead()) == 1
        assert len(ch.sent) == 2 and not rig.broken


async def test_broken_channel_keeps_queue_raises_incident_and_recovers() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.append(SendResult(Verdict.BROKEN, "404 Unknown Webhook", status=404))
        for n in range(3):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n, exchange=f"ex{n}"), rig.now()))
        await rig.advance(5)
        assert rig.broken == [("ops", "404 Unknown Webhook")]
        assert len(ch.sent) == 1
        status = {s.channel: s for s in rig.notifier.status()}["ops"]
        assert status.broken and status.queued == 3
        await rig.advance(60)
        assert len(ch.sent) == 1  # no hammering a broken webhook
        await rig.advance(BROKEN_RETRY_S)
        assert rig.recovered == ["ops"]
        assert len(ch.sent) == 4  # the held one again + the other two
        assert all(r.status == "sent" for r in rig.outbox.rows.values())


async def test_token_bucket_paces_individual_messages() -> None:
    cfg = make_config(
        channels={"ops": {"type": "webhook", "url": "http://127.0.0.1:1/w", "rate_limit": "1/10s"}},
        routes=[{"channels": ["ops"], "group_wait": 0}],
        digest_threshold=50,
    )
    async with Rig(cfg) as rig:
        bucket = rig.notifier.buckets["ops"]
        assert bucket.rate == pytest.approx(0.1)
        for n in range(4):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n, exchange=f"ex{n}"), rig.now()))
        await rig.advance(1)
        assert len(rig.ch["ops"].sent) == 1  # burst 1
        await rig.advance(31)
        assert len(rig.ch["ops"].sent) == 4


async def test_restart_requeues_in_flight_rows() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    rig = Rig(cfg)
    await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
    claimed = await rig.outbox.outbox_claim_due("ops", rig.now() + 1, 10)
    assert len(claimed) == 1  # as if a killed process had claimed it
    async with rig:
        await rig.advance(2)
        assert rig.ch["ops"].kinds() == ["firing"]


async def test_no_channels_configured_sends_nothing_and_does_not_fail() -> None:
    cfg = config_from_data({})
    clock = FakeClock(T0)
    outbox = InMemoryOutbox()
    notifier = Notifier(cfg, outbox, clock)
    await notifier.start()
    await notifier.on_event(ev(EventType.OPENED, incident(), clock.now()))
    assert notifier.status() == [] and outbox.rows == {}
    await notifier.stop()


async def test_stop_keeps_undelivered_rows_pending() -> None:
    cfg = make_config()
    async with Rig(cfg) as rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
    assert [r.status for r in rig.outbox.rows.values()] == ["pending"]


async def test_incident_missed_while_broken_is_delivered_with_its_resolution_later() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    async with Rig(cfg) as rig:
        ch = rig.ch["ops"]
        ch.script.append(SendResult(Verdict.BROKEN, "401 bad token"))
        inc = incident()
        await rig.notifier.on_event(ev(EventType.OPENED, inc, rig.now()))
        await rig.advance(2)
        await rig.notifier.on_event(ev(EventType.RESOLVED, inc.with_changes(state=IncidentState.RESOLVED), rig.now()))
        await rig.advance(BROKEN_RETRY_S + 10)
        assert ch.kinds() == ["firing", "firing", "resolved"]  # tried, held while broken, then both


class FlakyOutbox(InMemoryOutbox):
    """Refuses writes while ``down`` (disk full, locked database ...)."""

    down = True

    async def outbox_enqueue(self, rows: Any) -> list[int]:
        if self.down:
            raise OSError("database is locked")
        return await super().outbox_enqueue(rows)


async def test_rows_the_store_refused_are_kept_and_stored_later_never_sent_unsaved() -> None:
    cfg = make_config(routes=[{"channels": ["ops"], "group_wait": 0}])
    rig = Rig(cfg)
    flaky = FlakyOutbox()
    rig.outbox = flaky
    rig.notifier.outbox = flaky
    async with rig:
        await rig.notifier.on_event(ev(EventType.OPENED, incident(), rig.now()))
        await rig.advance(5)
        assert rig.ch["ops"].sent == [] and flaky.rows == {}
        flaky.down = False
        await rig.advance(20)  # the reminder tick stores them
        assert rig.ch["ops"].kinds() == ["firing"]


async def test_queue_counts_messages_waiting_in_group_wait() -> None:
    """Issue 12 item 8: cryptomon_notify_queue read 0 while messages waited in group_wait."""
    async with Rig(make_config()) as rig:
        for n in (1, 2, 3):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n, exchange=f"ex{n}"), rig.now()))
            # at once, not after the next delivery or reminder tick
            assert {s.channel: s.queued for s in rig.notifier.status()}["ops"] == n
        await rig.advance(1)
        assert rig.ch["ops"].sent == []  # all inside group_wait
        assert {s.channel: s.queued for s in rig.notifier.status()}["ops"] == 3
        await rig.advance(15)
        assert rig.ch["ops"].sent and {s.channel: s.queued for s in rig.notifier.status()}["ops"] == 0


@pytest.mark.parametrize("supports_digest", [True, False])
@pytest.mark.parametrize("corrupt", ["{not json", "[1, 2]", '{"kind": "firing"}', '{"kind": "nope", "ts": 1}'])
async def test_an_unreadable_stored_message_is_a_dead_letter_and_the_rest_go_out(
    supports_digest: bool, corrupt: str
) -> None:
    """Stored JSON is a boundary: a row the notifier cannot read (corrupted, another version's) raised out of
    the dispatch step and left every row claimed with it in 'sending' until a restart. It is a dead letter at
    once, saying why, and the others are delivered (one by one, or as one digest)."""
    async with Rig(make_config(), supports_digest=supports_digest) as rig:
        for n in range(8):
            await rig.notifier.on_event(ev(EventType.OPENED, incident(n), rig.now()))
        bad_id = min(rig.outbox.rows)
        rig.outbox.rows[bad_id] = dataclasses.replace(rig.outbox.rows[bad_id], payload=corrupt)
        await rig.advance(15)
        bad = rig.outbox.rows[bad_id]
        assert bad.status == "dead" and "unreadable message" in (bad.last_error or "")
        others = [r for i, r in rig.outbox.rows.items() if i != bad_id]
        assert all(r.status == "sent" for r in others)
        sent = rig.ch["ops"].sent
        delivered = [i for n, _ in sent for i in (n.items or (n,))]
        assert sorted(n.incident_id for n in delivered) == [f"inc-{n}" for n in range(1, 8)]
        assert (rig.ch["ops"].kinds() == ["digest"]) is supports_digest
