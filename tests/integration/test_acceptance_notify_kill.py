"""Acceptance (issue 5): at-least-once delivery through the real ``cryptomon daemon`` across SIGKILL.

Mirrors test_notify_kill.py (which drives a small notifier worker) with the whole daemon: three
generic targets answer 5xx, so three incidents open and one is acknowledged from the CLI; their
notices queue while the webhook sink answers 503; one request is then processed by the sink but its
reply is lost, and the daemon is killed with SIGKILL. After a restart, with the targets healthy again,
every queued message and every resolved notice is delivered, and a sink honouring the idempotency key
processes none of them twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from tests.fakes.webhook_sink import Reply, WebhookSink
from tests.integration.processes import kill_hard, reap, stop

pytestmark = pytest.mark.slow
TARGETS = {"api_a": 500, "api_b": 503, "api_c": 502}


class Targets:
    """HTTP endpoints the daemon probes; each answers the status the test sets."""

    def __init__(self) -> None:
        self.status = dict(TARGETS)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        code = self.status.get(request.match_info["name"], 404)
        return web.json_response({"status": "ok" if code == 200 else "down"}, status=code)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    t = Targets()
    await t.start()
    yield t
    await t.stop()


async def eventually(
    cond: Callable[[], bool], within: float, what: str, detail: Callable[[], Any] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))
        await asyncio.sleep(0.05)


def outbox(db: Path) -> list[tuple[str, str, str, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as conn:
            return conn.execute("SELECT idempotency_key, event, incident_id, state FROM outbox").fetchall()
    except sqlite3.OperationalError:  # not created yet, or busy for a moment
        return []


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.timeout(120)
async def test_daemon_sigkill_while_queued_and_failing_delivers_everything_once(
    tmp_path: Path, sink: WebhookSink, targets: Targets
) -> None:
    cfg = tmp_path / "config.yaml"
    db = tmp_path / "cryptomon.sqlite3"
    cfg.write_text(
        yaml.safe_dump(
            {
                "exchanges": {
                    name: {"kind": "generic", "url": f"http://127.0.0.1:{targets.port}/{name}", "interval": "250ms",
                           "timeout": "1s"}
                    for name in TARGETS
                },
                "storage": {"path": str(db), "flush_interval": "200ms"},
                # a restored incident that its rule does not confirm resolves after this (default 5m)
                "incidents": {"restore_grace": "2s"},
                "notify": {
                    "channels": {
                        "hook": {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": "kill-test-secret",
                                 "timeout": "30s", "rate_limit": "200/s"},
                    },
                    "routes": [{"channels": ["hook"], "group_wait": 0, "group_interval": 0}],
                    "backoff_base": "50ms",
                    "backoff_cap": "200ms",
                    "max_attempts": 1000,
                    "digest_threshold": 1000,
                },
            }
        )
    )
    env = {**os.environ, "CRYPTOMON_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}

    async def daemon(events_path: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg), "--no-control",
            "--events-jsonl", str(events_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, stdin=asyncio.subprocess.DEVNULL,
            env=env,
        )

    sink.fail("webhook", Reply(503, "down for maintenance"))
    events1 = tmp_path / "events1.jsonl"
    first = await daemon(events1)
    try:
        await eventually(lambda: len([e for e in events(events1) if e["event"] == "opened"]) == len(TARGETS), 30,
                         "an incident per failing target")
        opened = [e["incident"] for e in events(events1) if e["event"] == "opened"]
        assert sorted(i["exchange"] for i in opened) == sorted(TARGETS), opened
        ack = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "ack", opened[0]["id"], "--note", "on it", "--by", "bob",
            "--config", str(cfg), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        )
        out, _ = await asyncio.wait_for(ack.communicate(), 30)
        assert ack.returncode == 0, out.decode()
        await eventually(lambda: any(e["event"] == "acknowledged" for e in events(events1)), 10, "the ack")
        # every notice so far (3 firing + 1 acknowledged) is queued and has failed at least once
        await eventually(lambda: len({r[0] for r in outbox(db)}) >= len(TARGETS) + 1, 20, "queued notices")
        await eventually(lambda: len(sink.of("webhook", 503)) >= 2 * (len(TARGETS) + 1), 20, "failing attempts")
        # the next request is processed by the receiver, but its answer never arrives
        seen = len(sink.of("webhook"))
        sink.fail("webhook", None)
        sink.script("webhook", Reply(accept_then_hang=True))
        await eventually(lambda: len(sink.of("webhook")) > seen, 20, "the in-flight request")
        await eventually(lambda: len(sink.processed) == 1, 5, "the receiver to process it")
        await kill_hard(first)
    finally:
        await reap(first)

    queued = await asyncio.to_thread(outbox, db)
    states = [state for *_, state in queued]
    assert "sending" in states, queued  # killed mid-send
    assert set(states) <= {"pending", "sending"}, queued  # nothing confirmed sent, nothing lost
    kinds = sorted(kind for _, kind, _, _ in queued)
    assert kinds == ["acknowledged"] + ["firing"] * len(TARGETS), queued

    # restart with the targets healthy: the queue drains and every incident resolves
    for name in targets.status:
        targets.status[name] = 200
    events2 = tmp_path / "events2.jsonl"
    second = await daemon(events2)
    try:
        def all_sent() -> bool:
            rows = outbox(db)
            resolved = [r for r in rows if r[1] == "resolved"]
            return len(resolved) == len(TARGETS) and all(r[3] == "sent" for r in rows)

        await eventually(all_sent, 60, "every message (queued ones and the resolved notices) sent",
                         lambda: (outbox(db), [(e["event"], e["incident"]["id"]) for e in events(events2)]))
        restarted = events(events2)
        assert not [e for e in restarted if e["event"] in ("opened", "reopened")], restarted
    finally:
        await stop(second, 15)

    rows = await asyncio.to_thread(outbox, db)
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)) == len(TARGETS) * 2 + 1  # firing + resolved per incident, one ack
    assert sorted(sink.processed) == sorted(keys)  # every message delivered, each processed once
    assert len(sink.duplicates) == 1, sink.duplicates  # the one whose reply was lost came again, and only it
    assert set(sink.duplicates) <= set(keys)
