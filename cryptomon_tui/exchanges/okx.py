"""OKX v5 (www.okx.com; openapi.okx.com, us.okx.com and eea.okx.com via ``base_url``).

Envelopes are ``{"code": "<string>", "msg", "data": [...]}``; ``"0"`` is success and codes
may carry a sub-code (``51008_1000``). Many business errors come with HTTP 200; 50011 comes
with 200 or 429. Limits are per endpoint ("N requests per 2 s"), so each probe carries its
endpoint's limit; no usage headers exist.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import json
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
    epoch_ms,
    epoch_seconds,
    first_dict,
    http_failure,
    maintenance_status,
    never_raise,
    retry_after_seconds,
    to_float,
    to_int,
    to_positive_price,
    venue_overload,
)
from cryptomon_tui.exchanges.ws import (
    USER_STREAM_STALE_FLOOR_S,
    PlainText,
    StreamSpec,
    WsEvent,
    decode_frame,
    topic_key,
    unreadable,
)
from cryptomon_tui.kernel.jsonvalue import JsonArray, JsonObject, JsonValue, as_object, text
from cryptomon_tui.kernel.results import Outcome

CLOCK_TOLERANCE_MS = 30_000.0

_RATE_LIMITED = {"50011", "50061", "50040"}
_OVERLOAD = {"50013"}  # "Systems are busy": the venue is overloaded, not our limit (back off, say so)
_CLOCK = {"50102"}  # "Timestamp request expired" (> 30 s drift)
# Refusals of the signed request (O-DOCS API class, HTTP 400/401), listed one by one: 50100 API
# frozen ... 50112 malformed OK-ACCESS-TIMESTAMP (a format bug, not drift: drift is 50102), 50115
# invalid request method, 50108/50109 unknown exchange id/domain; plus 50007 account blocked, 50008
# user does not exist, 50030/50035 no permission. Other 501xx codes (50122 order amount...) are not auth.
_AUTH = {"50007", "50008", "50030", "50035", "50100", "50101", "50103", "50104", "50105", "50106", "50107",
         "50108", "50109", "50110", "50111", "50112", "50113", "50114", "50115", "50116", "50118", "50119",
         "50120", "50121"}
_MAINTENANCE = {"50001", "50005"}
_INTERNAL = {"50026", "50004"}
_WS_AUTH_FAIL = {"60005", "60007", "60009", "60024", "60006", "60004"}


def okx_timestamp(timestamp_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as ``OK-ACCESS-TIMESTAMP`` wants (2020-12-08T09:08:57.715Z)."""
    moment = _dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(timestamp_ms) % 1000:03d}Z"


def okx_signature(secret: str, timestamp: str, method: str, request_path: str, body: str = "") -> str:
    """base64 HMAC-SHA256 of ``timestamp + METHOD + requestPath(+?query) + body``."""
    message = f"{timestamp}{method.upper()}{request_path}{body}"
    return base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()


def okx_ws_login_signature(secret: str, timestamp_s: int | str) -> str:
    """WS login sign: the timestamp is epoch SECONDS here, not ISO."""
    return okx_signature(secret, str(timestamp_s), "GET", "/users/self/verify")


