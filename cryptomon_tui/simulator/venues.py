"""What each simulated exchange says, in its own words: routes, payloads, envelopes, headers.

Shapes follow /work/shared/reference/exchanges.md and the recorded samples: Binance negative
codes with 4xx/5xx and the X-MBX-USED-WEIGHT-1M header, Bybit retCode inside HTTP 200 with the
envelope ``time``, OKX string codes, Deribit JSON-RPC envelopes with usIn/usOut/usDiff/testnet.

Each venue also enforces the exchange's own default limits (Binance weight per IP per minute,
Bybit 600 requests per 5 s per IP, OKX per-endpoint limits per 2 s, Deribit credits), so a
monitor that probes too hard is told so the way the real exchange would.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

from cryptomon_tui.kernel.jsonvalue import JsonArray, JsonObject, JsonValue
from cryptomon_tui.simulator.market import Market, decimals_for, tick_for

JSON = "application/json"
BINANCE_JSON = "application/json;charset=UTF-8"
Reply = tuple[int, bytes, str, dict[str, str] | None]
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
_OKX_INST = re.compile(r"^[A-Z0-9]{1,20}-[A-Z0-9]{1,20}(-[A-Z0-9]{1,20}){0,3}$")
_DERIBIT_INST = re.compile(r"^[A-Z0-9]{1,20}([-_][A-Z0-9.]{1,20}){1,3}$")


class Ctx:
    """One request as a venue sees it (no aiohttp types, so venues are easy to test)."""

    __slots__ = ("arrival_ms", "headers", "ip", "now_ms", "path", "query", "query_string", "usage_override", "used")

    def __init__(
        self,
        path: str,
        query_string: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        ip: str,
        now_ms: float,
        arrival_ms: float,
    ) -> None:
        self.path = path
        self.query_string = query_string
        self.query = query
        self.headers = headers
        self.ip = ip
        self.now_ms = now_ms
        self.arrival_ms = arrival_ms
        self.usage_override: float | None = None  # weight_climb: share of the limit to report
        self.used: float = 0.0  # what the venue's limiter counted for this client


@dataclass(frozen=True, slots=True)
class Route:
    probe: str | None
    handler: Callable[[Ctx], Reply]
    weight: Callable[[Ctx], float] | float = 1.0


class _Window:
    """One key's use: the bucket index last written, the running total, and the per-bucket amounts."""

    __slots__ = ("buckets", "idx", "total")

    def __init__(self, idx: int, n: int) -> None:
        self.idx = idx
        self.total = 0.0
        self.buckets = [0.0] * n


