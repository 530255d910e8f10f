"""Stateful property test of the delivery invariants (docs/notifications.md, "Delivery invariants").

Hypothesis drives the REAL notifier and the REAL SQLite outbox on the injected clock through random
sequences of incident events (open, update, resolve, reopen, ack, a late verdict), channel moods (down,
up, 429 with Retry-After, 5xx, slow = delivered but timed out, broken), time passing (group_wait,
backoffs and reminders expiring), graceful restarts and crashes (between two steps, and in the middle of
a send), after which a new notifier runs on the state reloaded from SQLite.

The channels are fakes at the channel interface (``Channel._send``): they record what a receiver got,
with each message's idempotency key (digest members under their own keys). After every step the receivers'
view must obey the ordering invariants; at the end, once every channel works again and time has passed,
every due firing must have been delivered, and followed by its resolve when the incident ended.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels.base import Channel, SendResult, Verdict
from cryptomon_tui.notify.model import Notice
from cryptomon_tui.notify.notifier import Notifier
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.store.store import Store

T0 = 1_700_000_000.0
GROUP_WAIT = 10.0
CHANNELS = ("chat", "hook", "pager")  # chat merges digests; hook and pager send one message per key
INCIDENTS = 3
MOODS = ("up", "down", "429", "5xx", "slow", "broken")
# the troubled moods come up more often: what they leave behind (a due firing never tried) is the point
MOOD_CHOICES = ("up", "down", "429", "429", "5xx", "slow", "broken", "broken")
OPENING = {"firing", "reopened"}


class Crash(BaseException):
    """Raised inside a send, after the receiver got the message: the process dies mid-flight."""


@dataclass
class Receiver:
    """What the service behind one channel received, and how the channel behaves right now."""

    mood: str = "up"
    retry_after: float = 30.0
    crash_next: bool = False
    got: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, incident id, idempotency key)
    ambiguous: int = 0  # messages received whose outcome the sender could not know (timeout, crash)

    def receive(self, notice: Notice, key: str) -> int:
        items = list(zip(notice.items, notice.member_keys, strict=True)) if notice.items else [(notice, key)]
        for item, k in items:
            self.got.append((item.kind.value, item.incident_id, k))
        return len(items)


class FakeChannel(Channel):
    type = "webhook"

    def __init__(self, base: Channel, receiver: Receiver, digest: bool) -> None:
        super().__init__(base.name, base.config, base.clock, base.location)
        self.receiver = receiver
        self.supports_digest = digest  # type: ignore[misc]

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        r = self.receiver
        if r.mood == "down":
            return SendResult(Verdict.RETRY, "connection failed: ConnectError")
        if r.mood == "429":
            return SendResult(Verdict.RETRY, "429", retry_after=r.retry_after, status=429, rate_limited=True)
        if r.mood == "5xx":
            return SendResult(Verdict.RETRY, "503", status=503)
        if r.mood == "broken":
            return SendResult(Verdict.BROKEN, "401 invalid token", status=401)
        n = r.receive(notice, idempotency_key)
        if r.crash_next:
            r.crash_next = False
            r.ambiguous += n
            raise Crash
        if r.mood == "slow":  # the service took it, but answered after our timeout
            r.ambiguous += n
            return SendResult(Verdict.RETRY, "timeout (ReadTimeout) after 10s")
        return SendResult(Verdict.SUCCESS, "200 ok")


def config() -> Any:
    return config_from_data(
        {
            "notify": {
                "channels": {name: {"type": "webhook", "url": f"http://127.0.0.1:1/{name}"} for name in CHANNELS},
                "routes": [
                    {
                        "channels": list(CHANNELS),
                        "group_wait": f"{GROUP_WAIT:g}s",
                        "group_interval": "1m",
                        "reminder_interval": "5m",
                        "max_reminders": 2,
                    }
                ],
                "digest_threshold": 2,
                "max_attempts": 100_000,  # dead letters wait for a human (notify resend): not part of this model
                "backoff_base": 2,
                "backoff_cap": 120,
            }
        }
    )


def make_incident(i: int, **changes: Any) -> Incident:
    labels = {"exchange": f"ex{i}", "probe": "ping"}
    inc = Incident(
        id=f"inc-{i}",
        fingerprint=fingerprint("endpoint_down", labels),
        rule="endpoint_down",
        severity=Severity.ERROR,
        exchange=f"ex{i}",  # one group per incident: group_wait is exactly "open 10 s"
        probe="ping",
        state=IncidentState.FIRING,
        summary=f"ex{i} ping failing",
        started_at=T0,
        updated_at=T0,
        labels=labels,
    )
    return inc.with_changes(**changes) if changes else inc


@dataclass
class Life:
    """The model of one incident: its incarnations (opened at, resolved at)."""

    spans: list[list[float | None]] = field(default_factory=list)
    acked: bool = False

    @property
    def open(self) -> bool:
        return bool(self.spans) and self.spans[-1][1] is None

    def due(self, now: float) -> int:
        """Incarnations whose firing was due: they outlived group_wait (or still fire past it)."""
        return sum(1 for a, b in self.spans if ((now if b is None else b) - float(a or 0.0)) >= GROUP_WAIT)

    def due_resolved(self) -> int:
        return sum(1 for a, b in self.spans if b is not None and b - float(a or 0.0) >= GROUP_WAIT)


def first_seen(got: list[tuple[str, str, str]]) -> tuple[list[tuple[str, str]], int]:
    """The receiver's view after deduplicating on the idempotency key, and how many copies it dropped."""
    seen: set[str] = set()
    out, dups = [], 0
    for kind, inc, key in got:
        if key in seen:
            dups += 1
            continue
        seen.add(key)
        out.append((kind, inc))
    return out, dups