class OkxAdapter(ExchangeAdapter):
    kind = "okx"
    display_name = "OKX"
    default_base_url = "https://www.okx.com"
    default_ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    default_symbol = "BTC-USDT"
    default_probes = (TIME, STATUS, TICKER)
    # Limits are per endpoint and per IP, so the adapter-wide figure is the sum of the public
    # endpoints the probes use (public/time 10, market/ticker 20, market/books 40 per 2 s);
    # each ProbeSpec carries its own endpoint limit, which is what keeps a single probe safe.
    rate_limit = RateLimit(capacity=70, window_s=2, unit="requests")
    clock_ahead_tolerance_ms = CLOCK_TOLERANCE_MS
    clock_behind_tolerance_ms = CLOCK_TOLERANCE_MS

    def stream_specs(self, ws_url: str | None = None) -> list[StreamSpec]:
        """``tickers`` for the instrument: ``ts`` for lag. Text ``ping`` every 20 s (< 30 s idle cut).

        New connections: at most 3 per second per IP; we allow ourselves 30 per 5 min. A quiet
        market can leave 30 s between pushes, so the stale floor is learnt from the stream itself.
        """
        subscribe = json.dumps({"id": "cryptomon", "op": "subscribe",
                                "args": [{"channel": "tickers", "instId": self.symbol}]})
        return [StreamSpec(name=f"tickers:{self.symbol}", url=ws_url or self.default_ws_url or "",
                           subscribe=(subscribe,), ping_text="ping", ping_every_s=20.0, seq_rule="linked",
                           stale_floor_s=3.0, venue_connect_attempts=3,
                           venue_connect_window_s=1.0)]

    def user_stream_specs(self, credentials: Credentials, ws_url: str | None = None,
                          now: Callable[[], float] = time.time) -> list[StreamSpec]:
        """The private stream (``/ws/v5/private``): ``login`` (exchanges.md 3.6, timestamp in epoch
        SECONDS), then text ``ping`` every 20 s. Needs the passphrase; none without it."""
        if not credentials.passphrase:
            return []
        passphrase = credentials.passphrase
        public = ws_url or self.default_ws_url or ""
        url = public.replace("/ws/v5/public", "/ws/v5/private") if "/ws/v5/public" in public else public

        def login() -> str:
            stamp = str(int(now()))
            return json.dumps({"id": "cryptomonlogin", "op": "login", "args": [{
                "apiKey": credentials.api_key, "passphrase": passphrase, "timestamp": stamp,
                "sign": okx_ws_login_signature(credentials.api_secret, stamp)}]})

        return [StreamSpec(name="private (login)", url=url, ping_text="ping", ping_every_s=20.0,
                           stale_floor_s=USER_STREAM_STALE_FLOOR_S, venue_connect_attempts=3,
                           venue_connect_window_s=1.0, login=login)]

    def probes(self) -> dict[str, ProbeSpec]:
        inst = {"instId": self.symbol}
        time_limit = RateLimit(10, 2)
        return {
            # ping and time share public/time (10 per 2 s): each gets half, so both together stay within it.
            PING: ProbeSpec(PING, "GET", "/api/v5/public/time", weight=1, min_interval_s=0.4,
                            endpoint_limit=time_limit, description="connectivity (time endpoint)"),
            TIME: ProbeSpec(TIME, "GET", "/api/v5/public/time", weight=1, min_interval_s=0.4,
                            endpoint_limit=time_limit, description="server time"),
            STATUS: ProbeSpec(STATUS, "GET", "/api/v5/system/status", weight=1, min_interval_s=5.0,
                              endpoint_limit=RateLimit(1, 5), description="maintenance announcements"),
            TICKER: ProbeSpec(TICKER, "GET", "/api/v5/market/ticker", inst, weight=1, min_interval_s=0.1,
                              endpoint_limit=RateLimit(20, 2), description="best bid/ask"),
            BOOK: ProbeSpec(BOOK, "GET", "/api/v5/market/books", {**inst, "sz": "1"}, weight=1, min_interval_s=0.05,
                            endpoint_limit=RateLimit(40, 2), description="order book, top level"),
            ACCOUNT: ProbeSpec(ACCOUNT, "GET", "/api/v5/account/balance", weight=1, min_interval_s=0.2, signed=True,
                               endpoint_limit=RateLimit(10, 2), description="account balance (signed, read-only)"),
        }

    def classify(self, probe: str, response: RawResponse) -> Classification:
        return never_raise(self._classify, probe, response)

    def _classify(self, probe: str, response: RawResponse) -> Classification:
        common: Common = {"retry_after_s": retry_after_seconds(response.headers)}
        decoded = decode_json(response.body, response.truncated)
        obj = as_object(decoded.value)
        raw_code = obj.get("code") if obj is not None else None
        code = _code_text(raw_code)
        if code is not None and code != "0":
            return self._error_code(response, code, obj.get("msg") if obj else None, common)
        failure = http_failure(response, decoded, **common)
        if failure is not None:
            return failure
        if not decoded.ok:
            return bad_payload(decoded.error or "unreadable body", **common)
        if obj is None:
            return bad_payload(f"expected a JSON object, got {type(decoded.value).__name__}", **common)
        if code is None:
            return bad_payload(f"code is missing or not a string: {cap_text(raw_code, 40)}", **common)
        data = obj.get("data")
        if not isinstance(data, list):
            return bad_payload(f"data is not a list ({type(data).__name__})", **common)
        return self._success(probe, data, common)

    def _error_code(self, response: RawResponse, code: str, message: JsonValue, common: Common) -> Classification:
        main = code.split("_", 1)[0]
        status = response.status
        if main in _OVERLOAD:
            return venue_overload(code, message, common)
        if main in _RATE_LIMITED or status == 429:
            outcome = Outcome.RATE_LIMITED
        elif main in _CLOCK:
            outcome = Outcome.CLOCK_SKEW
        elif main in _AUTH or status == 401:
            outcome = Outcome.AUTH
        elif main in _MAINTENANCE:
            outcome = Outcome.MAINTENANCE
        elif main in _INTERNAL or 500 <= status < 600:
            outcome = Outcome.HTTP_5XX
        elif status == 403:
            outcome = Outcome.IP_BANNED
        else:
            outcome = Outcome.EXCHANGE_ERROR  # 51001 instrument doesn't exist, 50014 bad params ...
        return Classification(outcome=outcome, error_code=code, error_message=cap_text(message), **common)

    def _success(self, probe: str, data: JsonArray, common: Common) -> Classification:
        if probe == PING:
            return Classification(outcome=Outcome.OK, **common)
        if probe == STATUS:
            return _maintenance(data, common)
        item = first_dict(data)
        if item is None:
            return bad_payload("data is empty or not a list of objects", **common)
        if probe == TIME:
            server_ms = epoch_ms(item.get("ts"))
            if server_ms is None:
                return bad_payload("data[0].ts is missing or not epoch ms", **common)
            return Classification(outcome=Outcome.OK, **amend(common, server_time_ms=server_ms))
        if probe == TICKER:
            inst = item.get("instId")
            if not isinstance(inst, str) or inst.upper() != self.symbol.upper():
                return bad_payload(f"ticker is for {cap_text(inst, 40)!r}, not {self.symbol!r}", **common)
            bid, ask = to_positive_price(item.get("bidPx")), to_positive_price(item.get("askPx"))
            if bid is None or ask is None:
                return bad_payload("bidPx/askPx are not numbers", **common)
            if epoch_ms(item.get("ts")) is None:
                return bad_payload("ts is missing or not epoch ms", **common)
            extra: JsonObject = {"bid": bid, "ask": ask, "last": to_float(item.get("last"))}
            if bid > ask > 0:
                extra["crossed_book"] = True
            return Classification(outcome=Outcome.OK, extra=extra, **common)
        if probe == BOOK:
            for side in ("bids", "asks"):
                problem = check_levels(item.get(side))
                if problem:
                    return bad_payload(f"{side}: {problem}", **common)
            if epoch_ms(item.get("ts")) is None:
                return bad_payload("ts is missing or not epoch ms", **common)
            return Classification(outcome=Outcome.OK, **common)
        if probe == ACCOUNT:
            perm = item.get("perm")
            if isinstance(perm, str):  # /api/v5/account/config
                permissions: list[JsonValue] = [p.strip() for p in perm.split(",") if p.strip()]
                return Classification(
                    outcome=Outcome.OK,
                    extra={"read_only": permissions == ["read_only"], "permissions": permissions},
                    **common,
                )
            details = item.get("details")
            if not isinstance(details, list):  # /api/v5/account/balance
                return bad_payload("account balance has no details list", **common)
            return Classification(outcome=Outcome.OK, extra={"assets": len(details)}, **common)
        return Classification(outcome=Outcome.OK, **common)

    def sign(
        self,
        spec: ProbeSpec,
        credentials: Credentials,
        timestamp_ms: int,
        query: str,
        body: str = "",
    ) -> SignedRequest:
        if not credentials.passphrase:
            raise ValueError("OKX credentials need a passphrase")
        timestamp = okx_timestamp(int(timestamp_ms))
        request_path = spec.path + (f"?{query}" if query else "")
        headers = {
            "OK-ACCESS-KEY": credentials.api_key,
            "OK-ACCESS-SIGN": okx_signature(credentials.api_secret, timestamp, spec.method, request_path, body),
            "OK-ACCESS-TIMESTAMP": timestamp,
            "OK-ACCESS-PASSPHRASE": credentials.passphrase,
            "Content-Type": "application/json",
        }
        return SignedRequest(headers=headers, params={}, query=query)

    def classify_ws_message(self, message: object) -> WsEvent:
        frame = decode_frame(message)
        if isinstance(frame, PlainText):
            return WsEvent(kind="pong") if frame.strip() == "pong" else unreadable(str(frame))
        if not isinstance(frame, dict):
            return unreadable(frame)
        event = frame.get("event")
        code = _code_text(frame.get("code"))
        msg = frame.get("msg")
        text = cap_text(msg) or None if msg is not None else None
        if event == "error":
            return WsEvent(kind="error", error_code=code, message=text)
        if event == "notice":
            if code == "64008":
                return WsEvent(kind="notice_reconnect", error_code=code, message=text)
            return WsEvent(kind="error", error_code=code, message=text)
        if event == "login":
            if code in (None, "0"):
                return WsEvent(kind="auth_ok")
            return WsEvent(kind="error", error_code=code, message=text)
        if event in ("subscribe", "unsubscribe"):
            return WsEvent(kind="subscribed")
        if isinstance(event, str) and event.startswith("channel-conn"):
            if event.endswith("error"):
                return WsEvent(kind="error", error_code=code, message=text)
            return WsEvent(kind="data", message=text)
        arg = as_object(frame.get("arg"))
        if arg is not None and "data" in frame:
            item = first_dict(frame.get("data"))
            topic = topic_key(arg.get("channel"), arg.get("instId"))
            if item is None:
                return WsEvent(kind="data", topic=topic)
            # books channels link each update to the previous one (prevSeqId -1 on a snapshot)
            prev = to_int(item.get("prevSeqId"))
            return WsEvent(kind="data", event_time_ms=epoch_ms(item.get("ts")), seq=to_int(item.get("seqId")),
                           prev_seq=prev if prev is not None and prev >= 0 else None, topic=topic)
        if code is not None and code != "0":
            return WsEvent(kind="error", error_code=code, message=text)
        return unreadable(frame)


def _code_text(raw: object) -> str | None:
    """OKX codes are strings; tolerate integers, reject everything else."""
    if isinstance(raw, str):
        text = raw.strip()
        return text[:40] if text else None
    number = to_int(raw) if not isinstance(raw, float) else None
    return None if number is None else str(number)


def _maintenance(data: JsonArray, common: Common) -> Classification:
    """``state: ongoing`` is maintenance now; scheduled and pre_open are reported, not alarmed."""
    return maintenance_status(data, common, ("scheduled", "pre_open"), _maintenance_summary)


def _maintenance_summary(event: JsonObject) -> JsonObject:
    return {
        "title": cap_text(event.get("title"), 120),
        "state": (text(event.get("state")) or "").lower(),  # maintenance_status passes only events with a state
        "begin": epoch_seconds(event.get("begin")),
        "end": epoch_seconds(event.get("end")),
        "service_type": cap_text(event.get("serviceType"), 10),
        "maint_type": cap_text(event.get("maintType"), 10),
    }
