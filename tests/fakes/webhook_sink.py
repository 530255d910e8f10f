"""A real HTTP server on 127.0.0.1 that imitates the notification services cryptomon talks to.

Each service lives under its own path prefix and answers like the real one: Discord (``?wait=true`` ->
200 + Message), Slack (200 ``ok``), WeCom (HTTP 200 + errcode), Telegram (``ok: true``), PagerDuty
(202 ``success``) and a generic signed webhook that honours ``X-Cryptomon-Idempotency-Key``.
Tests script replies per service (429 with retry_after, 5xx, hangs, HTTP-200 errors) and read back
every request. Usable from tests and from benchmarks (``python -m tests.fakes.webhook_sink``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SERVICES = ("discord", "slack", "wecom", "telegram", "pagerduty", "webhook", "alertmanager")


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text, None -> the service's success body
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (the client must time out)
    accept_then_hang: bool = False  # record as delivered, then never answer (a reply lost in transit)


@dataclass
class Recorded:
    service: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int  # what we answered (0 = hung)
    at: float = 0.0  # arrival time on the sink's clock

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookSink:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests: list[Recorded] = []
        self.scripts: dict[str, deque[Reply]] = {s: deque() for s in SERVICES}
        self.persistent: dict[str, Reply | None] = dict.fromkeys(SERVICES)
        self.delivered: dict[str, int] = {}  # idempotency key -> times received (webhook only)
        self.processed: list[str] = []  # keys acted upon: each at most once, duplicates are dropped
        self.duplicates: list[str] = []
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None
        self._hangs: list[asyncio.Event] = []
        self.port = 0
        self.arrived = asyncio.Event()

    # --- scripting -------------------------------------------------------------------------------

    def script(self, service: str, *replies: Reply) -> None:
        """These replies first, in order, then the service's normal behaviour."""
        self.scripts[service].extend(replies)

    def fail(self, service: str, reply: Reply | None) -> None:
        """Answer every request with ``reply`` until called again with None."""
        self.persistent[service] = reply

    def of(self, service: str, answered: int | None = None) -> list[Recorded]:
        return [r for r in self.requests if r.service == service and (answered is None or r.status == answered)]

    def url(self, service: str, suffix: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{service}{suffix}"

    # --- server ----------------------------------------------------------------------------------

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{service}/{tail:.*}", self._handle)
        app.router.add_route("*", "/{service}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for ev in self._hangs:
            ev.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        service = request.match_info["service"]
        body = await request.read()
        rec = Recorded(service, request.path, dict(request.query), dict(request.headers), body, 0, self.clock())
        self.requests.append(rec)
        self.arrived.set()
        reply: Reply | None = None
        if self.scripts.get(service):
            reply = self.scripts[service].popleft()
        elif self.persistent.get(service) is not None:
            reply = self.persistent[service]
        if reply is not None and reply.accept_then_hang:
            self._accept(service, request, body)
        if reply is not None and (reply.hang or reply.accept_then_hang):
            ev = asyncio.Event()
            self._hangs.append(ev)
            await ev.wait()
            raise ConnectionResetError("sink stopped")
        if reply is None:
            reply = self._success(service, request, body)
        rec.status = reply.status
        if isinstance(reply.body, dict | list):
            return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        text = "" if reply.body is None else str(reply.body)
        return web.Response(status=reply.status, text=text, headers=reply.headers)

    def _accept(self, service: str, request: web.Request, body: bytes) -> bool:
        """Record an idempotent delivery; False when the key (or every digest member) was seen already."""
        if service != "webhook":
            return True
        keys = [request.headers.get("X-Cryptomon-Idempotency-Key", "")]
        try:
            members = json.loads(body).get("notice", {}).get("member_keys") or []
        except ValueError:
            members = []
        if members:
            keys = list(members)
        fresh = False
        for key in keys:
            if key in self.delivered:
                self.duplicates.append(key)
            else:
                fresh = True
                self.processed.append(key)
            self.delivered[key] = self.delivered.get(key, 0) + 1
        return fresh

    def _success(self, service: str, request: web.Request, body: bytes) -> Reply:
        if service == "discord":
            if request.query.get("wait") == "true":
                return Reply(200, {"id": str(next(self._ids)), "type": 0, "channel_id": "1"})
            return Reply(204)
        if service == "slack":
            return Reply(200, "ok")
        if service == "wecom":
            return Reply(200, {"errcode": 0, "errmsg": "ok"})
        if service == "telegram":
            return Reply(200, {"ok": True, "result": {"message_id": next(self._ids), "chat": {"id": 1}}})
        if service == "pagerduty":
            try:
                dedup = json.loads(body).get("dedup_key")
            except ValueError:
                return Reply(400, {"status": "invalid event", "message": "Event object is invalid"})
            return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})
        if service == "webhook":
            fresh = self._accept(service, request, body)
            return Reply(200, {"ok": True, "duplicate": not fresh})
        if service == "alertmanager":  # POST /api/v2/alerts answers 200 with an empty body
            return Reply(200, "")
        return Reply(404, "unknown service")


async def _main() -> None:  # pragma: no cover - manual use
    import sys

    sink = WebhookSink()
    base = await sink.start(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(base, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