class RollingCounter:
    """Use per key (an IP, or an IP and a path) over a rolling window, in fixed buckets (no allocation per
    request)."""

    __slots__ = ("_bucket_s", "_n", "_state")

    def __init__(self, window_s: float, buckets: int) -> None:
        self._bucket_s = window_s / buckets
        self._n = buckets
        self._state: dict[Hashable, _Window] = {}

    def add(self, key: Hashable, now: float, amount: float) -> float:
        idx = int(now // self._bucket_s)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = _Window(idx, self._n)
        elif idx != st.idx:
            buckets = st.buckets
            gap = idx - st.idx
            if gap >= self._n or gap < 0:
                for j in range(self._n):
                    buckets[j] = 0.0
                st.total = 0.0
            else:
                for i in range(st.idx + 1, idx + 1):
                    j = i % self._n
                    st.total -= buckets[j]
                    buckets[j] = 0.0
            st.idx = idx
        st.buckets[idx % self._n] += amount
        st.total += amount
        return float(st.total)

    def seconds_to_next_bucket(self, now: float) -> float:
        return self._bucket_s - (now % self._bucket_s)

    def seconds_until_within(self, key: Hashable, now: float, limit: float) -> float:
        """How long until the use counted for ``key`` is back within ``limit`` (what Retry-After says)."""
        st = self._state.get(key)
        if st is None or st.total <= limit:
            return 0.0
        total = st.total
        idx = st.idx
        for age in range(self._n - 1, -1, -1):  # oldest bucket first
            total -= st.buckets[(idx - age) % self._n]
            if total <= limit:
                return (self._n - age - 1) * self._bucket_s + self.seconds_to_next_bucket(now)
        return self._n * self._bucket_s

    def clear(self) -> None:
        self._state.clear()


class Venue:
    """Base: the parts every exchange has. Subclasses fill ``routes`` and the envelopes."""

    name = ""
    content_type = JSON
    status_path: str | None = None

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        self.market = market
        self.enforce_limits = enforce_limits
        # api key -> secret: when given, signatures are verified; otherwise only their presence.
        self.secrets = dict(secrets or {})
        self.routes: dict[str, Route] = {}

    # ---- limits

    def account(self, ctx: Ctx, route: Route | None, mono: float) -> Reply | None:
        """Count the request against the exchange's own limit; a reply if it is over."""
        return None

    def usage_headers(self, ctx: Ctx) -> dict[str, str] | None:
        return None

    def reset_limits(self) -> None:
        """Forget counted usage (tests)."""

    # ---- envelopes

    def ok(self, ctx: Ctx, payload: JsonValue) -> Reply:
        return 200, _dumps(payload).encode(), self.content_type, None

    def error(self, ctx: Ctx, status: int | None, code: int | str | None, message: str | None) -> Reply:
        raise NotImplementedError

    def rate_limited(self, ctx: Ctx, retry_after_s: float) -> Reply:
        raise NotImplementedError

    def banned(self, ctx: Ctx, until_ms: float, retry_after_s: float) -> Reply:
        raise NotImplementedError

    def maintenance(
        self, ctx: Ctx, route: Route | None, begin_ms: float, end_ms: float, title: str, block: bool
    ) -> Reply | None:
        """The answer during maintenance, or None when this endpoint keeps working."""
        raise NotImplementedError

    def not_found(self, ctx: Ctx) -> Reply:
        raise NotImplementedError


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


# =========================================================================== Binance

_BINANCE_MESSAGES: dict[int, str] = {
    -1000: "An unknown error occurred while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1002: "You are not authorized to execute this request.",
    -1003: "Too much request weight used; current limit is 6000 request weight per 1 MINUTE. "
    "Please use WebSocket Streams for live updates to avoid polling the API.",
    -1006: "An unexpected response was received from the message bus. Execution status unknown.",
    -1007: "Timeout waiting for response from backend server. Send status unknown; execution status unknown.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -1015: "Too many new orders.",
    -1016: "This service is no longer available.",
    -1021: "Timestamp for this request is outside of the recvWindow.",
    -1022: "Signature for this request is not valid.",
    -1100: "Illegal characters found in a parameter.",
    -1102: "Mandatory parameter was not sent, was empty/null, or malformed.",
    -1121: "Invalid symbol.",
    -2014: "API-key format invalid.",
    -2015: "Invalid API-key, IP, or permissions for action.",
}

_MISSING_SYMBOL = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
_NGINX_404 = (
    b"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    b"<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class BinanceSpot(Venue):
    name = "binance"
    content_type = BINANCE_JSON
    status_path: str | None = "/sapi/v1/system/status"
    weight_limit = 6000.0
    recv_window_max = 60000.0
    ban_after_ignored_429 = 20  # requests sent after a 429 before the IP is banned
    auto_ban_s = 120.0  # the shortest ban (bans grow from 2 minutes to 3 days)

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__(market, enforce_limits, secrets)
        self._weight = RollingCounter(60.0, 60)
        self._ignored_429: dict[str, int] = {}  # requests sent while over the limit, per IP
        self._banned: dict[str, float] = {}  # IP -> monotonic time the automatic ban ends
        self.routes = {
            "/api/v3/ping": Route("ping", self._ping, 1),
            "/api/v3/time": Route("time", self._time, 1),
            "/sapi/v1/system/status": Route("status", self._status, 1),
            "/api/v3/ticker/bookTicker": Route("ticker", self._book_ticker, self._ticker_weight),
            "/api/v3/ticker/price": Route("ticker", self._price, self._ticker_weight),
            "/api/v3/depth": Route("book", self._depth, self._depth_weight),
            "/api/v3/account": Route("account", self._account, 20),
        }

    # weights (exchanges.md 1.3/1.5)
    @staticmethod
    def _ticker_weight(ctx: Ctx) -> float:
        return 2 if "symbol" in ctx.query else 4

    @staticmethod
    def _depth_weight(ctx: Ctx) -> float:
        try:
            limit = int(ctx.query.get("limit", "100"))
        except ValueError:
            return 5
        return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250

    def account(self, ctx: Ctx, route: Route | None, mono: float) -> Reply | None:
        weight = 1.0 if route is None else route.weight if isinstance(route.weight, float | int) else route.weight(ctx)
        ctx.used = self._weight.add(ctx.ip, mono, weight)
        if not self.enforce_limits:
            return None
        banned_until = self._banned.get(ctx.ip)
        if banned_until is not None:
            if mono < banned_until:
                left = banned_until - mono
                return self.banned(ctx, ctx.now_ms + left * 1000.0, left)
            del self._banned[ctx.ip]
            self._ignored_429.pop(ctx.ip, None)
        if ctx.used > self.weight_limit:
            # Carrying on after 429s earns an automatic ban (418), starting at 2 minutes.
            ignored = self._ignored_429.get(ctx.ip, 0) + 1
            self._ignored_429[ctx.ip] = ignored
            if ignored > self.ban_after_ignored_429:
                self._banned[ctx.ip] = mono + self.auto_ban_s
                return self.banned(ctx, ctx.now_ms + self.auto_ban_s * 1000.0, self.auto_ban_s)
            return self.rate_limited(ctx, self._weight.seconds_until_within(ctx.ip, mono, self.weight_limit))
        if ctx.ip in self._ignored_429:
            del self._ignored_429[ctx.ip]
        return None

    def reset_limits(self) -> None:
        self._weight.clear()
        self._banned.clear()
        self._ignored_429.clear()

    def usage_headers(self, ctx: Ctx) -> dict[str, str]:
        used = ctx.used
        if ctx.usage_override is not None:
            used = max(used, ctx.usage_override * self.weight_limit)
        text = str(int(used))
        return {"X-MBX-USED-WEIGHT-1M": text, "x-mbx-used-weight": text}

    # envelopes
    def error(self, ctx: Ctx, status: int | None, code: int | str | None, message: str | None) -> Reply:
        if status is None:
            status = 400
        if code is None:
            code = {500: -1000, 429: -1003, 418: -1003, 401: -2015, 403: -1002}.get(
                status, -1001 if status >= 500 else -1100
            )
        icode = int(code)
        msg = message or _BINANCE_MESSAGES.get(icode, "Simulated error.")
        return status, _dumps({"code": icode, "msg": msg}).encode(), self.content_type, None

    def rate_limited(self, ctx: Ctx, retry_after_s: float) -> Reply:
        msg = (
            f"Too much request weight used; current limit is {int(self.weight_limit)} request weight per 1 MINUTE. "
            "Please use WebSocket Streams for live updates to avoid polling the API."
        )
        return 429, _dumps({"code": -1003, "msg": msg}).encode(), self.content_type, _retry_after(retry_after_s)

    def banned(self, ctx: Ctx, until_ms: float, retry_after_s: float) -> Reply:
        msg = (
            f"Way too much request weight used; IP banned until {int(until_ms)}. "
            "Please use the websocket for live updates to avoid bans."
        )
        return 418, _dumps({"code": -1003, "msg": msg}).encode(), self.content_type, _retry_after(retry_after_s)

    def maintenance(
        self, ctx: Ctx, route: Route | None, begin_ms: float, end_ms: float, title: str, block: bool
    ) -> Reply | None:
        if route is not None and route.probe == "status" and ctx.path == self.status_path:
            return self.ok(ctx, {"status": 1, "msg": "system maintenance"})
        if not block:
            return None
        return self.error(ctx, 503, -1016, None)

    def not_found(self, ctx: Ctx) -> Reply:
        return 404, _NGINX_404, "text/html", None

    # handlers
    def _ping(self, ctx: Ctx) -> Reply:
        return 200, b"{}", self.content_type, None

    def _time(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, {"serverTime": int(ctx.now_ms)})

    def _status(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, {"status": 0, "msg": "normal"})

    def _symbol(self, ctx: Ctx) -> tuple[str | None, Reply | None]:
        symbol = ctx.query.get("symbol")
        if symbol is None:
            return None, None
        if not _SYMBOL.match(symbol):
            return None, self.error(ctx, 400, -1121, None)
        return symbol, None

    def _symbols(self, ctx: Ctx) -> list[str]:
        return ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "LTCBTC"]

    def _book_entry(self, symbol: str, now_s: float) -> JsonObject:
        bid, bq, ask, aq = self.market.quote(symbol, now_s)
        d = decimals_for(tick_for(bid))
        return {
            "symbol": symbol,
            "bidPrice": _fmt(bid, 8),
            "bidQty": _fmt(bq, 8),
            "askPrice": _fmt(ask, max(d, 8)),
            "askQty": _fmt(aq, 8),
        }

    def _book_ticker(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        now_s = ctx.now_ms / 1000.0
        if symbol is None:
            return self.ok(ctx, [self._book_entry(s, now_s) for s in self._symbols(ctx)])
        return self.ok(ctx, self._book_entry(symbol, now_s))

    def _price(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        now_s = ctx.now_ms / 1000.0
        if symbol is None:
            prices: JsonArray = [{"symbol": s, "price": _fmt(self.market.mid(s, now_s), 8)} for s in self._symbols(ctx)]
            return self.ok(ctx, prices)
        return self.ok(ctx, {"symbol": symbol, "price": _fmt(self.market.mid(symbol, now_s), 8)})

    def _depth(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        if symbol is None:
            return self.error(ctx, 400, -1102, _MISSING_SYMBOL)
        try:
            limit = max(1, min(int(ctx.query.get("limit", "100")), 5000))
        except ValueError:
            return self.error(ctx, 400, -1100, "Illegal characters found in parameter 'limit'.")
        levels = min(limit, 20)
        bid, bq, ask, aq = self.market.quote(symbol, ctx.now_ms / 1000.0)
        tick = tick_for(bid)
        bids: JsonArray = [[_fmt(bid - i * tick, 8), _fmt(bq * (1 + i * 0.3), 8)] for i in range(levels)]
        asks: JsonArray = [[_fmt(ask + i * tick, 8), _fmt(aq * (1 + i * 0.3), 8)] for i in range(levels)]
        return self.ok(ctx, {"lastUpdateId": int(ctx.now_ms) * 10, "bids": bids, "asks": asks})

    # signed
    def _check_signed(self, ctx: Ctx) -> Reply | None:
        """The server-side rules of exchanges.md 1.6 (presence, timing, and the HMAC when a secret is known)."""
        key = ctx.headers.get("X-MBX-APIKEY")
        if not key:
            return self.error(ctx, 401, -2014, None)
        q = ctx.query
        for param in ("timestamp", "signature"):
            if not q.get(param):
                return self.error(
                    ctx, 400, -1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed."
                )
        try:
            ts = float(q["timestamp"])
            recv = float(q.get("recvWindow", "5000"))
        except ValueError:
            return self.error(ctx, 400, -1100, "Illegal characters found in parameter 'timestamp'.")
        if ts > 1e14:  # spot accepts microseconds
            ts /= 1000.0
        if recv > self.recv_window_max:
            return self.error(ctx, 400, -1131, f"recvWindow must be less than {int(self.recv_window_max)}.")
        server = ctx.now_ms
        if ts >= server + 1000:
            return self.error(ctx, 400, -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server - ts > recv:
            return self.error(ctx, 400, -1021, None)
        if self.secrets:
            secret = self.secrets.get(key)
            if secret is None:
                return self.error(ctx, 401, -2015, None)
            payload = _strip_signature(ctx.query_string)
            want = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, str(q["signature"]).lower()):
                return self.error(ctx, 400, -1022, None)
        return None

    def _account(self, ctx: Ctx) -> Reply:
        err = self._check_signed(ctx)
        if err:
            return err
        return self.ok(
            ctx,
            {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": "0.00100000",
                    "taker": "0.00100000",
                    "buyer": "0.00000000",
                    "seller": "0.00000000",
                },
                "canTrade": False,
                "canWithdraw": False,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": int(ctx.now_ms) - 86_400_000,
                "accountType": "SPOT",
                "balances": [
                    {"asset": "BTC", "free": "0.01000000", "locked": "0.00000000"},
                    {"asset": "USDT", "free": "250.00000000", "locked": "0.00000000"},
                ],
                "permissions": ["SPOT"],
                "uid": 354937868,
            },
        )


def _strip_signature(query: str) -> str:
    """The signed payload: the query string without its trailing signature parameter."""
    parts = [p for p in query.split("&") if not p.startswith("signature=")]
    return "&".join(parts)


class BinanceFutures(BinanceSpot):
    name = "binance_futures"
    content_type = JSON
    status_path = None  # there is no fapi status endpoint
    weight_limit = 2400.0

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__(market, enforce_limits, secrets)
        self.routes = {
            "/fapi/v1/ping": Route("ping", self._ping, 1),
            "/fapi/v1/time": Route("time", self._time, 1),
            "/fapi/v1/ticker/bookTicker": Route("ticker", self._fut_book_ticker, self._fut_ticker_weight),
            "/fapi/v1/ticker/price": Route("ticker", self._fut_price, 1),
            "/fapi/v1/depth": Route("book", self._fut_depth, self._fut_depth_weight),
            "/fapi/v2/account": Route("account", self._fut_account, 5),
            "/fapi/v3/account": Route("account", self._fut_account, 5),
        }

    @staticmethod
    def _fut_ticker_weight(ctx: Ctx) -> float:
        return 2 if "symbol" in ctx.query else 5

    @staticmethod
    def _fut_depth_weight(ctx: Ctx) -> float:
        try:
            limit = int(ctx.query.get("limit", "500"))
        except ValueError:
            return 2
        return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20

    def _symbols(self, ctx: Ctx) -> list[str]:
        return ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]

    def _fut_entry(self, symbol: str, ctx: Ctx) -> JsonObject:
        bid, bq, ask, aq = self.market.quote(symbol, ctx.now_ms / 1000.0)
        d = decimals_for(tick_for(bid))
        return {
            "symbol": symbol,
            "bidPrice": _fmt(bid, d),
            "bidQty": _fmt(bq, 3),
            "askPrice": _fmt(ask, d),
            "askQty": _fmt(aq, 3),
            "time": int(ctx.now_ms),
        }

    def _fut_book_ticker(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        if symbol is None:
            return self.ok(ctx, [self._fut_entry(s, ctx) for s in self._symbols(ctx)])
        return self.ok(ctx, self._fut_entry(symbol, ctx))

    def _fut_price(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        if symbol is None:
            symbol = "BTCUSDT"
        mid = self.market.mid(symbol, ctx.now_ms / 1000.0)
        return self.ok(ctx, {"symbol": symbol, "price": _fmt(mid, 2), "time": int(ctx.now_ms)})

    def _fut_depth(self, ctx: Ctx) -> Reply:
        symbol, err = self._symbol(ctx)
        if err:
            return err
        if symbol is None:
            return self.error(ctx, 400, -1102, _MISSING_SYMBOL)
        bid, bq, ask, aq = self.market.quote(symbol, ctx.now_ms / 1000.0)
        tick = tick_for(bid)
        d = decimals_for(tick)
        try:
            levels = max(1, min(int(ctx.query.get("limit", "500")), 20))
        except ValueError:
            levels = 5
        now = int(ctx.now_ms)
        return self.ok(
            ctx,
            {
                "lastUpdateId": now * 10,
                "E": now,
                "T": now - 2,
                "bids": [[_fmt(bid - i * tick, d), _fmt(bq * (1 + i * 0.3), 3)] for i in range(levels)],
                "asks": [[_fmt(ask + i * tick, d), _fmt(aq * (1 + i * 0.3), 3)] for i in range(levels)],
            },
        )

    def _fut_account(self, ctx: Ctx) -> Reply:
        err = self._check_signed(ctx)
        if err:
            return err
        return self.ok(
            ctx,
            {
                "feeTier": 0,
                "canTrade": False,
                "canDeposit": True,
                "canWithdraw": False,
                "updateTime": 0,
                "multiAssetsMargin": False,
                "tradeGroupId": -1,
                "totalInitialMargin": "0.00000000",
                "totalMaintMargin": "0.00000000",
                "totalWalletBalance": "250.00000000",
                "totalUnrealizedProfit": "0.00000000",
                "totalMarginBalance": "250.00000000",
                "totalPositionInitialMargin": "0.00000000",
                "totalOpenOrderInitialMargin": "0.00000000",
                "totalCrossWalletBalance": "250.00000000",
                "totalCrossUnPnl": "0.00000000",
                "availableBalance": "250.00000000",
                "maxWithdrawAmount": "250.00000000",
                "assets": [
                    {
                        "asset": "USDT",
                        "walletBalance": "250.00000000",
                        "unrealizedProfit": "0.00000000",
                        "marginBalance": "250.00000000",
                        "availableBalance": "250.00000000",
                        "updateTime": 0,
                    }
                ],
                "positions": [],
            },
        )


# =========================================================================== Bybit v5

_BYBIT_MESSAGES: dict[int, str] = {
    10000: "Server Timeout",
    10001: "params error",
    10003: "API key is invalid.",
    10004: "Error sign, please check your signature generation algorithm.",
    10005: "Permission denied, please check your API key permissions.",
    10006: "Too many visits",
    10007: "User authentication failed.",
    10010: "Unmatched IP, please check your API key's bound IP addresses.",
    10016: "Server error.",
    10018: "Exceeded the IP Rate Limit.",
}


class Bybit(Venue):
    name = "bybit"
    status_path = "/v5/system/status"
    ip_limit = 600.0  # requests per 5 s per IP
    wallet_limit = 50.0  # /v5/account/wallet-balance per second

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__(market, enforce_limits, secrets)
        self._ip = RollingCounter(5.0, 5)
        self._endpoint = RollingCounter(1.0, 1)
        self.routes = {
            "/v5/market/time": Route("time", self._time),
            "/v5/system/status": Route("status", self._status),
            "/v5/market/tickers": Route("ticker", self._tickers),
            "/v5/market/orderbook": Route("book", self._orderbook),
            "/v5/account/wallet-balance": Route("account", self._wallet),
        }

    def _envelope(self, ctx: Ctx, code: int, msg: str, result: JsonValue) -> bytes:
        return _dumps(
            {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": int(ctx.now_ms)}
        ).encode()

    def ok(self, ctx: Ctx, payload: JsonValue) -> Reply:
        return 200, self._envelope(ctx, 0, "OK", payload), JSON, None

    def account(self, ctx: Ctx, route: Route | None, mono: float) -> Reply | None:
        used = self._ip.add(ctx.ip, mono, 1.0)
        if self.enforce_limits and used > self.ip_limit:
            return self.banned(ctx, ctx.now_ms + 1000 * self._ip.seconds_to_next_bucket(mono), 0)
        if route is not None and route.probe == "account":
            per_ep = self._endpoint.add((ctx.ip, ctx.path), mono, 1.0)
            ctx.used = per_ep / self.wallet_limit
            if self.enforce_limits and per_ep > self.wallet_limit:
                return self.rate_limited(ctx, self._endpoint.seconds_to_next_bucket(mono))
        else:
            ctx.used = used / self.ip_limit
        return None

    def reset_limits(self) -> None:
        self._ip.clear()
        self._endpoint.clear()

    def usage_headers(self, ctx: Ctx) -> dict[str, str]:
        limit = self.wallet_limit if ctx.path == "/v5/account/wallet-balance" else self.ip_limit
        share = ctx.used if ctx.usage_override is None else max(ctx.used, ctx.usage_override)
        left = max(0, round(limit * (1.0 - share)))
        return {
            "X-Bapi-Limit": str(int(limit)),
            "X-Bapi-Limit-Status": str(left),
            "X-Bapi-Limit-Reset-Timestamp": str(int(ctx.now_ms)),
        }

    def error(self, ctx: Ctx, status: int | None, code: int | str | None, message: str | None) -> Reply:
        if status is None:
            status = 200
        icode = int(code) if code is not None else (10006 if status == 429 else 10016)
        msg = message or _BYBIT_MESSAGES.get(icode, "Simulated error.")
        return status, self._envelope(ctx, icode, msg, {}), JSON, None

    def rate_limited(self, ctx: Ctx, retry_after_s: float) -> Reply:
        body = self._envelope(ctx, 10006, "Too many visits", {})
        reset = int(ctx.now_ms + retry_after_s * 1000)
        limit = self.wallet_limit if ctx.path == "/v5/account/wallet-balance" else self.ip_limit
        headers = {
            "X-Bapi-Limit": str(int(limit)),
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
        return 200, body, JSON, headers

    def banned(self, ctx: Ctx, until_ms: float, retry_after_s: float) -> Reply:
        # The IP limit breach: a bare 403 from the gateway (exact body UNVERIFIED in exchanges.md).
        return 403, b"403 Forbidden: access too frequent", "text/plain", None

    def maintenance(
        self, ctx: Ctx, route: Route | None, begin_ms: float, end_ms: float, title: str, block: bool
    ) -> Reply | None:
        if ctx.path != self.status_path:
            return None  # market data keeps flowing; the status endpoint tells
        item = self._status_item(f"sim-{int(begin_ms)}", title, "ongoing", begin_ms, end_ms, maintain_type=1)
        return self.ok(ctx, {"list": [item, *self._past_items(ctx)]})

    def not_found(self, ctx: Ctx) -> Reply:
        # Shape UNVERIFIED: 404 with the v5 envelope.
        return 404, self._envelope(ctx, 404, "Not Found", {}), JSON, None

    @staticmethod
    def _status_item(
        ident: str, title: str, state: str, begin_ms: float, end_ms: float, maintain_type: int
    ) -> JsonObject:
        return {
            "id": ident,
            "title": title,
            "state": state,
            "begin": str(int(begin_ms)),
            "end": str(int(end_ms)) if math.isfinite(end_ms) else "",
            "href": "",
            "serviceTypes": [1, 2, 3],
            "product": [1, 2],
            "uidSuffix": [],
            "maintainType": maintain_type,
            "env": 1,
        }

    def _past_items(self, ctx: Ctx) -> JsonArray:
        day = 86_400_000
        begin = (int(ctx.now_ms) // day - 3) * day + 7_200_000
        return [self._status_item("sim-past-1", "Scheduled upgrade", "completed", begin, begin + 600_000, 1)]

    def _time(self, ctx: Ctx) -> Reply:
        now_ns = int(ctx.now_ms * 1_000_000)
        return self.ok(ctx, {"timeSecond": str(now_ns // 1_000_000_000), "timeNano": str(now_ns)})

    def _status(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, {"list": self._past_items(ctx)})

    def _category(self, ctx: Ctx) -> tuple[str | None, Reply | None]:
        category = ctx.query.get("category")
        if category not in ("spot", "linear", "inverse", "option"):
            return None, self.error(ctx, 200, 10001, "Illegal category")
        return category, None

    def _ticker_entry(self, category: str, symbol: str, ctx: Ctx) -> JsonObject:
        now_s = ctx.now_ms / 1000.0
        bid, bq, ask, aq = self.market.quote(symbol, now_s)
        d = decimals_for(tick_for(bid))
        last = bid if int(ctx.now_ms) % 2 else ask
        entry: JsonObject = {
            "symbol": symbol,
            "bid1Price": _fmt(bid, d),
            "bid1Size": _fmt(bq, 6),
            "ask1Price": _fmt(ask, d),
            "ask1Size": _fmt(aq, 6),
            "lastPrice": _fmt(last, d),
            "prevPrice24h": _fmt(last * 0.99, d),
            "price24hPcnt": "0.0101",
            "highPrice24h": _fmt(last * 1.02, d),
            "lowPrice24h": _fmt(last * 0.97, d),
            "turnover24h": _fmt(last * 11801.27771, 8),
            "volume24h": "11801.27771",
        }
        if category == "spot":
            entry["usdIndexPrice"] = _fmt(last, 8)
        else:
            entry.update(
                {
                    "indexPrice": _fmt(last, d),
                    "markPrice": _fmt(last, d),
                    "prevPrice1h": _fmt(last, d),
                    "openInterest": "240113967",
                    "openInterestValue": "2089.79",
                    "fundingRate": "0.0001",
                    "nextFundingTime": str((int(ctx.now_ms) // 28_800_000 + 1) * 28_800_000),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "basis": "",
                    "fundingIntervalHour": "8",
                    "fundingCap": "0.005",
                }
            )
        return entry

    def _tickers(self, ctx: Ctx) -> Reply:
        category, err = self._category(ctx)
        if err or category is None:
            return err or self.error(ctx, 200, 10001, "Illegal category")
        symbol = ctx.query.get("symbol")
        if symbol is not None and not _SYMBOL.match(symbol):
            return self.error(ctx, 200, 10001, "Not supported symbols")
        symbols = [symbol] if symbol else ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        return self.ok(ctx, {"category": category, "list": [self._ticker_entry(category, s, ctx) for s in symbols]})

    def _orderbook(self, ctx: Ctx) -> Reply:
        category, err = self._category(ctx)
        if err or category is None:
            return err or self.error(ctx, 200, 10001, "Illegal category")
        symbol = ctx.query.get("symbol")
        if not symbol or not _SYMBOL.match(symbol):
            return self.error(ctx, 200, 10001, "params error: symbol invalid")
        default = "1" if category == "spot" else "25"
        try:
            levels = max(1, min(int(ctx.query.get("limit", default)), 50))
        except ValueError:
            return self.error(ctx, 200, 10001, "params error: limit invalid")
        bid, bq, ask, aq = self.market.quote(symbol, ctx.now_ms / 1000.0)
        tick = tick_for(bid)
        d = decimals_for(tick)
        now = int(ctx.now_ms)
        return self.ok(
            ctx,
            {
                "s": symbol,
                "b": [[_fmt(bid - i * tick, d), _fmt(bq * (1 + i * 0.3), 6)] for i in range(levels)],
                "a": [[_fmt(ask + i * tick, d), _fmt(aq * (1 + i * 0.3), 6)] for i in range(levels)],
                "ts": now,
                "u": now // 7,
                "seq": now // 3,
                "cts": now - 120,
            },
        )

    def _wallet(self, ctx: Ctx) -> Reply:
        h = ctx.headers
        key = h.get("X-BAPI-API-KEY")
        if not key:
            return self.error(ctx, 401, 10003, None)
        sign = h.get("X-BAPI-SIGN")
        ts_text = h.get("X-BAPI-TIMESTAMP")
        if not sign or not ts_text:
            return self.error(ctx, 401, 10004, None) if not sign else self.error(ctx, 200, 10001, "timestamp missing")
        try:
            ts = int(ts_text)
            recv = int(h.get("X-BAPI-RECV-WINDOW", "5000"))
        except ValueError:
            return self.error(ctx, 200, 10001, "params error: timestamp invalid")
        server = int(ctx.now_ms)
        if not (server - recv <= ts < server + 1000):
            msg = (
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{server}],recv_window[{recv}]"
            )
            return self.error(ctx, 200, 10002, msg)
        if self.secrets:
            secret = self.secrets.get(key)
            if secret is None:
                return self.error(ctx, 401, 10003, None)
            query = ctx.query_string
            want = hmac.new(secret.encode(), f"{ts_text}{key}{recv}{query}".encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, sign.lower()):
                return self.error(ctx, 401, 10004, None)
        if ctx.query.get("accountType") not in ("UNIFIED", "CONTRACT", "SPOT"):
            return self.error(ctx, 200, 10001, "accountType only support UNIFIED.")
        return self.ok(
            ctx,
            {
                "list": [
                    {
                        "accountType": "UNIFIED",
                        "totalEquity": "250.00",
                        "totalWalletBalance": "250.00",
                        "totalMarginBalance": "250.00",
                        "totalAvailableBalance": "250.00",
                        "totalPerpUPL": "0",
                        "totalInitialMargin": "0",
                        "totalMaintenanceMargin": "0",
                        "accountIMRate": "0",
                        "accountMMRate": "0",
                        "accountLTV": "0",
                        "coin": [
                            {
                                "coin": "USDT",
                                "equity": "250",
                                "walletBalance": "250",
                                "usdValue": "250",
                                "locked": "0",
                                "unrealisedPnl": "0",
                                "cumRealisedPnl": "0",
                            }
                        ],
                    }
                ]
            },
        )


# =========================================================================== OKX v5

_OKX_MESSAGES: dict[str, str] = {
    "50001": "Service temporarily unavailable. Try again later",
    "50004": "API endpoint request timeout (does not mean that the request was successful or failed, please check "
    "the request result).",
    "50005": "API is offline or unavailable.",
    "50011": "Too Many Requests",
    "50013": "Systems are busy. Please try again later.",
    "50014": "Parameter {0} can not be empty.",
    "50026": "System error. Try again later",
    "50102": "Timestamp request expired",
    "50103": 'Request header "OK-ACCESS-KEY" cannot be empty.',
    "50104": 'Request header "OK-ACCESS-PASSPHRASE" cannot be empty.',
    "50105": 'Request header "OK-ACCESS-PASSPHRASE" incorrect.',
    "50106": 'Request header "OK-ACCESS-SIGN" cannot be empty.',
    "50107": 'Request header "OK-ACCESS-TIMESTAMP" cannot be empty.',
    "50111": "Invalid OK-ACCESS-KEY",
    "50112": "Invalid OK-ACCESS-TIMESTAMP",
    "50113": "Invalid Sign",
    "51001": "Instrument ID does not exist",
}
_OKX_STATUS: dict[str, int] = {
    "50001": 503, "50004": 400, "50005": 410, "50011": 429, "50013": 429, "50014": 400, "50026": 500,
    "50102": 401, "50103": 401, "50104": 401, "50105": 401, "50106": 401, "50107": 401, "50111": 401,
    "50112": 401, "50113": 401,
}  # fmt: skip


class Okx(Venue):
    name = "okx"
    status_path = "/api/v5/system/status"
    # Public limits per IP per endpoint: (requests, window seconds) (exchanges.md 3.5).
    endpoint_limits: dict[str, tuple[float, float]] = {
        "/api/v5/public/time": (10, 2.0),
        "/api/v5/market/ticker": (20, 2.0),
        "/api/v5/market/tickers": (20, 2.0),
        "/api/v5/market/books": (40, 2.0),
        "/api/v5/system/status": (1, 5.0),
        "/api/v5/account/balance": (10, 2.0),
    }

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__(market, enforce_limits, secrets)
        self._counters = {
            path: RollingCounter(win, 4 if win <= 2 else 5) for path, (_, win) in self.endpoint_limits.items()
        }
        self.routes = {
            "/api/v5/public/time": Route("time", self._time),
            "/api/v5/system/status": Route("status", self._status),
            "/api/v5/market/ticker": Route("ticker", self._ticker),
            "/api/v5/market/books": Route("book", self._books),
            "/api/v5/account/balance": Route("account", self._balance),
        }

    def account(self, ctx: Ctx, route: Route | None, mono: float) -> Reply | None:
        counter = self._counters.get(ctx.path)
        if counter is None:
            return None
        limit = self.endpoint_limits[ctx.path][0]
        used = counter.add(ctx.ip, mono, 1.0)
        ctx.used = used / limit
        if self.enforce_limits and used > limit:
            return self.rate_limited(ctx, counter.seconds_to_next_bucket(mono))
        return None

    def reset_limits(self) -> None:
        for counter in self._counters.values():
            counter.clear()

    def ok(self, ctx: Ctx, payload: JsonValue) -> Reply:
        return 200, _dumps({"code": "0", "msg": "", "data": payload}).encode(), JSON, None

    def error(self, ctx: Ctx, status: int | None, code: int | str | None, message: str | None) -> Reply:
        if code is None:
            code = {503: "50001", 429: "50011", 401: "50111", 410: "50005"}.get(status or 0)
            if code is None:
                code = "50026" if (status or 500) >= 500 else "50014"
        scode = str(code)
        if status is None:
            status = _OKX_STATUS.get(scode.split("_")[0], 200)
        msg = message or _OKX_MESSAGES.get(scode.split("_")[0], "Simulated error.")
        # Recorded error bodies carry msg and code only (no data).
        return status, _dumps({"msg": msg, "code": scode}).encode(), JSON, None

    def rate_limited(self, ctx: Ctx, retry_after_s: float) -> Reply:
        return 429, b'{"msg":"Too Many Requests","code":"50011"}', JSON, _retry_after(retry_after_s)

    def banned(self, ctx: Ctx, until_ms: float, retry_after_s: float) -> Reply:  # pragma: no cover - no OKX bans
        return self.rate_limited(ctx, retry_after_s)

    def maintenance(
        self, ctx: Ctx, route: Route | None, begin_ms: float, end_ms: float, title: str, block: bool
    ) -> Reply | None:
        if ctx.path == self.status_path:
            return self.ok(ctx, [self._status_item(title, "ongoing", begin_ms, end_ms)])
        if not block:
            return None
        return self.error(ctx, 503, "50001", None)

    def not_found(self, ctx: Ctx) -> Reply:
        # Shape UNVERIFIED: 404 with the v5 envelope.
        return 404, b'{"msg":"Not Found","code":"404"}', JSON, None

    @staticmethod
    def _status_item(title: str, state: str, begin_ms: float, end_ms: float) -> JsonObject:
        return {
            "begin": str(int(begin_ms)),
            "end": str(int(end_ms)) if math.isfinite(end_ms) else "",
            "href": "",
            "preOpenBegin": "",
            "scheDesc": "",
            "serviceType": "8",
            "state": state,
            "maintType": "2",
            "env": "1",
            "system": "unified",
            "title": title,
        }

    def _time(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, [{"ts": str(int(ctx.now_ms))}])

    def _status(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, [])

    def _inst(self, ctx: Ctx) -> tuple[str | None, Reply | None]:
        inst = ctx.query.get("instId")
        if not inst:
            return None, self.error(ctx, 400, "50014", "Parameter instId can not be empty.")
        if not _OKX_INST.match(inst):
            return None, self.error(ctx, 200, "51001", None)
        return inst, None

    def _ticker(self, ctx: Ctx) -> Reply:
        inst, err = self._inst(ctx)
        if err or inst is None:
            return err or self.error(ctx, 400, "50014", None)
        bid, bq, ask, aq = self.market.quote(inst, ctx.now_ms / 1000.0)
        d = decimals_for(tick_for(bid))
        last = ask if int(ctx.now_ms) % 2 else bid
        inst_type = "SWAP" if inst.endswith("-SWAP") else "FUTURES" if inst.count("-") == 2 else "SPOT"
        return self.ok(
            ctx,
            [
                {
                    "instType": inst_type,
                    "instId": inst,
                    "last": _fmt(last, d),
                    "lastSz": "0.01",
                    "askPx": _fmt(ask, d),
                    "askSz": _fmt(aq, 4),
                    "bidPx": _fmt(bid, d),
                    "bidSz": _fmt(bq, 4),
                    "open24h": _fmt(last * 0.99, d),
                    "high24h": _fmt(last * 1.02, d),
                    "low24h": _fmt(last * 0.97, d),
                    "volCcy24h": "2222",
                    "vol24h": "2222",
                    "sodUtc0": _fmt(last * 0.995, d),
                    "sodUtc8": _fmt(last * 0.998, d),
                    "ts": str(int(ctx.now_ms)),
                }
            ],
        )

    def _books(self, ctx: Ctx) -> Reply:
        inst, err = self._inst(ctx)
        if err or inst is None:
            return err or self.error(ctx, 400, "50014", None)
        try:
            levels = max(1, min(int(ctx.query.get("sz", "1")), 400))
        except ValueError:
            return self.error(ctx, 400, "51000", "Parameter sz error")
        levels = min(levels, 20)
        bid, bq, ask, aq = self.market.quote(inst, ctx.now_ms / 1000.0)
        tick = tick_for(bid)
        d = decimals_for(tick)
        return self.ok(
            ctx,
            [
                {
                    "asks": [
                        [_fmt(ask + i * tick, d), _fmt(aq * (1 + i * 0.3), 8), "0", str(1 + i)] for i in range(levels)
                    ],
                    "bids": [
                        [_fmt(bid - i * tick, d), _fmt(bq * (1 + i * 0.3), 8), "0", str(2 + i)] for i in range(levels)
                    ],
                    "ts": str(int(ctx.now_ms)),
                }
            ],
        )

    def _balance(self, ctx: Ctx) -> Reply:
        h = ctx.headers
        for header, code in (
            ("OK-ACCESS-KEY", "50103"),
            ("OK-ACCESS-SIGN", "50106"),
            ("OK-ACCESS-TIMESTAMP", "50107"),
            ("OK-ACCESS-PASSPHRASE", "50104"),
        ):
            if not h.get(header):
                return self.error(ctx, None, code, None)
        stamp = h["OK-ACCESS-TIMESTAMP"]
        try:
            ts_ms = _parse_okx_timestamp(stamp)
        except ValueError:
            return self.error(ctx, None, "50112", None)
        if abs(ctx.now_ms - ts_ms) > 30_000:
            return self.error(ctx, None, "50102", None)
        if self.secrets:
            key = h["OK-ACCESS-KEY"]
            secret = self.secrets.get(key)
            if secret is None:
                return self.error(ctx, None, "50111", None)
            query = ctx.query_string
            path = ctx.path + (f"?{query}" if query else "")
            want = base64.b64encode(
                hmac.new(secret.encode(), f"{stamp}GET{path}".encode(), hashlib.sha256).digest()
            ).decode()
            if not hmac.compare_digest(want, h["OK-ACCESS-SIGN"]):
                return self.error(ctx, None, "50113", None)
        return self.ok(
            ctx,
            [
                {
                    "adjEq": "",
                    "totalEq": "250.0",
                    "isoEq": "0",
                    "imr": "",
                    "mmr": "",
                    "mgnRatio": "",
                    "notionalUsd": "",
                    "ordFroz": "",
                    "uTime": str(int(ctx.now_ms)),
                    "details": [
                        {
                            "ccy": "USDT",
                            "eq": "250",
                            "cashBal": "250",
                            "availBal": "250",
                            "frozenBal": "0",
                            "eqUsd": "250",
                            "uTime": str(int(ctx.now_ms)),
                        }
                    ],
                }
            ],
        )


def _parse_okx_timestamp(text: str) -> float:
    """OK-ACCESS-TIMESTAMP: ISO-8601 UTC with milliseconds, e.g. 2020-12-08T09:08:57.715Z."""
    import datetime as dt

    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", text):
        raise ValueError(text)
    value = dt.datetime.fromisoformat(text[:-1] + "+00:00")
    return value.timestamp() * 1000.0


# =========================================================================== Deribit v2

_DERIBIT_MESSAGES: dict[int, str] = {
    10000: "authorization_required",
    10001: "error",
    10028: "too_many_requests",
    10041: "settlement_in_progress",
    10047: "matching_engine_queue_full",
    10066: "too_many_concurrent_requests",
    11051: "system_maintenance",
    11056: "unauthenticated_public_requests_temporarily_disabled",
    11094: "internal_server_error",
    13004: "invalid_credentials",
    13009: "unauthorized",
    13021: "forbidden",
    13025: "method_switched_off_by_admin",
    13028: "temporarily_unavailable",
    13503: "unavailable",
    -32601: "Method not found",
    -32602: "Invalid params",
}


class Deribit(Venue):
    name = "deribit"
    status_path = "/api/v2/public/status"
    credit_cost = 500.0
    credit_cap = 50_000.0
    credit_refill_per_s = 10_000.0

    def __init__(self, market: Market, enforce_limits: bool = True, secrets: Mapping[str, str] | None = None) -> None:
        super().__init__(market, enforce_limits, secrets)
        self._credits: dict[str, list[float]] = {}
        self.routes = {
            "/api/v2/public/test": Route("ping", self._test),
            "/api/v2/public/get_time": Route("time", self._get_time),
            "/api/v2/public/status": Route("status", self._status),
            "/api/v2/public/ticker": Route("ticker", self._ticker),
            "/api/v2/public/get_order_book": Route("book", self._order_book),
            "/api/v2/private/get_account_summary": Route("account", self._account_summary),
        }

    def account(self, ctx: Ctx, route: Route | None, mono: float) -> Reply | None:
        bucket = self._credits.get(ctx.ip)
        if bucket is None:
            bucket = self._credits[ctx.ip] = [self.credit_cap, mono]
        else:
            elapsed = mono - bucket[1]
            if elapsed > 0:
                bucket[0] = min(self.credit_cap, bucket[0] + elapsed * self.credit_refill_per_s)
                bucket[1] = mono
        ctx.used = 1.0 - bucket[0] / self.credit_cap
        if bucket[0] < self.credit_cost:
            if self.enforce_limits:
                return self.rate_limited(ctx, (self.credit_cost - bucket[0]) / self.credit_refill_per_s)
            return None
        bucket[0] -= self.credit_cost
        return None

    def reset_limits(self) -> None:
        self._credits.clear()

    def _envelope(self, ctx: Ctx, key: str, value: JsonValue) -> bytes:
        us_in = int(ctx.arrival_ms * 1000)
        us_out = int(ctx.now_ms * 1000)
        if us_out < us_in:
            us_out = us_in
        out: JsonObject = {"jsonrpc": "2.0"}
        rid = ctx.query.get("id")
        if rid is not None:
            out["id"] = int(rid) if rid.isdigit() else rid
        out[key] = value
        out["usIn"] = us_in
        out["usOut"] = us_out
        out["usDiff"] = us_out - us_in
        out["testnet"] = False
        return _dumps(out).encode()

    def ok(self, ctx: Ctx, payload: JsonValue) -> Reply:
        return 200, self._envelope(ctx, "result", payload), JSON, None

    def error(
        self,
        ctx: Ctx,
        status: int | None,
        code: int | str | None,
        message: str | None,
        data: JsonObject | None = None,
    ) -> Reply:
        if status is None:
            status = 400
        icode = int(code) if code is not None else (10028 if status == 429 else 11094)
        err: JsonObject = {"message": message or _DERIBIT_MESSAGES.get(icode, "error"), "code": icode}
        if data:
            err["data"] = data
        return status, self._envelope(ctx, "error", err), JSON, None

    def rate_limited(self, ctx: Ctx, retry_after_s: float) -> Reply:
        status, body, ctype, _ = self.error(ctx, 429, 10028, None)
        return status, body, ctype, _retry_after(retry_after_s)

    def banned(self, ctx: Ctx, until_ms: float, retry_after_s: float) -> Reply:  # pragma: no cover - no bans
        return self.rate_limited(ctx, retry_after_s)

    def maintenance(
        self, ctx: Ctx, route: Route | None, begin_ms: float, end_ms: float, title: str, block: bool
    ) -> Reply | None:
        if ctx.path == self.status_path:
            return self.ok(ctx, {"locked_currencies": ["BTC", "ETH", "USDC", "USDT"], "locked": True})
        if not block:
            return None
        return self.error(ctx, 400, 11051, None)

    def not_found(self, ctx: Ctx) -> Reply:
        if ctx.path.startswith("/api/v2/"):
            return self.error(ctx, 404, -32601, None)
        return 404, _NGINX_404, "text/html", None

    def _test(self, ctx: Ctx) -> Reply:
        if ctx.query.get("expected_result") == "exception":
            return self.error(ctx, 400, 11094, "internal_server_error", {"reason": "expected_result=exception"})
        return self.ok(ctx, {"version": "1.2.26"})

    def _get_time(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, int(ctx.now_ms))

    def _status(self, ctx: Ctx) -> Reply:
        return self.ok(ctx, {"locked_currencies": [], "locked": False})

    def _instrument(self, ctx: Ctx) -> tuple[str | None, Reply | None]:
        name = ctx.query.get("instrument_name")
        if not name:
            return None, self.error(ctx, 400, -32602, None, {"reason": "missing", "param": "instrument_name"})
        if not _DERIBIT_INST.match(name):
            return None, self.error(ctx, 400, -32602, None, {"reason": "wrong format", "param": "instrument_name"})
        return name, None

    def _quote(self, name: str, ctx: Ctx) -> tuple[float, float, float, float]:
        return self.market.quote(name, ctx.now_ms / 1000.0, tick=0.5 if "BTC" in name else None)

    def _ticker_fields(self, name: str, ctx: Ctx, quote: tuple[float, float, float, float]) -> JsonObject:
        bid, bq, ask, aq = quote
        mid = (bid + ask) / 2
        return {
            "best_ask_amount": round(aq * 10000),
            "best_ask_price": ask,
            "best_bid_amount": round(bq * 10000),
            "best_bid_price": bid,
            "current_funding": 0,
            "estimated_delivery_price": round(mid, 2),
            "funding_8h": 2.203e-05,
            "index_price": round(mid, 2),
            "instrument_name": name,
            "interest_value": 1.7362511643080387,
            "last_price": bid,
            "mark_price": round(mid, 2),
            "max_price": round(mid * 1.015, 2),
            "min_price": round(mid * 0.985, 2),
            "open_interest": 502231260,
            "settlement_price": round(mid * 0.997, 2),
            "state": "open",
            "stats": {
                "high": round(mid * 1.02, 1),
                "low": round(mid * 0.97, 1),
                "price_change": 0.2362,
                "volume": 7831.26548117,
                "volume_usd": 282615600,
            },
            "timestamp": int(ctx.now_ms),
        }

    def _ticker(self, ctx: Ctx) -> Reply:
        name, err = self._instrument(ctx)
        if err or name is None:
            return err or self.error(ctx, 400, -32602, None)
        return self.ok(ctx, self._ticker_fields(name, ctx, self._quote(name, ctx)))

    def _order_book(self, ctx: Ctx) -> Reply:
        name, err = self._instrument(ctx)
        if err or name is None:
            return err or self.error(ctx, 400, -32602, None)
        try:
            depth = int(ctx.query.get("depth", "5"))
        except ValueError:
            depth = -1
        if depth not in (1, 5, 10, 20, 50, 100, 1000, 10000):
            return self.error(
                ctx, 400, -32602, None, {"reason": "must be one of 1,5,10,20,50,100,1000,10000", "param": "depth"}
            )
        quote = self._quote(name, ctx)
        fields = self._ticker_fields(name, ctx, quote)
        bid, bq, ask, aq = quote
        bid_amount, ask_amount = round(bq * 10000), round(aq * 10000)  # as best_bid_amount/best_ask_amount say
        tick = 0.5 if "BTC" in name else tick_for(bid)
        levels = min(depth, 20)
        fields["bids"] = [[bid - i * tick, bid_amount + 10 * i] for i in range(levels)]
        fields["asks"] = [[ask + i * tick, ask_amount + 10 * i] for i in range(levels)]
        fields["change_id"] = int(ctx.now_ms) // 5
        return self.ok(ctx, fields)

    def _account_summary(self, ctx: Ctx) -> Reply:
        auth = ctx.headers.get("Authorization", "")
        scheme, _, rest = auth.partition(" ")
        scheme = scheme.lower()
        if scheme not in ("bearer", "basic", "deri-hmac-sha256") or not rest.strip():
            return self.error(ctx, 400, 13009, None)
        if scheme == "deri-hmac-sha256":
            fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
            if not all(k in fields for k in ("id", "ts", "sig", "nonce")):
                return self.error(ctx, 400, 13009, None)
            try:
                ts = float(fields["ts"])
            except ValueError:
                return self.error(ctx, 400, 13009, None)
            if abs(ctx.now_ms - ts) > 60_000:
                return self.error(ctx, 400, 13009, None, {"reason": "timestamp out of window"})
            if self.secrets:
                secret = self.secrets.get(fields["id"])
                if secret is None:
                    return self.error(ctx, 400, 13004, None)
                query = ctx.query_string
                uri = ctx.path + (f"?{query}" if query else "")
                text = f"{fields['ts']}\n{fields['nonce']}\nGET\n{uri}\n\n"
                want = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, fields["sig"].lower()):
                    return self.error(ctx, 400, 13009, None)
        currency = ctx.query.get("currency")
        if not currency:
            return self.error(ctx, 400, -32602, None, {"reason": "missing", "param": "currency"})
        return self.ok(
            ctx,
            {
                "currency": currency.upper(),
                "balance": 0.01,
                "equity": 0.01,
                "available_funds": 0.01,
                "available_withdrawal_funds": 0.01,
                "margin_balance": 0.01,
                "initial_margin": 0.0,
                "maintenance_margin": 0.0,
                "session_upl": 0.0,
                "session_rpl": 0.0,
                "total_pl": 0.0,
                "limits": {
                    "limits_per_currency": False,
                    "non_matching_engine": {"rate": 20, "burst": 100},
                    "matching_engine": {"trading": {"total": {"rate": 5, "burst": 20}}},
                },
            },
        )


VENUES: dict[str, type[Venue]] = {
    "binance": BinanceSpot,
    "binance_futures": BinanceFutures,
    "bybit": Bybit,
    "okx": Okx,
    "deribit": Deribit,
}
