"""The store: one writer thread, batched writes, reads on their own connection, errors contained.

How writes flow: the engine calls ``on_result`` / ``on_event`` / ``write_rollups`` from its
loop; they only append to in-memory buffers (coalesced per incident, bounded) and return.
A background task flushes the buffers every ``storage.flush_interval`` (or at once when a
batch fills, or an incident event arrives) as ONE transaction on the writer thread, the
only thread holding the connection that writes. Writes the caller must know are durable
(outbox, CLI changes, ledger, analyses) skip the buffer: they run on the same writer
thread and their coroutine returns only after COMMIT.

Storage errors (disk full, locked, corrupt, read-only, missing folder) are never raised
into callers: each public method returns a neutral value (None / [] / False), the error
is counted by kind in ``health()`` and logged once per kind until the store recovers.
While the writer fails, raw results of the failed batch are dropped and counted (the
buffer is bounded); incident state is kept (coalesced per id) and retried. A store that
could not open retries every ``reopen_interval`` on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TypeVar

from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config.paths import default_db_path
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, MaintenanceWindow, Silence
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.snapshot import StoreView
from cryptomon_tui.metrics.series import Rollup
from cryptomon_tui.store import repo_analysis, repo_data, repo_notify, repo_outbox, repo_state
from cryptomon_tui.store.db import DbThread, classify, connect
from cryptomon_tui.store.repo_data import INSERT_RESULT, UPSERT_ROLLUP, PruneReport
from cryptomon_tui.store.repo_state import UPSERT_SILENCE, UPSERT_WINDOW
from cryptomon_tui.store.rows import (
    AnalysisRecord,
    CommandRecord,
    LlmUsageRecord,
    NewOutboxMessage,
    NotificationLogEntry,
    OutboxChannelStats,
    OutboxMessage,
    RollupRow,
    StoredState,
    result_to_row,
    rollup_to_row,
    silence_from_dict,
    silence_to_row,
    window_to_row,
)
from cryptomon_tui.store.schema import migrate
from cryptomon_tui.store.sql import transaction

log = logging.getLogger("cryptomon.store")
T = TypeVar("T")

STORAGE_ERRORS = (sqlite3.Error, OSError)


class Store:
    """SQLite persistence for the whole engine (see the module docstring for the write path)."""

    def __init__(
        self,
        config: StorageConfig | None = None,
        clock: Clock | None = None,
        *,
        path: Path | str | None = None,
        batch_size: int = 2000,
        max_pending_results: int = 50_000,
        max_pending_incidents: int = 10_000,
        max_pending_rollups: int = 100_000,
        prune_interval: float = 60.0,
        reopen_interval: float = 30.0,
        busy_timeout: float = 5.0,
        incident_retention: float | None = None,
    ) -> None:
        self.config = config or StorageConfig()
        chosen = path or self.config.path or default_db_path()
        self.path = Path(chosen).expanduser()
        self._clock: Clock = clock or RealClock()
        self._batch_size = batch_size
        self._max_pending_results = max_pending_results
        self._max_pending_incidents = max_pending_incidents
        self._max_pending_rollups = max_pending_rollups
        self._prune_interval = prune_interval
        self._reopen_interval = reopen_interval
        self._busy_timeout = busy_timeout
        self._incident_retention = incident_retention or max(self.config.rollup_retention, 30 * 86400.0)
        self._writer: DbThread | None = None
        self._reader: DbThread | None = None
        self._last_open_attempt: float | None = None
        self._others_seen: tuple[int, int] | None = None  # (writer connection, its data_version)
        # buffers (engine loop only)
        self._results: list[ProbeResult] = []
        self._incidents: dict[str, Incident] = {}
        self._silences: dict[str, Silence] = {}
        self._windows: dict[str, MaintenanceWindow | None] = {}  # None: delete
        self._rollups: list[RollupRow | Rollup] = []
        self._synced_silences: dict[str, Silence] = {}
        self._synced_windows: dict[str, MaintenanceWindow] = {}
        # background work
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._last_prune: float | None = None
        self._closed = False
        # health
        self._failing = False
        self._last_error: str | None = None
        self._last_error_kind: str | None = None
        self._last_error_at: float | None = None
        self._errors: dict[str, int] = {}
        self._logged_kinds: set[str] = set()
        self._written_results = 0
        self._dropped_results = 0
        self._flushes = 0
        self._failed_flushes = 0
        self._last_flush_at: float | None = None
        self._size_bytes: int | None = None
        self._pruned_results = 0
        self._pruned_rollups = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self, *, background: bool = True) -> bool:
        """Open (creating and migrating as needed). Returns False, never raises, when it cannot.

        ``background`` starts the flush/prune task; the CLI passes False.
        """
        self._flush_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        ok = await self._ensure_open(force=True)
        if background and self._task is None:
            self._task = asyncio.create_task(self._background(), name="cryptomon-store")
        return ok

    async def close(self) -> None:
        """Flush what is buffered and stop the threads."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._flush_lock is not None:
            await self.flush()
        for worker in (self._reader, self._writer):
            if worker is not None:
                await worker.close()
        self._reader = self._writer = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _open_writer_connection(self) -> sqlite3.Connection:
        conn = connect(self.path, busy_timeout_s=self._busy_timeout, writer=True)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _ensure_open(self, force: bool = False) -> bool:
        if self._writer is not None and self._writer.is_open and self._reader is not None and self._reader.is_open:
            return True
        now = self._clock.monotonic()
        if not force and self._last_open_attempt is not None and now - self._last_open_attempt < self._reopen_interval:
            return False
        self._last_open_attempt = now
        try:
            if self._writer is None:
                self._writer = DbThread("cryptomon-store-writer", self._open_writer_connection)
            await self._writer.open()
            if self._reader is None:
                path, timeout = self.path, self._busy_timeout
                self._reader = DbThread(
                    "cryptomon-store-reader", lambda: connect(path, busy_timeout_s=timeout, writer=False)
                )
            await self._reader.open()
        except STORAGE_ERRORS as exc:
            self._report("open", exc)
            return False
        if self._failing:
            self._recovered()
        return True

    # --- error reporting ------------------------------------------------------------------------

    def _report(self, operation: str, exc: BaseException) -> None:
        kind = classify(exc)
        self._failing = True
        self._errors[kind] = self._errors.get(kind, 0) + 1
        self._last_error = f"{operation}: {exc}"
        self._last_error_kind = kind
        self._last_error_at = self._clock.now()
        if kind not in self._logged_kinds:
            self._logged_kinds.add(kind)
            log.warning("storage %s error at %s (%s): %s; monitoring goes on", kind, self.path, operation, exc)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            if self._logged_kinds:
                log.warning("storage at %s works again", self.path)
            self._logged_kinds.clear()

    def health(self) -> StoreView:
        """The store's health, in the kernel's model (what the snapshot, /healthz and the faces show)."""
        is_open = bool(self._writer and self._writer.is_open)
        return StoreView(
            ok=is_open and not self._failing,
            path=str(self.path),
            open=is_open,
            last_error=self._last_error,
            last_error_kind=self._last_error_kind,
            last_error_at=self._last_error_at,
            errors=dict(self._errors),
            written_results=self._written_results,
            dropped_results=self._dropped_results,
            pending_results=len(self._results),
            pending_incidents=len(self._incidents),
            flushes=self._flushes,
            failed_flushes=self._failed_flushes,
            last_flush_at=self._last_flush_at,
            size_bytes=self._size_bytes,
            pruned_results=self._pruned_results,
            pruned_rollups=self._pruned_rollups,
        )

    async def _write(self, operation: str, fn: Callable[[sqlite3.Connection], T], default: T) -> T:
        """Run one durable write on the writer thread; returns after COMMIT, or ``default`` on error."""
        if not await self._ensure_open():
            return default
        assert self._writer is not None
        try:
            result = await self._writer.call(fn)
        except STORAGE_ERRORS as exc:
            self._report(operation, exc)
            return default
        self._recovered()
        return result

    async def _read(self, operation: str, fn: Callable[[sqlite3.Connection], T], default: T) -> T:
        if not await self._ensure_open():
            return default
        assert self._reader is not None
        try:
            return await self._reader.call(fn)
        except STORAGE_ERRORS as exc:
            self._report(operation, exc)
            return default

    # --- engine-facing consumers (return at once) -----------------------------------------------

    def on_result(self, result: ProbeResult) -> None:
        if len(self._results) >= self._max_pending_results:
            self._dropped_results += 1
            return
        self._results.append(result)
        if len(self._results) >= self._batch_size:
            self._kick()

    def on_event(self, event: IncidentEvent) -> None:
        """Upsert the incident (coalesced per id) and any silence the event carries in ``detail``."""
        incident = event.incident
        self._incidents.pop(incident.id, None)
        self._incidents[incident.id] = incident
        while len(self._incidents) > self._max_pending_incidents:
            self._incidents.pop(next(iter(self._incidents)))
        raw = event.detail.get("silence") if event.detail else None
        if isinstance(raw, dict):
            with contextlib.suppress(ValueError):
                parsed = silence_from_dict(raw)
                self._silences[parsed.id] = parsed
        if event.event is not EventType.UPDATED:
            self._kick()

    def on_silence(self, silence: Silence) -> None:
        """A silence was created, changed or expired (set ``expired_at``) in the engine."""
        self._silences[silence.id] = silence
        self._kick()

    def on_maintenance(self, window: MaintenanceWindow) -> None:
        self._windows[window.id] = window
        self._kick()

    def on_maintenance_removed(self, window_id: str) -> None:
        self._windows[window_id] = None
        self._kick()

    def sync_silences_and_windows(self, silences: Iterable[Silence], windows: Iterable[MaintenanceWindow]) -> None:
        """Mirror the manager's silences and windows (call after commands and ticks; cheap when unchanged).

        The manager ends "until resolved" silences and expires timed ones without always
        emitting an event, so the daemon hands over its whole list; only what changed since the
        last call is written. A window that disappeared from the list is deleted; windows the
        CLI added and the daemon has not applied yet are left alone.
        """
        for s in silences:
            if self._synced_silences.get(s.id) != s:
                self._synced_silences[s.id] = s
                self._silences[s.id] = s
        current = {w.id: w for w in windows}
        for window_id, w in current.items():
            if self._synced_windows.get(window_id) != w:
                self._windows[window_id] = w
        for gone in set(self._synced_windows) - set(current):
            self._windows[gone] = None
        self._synced_windows = current

    def write_rollups(self, rollups: Iterable[RollupRow | Rollup]) -> None:
        """metrics' ``Rollup`` objects (or ``RollupRow``); upserted per (exchange, probe, minute)."""
        self._rollups.extend(rollups)
        overflow = len(self._rollups) - self._max_pending_rollups
        if overflow > 0:
            del self._rollups[:overflow]

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    # --- flushing and pruning ----------------------------------------------------------------

    async def _background(self) -> None:
        assert self._wake is not None
        while True:
            sleeper = asyncio.ensure_future(self._clock.sleep(self.config.flush_interval))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waker.cancel()
            self._wake.clear()
            try:
                await self.flush()
                now = self._clock.monotonic()
                if self._last_prune is None or now - self._last_prune >= self._prune_interval:
                    self._last_prune = now
                    await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the background task die silently
                log.exception("storage background task error")

    async def flush(self) -> bool:
        """Write everything buffered as one transaction. True when it was written (or nothing to do)."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:
            results, self._results = self._results, []
            incidents, self._incidents = self._incidents, {}
            silences, self._silences = self._silences, {}
            windows, self._windows = self._windows, {}
            rollups, self._rollups = self._rollups, []
            if not (results or incidents or silences or windows or rollups):
                return True
            batch = partial(_write_batch, results, list(incidents.values()), list(silences.values()), windows, rollups)
            ok = await self._ensure_open()
            error: BaseException | None = None
            if ok:
                assert self._writer is not None
                try:
                    await self._writer.call(batch)
                except STORAGE_ERRORS as exc:
                    error = exc
            if ok and error is None:
                self._flushes += 1
                self._written_results += len(results)
                self._last_flush_at = self._clock.now()
                self._recovered()
                return True
            if error is not None:
                self._report("flush", error)
            self._failed_flushes += 1
            self._dropped_results += len(results)
            # keep state for the next try; anything newer that arrived meanwhile wins
            for key, value in incidents.items():
                self._incidents.setdefault(key, value)
            for key, s in silences.items():
                self._silences.setdefault(key, s)
            for key, w in windows.items():
                self._windows.setdefault(key, w)
            self._rollups[:0] = rollups[-self._max_pending_rollups :]
            return False

    async def prune(self, now: float | None = None) -> PruneReport | None:
        """Retention and the size bound (oldest raw results first, then rollups)."""
        at = self._clock.now() if now is None else now
        cfg = self.config
        report = await self._write(
            "prune",
            partial(
                repo_data.prune,
                now=at,
                raw_retention=cfg.raw_retention,
                rollup_retention=cfg.rollup_retention,
                max_bytes=int(cfg.max_size_mb * 1024 * 1024),
                incident_retention=self._incident_retention,
            ),
            None,
        )
        if report is not None:
            self._size_bytes = report.size_bytes_after
            self._pruned_results += report.results + report.size_pruned_results
            self._pruned_rollups += report.rollups + report.size_pruned_rollups
        return report

    # --- queries ------------------------------------------------------------------------------

    async def rollups(
        self, exchange: str, probe: str | None, since: float, until: float | None = None
    ) -> list[RollupRow]:
        """1-minute points for charts; probe None merges the exchange's probes per minute."""
        end = self._clock.now() if until is None else until
        return await self._read(
            "rollups", partial(repo_data.rollups, exchange=exchange, probe=probe, since=since, until=end), []
        )

    async def results_page(
        self,
        since: float,
        until: float,
        after: tuple[float, int] | None = None,
        limit: int = 5000,
        exchange: str | None = None,
    ) -> tuple[list[ProbeResult], tuple[float, int] | None]:
        return await self._read(
            "results",
            partial(repo_data.results_page, since=since, until=until, after=after, limit=limit, exchange=exchange),
            ([], None),
        )

    async def iter_results(
        self, since: float, until: float | None = None, exchange: str | None = None, page: int = 5000
    ) -> AsyncIterator[list[ProbeResult]]:
        """Raw results in time order, a page at a time (export streams without loading all)."""
        end = self._clock.now() + 1.0 if until is None else until
        cursor: tuple[float, int] | None = None
        while True:
            items, cursor = await self.results_page(since, end, cursor, page, exchange)
            if not items:
                return
            yield items
            if cursor is None or len(items) < page:
                return

    async def incidents(
        self,
        *,
        open_only: bool = False,
        since: float | None = None,
        limit: int | None = None,
        timelines: bool = False,
    ) -> list[Incident]:
        return await self._read(
            "incidents",
            partial(repo_state.incidents, open_only=open_only, since=since, limit=limit, timelines=timelines),
            [],
        )

    async def incident(self, incident_id: str) -> Incident | None:
        """By id or unique id prefix, with its timeline."""
        return await self._read("incident", partial(repo_state.incident, incident_id=incident_id), None)

    async def silences(self, include_expired: bool = False) -> list[Silence]:
        return await self._read(
            "silences", partial(repo_state.silences, now=self._clock.now(), include_expired=include_expired), []
        )

    async def maintenance_windows(self, include_past: bool = True) -> list[MaintenanceWindow]:
        now = None if include_past else self._clock.now()
        return await self._read("maintenance", partial(repo_state.windows, now=now), [])

    async def load_state(self, now: float | None = None, recently_resolved_within: float = 600.0) -> StoredState:
        """Open incidents (with timelines), live silences and windows, for ``IncidentManager.restore``."""
        at = self._clock.now() if now is None else now
        await self.flush()
        return await self._read(
            "load_state",
            partial(repo_state.load_state, now=at, recently_resolved_within=recently_resolved_within),
            StoredState(),
        )

    # --- commands: the CLI -> daemon queue ------------------------------------------------------

    async def enqueue_command(self, kind: str, payload: JsonObject) -> int | None:
        now = self._clock.now()

        def run(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                return repo_state.enqueue_command(conn, now, kind, payload)

        return await self._write("enqueue_command", run, None)

    async def poll_commands(self, limit: int = 100) -> list[CommandRecord]:
        """Commands no daemon has applied yet, oldest first. Apply idempotently, then mark done."""
        return await self._read("poll_commands", partial(repo_state.pending_commands, limit=limit), [])

    async def others_committed(self) -> bool:
        """True when another process (a CLI with no daemon to talk to, ``cryptomon analyze``) committed to
        the database since the last call, and on the first call: ``PRAGMA data_version`` on the writer's own
        connection, which this process's commits leave unchanged. One pragma, no table read, so a daemon can
        ask every half second for commands a CLI queued and apply them at once. False when not open."""
        if not await self._ensure_open():
            return False
        assert self._writer is not None
        try:
            seen = await self._writer.call(lambda conn: (id(conn), repo_state.others_version(conn)))
        except STORAGE_ERRORS as exc:
            self._report("data_version", exc)
            return False
        changed = seen != self._others_seen  # a reopened connection starts its own count: changed too
        self._others_seen = seen
        return changed

    async def mark_command_done(self, command_id: int, result: str = "ok") -> bool:
        now = self._clock.now()
        return await self._write(
            "mark_command_done",
            lambda conn: repo_state.mark_command_done(conn, command_id, now, result),
            False,
        )

    async def command(self, command_id: int) -> CommandRecord | None:
        return await self._read("command", partial(repo_state.command, command_id=command_id), None)

    # --- changes decided without a daemon (engine/offline.py), queued for the next daemon start -------

    async def record_change(
        self,
        kind: str,
        payload: JsonObject,
        *,
        incidents: Iterable[Incident] = (),
        silences: Iterable[Silence] = (),
        windows: Iterable[MaintenanceWindow] = (),
        removed_windows: Iterable[str] = (),
    ) -> int | None:
        """Write what a command changed and queue the command, in one transaction (None = storage failed).

        The change was decided by the incident manager (the daemon's own code); the queued command lets
        the next daemon start apply it idempotently and announce it (notify), see ``store.commands``.
        """
        await self.flush()  # never overwrite a newer state this process still holds
        now = self._clock.now()
        items = (list(incidents), list(silences), list(windows), list(removed_windows))
        return await self._write(
            kind, lambda conn: repo_state.record_change(conn, now, kind, payload, *items), None
        )

    async def add_silence(self, silence: Silence) -> bool:
        """Store a silence row as is (no command queued; imports and tests)."""
        return await self._write("add_silence", lambda conn: repo_state.put_silence(conn, silence), False)

    async def add_maintenance(self, window: MaintenanceWindow) -> bool:
        return await self._write("add_maintenance", lambda conn: repo_state.put_window(conn, window), False)

    async def remove_maintenance(self, window_id: str) -> bool:
        return await self._write(
            "remove_maintenance", partial(repo_state.delete_window, window_id=window_id), False
        )

    # --- outbox (durable: committed before the coroutine returns) ------------------------------

    async def outbox_enqueue(
        self,
        *,
        idempotency_key: str,
        channel: str,
        event: str,
        payload: JsonObject,
        incident_id: str | None = None,
        fingerprint: str | None = None,
        next_attempt_at: float | None = None,
    ) -> int | None:
        """Committed when this returns; the id (an existing key returns its row's id). None = not stored."""
        now = self._clock.now()
        result = await self._write(
            "outbox_enqueue",
            partial(
                repo_outbox.enqueue,
                idempotency_key=idempotency_key,
                channel=channel,
                incident_id=incident_id,
                fingerprint=fingerprint,
                event=event,
                payload=payload,
                now=now,
                next_attempt_at=next_attempt_at,
            ),
            None,
        )
        return None if result is None else result[0]

    async def outbox_claim_due(
        self, now: float | None = None, limit: int = 50, channel: str | None = None
    ) -> list[OutboxMessage]:
        at = self._clock.now() if now is None else now
        return await self._write(
            "outbox_claim_due", partial(repo_outbox.claim_due, now=at, limit=limit, channel=channel), []
        )

    async def outbox_mark_sent(self, message_id: int, sent_at: float | None = None) -> bool:
        at = self._clock.now() if sent_at is None else sent_at
        return await self._write("outbox_mark_sent", lambda conn: repo_outbox.mark_sent(conn, message_id, at), False)

    async def outbox_mark_failed(self, message_id: int, error: str, next_attempt_at: float, dead: bool) -> bool:
        return await self._write(
            "outbox_mark_failed",
            lambda conn: repo_outbox.mark_failed(conn, message_id, error, next_attempt_at, dead),
            False,
        )

    async def outbox_requeue_inflight(self) -> int:
        return await self._write("outbox_requeue_inflight", repo_outbox.requeue_inflight, 0)

    async def outbox_dead(self, limit: int = 500) -> list[OutboxMessage]:
        return await self._read("outbox_dead", partial(repo_outbox.dead, limit=limit), [])

    async def outbox_pending(self, limit: int = 500) -> list[OutboxMessage]:
        return await self._read("outbox_pending", partial(repo_outbox.pending, limit=limit), [])

    async def outbox_get(self, message_id: int) -> OutboxMessage | None:
        return await self._read("outbox_get", partial(repo_outbox.get, message_id=message_id), None)

    async def outbox_resend(self, message_id: int | None = None, *, all_dead: bool = False) -> int:
        now = self._clock.now()
        return await self._write(
            "outbox_resend", partial(repo_outbox.resend, now=now, message_id=message_id, all_dead=all_dead), 0
        )

    async def outbox_stats(self) -> dict[str, OutboxChannelStats]:
        return await self._read("outbox_stats", repo_outbox.stats, {})

    async def notification_fired(self, incident_id: str, channel: str, fingerprint: str | None = None) -> bool:
        now = self._clock.now()
        return await self._write(
            "notification_fired",
            lambda conn: repo_outbox.log_fired(conn, incident_id, channel, fingerprint, now),
            False,
        )

    async def notification_resolved(self, incident_id: str, channel: str) -> bool:
        now = self._clock.now()
        return await self._write(
            "notification_resolved",
            lambda conn: repo_outbox.log_resolved(conn, incident_id, channel, now),
            False,
        )

    async def notification_log(self, incident_id: str) -> list[NotificationLogEntry]:
        return await self._read("notification_log", partial(repo_outbox.log_entries, incident_id=incident_id), [])

    async def notification_fired_unresolved(self) -> list[NotificationLogEntry]:
        return await self._read("notification_log", repo_outbox.fired_unresolved, [])

    # --- the notifier's outbox (batched; notify/store_outbox.py) ---------------------------------
    # Storage errors give the neutral default (health reports them); ``notify_enqueue`` gives None.

    async def notify_enqueue(self, rows: Sequence[NewOutboxMessage], now: float) -> list[int] | None:
        """Rows plus the notification log in one transaction (``repo_notify.enqueue_many``); None = not stored."""
        return await self._write("outbox_enqueue", partial(repo_notify.enqueue_many, rows=list(rows), now=now), None)

    async def notify_claim_due(self, channel: str, now: float, limit: int) -> list[OutboxMessage]:
        fn = partial(repo_notify.claim_due, channel=channel, now=now, limit=limit)
        return await self._write("outbox_claim_due", fn, [])

    async def notify_mark_sent(self, ids: Sequence[int], now: float) -> int:
        return await self._write("outbox_mark_sent", partial(repo_notify.mark_sent_many, ids=list(ids), now=now), 0)

    async def notify_mark_failed(self, ids: Sequence[int], error: str, next_attempt_at: float, dead: bool) -> int:
        fn = partial(repo_notify.mark_failed_many, ids=list(ids), error=error, next_attempt_at=next_attempt_at,
                     dead=dead)  # fmt: skip
        return await self._write("outbox_mark_failed", fn, 0)

    async def notify_release(self, ids: Sequence[int], next_attempt_at: float, error: str | None) -> int:
        fn = partial(repo_notify.release, ids=list(ids), next_attempt_at=next_attempt_at, error=error)
        return await self._write("outbox_release", fn, 0)

    async def notify_dead(self, channel: str | None, limit: int = 10_000) -> list[OutboxMessage]:
        return await self._read("outbox_dead", partial(repo_notify.dead_for, channel=channel, limit=limit), [])

    async def notify_resend(self, ids: Sequence[int], now: float) -> int:
        return await self._write("outbox_resend", partial(repo_notify.resend_ids, ids=list(ids), now=now), 0)

    async def notify_notified_channels(self, incident_id: str) -> list[str]:
        fn = partial(repo_notify.notified_channels, incident_id=incident_id)
        return await self._read("notification_log", fn, [])

    async def notify_cancel_pending(self, incident_id: str, channel: str, now: float) -> int:
        fn = partial(repo_notify.cancel_pending, incident_id=incident_id, channel=channel, now=now)
        return int(await self._write("outbox_cancel_pending", fn, 0))

    async def notify_fired_channels(self, incident_id: str) -> list[str]:
        return await self._read("notification_log", partial(repo_notify.fired_channels, incident_id=incident_id), [])

    async def notify_attach_analysis(self, incident_id: str, text: str) -> list[str]:
        fn = partial(repo_notify.attach_analysis, incident_id=incident_id, text=text)
        return await self._write("outbox_attach_analysis", fn, [])

    async def notify_open_firing(self, channel: str) -> list[JsonObject]:
        return await self._read("outbox_open_firing", partial(repo_notify.open_firing, channel=channel), [])

    async def notify_next_due(self, channel: str) -> float | None:
        return await self._read("outbox_next_due", partial(repo_notify.next_due, channel=channel), None)

    async def notify_set_channel_state(self, channel: str, *, broken: bool, reason: str | None) -> None:
        now = self._clock.now()
        fn = partial(repo_notify.set_channel_state, channel=channel, broken=broken, reason=reason, now=now)
        await self._write("notify_channel_state", fn, None)

    async def notify_channel_states(self) -> dict[str, tuple[bool, str | None]]:
        return await self._read("notify_channel_state", repo_notify.channel_states, {})

    # --- analyses and the LLM ledger -----------------------------------------------------------

    async def analyses_put(
        self,
        incident_id: str,
        result: JsonObject,
        *,
        source: str,
        model: str | None = None,
        cost_usd: Decimal | None = None,
        created_at: float | None = None,
    ) -> int | None:
        """Store one analysis (``source`` = "offline" or the model name); committed on return."""
        at = self._clock.now() if created_at is None else created_at
        return await self._write(
            "analyses_put",
            partial(
                repo_analysis.put_analysis,
                incident_id=incident_id,
                created_at=at,
                source=source,
                model=model,
                result=result,
                cost_usd=cost_usd,
            ),
            None,
        )

    async def analyses_latest(self, incident_id: str, source: str | None = None) -> AnalysisRecord | None:
        return await self._read(
            "analyses_latest", partial(repo_analysis.latest_analysis, incident_id=incident_id, source=source), None
        )

    async def analyses_for(self, incident_id: str) -> list[AnalysisRecord]:
        return await self._read("analyses_for", partial(repo_analysis.analyses_for, incident_id=incident_id), [])

    async def llm_usage_add(
        self,
        *,
        model: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: Decimal,
        provider: str | None = None,
        incident_id: str | None = None,
        purpose: str | None = None,
        ts: float | None = None,
    ) -> int | None:
        at = self._clock.now() if ts is None else ts
        return await self._write(
            "llm_usage_add",
            partial(
                repo_analysis.add_usage,
                ts=at,
                model=model,
                provider=provider,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost_usd,
                incident_id=incident_id,
                purpose=purpose,
            ),
            None,
        )

    async def llm_usage_between(self, since: float, until: float) -> list[LlmUsageRecord]:
        return await self._read("llm_usage_between", partial(repo_analysis.usage_between, since=since, until=until), [])

    # --- introspection for tests and `cryptomon status` --------------------------------------

    async def count_results(self) -> int:
        return await self._read("count_results", repo_data.count_results, 0)

    async def used_bytes(self) -> int | None:
        return await self._read("used_bytes", repo_data.used_bytes, None)


def _write_batch(
    results: list[ProbeResult],
    incidents: list[Incident],
    silences: list[Silence],
    windows: dict[str, MaintenanceWindow | None],
    rollups: list[RollupRow | Rollup],
    conn: sqlite3.Connection,
) -> None:
    """One flush = one transaction (runs on the writer thread)."""
    result_rows = [result_to_row(r) for r in results]
    rollup_rows = [rollup_to_row(r) for r in rollups]
    with transaction(conn):
        if result_rows:
            conn.executemany(INSERT_RESULT, result_rows)
        if rollup_rows:
            conn.executemany(UPSERT_ROLLUP, rollup_rows)
        if incidents:
            repo_state.write_incidents(conn, incidents)
        for s in silences:
            conn.execute(UPSERT_SILENCE, silence_to_row(s))
        for window_id, window in windows.items():
            if window is None:
                conn.execute("DELETE FROM maintenance_windows WHERE id = ?", (window_id,))
            else:
                conn.execute(UPSERT_WINDOW, window_to_row(window))
