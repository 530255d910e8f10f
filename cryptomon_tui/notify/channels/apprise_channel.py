"""The long tail of services through the Apprise library (optional: only when ``apprise`` is installed)."""

from __future__ import annotations

import importlib
from typing import ClassVar, Protocol

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.notify import AppriseChannelConfig
from cryptomon_tui.notify.channels.base import Channel, SendResult, Verdict
from cryptomon_tui.notify.format import build_view, plain_text
from cryptomon_tui.notify.model import Notice, NoticeKind


def apprise_available() -> bool:
    try:
        importlib.import_module("apprise")
    except ImportError:
        return False
    return True


class _Apprise(Protocol):
    """What we use of ``apprise.Apprise`` (an optional package without type information)."""

    def add(self, servers: str) -> object: ...

    async def async_notify(self, *, body: str, title: str, notify_type: object) -> object: ...


class AppriseChannel(Channel):
    type = "apprise"
    default_rate: ClassVar[tuple[float, float, int]] = (1.0, 1.0, 1)
    config: AppriseChannelConfig

    def __init__(self, name: str, config: AppriseChannelConfig, clock: Clock, location: str = "local") -> None:
        super().__init__(name, config, clock, location)
        self._apprise: _Apprise | None = None

    async def start(self) -> None:
        self._apprise = self._build()

    def _build(self) -> _Apprise:
        apprise = importlib.import_module("apprise")
        obj: _Apprise = apprise.Apprise()
        for url in self.config.urls:
            obj.add(url.get_secret_value())
        return obj

    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult:
        notifier = self._apprise
        if notifier is None:
            notifier = self._apprise = self._build()
        apprise = importlib.import_module("apprise")
        view = build_view(notice)
        if notice.kind is NoticeKind.RESOLVED:
            ntype = apprise.NotifyType.SUCCESS
        elif view.severity.rank >= 2:
            ntype = apprise.NotifyType.FAILURE
        elif view.severity.rank == 1:
            ntype = apprise.NotifyType.WARNING
        else:
            ntype = apprise.NotifyType.INFO
        result = await notifier.async_notify(body=plain_text(view), title=view.title, notify_type=ntype)
        if bool(result):
            return SendResult(Verdict.SUCCESS, "apprise: all services accepted")
        status = getattr(result, "status", result)
        # Apprise folds every service's answer into one status: we cannot tell a bad key from an outage
        return SendResult(Verdict.RETRY, f"apprise: delivery failed ({status})")
