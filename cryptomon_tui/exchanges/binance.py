"""Binance spot (api.binance.com) and USD-M futures (fapi.binance.com).

Errors are ``{"code": <negative int>, "msg": str}`` with a meaningful HTTP status: 429 rate
limit, 418 auto-ban (expiry in the message), 403 WAF (often a CloudFront HTML page), 5xx
unknown outcome. Usage comes from ``X-MBX-USED-WEIGHT-1M`` against the per-IP weight limit.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import replace

from cryptomon_tui.exchanges.base import (
    ACCOUNT,
    BOOK,
    PING,
    STATUS,
    TICKER,
    TIME,
    Classification,
    Credentials,
    ExchangeAdapter,
    ProbeSpec,
    RateLimit,
    RawResponse,
    SignedRequest,
)
from cryptomon_tui.exchanges.common import (
    Common,
    Decoded,
    amend,
    bad_payload,
    ban_until_from_headers,
    cap_text,
    check_levels,
    decode_json,
    encode_query,
    epoch_ms,
    header,
    http_failure,
    never_raise,
    retry_after_seconds,
    to_float,
    to_int,
    to_positive_price,
    venue_overload,
)
from cryptomon_tui.exchanges.ws import StreamSpec, WsEvent, decode_frame, topic_key, unreadable
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object
from cryptomon_tui.kernel.results import Outcome

RECV_WINDOW_MS = 5000

_BAN_RE = re.compile(r"banned until (\d{10,16})", re.IGNORECASE)

_RATE_LIMITED = {-1003, -1015}  # too many requests / orders: our own use of the limit
# -1008 SERVER_BUSY "overloaded with other requests": the venue is busy, not our limit. Server-side
# (5xx class) and flagged so the scheduler still backs off and says why.
_OVERLOAD = {-1008}
_CLOCK = {-1021}
# -1099 "Not found, unauthenticated, or unauthorized": the signed probe was refused.
_AUTH = {-1002, -1022, -2014, -2015, -2008, -1099}
# USD-M futures codes a signed probe can receive (B-FUT error-code): -1005 NO_SUCH_IP (not white
# listed), -1011 NON_WHITE_LIST, -1109 invalid account, -2017 API keys locked, -4056/-4057 API key
# missing or refused. On spot these numbers are unused or mean other things, so they stay per market.
_FUTURES_AUTH = {-1005, -1011, -1109, -2017, -4056, -4057}
_MAINTENANCE = {-1016}
# execution status unknown / server busy (-1004 SERVER_BUSY on spot): a server-side failure
_INTERNAL = {-1000, -1001, -1004, -1006, -1007}


def binance_signature(secret: str, payload: str) -> str:
    """Lower-case hex HMAC-SHA256 over ``query + body`` (Binance "totalParams")."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def parse_ban_until(message: str) -> float | None:
    """Epoch seconds from "... IP banned until 1660090423228. ..." (ms, or s on older wordings)."""
    match = _BAN_RE.search(message)
    if match is None:
        return None
    value = int(match.group(1))
    return value / 1000.0 if value >= 100_000_000_000 else float(value)


