"""Telegram Bot API sendMessage in HTML parse mode; ``ok: true`` is the only delivery."""

from __future__ import annotations

from typing import ClassVar

import httpx

from cryptomon_tui.config.notify import TelegramChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    Verdict,
    body_text,
    classify_status,
    json_body,
    json_wait,
    retry_after_header,
)
from cryptomon_tui.notify.format import build_view, clip, escape_telegram_html
from cryptomon_tui.notify.model import Notice, NoticeKind

TEXT_LIMIT = 4096


def telegram_text(notice: Notice) -> str:
    """HTML text under 4096 characters: pieces are clipped before escaping so no entity is cut."""
    view = build_view(notice)
    e = escape_telegram_html
    parts = [f"{view.emoji} <b>{e(clip(view.title, 400))}</b>"]
    if view.summary and view.summary not in view.title:
        parts.append(e(clip(view.summary, 800)))
    parts += [f"<b>{e(name)}:</b> {e(clip(value, 500))}" for name, value in view.fields]
    parts += [f"• {e(clip(line, 200))}" for line in view.lines]
    if view.footer:
        parts.append(f"<i>{e(view.footer)}</i>")
    out: list[str] = []
    size = 0
    for part in parts:
        if size + len(part) + 1 > TEXT_LIMIT - 20:
            out.append("… (truncated)")
            break
        out.append(part)
        size += len(part) + 1
    return "\n".join(out)


def classify_telegram(resp: httpx.Response) -> SendResult:
    status = resp.status_code
    data = json_body(resp)
    if not isinstance(data, dict) or "ok" not in data:
        verdict = classify_status(status)
        if verdict is Verdict.SUCCESS:
            verdict = Verdict.RETRY
        return SendResult(
            verdict, f"{status} {body_text(resp, 200)}", retry_after=retry_after_header(resp), status=status
        )
    if data.get("ok") is True:
        result = data.get("result")
        mid = result.get("message_id") if isinstance(result, dict) else None
        return SendResult(Verdict.SUCCESS, f"ok message_id {mid}", status=status)
    code = data.get("error_code", status)
    desc = str(data.get("description", ""))[:300]
    params: JsonObject = as_object(data.get("parameters")) or {}
    text = f"{code} {desc}"
    if params.get("migrate_to_chat_id"):
        text += f" (group moved: set chat_id to {params['migrate_to_chat_id']})"
        return SendResult(Verdict.BROKEN, text, status=status)
    if code == 429:
        retry = json_wait(params.get("retry_after"))
        retry_s = retry if retry is not None else (retry_after_header(resp) or 1.0)
        return SendResult(Verdict.RETRY, text, retry_after=retry_s, status=status, rate_limited=True)
    if code in (401, 403, 404):  # bad token, bot kicked / blocked, chat not found
        return SendResult(Verdict.BROKEN, text, status=status)
    if code == 400:
        if "chat not found" in desc.lower() or "thread not found" in desc.lower():
            return SendResult(Verdict.BROKEN, text, status=status)
        return SendResult(Verdict.REJECTED, text, status=status)
    if isinstance(code, int) and code >= 500:
        return SendResult(Verdict.RETRY, text, retry_after=retry_after_header(resp), status=status)
    return SendResult(
        Verdict.REJECTED if isinstance(code, int) and 400 <= code < 500 else Verdict.RETRY, text, status=status
    )


class TelegramChannel(HttpChannel):
    type = "telegram"
    default_rate: ClassVar[tuple[float, float, int]] = (
        19.0,
        60.0,
        1,
    )  # 1/s per chat and 20/min in groups: 1 burst + 19/min
    config: TelegramChannelConfig

    def _url(self) -> str:
        return f"{self.config.api_url.rstrip('/')}/bot{self.config.token.get_secret_value()}/sendMessage"

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        payload: JsonObject = {
            "chat_id": self.config.chat_id,
            "text": telegram_text(notice),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            "disable_notification": notice.kind in (NoticeKind.RESOLVED, NoticeKind.ACKNOWLEDGED)
            or (notice.kind is not NoticeKind.TEST and notice.severity < Severity.WARNING),
        }
        if self.config.message_thread_id is not None:
            payload["message_thread_id"] = self.config.message_thread_id
        resp = await self.post_json(self._url(), payload)
        if isinstance(resp, SendResult):
            return resp
        return classify_telegram(resp)
