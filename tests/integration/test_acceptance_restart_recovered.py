"""Acceptance (issue 14 item 7) on the real daemon: an incident restored after a restart whose problem ended
while the daemon was down is re-judged on fresh probes and resolves within one recovery window of healthy
answers (no fixed 5-minute grace), and the restarted daemon never shows the target as failing meanwhile.

The first daemon watches a generic target whose port is closed (every probe fails with ``connect``: one
incident); it is killed with SIGKILL, the target starts answering on that port, and a second daemon starts
on the same store."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from cryptomon_tui.kernel.units import parse_iso_utc
from tests.integration.processes import kill_hard, reap, stop
from tests.integration.test_acceptance_restart import (
    Setup,
    closed_port,
    read_events,
    setup,  # noqa: F401  (the fixture: config, home and socket of one daemon)
    snapshot,
    start_daemon,
    wait_event,
)

pytestmark = pytest.mark.slow


async def until_stored(db: Path, incident_id: str, limit_s: float) -> None:
    """Poll the daemon's SQLite file (read-only) until the incident row is there, or fail after limit_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s

    def stored() -> bool:
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)) as conn:
                return conn.execute("SELECT 1 FROM incidents WHERE id = ?", (incident_id,)).fetchone() is not None
        except sqlite3.Error:
            return False  # not created yet, or busy: ask again

    while not await asyncio.to_thread(stored):
        if loop.time() > deadline:
            raise AssertionError(f"incident {incident_id} not in {db} within {limit_s:g}s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def target_setup(setup: Setup) -> AsyncIterator[tuple[Setup, int]]:  # noqa: F811
    port = closed_port()
    data = yaml.safe_load(setup.config.read_text())
    data["exchanges"]["target"]["url"] = f"http://127.0.0.1:{port}/health"
    setup.config.write_text(yaml.safe_dump(data))
    yield setup, port


async def _serve(port: int) -> web.AppRunner:
    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.mark.timeout(90)
async def test_a_restored_incident_whose_problem_ended_while_down_resolves_on_fresh_probes(
    target_setup: tuple[Setup, int],
) -> None:
    s, port = target_setup
    events1 = s.dir / "events1.jsonl"
    first = await start_daemon(s, events1)
    try:
        opened = await wait_event(events1, lambda e: e["event"] == "opened", 20, "opened incident")
        ident = opened["incident"]["id"]
        assert opened["incident"]["exchange"] == "target"
        # the store flushes every 200 ms: the kill waits until the incident is on disk
        await until_stored(s.dir / "cryptomon.sqlite3", ident, 10.0)
        await kill_hard(first)
    finally:
        await reap(first)

    server = await _serve(port)  # the problem ended while no daemon was watching
    events2 = s.dir / "events2.jsonl"
    second = await start_daemon(s, events2)
    try:
        snap = await snapshot(s)
        started = parse_iso_utc(snap["started_at"])
        resolved = await wait_event(
            events2, lambda e: e["event"] == "resolved" and e["incident"]["id"] == ident, 20, "resolved incident"
        )
        # three healthy answers at 250 ms: well within one recovery window, nothing like restore_grace (5 min)
        assert parse_iso_utc(resolved["ts"]) - started <= 10.0, (resolved["ts"], snap["started_at"])
        snap = await snapshot(s)
        assert [i["id"] for i in snap["incidents"] if i["state"] != "resolved"] == []
        assert snap["exchanges"]["target"]["status"] == "ok", snap["exchanges"]["target"]
        # and nothing new: the restored incident was not reopened or replaced by a fresh one
        assert [e["event"] for e in read_events(events2) if e["incident"]["id"] != ident] == []
        assert [e["event"] for e in read_events(events2) if e["event"] in ("opened", "reopened")] == []
    finally:
        await stop(second)
        await server.cleanup()
