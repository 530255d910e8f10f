"""WeCom (WeChat Work) group robot: markdown; success only when the HTTP-200 JSON says errcode 0."""

from __future__ import annotations

from typing import ClassVar

import httpx

from cryptomon_tui.config.notify import WecomChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    Verdict,
    body_text,
    classify_status,
    json_body,
    retry_after_header,
)
from cryptomon_tui.notify.format import build_view, clip, clip_bytes, escape_wecom, title_without_status
from cryptomon_tui.notify.model import Notice, NoticeKind

MARKDOWN_BYTES = 4096
RATE_LIMITED = 45009  # api freq out of limit: the robot's rolling window is full
RATE_RETRY_S = 60.0
BROKEN_CODES = frozenset({93000, 93004, 93008, 40014, 42001, 40001, 40056})  # invalid/expired key or token
REJECTED_CODES = frozenset({40008, 40035, 41009, 44004, 45002, 40058})  # bad message type/params, too long

_COLOR = {Severity.CRITICAL: "warning", Severity.ERROR: "warning", Severity.WARNING: "comment", Severity.INFO: "info"}


def wecom_payload(notice: Notice, mentioned: list[str]) -> JsonObject:
    view = build_view(notice)
    color = "info" if notice.kind is NoticeKind.RESOLVED else _COLOR.get(view.severity, "comment")
    title = escape_wecom(clip(title_without_status(view), 200))
    lines = [f'## {view.emoji} <font color="{color}">{view.status}</font> {title}']
    if view.summary and view.summary not in view.title:
        lines.append(f"> {escape_wecom(clip(view.summary, 500))}")
    lines += [f"> {name}: {escape_wecom(clip(value, 300))}" for name, value in view.fields]
    lines += [f"- {escape_wecom(clip(line, 200))}" for line in view.lines]
    if view.footer:
        lines.append(f'<font color="comment">{escape_wecom(view.footer)}</font>')
    lines += [f"<@{m}>" for m in mentioned]
    return {"msgtype": "markdown", "markdown": {"content": clip_bytes("\n".join(lines), MARKDOWN_BYTES)}}


def classify_wecom(resp: httpx.Response) -> SendResult:
    status = resp.status_code
    data = json_body(resp)
    if not isinstance(data, dict) or "errcode" not in data:
        verdict = classify_status(status)
        if verdict is Verdict.SUCCESS:
            verdict = Verdict.RETRY  # HTTP 200 without errcode is not a confirmation
        return SendResult(
            verdict, f"{status} {body_text(resp, 200)}", retry_after=retry_after_header(resp), status=status
        )
    code = data.get("errcode")
    msg = str(data.get("errmsg", ""))[:200]
    text = f"errcode {code}: {msg}"
    if code == 0:
        return SendResult(Verdict.SUCCESS, text, status=status)
    if code == RATE_LIMITED:
        return SendResult(Verdict.RETRY, text, retry_after=RATE_RETRY_S, status=status, rate_limited=True)
    if code in BROKEN_CODES:
        return SendResult(Verdict.BROKEN, text, status=status)
    if code in REJECTED_CODES:
        return SendResult(Verdict.REJECTED, text, status=status)
    if code == -1:  # system busy
        return SendResult(Verdict.RETRY, text, retry_after=5.0, status=status)
    return SendResult(Verdict.RETRY, text, status=status)


class WecomChannel(HttpChannel):
    type = "wecom"
    default_rate: ClassVar[tuple[float, float, int]] = (18.0, 60.0, 2)  # 20 messages/min per robot: 2 burst + 18/min
    config: WecomChannelConfig

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        payload = wecom_payload(notice, self.config.mentioned_list)
        resp = await self.post_json(self.config.url.get_secret_value(), payload)
        if isinstance(resp, SendResult):
            return resp
        return classify_wecom(resp)
