"""``cryptomon notify test|status|resend`` against the local sink and a real store; no secret in any output."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from cryptomon_tui.cli import main
from cryptomon_tui.config import load_config
from cryptomon_tui.notify.model import NewOutboxRow, Notice, NoticeKind
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.store.store import Store
from tests.fakes.webhook_sink import Reply, WebhookSink

SECRET = "hunter2-SECRET-token"


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


def write_config(tmp_path: Path, sink: WebhookSink, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SLACK_HOOK", sink.url("slack", f"/T0/B0/{SECRET}"))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "exchanges": {},
                "storage": {"path": str(tmp_path / "db.sqlite3")},
                "notify": {
                    "channels": {
                        "slack": {"type": "slack", "url": "${SLACK_HOOK}"},
                        "tg": {"type": "telegram", "token": SECRET, "chat_id": "42", "api_url": sink.url("telegram")},
                    }
                },
            }
        )
    )
    return cfg


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_notify_test_prints_the_service_answer_and_marks_broken(
    sink: WebhookSink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = write_config(tmp_path, sink, monkeypatch)
    assert await cli("notify", "test", "tg", "--config", str(cfg)) == 0
    out = capsys.readouterr().out
    assert out.startswith("tg: success: ok message_id")
    assert sink.of("telegram")[0].json()["chat_id"] == "42"

    sink.script("slack", Reply(404, "no_service"))
    assert await cli("notify", "test", "slack", "--config", str(cfg)) == 1
    assert "broken: 404 no_service" in capsys.readouterr().out

    assert await cli("notify", "status", "--json", "--config", str(cfg)) == 0
    status = {c["channel"]: c for c in json.loads(capsys.readouterr().out)["channels"]}
    assert status["slack"]["broken"] is True and status["slack"]["broken_reason"] == "404 no_service"
    assert status["tg"]["broken"] is False

    assert await cli("notify", "status", "--config", str(cfg)) == 0
    table = capsys.readouterr().out
    assert "BROKEN" in table and "slack: broken: 404 no_service" in table

    assert await cli("notify", "test", "slack", "--config", str(cfg)) == 0  # fixed: recovers
    capsys.readouterr()
    assert await cli("notify", "status", "--json", "--config", str(cfg)) == 0
    everything = capsys.readouterr()
    assert json.loads(everything.out)["channels"][0]["broken"] is False
    assert await cli("notify", "test", "nope", "--config", str(cfg)) == 2
    everything_err = capsys.readouterr().err
    assert "no channel named 'nope'" in everything_err
    for text in (out, table, everything.out, everything.err, everything_err, caplog.text):
        assert SECRET not in text


async def test_status_lists_dead_letters_and_resend_requeues_them(
    sink: WebhookSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg_path = write_config(tmp_path, sink, monkeypatch)
    config, _ = load_config(cfg_path)
    store = Store(config.storage)
    assert await store.open(background=False)
    outbox = StoreOutbox(store)
    notice = Notice(NoticeKind.FIRING, 1_700_000_000.0, {"id": "inc-9", "summary": "x"})
    rows = [
        NewOutboxRow("slack", "firing", "inc-9", "fp", "g", notice.to_json(), f"key-{i}", 1_700_000_000.0, 1.0)
        for i in range(2)
    ]
    ids = await outbox.outbox_enqueue(rows)
    await outbox.outbox_claim_due("slack", 1_800_000_000.0, 10)
    await outbox.outbox_mark_failed(ids, 1.0, f"attempt 12/12: 500 at https://x/{SECRET}", 2.0, dead=True)
    await store.close()

    assert await cli("notify", "status", "--dead", "--config", str(cfg_path)) == 0
    out = capsys.readouterr().out
    assert f"#{ids[0]} slack firing incident inc-9" in out and SECRET not in out
    assert "FAILURES" in out
    assert await cli("notify", "resend", str(ids[0]), "--config", str(cfg_path)) == 0
    assert "re-queued 1" in capsys.readouterr().out
    assert await cli("notify", "resend", "--all-dead", "--config", str(cfg_path)) == 0
    assert "re-queued 1" in capsys.readouterr().out
    assert await cli("notify", "status", "--json", "--config", str(cfg_path)) == 0
    slack = next(c for c in json.loads(capsys.readouterr().out)["channels"] if c["channel"] == "slack")
    assert slack["queued"] == 2 and slack["dead"] == 0 and slack["failures"] == 0  # resend: fresh budget
    assert await cli("notify", "resend", "--config", str(cfg_path)) == 2