def check_order(view: list[tuple[str, str]], channel: str) -> dict[str, bool]:
    """Per incident: resolved only after a firing, reopened only after a firing was heard, updates only
    while told. Returns whether each incident is currently "told firing" on this channel."""
    told: dict[str, bool] = {}
    heard: set[str] = set()
    for kind, inc in view:
        where = f"{channel}: {kind} of {inc} in {view}"
        if kind == "reopened":
            assert inc in heard, f"REOPENED to a channel that never heard the firing: {where}"
        if kind in OPENING:
            told[inc] = True
            heard.add(inc)
        elif kind == "resolved":
            assert told.get(inc), f"resolved before (or without) its firing: {where}"
            told[inc] = False
        elif kind in ("acknowledged", "reminder", "analysis"):
            assert told.get(inc), f"{kind} to a channel not told the incident fires: {where}"
    return told


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="cm-notify-sm-"))
        self.clock = FakeClock(T0)
        self.cfg = config()
        self.receivers = {name: Receiver() for name in CHANNELS}
        self.lives = [Life() for _ in range(INCIDENTS)]
        self.store: Store | None = None
        self.notifier: Notifier | None = None
        self.crashes = 0
        self.run(self._boot())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _boot(self) -> None:
        self.store = Store(path=self.dir / "db.sqlite3", clock=self.clock)
        assert await self.store.open(background=False)
        n = Notifier(self.cfg, StoreOutbox(self.store), self.clock, rng=random.Random(7))
        for name, base in list(n.channels.items()):
            n.channels[name] = FakeChannel(base, self.receivers[name], digest=name == "chat")
        await n.start(workers=False)
        self.notifier = n

    async def _pump(self) -> float:
        """Dispatch every channel until each has to wait; returns the shortest wait."""
        assert self.notifier is not None
        waits = []
        for name in CHANNELS:
            for _ in range(200):
                try:
                    wait = await self.notifier.dispatch_once(name)
                except Crash:
                    await self._crash()
                    return 0.0
                if wait > 0:
                    waits.append(wait)
                    break
        await self.notifier.tick()
        return min(waits, default=1.0)

    async def _crash(self) -> None:
        """The process dies: nothing in memory survives, no stop(), no flush beyond what was committed."""
        self.crashes += 1
        self.notifier = None
        if self.store is not None:
            await self.store.close()  # the file stays as the last commit left it (every outbox write commits)
        await self._boot()

    def event(self, kind: EventType, inc: Incident, actor: str | None = None) -> None:
        assert self.notifier is not None
        self.run(self.notifier.on_event(IncidentEvent(self.clock.now(), kind, inc, actor=actor)))

    # --- incidents ----------------------------------------------------------------------------

    def pick(self, i: int, is_open: bool) -> int | None:
        """The i-th incident (cyclically) that is open (or not): every draw does something."""
        cands = [n for n, life in enumerate(self.lives) if life.open == is_open]
        return cands[i % len(cands)] if cands else None

    @rule(i=st.integers(0, INCIDENTS - 1))
    def open_or_reopen(self, i: int) -> None:
        n = self.pick(i, False)
        if n is None:
            return
        i, life = n, self.lives[n]
        kind = EventType.REOPENED if life.spans else EventType.OPENED
        life.spans.append([self.clock.now(), None])
        life.acked = False
        self.event(kind, make_incident(i, started_at=self.clock.now()))

    @rule(i=st.integers(0, INCIDENTS - 1))
    def update(self, i: int) -> None:
        life = self.lives[i]
        if life.open:
            self.event(EventType.UPDATED, make_incident(i, summary=f"ex{i} still failing at {self.clock.now()}"))

    @rule(i=st.integers(0, INCIDENTS - 1))
    def ack(self, i: int) -> None:
        life = self.lives[i]
        if life.open and not life.acked:
            life.acked = True
            inc = make_incident(i, state=IncidentState.ACKNOWLEDGED, acknowledged_by="alice")
            self.event(EventType.ACKNOWLEDGED, inc, actor="alice")

    @rule(i=st.integers(0, INCIDENTS - 1))
    def verdict(self, i: int) -> None:
        if self.lives[i].open and self.notifier is not None:
            self.run(self.notifier.on_analysis(make_incident(i), {"summary": f"verdict for ex{i}"}))

    @rule(i=st.integers(0, INCIDENTS - 1))
    def resolve(self, i: int) -> None:
        n = self.pick(i, True)
        if n is None:
            return
        i, life = n, self.lives[n]
        life.spans[-1][1] = self.clock.now()
        self.event(EventType.RESOLVED, make_incident(i, state=IncidentState.RESOLVED, resolved_at=self.clock.now()))

    # --- channels, time, process ----------------------------------------------------------------

    @rule(
        name=st.sampled_from((*CHANNELS, "all")),
        mood=st.sampled_from(MOOD_CHOICES),
        retry_after=st.sampled_from([1.0, 30.0, 120.0, 600.0]),
    )
    def channel_mood(self, name: str, mood: str, retry_after: float) -> None:
        for ch in CHANNELS if name == "all" else (name,):
            self.receivers[ch].mood = mood
            self.receivers[ch].retry_after = retry_after

    @rule(seconds=st.sampled_from([0.5, 3.0, 9.0, 10.0, 30.0, 70.0, 310.0, 700.0]))
    def time_passes(self, seconds: float) -> None:
        left = seconds
        while left > 0:
            wait = self.run(self._pump())
            step = min(left, max(wait, 0.25))
            self.clock.set(self.clock.now() + step)
            left -= step
        self.run(self._pump())

    @rule()
    def restart(self) -> None:
        async def go() -> None:
            assert self.notifier is not None and self.store is not None
            await self.notifier.stop()
            await self.store.close()
            await self._boot()

        self.run(go())

    @rule()
    def crash(self) -> None:
        self.run(self._crash())

    @precondition(lambda self: any(r.mood in ("up", "slow") for r in self.receivers.values()))
    @rule(name=st.sampled_from(CHANNELS))
    def crash_during_next_send(self, name: str) -> None:
        self.receivers[name].crash_next = True

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def order_per_channel_and_incident(self) -> None:
        for name, r in self.receivers.items():
            view, dups = first_seen(r.got)
            check_order(view, name)
            # a copy is only ever the price of not knowing (a timeout after delivery, a kill mid-send)
            assert dups <= r.ambiguous, f"{name}: {dups} duplicate(s), {r.ambiguous} ambiguous send(s)"

    def teardown(self) -> None:
        try:
            self.run(self._settle_and_check())
        finally:
            async def close() -> None:
                if self.notifier is not None:
                    await self.notifier.stop()
                if self.store is not None:
                    await self.store.close()

            self.run(close())
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _settle_and_check(self) -> None:
        """Every channel works again; time passes: nothing due may be missing, every firing resolved."""
        for r in self.receivers.values():
            r.mood, r.crash_next = "up", False
        for _ in range(400):
            wait = await self._pump()
            assert self.notifier is not None
            stats = await self.notifier.outbox.outbox_stats()
            if not any(s.queued or s.sending for s in stats.values()):
                break
            # coarse steps: a broken channel tries one message per 10 min, backoffs are capped at 2 min
            self.clock.set(self.clock.now() + max(wait, 30.0))
        stats = await self.notifier.outbox.outbox_stats()  # type: ignore[union-attr]
        assert not any(s.queued or s.sending or s.dead for s in stats.values()), stats
        now = self.clock.now()
        for name, r in self.receivers.items():
            view, _ = first_seen(r.got)
            told = check_order(view, name)
            for i, life in enumerate(self.lives):
                inc = f"inc-{i}"
                kinds = Counter(k for k, x in view if x == inc)
                due = life.due(now)
                opened = kinds["firing"] + kinds["reopened"]
                assert opened == due, f"{name}/{inc}: {opened} firing(s) heard, {due} due ({life.spans})"
                assert kinds["resolved"] == life.due_resolved(), f"{name}/{inc}: {kinds} for {life.spans}"
                if due:
                    assert told.get(inc, False) == life.open, f"{name}/{inc}: told={told.get(inc)} {life.spans}"


TestDeliveryInvariants = DeliveryMachine.TestCase
TestDeliveryInvariants.settings = settings(
    max_examples=50,
    stateful_step_count=40,
    derandomize=True,  # a fixed seed: the same sequences on every run (make test stays reproducible)
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
pytestmark = pytest.mark.timeout(600)
