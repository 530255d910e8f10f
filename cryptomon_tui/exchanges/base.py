"""What every exchange adapter provides.

An adapter is pure: it knows URLs, probe definitions, request weights, how to sign, and
how to read a response (envelope, error codes, rate-limit headers, server time). It never
does I/O; the probing package sends the requests and hands the raw response back here.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptomon_tui.exchanges.ws import StreamSpec, WsEvent
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.results import Outcome

# Stable probe names (a contract shown in the UI, events and metrics).
PING = "ping"
TIME = "time"
STATUS = "status"
TICKER = "ticker"
BOOK = "book"
ACCOUNT = "account"
STANDARD_PROBES = (PING, TIME, STATUS, TICKER, BOOK, ACCOUNT)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The exchange's own request budget that our probes share with the user's bots.

    ``capacity`` units (weight, requests or credits) per ``window_s`` seconds, keyed per IP
    unless stated otherwise.
    """

    capacity: float
    window_s: float
    unit: str = "requests"

    @property
    def per_second(self) -> float:
        return self.capacity / self.window_s


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One HTTP request the monitor makes.

    ``weight`` is what it costs against ``RateLimit``; ``min_interval_s`` is the endpoint's
    own limit (OKX's status endpoint: one call per 5 s), which always wins over the
    configured interval.
    """

    name: str
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    weight: float = 1.0
    min_interval_s: float = 0.0
    signed: bool = False
    description: str = ""
    # The endpoint's own documented limit (e.g. OKX market/ticker: 20 per 2 s per IP), so the
    # budget share can be applied to it too; ``min_interval_s`` is that limit at 100 %.
    endpoint_limit: RateLimit | None = None
    # Extra request headers (the generic target's configured ones).
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RawResponse:
    """What the transport got back. ``headers`` keys are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    truncated: bool = False  # the body exceeded the size cap and was cut


@dataclass(frozen=True, slots=True)
class Classification:
    """An adapter's reading of one response."""

    outcome: Outcome
    error_code: str | None = None
    error_message: str | None = None
    rate_limit_used: float | None = None  # 0..1 share of the exchange's limit, None if unknown
    server_time_ms: float | None = None  # exchange clock (epoch ms) if the response carries it
    retry_after_s: float | None = None
    ban_until: float | None = None  # epoch seconds
    maintenance_until: float | None = None  # epoch seconds, when announced
    extra: JsonObject = field(default_factory=dict)  # facts read from the body (prices, permissions ...)


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    api_secret: str
    passphrase: str | None = None


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Extra headers and query parameters to add to a signed request."""

    headers: Mapping[str, str]
    params: Mapping[str, str]
    # The exact query string to send, signature included. Signatures cover the bytes as
    # sent, so the transport must use this verbatim instead of re-encoding ``params``.
    query: str | None = None


class ExchangeAdapter(ABC):
    """One exchange's knowledge. Subclasses are cheap to construct and hold no I/O state."""

    kind: str = ""  # registry key, e.g. "binance_spot"
    display_name: str = ""
    default_base_url: str = ""
    default_ws_url: str | None = None
    default_symbol: str = ""
    default_probes: tuple[str, ...] = (TIME, STATUS, TICKER)
    rate_limit: RateLimit = RateLimit(capacity=10, window_s=1)
    # How far ahead of / behind the exchange a signed request may be (ms). Used by the
    # clock-offset rule: Binance/Bybit reject requests > 1000 ms ahead, or older than
    # recvWindow (default 5000 ms).
    clock_ahead_tolerance_ms: float = 1000.0
    clock_behind_tolerance_ms: float = 5000.0

    def __init__(self, symbol: str | None = None, *, name: str | None = None) -> None:
        self.symbol = symbol or self.default_symbol
        self.name = name or self.kind

    @abstractmethod
    def probes(self) -> dict[str, ProbeSpec]:
        """Every probe this adapter knows, by stable name."""

    @abstractmethod
    def classify(self, probe: str, response: RawResponse) -> Classification:
        """Read one response. Must never raise: hostile input yields BAD_PAYLOAD."""

    def sign(
        self,
        spec: ProbeSpec,
        credentials: Credentials,
        timestamp_ms: int,
        query: str,
        body: str = "",
    ) -> SignedRequest:
        """Headers/params for a signed read-only request. Default: unsupported."""
        raise NotImplementedError(f"{self.kind} has no signed probes")

    def judge_latency(self, classification: Classification, latency_ms: float) -> Classification:
        """Called by the probing layer after timing. Default: latency never changes the verdict."""
        return classification

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """The public market streams watched by default (one per exchange); none for unknown venues."""
        return []

    def user_stream_specs(self, credentials: Credentials, ws_url: str | None = None,
                          now: Callable[[], float] = time.time) -> list[StreamSpec]:
        """Signed user-data streams (read-only keys; login and keep-alive checked, no data expected).

        ``ws_url`` is the public stream URL in use (the private one is derived from it); ``now`` gives
        epoch seconds for the login's timestamp. None for venues without one here.
        """
        return []

    def classify_ws_message(self, message: object) -> WsEvent:
        """Read one WebSocket frame (decoded JSON, or raw text/bytes). Must never raise."""
        return WsEvent(kind="error", error_code="unsupported", message=f"{self.kind} has no WebSocket reader")
