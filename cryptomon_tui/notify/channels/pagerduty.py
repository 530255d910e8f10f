"""PagerDuty Events API v2: trigger / acknowledge / resolve with ``dedup_key`` = incident fingerprint.

Acks and resolves in cryptomon therefore close the same PagerDuty alert. Digests are never sent: each
incident is its own alert (PagerDuty groups on its side), so rows are always dispatched one by one.
"""

from __future__ import annotations

from typing import ClassVar

import httpx

from cryptomon_tui.config.notify import PagerDutyChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    Verdict,
    body_text,
    json_body,
    retry_after_header,
)
from cryptomon_tui.notify.format import build_view, clip
from cryptomon_tui.notify.model import Notice, NoticeKind

_ACTION = {
    NoticeKind.FIRING: "trigger",
    NoticeKind.REOPENED: "trigger",
    NoticeKind.REMINDER: "trigger",
    NoticeKind.ANALYSIS: "trigger",  # same dedup_key: PagerDuty adds it to the open alert's log, no new page
    NoticeKind.TEST: "trigger",
    NoticeKind.ACKNOWLEDGED: "acknowledge",
    NoticeKind.RESOLVED: "resolve",
}


def pagerduty_event(notice: Notice, routing_key: str, source: str, client_url: str | None) -> JsonObject:
    action = _ACTION[notice.kind]
    dedup = (
        f"cryptomon:{notice.fingerprint}"[:255] if notice.kind is not NoticeKind.TEST else f"cryptomon:test:{notice.ts}"
    )
    event: JsonObject = {"routing_key": routing_key, "event_action": action, "dedup_key": dedup}
    if action != "trigger":
        return event
    view = build_view(notice)
    inc = notice.incident
    details = {name: value for name, value in view.fields}
    event["payload"] = {
        "summary": clip(view.title, 1024),
        "source": source,
        "severity": view.severity.value if notice.kind is not NoticeKind.TEST else "info",
        "timestamp": iso_utc(notice.ts),
        "component": clip(f"{inc.get('exchange') or 'cryptomon'}:{inc.get('probe') or '-'}", 255),
        "group": str(inc.get("exchange") or "cryptomon"),
        "class": str(inc.get("rule") or notice.kind.value),
        "custom_details": {k: clip(v, 2000) for k, v in details.items()},
    }
    event["client"] = "cryptomon"
    if client_url:
        event["client_url"] = client_url
    return event


def classify_pagerduty(resp: httpx.Response) -> SendResult:
    status = resp.status_code
    data = json_body(resp)
    message = data.get("message", "") if isinstance(data, dict) else body_text(resp, 200)
    raw_errors = data.get("errors") if isinstance(data, dict) else None
    # a list of strings by the API; anything else (a number, an object) is one error, not a crash
    errors = raw_errors if isinstance(raw_errors, list) else ([raw_errors] if raw_errors else [])
    text = f"{status} {message}" + (f": {'; '.join(map(str, errors))[:300]}" if errors else "")
    if status == 202 and isinstance(data, dict) and data.get("status") == "success":
        return SendResult(Verdict.SUCCESS, f"202 {message} dedup_key {data.get('dedup_key')}", status=status)
    if status == 202:
        return SendResult(Verdict.SUCCESS, f"202 {body_text(resp, 200)}", status=status)
    if status == 429:
        return SendResult(
            Verdict.RETRY, text, retry_after=retry_after_header(resp) or 30.0, status=status, rate_limited=True
        )
    if status >= 500 or status == 408:
        return SendResult(Verdict.RETRY, text, retry_after=retry_after_header(resp), status=status)
    if status == 400:
        routing = "routing" in text.lower() or "integration key" in text.lower()
        return SendResult(Verdict.BROKEN if routing else Verdict.REJECTED, text, status=status)
    if status in (401, 403, 404):
        return SendResult(Verdict.BROKEN, text, status=status)
    return SendResult(Verdict.REJECTED if 400 <= status < 500 else Verdict.RETRY, text, status=status)


class PagerDutyChannel(HttpChannel):
    type = "pagerduty"
    default_rate: ClassVar[tuple[float, float, int]] = (
        110.0,
        60.0,
        10,
    )  # ~120 events/min per routing key: 10 burst + 110/min
    supports_digest = False
    config: PagerDutyChannelConfig

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        source = self.config.source or f"cryptomon@{self.location}"
        event = pagerduty_event(notice, self.config.routing_key.get_secret_value(), source, self.config.client_url)
        resp = await self.post_json(self.config.url, event)
        if isinstance(resp, SendResult):
            return resp
        return classify_pagerduty(resp)
