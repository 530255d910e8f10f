"""Acceptance (issue 12 items 3-4): an exchange that echoes the key, secret and passphrase (raw, URL-encoded,
base64) together with terminal escapes in its error bodies and headers, an LLM that repeats a key and
answers with escape sequences, a webhook receiver whose error reply echoes its URL token. The real daemon
runs with every channel pointing at a local receiver; then every channel body, every e-mail, SQLite with
its WAL, the JSONL files, the log, /metrics, the snapshot and the output of every CLI command are grepped
for every configured secret in every form, and for terminal controls.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from tests.fakes.daemon_harness import REPO, real_daemon
from tests.fakes.openai_server import FakeOpenAIServer, Step
from tests.fakes.smtp_server import SmtpServer
from tests.fakes.webhook_sink import Reply, WebhookSink

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BINANCE_KEY = "bnKEYq7Vx2Lp9Rt4Wz6Yc8Nd0Fh3Jk5Mm"
BINANCE_SECRET = "bnSECRETa1S2d3F4g5H6j7K8l9Z0x"
OKX_KEY = "okxKEY-3c1f9e2a-55bb-4c2d"
OKX_SECRET = "okxSECRET+9D3C/2B1A0F9E8D7C="
OKX_PASSPHRASE = "okx Pass:phrase/77&"
HOOK_TOKEN = "hookTOKENp4Q8r2S6t0U"
SLACK_TOKEN = "slackTOKENx1Y2z3A4b5C6"
DISCORD_TOKEN = "discordTOKENm9N8b7V6c5X4"
WECOM_KEY = "wecomKEY-0aa1-bb2c-cc3d"
TG_TOKEN = "987654321:AAtgTOKEN-q1w2e3r4t5y6"
PD_KEY = "pdROUTINGkey0123456789ab"
HMAC_KEY = "hmacKEYz9y8x7w6v5u4"
SMTP_PASSWORD = "smtpPASSWORDr5t6y7u8"
AM_PASSWORD = "amPASSWORDk3j4h5g6"
LLM_KEY = "sk-llmKEYf1e2d3c4b5a6"
SECRETS = (
    BINANCE_KEY, BINANCE_SECRET, OKX_KEY, OKX_SECRET, OKX_PASSPHRASE, HOOK_TOKEN, SLACK_TOKEN, DISCORD_TOKEN,
    WECOM_KEY, TG_TOKEN, PD_KEY, HMAC_KEY, SMTP_PASSWORD, AM_PASSWORD, LLM_KEY,
)
# terminal controls that must never come out of untrusted text: ESC, C0 but newline/tab, DEL, C1, bidi
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x07\u202egnirts\x1b[31m"

SCENARIO = f"""\
name: echoed-secrets
description: a careless gateway in front of binance and okx repeats every credential it sees
duration: 900s
loop: false
seed: 12
faults:
  - exchange: binance
    type: errors
    start: 0s
    duration: 600s
    status: 401
    code: -2015
    message: {json.dumps("Invalid API-key " + HOSTILE)}
    echo: true
    leak: [{json.dumps(BINANCE_SECRET)}]
  - exchange: okx
    type: errors
    start: 0s
    duration: 600s
    status: 401
    code: 50113
    message: {json.dumps("Invalid Sign " + HOSTILE)}
    echo: true
    leak: [{json.dumps(OKX_SECRET)}, {json.dumps(OKX_PASSPHRASE)}]
"""

HOSTILE_ANALYSIS = json.dumps(
    {
        "root_cause": f"The gateway rejects key {BINANCE_KEY} {HOSTILE}",
        "severity": "ERROR",
        "recommended_action": "Rotate the key\x1b]52;c;cm0gLXJmIH4=\x07 "
        + base64.b64encode(BINANCE_KEY.encode()).decode(),
        "estimated_recovery": "after the key is rotated",
        "confidence": 0.8,
        "evidence": [f"401 {HOSTILE}"],
    }
)


def forms(secret: str) -> set[str]:
    raw = secret.encode()
    b64 = base64.b64encode(raw).decode()
    urlsafe = base64.urlsafe_b64encode(raw).decode()
    return {secret, quote(secret, safe=""), quote_plus(secret), b64, b64.rstrip("="), urlsafe, urlsafe.rstrip("=")}


def assert_clean(where: str, text: str, *, controls: bool = True) -> None:
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"{where} holds a form of a configured secret ({form[:8]}...)"
    if controls:
        bad = UNSAFE.search(text)
        around = "" if bad is None else text[max(0, bad.start() - 60) : bad.end() + 20]
        assert bad is None, f"{where} holds a terminal control {bad.group(0)!r}: {around!r}"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cms-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cli(config: Path, *args: str) -> str:
    """One CLI command's whole output (stdout and stderr), whatever its exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon_tui", *args, "--config", str(config)],
        cwd=REPO, capture_output=True, timeout=60, env={**os.environ, "CRYPTOMON_TEST_LLM_KEY": LLM_KEY},
        stdin=subprocess.DEVNULL,
    )
    return proc.stdout.decode("utf-8", "replace") + "\n" + proc.stderr.decode("utf-8", "replace")


