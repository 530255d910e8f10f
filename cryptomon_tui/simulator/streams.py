"""WebSocket market streams of the fake exchanges, with scripted stream faults.

Each exchange speaks its own framing (subscribe acknowledgements, heartbeats, data frames with event
times and update numbers) closely enough that the monitor's real stream probes cannot tell it from
the venue. The publisher sends ``rate`` data messages per second per connection; the scenario's
stream faults (``ws_*`` in scenario.py) change what is sent: a stall with the socket open, a drip,
bursts, sequence holes, lagging event times, ignored heartbeats, forced disconnects, planned
shutdown notices, garbage frames and a huge frame.

A request for a stream path that the venue does not serve (Binance futures' unrouted ``/ws/...``)
is accepted and then receives nothing, as the real venue does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from cryptomon_tui.simulator.market import Market
from cryptomon_tui.simulator.scenario import (
    FaultBase,
    WsBurstFault,
    WsDisconnectFault,
    WsDripFault,
    WsHeartbeatFault,
    WsHugeFrameFault,
    WsLagFault,
    WsMalformedFault,
    WsSeqGapFault,
    WsShutdownFault,
    WsStallFault,
)

log = logging.getLogger(__name__)

DEFAULT_RATE = 10.0  # data messages per second per connection
MAX_RATE = 20_000.0
DERIBIT_MIN_HEARTBEAT_S = 10.0

ActiveFaults = Callable[[], list[FaultBase]]  # stream faults active now for this exchange
Wall = Callable[[], float]


@dataclass(slots=True)
class _Conn:
    """One client connection's state."""

    ws: web.WebSocketResponse
    exchange: str
    path: str
    rate: float
    served: bool  # False: a path the venue does not serve (silently nothing)
    subscribed: bool = False
    topic: str = ""
    seq: int = 1_000
    opened: float = 0.0  # loop time
    heartbeat_s: float | None = None  # Deribit set_heartbeat interval
    test_answered: bool = True
    shutdown_sent: bool = False
    huge_sent: bool = False
    last_burst: float = field(default=-1e9)
    last_drip: float = field(default=-1e9)
    last_skip: float = field(default=-1e9)


