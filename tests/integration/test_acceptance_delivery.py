"""Acceptance (issue 12): the delivery invariants through the real ``cryptomon daemon``, real local
receivers for every HTTP channel, a hung LLM, and SIGKILL.

Phase 1: three probed targets fail, so three incidents open; ``auto_analyze`` is on and the LLM never
answers (the firings must not wait for it). Every channel is in trouble: Discord's URL refuses
connections, Slack answers 429 with Retry-After, WeCom answers errcode 45009, Telegram, PagerDuty,
Alertmanager and the webhook answer 5xx. The targets recover and the incidents resolve while nothing
could be delivered (their firings were due: group_wait is 0.5 s). Then Telegram and the webhook take one
request each and never answer, and the daemon is killed with SIGKILL in the middle of those sends.

Phase 2: a restart with every receiver healthy (Discord now reachable). Per channel and incident the
receivers must see: the firing, then exactly one resolve after it, nothing resolved before its firing,
nothing lost; Alertmanager never gets the incident as active again after its resolve. Duplicates are
allowed only where the service has no idempotency key, and are counted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fakes.openai_server import FakeOpenAIServer, Step
from tests.fakes.webhook_sink import Reply, WebhookSink
from tests.integration.processes import kill_hard, reap
from tests.integration.test_acceptance_notify_kill import Targets, events, eventually

pytestmark = pytest.mark.slow
TARGETS = ("api_a", "api_b", "api_c")
CHAT = ("discord", "slack", "wecom", "telegram")  # no idempotency key: duplicates possible, counted


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def targets() -> AsyncIterator[Targets]:
    t = Targets()
    t.status = dict.fromkeys(TARGETS, 503)
    await t.start()
    yield t
    await t.stop()


@pytest.fixture
async def llm() -> AsyncIterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    srv.default = Step(hang=True)  # the LLM takes the request and never answers
    await srv.start()
    yield srv
    await srv.stop()


def config(targets: Targets, sink: WebhookSink, llm: FakeOpenAIServer, db: Path, discord_url: str) -> dict[str, Any]:
    channels = {
        "discord": {"type": "discord", "url": discord_url},
        "slack": {"type": "slack", "url": sink.url("slack", "/T0/B0/x")},
        "wecom": {"type": "wecom", "url": sink.url("wecom", "/send?key=k")},
        "telegram": {"type": "telegram", "token": "1:x", "chat_id": "-100", "api_url": sink.url("telegram")},
        "pagerduty": {"type": "pagerduty", "routing_key": "r" * 32, "url": sink.url("pagerduty", "/v2/enqueue")},
        "webhook": {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": "s3cret-hook"},
        "alertmanager": {"type": "alertmanager", "url": sink.url("alertmanager"), "refresh_interval": "1s"},
    }
    for ch in channels.values():
        ch["timeout"] = "20s"
        ch["rate_limit"] = "100/s"
    return {
        "exchanges": {
            name: {"kind": "generic", "url": f"http://127.0.0.1:{targets.port}/{name}", "interval": "250ms",
                   "timeout": "1s"}
            for name in TARGETS
        },
        "storage": {"path": str(db), "flush_interval": "200ms"},
        "incidents": {"restore_grace": "2s"},
        "notify": {
            "channels": channels,
            "routes": [{"channels": list(channels), "group_wait": "500ms", "group_interval": "500ms"}],
            "backoff_base": "100ms",
            "backoff_cap": "500ms",
            "max_attempts": 10_000,
            "digest_threshold": 1000,
        },
        "analysis": {
            "llm": {"base_url": llm.url, "api_key": "sk-test", "model": "gpt-4.1-mini", "timeout": "120s",
                    "price_in": 0.4, "price_out": 1.6, "max_retries": 0},
            "auto_analyze": {"enabled": True, "min_severity": "info"},
        },
    }


def outbox(db: Path) -> list[tuple[str, str, str, str, str]]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2) as conn:
            return conn.execute("SELECT channel, idempotency_key, event, incident_id, state FROM outbox").fetchall()
    except sqlite3.OperationalError:
        return []


def parse(service: str, body: bytes, at: float, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(incident id, kind) of what one request told the receiver; ``ids`` maps fingerprints to ids."""
    if service == "webhook":
        n = json.loads(body)["notice"]
        return [(n["incident"]["id"], n["kind"])]
    if service == "pagerduty":
        e = json.loads(body)
        inc = ids.get(e["dedup_key"].removeprefix("cryptomon:"), "?")
        return [(inc, {"trigger": "firing", "resolve": "resolved"}.get(e["event_action"], e["event_action"]))]
    if service == "alertmanager":
        out = []
        for alert in json.loads(body):
            inc = ids.get(alert["labels"].get("cryptomon_fingerprint", ""), "?")
            ends = datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00")).timestamp()
            out.append((inc, "resolved" if ends <= at + 1 else "firing"))
        return out
    text = body.decode("utf-8", "replace")
    found = [i for i in ids.values() if i in text]
    kind = "resolved" if "RESOLVED" in text else "analysis" if "ANALYSIS" in text else "firing"
    return [(found[0] if len(found) == 1 else "?", kind)]


