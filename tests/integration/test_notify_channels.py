"""Every channel against a real local receiver: the sink imitating each service, and a real SMTP server.

Checks each service's own success signal, every failure class (429 + retry_after, 5xx, hangs,
HTTP-200 errors, bad keys), escaping of untrusted text, size limits and that no secret leaks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import IncidentState
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels import Verdict, build_channel
from cryptomon_tui.notify.channels.base import MAX_WAIT_S, Channel
from cryptomon_tui.notify.model import Notice, NoticeKind, incident_payload
from tests.fakes.smtp_server import SmtpServer, self_signed_context
from tests.fakes.webhook_sink import Reply, WebhookSink
from tests.unit.test_notify_notifier import incident

SECRET = "S3cr3tT0kenXYZ"
EVIL = "<script>alert(1)</script> @everyone **bold** _x_ [link](http://evil) & <@123> `code` # head"


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


def channel(name: str, spec: dict[str, Any]) -> Channel:
    cfg = config_from_data({"notify": {"channels": {name: spec}}})
    return build_channel(name, cfg.notify.channels[name], RealClock(), "tokyo-1")


def notice(kind: NoticeKind = NoticeKind.FIRING, summary: str = "binance ping failing", **kw: Any) -> Notice:
    inc = incident(summary=summary, last_error=kw.pop("last_error", "HTTP 503"), **kw)
    if kind is NoticeKind.RESOLVED:
        inc = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=inc.started_at + 125)
    return Notice(kind, inc.started_at + 60, incident_payload(inc), location="tokyo-1")


async def test_discord_success_embed_and_escaping(sink: WebhookSink) -> None:
    ch = channel("d", {"type": "discord", "url": sink.url("discord", f"/123/{SECRET}")})
    result = await ch.send(notice(summary=EVIL, severity=Severity.CRITICAL), "k1")
    await ch.close()
    assert result.verdict is Verdict.SUCCESS and "message id" in result.answer
    req = sink.of("discord")[0]
    assert req.query["wait"] == "true"
    body = req.json()
    assert body["allowed_mentions"] == {"parse": []}
    embed = body["embeds"][0]
    assert embed["color"] == 0xD32F2F
    assert "@everyone" not in body["content"] and "\\*\\*bold\\*\\*" in body["content"]
    assert len(embed["title"]) <= 256


async def test_discord_429_retry_after_float_and_permanent_errors(sink: WebhookSink) -> None:
    ch = channel("d", {"type": "discord", "url": sink.url("discord", f"/123/{SECRET}"), "timeout": 0.5})
    sink.script(
        "discord",
        Reply(
            429, {"message": "You are being rate limited.", "retry_after": 2.5, "global": False}, {"Retry-After": "3"}
        ),
        Reply(404, {"message": "Unknown Webhook", "code": 10015}),
        Reply(400, {"message": "Invalid Form Body", "code": 50035}),
        Reply(502, "bad gateway"),
        Reply(hang=True),
    )
    r429 = await ch.send(notice(), "k")
    assert r429.verdict is Verdict.RETRY and r429.rate_limited and r429.retry_after == 3.0
    assert (await ch.send(notice(), "k")).verdict is Verdict.BROKEN
    assert (await ch.send(notice(), "k")).verdict is Verdict.REJECTED
    assert (await ch.send(notice(), "k")).verdict is Verdict.RETRY
    hung = await ch.send(notice(), "k")
    assert hung.verdict is Verdict.RETRY and "timeout" in hung.answer
    await ch.close()


async def test_slack_only_ok_body_is_success(sink: WebhookSink) -> None:
    ch = channel("s", {"type": "slack", "url": sink.url("slack", f"/T0/B0/{SECRET}")})
    ok = await ch.send(notice(summary=EVIL), "k")
    assert ok.verdict is Verdict.SUCCESS
    body = sink.of("slack")[0].json()
    assert body["text"] and body["blocks"][0]["type"] == "header"
    assert "<script>" not in json.dumps(body["blocks"][1:]) and "&lt;script&gt;" in json.dumps(body)
    sink.script(
        "slack",
        Reply(200, "invalid_token"),
        Reply(404, "no_service"),
        Reply(400, "invalid_payload"),
        Reply(429, "rate_limited", {"Retry-After": "7"}),
        Reply(200, "maybe"),
    )
    assert (await ch.send(notice(), "k")).verdict is Verdict.BROKEN  # HTTP 200, but the body says no
    assert (await ch.send(notice(), "k")).verdict is Verdict.BROKEN
    assert (await ch.send(notice(), "k")).verdict is Verdict.REJECTED
    limited = await ch.send(notice(), "k")
    assert limited.rate_limited and limited.retry_after == 7.0
    odd = await ch.send(notice(), "k")
    assert odd.verdict is Verdict.RETRY and not odd.ok
    await ch.close()


async def test_wecom_reads_errcode_in_http_200(sink: WebhookSink) -> None:
    ch = channel("w", {"type": "wecom", "url": sink.url("wecom", f"/send?key={SECRET}")})
    big = "故障" * 3000  # 6 bytes per repetition in UTF-8: far over the 4096-byte limit
    assert (await ch.send(notice(summary=big + EVIL), "k")).verdict is Verdict.SUCCESS
    content = sink.of("wecom")[0].json()["markdown"]["content"]
    assert len(content.encode()) <= 4096 and "<script>" not in content
    sink.script(
        "wecom",
        Reply(200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [xxx]"}),
        Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
        Reply(200, "<html>gateway</html>"),
    )
    broken = await ch.send(notice(), "k")
    assert broken.verdict is Verdict.BROKEN and "93000" in broken.answer
    limited = await ch.send(notice(), "k")
    assert limited.verdict is Verdict.RETRY and limited.retry_after == 60.0 and limited.rate_limited
    assert (await ch.send(notice(), "k")).verdict is Verdict.RETRY
    await ch.close()


async def test_telegram_html_escaping_and_errors(sink: WebhookSink) -> None:
    ch = channel(
        "t", {"type": "telegram", "token": f"123:{SECRET}", "chat_id": -100123, "api_url": sink.url("telegram")}
    )
    assert (await ch.send(notice(summary=EVIL), "k")).verdict is Verdict.SUCCESS
    req = sink.of("telegram")[0]
    assert req.path == f"/telegram/bot123:{SECRET}/sendMessage"
    body = req.json()
    assert body["parse_mode"] == "HTML" and body["chat_id"] == "-100123"
    assert "&lt;script&gt;" in body["text"] and "<script>" not in body["text"]
    assert len(body["text"]) <= 4096
    sink.script(
        "telegram",
        Reply(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 17",
                "parameters": {"retry_after": 17},
            },
        ),
        Reply(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}),
    )
    limited = await ch.send(notice(), "k")
    assert limited.retry_after == 17.0 and limited.rate_limited
    assert (await ch.send(notice(), "k")).verdict is Verdict.BROKEN
    unauthorized = await ch.send(notice(), "k")
    assert unauthorized.verdict is Verdict.BROKEN and SECRET not in unauthorized.answer
    await ch.close()


async def test_pagerduty_trigger_ack_resolve_share_dedup_key(sink: WebhookSink) -> None:
    ch = channel("p", {"type": "pagerduty", "routing_key": SECRET, "url": sink.url("pagerduty", "/v2/enqueue")})
    for kind in (NoticeKind.FIRING, NoticeKind.ACKNOWLEDGED, NoticeKind.RESOLVED):
        result = await ch.send(notice(kind), "k")
        assert result.verdict is Verdict.SUCCESS and result.status == 202
    bodies = [r.json() for r in sink.of("pagerduty")]
    assert [b["event_action"] for b in bodies] == ["trigger", "acknowledge", "resolve"]
    assert len({b["dedup_key"] for b in bodies}) == 1
    assert bodies[0]["payload"]["severity"] == "error" and len(bodies[0]["payload"]["summary"]) <= 1024
    sink.script(
        "pagerduty",
        Reply(
            400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["'payload' is missing"]}
        ),
        Reply(429, {"status": "throttled"}),
        Reply(503, "unavailable"),
    )
    assert (await ch.send(notice(), "k")).verdict is Verdict.REJECTED
    assert (await ch.send(notice(), "k")).rate_limited
    assert (await ch.send(notice(), "k")).verdict is Verdict.RETRY
    await ch.close()


async def test_webhook_signature_and_idempotency_key(sink: WebhookSink) -> None:
    ch = channel("h", {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": SECRET})
    assert (await ch.send(notice(), "key-1")).ok
    assert (await ch.send(notice(), "key-1")).ok  # a resend after a crash
    first, _second = sink.of("webhook")
    ts = first.headers["X-Cryptomon-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + first.body, hashlib.sha256).hexdigest()
    assert first.headers["X-Cryptomon-Signature"] == expected
    assert first.headers["X-Cryptomon-Idempotency-Key"] == "key-1"
    assert sink.delivered == {"key-1": 2} and sink.duplicates == ["key-1"]
    sink.script("webhook", Reply(500, "oops"), Reply(410, "gone"))
    assert (await ch.send(notice(), "k2")).verdict is Verdict.RETRY
    assert (await ch.send(notice(), "k2")).verdict is Verdict.BROKEN
    await ch.close()


async def test_email_plain_and_html_through_real_smtp_with_auth() -> None:
    server = SmtpServer(username="bot", password=SECRET)
    port = server.start()
    try:
        spec = {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "username": "bot",
            "password": SECRET,
            "sender": "cryptomon@example.org",
            "to": ["ops@example.org"],
        }
        ch = channel("e", spec)
        result = await ch.send(notice(summary=EVIL), "key-mail")
        assert result.ok, result.answer
        (got,) = server.received
        assert got.rcpt_tos == ["ops@example.org"]
        msg = got.message
        assert "binance" in msg["Subject"] and "\n" not in msg["Subject"]
        assert msg["X-Cryptomon-Idempotency-Key"] == "key-mail"
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert plain is not None and html is not None
        assert "<script>" in plain.get_content() and "&lt;script&gt;" in html.get_content()
        bad = channel("e", {**spec, "password": "wrong"})
        refused = await bad.send(notice(), "k")
        assert refused.verdict is Verdict.BROKEN and "wrong" not in refused.answer
        server.handler.reject_with = "451 4.3.0 try again later"
        assert (await ch.send(notice(), "k")).verdict is Verdict.RETRY
    finally:
        server.stop()


async def test_unreachable_services_are_retryable_and_secret_free(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    specs = {
        "discord": {"type": "discord", "url": f"http://127.0.0.1:9/api/webhooks/1/{SECRET}"},
        "slack": {"type": "slack", "url": f"http://127.0.0.1:9/services/{SECRET}"},
        "wecom": {"type": "wecom", "url": f"http://127.0.0.1:9/send?key={SECRET}"},
        "telegram": {"type": "telegram", "token": SECRET, "chat_id": "1", "api_url": "http://127.0.0.1:9"},
        "pagerduty": {"type": "pagerduty", "routing_key": SECRET, "url": "http://127.0.0.1:9/v2/enqueue"},
        "webhook": {"type": "webhook", "url": f"http://127.0.0.1:9/{SECRET}", "secret": SECRET},
        "alertmanager": {"type": "alertmanager", "url": "http://127.0.0.1:9", "username": "u", "password": SECRET},
    }
    for name, spec in specs.items():
        ch = channel(name, spec)
        result = await ch.send(notice(), "k")
        await ch.close()
        assert result.verdict is Verdict.RETRY, (name, result)
        assert SECRET not in result.answer
    assert SECRET not in caplog.text


async def test_discord_empty_bucket_headers_pause_the_channel(sink: WebhookSink) -> None:
    ch = channel("d", {"type": "discord", "url": sink.url("discord", "/1/tok")})
    headers = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.5"}
    sink.script("discord", Reply(200, {"id": "42"}, headers))
    result = await ch.send(notice(), "k")
    await ch.close()
    assert result.ok and result.pause_for == 2.5


async def test_apprise_channel_reaches_a_json_endpoint(sink: WebhookSink) -> None:
    pytest.importorskip("apprise")
    ch = channel("a", {"type": "apprise", "urls": [f"json://127.0.0.1:{sink.port}/webhook/apprise"]})
    result = await ch.send(notice(summary="apprise works"), "k")
    assert result.ok, result.answer
    (req,) = sink.of("webhook")
    assert "apprise works" in req.body.decode()
    sink.fail("webhook", Reply(500, "down"))
    assert (await ch.send(notice(), "k")).verdict is Verdict.RETRY


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_email_over_starttls_and_implicit_tls(security: str, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    ctx = self_signed_context(tmp_path)
    kwargs = {"starttls": ctx} if security == "starttls" else {"implicit_tls": ctx}
    server = SmtpServer(username="bot", password=SECRET, **kwargs)  # type: ignore[arg-type]
    port = server.start()
    try:
        spec = {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": "bot",
            "password": SECRET,
            "sender": "cryptomon@example.org",
            "to": "ops@example.org",
        }
        strict = await channel("e", spec).send(notice(), "k")  # self-signed: refused while verifying
        assert strict.verdict is Verdict.BROKEN and "certificate" in strict.answer and SECRET not in strict.answer
        result = await channel("e", {**spec, "validate_certs": False}).send(notice(), "k-tls")
        assert result.ok, result.answer
        assert [r.message["X-Cryptomon-Idempotency-Key"] for r in server.received] == ["k-tls"]
    finally:
        server.stop()


async def test_webhook_sends_the_standard_idempotency_key_and_a_verdict_update_event(sink: WebhookSink) -> None:
    """Issue 12: the webhook's key also travels as ``Idempotency-Key``; a late verdict is an ``analysis`` event."""
    ch = channel("h", {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": SECRET})
    assert not ch.supports_digest  # one message, one key: a retried message is dropped by its key, never merged anew
    assert (await ch.send(notice(), "key-9")).ok
    update_notice = dataclasses.replace(notice(NoticeKind.ANALYSIS), analysis="gateway 502s: wait")
    assert (await ch.send(update_notice, "key-10")).ok
    first, update = sink.of("webhook")
    assert first.headers["Idempotency-Key"] == first.headers["X-Cryptomon-Idempotency-Key"] == "key-9"
    body = update.json()
    assert body["kind"] == "analysis" and body["notice"]["analysis"] == "gateway 502s: wait"
    await ch.close()


async def test_email_messages_of_one_incident_share_a_thread() -> None:
    """The resolve and a late verdict reply in the firing's thread (same References root)."""
    server = SmtpServer()
    port = server.start()
    try:
        spec = {"type": "email", "host": "127.0.0.1", "port": port, "security": "none",
                "sender": "cryptomon@example.org", "to": ["ops@example.org"]}
        ch = channel("e", spec)
        for kind, key in ((NoticeKind.FIRING, "k-f"), (NoticeKind.ANALYSIS, "k-a"), (NoticeKind.RESOLVED, "k-r")):
            assert (await ch.send(notice(kind), key)).ok
        firing, verdict, resolved = (r.message for r in server.received)
        root = firing["References"]
        assert root and firing["In-Reply-To"] is None
        assert verdict["In-Reply-To"] == verdict["References"] == root
        assert resolved["In-Reply-To"] == resolved["References"] == root
        assert len({firing["Message-ID"], verdict["Message-ID"], resolved["Message-ID"]}) == 3
    finally:
        server.stop()


async def test_hostile_waits_and_error_lists_are_bounded_and_classified(sink: WebhookSink) -> None:
    """A receiver's reply is untrusted: an infinite or absurd wait (JSON 1e999 parses to inf, "inf" is a float
    to Python) is clamped to a day instead of pausing the channel forever, and an odd ``errors`` value is
    classified, not a crash turned into "internal error"."""
    day = MAX_WAIT_S
    d = channel("d", {"type": "discord", "url": sink.url("discord", "/1/tok")})
    sink.script(
        "discord",
        Reply(429, '{"message": "slow down", "retry_after": 1e999}', {"Retry-After": "1e999"}),
        Reply(429, '{"retry_after": 9e99}'),
        Reply(200, {"id": "42"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "inf"}),
        Reply(200, {"id": "43"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "1e308"}),
    )
    infinite = await d.send(notice(), "k")
    assert infinite.rate_limited and infinite.retry_after == 1.0  # neither wait is a number: the floor
    assert (await d.send(notice(), "k")).retry_after == day
    assert (await d.send(notice(), "k")).pause_for is None
    assert (await d.send(notice(), "k")).pause_for == day
    await d.close()
    t = channel("t", {"type": "telegram", "token": f"123:{SECRET}", "chat_id": 1, "api_url": sink.url("telegram")})
    sink.script(
        "telegram",
        Reply(429, '{"ok": false, "error_code": 429, "parameters": {"retry_after": Infinity}}', {"Retry-After": "5"}),
        Reply(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": 0}}, {"Retry-After": "5"}),
        Reply(429, {"ok": False, "error_code": 429, "parameters": {"retry_after": "17"}}, {"Retry-After": "nan"}),
    )
    assert (await t.send(notice(), "k")).retry_after == 5.0
    assert (await t.send(notice(), "k")).retry_after == 0.0  # a real zero is honoured
    assert (await t.send(notice(), "k")).retry_after == 1.0
    await t.close()
    p = channel("p", {"type": "pagerduty", "routing_key": SECRET, "url": sink.url("pagerduty", "/v2/enqueue")})
    sink.script("pagerduty", Reply(400, {"message": "bad", "errors": 5}), Reply(400, {"errors": {"a": [1]}}))
    rejected = await p.send(notice(), "k")
    assert rejected.verdict is Verdict.REJECTED and rejected.answer == "400 bad: 5"
    assert (await p.send(notice(), "k")).verdict is Verdict.REJECTED
    await p.close()