class _BinanceAdapter(ExchangeAdapter):
    api_prefix = ""
    weight_limit = 6000.0
    # Probes whose used-weight header is documented as wrong (fapi bookTicker).
    untrusted_weight_probes: frozenset[str] = frozenset()
    extra_auth_codes: frozenset[int] = frozenset()

    def classify(self, probe: str, response: RawResponse) -> Classification:
        return never_raise(self._classify, probe, response)

    def _weight_used(self, probe: str, headers: Mapping[str, str]) -> float | None:
        if probe in self.untrusted_weight_probes:
            return None
        raw = header(headers, "x-mbx-used-weight-1m") or header(headers, "x-mbx-used-weight")
        used = to_float(raw)
        if used is None or used < 0:
            return None
        return min(1.0, used / self.weight_limit)

    def _classify(self, probe: str, response: RawResponse) -> Classification:
        retry_after = retry_after_seconds(response.headers)
        common: Common = {
            "rate_limit_used": self._weight_used(probe, response.headers),
            "retry_after_s": retry_after,
        }
        decoded = decode_json(response.body, response.truncated)
        obj = decoded.value
        body = as_object(obj)
        code = to_int(body.get("code")) if body is not None else None
        error_body = body if body is not None and code is not None and code < 0 and "msg" in body else None
        if response.status == 418 or (error_body and code == -1003 and "banned" in str(error_body.get("msg"))):
            return self._banned(response, error_body, code, decoded, common)
        if error_body is not None and code is not None:
            return self._error_code(response, code, error_body.get("msg"), common)
        failure = http_failure(response, decoded, **common)
        if failure is not None:
            if response.status == 403:
                failure = replace(
                    failure,
                    error_message=cap_text(f"Binance WAF block: {failure.error_message}"),
                    ban_until=ban_until_from_headers(response.headers, retry_after),
                )
            return failure
        if not decoded.ok:
            return bad_payload(decoded.error or "unreadable body", **common)
        return self._success(probe, obj, common)

    def _banned(
        self,
        response: RawResponse,
        obj: JsonObject | None,
        code: int | None,
        decoded: Decoded,
        common: Common,
    ) -> Classification:
        message = cap_text(obj.get("msg")) if obj else (decoded.html_title or "HTTP 418: IP auto-banned")
        ban_until = parse_ban_until(str(obj.get("msg"))) if obj else None
        if ban_until is None:
            ban_until = ban_until_from_headers(response.headers, common.get("retry_after_s"))
        return Classification(
            outcome=Outcome.IP_BANNED,
            error_code=str(code) if code is not None else f"http_{response.status}",
            error_message=message,
            ban_until=ban_until,
            **common,
        )

    def _error_code(self, response: RawResponse, code: int, msg: JsonValue, common: Common) -> Classification:
        status = response.status
        if code in _OVERLOAD:
            return venue_overload(str(code), msg, common)
        if code in _RATE_LIMITED or status == 429:
            outcome = Outcome.RATE_LIMITED
        elif code in _CLOCK:
            outcome = Outcome.CLOCK_SKEW
        elif code in _AUTH or code in self.extra_auth_codes or status == 401:
            outcome = Outcome.AUTH
        elif code in _MAINTENANCE:
            outcome = Outcome.MAINTENANCE
        elif code in _INTERNAL or 500 <= status < 600:
            outcome = Outcome.HTTP_5XX
        elif status == 403:
            outcome = Outcome.IP_BANNED
        else:
            outcome = Outcome.EXCHANGE_ERROR  # request errors (-11xx bad symbol ...): the probe is wrong
        return Classification(outcome=outcome, error_code=str(code), error_message=cap_text(msg), **common)

    def _success(self, probe: str, obj: JsonValue, common: Common) -> Classification:
        ok = Outcome.OK
        if probe == ACCOUNT:
            return self._account(obj, common)
        if not isinstance(obj, dict):
            return bad_payload(f"expected a JSON object, got {type(obj).__name__}", **common)
        if probe == TIME:
            server_ms = epoch_ms(obj.get("serverTime"))
            if server_ms is None:
                return bad_payload("serverTime is missing or not an epoch-ms number", **common)
            return Classification(outcome=ok, **amend(common, server_time_ms=server_ms))
        if probe == STATUS:
            status = to_int(obj.get("status"))
            if status is None:
                return bad_payload("status is missing or not an integer", **common)
            message = cap_text(obj.get("msg")) or None
            if status == 1:
                return Classification(outcome=Outcome.MAINTENANCE, error_code="system_status_1",
                                      error_message=message or "system maintenance", **common)
            if status != 0:
                return Classification(outcome=Outcome.EXCHANGE_ERROR, error_code=f"system_status_{status}",
                                      error_message=message, **common)
            return Classification(outcome=ok, extra={"status_msg": message}, **common)
        if probe == TICKER:
            return self._ticker(obj, common)
        if probe == BOOK:
            for side in ("bids", "asks"):
                problem = check_levels(obj.get(side))
                if problem:
                    return bad_payload(f"{side}: {problem}", **common)
            if to_int(obj.get("lastUpdateId")) is None:
                return bad_payload("lastUpdateId is missing or not an integer", **common)
            return Classification(outcome=ok, **common)
        return Classification(outcome=ok, **common)  # ping: any object ({}) is a live API

    def _ticker(self, obj: JsonObject, common: Common) -> Classification:
        symbol = obj.get("symbol")
        if not isinstance(symbol, str):
            return bad_payload("symbol is missing", **common)
        if symbol.upper() != self.symbol.upper():
            return bad_payload(f"ticker is for {cap_text(symbol, 40)!r}, not {self.symbol!r}", **common)
        extra: JsonObject = {}
        if "bidPrice" in obj or "askPrice" in obj:  # bookTicker
            bid, ask = to_positive_price(obj.get("bidPrice")), to_positive_price(obj.get("askPrice"))
            if bid is None or ask is None:
                return bad_payload("bidPrice/askPrice are not numbers", **common)
            if to_positive_price(obj.get("bidQty")) is None or to_positive_price(obj.get("askQty")) is None:
                return bad_payload("bidQty/askQty are not numbers", **common)
            extra = {"bid": bid, "ask": ask}
            if bid > ask > 0:
                extra["crossed_book"] = True
        else:  # ticker/price
            price = to_positive_price(obj.get("price"))
            if price is None:
                return bad_payload("neither bid/ask nor price is a number", **common)
            extra = {"price": price}
        if "time" in obj and epoch_ms(obj.get("time")) is None:
            return bad_payload("time is not an epoch-ms number", **common)
        return Classification(outcome=Outcome.OK, extra=extra, **common)

    def _account(self, obj: JsonValue, common: Common) -> Classification:
        """Spot /api/v3/account, fapi /fapi/v2/account, and the balance/apiRestrictions shapes."""
        if isinstance(obj, list):  # fapi balance: one entry per asset
            if not all(isinstance(item, dict) and isinstance(item.get("asset"), str) for item in obj):
                return bad_payload("balance entries are not asset objects", **common)
            return Classification(outcome=Outcome.OK, extra={"assets": len(obj)}, **common)
        if not isinstance(obj, dict):
            return bad_payload(f"expected a JSON object, got {type(obj).__name__}", **common)
        if "enableReading" in obj:  # /sapi/v1/account/apiRestrictions
            return self._restrictions(obj, common)
        assets = obj.get("balances", obj.get("assets"))
        if not isinstance(assets, list) or not all(isinstance(a, dict) and isinstance(a.get("asset"), str)
                                                   for a in assets):
            return bad_payload("balances/assets is missing or not a list of asset objects", **common)
        extra: JsonObject = {"assets": len(assets)}
        for flag, key in (("canTrade", "can_trade"), ("canWithdraw", "can_withdraw")):
            if isinstance(obj.get(flag), bool):
                extra[key] = obj[flag]
        return Classification(outcome=Outcome.OK, extra=extra, **common)

    def _restrictions(self, obj: JsonObject, common: Common) -> Classification:
        reading = obj.get("enableReading")
        if not isinstance(reading, bool):
            return bad_payload("enableReading is not a boolean", **common)
        writes: list[JsonValue] = [k for k in ("enableSpotAndMarginTrading", "enableWithdrawals", "enableFutures",
                              "enableMargin", "enableInternalTransfer", "permitsUniversalTransfer")
                  if obj.get(k) is True]
        extra: JsonObject = {"read_only": not writes, "write_permissions": writes}
        if isinstance(obj.get("ipRestrict"), bool):
            extra["ip_restricted"] = obj["ipRestrict"]
        if not reading:
            return Classification(outcome=Outcome.AUTH, error_code="no_read_permission",
                                  error_message="the API key cannot read", extra=extra, **common)
        return Classification(outcome=Outcome.OK, extra=extra, **common)

    def sign(
        self,
        spec: ProbeSpec,
        credentials: Credentials,
        timestamp_ms: int,
        query: str,
        body: str = "",
    ) -> SignedRequest:
        params = {"recvWindow": str(RECV_WINDOW_MS), "timestamp": str(int(timestamp_ms))}
        signed_query = "&".join(part for part in (query, encode_query(params)) if part)
        signature = binance_signature(credentials.api_secret, signed_query + body)
        params["signature"] = signature
        return SignedRequest(
            headers={"X-MBX-APIKEY": credentials.api_key},
            params=params,
            query=f"{signed_query}&signature={signature}",
        )

    def classify_ws_message(self, message: object) -> WsEvent:
        frame = decode_frame(message)
        if isinstance(frame, dict) and isinstance(frame.get("data"), dict) and "stream" in frame:
            frame = frame["data"]  # combined stream wrapper
        if not isinstance(frame, dict):
            return unreadable(frame)
        event = frame.get("e")
        if event == "serverShutdown":
            return WsEvent(kind="server_shutdown", event_time_ms=epoch_ms(frame.get("E")),
                           message="server shutting down: reconnect now")
        err = as_object(frame.get("error"))
        if err is not None:  # {"error": {"code": 2, "msg": ...}, "id": 1}
            return WsEvent(kind="error", error_code=cap_text(err.get("code"), 20) or None,
                           message=cap_text(err.get("msg")) or None)
        if "code" in frame and "msg" in frame:
            return WsEvent(kind="error", error_code=cap_text(frame.get("code"), 20), message=cap_text(frame.get("msg")))
        if "result" in frame and "id" in frame:
            if frame["result"] is None:
                return WsEvent(kind="subscribed")
            return WsEvent(kind="data", message="reply")  # LIST_SUBSCRIPTIONS and similar replies
        if isinstance(event, str):
            topic = topic_key(event, frame.get("s"))
            if event == "trade":  # trade ids are contiguous per symbol: a hole is a missed trade
                return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("E")), seq=to_int(frame.get("t")),
                               topic=topic)
            if event == "depthUpdate":  # futures diff depth links each update to the previous one
                return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("E")), seq=to_int(frame.get("u")),
                               prev_seq=to_int(frame.get("pu")), topic=topic)
            return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("E")), seq=to_int(frame.get("u")),
                           topic=topic)
        if "u" in frame and "s" in frame and "b" in frame:
            # spot bookTicker carries no event time; its update id only grows
            return WsEvent(kind="data", seq=to_int(frame.get("u")), topic=topic_key("bookTicker", frame.get("s")))
        return unreadable(frame)


