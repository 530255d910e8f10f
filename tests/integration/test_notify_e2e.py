"""One incident through the notifier to every channel type at once (local sink + real SMTP + real store):
exactly one firing and one resolved message per channel, PagerDuty closed with the same dedup_key, and no
secret in any log line even while a channel fails and breaks."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState
from cryptomon_tui.notify.worker import notifier_for_store
from cryptomon_tui.store.store import Store
from tests.fakes.smtp_server import SmtpServer
from tests.fakes.webhook_sink import Reply, WebhookSink
from tests.unit.test_notify_notifier import incident

SECRET = "e2e-very-secret-9f8e7d"


async def _wait_for(cond: Callable[[], bool], what: str, within: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_one_firing_and_one_resolved_per_channel(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = WebhookSink()
    await sink.start()
    smtp = SmtpServer(username="bot", password=SECRET)
    smtp_port = smtp.start()
    channels = {
        "discord": {"type": "discord", "url": sink.url("discord", f"/1/{SECRET}")},
        "slack": {"type": "slack", "url": sink.url("slack", f"/T/B/{SECRET}")},
        "wecom": {"type": "wecom", "url": sink.url("wecom", f"/send?key={SECRET}")},
        "telegram": {
            "type": "telegram",
            "token": f"1:{SECRET}",
            "chat_id": "-1",
            "api_url": sink.url("telegram"),
            "rate_limit": "10/s",  # the default 20/min would make this test wait 6 s
        },
        "pagerduty": {"type": "pagerduty", "routing_key": SECRET, "url": sink.url("pagerduty", "/v2/enqueue")},
        "webhook": {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": SECRET},
        "email": {
            "type": "email",
            "host": "127.0.0.1",
            "port": smtp_port,
            "security": "none",
            "username": "bot",
            "password": SECRET,
            "sender": "cm@example.org",
            "to": "ops@example.org",
        },
    }
    cfg = config_from_data(
        {"notify": {"channels": channels, "routes": [{"channels": list(channels), "group_wait": 0}]}}
    )
    clock = RealClock()
    store = Store(path=tmp_path / "db.sqlite3")
    assert await store.open(background=False)
    broken: list[tuple[str, str]] = []
    notifier = notifier_for_store(cfg, store, clock, lambda name, why: broken.append((name, why)))
    # Telegram's token is refused at first: the channel breaks, its message waits, nothing leaks
    sink.script("telegram", Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}))
    await notifier.start()
    try:
        inc = incident(started_at=clock.now() - 120)
        await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
        services = ("discord", "slack", "wecom", "pagerduty", "webhook")
        await _wait_for(lambda: all(len(sink.of(s)) == 1 for s in services) and len(smtp.received) == 1, "firing")
        await _wait_for(lambda: bool(broken), "telegram to break")
        assert broken[0][0] == "telegram" and SECRET not in broken[0][1]
        assert (await notifier.send_test("telegram")).startswith("success: ok message_id")  # fixed: recovers

        resolved = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=clock.now())
        await notifier.on_event(IncidentEvent(clock.now(), EventType.RESOLVED, resolved))
        await _wait_for(lambda: all(len(sink.of(s)) == 2 for s in services) and len(smtp.received) == 2, "resolved")
        # the firing Telegram missed while broken is delivered late, then its resolution: nothing lost
        await _wait_for(lambda: len(sink.of("telegram", 200)) == 3, "telegram firing + resolved after recovery")

        for s in services:
            kinds = [r.body.decode() for r in sink.of(s)]
            assert len(kinds) == 2, s
        pd = [r.json() for r in sink.of("pagerduty")]
        assert [e["event_action"] for e in pd] == ["trigger", "resolve"] and pd[0]["dedup_key"] == pd[1]["dedup_key"]
        hooks = [r.json()["kind"] for r in sink.of("webhook")]
        assert hooks == ["firing", "resolved"]
        tg = [json.loads(r.body)["text"] for r in sink.of("telegram", 200)]
        assert "FIRING" in tg[1] and "RESOLVED" in tg[2]  # tg[0] was the test message
        subjects = [m.message["Subject"] for m in smtp.received]
        assert "FIRING" in subjects[0] and "RESOLVED" in subjects[1]
        await asyncio.sleep(0.2)  # nothing more arrives: exactly one of each
        assert all(len(sink.of(s)) == 2 for s in services) and len(smtp.received) == 2
        status = json.dumps([s.to_json() for s in notifier.status()])
        assert SECRET not in status and '"broken": true' not in status
    finally:
        await notifier.stop()
        await store.close()
        await sink.stop()
        smtp.stop()
    assert SECRET not in caplog.text


async def test_a_hanging_service_does_not_hold_up_the_others(tmp_path: Path) -> None:
    sink = WebhookSink()
    await sink.start()
    sink.fail("discord", Reply(hang=True))
    cfg = config_from_data(
        {
            "notify": {
                "channels": {
                    "discord": {"type": "discord", "url": sink.url("discord", "/1/x"), "timeout": "30s"},
                    "slack": {"type": "slack", "url": sink.url("slack", "/T/B/x")},
                },
                "routes": [{"channels": ["discord", "slack"], "group_wait": 0, "group_interval": 0}],
            }
        }
    )
    clock = RealClock()
    store = Store(path=tmp_path / "db.sqlite3")
    assert await store.open(background=False)
    notifier = notifier_for_store(cfg, store, clock)
    notifier.stop_timeout = 0.5
    await notifier.start()
    try:
        for n in range(3):
            inc = incident(n, exchange=f"ex{n}")
            await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
        await _wait_for(lambda: len(sink.of("slack", 200)) == 3, "slack while discord hangs", within=10)
        assert len(sink.of("discord")) == 1 and notifier.inflight >= 1  # discord still waiting
    finally:
        await notifier.stop()  # the hung send is cut off; its row goes back to pending
        stats = await store.outbox_stats()
        await store.close()
        await sink.stop()
    assert stats["discord"].pending == 3 and stats["slack"].sent == 3
