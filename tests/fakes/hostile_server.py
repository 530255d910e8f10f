"""A tiny loopback HTTP server that answers with hostile values on demand (issue 13).

Run in a background thread of the test process: ``/ok`` always answers 200 ``{"status": "ok"}``; every
other path answers with the current *mode* (set with ``server.mode = "..."``, or cycled with
``server.set_cycle([...])`` one mode per request), or with the mode named in the path:
``/m/<mode>/...``, or every hostile mode in turn per key: ``/c/<key>/...``. Modes are the values seen to
break the daemon: a far-future ``Retry-After``, NaN/inf/negative ones, Binance 418 bans with 16-digit or 2286
or past expiries, bodies cut at the size cap, invalid JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

from aiohttp import web

BINANCE_TIME = "/api/v3/time"


def _date() -> str:
    return email.utils.formatdate(time.time(), usegmt=True)


def hostile_response(mode: str, path: str) -> web.StreamResponse:
    """The answer for ``mode``; ``ok`` and unknown modes are a healthy Binance-ish answer."""
    now_ms = int(time.time() * 1000)
    date = {"Date": _date()}
    if mode.startswith("retry_after:"):
        value = mode.split(":", 1)[1]
        return web.json_response({"code": -1003, "msg": "Too many requests"}, status=429,
                                 headers={**date, "Retry-After": value})
    if mode.startswith("ban_until:"):
        value = mode.split(":", 1)[1]
        return web.json_response({"code": -1003, "msg": f"Way too many requests; IP banned until {value}. "
                                  "Please use the websocket for live updates to avoid bans."},
                                 status=418, headers=date)
    if mode == "ban_past":
        return hostile_response(f"ban_until:{now_ms - 3_600_000}", path)
    if mode == "big_body":
        return web.Response(body=b"[" + b"1," * 3_000_000 + b"1]", content_type="application/json", headers=date)
    if mode == "bad_json":
        return web.Response(body=b'{"serverTime": ', content_type="application/json", headers=date)
    if mode == "nan_time":
        return web.Response(body=b'{"serverTime": NaN}', content_type="application/json", headers=date)
    if mode == "huge_time":
        return web.Response(body=b'{"serverTime": 1e400}', content_type="application/json", headers=date)
    if mode == "date_far":
        return web.json_response({"serverTime": now_ms}, headers={"Date": "Fri, 31 Dec 9999 23:59:59 GMT"})
    if path.endswith("/ping") or path.endswith("exchangeInfo"):
        return web.json_response({}, headers=date)
    if path.endswith("/ticker/bookTicker"):
        return web.json_response({"symbol": "BTCUSDT", "bidPrice": "1", "bidQty": "1", "askPrice": "1.1",
                                  "askQty": "1"}, headers=date)
    return web.json_response({"serverTime": now_ms}, headers=date)


HOSTILE_MODES = [
    "retry_after:1e12", "retry_after:inf", "retry_after:nan", "retry_after:-5",
    "retry_after:99999999999999999999999", "retry_after:Fri, 31 Dec 9999 23:59:59 GMT",
    "ban_until:1234567890123456", "ban_until:9999999999999", "ban_past", "big_body", "bad_json",
    "nan_time", "huge_time", "date_far",
]


class HostileServer:
    """The server and its knobs; ``url`` once started."""

    def __init__(self) -> None:
        self.mode = "ok"
        self._modes: Iterator[str] | None = None
        self.url = ""
        self.requests = 0
        self.seen: list[str] = []
        self.by_mode: dict[str, int] = {}
        self._cycles: dict[str, Iterator[str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def set_cycle(self, modes: list[str]) -> None:
        self._modes = itertools.cycle(modes)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/ok":
            return web.json_response({"status": "ok"})
        self.requests += 1
        path = request.path
        if path.startswith("/m/"):  # /m/<mode>/...: a base_url per mode, so one server serves many exchanges
            _, _, mode, rest = path.split("/", 3)
            path = "/" + rest
        elif path.startswith("/c/"):  # /c/<key>/...: HOSTILE_MODES in turn, per key, from a key-chosen start
            _, _, key, rest = path.split("/", 3)
            path = "/" + rest
            if key not in self._cycles:
                start = sum(key.encode()) % len(HOSTILE_MODES)
                self._cycles[key] = itertools.cycle(HOSTILE_MODES[start:] + HOSTILE_MODES[:start])
            mode = next(self._cycles[key])
        else:
            mode = next(self._modes) if self._modes is not None else self.mode
        self.seen.append(mode)
        self.by_mode[mode] = self.by_mode.get(mode, 0) + 1
        return hostile_response(mode, path)

    async def _main(self, ready: threading.Event) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server: Any = site._server
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._stop = asyncio.Event()
        ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    @contextlib.contextmanager
    def running(self) -> Iterator[HostileServer]:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._main(ready))
            self._loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("hostile server did not start")
        try:
            yield self
        finally:
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

