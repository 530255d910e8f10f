"""The Alertmanager channel against a real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.notifier import Notifier
from cryptomon_tui.notify.outbox import InMemoryOutbox
from tests.unit.test_notify_notifier import incident

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(BINARY is None, reason="prometheus-alertmanager is not installed (make sysdeps installs it)"),
]

AM_CONFIG = """
route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    assert BINARY is not None
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    port = _free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"alertmanager exited: {err[-2000:]}")
            try:
                if httpx.get(f"{base}/-/ready", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # waiting for a process to listen, not timing anything
        else:
            pytest.fail("alertmanager did not become ready in 10 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _alerts(base: str, fingerprint: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{base}/api/v2/alerts", params={"filter": f'cryptomon_fingerprint="{fingerprint}"'})
        resp.raise_for_status()
        return list(resp.json())


async def _until(predicate: Any, within: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await predicate()
        if value:
            return value
        if loop.time() > deadline:
            return value
        await asyncio.sleep(0.05)


@pytest.fixture
async def notifier(alertmanager: str) -> AsyncIterator[Notifier]:
    cfg = config_from_data(
        {
            "daemon": {"location": "tokyo-1"},
            "notify": {
                "channels": {"am": {"type": "alertmanager", "url": alertmanager, "resolve_timeout": "5m"}},
                "routes": [{"channels": ["am"], "group_wait": 0}],
            },
        }
    )
    n = Notifier(cfg, InMemoryOutbox(), RealClock())
    await n.start()
    yield n
    await n.stop()


async def test_alert_is_listed_then_resolved(alertmanager: str, notifier: Notifier) -> None:
    clock = RealClock()
    inc = incident(severity=Severity.CRITICAL, started_at=clock.now() - 30)
    await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))

    async def firing() -> list[dict[str, Any]]:
        return [a for a in await _alerts(alertmanager, inc.fingerprint) if a["status"]["state"] == "active"]

    active = await _until(firing)
    assert len(active) == 1, active
    alert = active[0]
    labels = alert["labels"]
    assert labels["alertname"] == "CryptomonEndpointDown"
    assert labels["exchange"] == "binance" and labels["probe"] == "ping" and labels["severity"] == "critical"
    assert labels["rule"] == "endpoint_down" and labels["location"] == "tokyo-1"
    assert alert["annotations"]["summary"] == inc.summary

    resolved = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=clock.now())
    await notifier.on_event(IncidentEvent(clock.now(), EventType.RESOLVED, resolved))

    async def resolved_in_am() -> bool:
        # Alertmanager lists only unresolved alerts: endsAt <= now takes ours off the list
        return await _alerts(alertmanager, inc.fingerprint) == []

    assert await _until(resolved_in_am)
    sent = next(s for s in notifier.status() if s.channel == "am")
    assert sent.sent == 2 and sent.queued == 0


async def test_firing_alerts_are_refreshed_with_a_future_ends_at(alertmanager: str, notifier: Notifier) -> None:
    clock = RealClock()
    inc = incident(started_at=clock.now())
    await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
    first = await _until(lambda: _alerts(alertmanager, inc.fingerprint))
    am = notifier.channels["am"]
    result = await am.refresh()  # type: ignore[attr-defined]
    assert result is not None and result.ok
    again = await _alerts(alertmanager, inc.fingerprint)
    assert again[0]["endsAt"] >= first[0]["endsAt"] > again[0]["startsAt"]


async def test_a_restarted_notifier_keeps_refreshing_what_was_firing(alertmanager: str, tmp_path: Path) -> None:
    from cryptomon_tui.notify.store_outbox import StoreOutbox
    from cryptomon_tui.store.store import Store

    cfg = config_from_data(
        {
            "notify": {
                "channels": {"am": {"type": "alertmanager", "url": alertmanager}},
                "routes": [{"channels": ["am"], "group_wait": 0}],
            }
        }
    )
    clock = RealClock()
    store = Store(path=tmp_path / "db.sqlite3")
    assert await store.open(background=False)
    try:
        first = Notifier(cfg, StoreOutbox(store), clock)
        await first.start()
        inc = incident(started_at=clock.now())
        await first.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
        assert await _until(lambda: _alerts(alertmanager, inc.fingerprint))
        await first.stop()
        second = Notifier(cfg, StoreOutbox(store), clock)
        await second.start()
        try:
            am = second.channels["am"]
            assert list(am.firing) == [inc.fingerprint]  # type: ignore[attr-defined]
            result = await am.refresh()  # type: ignore[attr-defined]
            assert result is not None and result.ok
        finally:
            await second.stop()
    finally:
        await store.close()
