"""Storage faults are reported in health() and logs, never raised into the engine."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import Matcher, Silence
from cryptomon_tui.store import Store
from tests.unit.store_helpers import T0, event, make_incident, result


def _store(path: Path, clock: FakeClock, **kw: object) -> Store:
    return Store(StorageConfig(path=path), clock, reopen_interval=30.0, **kw)  # type: ignore[arg-type]


async def _exercise_everything(s: Store) -> None:
    """Every kind of call the engine, notifier, analyzer and CLI make: none may raise."""
    s.on_result(result())
    s.on_event(event(make_incident()))
    s.on_silence(Silence("s", (Matcher("exchange", "x"),), T0, None, "me", "c", T0))
    s.write_rollups([])
    await s.flush()
    await s.prune()
    assert await s.incidents() == []
    assert await s.load_state() is not None
    assert await s.outbox_enqueue(idempotency_key="k", channel="c", event="opened", payload={}) is None
    assert await s.outbox_claim_due() == []
    assert await s.outbox_stats() == {}
    assert await s.poll_commands() == []
    assert await s.record_change("ack", {"incident_id": "inc-0001"}) is None


async def test_unusable_folder_is_reported_and_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    clock = FakeClock(T0)
    s = _store(blocker / "db.sqlite3", clock)
    with caplog.at_level(logging.WARNING, "cryptomon.store"):
        assert await s.open(background=False) is False
        await _exercise_everything(s)
    h = s.health()
    assert not h.ok and not h.open
    assert h.last_error_kind == "read_only" and "open" in (h.last_error or "")
    assert h.dropped_results == 1
    assert sum(1 for r in caplog.records if "read_only" in r.getMessage()) == 1  # logged once
    # the problem goes away: the store opens again on its own after reopen_interval
    blocker.unlink()
    s.on_event(event(make_incident(7)))
    await s.flush()  # too early to retry
    assert not s.health().open
    await clock.advance(31)
    assert await s.flush()
    assert s.health().ok
    assert sorted(i.id for i in await s.incidents()) == ["inc-0001", "inc-0007"]
    await s.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
async def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    s = _store(folder / "db.sqlite3", FakeClock(T0))
    try:
        assert await s.open(background=False) is False
        await _exercise_everything(s)
        assert s.health().last_error_kind == "read_only"
    finally:
        await s.close()
        folder.chmod(0o700)


async def test_corrupt_file_is_reported_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    junk = b"this is not a database at all" * 500
    path.write_bytes(junk)
    s = _store(path, FakeClock(T0))
    assert await s.open(background=False) is False
    await _exercise_everything(s)
    assert s.health().last_error_kind == "corrupt"
    await s.close()
    assert path.read_bytes() == junk  # the user's file is left for them to inspect


async def test_disk_full_drops_raw_results_keeps_incidents(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = _store(tmp_path / "db.sqlite3", FakeClock(T0))
    assert await s.open(background=False)
    assert s._writer is not None
    pages = await s._writer.call(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await s._writer.call(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))  # the disk is now "full"
    with caplog.at_level(logging.WARNING, "cryptomon.store"):
        for attempt in range(2):
            for i in range(3000):
                s.on_result(result(i + attempt * 3000))
            s.on_event(event(make_incident(1)))
            assert await s.flush() is False
    h = s.health()
    assert h.last_error_kind == "disk_full" and h.errors["disk_full"] == 2
    assert h.dropped_results == 6000 and h.pending_results == 0  # never queued without bound
    assert h.pending_incidents == 1  # incident state waits for the next try
    assert sum(1 for r in caplog.records if "disk_full" in r.getMessage()) == 1
    assert await s.outbox_enqueue(idempotency_key="k", channel="c", event="opened", payload={"x": "y" * 50_000}) is None
    # space comes back
    await s._writer.call(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    assert await s.flush() is True
    assert s.health().ok
    assert [i.id for i in await s.incidents()] == ["inc-0001"]
    assert await s.outbox_enqueue(idempotency_key="k", channel="c", event="opened", payload={}) is not None
    await s.close()


async def test_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    s = _store(path, FakeClock(T0), busy_timeout=0.05)
    assert await s.open(background=False)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        s.on_result(result())
        assert await s.flush() is False
        assert await s.outbox_enqueue(idempotency_key="k", channel="c", event="opened", payload={}) is None
        assert s.health().last_error_kind == "locked"
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert await s.outbox_enqueue(idempotency_key="k", channel="c", event="opened", payload={}) is not None
    assert s.health().ok
    await s.close()


async def test_database_turned_read_only(tmp_path: Path) -> None:
    s = _store(tmp_path / "db.sqlite3", FakeClock(T0))
    assert await s.open(background=False)
    assert s._writer is not None
    await s._writer.call(lambda c: c.execute("PRAGMA query_only = 1"))
    s.on_event(event(make_incident()))
    assert await s.flush() is False
    assert s.health().last_error_kind == "read_only"
    await s.close()


async def test_engine_calls_never_block_or_raise_when_closed(tmp_path: Path) -> None:
    s = _store(tmp_path / "db.sqlite3", FakeClock(T0), max_pending_results=10)
    for i in range(100):
        s.on_result(result(i))
    assert s.health().dropped_results == 90
    assert s.health().pending_results == 10
