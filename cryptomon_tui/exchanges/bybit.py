"""Bybit v5 (api.bybit.com).

Business errors arrive inside HTTP 200 as ``retCode`` != 0 (legacy bodies use
``ret_code``/``ret_msg``). Every envelope carries the server time ``time`` (ms), so every
response is a clock sample. An IP over 600 requests / 5 s gets HTTP 403 ("access too
frequent") and must wait at least 10 minutes.

Symbol scheme: ``BTCUSDT`` watches spot; ``<category>:<symbol>`` picks the v5 category,
e.g. ``linear:BTCUSDT``, ``inverse:BTCUSD``, ``option:BTC-29JUL22-25000-C``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable

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
    MISSING,
    Common,
    Found,
    amend,
    bad_payload,
    ban_until_from_headers,
    cap_text,
    check_levels,
    decode_json,
    dig,
    epoch_ms,
    epoch_seconds,
    first_dict,
    header,
    http_failure,
    maintenance_status,
    never_raise,
    retry_after_seconds,
    to_float,
    to_int,
    to_positive_price,
)
from cryptomon_tui.exchanges.ws import USER_STREAM_STALE_FLOOR_S, StreamSpec, WsEvent, decode_frame, unreadable
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object
from cryptomon_tui.kernel.results import Outcome

RECV_WINDOW_MS = 5000
CATEGORIES = ("spot", "linear", "inverse", "option")
IP_BAN_MIN_S = 600.0  # "403, access too frequent": stop and wait at least 10 minutes

_SERVER_TS_RE = re.compile(r"server_timestamp\[(\d{10,16})\]")
_RATE_LIMITED = {10006, 10018, 429, 10429}
_CLOCK = {10002}
# 10008 "Common banned" (the account/key is barred from the API) refuses the signed probe too.
_AUTH = {10003, 10004, 10005, 10007, 10008, 10009, 10010, 10024, 33004, -2015}
_INTERNAL = {10000, 10016, 10019}


def bybit_signature(secret: str, timestamp_ms: int | str, api_key: str, recv_window: int | str, payload: str) -> str:
    """Hex HMAC-SHA256 of ``timestamp + apiKey + recvWindow + (query string | raw JSON body)``."""
    plain = f"{timestamp_ms}{api_key}{recv_window}{payload}"
    return hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()


def bybit_ws_auth_signature(secret: str, expires_ms: int) -> str:
    """Signature for ``{"op":"auth","args":[apiKey, expires_ms, sig]}`` on private streams."""
    return hmac.new(secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()


def parse_symbol(symbol: str) -> tuple[str, str]:
    """``linear:BTCUSDT`` -> ("linear", "BTCUSDT"); a bare symbol is spot."""
    category, sep, name = symbol.partition(":")
    if not sep:
        category, name = "spot", symbol
    category, name = category.strip().lower(), name.strip()
    if category not in CATEGORIES:
        known = ", ".join(CATEGORIES)
        raise ValueError(f"Bybit category {category!r} is not one of {known} (write e.g. linear:BTCUSDT)")
    if not name:
        raise ValueError("Bybit symbol is empty (write e.g. BTCUSDT or linear:BTCUSDT)")
    return category, name


class BybitAdapter(ExchangeAdapter):
    kind = "bybit"
    display_name = "Bybit"
    default_base_url = "https://api.bybit.com"
    default_ws_url = "wss://stream.bybit.com/v5/public/spot"
    default_symbol = "BTCUSDT"
    default_probes = (TIME, STATUS, TICKER)
    rate_limit = RateLimit(capacity=600, window_s=5, unit="requests")

    def __init__(self, symbol: str | None = None, *, name: str | None = None) -> None:
        super().__init__(symbol, name=name)
        self.category, self.market_symbol = parse_symbol(self.symbol)
        self.default_ws_url = f"wss://stream.bybit.com/v5/public/{self.category}"

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """``tickers.<symbol>`` on the category's public stream: ``ts`` for lag, ``cs`` only grows.

        Client heartbeat ``{"op":"ping"}`` every 20 s (the server drops idle sockets after 10 min);
        at most 500 new connections per 5 min per IP, of which we allow ourselves 30.
        """
        topic = f"tickers.{self.market_symbol}"
        subscribe = json.dumps({"req_id": "cryptomon", "op": "subscribe", "args": [topic]})
        return [StreamSpec(name=topic, url=ws_url or self.default_ws_url or "", subscribe=(subscribe,),
                           ping_text='{"op":"ping"}', ping_every_s=20.0, seq_rule="monotonic",
                           stale_floor_s=3.0, venue_connect_attempts=500,
                           venue_connect_window_s=300.0)]

    def user_stream_specs(self, credentials: Credentials, ws_url: str | None = None,
                          now: Callable[[], float] = time.time) -> list[StreamSpec]:
        """The private stream (``/v5/private``): ``{"op":"auth"}`` (exchanges.md 2.6), then ``{"op":"ping"}``
        every 20 s. Nothing is subscribed: the login and the keep-alive are what is checked."""
        public = ws_url or self.default_ws_url or ""
        url = public.split("/v5/public", 1)[0] + "/v5/private" if "/v5/public" in public else public

        def login() -> str:
            expires = int(now() * 1000) + 10_000  # must lie in the future when it arrives
            return json.dumps({"req_id": "cryptomon-auth", "op": "auth", "args": [
                credentials.api_key, expires, bybit_ws_auth_signature(credentials.api_secret, expires)]})

        return [StreamSpec(name="private (auth)", url=url, ping_text='{"op":"ping"}', ping_every_s=20.0,
                           stale_floor_s=USER_STREAM_STALE_FLOOR_S, venue_connect_attempts=500,
                           venue_connect_window_s=300.0, login=login)]

    def probes(self) -> dict[str, ProbeSpec]:
        market = {"category": self.category, "symbol": self.market_symbol}
        # ping and time share /v5/market/time; the status endpoint's own limit is undocumented,
        # and maintenance changes slowly, so it is asked at most once a second.
        return {
            PING: ProbeSpec(PING, "GET", "/v5/market/time", weight=1, description="connectivity (time endpoint)"),
            TIME: ProbeSpec(TIME, "GET", "/v5/market/time", weight=1, description="server time"),
            STATUS: ProbeSpec(STATUS, "GET", "/v5/system/status", weight=1, min_interval_s=1.0,
                              description="maintenance announcements"),
            TICKER: ProbeSpec(TICKER, "GET", "/v5/market/tickers", market, weight=1, description="best bid/ask"),
            BOOK: ProbeSpec(BOOK, "GET", "/v5/market/orderbook", {**market, "limit": "1"}, weight=1,
                            description="order book, top level"),
            ACCOUNT: ProbeSpec(ACCOUNT, "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, weight=1,
                               min_interval_s=0.02, signed=True, endpoint_limit=RateLimit(50, 1),
                               description="wallet balance (signed, read-only)"),
        }

    def classify(self, probe: str, response: RawResponse) -> Classification:
        return never_raise(self._classify, probe, response)

    def _classify(self, probe: str, response: RawResponse) -> Classification:
        decoded = decode_json(response.body, response.truncated)
        obj = as_object(decoded.value)
        server_ms = epoch_ms(obj.get("time")) if obj is not None else None
        retry_after = retry_after_seconds(response.headers)
        common: Common = {
            "rate_limit_used": _limit_used(response),
            "server_time_ms": server_ms,
            "retry_after_s": retry_after,
        }
        raw_code: Found = MISSING
        message: JsonValue = None
        if obj is not None:
            raw_code = obj.get("retCode", obj.get("ret_code", MISSING))
            message = obj.get("retMsg", obj.get("ret_msg"))
        if response.status == 403:
            wait = max(retry_after or 0.0, IP_BAN_MIN_S)
            detail = decoded.html_title or cap_text(message) or "access too frequent"
            return Classification(
                outcome=Outcome.IP_BANNED,
                error_code="http_403",
                error_message=cap_text(f"HTTP 403 (IP limit breached or region blocked): {detail}"),
                ban_until=ban_until_from_headers(response.headers, wait),
                **amend(common, retry_after_s=wait),
            )
        code = to_int(raw_code)
        if code is not None and code != 0:
            return self._error_code(response, code, message, common)
        failure = http_failure(response, decoded, **common)
        if failure is not None:
            return failure
        if not decoded.ok:
            return bad_payload(decoded.error or "unreadable body", **common)
        if obj is None:
            return bad_payload(f"expected a JSON object, got {type(decoded.value).__name__}", **common)
        if raw_code is MISSING:
            return bad_payload("retCode is missing", **common)
        if code is None:
            return bad_payload(f"retCode is not an integer: {cap_text(raw_code, 40)}", **common)
        return self._success(probe, obj, common)

    def _error_code(self, response: RawResponse, code: int, message: JsonValue, common: Common) -> Classification:
        text = cap_text(message)
        changes: Common = {}
        if code in _RATE_LIMITED or response.status == 429:
            outcome = Outcome.RATE_LIMITED
            if common.get("retry_after_s") is None:
                changes["retry_after_s"] = _reset_wait(response, common.get("server_time_ms"))
        elif code in _CLOCK or (code == -1 and "expire" in text.lower()):
            outcome = Outcome.CLOCK_SKEW
            match = _SERVER_TS_RE.search(text)
            stated = epoch_ms(match.group(1)) if match else None
            if stated is not None:
                changes["server_time_ms"] = stated
        elif code in _AUTH or response.status == 401:
            outcome = Outcome.AUTH
        elif code in _INTERNAL or 500 <= response.status < 600:
            outcome = Outcome.HTTP_5XX
        else:
            outcome = Outcome.EXCHANGE_ERROR
        return Classification(outcome=outcome, error_code=str(code), error_message=text, **amend(common, **changes))

    def _success(self, probe: str, obj: JsonObject, common: Common) -> Classification:
        result = obj.get("result")
        if probe == PING:
            return Classification(outcome=Outcome.OK, **common)
        if not isinstance(result, dict):
            return bad_payload(f"result is not an object ({type(result).__name__})", **common)
        if probe == TIME:
            seconds, nanos = to_int(result.get("timeSecond")), to_int(result.get("timeNano"))
            if seconds is None or nanos is None or epoch_ms(nanos / 1e6) is None:
                return bad_payload("timeSecond/timeNano are missing or not epoch numbers", **common)
            if abs(nanos / 1e9 - seconds) > 2:
                return bad_payload("timeSecond and timeNano disagree", **common)
            return Classification(outcome=Outcome.OK, **amend(common, server_time_ms=nanos / 1e6))
        if probe == STATUS:
            return _maintenance(result, common)
        if probe == TICKER:
            return self._ticker(result, common)
        if probe == BOOK:
            for side in ("b", "a"):
                problem = check_levels(result.get(side))
                if problem:
                    return bad_payload(f"{side}: {problem}", **common)
            if epoch_ms(result.get("ts")) is None:
                return bad_payload("ts is missing or not epoch ms", **common)
            return Classification(outcome=Outcome.OK, **common)
        if probe == ACCOUNT:
            if "readOnly" in result:  # /v5/user/query-api
                read_only = to_int(result.get("readOnly"))
                if read_only is None:
                    return bad_payload("readOnly is not an integer", **common)
                facts: JsonObject = {"read_only": read_only == 1}
                ips = result.get("ips")
                if isinstance(ips, list):  # the key's IP binding ("*" = any address)
                    facts["ips"] = [ip[:64] for ip in ips[:32] if isinstance(ip, str)]
                return Classification(outcome=Outcome.OK, extra=facts, **common)
            account = first_dict(result.get("list"))
            if account is None or not isinstance(account.get("accountType"), str):
                return bad_payload("result.list has no account object", **common)
            return Classification(outcome=Outcome.OK, extra={"account_type": cap_text(account["accountType"], 20)},
                                  **common)
        return Classification(outcome=Outcome.OK, **common)

    def _ticker(self, result: JsonObject, common: Common) -> Classification:
        item = first_dict(result.get("list"))
        if item is None:
            return bad_payload("result.list is empty or not a list of objects", **common)
        symbol = item.get("symbol")
        if not isinstance(symbol, str) or symbol.upper() != self.market_symbol.upper():
            return bad_payload(f"ticker is for {cap_text(symbol, 40)!r}, not {self.market_symbol!r}", **common)
        bid, ask = to_positive_price(item.get("bid1Price")), to_positive_price(item.get("ask1Price"))
        if bid is None or ask is None:
            return bad_payload("bid1Price/ask1Price are not numbers", **common)
        extra: JsonObject = {"bid": bid, "ask": ask, "last": to_float(item.get("lastPrice"))}
        if bid > ask > 0:
            extra["crossed_book"] = True
        return Classification(outcome=Outcome.OK, extra=extra, **common)

    def sign(
        self,
        spec: ProbeSpec,
        credentials: Credentials,
        timestamp_ms: int,
        query: str,
        body: str = "",
    ) -> SignedRequest:
        payload = body if spec.method.upper() == "POST" else query
        signature = bybit_signature(credentials.api_secret, int(timestamp_ms), credentials.api_key,
                                    RECV_WINDOW_MS, payload)
        headers = {
            "X-BAPI-API-KEY": credentials.api_key,
            "X-BAPI-TIMESTAMP": str(int(timestamp_ms)),
            "X-BAPI-SIGN": signature,
            "X-BAPI-RECV-WINDOW": str(RECV_WINDOW_MS),
            "X-BAPI-SIGN-TYPE": "2",
        }
        return SignedRequest(headers=headers, params={}, query=query)

    def classify_ws_message(self, message: object) -> WsEvent:
        frame = decode_frame(message)
        if not isinstance(frame, dict):
            return unreadable(frame)
        op = frame.get("op")
        success = frame.get("success")
        ret_msg = cap_text(frame.get("ret_msg")) or None
        if success is False:
            return WsEvent(kind="error", error_code=cap_text(op, 30) or "failed", message=ret_msg)
        if op in ("ping", "pong") or ret_msg == "pong":
            return WsEvent(kind="pong", event_time_ms=epoch_ms(dig(frame, "args", 0)))
        if op == "auth":
            return WsEvent(kind="auth_ok")
        if op == "subscribe" or frame.get("type") == "COMMAND_RESP":
            fails = dig(frame, "data", "failTopics")
            if isinstance(fails, list) and fails:
                return WsEvent(kind="error", error_code="subscribe_failed", message=cap_text(fails))
            return WsEvent(kind="subscribed")
        topic = frame.get("topic")
        if isinstance(topic, str) and "data" in frame:
            if topic.startswith("orderbook."):  # update id ``u`` grows by one; a snapshot restarts it
                update = to_int(dig(frame, "data", "u"))
                return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("ts")),
                               seq=None if frame.get("type") == "snapshot" else update,
                               topic=topic[:60])
            return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("ts")), seq=to_int(frame.get("cs")),
                           topic=topic[:60])
        if "retCode" in frame:
            code, text = cap_text(frame.get("retCode"), 20), cap_text(frame.get("retMsg"))
            return WsEvent(kind="error", error_code=code, message=text)
        return unreadable(frame)


def _limit_used(response: RawResponse) -> float | None:
    """``X-Bapi-Limit-Status`` is what is left of ``X-Bapi-Limit``: used = 1 - left/limit."""
    left = to_float(header(response.headers, "x-bapi-limit-status"))
    limit = to_float(header(response.headers, "x-bapi-limit"))
    if left is None or limit is None or limit <= 0:
        return None
    return min(1.0, max(0.0, 1.0 - left / limit))


def _reset_wait(response: RawResponse, server_ms: float | None) -> float | None:
    """Seconds until ``X-Bapi-Limit-Reset-Timestamp`` (often absent on "global" 10006)."""
    reset_ms = epoch_ms(header(response.headers, "x-bapi-limit-reset-timestamp"))
    if reset_ms is None or server_ms is None:
        return None
    return max(0.0, (reset_ms - server_ms) / 1000.0)


def _maintenance(result: JsonObject, common: Common) -> Classification:
    """``state: ongoing`` is maintenance now; scheduled ones are reported, not alarmed."""
    events = result.get("list")
    if not isinstance(events, list):
        return bad_payload("result.list is not a list", **common)
    return maintenance_status(events, common, ("scheduled",), _maintenance_summary)


def _maintenance_summary(event: JsonObject) -> JsonObject:
    return {
        "title": cap_text(event.get("title"), 120),
        "begin": epoch_seconds(event.get("begin")),
        "end": epoch_seconds(event.get("end")),
        "maintain_type": cap_text(event.get("maintainType"), 10),
    }
