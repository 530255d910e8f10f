"""The aiohttp transport against real loopback servers: every failure class becomes an outcome."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver

from cryptomon_tui.config.root import Config
from cryptomon_tui.exchanges.base import ProbeSpec
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.probing.runner import ProbeRunner
from cryptomon_tui.probing.transport import (
    AiohttpTransport,
    TransportOptions,
    TransportRequest,
    _TimedResponseHandler,
)
from tests.fakes.probing_fakes import FakeAdapter

BIG = 50 * 1024 * 1024


class Server:
    def __init__(self) -> None:
        self.big_bytes_written = 0
        self.release = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/ok", self.ok)
        self.app.router.add_get("/time", self.ok)
        self.app.router.add_get("/ping", self.ok)
        self.app.router.add_get("/slow", self.slow)
        self.app.router.add_get("/hang", self.hang)
        self.app.router.add_get("/html", self.html)
        self.app.router.add_get("/truncated-json", self.truncated_json)
        self.app.router.add_get("/big", self.big)
        self.app.router.add_get("/bomb", self.bomb)
        self.app.router.add_get("/forever", _chunked_forever)
        self.runner = web.AppRunner(self.app, access_log=None)
        self.url = ""

    async def ok(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "serverTime": int(time.time() * 1000)})

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.1)
        return web.json_response({"ok": True})

    async def hang(self, request: web.Request) -> web.Response:
        await asyncio.wait_for(self.release.wait(), 30)
        return web.json_response({"ok": True})

    async def html(self, request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html><head><title>502 Bad Gateway</title></head></html>",
                            content_type="text/html")

    async def truncated_json(self, request: web.Request) -> web.Response:
        return web.Response(text='{"ok": true, "serverTi', content_type="application/json")

    async def big(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = BIG
        await resp.prepare(request)
        chunk = b"[" + b"1," * 32767 + b"1"
        try:
            while self.big_bytes_written < BIG:
                await resp.write(chunk)
                self.big_bytes_written += len(chunk)
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass
        return resp

    async def bomb(self, request: web.Request) -> web.Response:
        """50 MB of zeros that travel as ~50 KB of gzip."""
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        zeros = bytes(1024 * 1024)
        body = b"".join(comp.compress(zeros) for _ in range(50)) + comp.flush()
        return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})

    async def __aenter__(self) -> Server:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        await self.runner.cleanup()


async def raw_server(behaviour: str) -> tuple[asyncio.AbstractServer, str]:
    """A server that misbehaves below HTTP: reset, cut-off body, garbage."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if behaviour == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        if behaviour == "cut":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\": tr")
        elif behaviour == "garbage":
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\nnot http at all\r\n\r\n")
        elif behaviour == "huge-header":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Junk: " + b"a" * 200_000 + b"\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    async with Server() as s:
        yield s


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport("test", TransportOptions(max_body_bytes=1024 * 1024, max_connections=4))
    yield t
    await t.aclose()


class BigAdapter(FakeAdapter):
    """The fake exchange whose ping endpoint answers with 50 MB."""

    def probes(self) -> dict[str, ProbeSpec]:
        specs = super().probes()
        specs["ping"] = replace(specs["ping"], path="/big")
        return specs


def req(url: str, timeout: float = 2.0) -> TransportRequest:
    return TransportRequest("GET", url, timeout)


async def test_ok_is_timed_with_phases_and_connection_reuse(server: Server, transport: AiohttpTransport) -> None:
    first = await transport.send(req(server.url + "/ok"))
    second = await transport.send(req(server.url + "/ok"))
    assert first.error is None and first.response is not None and first.response.status == 200
    assert first.latency_ms is not None and first.latency_ms > 0
    assert first.phases is not None and first.phases.reused is False and first.phases.connect_ms is not None
    assert second.phases is not None and second.phases.reused is True and second.phases.connect_ms is None
    assert second.phases.ttfb_ms is not None and second.phases.transfer_ms is not None
    assert second.server_window is not None
    start, end = second.server_window
    assert second.sent_at <= start <= end
    assert FakeAdapter().classify("ok", second.response).outcome is Outcome.OK  # type: ignore[arg-type]
    # latency ends at the arrival of the last byte, noted by our protocol subclass (guards aiohttp upgrades)
    assert transport._session is not None
    assert transport._session.connector._factory.func is _TimedResponseHandler  # type: ignore[union-attr]


async def test_timeout_is_a_result_without_latency(server: Server, transport: AiohttpTransport) -> None:
    result = await transport.send(req(server.url + "/hang", timeout=0.2))
    assert result.error is Outcome.TIMEOUT and result.latency_ms is None and result.response is None
    assert "0.2s" in (result.error_message or "")


async def test_connection_refused(transport: AiohttpTransport) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = await transport.send(req(f"http://127.0.0.1:{port}/ok"))
    assert result.error is Outcome.CONNECT and "refused" in (result.error_message or "")


@pytest.mark.parametrize(("behaviour", "outcome"), [("reset", Outcome.RESET), ("cut", Outcome.RESET),
                                                     ("garbage", Outcome.BAD_PAYLOAD),
                                                     ("huge-header", Outcome.BAD_PAYLOAD)])
async def test_misbehaving_peers(behaviour: str, outcome: Outcome, transport: AiohttpTransport) -> None:
    srv, url = await raw_server(behaviour)
    async with srv:
        result = await transport.send(req(url + "/x"))
    assert result.error is outcome, result
    assert result.latency_ms is not None  # time to failure is known, unlike a timeout


