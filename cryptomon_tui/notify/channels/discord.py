"""Discord webhook: embeds coloured by severity, ``?wait=true`` so a 200 + Message proves delivery."""

from __future__ import annotations

from typing import ClassVar

import httpx

from cryptomon_tui.config.notify import DiscordChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    Verdict,
    body_text,
    bounded_wait,
    classify_status,
    json_body,
    json_wait,
    retry_after_header,
)
from cryptomon_tui.notify.format import (
    ACK_COLOR,
    RESOLVED_COLOR,
    SEVERITY_COLOR,
    build_view,
    clip,
    escape_discord,
    title_without_status,
)
from cryptomon_tui.notify.model import Notice, NoticeKind

SUPPRESS_NOTIFICATIONS = 4096
EMBED_TOTAL = 6000


def discord_payload(notice: Notice, username: str, silent_below: str | None) -> JsonObject:
    view = build_view(notice)
    if notice.kind is NoticeKind.RESOLVED:
        color = RESOLVED_COLOR
    elif notice.kind is NoticeKind.ACKNOWLEDGED:
        color = ACK_COLOR
    else:
        color = SEVERITY_COLOR.get(view.severity, 0x9E9E9E)
    budget = EMBED_TOTAL - 200  # title + footer + field names, measured below
    title = clip(f"{view.emoji} {view.title}", 256)
    fields: list[JsonValue] = []
    used = len(title)
    for name, value in view.fields[:25]:
        v = clip(escape_discord(value), 1024) or "-"
        field_name = clip(name, 256)
        fields.append({"name": field_name, "value": v, "inline": len(value) < 40})
        used += len(field_name) + len(v)
    desc_parts = [escape_discord(view.summary)] if view.summary and view.summary not in view.title else []
    desc_parts += [f"• {escape_discord(line)}" for line in view.lines]
    description = clip("\n".join(desc_parts), max(0, min(4096, budget - used)))
    footer = clip(view.footer, 2048)
    embed: JsonObject = {"title": title, "color": color, "fields": fields, "footer": {"text": footer}}
    if description:
        embed["description"] = description
    payload: JsonObject = {
        "username": username,
        "content": clip(f"{view.emoji} **{view.status}** {escape_discord(title_without_status(view))}", 2000),
        "allowed_mentions": {"parse": []},
        "embeds": [embed],
    }
    if silent_below is not None and notice.kind is not NoticeKind.TEST:
        quiet = notice.kind in (NoticeKind.RESOLVED, NoticeKind.ACKNOWLEDGED) or view.severity < Severity(silent_below)
        if quiet:
            payload["flags"] = SUPPRESS_NOTIFICATIONS
    return payload


class DiscordChannel(HttpChannel):
    type = "discord"
    # Discord does not publish webhook limits (read the headers); 30/min per webhook is its observed bucket.
    default_rate: ClassVar[tuple[float, float, int]] = (25.0, 60.0, 5)
    config: DiscordChannelConfig

    def _url(self) -> str:
        url = httpx.URL(self.config.url.get_secret_value())
        params = dict(url.params)
        params["wait"] = "true"
        if self.config.thread_id:
            params["thread_id"] = self.config.thread_id
        return str(url.copy_with(params=params))

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        payload = discord_payload(notice, self.config.username, self.config.silent_below)
        resp = await self.post_json(self._url(), payload)
        if isinstance(resp, SendResult):
            return resp
        return self.classify(resp)

    def classify(self, resp: httpx.Response) -> SendResult:
        status = resp.status_code
        data = json_body(resp)
        if status == 200 and isinstance(data, dict) and data.get("id"):
            return SendResult(
                Verdict.SUCCESS, f"200 message id {data['id']}", status=status, pause_for=self.pause_hint(resp)
            )
        if status == 204:
            # only without wait=true; accepted but unconfirmed
            return SendResult(Verdict.SUCCESS, "204 accepted (no confirmation)", status=status)
        if status == 429:
            retry = None
            if isinstance(data, dict):
                retry = json_wait(data.get("retry_after"))
            header = retry_after_header(resp)
            retry = max(x for x in (retry, header, 1.0) if x is not None)
            scope = resp.headers.get("x-ratelimit-scope", "")
            return SendResult(
                Verdict.RETRY, f"429 rate limited {scope}".strip(), retry_after=retry, status=status, rate_limited=True
            )
        verdict = classify_status(status)
        if verdict is Verdict.SUCCESS:
            verdict = Verdict.RETRY  # 2xx without a Message: do not call it delivered
        message = data.get("message") if isinstance(data, dict) else None
        code = data.get("code") if isinstance(data, dict) else None
        text = f"{status} {message or body_text(resp, 200)}" + (f" (code {code})" if code is not None else "")
        return SendResult(verdict, text, retry_after=retry_after_header(resp), status=status)

    def pause_hint(self, resp: httpx.Response) -> float | None:
        """Seconds until the bucket refills when Discord says it is empty."""
        if resp.headers.get("x-ratelimit-remaining") == "0":
            return bounded_wait(resp.headers.get("x-ratelimit-reset-after", "0"))
        return None