@pytest.mark.timeout(300)
async def test_every_due_firing_then_one_resolve_per_channel_across_trouble_and_sigkill(
    tmp_path: Path, sink: WebhookSink, targets: Targets, llm: FakeOpenAIServer
) -> None:
    db = tmp_path / "cryptomon.sqlite3"
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config(targets, sink, llm, db, "http://127.0.0.1:9/api/webhooks/1/x")))
    env = {**os.environ, "CRYPTOMON_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}

    async def daemon(events_path: Path) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg), "--no-control",
            "--events-jsonl", str(events_path), stdout=asyncio.subprocess.DEVNULL,
            stderr=open(tmp_path / f"{events_path.stem}.log", "wb"), stdin=asyncio.subprocess.DEVNULL,  # noqa: ASYNC230
            env=env,
        )

    # phase 1: every channel in trouble
    sink.fail("slack", Reply(429, "rate limited", headers={"Retry-After": "2"}))
    sink.fail("wecom", Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}))
    for service in ("telegram", "pagerduty", "alertmanager", "webhook"):
        sink.fail(service, Reply(503, "unavailable"))
    ev1 = tmp_path / "events1.jsonl"
    first = await daemon(ev1)
    try:
        await eventually(lambda: len([e for e in events(ev1) if e["event"] == "opened"]) == len(TARGETS), 40,
                         "an incident per failing target")
        await eventually(lambda: len(llm.requests) >= 1, 20, "the auto-analysis to reach the (hung) LLM")
        # the hung LLM holds nothing back: every channel is tried with the firings
        await eventually(lambda: all(sink.of(s) for s in ("slack", "wecom", "telegram", "pagerduty", "webhook")),
                         20, "a first attempt on every reachable channel")
        for name in TARGETS:
            targets.status[name] = 200
        await eventually(lambda: len([e for e in events(ev1) if e["event"] == "resolved"]) == len(TARGETS), 60,
                         "every incident resolved while no channel delivers")
        await eventually(lambda: len([r for r in outbox(db) if r[2] == "resolved"]) == len(TARGETS) * 7, 20,
                         "a resolve queued for every channel", lambda: outbox(db))
        assert not [r for r in outbox(db) if r[4] == "sent"], outbox(db)  # nothing could be delivered yet
        # one request each that the receiver takes and never answers, then the kill
        seen = {s: len(sink.of(s)) for s in ("telegram", "webhook")}
        for s in seen:
            sink.fail(s, Reply(accept_then_hang=True))
        await eventually(lambda: all(len(sink.of(s)) > n for s, n in seen.items()), 20, "the in-flight requests")
        await kill_hard(first)
    finally:
        await reap(first)
    assert "sending" in {r[4] for r in outbox(db)}  # killed mid-send

    # phase 2: everything healthy, Discord reachable now
    wecom_from = len(sink.of("wecom"))  # WeCom refuses with HTTP 200 + errcode: only phase-2 requests delivered
    for service in ("slack", "wecom", "telegram", "pagerduty", "alertmanager", "webhook"):
        sink.fail(service, None)
    cfg.write_text(yaml.safe_dump(config(targets, sink, llm, db, sink.url("discord", "/api/webhooks/1/x"))))
    ev2 = tmp_path / "events2.jsonl"
    second = await daemon(ev2)
    try:
        await eventually(lambda: (rows := outbox(db)) != [] and all(r[4] == "sent" for r in rows), 90,
                         "every queued message sent", lambda: [r for r in outbox(db) if r[4] != "sent"])
        await asyncio.sleep(1.5)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(second.wait(), 20)
        except TimeoutError:
            second.kill()
            await second.wait()

    opened = {e["incident"]["id"]: e["incident"] for e in events(ev1) if e["event"] == "opened"}
    ids = {i["fingerprint"]: i["id"] for i in opened.values()}
    duplicates: dict[str, int] = {}
    for service in ("discord", "slack", "wecom", "telegram", "pagerduty", "webhook", "alertmanager"):
        ok = {200, 202, 204} if service != "webhook" else {200}
        got: list[tuple[str, str]] = []
        for req in sink.of(service)[wecom_from if service == "wecom" else 0 :]:
            if req.status in ok or (req.status == 0 and service in ("telegram", "webhook")):
                got += parse(service, req.body, req.at, ids)
        for inc in opened:
            kinds = [k for i, k in got if i == inc and k in ("firing", "resolved")]
            assert kinds, f"{service}: nothing about {inc} ({got})"
            assert kinds[0] == "firing", f"{service}/{inc}: resolved before firing: {kinds}"
            first_resolve = kinds.index("resolved") if "resolved" in kinds else None
            assert first_resolve is not None, f"{service}/{inc}: never resolved: {kinds}"
            after = kinds[first_resolve:]
            # after the resolve: never active again (Alertmanager, PagerDuty), nothing else
            assert set(after) == {"resolved"}, f"{service}/{inc}: active again after its resolve: {kinds}"
            if service in CHAT:
                duplicates[service] = duplicates.get(service, 0) + len(kinds) - 2
            elif service == "webhook":
                pass  # counted on the receiver's idempotency keys below
            else:  # idempotent: repeats carry the same dedup_key / labels
                duplicates.setdefault(service, 0)
        assert "?" not in {i for i, _ in got}, f"{service}: unattributed messages {got}"
    # the webhook receiver dedups on Idempotency-Key: each key processed once, the in-flight one came again
    rows = outbox(db)
    hook_keys = {r[1] for r in rows if r[0] == "webhook"}
    assert sorted(sink.processed) == sorted(hook_keys)
    assert len(sink.duplicates) <= 1, sink.duplicates
    duplicates["webhook (dropped by its key)"] = len(sink.duplicates)
    # only the channel without a key whose request was in flight at the kill may have a copy
    assert all(n == 0 for s, n in duplicates.items() if s in ("discord", "slack", "wecom")), duplicates
    assert duplicates.get("telegram", 0) <= 1, duplicates
    print("duplicates per channel:", duplicates)