async def test_tls_failure(server: Server, transport: AiohttpTransport) -> None:
    result = await transport.send(req(server.url.replace("http://", "https://") + "/ok"))
    assert result.error is Outcome.TLS, result


async def test_dns_failure_with_an_injected_resolver() -> None:
    class NoSuchHost(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:  # type: ignore[override]
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        async def close(self) -> None:
            return None

    t = AiohttpTransport("test", TransportOptions(resolver=NoSuchHost()))
    try:
        result = await t.send(req("http://api.exchange.invalid/ok"))
    finally:
        await t.aclose()
    assert result.error is Outcome.DNS, result


async def test_html_and_truncated_json_come_back_for_the_adapter(server: Server, transport: AiohttpTransport) -> None:
    html = await transport.send(req(server.url + "/html"))
    assert html.response is not None and html.response.status == 502 and b"Bad Gateway" in html.response.body
    assert FakeAdapter().classify("ping", html.response).outcome is Outcome.HTTP_5XX
    cut = await transport.send(req(server.url + "/truncated-json"))
    assert cut.response is not None
    assert FakeAdapter().classify("ping", cut.response).outcome is Outcome.BAD_PAYLOAD


async def test_50mb_body_is_capped_without_reading_it_all(server: Server, transport: AiohttpTransport) -> None:
    result = await transport.send(req(server.url + "/big"))
    assert result.error is None and result.response is not None
    assert result.response.truncated and len(result.response.body) == 1024 * 1024
    await asyncio.sleep(0.05)
    assert server.big_bytes_written < BIG // 2  # we hung up instead of draining 50 MB
    again = await transport.send(req(server.url + "/ok"))  # the session is still usable
    assert again.error is None


async def test_a_gzip_bomb_is_capped_after_decompression(server: Server, transport: AiohttpTransport) -> None:
    result = await transport.send(req(server.url + "/bomb"))
    assert result.error is None and result.response is not None
    assert result.response.truncated and len(result.response.body) == 1024 * 1024


async def test_pool_wait_is_not_counted_as_latency(server: Server) -> None:
    t = AiohttpTransport("test", TransportOptions(max_connections=1))
    try:
        t0 = time.perf_counter()
        first, second = await asyncio.gather(t.send(req(server.url + "/slow")), t.send(req(server.url + "/slow")))
        wall_ms = (time.perf_counter() - t0) * 1000
    finally:
        await t.aclose()
    waited = max(first, second, key=lambda r: r.pool_wait_ms)
    assert waited.pool_wait_ms >= 80  # it really queued behind the other request for ~100 ms
    assert waited.latency_ms is not None and waited.latency_ms < wall_ms - 80
    assert waited.latency_ms + waited.pool_wait_ms == pytest.approx(wall_ms, abs=40)


async def test_runner_with_real_transport_survives_a_hostile_50mb_body(server: Server) -> None:
    """Through the whole worker: a huge body yields a classified result, never an exception."""
    cfg = Config.model_validate({
        "exchanges": {"fx": {"kind": "bybit", "base_url": server.url, "interval": "100ms", "timeout": "2s",
                             "probes": ["ping", "time"]}},
        "probing": {"budget_share": 1.0, "max_body_bytes": 1024 * 1024},
    })
    results: list[ProbeResult] = []
    enough = asyncio.Event()

    def collect(r: ProbeResult) -> None:
        results.append(r)
        if len({x.probe for x in results}) == 2 and len(results) >= 4:
            enough.set()

    runner = ProbeRunner(cfg, adapter_factory=lambda n, c: BigAdapter(name=n))
    runner.subscribe_results(collect)
    await runner.start()
    try:
        await asyncio.wait_for(enough.wait(), 10)
    finally:
        await runner.stop()
    big = [r for r in results if r.probe == "ping"]
    assert big and all(r.outcome is Outcome.BAD_PAYLOAD and r.extra.get("truncated") for r in big)
    assert any(r.outcome is Outcome.OK and r.clock_offset_ms is not None for r in results if r.probe == "time")
    assert abs(next(r for r in results if r.probe == "time").clock_offset_ms or 0) < 1000


async def _chunked_forever(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        while True:
            await resp.write(b'{"status": "ok"}' * 1024)
    except (ConnectionResetError, ConnectionError, RuntimeError):
        pass
    return resp


@pytest.mark.parametrize("path", ["/big", "/bomb", "/forever"])
@pytest.mark.parametrize("condition", [None, "has($.status) or true"])
async def test_a_generic_target_never_calls_a_body_cut_at_the_cap_ok(
    path: str, condition: str | None, server: Server
) -> None:
    """Issue 13 item 6: a never-ending chunked body, 50 MB and a gzip bomb were 'ok' for a generic target."""
    from cryptomon_tui.exchanges.generic import GenericAdapter

    t = AiohttpTransport("test", TransportOptions(max_body_bytes=64 * 1024, max_connections=2))
    try:
        adapter = GenericAdapter("target", server.url + path, condition=condition)
        sent = await t.send(req(server.url + path))
        assert sent.response is not None and sent.response.truncated
        c = adapter.classify("target", sent.response)
        assert c.outcome is Outcome.BAD_PAYLOAD and c.error_code == "body_too_large"
    finally:
        await t.aclose()