def _stream_base(ws_url: str) -> str:
    return ws_url.rstrip("/")


class BinanceSpotAdapter(_BinanceAdapter):
    kind = "binance_spot"
    display_name = "Binance Spot"
    default_base_url = "https://api.binance.com"
    default_ws_url = "wss://stream.binance.com:9443"
    default_symbol = "BTCUSDT"
    default_probes = (TIME, STATUS, TICKER)
    rate_limit = RateLimit(capacity=6000, window_s=60, unit="weight")
    weight_limit = 6000.0

    def probes(self) -> dict[str, ProbeSpec]:
        symbol = {"symbol": self.symbol}
        return {
            PING: ProbeSpec(PING, "GET", "/api/v3/ping", weight=1, description="connectivity"),
            TIME: ProbeSpec(TIME, "GET", "/api/v3/time", weight=1, description="server time"),
            STATUS: ProbeSpec(STATUS, "GET", "/sapi/v1/system/status", weight=1,
                              description="system status (1 = maintenance)"),
            TICKER: ProbeSpec(TICKER, "GET", "/api/v3/ticker/bookTicker", symbol, weight=2,
                              description="best bid/ask"),
            BOOK: ProbeSpec(BOOK, "GET", "/api/v3/depth", {**symbol, "limit": "5"}, weight=5,
                            description="order book, 5 levels"),
            # What a bot reads first; weight 20 (the budget planner spaces it out accordingly).
            ACCOUNT: ProbeSpec(ACCOUNT, "GET", "/api/v3/account", {"omitZeroBalances": "true"}, weight=20,
                               signed=True, description="account balances (signed, read-only)"),
        }

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """``<symbol>@trade``: it carries the event time (lag) and contiguous trade ids (holes).

        The server pings every 20 s (aiohttp answers); 24 h lifetime; at most 300 connection
        attempts per 5 min per IP, of which we allow ourselves 30.
        """
        name = f"{self.symbol.lower()}@trade"
        base = _stream_base(ws_url or self.default_ws_url or "")
        return [StreamSpec(name=name, url=f"{base}/ws/{name}", seq_rule="contiguous", stale_floor_s=3.0,
                           venue_connect_attempts=300, venue_connect_window_s=300.0,
                           max_lifetime_s=23.5 * 3600)]


