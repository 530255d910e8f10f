"""Nothing secret or identifying leaves the machine: checked on the exact bytes the provider receives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.service import AnalysisService
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import TimelineEntry
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.redaction import Redactor
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import FakeOpenAIServer, Step

LLM_KEY = "sk-live-LLMKEY9f8e7d6c5b4a"
BINANCE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
OKX_KEY = "d2f6a1b3-8c4e-4f7a-9b1d-2e3f4a5b6c7d"
OKX_SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
OKX_PASSPHRASE = "Tr4d1ng!Passphr@se"
HEX_SIG = hmac.new(BINANCE_SECRET.encode(), b"symbol=BTCUSDT&timestamp=1", hashlib.sha256).hexdigest()
B64_SIG = base64.b64encode(hmac.new(OKX_SECRET.encode(), b"2020GET/api", hashlib.sha256).digest()).decode()
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVlLWhlcmU"
DISCORD = "https://discord.com/api/webhooks/112233445566778899/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefghij"
SLACK = "https://hooks.slack.com/services/T0000AAAA/B0000BBBB/XXXXXXXXXXXXXXXXXXXXXXXX"
WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
TELEGRAM_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
GENERIC_HOOK = "https://alerts.example.org/notify?channel=ops&token=s3cr3tTok3nValue"
EMAIL = "trader.joe@example.com"
SMTP_PASSWORD = "smtp-Pa55word-xyz"
IPV4 = "203.0.113.77"
IPV6 = "2001:db8:85a3::8a2e:370:7334"
UID = "287654321"

SECRETS = [
    LLM_KEY,
    BINANCE_KEY,
    BINANCE_SECRET,
    OKX_KEY,
    OKX_SECRET,
    OKX_PASSPHRASE,
    HEX_SIG,
    B64_SIG,
    BEARER,
    DISCORD,
    SLACK,
    WECOM,
    TELEGRAM_TOKEN,
    "s3cr3tTok3nValue",
    EMAIL,
    SMTP_PASSWORD,
    IPV4,
    IPV6,
    UID,
    "112233445566778899/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-abcdefghij",
    "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa",
]


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    await srv.start()
    yield srv
    await srv.stop()


def leaky_config(url: str):  # type: ignore[no-untyped-def]
    return config_from_data(
        {
            "exchanges": {
                "binance": {"credentials": {"api_key": BINANCE_KEY, "api_secret": BINANCE_SECRET}},
                "okx": {"credentials": {"api_key": OKX_KEY, "api_secret": OKX_SECRET, "passphrase": OKX_PASSPHRASE}},
                "bybit": {},
                "deribit": {},
            },
            "analysis": {
                "llm": {"base_url": url, "model": "deepseek-chat", "api_key": LLM_KEY, "stream": False},
            },
            "notify": {
                "channels": {
                    "ops-discord": {"type": "discord", "url": DISCORD},
                    "ops-slack": {"type": "slack", "url": SLACK},
                    "wecom": {"type": "wecom", "url": WECOM},
                    "tg": {"type": "telegram", "token": TELEGRAM_TOKEN, "chat_id": "-100123456"},
                    "hook": {"type": "webhook", "url": GENERIC_HOOK},
                    "mail": {
                        "type": "email",
                        "host": "smtp.example.com",
                        "username": EMAIL,
                        "password": SMTP_PASSWORD,
                        "sender": EMAIL,
                        "to": [EMAIL],
                    },
                }
            },
        }
    )


def leaky_scenario() -> sc.Scenario:
    s = sc.binance_ip_ban()
    leaks = [
        f"Way too much request weight used; IP {IPV4} banned until {sc.BAN_UNTIL_MS}. apiKey={BINANCE_KEY}",
        f"signature={HEX_SIG} rejected for uid={UID} ({EMAIL})",
        f"OK-ACCESS-SIGN: {B64_SIG} OK-ACCESS-PASSPHRASE: {OKX_PASSPHRASE} from {IPV6}",
        f"Authorization: Bearer {BEARER}",
        f"notify failed: POST {DISCORD} and {SLACK} and {WECOM} returned 500",
        f"telegram https://api.telegram.org/bot{TELEGRAM_TOKEN}/sendMessage failed; also {GENERIC_HOOK}",
        f"smtp login as {EMAIL} with password {SMTP_PASSWORD} refused by {IPV4}:587",
        f"okx secret {OKX_SECRET} key {OKX_KEY}; account id: {UID}",
    ]
    results = list(s.results)
    for i, text in enumerate(leaks):
        results.append(
            sc.result(
                "binance",
                "account",
                sc.T0 + 215 + i,
                Outcome.AUTH,
                http_status=401,
                error_code="-2015",
                error_message=text,
            )
        )
    timeline = [TimelineEntry(sc.T0 + 210 + i, "evidence", text) for i, text in enumerate(leaks)]
    inc = s.incident.with_changes(
        summary=f"binance banned {IPV4} (uid {UID})", last_error=leaks[0], timeline=tuple(timeline)
    )
    other = sc.incident("notify_failed", None, sc.T0 + 200, summary=f"webhook {DISCORD} down")
    return sc.Scenario("leaky", inc, results, [other], now=s.now)


async def test_request_body_contains_none_of_the_secrets(server: FakeOpenAIServer) -> None:
    config = leaky_config(server.url)
    svc = AnalysisService(config, InMemoryUsageLedger(), sc_clock())  # redactor built from the config
    s = leaky_scenario()
    ctx = build_context(s.incident, s.stats, s.results, s.others, config, now=s.now)
    server.script(Step(content="not json"), Step(content="still not json"))  # exercise the repair prompt too
    result = await svc.analyze(ctx)
    assert len(server.requests) == 2
    for request in server.requests:
        raw = request.body.decode()
        decoded = json.dumps(request.json, ensure_ascii=False)
        for secret in SECRETS:
            assert secret not in raw, f"{secret!r} leaked into the request body"
            assert secret not in decoded, f"{secret!r} leaked into the request body (decoded)"
    first = server.requests[0].body.decode()
    assert "[REDACTED:" in first
    assert "-2015" in first and "binance" in first and "1700000900000" in first  # the useful evidence stays
    for secret in SECRETS:
        assert secret not in json.dumps(result.to_json_dict())
    await svc.aclose()


def sc_clock():  # type: ignore[no-untyped-def]
    from cryptomon_tui.clock import FakeClock

    return FakeClock(sc.T0 + 600)


def test_patterns_without_config() -> None:
    r = Redactor([])
    known_only_from_config = {OKX_PASSPHRASE, SMTP_PASSWORD, LLM_KEY}
    for entry in leaky_scenario().incident.timeline:
        out = r.redact_for_llm(entry.text)
        for secret in SECRETS:
            if secret not in known_only_from_config:
                assert secret not in out, (secret, out)
    # evidence that must survive
    keep = (
        "binance/ticker HTTP 418 code -1003 at 2023-11-14 22:16:50 UTC, p99 720 ms, https://api.binance.com/api/v3/ping"
    )
    assert r.redact_for_llm(keep) == keep
    assert r.redact_for_llm("ban until 1700000900000 ms, offset -1,547 ms, 12:30:45") == (
        "ban until 1700000900000 ms, offset -1,547 ms, 12:30:45"
    )


def test_url_params_are_cut_but_hosts_kept() -> None:
    out = Redactor([]).redact_for_llm("GET https://api.binance.com/api/v3/account?timestamp=1&signature=abc123 failed")
    assert "signature=[REDACTED:secret]" in out and "api.binance.com/api/v3/account" in out
    assert "user:pw@" not in Redactor([]).redact_for_llm("proxy http://user:pw@10.0.0.1:3128 refused")


def test_from_config_finds_every_secret_str_and_skips_public_urls() -> None:
    config = leaky_config("http://127.0.0.1:9/v1")
    found = Redactor.for_llm(config).secrets
    for secret in (
        LLM_KEY,
        BINANCE_KEY,
        BINANCE_SECRET,
        OKX_KEY,
        OKX_SECRET,
        OKX_PASSPHRASE,
        DISCORD,
        SLACK,
        WECOM,
        TELEGRAM_TOKEN,
        GENERIC_HOOK,
        SMTP_PASSWORD,
    ):
        assert secret in found
    assert "http://127.0.0.1:9/v1" not in found  # the LLM base_url is not a secret


def test_json_escaped_and_url_encoded_forms_of_a_secret_are_caught() -> None:
    r = Redactor(['p"a ss/wörd'])
    assert "wörd" not in r.redact_for_llm(json.dumps({"m": 'p"a ss/wörd'}))
    assert "w%C3%B6rd" not in r.redact_for_llm("x?pw=p%22a%20ss%2Fw%C3%B6rd")