class StreamPublisher:
    """Serves every stream connection of one simulated exchange."""

    def __init__(self, exchange: str, market: Market, active: ActiveFaults, wall: Wall,
                 skew_ms: Callable[[], float], rng: random.Random, default_rate: float = DEFAULT_RATE,
                 secrets: Mapping[str, str] | None = None) -> None:
        self.exchange = exchange
        self._market = market
        self._active = active
        self._wall = wall
        self._skew_ms = skew_ms
        self._rng = rng
        self.default_rate = default_rate
        self._secrets = dict(secrets or {})  # api_key -> secret; empty: any non-empty login is accepted
        self.logins: list[tuple[str, bool]] = []  # (api_key, accepted), for tests
        self.connections: set[web.WebSocketResponse] = set()
        self.sent = 0

    # ------------------------------------------------------------------ entry

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        try:
            rate = float(request.query.get("rate", self.default_rate))
        except ValueError:
            rate = self.default_rate
        rate = min(MAX_RATE, max(0.1, rate))
        conn = _Conn(ws=ws, exchange=self.exchange, path=request.path, rate=rate,
                     served=self._serves(request.path), opened=asyncio.get_running_loop().time())
        self._raw_subscription(conn, request)
        self.connections.add(ws)
        sender = asyncio.create_task(self._send_loop(conn))
        try:
            await self._read_loop(conn)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            self.connections.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()
        return ws

    async def close_all(self, code: int = 1001, message: bytes = b"going away") -> None:
        for ws in list(self.connections):
            with contextlib.suppress(Exception):
                await ws.close(code=code, message=message)

    def _serves(self, path: str) -> bool:
        if self.exchange == "binance":
            return path.startswith("/ws") or path.startswith("/stream")
        if self.exchange == "binance_futures":  # routed paths only (exchanges.md 1.7)
            return path.startswith("/public/") or path.startswith("/market/")
        if self.exchange == "bybit":
            return path.startswith("/v5/public/")
        if self.exchange == "okx":
            return path.startswith("/ws/v5/public")
        return path.startswith("/ws/api/v2")

    def _raw_subscription(self, conn: _Conn, request: web.BaseRequest) -> None:
        """Binance raw (``/ws/<name>``) and combined (``/stream?streams=``) URLs subscribe by path."""
        if self.exchange not in ("binance", "binance_futures") or not conn.served:
            return
        name = request.path.rsplit("/", 1)[-1]
        if "@" in name:
            conn.subscribed, conn.topic = True, name
        elif request.query.get("streams"):
            conn.subscribed, conn.topic = True, request.query["streams"].split("/")[0]

    # ------------------------------------------------------------------ client -> server

    async def _read_loop(self, conn: _Conn) -> None:
        async for msg in conn.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            faults = self._active()
            ignoring_pings = any(isinstance(f, WsHeartbeatFault) for f in faults)
            for reply in self._answer(conn, msg.data, ignoring_pings):
                await conn.ws.send_str(reply)

    def _answer(self, conn: _Conn, text: str, ignoring_pings: bool) -> list[str]:
        ex = self.exchange
        if ex == "okx" and text.strip() == "ping":
            return [] if ignoring_pings else ["pong"]
        login = self._login(text)
        if login is not None:
            return [login]
        try:
            frame = json.loads(text)
        except ValueError:
            return []
        if not isinstance(frame, dict):
            return []
        if ex in ("binance", "binance_futures"):
            if frame.get("method") == "SUBSCRIBE" and isinstance(frame.get("params"), list) and frame["params"]:
                conn.subscribed, conn.topic = True, str(frame["params"][0])
                return [json.dumps({"result": None, "id": frame.get("id")})]
            return []
        if ex == "bybit":
            op = frame.get("op")
            if op == "ping":
                if ignoring_pings:
                    return []
                return [json.dumps({"success": True, "ret_msg": "pong", "conn_id": "sim", "req_id":
                                    frame.get("req_id", ""), "op": "ping"})]
            if op == "subscribe" and isinstance(frame.get("args"), list) and frame["args"]:
                conn.subscribed, conn.topic = True, str(frame["args"][0])
                return [json.dumps({"success": True, "ret_msg": "", "conn_id": "sim",
                                    "req_id": frame.get("req_id", ""), "op": "subscribe"})]
            return []
        if ex == "okx":
            args = frame.get("args")
            if frame.get("op") == "subscribe" and isinstance(args, list) and args and isinstance(args[0], dict):
                conn.subscribed, conn.topic = True, str(args[0].get("instId", "BTC-USDT"))
                return [json.dumps({"id": frame.get("id"), "event": "subscribe", "arg": args[0], "connId": "sim"})]
            return []
        # deribit: JSON-RPC
        method, rid = frame.get("method"), frame.get("id")
        if method == "public/set_heartbeat":
            interval = frame.get("params", {}).get("interval") if isinstance(frame.get("params"), dict) else None
            if not isinstance(interval, int | float) or interval < DERIBIT_MIN_HEARTBEAT_S:
                return [json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": 11029, "message":
                                    "invalid_arguments"}})]
            conn.heartbeat_s = float(interval)
            return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": "ok"})]
        if method == "public/subscribe":
            params = frame.get("params")
            channels = params.get("channels") if isinstance(params, dict) else None
            if isinstance(channels, list) and channels:
                conn.subscribed, conn.topic = True, str(channels[0])
                return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": channels})]
        if method == "public/test":
            if not ignoring_pings:
                conn.test_answered = True
            return [json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"version": "2.1.1"}})]
        return []

    def _login(self, text: str) -> str | None:
        """Signed user-data stream logins (Bybit ``auth``, OKX ``login``, Deribit ``public/auth``), checked
        like the exchange does when the key's secret is known; the reply each venue gives."""
        try:
            frame = json.loads(text)
        except ValueError:
            return None
        if not isinstance(frame, dict):
            return None
        ex = self.exchange
        if ex == "bybit" and frame.get("op") == "auth":
            args = frame.get("args")
            ok = (isinstance(args, list) and len(args) == 3 and isinstance(args[1], int)
                  and args[1] > self._wall() * 1000 and self._signed(str(args[0]), f"GET/realtime{args[1]}",
                                                                    str(args[2]), "hex"))
            self.logins.append((str(args[0]) if isinstance(args, list) and args else "", ok))
            if ok:
                return json.dumps({"success": True, "ret_msg": "", "op": "auth", "conn_id": "sim"})
            return json.dumps({"success": False, "ret_msg": "Invalid apikey or signature", "op": "auth",
                               "conn_id": "sim"})
        if ex == "okx" and frame.get("op") == "login":
            args = frame.get("args")
            item = args[0] if isinstance(args, list) and args and isinstance(args[0], dict) else {}
            stamp = str(item.get("timestamp", ""))
            fresh = stamp.isdigit() and abs(int(stamp) - self._wall()) <= 30
            ok = fresh and bool(item.get("passphrase")) and self._signed(
                str(item.get("apiKey", "")), f"{stamp}GET/users/self/verify", str(item.get("sign", "")), "base64")
            self.logins.append((str(item.get("apiKey", "")), ok))
            if ok:
                return json.dumps({"id": frame.get("id"), "event": "login", "code": "0", "msg": "", "connId": "sim"})
            return json.dumps({"id": frame.get("id"), "event": "error", "code": "60009", "msg": "Login failed.",
                               "connId": "sim"})
        if ex == "deribit" and frame.get("method") == "public/auth":
            raw_params = frame.get("params")
            params: dict[str, object] = raw_params if isinstance(raw_params, dict) else {}
            ts, nonce = params.get("timestamp"), str(params.get("nonce", ""))
            fresh = isinstance(ts, int) and abs(ts - self._wall() * 1000) <= 60_000
            ok = fresh and self._signed(str(params.get("client_id", "")), f"{ts}\n{nonce}\n{params.get('data', '')}",
                                        str(params.get("signature", "")), "hex")
            self.logins.append((str(params.get("client_id", "")), ok))
            if ok:
                return json.dumps({"jsonrpc": "2.0", "id": frame.get("id"), "result": {
                    "access_token": "sim-token", "token_type": "bearer", "expires_in": 900,
                    "refresh_token": "sim-refresh", "scope": "account:read connection"}})
            return json.dumps({"jsonrpc": "2.0", "id": frame.get("id"), "error": {
                "code": 13004, "message": "invalid_credentials"}})
        return None

    def _signed(self, api_key: str, plain: str, signature: str, encoding: str) -> bool:
        if not api_key or not signature:
            return False
        if not self._secrets:
            return True
        secret = self._secrets.get(api_key)
        if secret is None:
            return False
        digest = hmac.new(secret.encode(), plain.encode(), hashlib.sha256)
        want = digest.hexdigest() if encoding == "hex" else base64.b64encode(digest.digest()).decode()
        return hmac.compare_digest(want, signature)

    # ------------------------------------------------------------------ server -> client

    async def _send_loop(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        ws = conn.ws
        next_beat = conn.opened + (conn.heartbeat_s or 0.0)
        period = 1.0 / conn.rate
        next_at = loop.time()
        while not ws.closed:
            now = loop.time()
            faults = self._active()
            if await self._connection_faults(conn, faults, now):
                return
            if conn.heartbeat_s is not None and now >= next_beat:
                if not conn.test_answered:  # unanswered test_request: Deribit closes at once
                    await ws.close(code=1000, message=b"heartbeat test_request not answered")
                    return
                conn.test_answered = False
                next_beat = now + conn.heartbeat_s
                await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "heartbeat",
                                              "params": {"type": "test_request"}}))
            if conn.subscribed and conn.served:
                count = self._due_messages(conn, faults, now)
                for _ in range(count):
                    await ws.send_str(self._data_frame(conn, faults))
                    self.sent += 1
            next_at += period
            delay = next_at - loop.time()
            if delay < -1.0:  # fell behind (a slow client): do not try to catch up in a flood
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    async def _connection_faults(self, conn: _Conn, faults: list[FaultBase], now: float) -> bool:
        """Faults that act on the connection itself; True when the connection was closed."""
        ws, age = conn.ws, now - conn.opened
        for f in faults:
            if isinstance(f, WsDisconnectFault) and age >= f.every:
                await ws.close(code=f.code, message=b"simulated disconnect")
                return True
            if isinstance(f, WsHeartbeatFault) and age >= f.after:
                await ws.close(code=4000, message=b"heartbeat timeout: no pong")
                return True
            if isinstance(f, WsShutdownFault) and conn.subscribed and not conn.shutdown_sent:
                conn.shutdown_sent = True
                await ws.send_str(self._shutdown_notice())
                await asyncio.sleep(f.after)
                await ws.close(code=1001, message=b"server shutdown")
                return True
            if isinstance(f, WsHugeFrameFault) and conn.subscribed and not conn.huge_sent:
                conn.huge_sent = True
                blob = '{"e":"trade","pad":"' + "x" * int(f.mb * 1_000_000) + '"}'
                with contextlib.suppress(Exception):
                    await ws.send_str(blob)
        return False

    def _due_messages(self, conn: _Conn, faults: list[FaultBase], now: float) -> int:
        """How many data frames go out on this tick (1 normally)."""
        for f in faults:
            if isinstance(f, WsStallFault):
                return 0
            if isinstance(f, WsDripFault):
                if now - conn.last_drip >= f.every:
                    conn.last_drip = now
                    return 1
                return 0
            if isinstance(f, WsBurstFault):
                if now - conn.last_burst >= f.every:
                    conn.last_burst = now
                    return f.count
                return 0
        return 1

    def _shutdown_notice(self) -> str:
        if self.exchange == "okx":
            return json.dumps({"event": "notice", "code": "64008", "msg": "The connection will soon be closed for "
                               "a service upgrade. Please reconnect.", "connId": "sim"})
        return json.dumps({"e": "serverShutdown", "E": int(self._wall() * 1000)})

    def _data_frame(self, conn: _Conn, faults: list[FaultBase]) -> str:
        now = self._wall()
        lag = 0.0
        loop_now = asyncio.get_running_loop().time()
        for f in faults:
            if isinstance(f, WsMalformedFault) and self._rng.random() < f.rate:
                return '{"e":"trade","E":' + "9" * 5  # cut mid-number: not JSON
            if isinstance(f, WsLagFault):
                lag += f.ms
            if isinstance(f, WsSeqGapFault) and loop_now - conn.last_skip >= f.every:
                conn.last_skip = loop_now
                if self.exchange == "binance":
                    conn.seq += f.skip  # contiguous trade ids: a hole
                else:
                    conn.seq = max(1, conn.seq - f.skip - 1)  # growing-only numbers go back: a replay
        conn.seq += 1
        event_ms = int(now * 1000.0 + self._skew_ms() - lag)
        return _FORMATS[self.exchange](self, conn, event_ms)

    # ------------------------------------------------------------------ frames per venue

    def _quote(self, symbol: str) -> tuple[float, float, float, float]:
        return self._market.quote(symbol, self._wall())

    def _binance(self, conn: _Conn, event_ms: int) -> str:
        symbol = conn.topic.split("@")[0].upper() or "BTCUSDT"
        bid, bq, ask, aq = self._quote(symbol)
        if self.exchange == "binance":
            return json.dumps({"e": "trade", "E": event_ms, "s": symbol, "t": conn.seq, "p": f"{ask:.2f}",
                               "q": "0.00100", "T": event_ms, "m": False, "M": True})
        return json.dumps({"e": "bookTicker", "u": conn.seq, "s": symbol, "b": f"{bid:.2f}", "B": f"{bq}",
                           "a": f"{ask:.2f}", "A": f"{aq}", "T": event_ms, "E": event_ms})

    def _bybit(self, conn: _Conn, event_ms: int) -> str:
        symbol = conn.topic.split(".")[-1] or "BTCUSDT"
        bid, bq, ask, aq = self._quote(symbol)
        return json.dumps({"topic": conn.topic, "type": "snapshot", "cs": conn.seq, "ts": event_ms,
                           "data": {"symbol": symbol, "lastPrice": f"{ask:.2f}", "bid1Price": f"{bid:.2f}",
                                    "bid1Size": f"{bq}", "ask1Price": f"{ask:.2f}", "ask1Size": f"{aq}"}})

    def _okx(self, conn: _Conn, event_ms: int) -> str:
        inst = conn.topic or "BTC-USDT"
        bid, bq, ask, aq = self._quote(inst.replace("-", ""))
        return json.dumps({"arg": {"channel": "tickers", "instId": inst}, "data": [{
            "instType": "SPOT", "instId": inst, "last": f"{ask:.2f}", "lastSz": "0.001", "askPx": f"{ask:.2f}",
            "askSz": f"{aq}", "bidPx": f"{bid:.2f}", "bidSz": f"{bq}", "ts": str(event_ms)}]})

    def _deribit(self, conn: _Conn, event_ms: int) -> str:
        channel = conn.topic or "ticker.BTC-PERPETUAL.100ms"
        bid, bq, ask, aq = self._quote("BTCUSD")
        return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": {
            "instrument_name": channel.split(".")[1] if "." in channel else "BTC-PERPETUAL",
            "best_bid_price": round(bid, 1), "best_bid_amount": bq, "best_ask_price": round(ask, 1),
            "best_ask_amount": aq, "timestamp": event_ms, "state": "open"}}})


_FORMATS: dict[str, Callable[[StreamPublisher, _Conn, int], str]] = {
    "binance": StreamPublisher._binance,
    "binance_futures": StreamPublisher._binance,
    "bybit": StreamPublisher._bybit,
    "okx": StreamPublisher._okx,
    "deribit": StreamPublisher._deribit,
}
