"""The notifier: incident events in, durable outbox rows out, one dispatcher task per channel.

``on_event`` only decides and writes (committed) outbox rows, then wakes the channel's worker; it never
waits on a service. Each worker takes due rows for its channel when its token bucket has a token, merges
them into one digest when many are due together, sends, and records the service's verdict:

* success -> sent; retryable -> back to pending after exponential backoff with jitter (or the service's
  own retry_after, which also pauses the whole channel); a message the service will never accept -> dead
  letter at once; after ``max_attempts`` -> dead letter; ``notify resend`` brings dead letters back.
* a broken channel (bad key, deleted webhook) stops sending, keeps its queue, raises ``on_channel_broken``
  and retries one message every ``BROKEN_RETRY_S`` until it works again (``on_channel_recovered``).

A kill at any point loses nothing: rows are committed before any send, and rows left ``sending`` go back
to pending at the next start (at-least-once; receivers dedup on the idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.notify import AlertmanagerChannelConfig
from cryptomon_tui.config.root import Config
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import format_duration
from cryptomon_tui.notify.channels import Channel, ChannelUnavailable, SendResult, Verdict, build_channel
from cryptomon_tui.notify.channels.alertmanager import AlertmanagerChannel
from cryptomon_tui.notify.model import (
    ChannelStats,
    ChannelStatus,
    NewOutboxRow,
    Notice,
    NoticeKind,
    OutboxRow,
    analysis_text,
    incident_payload,
)
from cryptomon_tui.notify.outbox import FIRING_KIND_VALUES, OutboxRepository
from cryptomon_tui.notify.ratelimit import TokenBucket
from cryptomon_tui.notify.router import Router, Tracked

log = logging.getLogger("cryptomon.notify")

ChannelCallback = Callable[[str, str], Awaitable[None] | None]
BROKEN_RETRY_S = 600.0  # a broken channel tries one message this often (half-open)
DIGEST_MAX = 500  # rows merged into one digest at most
TICK_S = 15.0  # reminders and Alertmanager refreshes are checked this often
STOP_DRAIN_S = 5.0
TICKER = "\x00ticker"  # wake-event key of the reminder loop
UNREADABLE = (ValueError, RecursionError)  # what reading a stored notice raises when its JSON is not one
ALWAYS_CLOSE = ("pagerduty", "alertmanager")  # resolve/ack are state there, not chatter: always sent


@dataclass(slots=True)
class ChannelHealth:
    name: str
    type: str
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    total_failures: int = 0  # failed delivery attempts since start (a /metrics counter)
    total_sent: int = 0  # deliveries accepted since start (a digest is one)
    broken: bool = False
    broken_reason: str | None = None
    broken_since: float | None = None
    paused_until: float | None = None  # monotonic
    unavailable: str | None = None  # cannot run at all (apprise missing)


class Notifier:
    def __init__(
        self,
        config: Config,
        outbox: OutboxRepository,
        clock: Clock,
        on_channel_broken: ChannelCallback | None = None,
        on_channel_recovered: ChannelCallback | None = None,
        *,
        rng: random.Random | None = None,
        stop_timeout: float = STOP_DRAIN_S,
    ) -> None:
        self.config = config
        self.cfg = config.notify
        self.location = config.daemon.location
        self.outbox = outbox
        self.clock = clock
        self.on_channel_broken = on_channel_broken
        self.on_channel_recovered = on_channel_recovered
        self.rng = rng or random.Random()
        self.stop_timeout = stop_timeout
        self.router = Router(self.cfg)
        self.channels: dict[str, Channel] = {}
        self.health: dict[str, ChannelHealth] = {}
        self.buckets: dict[str, TokenBucket] = {}
        for name, ch_cfg in self.cfg.enabled_channels().items():
            health = ChannelHealth(name, ch_cfg.type)
            self.health[name] = health
            try:
                channel = build_channel(name, ch_cfg, clock, self.location)
            except ChannelUnavailable as exc:
                health.unavailable = str(exc)
                health.broken, health.broken_reason = True, str(exc)
                continue
            self.channels[name] = channel
            count, per, burst = channel.default_rate
            if ch_cfg.rate_limit is not None:
                # "20/min" is a cap for ANY 60 s window: the burst comes out of it, the rest refills evenly
                rl = ch_cfg.rate_limit
                burst = rl.burst or max(1, min(5, int(rl.count * 0.1)))
                count = rl.count - burst if rl.count > burst else rl.count
                per = rl.per
            self.buckets[name] = TokenBucket(count / per, burst, clock)
        self.tracked: dict[str, Tracked] = {}
        self.held: dict[str, Incident] = {}  # per-exchange incidents held back by a local-network incident
        self._stats: dict[str, ChannelStats] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = False
        self._am_refreshed: dict[str, float] = {}
        self.inflight = 0  # sends waiting on a service right now
        self.waiting = 0  # workers asleep until their next due time (a simulation advances when all are)
        self._unsaved: list[NewOutboxRow] = []  # rows the store refused (kept until it takes them)

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, *, workers: bool = True) -> None:
        """Requeue rows a killed process left in flight, open clients, start one worker per channel
        (``workers=False``: the caller drives ``dispatch_once`` and ``tick`` itself, as tests do)."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        for name, (broken, reason) in (await self.outbox.outbox_channel_states()).items():
            health = self.health.get(name)
            if broken and health is not None and not health.unavailable:
                # broken at the last stop: try one message at once, the config may have been fixed
                health.broken, health.broken_reason = True, reason
                health.broken_since = self.clock.monotonic() - BROKEN_RETRY_S
        requeued = await self.outbox.outbox_requeue_inflight()
        if requeued:
            log.warning("notify: %d message(s) were in flight at the last stop; sending them again", requeued)
        for name, channel in self.channels.items():
            await channel.start()
            if isinstance(channel, AlertmanagerChannel):
                # keep re-posting what was firing before the restart, or Alertmanager resolves it by itself
                for payload in await self.outbox.outbox_open_firing(name):
                    try:
                        notice = Notice.from_json(payload)
                    except UNREADABLE as exc:  # stored JSON: a row we cannot read must not stop the start
                        log.error("notify: %s: a stored firing alert is unreadable (%s); not re-posted", name, exc)
                        continue
                    channel.firing[notice.fingerprint] = notice
            self._wake[name] = asyncio.Event()
            if workers:
                self._workers[name] = asyncio.create_task(self._worker(name), name=f"notify-{name}")
        if self.channels and workers:
            self._wake[TICKER] = asyncio.Event()
            self._ticker = asyncio.create_task(self._tick_loop(), name="notify-ticker")
        await self.refresh_stats()

    async def stop(self) -> None:
        """Let in-flight sends finish (bounded), then stop. Unsent rows stay queued in the outbox."""
        if not self._started:
            return
        self._stopping = True
        for ev in self._wake.values():
            ev.set()
        tasks = [*self._workers.values(), *([self._ticker] if self._ticker else [])]
        if tasks:
            _, still = await asyncio.wait(tasks, timeout=self.stop_timeout)
            for t in still:
                t.cancel()
            for t in still:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        # anything cut off mid-send is back to pending now rather than at the next start
        await self.outbox.outbox_requeue_inflight()
        await self._save_unsaved()
        if self._unsaved:
            log.error("notify: %d message(s) could not be stored before stopping", len(self._unsaved))
        for channel in self.channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        self._workers.clear()
        self._wake.clear()
        self._ticker = None
        self._started = False

    # --- events ---------------------------------------------------------------------------------

    async def on_event(self, event: IncidentEvent, analysis: JsonObject | None = None) -> None:
        """Route one incident event to outbox rows. Fast: no network, one committed write."""
        if not self.channels and not self.health:
            return
        inc = event.incident
        now = self.clock.now()
        kind = event.event
        rows: list[NewOutboxRow] = []
        if kind is EventType.OPENED:
            rows = self._firing_rows(inc, event, analysis, now)
        elif kind is EventType.REOPENED:
            # "reopened" only where the firing was heard; a channel whose firing was withdrawn inside
            # group_wait (or that never matched) hears a plain firing instead
            heard = await self.outbox.outbox_fired_channels(inc.id)
            rows = self._firing_rows(inc, event, analysis, now, reopened=True, heard=heard)
        elif kind is EventType.UNSILENCED:
            if inc.is_open and not self._suppressed(inc):
                told = await self.outbox.outbox_notified_channels(inc.id)
                rows = self._firing_rows(inc, event, analysis, now, skip=told)
        elif kind is EventType.UPDATED:
            tracked = self.tracked.get(inc.id)
            if tracked is not None:
                tracked.incident = inc
                # an escalation may match routes the old severity did not
                new = {c for c in self.router.deliveries(inc) if c not in tracked.deliveries}
                if new and not self._suppressed(inc):
                    rows = self._firing_rows(inc, event, analysis, now, only=new)
        elif kind is EventType.ACKNOWLEDGED:
            rows = await self._ack_rows(inc, event, now)
        elif kind is EventType.SILENCED:
            tracked = self.tracked.get(inc.id)
            if tracked is not None:
                tracked.incident = inc
        elif kind is EventType.RESOLVED:
            rows = await self._resolve_rows(inc, event, analysis, now)
        if rows:
            await self._enqueue(rows)

    async def on_analysis(self, inc: Incident, analysis: JsonObject | None) -> None:
        """The verdict arrived after the firing was written (analysis never holds a firing back): it
        rides along in firing rows nobody has tried yet, and every other channel told the incident fires
        gets it as an update (an ``analysis`` notice, after the firing, before the resolve if any)."""
        text = analysis_text(analysis)
        if not text or (not self.channels and not self.health):
            return
        riding = await self.outbox.outbox_attach_analysis(inc.id, text)
        told = await self.outbox.outbox_notified_channels(inc.id)
        now = self.clock.now()
        notice = self._notice(NoticeKind.ANALYSIS, inc, now, None, analysis)
        rows = []
        for name in sorted(told - riding):
            cfg = self.cfg.channels.get(name)
            if cfg is not None and cfg.enabled and name in self.health:
                rows.append(self._row(name, notice, "analysis", now, now))
        if rows:
            await self._enqueue(rows)

    async def _save_unsaved(self) -> None:
        if self._unsaved:
            rows, self._unsaved = self._unsaved, []
            await self._enqueue(rows)

    def _suppressed(self, inc: Incident) -> bool:
        return inc.is_silenced or inc.in_maintenance

    def _is_local_network(self, inc: Incident) -> bool:
        return inc.rule in self.cfg.local_network_rules

    def _held_back(self, inc: Incident) -> bool:
        if self._is_local_network(inc) or inc.exchange is None:
            return False
        return any(self._is_local_network(t.incident) and t.incident.is_open for t in self.tracked.values())

    def _notice(
        self, kind: NoticeKind, inc: Incident, ts: float, event: IncidentEvent | None, analysis: JsonObject | None
    ) -> Notice:
        return Notice(
            kind=kind,
            ts=ts,
            incident=incident_payload(inc),
            actor=event.actor if event else None,
            analysis=analysis_text(analysis),
            location=self.location,
        )

    def _row(
        self, channel: str, notice: Notice, group_key: str, not_before: float, now: float, due: float | None = None
    ) -> NewOutboxRow:
        key = f"cm-{notice.kind.value}-{notice.incident_id or 'x'}-{channel}-{uuid.uuid4().hex[:12]}"
        return NewOutboxRow(
            due_at=due,
            channel=channel,
            kind=notice.kind.value,
            incident_id=notice.incident_id or None,
            fingerprint=notice.fingerprint or None,
            group_key=group_key,
            payload=notice.to_json(),
            idempotency_key=key,
            not_before=not_before,
            created_at=now,
        )

    def _firing_rows(
        self,
        inc: Incident,
        event: IncidentEvent,
        analysis: JsonObject | None,
        now: float,
        *,
        reopened: bool = False,
        skip: set[str] | None = None,
        only: set[str] | None = None,
        heard: set[str] | None = None,
    ) -> list[NewOutboxRow]:
        if self._suppressed(inc) or not inc.is_open:
            return []
        if self._held_back(inc):
            self.held[inc.id] = inc
            return []
        deliveries = self.router.deliveries(inc)
        tracked = self.tracked.get(inc.id)
        if tracked is None:
            tracked = self.tracked[inc.id] = Tracked(inc, {})
        tracked.incident = inc
        notices = {
            k: self._notice(k, inc, now, event, analysis) for k in (NoticeKind.FIRING, NoticeKind.REOPENED)
        }
        critical = inc.severity is Severity.CRITICAL
        rows = []
        for name, delivery in deliveries.items():
            if (skip and name in skip) or (only is not None and name not in only):
                continue
            if name not in self.channels and name not in self.health:
                continue
            if name in tracked.deliveries and not reopened and only is None and skip is None:
                continue  # a duplicate "opened"
            group_key, due = self.router.schedule(delivery, inc, now)
            notice = notices[NoticeKind.REOPENED if reopened and name in (heard or ()) else NoticeKind.FIRING]
            rows.append(self._row(name, notice, group_key, self.router.not_before(name, critical, due), now, due))
            tracked.deliveries[name] = delivery
            tracked.last_notified[name] = now
            tracked.reminders[name] = 0
        return rows

    async def _ack_rows(self, inc: Incident, event: IncidentEvent, now: float) -> list[NewOutboxRow]:
        tracked = self.tracked.get(inc.id)
        if tracked is not None:
            tracked.incident = inc  # acknowledged: the reminder loop skips it from now on
        told = await self.outbox.outbox_notified_channels(inc.id)
        notice = self._notice(NoticeKind.ACKNOWLEDGED, inc, now, event, None)
        rows = []
        for name in sorted(told):
            cfg = self.cfg.channels.get(name)
            if cfg is None or not cfg.enabled:
                continue
            if cfg.type == "alertmanager":
                continue  # Alertmanager has no acknowledgement; the alert keeps firing until resolved
            if cfg.send_acknowledged or cfg.type in ALWAYS_CLOSE:
                rows.append(self._row(name, notice, "ack", now, now))
        return rows

    async def _resolve_rows(
        self, inc: Incident, event: IncidentEvent, analysis: JsonObject | None, now: float
    ) -> list[NewOutboxRow]:
        self.router.forget(inc)
        self.tracked.pop(inc.id, None)
        if self.held.pop(inc.id, None) is not None:
            return []  # held back by a local-network incident and never told to anyone
        rows: list[NewOutboxRow] = []
        told = await self.outbox.outbox_notified_channels(inc.id)
        for name in sorted(told):
            # a firing that is not due yet (still inside group_wait) is withdrawn instead of followed up;
            # one that was due stays, whatever the channel's state: it goes, then this resolve after it
            await self.outbox.outbox_cancel_pending(inc.id, name, now)
        told = await self.outbox.outbox_notified_channels(inc.id)
        notice = self._notice(NoticeKind.RESOLVED, inc, now, event, analysis)
        critical = inc.severity is Severity.CRITICAL
        for name in sorted(told):
            cfg = self.cfg.channels.get(name)
            if cfg is None:
                continue
            if cfg.send_resolved or cfg.type in ALWAYS_CLOSE:
                rows.append(self._row(name, notice, "resolved", self.router.not_before(name, critical, now), now))
        if self._is_local_network(inc):
            rows += self._release_held(now)
        return rows

    def _release_held(self, now: float) -> list[NewOutboxRow]:
        """The local network is back: per-exchange incidents still open are real, tell about them now."""
        if any(self._is_local_network(t.incident) and t.incident.is_open for t in self.tracked.values()):
            return []
        held, self.held = self.held, {}
        rows: list[NewOutboxRow] = []
        for inc in held.values():
            fake_event = IncidentEvent(ts=now, event=EventType.OPENED, incident=inc)
            rows += self._firing_rows(inc, fake_event, None, now)
        return rows

    async def _enqueue(self, rows: Sequence[NewOutboxRow]) -> None:
        try:
            await self.outbox.outbox_enqueue(rows)
        except Exception as exc:
            # the store is failing: keep the rows here and retry every tick; never send unsaved rows
            log.error("notify: cannot store %d message(s) yet (%s); will retry", len(rows), type(exc).__name__)
            self._unsaved.extend(rows)
            return
        for row in rows:
            if row.kind in FIRING_KIND_VALUES and row.incident_id:
                await self.outbox.outbox_mark_fired(row.incident_id, row.channel, row.fingerprint)
            ev = self._wake.get(row.channel)
            if ev is not None:
                ev.set()
        # queued counts (cryptomon_notify_queue, notify status) include what waits in group_wait from now on,
        # not from the next delivery or tick
        await self.refresh_stats()

    # --- reminders and Alertmanager refresh ----------------------------------------------------

    async def _tick_loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception:
                log.exception("notify: reminder tick failed")
            await self._sleep_or_wake(TICKER, TICK_S)

    async def tick(self) -> None:
        await self._save_unsaved()
        await self.refresh_stats()  # status() stays fresh for queued counts between deliveries
        now = self.clock.now()
        rows: list[NewOutboxRow] = []
        for tracked in list(self.tracked.values()):
            inc = tracked.incident
            if inc.state is not IncidentState.FIRING or inc.acknowledged_by or self._suppressed(inc) or not inc.is_open:
                continue
            for name, delivery in tracked.deliveries.items():
                route = delivery.route
                sent = tracked.reminders.get(name, 0)
                last = tracked.last_notified.get(name, now)
                if sent >= route.max_reminders or now - last < route.reminder_every:
                    continue
                tracked.reminders[name] = sent + 1
                tracked.last_notified[name] = now
                notice = self._notice(NoticeKind.REMINDER, inc, now, None, None)
                text = f"still failing for {format_duration(max(0.0, now - inc.started_at))}"
                text += f" (reminder {sent + 1}/{route.max_reminders})"
                notice = Notice(notice.kind, notice.ts, notice.incident, location=self.location, text=text)
                critical = inc.severity is Severity.CRITICAL
                rows.append(self._row(name, notice, "reminder", self.router.not_before(name, critical, now), now))
        if rows:
            await self._enqueue(rows)
        mono = self.clock.monotonic()
        for name, channel in self.channels.items():
            if isinstance(channel, AlertmanagerChannel) and isinstance(channel.config, AlertmanagerChannelConfig):
                refreshed = self._am_refreshed.get(name)
                if refreshed is None or mono - refreshed >= channel.config.refresh_interval:
                    self._am_refreshed[name] = mono
                    if not self.health[name].broken:
                        await channel.refresh()

    # --- dispatch --------------------------------------------------------------------------------

    async def _sleep_or_wake(self, channel: str, seconds: float) -> None:
        ev = self._wake.get(channel)
        if ev is None:
            if not self._stopping:
                await self.clock.sleep(seconds)
            return
        if ev.is_set():
            ev.clear()
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(max(0.0, seconds)))
        waiter = asyncio.ensure_future(ev.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waiter):
                if not t.done():
                    t.cancel()
            ev.clear()

    @property
    def busy(self) -> bool:
        """Some worker is still working (not asleep until its next due time)."""
        return self.waiting < len(self._workers)

    async def _worker(self, name: str) -> None:
        while not self._stopping:
            try:
                wait = await self.dispatch_once(name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notify: worker for %s failed; retrying", name)
                wait = self.cfg.poll_interval
            if wait > 0:
                self.waiting += 1
                try:
                    await self._sleep_or_wake(name, wait)
                finally:
                    self.waiting -= 1
            else:
                await asyncio.sleep(0)

    async def dispatch_once(self, name: str) -> float:
        """One dispatch step for a channel that never waits: returns how long to wait before the next
        (0: at once). The worker loops on it; tests drive it step by step on the injected clock."""
        health = self.health[name]
        bucket = self.buckets[name]
        mono = self.clock.monotonic()
        if health.broken and health.broken_since is not None:
            wait = health.broken_since + BROKEN_RETRY_S - mono
            if wait > 0:
                return min(wait, BROKEN_RETRY_S)
        if health.paused_until is not None and health.paused_until > mono:
            return health.paused_until - mono
        wait = bucket.wait_time()
        if wait > 0:
            return wait
        channel = self.channels[name]
        limit = DIGEST_MAX if channel.supports_digest and not health.broken else self.cfg.digest_threshold
        if health.broken:
            limit = 1  # half-open: one message decides whether the channel works again
        # a read first: an idle channel costs one cheap query per poll_interval, never a write
        nxt = await self.outbox.outbox_next_due(name)
        now = self.clock.now()
        if nxt is None or nxt > now:
            delay = self.cfg.poll_interval if nxt is None else nxt - now
            return max(1e-3, min(delay, self.cfg.poll_interval))
        claimed = await self.outbox.outbox_claim_due(name, now, limit)
        if not claimed:  # taken meanwhile (another process, a resend racing us)
            return self.cfg.poll_interval
        readable = await self._readable(name, claimed, now)
        if not readable:
            return 0.0
        rows = [row for row, _ in readable]
        if channel.supports_digest and len(rows) >= self.cfg.digest_threshold:
            bucket.take()
            await self._deliver(name, rows, self._digest(readable))
            return 0.0
        for i, (row, notice) in enumerate(readable):
            paused = self.health[name].paused_until
            wait = bucket.wait_time()
            if self._stopping or (paused is not None and paused > self.clock.monotonic()) or wait > 0:
                # not attempted: back to the queue at once, so a kill now cannot turn them into duplicates
                await self.outbox.outbox_release([r.id for r in rows[i:]], self.clock.now())
                return wait
            bucket.take()
            ok = await self._deliver(name, [row], notice)
            if not ok:
                rest = [r.id for r in rows[i + 1 :]]
                if rest:
                    await self.outbox.outbox_release(rest, self.clock.now())
                return 0.0
        return 0.0

    async def _readable(self, name: str, rows: Sequence[OutboxRow], now: float) -> list[tuple[OutboxRow, Notice]]:
        """The claimed rows with their notices. A row whose stored JSON cannot be read (corrupted, or written
        by an incompatible version) is a dead letter at once, saying why: it would fail the same way on every
        attempt, and raising here left it and the rows claimed with it in ``sending`` until the next start."""
        out: list[tuple[OutboxRow, Notice]] = []
        for row in rows:
            try:
                out.append((row, row.notice()))
            except UNREADABLE as exc:
                log.error("notify: %s message %d is unreadable (%s): dead letter", name, row.id, exc)
                error = f"unreadable message: {type(exc).__name__}: {str(exc)[:200]}"
                await self.outbox.outbox_mark_failed([row.id], now, error, now, dead=True)
        return out

    def _digest(self, rows: Sequence[tuple[OutboxRow, Notice]]) -> Notice:
        return Notice(
            kind=NoticeKind.DIGEST,
            ts=self.clock.now(),
            location=self.location,
            items=tuple(notice for _, notice in rows),
            member_keys=tuple(r.idempotency_key for r, _ in rows),
        )

    def _backoff(self, attempts: int) -> float:
        base = min(self.cfg.backoff_cap, self.cfg.backoff_base * (2 ** max(0, attempts - 1)))
        return base / 2 + self.rng.uniform(0, base / 2)  # "equal jitter": never zero, never in lock-step

    async def _deliver(self, name: str, rows: Sequence[OutboxRow], notice: Notice) -> bool:
        channel = self.channels[name]
        health = self.health[name]
        key = rows[0].idempotency_key if len(rows) == 1 else _digest_key(rows)
        self.inflight += 1
        try:
            result = await channel.send(notice, key)
        finally:
            self.inflight -= 1
        now = self.clock.now()
        mono = self.clock.monotonic()
        ids = [r.id for r in rows]
        if result.ok:
            await self.outbox.outbox_mark_sent(ids, now, result.answer)
            health.last_success = now
            health.consecutive_failures = 0
            health.total_sent += 1
            if result.pause_for:
                health.paused_until = mono + result.pause_for
                self.buckets[name].drain()
            for item in notice.items or (notice,):
                await channel.on_delivered(item)
            if health.broken:
                await self._recovered(name)
            await self.refresh_stats()
            return True
        health.last_error, health.last_error_at = result.answer, now
        health.total_failures += 1
        health.consecutive_failures += 1
        log.warning("notify: %s %s: %s", name, result.verdict.value, result.answer)
        if result.verdict is Verdict.BROKEN:
            await self.outbox.outbox_release(ids, now, error=f"channel broken: {result.answer}")
            await self._broken(name, result)
        elif result.verdict is Verdict.REJECTED:
            await self.outbox.outbox_mark_failed(ids, now, f"rejected: {result.answer}", now, dead=True)
        elif result.rate_limited:
            wait = (result.retry_after or 1.0) + self.rng.uniform(0, 0.25)
            health.paused_until = mono + wait
            self.buckets[name].drain()
            await self.outbox.outbox_release(ids, now + wait, error=f"rate limited: {result.answer}")
        else:
            delay = 0.0
            for row in rows:
                d = max(self._backoff(row.attempts), result.retry_after or 0.0)
                delay = max(delay, d)
                dead = row.attempts >= self.cfg.max_attempts
                error = f"attempt {row.attempts}/{self.cfg.max_attempts}: {result.answer}"
                await self.outbox.outbox_mark_failed([row.id], now, error, now + d, dead=dead)
                if dead:
                    log.error("notify: %s message %d is a dead letter after %d attempts", name, row.id, row.attempts)
            health.paused_until = mono + delay
        await self.refresh_stats()
        return False

    async def _broken(self, name: str, result: SendResult) -> None:
        health = self.health[name]
        first = not health.broken
        health.broken = True
        health.broken_reason = result.answer
        health.broken_since = self.clock.monotonic()
        await self.outbox.outbox_set_channel_state(name, broken=True, reason=result.answer)
        if first:
            log.error("notify: channel %s is broken: %s (messages stay queued)", name, result.answer)
            await _call(self.on_channel_broken, name, result.answer)

    async def _recovered(self, name: str) -> None:
        health = self.health[name]
        if not health.broken or health.unavailable:
            return
        health.broken, health.broken_reason, health.broken_since = False, None, None
        await self.outbox.outbox_set_channel_state(name, broken=False, reason=None)
        log.info("notify: channel %s works again", name)
        ev = self._wake.get(name)
        if ev is not None:
            ev.set()
        await _call(self.on_channel_recovered, name, "delivered again")

    # --- commands ---------------------------------------------------------------------------------

    async def resend(self, message_id: int | None = None, *, all_dead: bool = False) -> int:
        """Dead letters (or one message) back to the queue; also gives broken channels a fresh try."""
        ids = [message_id] if message_id is not None else None
        n = await self.outbox.outbox_resend(ids, all_dead=all_dead, now=self.clock.now())
        for name, health in self.health.items():
            if health.broken and not health.unavailable:
                health.broken_since = self.clock.monotonic() - BROKEN_RETRY_S  # half-open now
            health.paused_until = None
            ev = self._wake.get(name)
            if ev is not None:
                ev.set()
        await self.refresh_stats()
        return n

    async def send_test(self, channel: str) -> str:
        """Send a test message now (bypassing the queue) and return the service's answer."""
        if channel not in self.health:
            known = ", ".join(sorted(self.health)) or "none"
            raise KeyError(f"no enabled channel named {channel!r} (channels: {known})")
        health = self.health[channel]
        if health.unavailable:
            return f"unavailable: {health.unavailable}"
        ch = self.channels[channel]
        notice = Notice(NoticeKind.TEST, self.clock.now(), location=self.location, text=None)
        started = not self._started
        if started:
            await ch.start()
        try:
            result = await ch.send(notice, f"cm-test-{uuid.uuid4().hex[:12]}")
        finally:
            if started:
                await ch.close()
        if result.ok:
            health.last_success = self.clock.now()
            if health.broken:
                await self._recovered(channel)
            else:  # maybe broken in the store (a daemon, or an earlier run): this proves it works
                await self.outbox.outbox_set_channel_state(channel, broken=False, reason=None)
        elif result.verdict is Verdict.BROKEN:
            await self._broken(channel, result)
        return f"{result.verdict.value}: {result.answer}"

    async def refresh_stats(self) -> None:
        self._stats = await self.outbox.outbox_stats()

    def status(self) -> list[ChannelStatus]:
        """Per channel, never a secret: type, last success, failures, queued, dead letters, broken flag."""
        out = []
        for name, health in sorted(self.health.items()):
            stats = self._stats.get(name, ChannelStats())
            out.append(
                ChannelStatus(
                    channel=name,
                    type=health.type,
                    last_success=health.last_success or stats.last_success,
                    failures=health.consecutive_failures,
                    total_failures=health.total_failures,
                    total_sent=health.total_sent,
                    queued=stats.queued + stats.sending,
                    dead=stats.dead,
                    sent=stats.sent,
                    broken=health.broken,
                    broken_reason=health.broken_reason,
                    last_error=health.last_error or stats.last_error,
                )
            )
        return out


def _digest_key(rows: Sequence[OutboxRow]) -> str:
    h = hashlib.sha256("\n".join(sorted(r.idempotency_key for r in rows)).encode()).hexdigest()[:24]
    return f"cm-digest-{h}"


async def _call(cb: ChannelCallback | None, name: str, reason: str) -> None:
    if cb is None:
        return
    try:
        res = cb(name, reason)
        if inspect.isawaitable(res):
            await res
    except Exception:
        log.exception("notify: channel callback failed")
