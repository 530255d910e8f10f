"""Acceptance (issue 13 item 3): alerts survive a broken store, against the real ``cryptomon daemon``.

The store lives on a real 4 MB tmpfs. Filled up (a real ENOSPC, not a mock), the daemon's writes fail;
a target that then goes down must still be notified to a local webhook receiver, the "store failing"
incident goes out through the same channel, /readyz answers 503 naming the store and the reason, and
``cryptomon_store_up`` is 0. Freed, the store takes writes again: ready, up, the incident resolves.
Then the database is corrupted and the daemon restarted on it: notifications still arrive, /readyz
and the metric say so. Needs root (mount); skipped otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.daemon_harness import free_port
from tests.fakes.webhook_sink import WebhookSink
from tests.integration.processes import stop

pytestmark = pytest.mark.slow


class Targets:
    """Generic targets the daemon probes; each answers the status the test sets."""

    def __init__(self, names: list[str]) -> None:
        self.status = dict.fromkeys(names, 200)
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
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for a real full disk: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


async def eventually(
    cond: Callable[[], Any], within: float, what: str, detail: Callable[[], Any] | None = None
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = cond()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))
        await asyncio.sleep(0.1)


async def readyz(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url + "/readyz") as resp:
        return resp.status, await resp.json()


async def metric(url: str, name: str) -> float | None:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name:
                return float(sample.value)
    return None


def notices(sink: WebhookSink) -> list[dict[str, Any]]:
    return [r.json() for r in sink.of("webhook", 200)]


def told(sink: WebhookSink, kind: str, needle: str) -> bool:
    return any(n["kind"] == kind and needle in json.dumps(n) for n in notices(sink))


def fill(mnt: Path) -> Path:
    """Fill the filesystem to the last byte (a real ENOSPC for the next write)."""
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


@pytest.mark.timeout(240)
async def test_alerts_survive_a_full_then_corrupt_store(tmp_path: Path, small_disk: Path, sink: WebhookSink) -> None:
    names = ["api_a", "api_b", "api_c"]
    targets = Targets(names)
    await targets.start()
    db = small_disk / "cryptomon.sqlite3"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "exchanges": {
            n: {"kind": "generic", "url": f"http://127.0.0.1:{targets.port}/{n}", "interval": "200ms", "timeout": "1s",
                "budget_share": 1.0}
            for n in names
        },
        "storage": {"path": str(db), "flush_interval": "200ms"},
        "daemon": {"http": {"port": port}},
        "notify": {
            "channels": {"hook": {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": "store-test-secret",
                                  "timeout": "10s", "rate_limit": "200/s"}},
            "routes": [{"channels": ["hook"], "group_wait": 0, "group_interval": 0}],
            "backoff_base": "50ms", "backoff_cap": "200ms", "digest_threshold": 1000,
        },
    }))
    env = {**os.environ, "CRYPTOMON_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    sock_dir = Path(tempfile.mkdtemp(prefix="cms-", dir="/tmp"))  # a short path (sun_path limit)
    sock = sock_dir / "d.sock"

    async def start(log: Path) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg), "--socket", str(sock),
            stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=env,
        )

        async def answers() -> bool:
            try:
                await readyz(url)
            except aiohttp.ClientError:
                return False
            return True

        try:
            await eventually(answers, 30, "the daemon's HTTP port", lambda: log.read_text()[-2000:])
        except BaseException:
            await stop(proc)  # never leave a daemon behind when the test fails here
            raise
        return proc

    log1 = tmp_path / "daemon1.log"
    first = await start(log1)
    filler: Path | None = None
    try:
        await eventually(lambda: readyz_ok(url), 30, "ready with a healthy store")
        assert await metric(url, "cryptomon_store_up") == 1.0

        # -- 1. disk full ------------------------------------------------------------------------
        filler = await asyncio.to_thread(fill, small_disk)
        targets.status["api_a"] = 503

        async def store_down() -> bool:
            status, body = await readyz(url)
            return status == 503 and "store_writable" in body.get("failing", [])

        await eventually(store_down, 60, "/readyz 503 for the full disk", lambda: log1.read_text()[-3000:])
        _, body = await readyz(url)
        assert "disk_full" in body["detail"]["store_reason"], body
        assert await metric(url, "cryptomon_store_up") == 0.0
        assert (await metric(url, "cryptomon_store_errors_total") or 0) > 0
        await eventually(lambda: told(sink, "firing", "api_a"), 30, "the outage notified despite the full disk",
                         lambda: notices(sink))
        await eventually(lambda: told(sink, "firing", "store failing"), 30, "the store-failing incident notified",
                         lambda: [n["title"] for n in notices(sink)])
        assert "disk_full" in json.dumps([n for n in notices(sink) if "store failing" in json.dumps(n)])

        # -- the disk has room again: the store recovers, the incident resolves --------------------
        filler.unlink()
        filler = None
        await eventually(lambda: readyz_ok(url), 60, "ready again once the disk has room")
        assert await metric(url, "cryptomon_store_up") == 1.0
        await eventually(lambda: told(sink, "resolved", "store failing"), 30, "the store-failing incident resolved")
    finally:
        await stop(first)
        if filler is not None:
            filler.unlink(missing_ok=True)

    # -- 2. corrupt database, daemon restarted on it ---------------------------------------------
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():  # noqa: ASYNC240 - the daemon is stopped
            p.write_bytes(b"this is not a database\n" * 4096)  # noqa: ASYNC240
    targets.status["api_b"] = 500
    log2 = tmp_path / "daemon2.log"
    second = await start(log2)
    try:
        async def corrupt_reported() -> bool:
            status, body = await readyz(url)
            return status == 503 and "corrupt" in str(body.get("detail", {}).get("store_reason", ""))

        await eventually(corrupt_reported, 30, "/readyz 503 naming the corrupt store", lambda: log2.read_text()[-3000:])
        assert await metric(url, "cryptomon_store_up") == 0.0
        await eventually(lambda: told(sink, "firing", "api_b"), 30, "an outage notified with a corrupt store",
                         lambda: [n["title"] for n in notices(sink)])
        assert second.returncode is None
    finally:
        await stop(second)
        await targets.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert "Traceback" not in log2.read_text()


async def readyz_ok(url: str) -> bool:
    try:
        status, _ = await readyz(url)
    except aiohttp.ClientError:
        return False
    return status == 200


@pytest.mark.timeout(180)
async def test_readyz_is_honest_for_a_locked_and_a_read_only_store(
    tmp_path: Path, small_disk: Path, sink: WebhookSink
) -> None:
    """The two other failure modes of issue 13: another process holding the database's write lock, and the
    filesystem read-only (the daemon restarted on it). Each makes /readyz 503 with its reason, store_up 0."""
    targets = Targets(["api_a"])
    await targets.start()
    db = small_disk / "cryptomon.sqlite3"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "exchanges": {"api_a": {"kind": "generic", "url": f"http://127.0.0.1:{targets.port}/api_a",
                                "interval": "200ms", "timeout": "1s", "budget_share": 1.0}},
        "storage": {"path": str(db), "flush_interval": "200ms"},
        "daemon": {"http": {"port": port}},
    }))
    sock_dir = Path(tempfile.mkdtemp(prefix="cms-", dir="/tmp"))
    env = {**os.environ, "CRYPTOMON_HOME": str(tmp_path / "home")}

    async def start(log: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg),
            "--socket", str(sock_dir / "d.sock"),
            stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, env=env,
        )

    async def failing_with(words: tuple[str, ...]) -> bool:
        try:
            status, body = await readyz(url)
        except aiohttp.ClientError:
            return False
        reason = str(body.get("reason", ""))
        return status == 503 and any(w in reason for w in words)

    log1, log2 = tmp_path / "daemon1.log", tmp_path / "daemon2.log"
    proc = await start(log1)
    try:
        await eventually(lambda: readyz_ok(url), 30, "ready", lambda: log1.read_text()[-2000:])
        # another process holds the write lock
        holder = await asyncio.to_thread(sqlite3.connect, str(db), timeout=10, isolation_level=None,
                                         check_same_thread=False)
        try:
            await asyncio.to_thread(holder.execute, "BEGIN EXCLUSIVE")
            await eventually(lambda: failing_with(("locked",)), 60, "/readyz 503 for a locked store",
                             lambda: log1.read_text()[-2000:])
            assert await metric(url, "cryptomon_store_up") == 0.0
        finally:
            await asyncio.to_thread(holder.execute, "ROLLBACK")
            await asyncio.to_thread(holder.close)
        await eventually(lambda: readyz_ok(url), 60, "ready again after the lock is released")
    finally:
        await stop(proc)
    # the filesystem goes read-only (remounted while nothing has a file open on it)
    remount = await asyncio.create_subprocess_exec("mount", "-o", "remount,ro", str(small_disk))
    assert await remount.wait() == 0
    proc = await start(log2)
    try:
        await eventually(lambda: failing_with(("read_only", "readonly")), 30, "/readyz 503 for a read-only store",
                         lambda: log2.read_text()[-2000:])
        assert await metric(url, "cryptomon_store_up") == 0.0
    finally:
        await stop(proc)
        await targets.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
