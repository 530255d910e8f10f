"""Deribit v2 (www.deribit.com), JSON-RPC 2.0 over REST GET.

Every reply carries ``usIn``/``usOut`` (server receive/send, epoch µs), so every response is
a clock sample with the server's own processing time removed. Errors are JSON-RPC
``error: {code, message}`` objects (REST errors recorded with HTTP 400). Limits are credits
per sub-account: 500 per request, refilled 10,000/s, i.e. 20 requests/s sustained.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
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
    Common,
    amend,
    bad_payload,
    cap_text,
    check_levels,
    decode_json,
    dig,
    epoch_ms,
    http_failure,
    never_raise,
    retry_after_seconds,
    to_float,
    to_int,
    to_positive_price,
)
from cryptomon_tui.exchanges.ws import USER_STREAM_STALE_FLOOR_S, StreamSpec, WsEvent, decode_frame, unreadable
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object
from cryptomon_tui.kernel.results import Outcome

SIGNATURE_VALIDITY_MS = 60_000.0

_RATE_LIMITED = {10028, 10066, 10047}
# 9999 api_not_enabled, 11042 permission_denied, 13001 account_locked, 13002 account_not_activated,
# 13007 user_not_found: what the signed probe receives when the key or account is refused.
_AUTH = {13004, 13009, 10000, 13021, 13403, 12003, 13668, 9999, 11042, 13001, 13002, 13007}
_CLOCK = {13888}
_MAINTENANCE = {11051, 13025, 13503, 13028, 11056, 10041, 10040}
_INTERNAL = {11094, 10001}


def deribit_rest_signature(secret: str, timestamp_ms: int, nonce: str, method: str, uri: str, body: str = "") -> str:
    """Hex HMAC-SHA256 of ``ts\\nnonce\\nMETHOD\\nURI(+?query)\\nbody\\n``."""
    message = f"{timestamp_ms}\n{nonce}\n{method.upper()}\n{uri}\n{body}\n"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def deribit_ws_signature(secret: str, timestamp_ms: int, nonce: str, data: str = "") -> str:
    """``client_signature`` grant: hex HMAC-SHA256 of ``ts\\nnonce\\ndata`` (no trailing newline)."""
    message = f"{timestamp_ms}\n{nonce}\n{data}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def deribit_authorization(client_id: str, timestamp_ms: int, signature: str, nonce: str) -> str:
    return f"deri-hmac-sha256 id={client_id},ts={timestamp_ms},sig={signature},nonce={nonce}"


class DeribitAdapter(ExchangeAdapter):
    kind = "deribit"
    display_name = "Deribit"
    default_base_url = "https://www.deribit.com"
    default_ws_url = "wss://www.deribit.com/ws/api/v2"
    default_symbol = "BTC-PERPETUAL"
    default_probes = (TIME, STATUS, TICKER)
    rate_limit = RateLimit(capacity=20, window_s=1, unit="requests")  # 10,000 credits/s at 500 per request
    clock_ahead_tolerance_ms = SIGNATURE_VALIDITY_MS
    clock_behind_tolerance_ms = SIGNATURE_VALIDITY_MS

    @property
    def currency(self) -> str:
        """The account currency for ``get_account_summary``: BTC-PERPETUAL -> BTC, ETH_USDC -> USDC."""
        if "_" in self.symbol and "-" not in self.symbol:
            return self.symbol.split("_", 1)[1].upper()
        return self.symbol.split("-", 1)[0].upper()

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """``ticker.<instrument>.100ms`` (no auth needed): ``timestamp`` for lag.

        ``public/set_heartbeat`` (10 s) first; every ``test_request`` is answered with
        ``public/test`` or the server closes the socket. 32 connections per IP in all.
        """
        channel = f"ticker.{self.symbol}.100ms"
        heartbeat = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/set_heartbeat",
                                "params": {"interval": 10}})
        subscribe = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "public/subscribe",
                                "params": {"channels": [channel]}})
        answer = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "public/test", "params": {}})
        return [StreamSpec(name=channel, url=ws_url or self.default_ws_url or "", subscribe=(heartbeat, subscribe),
                           heartbeat_answer=answer, seq_rule="linked", stale_floor_s=3.0,
                           venue_connect_attempts=32, venue_connect_window_s=300.0)]

    def user_stream_specs(self, credentials: Credentials, ws_url: str | None = None,
                          now: Callable[[], float] = time.time) -> list[StreamSpec]:
        """A second connection that authenticates with ``public/auth`` (``client_signature``,
        exchanges.md 4.6; read-only scope) and keeps the 10 s heartbeat: login and keep-alive only."""
        heartbeat = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/set_heartbeat",
                                "params": {"interval": 10}})
        answer = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "public/test", "params": {}})

        def login() -> str:
            stamp, nonce = int(now() * 1000), secrets.token_hex(8)
            return json.dumps({"jsonrpc": "2.0", "id": 9, "method": "public/auth", "params": {
                "grant_type": "client_signature", "client_id": credentials.api_key, "timestamp": stamp,
                "nonce": nonce, "data": "", "scope": "account:read",
                "signature": deribit_ws_signature(credentials.api_secret, stamp, nonce)}})

        return [StreamSpec(name="private (auth)", url=ws_url or self.default_ws_url or "", subscribe=(heartbeat,),
                           heartbeat_answer=answer, stale_floor_s=USER_STREAM_STALE_FLOOR_S,
                           venue_connect_attempts=32, venue_connect_window_s=300.0, login=login)]

    def probes(self) -> dict[str, ProbeSpec]:
        inst = {"instrument_name": self.symbol}
        return {
            PING: ProbeSpec(PING, "GET", "/api/v2/public/test", weight=1, description="connectivity and version"),
            TIME: ProbeSpec(TIME, "GET", "/api/v2/public/get_time", weight=1, description="server time"),
            STATUS: ProbeSpec(STATUS, "GET", "/api/v2/public/status", weight=1, description="platform lock status"),
            TICKER: ProbeSpec(TICKER, "GET", "/api/v2/public/ticker", inst, weight=1, description="best bid/ask"),
            BOOK: ProbeSpec(BOOK, "GET", "/api/v2/public/get_order_book", {**inst, "depth": "1"}, weight=1,
                            description="order book, top level"),
            ACCOUNT: ProbeSpec(ACCOUNT, "GET", "/api/v2/private/get_account_summary", {"currency": self.currency},
                               weight=1, signed=True, description="account summary (read-only key check)"),
        }

    def classify(self, probe: str, response: RawResponse) -> Classification:
        return never_raise(self._classify, probe, response)

    def _classify(self, probe: str, response: RawResponse) -> Classification:
        decoded = decode_json(response.body, response.truncated)
        obj = as_object(decoded.value)
        common: Common = {
            "retry_after_s": retry_after_seconds(response.headers),
            "server_time_ms": _midpoint_ms(obj) if obj is not None else None,
        }
        extra: JsonObject = {}
        if obj is not None and obj.get("testnet") is True:
            extra["testnet"] = True
        error = obj.get("error") if obj is not None else None
        error_obj = as_object(error)
        if error_obj is not None:
            code = to_int(error_obj.get("code"))
            if code is not None:
                return self._error_code(response, code, error_obj, common, extra)
        failure = http_failure(response, decoded, **common)
        if failure is not None:
            return failure
        if not decoded.ok:
            return bad_payload(decoded.error or "unreadable body", **common)
        if obj is None:
            return bad_payload(f"expected a JSON object, got {type(decoded.value).__name__}", **common)
        if error is not None:
            return bad_payload(f"error is malformed: {cap_text(error, 80)}", **common)
        if "result" not in obj:
            return bad_payload("neither result nor error in the reply", **common)
        return self._success(probe, obj["result"], common, extra)

    def _error_code(
        self,
        response: RawResponse,
        code: int,
        error: JsonObject,
        common: Common,
        extra: JsonObject,
    ) -> Classification:
        status = response.status
        if code in _RATE_LIMITED or status == 429:
            outcome = Outcome.RATE_LIMITED
        elif code in _AUTH or status == 401:
            outcome = Outcome.AUTH
        elif code in _CLOCK:
            outcome = Outcome.CLOCK_SKEW
        elif code in _MAINTENANCE:
            outcome = Outcome.MAINTENANCE
        elif code in _INTERNAL or 500 <= status < 600:
            outcome = Outcome.HTTP_5XX
        else:
            outcome = Outcome.EXCHANGE_ERROR  # -32xxx protocol errors, bad instrument ...: the request is wrong
        message = cap_text(error.get("message"))
        data = error.get("data")
        if data is not None:
            extra = {**extra, "error_data": cap_text(data, 200)}
        return Classification(outcome=outcome, error_code=str(code), error_message=message, extra=extra, **common)

    def _success(self, probe: str, result: JsonValue, common: Common, extra: JsonObject) -> Classification:
        ok = Outcome.OK
        if probe == PING:
            if isinstance(result, dict) and isinstance(result.get("version"), str):
                extra = {**extra, "version": cap_text(result["version"], 40)}
            return Classification(outcome=ok, extra=extra, **common)
        if probe == TIME:
            server_ms = epoch_ms(result) if isinstance(result, int | float) else None
            if server_ms is None:
                return bad_payload("result is not epoch ms", **common)
            if common.get("server_time_ms") is None:  # usIn/usOut (µs) are finer; get_time is the fallback
                common = amend(common, server_time_ms=server_ms)
            return Classification(outcome=ok, extra=extra, **common)
        if not isinstance(result, dict):
            return bad_payload(f"result is not an object ({type(result).__name__})", **common)
        if probe == STATUS:
            return _lock_status(result, common, extra)
        if probe in (TICKER, BOOK):
            name = result.get("instrument_name")
            if not isinstance(name, str) or name.upper() != self.symbol.upper():
                return bad_payload(f"result is for {cap_text(name, 40)!r}, not {self.symbol!r}", **common)
            if epoch_ms(result.get("timestamp")) is None:
                return bad_payload("timestamp is missing or not epoch ms", **common)
        if probe == TICKER:
            bid, ask = to_positive_price(result.get("best_bid_price")), to_positive_price(result.get("best_ask_price"))
            if bid is None or ask is None:
                return bad_payload("best_bid_price/best_ask_price are not numbers", **common)
            extra = {**extra, "bid": bid, "ask": ask, "last": to_float(result.get("last_price"))}
            state = result.get("state")
            if isinstance(state, str) and state != "open":
                extra["instrument_state"] = cap_text(state, 20)
            if bid > ask > 0:
                extra["crossed_book"] = True
            return Classification(outcome=ok, extra=extra, **common)
        if probe == BOOK:
            for side in ("bids", "asks"):
                problem = check_levels(result.get(side))
                if problem:
                    return bad_payload(f"{side}: {problem}", **common)
            return Classification(outcome=ok, extra=extra, **common)
        if probe == ACCOUNT:
            if not isinstance(result.get("currency"), str) or to_float(result.get("equity")) is None:
                return bad_payload("account summary has no currency/equity", **common)
            return Classification(outcome=ok, extra=extra, **common)
        return Classification(outcome=ok, extra=extra, **common)

    def sign(
        self,
        spec: ProbeSpec,
        credentials: Credentials,
        timestamp_ms: int,
        query: str,
        body: str = "",
        nonce: str | None = None,
    ) -> SignedRequest:
        nonce = nonce or secrets.token_hex(8)
        uri = spec.path + (f"?{query}" if query else "")
        signature = deribit_rest_signature(credentials.api_secret, int(timestamp_ms), nonce, spec.method, uri, body)
        value = deribit_authorization(credentials.api_key, int(timestamp_ms), signature, nonce)
        return SignedRequest(headers={"Authorization": value}, params={}, query=query)

    def classify_ws_message(self, message: object) -> WsEvent:
        frame = decode_frame(message)
        if not isinstance(frame, dict):
            return unreadable(frame)
        method = frame.get("method")
        if method == "heartbeat":
            beat = dig(frame, "params", "type")
            if beat == "test_request":
                return WsEvent(kind="heartbeat_request", message="answer with public/test now")
            return WsEvent(kind="pong", message="heartbeat")
        if method == "subscription":
            channel = dig(frame, "params", "channel")
            data = dig(frame, "params", "data")
            when = epoch_ms(data.get("timestamp")) if isinstance(data, dict) else None
            locked = isinstance(data, dict) and data.get("locked") in (True, "true")
            if isinstance(channel, str) and channel.startswith("platform_state") and locked:
                return WsEvent(kind="notice_reconnect", event_time_ms=when, message=cap_text(data))
            if isinstance(data, dict) and "change_id" in data:  # book: each update names the previous
                return WsEvent(kind="data", event_time_ms=when, seq=to_int(data.get("change_id")),
                               prev_seq=to_int(data.get("prev_change_id")),
                               topic=channel[:60] if isinstance(channel, str) else None)
            return WsEvent(kind="data", event_time_ms=when,
                           topic=channel[:60] if isinstance(channel, str) else None)
        error = as_object(frame.get("error"))
        if error is not None:
            return WsEvent(kind="error", error_code=cap_text(error.get("code"), 20) or None,
                           message=cap_text(error.get("message")) or None)
        if "result" in frame:
            result = frame["result"]
            sent = _midpoint_ms(frame)
            if isinstance(result, dict) and "access_token" in result:
                return WsEvent(kind="auth_ok", event_time_ms=sent)
            if isinstance(result, dict) and "version" in result:
                return WsEvent(kind="pong", event_time_ms=sent)  # public/test: our heartbeat answer / ping
            if isinstance(result, list) or result == "ok":
                return WsEvent(kind="subscribed", event_time_ms=sent)  # subscribe / set_heartbeat ack
            return WsEvent(kind="data", event_time_ms=sent)
        if "instrument_name" in frame and "timestamp" in frame:  # a bare notification payload
            return WsEvent(kind="data", event_time_ms=epoch_ms(frame.get("timestamp")))
        return unreadable(frame)


def _midpoint_ms(obj: JsonObject) -> float | None:
    """Server time as the midpoint of usIn/usOut (epoch µs) -> epoch ms."""
    us_in, us_out = to_int(obj.get("usIn")), to_int(obj.get("usOut"))
    if us_in is None or us_out is None or us_out < us_in:
        return None
    return epoch_ms((us_in + us_out) / 2000.0)


def _lock_status(result: JsonObject, common: Common, extra: JsonObject) -> Classification:
    """``locked``: true/"true" is maintenance, "partial" is a note, false/"false" is fine.

    The docs disagree on type (bool vs string) and key (locked_indices vs locked_currencies).
    """
    locked = result.get("locked")
    names = result.get("locked_indices", result.get("locked_currencies"))
    locked_names = [cap_text(n, 30) for n in names if isinstance(n, str)][:50] if isinstance(names, list) else []
    if locked_names:
        extra = {**extra, "locked": [*locked_names]}
    value = locked.lower() if isinstance(locked, str) else locked
    if value is True or value == "true":
        return Classification(
            outcome=Outcome.MAINTENANCE,
            error_code="locked",
            error_message="platform locked" + (f": {', '.join(locked_names)}" if locked_names else ""),
            extra=extra,
            **common,
        )
    if value == "partial":
        return Classification(outcome=Outcome.OK, extra={**extra, "note": "partially locked"}, **common)
    if value is False or value == "false":
        return Classification(outcome=Outcome.OK, extra=extra, **common)
    return bad_payload(f"locked is not a boolean or true/partial/false: {cap_text(locked, 40)}", **common)
