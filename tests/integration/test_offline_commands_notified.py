"""Issue 13 item 7, end to end with the real daemon process and a real webhook receiver: an ack and a silence
made with the CLI while the daemon is down reach the channels when it starts — the ack as an
``acknowledged`` notice, the silence as a ``silenced`` event (for the faces, the store and the notifier, which
then sends nothing more about that incident)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from tests.fakes.webhook_sink import Reply, WebhookSink
from tests.integration.processes import stop
from tests.integration.test_acceptance_restart import (
    Setup,
    cli,
    read_events,
    start_daemon,
    wait_event,
)

pytestmark = pytest.mark.slow


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def setup(tmp_path: Path, sink: WebhookSink) -> AsyncIterator[Setup]:
    short = Path(tempfile.mkdtemp(prefix="cmo-", dir="/tmp"))
    config = tmp_path / "config.yaml"
    sink.fail("discord", Reply(500, "down"))  # the targets answer 500: three outages, not our network
    targets = {name: {"kind": "generic", "url": sink.url("discord", f"/{name}"), "interval": "250ms",
                      "timeout": "1s"} for name in ("acked", "hushed", "other")}
    config.write_text(yaml.safe_dump({
        "exchanges": targets,
        "storage": {"path": str(tmp_path / "cryptomon.sqlite3"), "flush_interval": "200ms"},
        "notify": {"channels": {"hook": {"type": "webhook", "url": sink.url("webhook", "/in")}},
                   "routes": [{"channels": ["hook"], "group_wait": 0, "group_interval": 0,
                               "repeat_interval": "1s"}],
                   "poll_interval": "200ms"},
        "daemon": {"http": {"enabled": False}, "control": {"socket_path": str(short / "d.sock")}},
    }))
    home = tmp_path / "home"
    home.mkdir()
    yield Setup(config, home, short / "d.sock", tmp_path)  # type: ignore[misc]
    shutil.rmtree(short, ignore_errors=True)


def _kinds(sink: WebhookSink, incident_id: str) -> list[str]:
    out = []
    for r in sink.of("webhook", 200):
        body = r.json()
        if body.get("notice", {}).get("incident", {}).get("id") == incident_id:
            out.append(body["kind"])
    return out


@pytest.mark.timeout(120)
async def test_offline_ack_and_silence_reach_the_channel_when_the_daemon_starts(
    setup: Setup, sink: WebhookSink
) -> None:
    s = setup
    events1 = s.dir / "events1.jsonl"
    daemon = await start_daemon(s, events1)
    try:
        ids: dict[str, str] = {}
        for name in ("acked", "hushed", "other"):
            opened = await wait_event(events1, lambda e, n=name: e["event"] == "opened"
                                      and e["incident"]["exchange"] == n, 30, f"incident for {name}")
            ids[name] = opened["incident"]["id"]
        await wait_event(events1, lambda e: bool(_kinds(sink, ids["hushed"])), 20, "the firing delivered")
    finally:
        await stop(daemon)

    code, out = await cli(s, "ack", ids["acked"], "--note", "overnight", "--by", "carol")
    assert code == 0 and "no daemon running" in out, out
    code, out = await cli(s, "silence", "--exchange", "hushed", "--for", "2h", "--comment", "vendor window",
                          "--by", "carol")
    assert code == 0, out
    before = len(sink.of("webhook", 200))

    events2 = s.dir / "events2.jsonl"
    daemon = await start_daemon(s, events2)
    try:
        await wait_event(events2, lambda e: bool("acknowledged" in _kinds(sink, ids["acked"])), 30,
                         "the offline ack delivered to the webhook")
        silenced = await wait_event(events2, lambda e: e["event"] == "silenced", 20, "the offline silence announced")
        assert silenced["incident"]["id"] == ids["hushed"]
        assert silenced["actor"] == "carol" and silenced["incident"]["state"] != "resolved"
    finally:
        await stop(daemon)
    after = [r.json() for r in sink.of("webhook", 200)[before:]]
    hushed_after = [b["kind"] for b in after if b.get("notice", {}).get("incident", {}).get("id") == ids["hushed"]]
    assert hushed_after == [], hushed_after  # silenced: nothing more about it on the channel
    assert len([e for e in read_events(events2) if e["event"] == "silenced"]) == 1
    assert len([e for e in read_events(events2) if e["event"] == "acknowledged"]) == 1