class BinanceFuturesAdapter(_BinanceAdapter):
    kind = "binance_futures"
    display_name = "Binance USD-M Futures"
    default_base_url = "https://fapi.binance.com"
    default_ws_url = "wss://fstream.binance.com"
    default_symbol = "BTCUSDT"
    default_probes = (TIME, TICKER)  # fapi has no system-status endpoint
    rate_limit = RateLimit(capacity=2400, window_s=60, unit="weight")
    weight_limit = 2400.0
    untrusted_weight_probes = frozenset({TICKER})  # bookTicker's used-weight header "is not accurate"
    extra_auth_codes = frozenset(_FUTURES_AUTH)

    def probes(self) -> dict[str, ProbeSpec]:
        symbol = {"symbol": self.symbol}
        return {
            PING: ProbeSpec(PING, "GET", "/fapi/v1/ping", weight=1, description="connectivity"),
            TIME: ProbeSpec(TIME, "GET", "/fapi/v1/time", weight=1, description="server time"),
            TICKER: ProbeSpec(TICKER, "GET", "/fapi/v1/ticker/bookTicker", symbol, weight=2,
                              description="best bid/ask"),
            BOOK: ProbeSpec(BOOK, "GET", "/fapi/v1/depth", {**symbol, "limit": "5"}, weight=2,
                            description="order book, 5 levels"),
            ACCOUNT: ProbeSpec(ACCOUNT, "GET", "/fapi/v2/account", weight=5, signed=True,
                               description="account balances (signed, read-only)"),
        }

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """``<symbol>@bookTicker`` on the routed ``/public`` path (unrouted URLs silently get nothing).

        Futures bookTicker frames carry ``E`` (lag) and a growing update id ``u``.
        """
        name = f"{self.symbol.lower()}@bookTicker"
        base = _stream_base(ws_url or self.default_ws_url or "")
        return [StreamSpec(name=name, url=f"{base}/public/ws/{name}", seq_rule="monotonic", stale_floor_s=3.0,
                           venue_connect_attempts=300, venue_connect_window_s=300.0,
                           max_lifetime_s=23.5 * 3600)]
