"""A tiny exchange adapter and a scripted transport for probe-engine tests (no sockets needed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptomon_tui.exchanges.base import (
    Classification,
    Credentials,
    ExchangeAdapter,
    ProbeSpec,
    RateLimit,
    RawResponse,
    SignedRequest,
)
from cryptomon_tui.kernel.results import Outcome, Phases
from cryptomon_tui.probing.transport import TransportRequest, TransportResult


class FakeAdapter(ExchangeAdapter):
    """JSON ``{"ok": true, "serverTime": ms}``; 429 -> rate limited (Retry-After), 418 -> banned until body."""

    kind = "fake"
    display_name = "Fakex"
    default_base_url = "http://127.0.0.1:9"
    default_probes = ("ping", "time")
    rate_limit = RateLimit(capacity=100, window_s=1, unit="weight")

    def probes(self) -> dict[str, ProbeSpec]:
        return {
            "ping": ProbeSpec("ping", "GET", "/ping", weight=1),
            "time": ProbeSpec("time", "GET", "/time", weight=1),
            "status": ProbeSpec("status", "GET", "/status", weight=1, min_interval_s=5.0),
            "ticker": ProbeSpec("ticker", "GET", "/ticker", {"symbol": "BTC USD"}, weight=2),
            "book": ProbeSpec("book", "GET", "/book", weight=1, endpoint_limit=RateLimit(1, 2)),
            "account": ProbeSpec("account", "GET", "/account", weight=5, signed=True),
        }

    def classify(self, probe: str, response: RawResponse) -> Classification:
        if response.status == 429:
            retry = response.headers.get("retry-after")
            return Classification(Outcome.RATE_LIMITED, retry_after_s=float(retry) if retry else None)
        if response.status == 418:
            try:
                until = float(json.loads(response.body)["banned_until_ms"]) / 1000
            except (ValueError, KeyError, TypeError):
                until = None
            return Classification(Outcome.IP_BANNED, ban_until=until)
        if response.status >= 500:
            return Classification(Outcome.HTTP_5XX, error_message=f"HTTP {response.status}")
        try:
            data = json.loads(response.body)
        except ValueError:
            return Classification(Outcome.BAD_PAYLOAD, error_message="not JSON")
        if not isinstance(data, dict) or data.get("ok") is not True:
            return Classification(Outcome.BAD_PAYLOAD, error_message="unexpected shape")
        server = data.get("serverTime")
        return Classification(Outcome.OK, server_time_ms=float(server) if isinstance(server, int | float) else None)

    def sign(self, spec: ProbeSpec, credentials: Credentials, timestamp_ms: int, query: str,
             body: str = "") -> SignedRequest:
        q = f"{query}&timestamp={timestamp_ms}&signature=abc" if query else f"timestamp={timestamp_ms}&signature=abc"
        return SignedRequest(headers={"X-KEY": credentials.api_key}, params={}, query=q)


def fake_adapter_factory(name: str, cfg: object) -> ExchangeAdapter:
    return FakeAdapter(name=name)


@dataclass
class Sent:
    request: TransportRequest
    mono: float


Responder = Callable[[TransportRequest], TransportResult]


def ok_result(body: bytes = b'{"ok": true}', status: int = 200, latency_ms: float = 10.0,
              headers: dict[str, str] | None = None, sent_at: float = 0.0,
              window: tuple[float, float] | None = None) -> TransportResult:
    return TransportResult(
        response=RawResponse(status=status, headers=headers or {}, body=body),
        error=None,
        error_message=None,
        latency_ms=latency_ms,
        sent_at=sent_at,
        phases=Phases(ttfb_ms=latency_ms, reused=True),
        server_window=window,
    )


def error_result(outcome: Outcome, sent_at: float = 0.0) -> TransportResult:
    return TransportResult(None, outcome, f"{outcome.value} (scripted)",
                           None if outcome is Outcome.TIMEOUT else 1.0, sent_at)


@dataclass
class ScriptedTransport:
    """Answers from ``responder`` (default: OK). ``gate`` (an asyncio.Event) holds answers back when set."""

    clock: object
    responder: Responder | None = None
    sent: list[Sent] = field(default_factory=list)
    gate: object | None = None
    closed: bool = False

    async def send(self, request: TransportRequest) -> TransportResult:
        self.sent.append(Sent(request, self.clock.monotonic()))  # type: ignore[attr-defined]
        if self.gate is not None:
            await self.gate.wait()  # type: ignore[attr-defined]
        if self.responder is None:
            return ok_result(sent_at=self.clock.now())  # type: ignore[attr-defined]
        return self.responder(request)

    async def aclose(self) -> None:
        self.closed = True