def store_files(folder: Path, label: str) -> dict[str, str]:
    """The SQLite database, its WAL and shared memory, byte for byte."""
    return {f"file {p.name}{label}": p.read_bytes().decode("latin-1") for p in sorted(folder.glob("*.sqlite3*"))}


def http_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bytes(resp.read()).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.read().decode("utf-8", "replace")


async def wait_for(cond: Any, what: str, within: float = 40.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_echoed_secrets_leave_no_trace(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOMON_TEST_LLM_KEY", LLM_KEY)
    sink = WebhookSink()
    await sink.start()
    smtp = SmtpServer(username="bot", password=SMTP_PASSWORD)
    smtp_port = smtp.start()
    llm = FakeOpenAIServer()
    llm.default = Step(content=HOSTILE_ANALYSIS)
    llm.start_in_thread()
    # the webhook receiver first refuses, echoing its own URL token: the channel breaks, and the
    # "channel broken" incident that goes to the other channels must not carry the token
    sink.script("webhook", Reply(401, {"error": f"unknown token in /webhook/in/{HOOK_TOKEN} {HOSTILE}"}))
    channels: dict[str, dict[str, Any]] = {
        "discord": {"type": "discord", "url": sink.url("discord", f"/1/{DISCORD_TOKEN}")},
        "slack": {"type": "slack", "url": sink.url("slack", f"/T/B/{SLACK_TOKEN}")},
        "wecom": {"type": "wecom", "url": sink.url("wecom", f"/send?key={WECOM_KEY}")},
        "telegram": {"type": "telegram", "token": TG_TOKEN, "chat_id": "-1", "api_url": sink.url("telegram"),
                     "rate_limit": "10/s"},
        "pagerduty": {"type": "pagerduty", "routing_key": PD_KEY, "url": sink.url("pagerduty", "/v2/enqueue")},
        "webhook": {"type": "webhook", "url": sink.url("webhook", f"/in/{HOOK_TOKEN}"), "secret": HMAC_KEY},
        "alertmanager": {"type": "alertmanager", "url": sink.url("alertmanager"), "username": "cm",
                         "password": AM_PASSWORD},
        "email": {"type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none", "username": "bot",
                  "password": SMTP_PASSWORD, "sender": "cm@example.org", "to": "ops@example.org"},
    }
    extra = {
        "exchanges": {
            "binance": {"probes": ["time", "ticker", "account"],
                        "credentials": {"api_key": BINANCE_KEY, "api_secret": BINANCE_SECRET}},
            "okx": {"probes": ["time", "ticker", "account"],
                    "credentials": {"api_key": OKX_KEY, "api_secret": OKX_SECRET, "passphrase": OKX_PASSPHRASE}},
        },
        "notify": {
            "channels": channels,
            "routes": [{"channels": list(channels), "group_wait": "0s", "group_interval": "1s"}],
            "backoff_base": "200ms",
            "backoff_cap": "1s",
        },
        "analysis": {
            "llm": {"base_url": llm.url, "api_key": "${CRYPTOMON_TEST_LLM_KEY}", "model": "gpt-4.1-mini",
                    "price_in": "0.40", "price_out": "1.60",
                    "timeout": "5s", "stream": False},
            "auto_analyze": {"enabled": True, "min_severity": "warning"},
        },
    }
    outputs: dict[str, str] = {}
    try:
        with real_daemon(
            tmp_path, short_dir, scenario=SCENARIO, extra=extra, extra_args=["--log-level", "debug"]
        ) as daemon:
            await wait_for(lambda: all(sink.of(s, 200) or sink.of(s, 202) for s in
                                       ("discord", "slack", "wecom", "telegram", "pagerduty", "alertmanager")),
                           "a delivered message on every HTTP channel")
            await wait_for(lambda: len(smtp.received) >= 1, "an e-mail")
            await wait_for(lambda: len(sink.of("webhook")) >= 1, "the webhook's echoing refusal")
            await wait_for(lambda: any(b"webhook" in r.body for r in sink.of("slack")), "the broken channel on slack")
            await wait_for(lambda: len(llm.requests) >= 1, "the auto-analysis")
            await asyncio.sleep(0)  # let the last writes land (the reads below poll the store anyway)
            outputs["metrics"] = await asyncio.to_thread(http_text, daemon.http_url + "/metrics")
            outputs["snapshot"] = await asyncio.to_thread(http_text, daemon.http_url + "/api/v1/snapshot")
            cfg = daemon.config_path
            listing = await asyncio.to_thread(cli, cfg, "incidents", "--json")
            outputs["incidents --json"] = listing
            ids = re.findall(r'"id":\s*"([0-9a-zA-Z_-]{6,})"', listing)
            assert ids, listing[-2000:]
            for args in (
                ("incidents",), ("export", "--since", "1h"), ("export", "--since", "1h", "--format", "jsonl"),
                ("notify", "status"), ("notify", "status", "--json", "--dead"), ("notify", "test", "slack"),
                ("notify", "test", "webhook"), ("analyze", ids[0], "--offline"), ("analyze", ids[0]),
                ("analyze", ids[0], "--json"), ("costs",), ("status",), ("status", "--json"),
                ("silences",), ("summary", "--offline"), ("summary", "--json"),
            ):
                outputs[" ".join(args)] = await asyncio.to_thread(cli, cfg, *args)
            # SQLite while the daemon holds it open: the WAL is live
            outputs.update(await asyncio.to_thread(store_files, tmp_path, " (live)"))
        outputs.update(store_files(tmp_path, ""))
        outputs["log"] = daemon.log_path.read_text(errors="replace")
        outputs["probes.jsonl"] = daemon.probes_path.read_text(errors="replace")
        outputs["events.jsonl"] = daemon.events_path.read_text(errors="replace")
    finally:
        await sink.stop()
        smtp.stop()
        llm.stop_thread()

    # the exchange did echo (the daemon saw the secrets), and the echo reached the daemon's records masked
    assert "echo:" in outputs["probes.jsonl"], outputs["probes.jsonl"][-1500:]
    assert any(r.status == 401 for r in sink.of("webhook"))
    # every channel body (not the URL or the auth headers: those are where the secrets belong)
    for rec in sink.requests:
        body = rec.body.decode("utf-8", "replace")
        if rec.service == "pagerduty":  # the routing key is PagerDuty's addressing field: it belongs there once
            assert body.count(PD_KEY) == 1
            body = body.replace(f'"routing_key": "{PD_KEY}"', "", 1)
        assert_clean(f"{rec.service} body", body, controls=False)
        for key in ("text",):  # Telegram's text field itself carries no control character
            if rec.service == "telegram" and rec.body:
                assert_clean("telegram text", json.loads(rec.body).get(key, ""))
    for i, mail in enumerate(smtp.received):
        message = mail.message
        for part in message.walk():
            if part.get_content_maintype() == "text":
                text = str(part.get_content()).replace("\r\n", "\n")  # SMTP line ends
                assert_clean(f"e-mail {i} {part.get_content_type()}", text)
        assert_clean(f"e-mail {i} raw", message.as_string(), controls=False)
    assert "No open incidents" not in outputs["summary --offline"] and "Incidents: " in outputs["summary --offline"]
    assert "Root cause" in outputs[f"analyze {ids[0]} --offline"]
    assert '"from": "daemon"' in outputs["summary --json"]  # the running daemon answered (as the UI's m)
    # issue 12 item 5: every firing says what broke and what to do (the offline verdict at once)
    firings = [r.body.decode() for r in sink.of("slack") if b"FIRING" in r.body]
    assert firings and all("Root cause" in b and "Action" in b for b in firings), firings[:1]
    broken_notes = [r.body.decode() for r in sink.of("slack") if b"webhook" in r.body]
    assert broken_notes, "the broken webhook channel was never reported to slack"
    for name, text in outputs.items():
        binary = name.startswith("file ")
        assert_clean(name, text, controls=not binary)
