"""Generic JSON webhook, signed: ``X-Cryptomon-Signature: sha256=<hex>`` over ``<timestamp>.<raw body>``.

Receivers verify with the shared secret and reject stale timestamps (replay protection); the idempotency
key header lets them drop the duplicates that at-least-once delivery can produce after a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import ClassVar

from cryptomon_tui.config.notify import WebhookChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    body_text,
    classify_status,
    retry_after_header,
)
from cryptomon_tui.notify.format import build_view, plain_text
from cryptomon_tui.notify.model import Notice

SIGNATURE_HEADER = "X-Cryptomon-Signature"
TIMESTAMP_HEADER = "X-Cryptomon-Timestamp"
IDEMPOTENCY_HEADER = "X-Cryptomon-Idempotency-Key"
STANDARD_IDEMPOTENCY_HEADER = "Idempotency-Key"  # the IETF draft's name, for receivers that dedup generically


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def webhook_body(notice: Notice, idempotency_key: str) -> JsonObject:
    view = build_view(notice)
    return {
        "version": 1,
        "idempotency_key": idempotency_key,
        "kind": notice.kind.value,
        "title": view.title,
        "text": plain_text(view),
        "severity": view.severity.value,
        "notice": notice.to_dict(),
    }


class WebhookChannel(HttpChannel):
    type = "webhook"
    default_rate: ClassVar[tuple[float, float, int]] = (10.0, 1.0, 10)
    # one message per key: a retried digest could carry a different set of members under a new key,
    # which a receiver could not dedup; single messages keep delivery exactly once for a deduping receiver
    supports_digest = False
    config: WebhookChannelConfig

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        body = json.dumps(webhook_body(notice, idempotency_key), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(self.clock.now()))
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers[IDEMPOTENCY_HEADER] = idempotency_key
        headers[STANDARD_IDEMPOTENCY_HEADER] = idempotency_key
        headers[TIMESTAMP_HEADER] = timestamp
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), timestamp, body)
        resp = await self.post_json(self.config.url.get_secret_value(), None, headers=headers, content=body)
        if isinstance(resp, SendResult):
            return resp
        status = resp.status_code
        verdict = classify_status(status)
        text = f"{status} {body_text(resp, 200)}".strip()
        rate_limited = status == 429
        retry = retry_after_header(resp, self.clock.now())
        if rate_limited and retry is None:
            retry = 1.0
        return SendResult(verdict, text, retry_after=retry, status=status, rate_limited=rate_limited)
