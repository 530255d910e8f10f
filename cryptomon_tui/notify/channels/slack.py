"""Slack incoming webhook: Block Kit plus a text fallback; only ``200`` + body ``ok`` is a delivery."""

from __future__ import annotations

from typing import ClassVar

import httpx

from cryptomon_tui.config.notify import SlackChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.notify.channels.base import HttpChannel, SendResult, Verdict, body_text, retry_after_header
from cryptomon_tui.notify.format import build_view, clip, escape_slack, plain_text
from cryptomon_tui.notify.model import Notice

# Documented webhook error strings: the first set can never succeed for this message, the second means
# the webhook itself is gone or misconfigured.
MESSAGE_ERRORS = frozenset({"invalid_payload", "no_text", "too_many_attachments", "invalid_blocks"})
CHANNEL_ERRORS = frozenset(
    {
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "invalid_token",
        "no_active_hooks",
        "user_not_found",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
    }
)
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
TEXT_LIMIT = 3000


def slack_payload(notice: Notice) -> JsonObject:
    view = build_view(notice)
    blocks: list[JsonValue] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"{view.emoji} {view.title}", HEADER_LIMIT)}}
    ]
    if view.summary and view.summary not in view.title:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(escape_slack(view.summary), 2900)}})
    fields: list[JsonValue] = [
        {"type": "mrkdwn", "text": clip(f"*{name}*\n{escape_slack(value)}", 2000)} for name, value in view.fields[:10]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if view.lines:
        listing = "\n".join(f"• {escape_slack(line)}" for line in view.lines)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": clip(listing, SECTION_LIMIT - 100)}})
    if view.footer:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(escape_slack(view.footer), 300)}]}
        )
    return {"text": clip(escape_slack(plain_text(view)), TEXT_LIMIT), "blocks": blocks[:50]}


def classify_slack(resp: httpx.Response) -> SendResult:
    status = resp.status_code
    body = body_text(resp, 200)
    if status == 200 and body == "ok":
        return SendResult(Verdict.SUCCESS, "200 ok", status=status)
    if status == 429:
        retry = retry_after_header(resp) or 1.0
        return SendResult(
            Verdict.RETRY, f"429 {body or 'rate limited'}", retry_after=retry, status=status, rate_limited=True
        )
    token = body.split()[0] if body else ""
    if token in CHANNEL_ERRORS:
        return SendResult(Verdict.BROKEN, f"{status} {body}", status=status)
    if token in MESSAGE_ERRORS:
        return SendResult(Verdict.REJECTED, f"{status} {body}", status=status)
    if status >= 500 or status in (408, 425):
        return SendResult(Verdict.RETRY, f"{status} {body}", retry_after=retry_after_header(resp), status=status)
    if status in (401, 403, 404, 410):
        return SendResult(Verdict.BROKEN, f"{status} {body}", status=status)
    if status == 200:
        # 200 with anything but "ok" is not a delivery; an unknown answer is worth another try
        return SendResult(Verdict.RETRY, f"200 unexpected body {body!r}", status=status)
    return SendResult(Verdict.REJECTED, f"{status} {body}", status=status)


class SlackChannel(HttpChannel):
    type = "slack"
    default_rate: ClassVar[tuple[float, float, int]] = (1.0, 1.0, 1)  # ~1 message/s per webhook
    config: SlackChannelConfig

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        resp = await self.post_json(self.config.url.get_secret_value(), slack_payload(notice))
        if isinstance(resp, SendResult):
            return resp
        return classify_slack(resp)
