"""Store basics: WAL, one writer, permissions, batched writes, restore after restart, retention, size."""

from __future__ import annotations

import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import (
    EventType,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
    TimelineEntry,
)
from cryptomon_tui.kernel.results import BreakerState, Outcome, Phases, ProbeResult
from cryptomon_tui.store import RollupRow, Store
from tests.unit.store_helpers import T0, event, make_incident, result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + 3600)


@pytest.fixture
async def store(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Store]:
    s = Store(StorageConfig(path=tmp_path / "data" / "db.sqlite3"), clock)
    assert await s.open(background=False)
    yield s
    await s.close()


async def test_default_location_permissions_and_wal(clock: FakeClock, cryptomon_home: Path) -> None:
    s = Store(StorageConfig(), clock)
    assert await s.open(background=False)
    try:
        assert s.path == cryptomon_home / "data" / "cryptomon.sqlite3"
        assert stat.S_IMODE(s.path.stat().st_mode) == 0o600
        assert stat.S_IMODE(s.path.parent.stat().st_mode) == 0o700
        other = sqlite3.connect(s.path)
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        other.close()
    finally:
        await s.close()


@pytest.fixture
def cryptomon_home(_isolated_home: Path) -> Path:
    return _isolated_home


async def test_every_write_runs_on_the_one_writer_thread(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptomon_tui.store import store as store_module

    writer_threads: set[str] = set()
    original = store_module.transaction

    def spy(conn: sqlite3.Connection):  # type: ignore[no-untyped-def]
        writer_threads.add(threading.current_thread().name)
        return original(conn)

    for module in ("store", "repo_state", "repo_outbox", "repo_analysis", "repo_data"):
        monkeypatch.setattr(f"cryptomon_tui.store.{module}.transaction", spy)
    statements: list[str] = []
    assert store._reader is not None
    await store._reader.call(lambda c: c.set_trace_callback(statements.append))

    store.on_result(result())
    store.on_event(event(make_incident()))
    await store.flush()
    await store.outbox_enqueue(idempotency_key="k", channel="slack", event="opened", payload={})
    await store.llm_usage_add(model="m", tokens_in=1, tokens_out=2, cost_usd=__import__("decimal").Decimal("0.01"))
    await store.prune()
    assert await store.count_results() == 1
    assert len(await store.incidents()) == 1

    assert writer_threads == {"cryptomon-store-writer"}
    reads = [s.strip().split()[0].upper() for s in statements]
    assert reads and set(reads) <= {"SELECT", "BEGIN", "COMMIT", "PRAGMA"}
    # the read connection cannot write even by mistake
    with pytest.raises(sqlite3.OperationalError):
        await store._reader.call(lambda c: c.execute("DELETE FROM probe_results"))


async def _background_took_the_buffer(s: Store, clock: FakeClock) -> None:
    """Event-loop turns only (no wall-clock bound): the store's background task wakes and takes the buffer."""
    for _ in range(20):
        if s.health().pending_results == 0:
            return
        await clock.advance(0)
    raise AssertionError(f"the background flush did not start: {s.health().pending_results} results pending")


async def test_results_are_buffered_and_flushed_on_the_clock(tmp_path: Path, clock: FakeClock) -> None:
    s = Store(StorageConfig(path=tmp_path / "db.sqlite3", flush_interval=1.0), clock, batch_size=10_000)
    assert await s.open()
    try:
        for i in range(50):
            s.on_result(result(i))
        assert s.health().pending_results == 50
        assert await s.count_results() == 0  # nothing written before the interval
        await clock.advance(1.0)  # the interval: the background task takes the buffer ...
        await _background_took_the_buffer(s, clock)
        assert await s.flush()  # ... and this waits for its commit (the flush lock) with nothing left to write
        assert s.health().flushes == 1  # the background's flush, not this one
        assert await s.count_results() == 50
        assert s.health().written_results == 50
    finally:
        await s.close()


async def test_a_full_batch_is_flushed_without_waiting(tmp_path: Path, clock: FakeClock) -> None:
    s = Store(StorageConfig(path=tmp_path / "db.sqlite3", flush_interval=60.0), clock, batch_size=100)
    assert await s.open()
    try:
        for i in range(100):
            s.on_result(result(i))
        await _background_took_the_buffer(s, clock)  # the clock did not move: the full batch woke it
        assert await s.flush()  # waits for the background's commit (the flush lock)
        assert s.health().flushes == 1
        assert s.health().written_results == 100
    finally:
        await s.close()


async def test_result_round_trip_keeps_every_field(store: Store) -> None:
    full = ProbeResult(
        exchange="okx",
        probe="book",
        started_at=T0 + 1.25,
        latency_ms=None,
        outcome=Outcome.IP_BANNED,
        http_status=418,
        error_code="-1003",
        error_message="Way too many requests; IP banned until 1700000100000.",
        rate_limit_used=0.97,
        clock_offset_ms=12.0,
        clock_error_ms=3.5,
        retry_after_s=60.0,
        ban_until=T0 + 100,
        maintenance_until=None,
        phases=Phases(dns_ms=None, connect_ms=None, tls_ms=None, ttfb_ms=40.0, transfer_ms=1.0, reused=True),
        breaker=BreakerState.OPEN,
    )
    store.on_result(full)
    await store.flush()
    pages = [page async for page in store.iter_results(T0, T0 + 10)]
    assert pages == [[full]]


async def test_restart_restores_open_incidents_acks_silences_and_windows(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "db.sqlite3"
    first = Store(StorageConfig(path=path), clock)
    assert await first.open()
    firing = make_incident(1)
    acked = make_incident(2, exchange="okx").with_changes(
        state=IncidentState.ACKNOWLEDGED,
        acknowledged_by="alice",
        acknowledged_at=T0 + 5,
        ack_note="looking",
        timeline=(*make_incident(2).timeline, TimelineEntry(T0 + 5, "acknowledged", "by alice", {"by": "alice"})),
    )
    resolved_long_ago = make_incident(3, state=IncidentState.RESOLVED, at=T0 - 86400)
    resolved_recently = make_incident(4, state=IncidentState.RESOLVED, at=T0 + 3000)
    for inc in (firing, acked, resolved_long_ago, resolved_recently):
        first.on_event(event(inc))
    # an update to incident 1 supersedes the opened state
    bigger = firing.with_changes(counts={"http_5xx": 40}, updated_at=T0 + 30)
    first.on_event(event(bigger, EventType.UPDATED))
    live = Silence("sil-1", (Matcher("exchange", "okx"),), T0, T0 + 7200, "bob", "upgrade", T0)
    until_resolved = Silence("sil-2", (Matcher("incident", "inc-0001"),), T0, None, "bob", "known", T0)
    ended = Silence("sil-3", (Matcher("rule", "x"),), T0 - 7200, T0 - 3600, "bob", "old", T0 - 7200)
    for s in (live, until_resolved, ended):
        first.on_silence(s)
    window = MaintenanceWindow("mw-1", "okx", T0 + 7000, T0 + 9000, "planned", None)
    weekly = MaintenanceWindow("mw-2", "binance", T0 - 86400 * 30, T0 - 86400 * 30 + 3600, "weekly", "weekly")
    gone = MaintenanceWindow("mw-3", "bybit", T0 - 7200, T0 - 3600, "past", None)
    for w in (window, weekly, gone):
        first.on_maintenance(w)
    # close without an explicit flush: close() must write what is buffered
    await first.close()

    second = Store(StorageConfig(path=path), clock)
    assert await second.open(background=False)
    try:
        state = await second.load_state()
        assert [i.id for i in state.open_incidents] == ["inc-0001", "inc-0002"]
        assert state.open_incidents[0] == bigger
        assert state.open_incidents[1] == acked
        assert state.open_incidents[1].timeline[-1].kind == "acknowledged"
        assert [s.id for s in state.silences] == ["sil-1", "sil-2"]
        assert state.silences[0] == live
        assert {w.id for w in state.maintenance_windows} == {"mw-1", "mw-2"}
        assert [i.id for i in state.recently_resolved] == ["inc-0004"]
    finally:
        await second.close()


async def test_unsilence_and_window_removal_reach_the_store(store: Store, clock: FakeClock) -> None:
    s = Silence("sil-1", (Matcher("exchange", "okx"),), T0, None, "bob", "c", T0)
    store.on_silence(s)
    store.on_maintenance(MaintenanceWindow("mw", "okx", T0, T0 + 99999, "x"))
    await store.flush()
    assert [x.id for x in await store.silences()] == ["sil-1"]
    store.on_silence(s.__class__(**{**{k: getattr(s, k) for k in s.__slots__}, "expired_at": clock.now()}))
    store.on_maintenance_removed("mw")
    await store.flush()
    assert await store.silences() == []
    assert [x.id for x in await store.silences(include_expired=True)] == ["sil-1"]
    assert await store.maintenance_windows() == []


async def test_silence_carried_in_event_detail_is_stored(store: Store) -> None:
    s = Silence("sil-9", (Matcher("exchange", "binance"),), T0, T0 + 60, "carol", "deploy", T0)
    inc = make_incident().with_changes(silenced_by="sil-9", silenced_until=T0 + 60)
    from cryptomon_tui.incidents.model import IncidentEvent

    store.on_event(IncidentEvent(T0, EventType.SILENCED, inc, actor="carol", detail={"silence": s.to_dict()}))
    await store.flush()
    assert await store.silences(include_expired=True) == [s]
    assert (await store.incident("inc-0001")).silenced_by == "sil-9"  # type: ignore[union-attr]


async def test_rollups_per_probe_and_merged_per_exchange(store: Store) -> None:
    minute = int(T0 // 60 * 60)
    rows = [
        RollupRow("binance", "ping", minute, 10, 1, 0, {"ok": 9, "http_5xx": 1}, 10, 20, 30, 5, 35, 12, 0.1, -2),
        RollupRow("binance", "ticker", minute, 30, 0, 3, {"ok": 27, "timeout": 3}, 20, 80, 400, 8, 500, 25, 0.3, 4),
        RollupRow("binance", "ping", minute + 60, 12, 0, 0, {"ok": 12}, 11, 21, 31, 6, 32, 13, 0.1, -1),
        RollupRow("okx", "ping", minute, 5, 0, 0, {"ok": 5}, 50, 60, 70, 40, 80, 55, 0.0, 0),
    ]
    store.write_rollups(rows)
    # a second write of the same minute replaces it (metrics re-emits a corrected minute)
    store.write_rollups([RollupRow("okx", "ping", minute, 6, 0, 0, {"ok": 6}, 50, 60, 70, 40, 80, 55, 0.0, 0)])
    await store.flush()
    ping = await store.rollups("binance", "ping", minute, minute + 3600)
    assert [r.minute for r in ping] == [minute, minute + 60]
    assert ping[0] == rows[0]
    merged = await store.rollups("binance", None, minute, minute + 59)
    assert len(merged) == 1
    m = merged[0]
    assert (m.attempts, m.errors, m.timeouts) == (40, 1, 3)
    assert m.outcomes == {"ok": 36, "http_5xx": 1, "timeout": 3}
    assert m.p99_ms == 400 and m.max_ms == 500 and m.min_ms == 5
    assert m.p50_ms == pytest.approx((10 * 10 + 20 * 30) / 40)
    assert m.clock_offset_ms == 4
    assert (await store.rollups("okx", "ping", minute, minute))[0].attempts == 6


async def test_retention_drops_old_raw_results_and_rollups(tmp_path: Path, clock: FakeClock) -> None:
    cfg = StorageConfig(path=tmp_path / "db.sqlite3", raw_retention=3600, rollup_retention=86400)
    s = Store(cfg, clock)
    assert await s.open(background=False)
    try:
        now = clock.now()
        for i in range(10):
            s.on_result(result(0, at=now - 7200 + i))  # too old
            s.on_result(result(0, at=now - 60 + i))  # kept
        old_minute = int((now - 2 * 86400) // 60 * 60)
        new_minute = int((now - 3600) // 60 * 60)
        s.write_rollups(
            [RollupRow("binance", "ping", old_minute, 1, 0, 0), RollupRow("binance", "ping", new_minute, 1, 0, 0)]
        )
        s.on_event(event(make_incident(1, state=IncidentState.RESOLVED, at=now - 90 * 86400)))
        s.on_event(event(make_incident(2, at=now - 90 * 86400)))  # open: never pruned however old
        await s.flush()
        report = await s.prune()
        assert report is not None
        assert report.results == 10 and report.rollups == 1 and report.incidents == 1
        assert await s.count_results() == 10
        assert [r.minute for r in await s.rollups("binance", "ping", 0, now)] == [new_minute]
        assert [i.id for i in await s.incidents()] == ["inc-0002"]
    finally:
        await s.close()


async def test_size_bound_prunes_oldest_raw_results_first_then_rollups(tmp_path: Path, clock: FakeClock) -> None:
    cfg = StorageConfig(path=tmp_path / "db.sqlite3", max_size_mb=0.5)
    s = Store(cfg, clock)
    assert await s.open(background=False)
    try:
        now = clock.now()
        for i in range(20_000):
            s.on_result(result(0, at=now - 20_000 + i))
        minute = int(now // 60 * 60)
        s.write_rollups([RollupRow("binance", f"p{i % 7}", minute - 60 * i, 1, 0, 0) for i in range(200)])
        s.on_event(event(make_incident(1)))
        await s.flush()
        assert (await s.used_bytes() or 0) > 512 * 1024
        report = await s.prune()
        assert report is not None and report.size_pruned_results > 0
        assert (await s.used_bytes() or 0) <= 512 * 1024
        remaining = [r async for page in s.iter_results(0, now + 1) for r in page]
        assert remaining, "it removes only what it must"
        # what survives is the newest
        assert min(r.started_at for r in remaining) > now - 20_000 + report.size_pruned_results - 1
        assert len(await s.rollups("binance", "p0", 0, now + 60)) > 0  # rollups untouched while raw rows remain
        assert len(await s.incidents()) == 1
        assert s.health().pruned_results >= report.size_pruned_results
    finally:
        await s.close()


async def test_size_bound_takes_rollups_when_no_raw_results_are_left(tmp_path: Path, clock: FakeClock) -> None:
    cfg = StorageConfig(path=tmp_path / "db.sqlite3", max_size_mb=0.2)
    s = Store(cfg, clock)
    assert await s.open(background=False)
    try:
        minute = int(clock.now() // 60 * 60)
        s.write_rollups(
            [RollupRow("binance", f"probe{i % 20}", minute - 60 * (i // 20), 1, 0, 0, {"ok": 1}) for i in range(12_000)]
        )
        await s.flush()
        report = await s.prune()
        assert report is not None and report.size_pruned_rollups > 0
        assert (await s.used_bytes() or 0) <= 0.2 * 1024 * 1024
        newest = await s.rollups("binance", "probe0", minute - 120, minute)
        assert newest, "the newest minutes stay"
    finally:
        await s.close()


async def test_metrics_rollups_are_stored_as_is(store: Store) -> None:
    series = pytest.importorskip("cryptomon_tui.metrics.series")
    import dataclasses

    names = {f.name for f in dataclasses.fields(series.Rollup)}
    values = {
        "exchange": "bybit", "probe": "time", "minute": float(int(T0 // 60 * 60)), "attempts": 60, "errors": 2,
        "timeouts": 1, "counts": {"ok": 58, "timeout": 1, "http_5xx": 1}, "p50_ms": 20.0, "p95_ms": 40.0,
        "p99_ms": 90.0, "min_ms": 10.0, "max_ms": 120.0, "mean_ms": 25.0, "rate_limit_peak": 0.42,
        "clock_offset_ms": -7.0, "clock_error_ms": 2.0,
    }  # fmt: skip
    rollup = series.Rollup(**{k: v for k, v in values.items() if k in names})
    store.write_rollups([rollup])
    await store.flush()
    (row,) = await store.rollups("bybit", "time", T0 - 60, T0 + 60)
    assert (row.attempts, row.errors, row.timeouts, row.outcomes) == (60, 2, 1, values["counts"])
    assert (row.p50_ms, row.p95_ms, row.p99_ms, row.min_ms, row.max_ms, row.mean_ms) == (20, 40, 90, 10, 120, 25)
    assert (row.peak_usage, row.clock_offset_ms, row.minute) == (0.42, -7.0, int(T0 // 60 * 60))


async def test_sync_writes_only_changes_and_deletes_vanished_windows(store: Store, clock: FakeClock) -> None:
    s1 = Silence("s1", (Matcher("exchange", "okx"),), T0, None, "bob", "c", T0)
    w1 = MaintenanceWindow("w1", "okx", T0, T0 + 999_999, "a")
    w2 = MaintenanceWindow("w2", "bybit", T0, T0 + 999_999, "b")
    store.sync_silences_and_windows([s1], [w1, w2])
    await store.flush()
    assert {w.id for w in await store.maintenance_windows()} == {"w1", "w2"}
    # a window the CLI added (not in the daemon's list yet) must survive the next sync
    assert await store.add_maintenance(MaintenanceWindow("cli", None, T0, T0 + 999_999, "c"))
    expired = Silence("s1", s1.matchers, T0, None, "bob", "c", T0, expired_at=clock.now())
    store.sync_silences_and_windows([expired], [w1])
    assert store.health().pending_incidents == 0 and len(store._silences) == 1 and store._windows == {"w2": None}
    await store.flush()
    assert {w.id for w in await store.maintenance_windows()} == {"w1", "cli"}
    assert await store.silences() == []
    store.sync_silences_and_windows([expired], [w1])  # unchanged: nothing buffered
    assert not store._silences and not store._windows


def test_apply_command_ignores_bad_input() -> None:
    from cryptomon_tui.store import CommandRecord
    from cryptomon_tui.store.commands import apply_command

    class Nothing:
        def get(self, incident_id: str) -> None:
            return None

        def silences(self, include_expired: bool = False) -> list[Silence]:
            return []

    target: Any = Nothing()
    assert apply_command(target, CommandRecord(1, T0, "reboot", {}))[0].startswith("skipped: unknown command")
    assert apply_command(target, CommandRecord(2, T0, "ack", {}))[0].startswith("skipped")
    assert apply_command(target, CommandRecord(3, T0, "ack", {"incident_id": "x", "by": "a"}))[0] == (
        "skipped: not open in the daemon"
    )
    assert apply_command(target, CommandRecord(4, T0, "unsilence", {"silence_id": "x"}))[0] == (
        "skipped: unknown silence"
    )


async def test_timeline_appends_and_rewrites(store: Store) -> None:
    inc = make_incident(1)
    store.on_event(event(inc))
    await store.flush()
    grown = inc.with_changes(timeline=(*inc.timeline, TimelineEntry(T0 + 1, "evidence", "p99 up")))
    store.on_event(event(grown, EventType.UPDATED))
    await store.flush()
    assert (await store.incident(inc.id)).timeline == grown.timeline  # type: ignore[union-attr]
    # a timeline trimmed or rewritten by the manager replaces the stored one
    trimmed = inc.with_changes(timeline=(TimelineEntry(T0 + 2, "note", "kept only this"),))
    store.on_event(event(trimmed, EventType.UPDATED))
    await store.flush()
    assert (await store.incident(inc.id)).timeline == trimmed.timeline  # type: ignore[union-attr]


def test_storage_config_rejects_nonsense() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="flush_interval"):
        StorageConfig(flush_interval=0)
    with pytest.raises(ValidationError, match="at least raw_retention"):
        StorageConfig(raw_retention="2d", rollup_retention="1d")
    assert StorageConfig(raw_retention="1h", max_size_mb=64).raw_retention == 3600
