"""At-least-once across SIGKILL: a real notifier process on the real SQLite store is killed while
messages are queued, the sink is failing and one reply is lost in flight; after a restart every message
is delivered and a sink honouring the idempotency key processes none of them twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.fakes.webhook_sink import Reply, WebhookSink

pytestmark = pytest.mark.slow
N = 30


async def _wait_for(cond: Callable[[], bool], within: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _spawn(cfg: Path, db: Path, *extra: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cryptomon_tui.notify.worker",
        "--config",
        str(cfg),
        "--db",
        str(db),
        "--status-every",
        "0.2",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


@pytest.mark.timeout(90)
async def test_sigkill_while_queued_and_failing_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    sink = WebhookSink()
    await sink.start()
    try:
        cfg = tmp_path / "config.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "exchanges": {},
                    "notify": {
                        "channels": {
                            "hook": {
                                "type": "webhook",
                                "url": sink.url("webhook", "/in"),
                                "secret": "kill-test-secret",
                                "timeout": "30s",
                                "rate_limit": "200/s",
                            }
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
        db = tmp_path / "cryptomon.sqlite3"
        sink.fail("webhook", Reply(503, "down for maintenance"))

        first = await _spawn(cfg, db, "--demo-incidents", str(N))
        assert first.stdout is not None
        line = await asyncio.wait_for(first.stdout.readline(), 30)
        assert json.loads(line) == {"enqueued": N}, line
        await _wait_for(lambda: len(sink.of("webhook")) >= 5, 20, "failing attempts")
        # the next request is processed by the receiver but its answer never arrives
        seen = len(sink.of("webhook"))
        sink.fail("webhook", None)
        sink.script("webhook", Reply(accept_then_hang=True))
        await _wait_for(lambda: len(sink.of("webhook")) > seen, 20, "the in-flight request")
        await _wait_for(lambda: len(sink.processed) == 1, 5, "the receiver to process it")
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL

        with sqlite3.connect(db) as conn:
            states = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall())
            keys = {k for (k,) in conn.execute("SELECT idempotency_key FROM outbox")}
        assert states.get("sending", 0) >= 1, states  # killed mid-send
        assert states.get("sending", 0) + states.get("pending", 0) == N, states  # nothing sent, nothing lost
        assert len(keys) == N

        second = await _spawn(cfg, db, "--until-idle")
        _, err = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, err.decode()[-2000:]

        assert sorted(sink.processed) == sorted(keys)  # every message delivered, each processed once
        assert len(sink.duplicates) == 1  # the one whose reply was lost came again with the same key
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall() == [("sent", N)]
    finally:
        await sink.stop()
