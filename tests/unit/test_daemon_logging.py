"""Log redaction: configured secrets and credential-looking URL parts never reach a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.logging import setup_logging
from cryptomon_tui.redaction import Redactor, collect_secrets

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
TOKEN = "ctl-token-0123456789abcdef"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_cryptomon_handler", False):
            root.removeHandler(handler)


def config_with_secrets() -> object:
    return config_from_data(
        {
            "exchanges": {"binance": {"credentials": {"api_key": API_KEY, "api_secret": API_SECRET}}},
            "daemon": {"control": {"transport": "tcp", "token": TOKEN}},
        }
    )


def test_collect_secrets_finds_secretstr_values() -> None:
    found = collect_secrets(config_with_secrets())  # type: ignore[arg-type]
    assert {API_KEY, API_SECRET, TOKEN} <= set(found)


@pytest.mark.parametrize("json_format", [False, True])
def test_every_record_is_redacted(log_stream: io.StringIO, json_format: bool) -> None:
    setup_logging(json_format, "debug", collect_secrets(config_with_secrets()), stream=log_stream)  # type: ignore[arg-type]
    log = logging.getLogger("cryptomon.test")
    log.info("signed with key %s", API_KEY)
    log.warning("GET https://api.binance.com/api/v3/account?timestamp=1&signature=abcdef0123456789 -> 401")
    log.info("posting to https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX")
    log.info("discord https://discord.com/api/webhooks/123456/very-secret-token-value failed")
    log.info("proxy https://bob:hunter2secret@proxy.local:3128 refused")
    log.info("headers", extra={"header": f"X-MBX-APIKEY: {API_KEY}"})
    try:
        raise RuntimeError(f"exchange refused secret {API_SECRET}")
    except RuntimeError:
        log.exception("boom with token %s", TOKEN)
    out = log_stream.getvalue()
    for secret in (API_KEY, API_SECRET, TOKEN, "abcdef0123456789", "XXXXXXXXXXXXXXXX", "very-secret-token-value",
                   "hunter2secret"):
        assert secret not in out, secret
    assert "signature=***" in out and "hooks.slack.com/services/***" in out
    assert "RuntimeError" in out  # tracebacks are kept, only scrubbed
    if json_format:
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines[0]["level"] == "info" and lines[0]["logger"] == "cryptomon.test"
        assert any("exc" in line for line in lines)


def test_redactor_leaves_ordinary_text_alone() -> None:
    r = Redactor(["supersecretvalue"])
    text = "binance book p99 2400ms error_rate=0.83 http_5xx"
    assert r.redact_for_log(text) == text
    assert r.redact_for_log("x supersecretvalue y") == "x *** y"
    assert r.redact_secrets("url?signature=abc") == "url?signature=abc"  # the wire scrubber is exact-only
