"""The ``exchanges:`` and ``probing:`` sections: what to watch and how hard."""

from __future__ import annotations

import re
import urllib.parse
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration, duration_range

ExchangeKind = Literal["binance_spot", "binance_futures", "bybit", "okx", "deribit", "generic"]
KNOWN_KINDS: tuple[str, ...] = ("binance_spot", "binance_futures", "bybit", "okx", "deribit", "generic")
# A section named like this needs no ``kind:``.
KIND_ALIASES: dict[str, str] = {
    "binance": "binance_spot",
    "binance_spot": "binance_spot",
    "binance_futures": "binance_futures",
    "binance_usdm": "binance_futures",
    "bybit": "bybit",
    "okx": "okx",
    "deribit": "deribit",
}
DEFAULT_EXCHANGES: tuple[str, ...] = ("binance", "binance_futures", "bybit", "okx", "deribit")
MIN_INTERVAL_S = 0.1
MASK = "**********"
# Request headers whose values carry no credential; every other header of a generic target is treated as one.
PUBLIC_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent", "content-type",
                            "cache-control", "pragma", "x-request-id", "x-correlation-id"})
_URL_SECRET_PARAM = re.compile(r"(key|token|secret|sig|signature|password|passwd|auth|session|credential|code)", re.I)


def url_secrets(url: str) -> list[str]:
    """Values in a URL that look like credentials: userinfo password, and token-like query parameters."""
    parts = urllib.parse.urlsplit(url)
    found = [parts.password] if parts.password else []
    for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=False):
        if _URL_SECRET_PARAM.search(name) and value:
            found.append(value)
    return found


def mask_url(url: str) -> str:
    """``url`` with its credentials (see ``url_secrets``) replaced by a mask, for display."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if parts.password:
            netloc = netloc.replace(f":{parts.password}@", f":{MASK}@", 1)
        query = "&".join(
            f"{urllib.parse.quote(n, safe='')}={MASK if _URL_SECRET_PARAM.search(n) and v else urllib.parse.quote(v)}"
            for n, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return MASK
MAX_INTERVAL_S = 3600.0  # a probe rarer than hourly is not monitoring
MAX_TIMEOUT_S = 60.0


class CredentialsConfig(Section):
    """Read-only API credentials. Write them as ``${ENV_VAR}`` or keep the file user-only."""

    api_key: SecretStr = Field(description="read-only API key, e.g. ${BINANCE_API_KEY}")
    api_secret: SecretStr = Field(description="its secret, e.g. ${BINANCE_API_SECRET}")
    passphrase: SecretStr | None = Field(default=None, description="OKX only")

    @field_validator("api_key", "api_secret", "passphrase")
    @classmethod
    def _not_empty(cls, v: SecretStr | None) -> SecretStr | None:
        # An unset ${VAR:-} or a blank value would sign every request with nothing: an auth error forever.
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("is empty (is its environment variable set?)")
        return v


class ExchangeConfig(Section):
    kind: ExchangeKind | None = Field(
        default=None, description="binance_spot | binance_futures | bybit | okx | deribit | generic"
    )
    enabled: bool = True
    base_url: str | None = Field(default=None, description="REST base URL override (testnet, proxy, simulator)")
    ws_url: str | None = Field(default=None, description="WebSocket URL override")
    streams: bool = Field(
        default=True, description="watch the exchange's public market stream (WebSocket: staleness, lag, gaps)"
    )
    user_stream: bool = Field(
        default=False,
        description="also log in to the signed user-data stream with the read-only credentials (Bybit, OKX, "
        "Deribit): login and keep-alive are checked; needs credentials",
    )
    interval: Annotated[Duration, duration_range(0.0, MAX_INTERVAL_S)] = Field(
        default=5.0, description="probe cadence (100ms .. 1h); stretched to stay in budget"
    )
    timeout: Annotated[Duration, duration_range(0.0, MAX_TIMEOUT_S, above=True)] = Field(
        default=5.0, description="a probe slower than this is a timeout (up to 60s)"
    )
    probes: list[str] | None = Field(
        default=None, description="ping, time, status, ticker, book, account (signed); null = the exchange's defaults"
    )
    symbol: str | None = Field(
        default=None,
        description="market-data symbol; null = BTCUSDT / BTC-USDT / BTC-PERPETUAL (Bybit: linear:BTCUSDT)",
    )
    credentials: CredentialsConfig | None = Field(
        default=None, description="read-only keys for the signed `account` probe"
    )
    budget_share: float | None = Field(
        default=None, gt=0, le=1, description="override of probing.budget_share for this exchange"
    )
    url: str | None = Field(default=None, description="generic target: the URL to probe")
    method: Literal["GET", "HEAD", "POST"] = Field(default="GET", description="generic target: HTTP method")
    expect_status: list[int] = Field(default_factory=lambda: [200], description="generic target: healthy statuses")
    condition: str | None = Field(
        default=None, description="generic target: JSON condition, e.g. \"$.status == 'ok'\" or \"len($.items) >= 1\""
    )
    latency_limit: Annotated[Duration, duration_range(0.0, MAX_TIMEOUT_S, above=True)] | None = Field(
        default=None, description="generic target: slower counts as a failure"
    )
    headers: dict[str, str] = Field(default_factory=dict, description="generic target: extra request headers")
    canary: bool = Field(default=False, description="a non-exchange target: tells our network from their outage")
    requests_per_second_limit: float | None = Field(
        default=None, gt=0, description="generic target: its own rate limit (the monitor stays under its share)"
    )

    @field_serializer("headers", when_used="json")
    def _mask_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """``config show`` never prints a header that may carry a token (any name but a few harmless ones)."""
        return {k: v if k.lower() in PUBLIC_HEADERS else MASK for k, v in headers.items()}

    @field_serializer("url", when_used="json")
    def _mask_url(self, url: str | None) -> str | None:
        return None if url is None else mask_url(url)

    @field_validator("interval")
    @classmethod
    def _interval_floor(cls, v: float) -> float:
        if v < MIN_INTERVAL_S:
            raise ValueError(f"interval must be at least 100ms, got {v * 1000:.0f}ms")
        return v

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("timeout must be greater than 0")
        return v

    @field_validator("expect_status", mode="before")
    @classmethod
    def _one_status(cls, v: object) -> object:
        return [v] if isinstance(v, int) else v

    @model_validator(mode="after")
    def _generic_needs_url(self) -> ExchangeConfig:
        if self.kind == "generic" and not self.url:
            raise ValueError("a generic target needs url:")
        return self


class BreakerConfig(Section):
    failure_threshold: int = Field(default=5, ge=1)
    cooldown: Annotated[Duration, duration_range(0.1, 3600.0)] = 5.0
    max_cooldown: Annotated[Duration, duration_range(0.1, 86400.0)] = 300.0


class ProbingConfig(Section):
    budget_share: float = Field(default=0.02, gt=0, le=1, description="share of each exchange's limit we may use")
    jitter: float = Field(default=0.1, ge=0, le=0.5, description="random share of the interval added/removed")
    max_body_bytes: int = Field(default=2_000_000, ge=1024)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    user_agent: str = "cryptomon/0.1"
