"""The one secret collector and the redaction modes: what each face hides and what it keeps readable."""

from __future__ import annotations

import json

from cryptomon_tui.config import config_from_data
from cryptomon_tui.redaction import Redactor, collect_secrets

TARGET_URL = "https://status.internal.example/health"
API_KEY_HEADER = "hdr-api-key-0123456789"
CUSTOM_HEADER = "custom-header-value-42"
CHAT_ID = "-100987654321"
TELEGRAM_TOKEN = "123456789:AAH-telegram-bot-token-xyz987"


def _config():  # type: ignore[no-untyped-def]
    return config_from_data(
        {
            "exchanges": {
                "internal": {"url": TARGET_URL, "headers": {"X-Api-Key": API_KEY_HEADER, "X-Custom": CUSTOM_HEADER}},
            },
            "notify": {"channels": {"tg": {"type": "telegram", "token": TELEGRAM_TOKEN, "chat_id": CHAT_ID}}},
        }
    )


def test_credentials_for_every_face_identifying_values_only_for_prompts() -> None:
    credentials = set(collect_secrets(_config()))
    everything = set(collect_secrets(_config(), identifying=True))
    assert {API_KEY_HEADER, TELEGRAM_TOKEN} <= credentials
    identifying = {TARGET_URL, CHAT_ID, CUSTOM_HEADER, "https://api.telegram.org"}
    assert not identifying & credentials
    assert identifying | {API_KEY_HEADER, TELEGRAM_TOKEN} <= everything


def test_modes_mask_differently() -> None:
    wire = Redactor(collect_secrets(_config()))
    text = f"GET {TARGET_URL}?signature=0a1b2c3d4e5f from 203.0.113.7 key {API_KEY_HEADER}"
    assert wire.redact_secrets(text) == f"GET {TARGET_URL}?signature=0a1b2c3d4e5f from 203.0.113.7 key ***"
    assert wire.redact_for_log(text) == f"GET {TARGET_URL}?signature=*** from 203.0.113.7 key ***"
    prompt = Redactor.for_llm(_config()).redact_for_llm(text)
    for hidden in (TARGET_URL, "0a1b2c3d4e5f", "203.0.113.7", API_KEY_HEADER):
        assert hidden not in prompt


def test_the_wire_mode_catches_a_secret_inside_json_and_url_encoded() -> None:
    secret = 'p"ss/w0rd&x'
    r = Redactor([secret])
    assert r.contains_secret(json.dumps({"m": secret}))
    assert secret not in r.redact_secrets(json.dumps({"m": secret}))
    assert "p%22ss%2Fw0rd%26x" not in r.redact_secrets("?pw=p%22ss%2Fw0rd%26x")
