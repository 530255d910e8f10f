"""Prometheus Alertmanager API v2: ``POST /api/v2/alerts``.

While an incident fires, its alert is re-posted every ``refresh_interval`` with ``endsAt`` in the future,
so Alertmanager neither auto-resolves it nor forgets it; a resolve posts ``endsAt`` = now. Alertmanager
does its own grouping and dedup, so each incident is one alert (no digests).
"""

from __future__ import annotations

import logging
import re
from typing import ClassVar

import httpx

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.notify import AlertmanagerChannelConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, finite, get_object
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.notify.channels.base import (
    HttpChannel,
    SendResult,
    Verdict,
    body_text,
    classify_status,
    retry_after_header,
    scrub_notice,
)
from cryptomon_tui.notify.format import build_view, clip
from cryptomon_tui.notify.model import Notice, NoticeKind
from cryptomon_tui.redaction import scrub

log = logging.getLogger("cryptomon.notify")
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def _alertname(rule: str) -> str:
    parts = re.split(r"[^a-zA-Z0-9]+", rule or "incident")
    return "Cryptomon" + "".join(p[:1].upper() + p[1:] for p in parts if p)


def am_alert(notice: Notice, cfg: AlertmanagerChannelConfig, location: str, now: float) -> JsonObject:
    """One alert of the v2 API; a test alert resolves itself at once (it proves the API accepts us without
    paging anybody)."""
    inc = notice.incident
    labels: JsonObject = {}
    for key, value in (get_object(inc, "labels") or {}).items():
        name = _LABEL_NAME.sub("_", str(key))
        if name and not name[0].isdigit() and value is not None:
            labels[name] = str(value)
    labels.update(
        {
            "alertname": _alertname(str(inc.get("rule") or "test")),
            "rule": str(inc.get("rule") or ""),
            "exchange": str(inc.get("exchange") or ""),
            "probe": str(inc.get("probe") or ""),
            "severity": notice.severity.value,
            "location": location,
            "cryptomon_fingerprint": notice.fingerprint,
        }
    )
    labels = {k: v for k, v in labels.items() if v != ""}
    view = build_view(notice)
    summary = clip(str(inc.get("summary") or view.title), 1000)
    annotations: JsonObject = {"summary": summary, "incident_id": notice.incident_id}
    for name, value in view.fields:
        key = _LABEL_NAME.sub("_", name.lower())
        if key in ("last_error", "acknowledged_by", "analysis", "note", "outcomes"):
            annotations[key] = clip(value, 1000)
    started = inc.get("started_ts")
    alert: JsonObject = {"labels": labels, "annotations": annotations}
    started_s = None if isinstance(started, str) else finite(started)
    starts_at = None if started_s is None else iso_utc(started_s)
    if starts_at is not None:
        alert["startsAt"] = starts_at
    if notice.kind is NoticeKind.TEST:
        labels["alertname"] = "CryptomonTest"
        alert["endsAt"] = starts_at or iso_utc(now)
    elif notice.kind is NoticeKind.RESOLVED:
        ended = inc.get("resolved_ts")
        ended_s = None if isinstance(ended, str) else finite(ended)
        alert["endsAt"] = iso_utc(now if ended_s is None else min(now, ended_s))
    else:
        alert["endsAt"] = iso_utc(now + cfg.resolve_timeout)
    if cfg.generator_url:
        alert["generatorURL"] = cfg.generator_url
    return alert


class AlertmanagerChannel(HttpChannel):
    type = "alertmanager"
    default_rate: ClassVar[tuple[float, float, int]] = (50.0, 1.0, 50)  # our own server: no published limit
    supports_digest = False
    config: AlertmanagerChannelConfig

    def __init__(self, name: str, config: AlertmanagerChannelConfig, clock: Clock, location: str = "local") -> None:
        super().__init__(name, config, clock, location)
        self.firing: dict[str, Notice] = {}  # fingerprint -> last firing notice delivered

    def _make_client(self) -> httpx.AsyncClient:
        client = super()._make_client()
        if self.config.username and self.config.password is not None:
            client.auth = httpx.BasicAuth(self.config.username, self.config.password.get_secret_value())
        return client

    def _url(self) -> str:
        return self.config.url.rstrip("/") + "/api/v2/alerts"

    async def post_alerts(self, alerts: list[JsonValue]) -> SendResult:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        resp = await self.post_json(self._url(), alerts, headers=headers)
        if isinstance(resp, SendResult):
            return resp
        verdict = classify_status(resp.status_code)
        if resp.status_code == 400:
            verdict = Verdict.REJECTED
        return SendResult(
            verdict,
            f"{resp.status_code} {body_text(resp, 200)}".strip(),
            retry_after=retry_after_header(resp),
            status=resp.status_code,
            rate_limited=resp.status_code == 429,
        )

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        return await self.post_alerts([am_alert(notice, self.config, self.location, self.clock.now())])

    async def on_delivered(self, notice: Notice) -> None:
        if notice.kind is NoticeKind.RESOLVED:
            self.firing.pop(notice.fingerprint, None)
        elif notice.kind is not NoticeKind.TEST:
            self.firing[notice.fingerprint] = scrub_notice(notice)  # re-posted by refresh(), outside send()

    async def refresh(self) -> SendResult | None:
        """Re-post every firing alert with a fresh ``endsAt``; returns None when nothing fires."""
        if not self.firing:
            return None
        now = self.clock.now()
        alerts: list[JsonValue] = [
            am_alert(scrub_notice(n), self.config, self.location, now) for n in self.firing.values()
        ]
        result = await self.send_raw(alerts)
        if not result.ok:
            log.warning("alertmanager %s refresh failed: %s", self.name, result.answer)
        return result

    async def send_raw(self, alerts: list[JsonValue]) -> SendResult:
        result = await self.post_alerts(alerts)
        return SendResult(result.verdict, scrub(self.redact(result.answer)), result.retry_after, result.status)
