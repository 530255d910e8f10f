"""The simulator: fake exchange REST APIs on loopback ports, with scripted faults.

One aiohttp low-level server per exchange (no router, no middleware, no access log) so the
per-request overhead stays in the tens of microseconds: a probe-accuracy benchmark measures
against it, and an added latency of 50 ms has to be 50 ms. Latency is slept from the moment
the request's bytes arrived (``data_received``), measured with ``perf_counter``; the last
stretch is a short cooperative spin because the event loop's timers wake up to a millisecond late.

Time: the scenario timeline runs on an injectable clock (anything with ``monotonic()``, e.g.
``FakeClock``), so tests move the timeline without waiting while the servers run for real.
Server time in payloads is the wall clock (``wall``) plus the configured skew plus any
``clock_skew`` fault. Added latency is modelled as network delay, half each way: server time
fields are stamped at the midpoint so a client's offset estimate stays unbiased.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import random
import re
import socket
import struct
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from time import perf_counter
from typing import Protocol

from aiohttp import web, web_protocol

from cryptomon_tui.kernel.jsonvalue import JsonValue
from cryptomon_tui.simulator.market import Market
from cryptomon_tui.simulator.scenario import (
    EXCHANGES,
    FOREVER,
    PORT_OFFSETS,
    BanFault,
    ClockSkewFault,
    DriftFault,
    ErrorsFault,
    ExpectedFault,
    FaultBase,
    HtmlFault,
    HugeBodyFault,
    LatencyFault,
    MaintenanceFault,
    MalformedFault,
    RateLimitFault,
    Scenario,
    WeightClimbFault,
    WrongTypesFault,
    load_scenario,
    make_fault,
)
from cryptomon_tui.simulator.streams import StreamPublisher
from cryptomon_tui.simulator.venues import VENUES, Ctx, Reply, Route, Venue

log = logging.getLogger(__name__)

SPIN_S = 0.0015  # final stretch of a timed answer, spun cooperatively (timers wake ~1 ms late)
HANG_CAP_S = 600.0  # a hung request is dropped (never answered) after this long
LISTENER_POLL_S = 0.02
_HUGE_CHUNK = b"9" * 262_144


class MonotonicSource(Protocol):
    def monotonic(self) -> float: ...


class _RealMonotonic:
    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


@dataclass(slots=True)
class _Entry:
    """A fault placed on the timeline: scenario faults loop with the cycle, injected ones don't."""

    fault: FaultBase
    offset: float  # seconds from simulator start at which the fault's own t=0 lies
    cycle: float  # scenario length (FOREVER = open-ended)
    loop: bool
    injected: bool

    def t_in(self, elapsed: float) -> float | None:
        """Seconds since the fault began, or None when it is not active at ``elapsed``."""
        t = elapsed - self.offset
        if t < 0:
            return None
        if self.loop:
            t = t % self.cycle
        elif t >= self.cycle:
            return None
        f = self.fault
        if t < f.start or t >= min(f.end_s, self.cycle):
            return None
        return t - f.start

    def window(self, elapsed: float, t_in: float) -> tuple[float, float]:
        """(begin, end) of the current occurrence in elapsed seconds."""
        begin = elapsed - t_in
        return begin, begin + (min(self.fault.end_s, self.cycle) - self.fault.start)


class _TimedRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, noting when request bytes arrive.

    Timed answers count from here rather than from handler entry, which comes tens of
    microseconds later (and more under load) after parsing and task scheduling.
    """

    __slots__ = ("arrived",)

    def data_received(self, data: bytes) -> None:
        self.arrived = perf_counter()
        super().data_received(data)


class _TimedServer(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _TimedRequestHandler(self, loop=self._loop, **self._kwargs)


class _Port:
    """One exchange's listener. ``refused`` = the listening socket is closed on purpose."""

    __slots__ = ("entries", "host", "name", "port", "publisher", "refused", "runner", "server", "site", "venue")

    def __init__(self, name: str, venue: Venue, host: str) -> None:
        self.name = name
        self.venue = venue
        self.host = host
        self.port = 0
        self.refused = False
        self.entries: list[_Entry] = []
        self.server: _TimedServer | None = None
        self.runner: web.ServerRunner | None = None
        self.site: web.SockSite | None = None
        self.publisher: StreamPublisher | None = None


def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _abort(request: web.BaseRequest) -> None:
    """Reset the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


_HTML_PAGES: dict[str, str] = {
    "cloudfront": (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">\n'
        '<HTML><HEAD><META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=iso-8859-1">\n'
        "<TITLE>ERROR: The request could not be satisfied</TITLE>\n</HEAD><BODY>\n"
        '<H1>{status} ERROR</H1>\n<H2>The request could not be satisfied.</H2>\n<HR noshade size="1px">\n'
        '{reason}\n<BR clear="all">\n<HR noshade size="1px">\n<PRE>\nGenerated by cloudfront (CloudFront)\n'
        "Request ID: sim-{rid}\n</PRE>\n<ADDRESS>\n</ADDRESS>\n</BODY></HTML>"
    ),
    "cloudflare": (
        "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    ),
    "nginx": (
        "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    ),
}
_PHRASES = {
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Temporarily Unavailable",
    504: "Gateway Time-out",
}


def html_page(status: int, page: str | None) -> tuple[bytes, dict[str, str]]:
    """A proxy's error page (CloudFront for 403 by default, Cloudflare otherwise) and its headers."""
    if page is None:
        page = "cloudfront" if status == 403 else "cloudflare"
    phrase = _PHRASES.get(status, "Error")
    reason = (
        "Request blocked.\nWe can't connect to the server for this app or website at this time."
        if status == 403
        else "We can't connect to the server for this app or website at this time."
    )
    rid = f"{random.getrandbits(48):012x}"
    body = _HTML_PAGES[page].format(status=status, phrase=phrase, reason=reason, rid=rid).encode()
    headers = {"Content-Type": "text/html; charset=utf-8" if page != "cloudfront" else "text/html"}
    if page == "cloudfront":
        headers.update(
            {"X-Cache": "Error from cloudfront", "Via": "1.1 sim.cloudfront.net (CloudFront)", "X-Amz-Cf-Id": rid}
        )
    elif page == "cloudflare":
        headers.update({"Server": "cloudflare", "CF-RAY": f"{rid}-SIM"})
    else:
        headers["Server"] = "nginx"
    return body, headers


def _mangle(value: JsonValue) -> JsonValue:
    """The same document with every value's type changed (hostile-payload fault)."""
    if isinstance(value, dict):
        return {key: _mangle(item) for key, item in value.items()}
    if isinstance(value, list):
        return {str(i): _mangle(item) for i, item in enumerate(value)} if value else {"0": None}
    if isinstance(value, bool):
        return "maybe"
    if isinstance(value, int | float):
        return f"{value}x"
    if isinstance(value, str):
        return [value] if not value.lstrip("-").replace(".", "", 1).isdigit() else {"value": value}
    return 0  # null


class Simulator:
    """Fake Binance spot, Binance USD-M futures, Bybit v5, OKX v5 and Deribit v2 on loopback.

    ``port_base`` N puts binance on N, binance_futures on N+1, bybit N+2, okx N+3, deribit N+4;
    0 picks free ports. ``clock`` drives the scenario timeline (default: real monotonic time);
    ``wall`` gives epoch seconds for server time. ``secrets`` maps exchange -> {api_key: secret}
    to verify signatures (otherwise only their presence and timestamps are checked).
    ``enforce_limits`` answers like the exchange when a client exceeds its default limits.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path | None = None,
        host: str = "127.0.0.1",
        port_base: int = 0,
        clock: MonotonicSource | None = None,
        *,
        wall: Callable[[], float] | None = None,
        skew_ms: float = 0.0,
        seed: int | None = None,
        enforce_limits: bool = True,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        precise: bool = True,
        exchanges: Iterable[str] = EXCHANGES,
        on_event: Callable[[str], None] | None = None,
        stream_rate: float = 10.0,
    ) -> None:
        if isinstance(scenario, str | Path):
            scenario = load_scenario(scenario)
        self.scenario: Scenario = scenario or Scenario(name="none")
        self.host = host
        self.port_base = port_base
        self._clock: MonotonicSource = clock or _RealMonotonic()
        self._wall = wall or time.time
        self.skew_ms = float(skew_ms)
        rng_seed = seed if seed is not None else self.scenario.seed
        self._rng = random.Random(rng_seed)
        self._market = Market(random.Random(rng_seed))
        self._spin_s = SPIN_S if precise else 0.0
        self._on_event = on_event
        self._ports: dict[str, _Port] = {}
        for name in exchanges:
            if name not in VENUES:
                raise ValueError(f"unknown exchange {name!r}: use {', '.join(EXCHANGES)}")
            venue = VENUES[name](self._market, enforce_limits, (secrets or {}).get(name))
            port_ = self._ports[name] = _Port(name, venue, host)
            port_.publisher = StreamPublisher(
                name, self._market, self._stream_faults_for(port_), self._wall, self._skew_for(port_),
                random.Random(rng_seed), stream_rate, (secrets or {}).get(name),
            )
        self._t0: float | None = None
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._active_keys: set[tuple[int, str]] = set()
        self._labels: dict[tuple[int, str], str] = {}
        self.requests = 0
        self._load_entries()

    # ------------------------------------------------------------------ public API

    @staticmethod
    def load_scenario(name_or_path: str | Path) -> Scenario:
        """A built-in scenario by name or a YAML file; raises ScenarioError naming file and key."""
        return load_scenario(name_or_path)

    def _stream_faults_for(self, port: _Port) -> Callable[[], list[FaultBase]]:
        def active() -> list[FaultBase]:
            if not port.entries:
                return []
            elapsed = self.elapsed()
            return [e.fault for e in port.entries if e.fault.stream_fault and e.t_in(elapsed) is not None]

        return active

    def _skew_for(self, port: _Port) -> Callable[[], float]:
        """The exchange's clock as its streams stamp it: the configured skew plus any clock_skew fault."""

        def skew() -> float:
            total = self.skew_ms
            if port.entries:
                elapsed = self.elapsed()
                for e in port.entries:
                    if isinstance(e.fault, ClockSkewFault) and (t_in := e.t_in(elapsed)) is not None:
                        total += e.fault.skew_ms(t_in)
            return total

        return skew

    def _maintenance_now(self, port: _Port) -> bool:
        elapsed = self.elapsed()
        return any(e.fault.type == "maintenance" and e.t_in(elapsed) is not None for e in port.entries)

    @property
    def ws_urls(self) -> dict[str, str]:
        """Stream base URLs per exchange, in the shape each adapter expects for ``ws_url``."""
        paths = {"binance": "", "binance_futures": "", "bybit": "/v5/public/spot", "okx": "/ws/v5/public",
                 "deribit": "/ws/api/v2"}
        return {name: f"ws://{self.host}:{port.port}{paths[name]}" for name, port in self._ports.items()}

    @property
    def stream_messages_sent(self) -> int:
        return sum(p.publisher.sent for p in self._ports.values() if p.publisher is not None)

    @property
    def base_urls(self) -> dict[str, str]:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return {name: f"http://{host}:{p.port}" for name, p in self._ports.items()}

    @property
    def ports(self) -> dict[str, int]:
        return {name: p.port for name, p in self._ports.items()}

    @property
    def venues(self) -> dict[str, Venue]:
        return {name: p.venue for name, p in self._ports.items()}

    def elapsed(self) -> float:
        """Seconds on the scenario timeline since ``start()``."""
        if self._t0 is None:
            return 0.0
        return self._clock.monotonic() - self._t0

    def inject(self, fault: FaultBase | Mapping[str, object]) -> FaultBase:
        """Add a fault now; its ``start`` counts from the moment of injection. Returns the fault."""
        f = make_fault(fault)
        offset = self.elapsed()
        for name in f.exchanges():
            port = self._ports.get(name)
            if port is not None:
                port.entries.append(_Entry(f, offset, FOREVER, False, True))
        self._ensure_watcher()
        return f

    def remove(self, fault: FaultBase) -> None:
        for port in self._ports.values():
            port.entries = [e for e in port.entries if e.fault is not fault]

    def clear_faults(self) -> None:
        """Drop every fault, the scenario's and the injected ones (a healthy simulator)."""
        for port in self._ports.values():
            port.entries = []

    def reset_limits(self) -> None:
        """Forget the request weight/credits counted so far."""
        for port in self._ports.values():
            port.venue.reset_limits()

    def expected(self, horizon: float | None = None) -> list[ExpectedFault]:
        """Ground truth of the scenario (and injected faults, placed at their injection time)."""
        out = self.scenario.expected(horizon)
        seen: set[int] = set()
        for port in self._ports.values():
            for e in port.entries:
                if e.injected and id(e) not in seen:
                    seen.add(id(e))
                    f = e.fault
                    out.append(
                        ExpectedFault(
                            port.name,
                            f.type,
                            e.offset + f.start,
                            e.offset + f.end_s,
                            f.expected_outcome(port.name),
                            f.affected_probes(port.name),
                            f.acceptable_outcomes(port.name),
                            -1,
                            f.note,
                            f.rate,
                        )
                    )
        out.sort(key=lambda x: (x.start, x.exchange))
        return out

    async def start(self) -> None:
        """Listen on every port (raises OSError, with nothing left open, if a port is taken)."""
        self._stopping = asyncio.Event()
        try:
            await self._listen_all()
        except BaseException:
            await self.stop()
            raise
        self._t0 = self._clock.monotonic()
        self._active_keys.clear()
        await self.sync(report=False)  # events start with the watcher, after the caller's own output
        self._ensure_watcher()

    async def _listen_all(self) -> None:
        for name, port in self._ports.items():
            port.server = _TimedServer(self._make_handler(port), access_log=None)
            port.runner = web.ServerRunner(port.server, handle_signals=False, shutdown_timeout=0.5)
            await port.runner.setup()
            want = self.port_base + PORT_OFFSETS[name] if self.port_base else 0
            sock = _listen_socket(self.host, want)
            port.port = sock.getsockname()[1]
            port.site = web.SockSite(port.runner, sock)
            await port.site.start()

    async def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        for port in self._ports.values():
            if port.publisher is not None:
                await port.publisher.close_all()
            if port.runner is not None:
                await port.runner.cleanup()
            port.runner = port.site = port.server = None
            port.refused = False

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def sync(self, report: bool = True) -> None:
        """Apply the timeline's listener state now (refuse on/off); tests call it after moving a FakeClock."""
        elapsed = self.elapsed()
        for port in self._ports.values():
            want_refused = any(e.fault.type == "refuse" and e.t_in(elapsed) is not None for e in port.entries)
            if port.publisher is not None and port.publisher.connections and (
                    want_refused or self._maintenance_now(port)):
                await port.publisher.close_all(1001, b"service unavailable")
            if want_refused and not port.refused:
                await self._close_listener(port)
            elif not want_refused and port.refused:
                await self._open_listener(port)
        if report and self._on_event is not None:
            self._report_transitions(elapsed)

    # ------------------------------------------------------------------ timeline

    def _load_entries(self) -> None:
        cycle = self.scenario.cycle_s
        loop = self.scenario.loop and cycle < FOREVER
        for port in self._ports.values():
            port.entries = [
                _Entry(f, 0.0, cycle, loop, False) for f in self.scenario.faults if port.name in f.exchanges()
            ]

    def _ensure_watcher(self) -> None:
        if self._t0 is None or self._watcher is not None or self._stopping.is_set():
            return
        needed = self._on_event is not None or any(
            e.fault.type in ("refuse", "maintenance") for p in self._ports.values() for e in p.entries
        )
        if needed:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.sync()
            except Exception:  # pragma: no cover - keep serving whatever happens
                log.exception("simulator timeline step failed")
            await asyncio.sleep(LISTENER_POLL_S)

    def _report_transitions(self, elapsed: float) -> None:
        assert self._on_event is not None
        now: set[tuple[int, str]] = set()
        labels: dict[tuple[int, str], str] = {}
        for port in self._ports.values():
            for e in port.entries:
                if e.t_in(elapsed) is not None:
                    key = (id(e), port.name)
                    now.add(key)
                    note = f" ({e.fault.note})" if e.fault.note else ""
                    labels[key] = f"{port.name} {e.fault.type}{note}"
        for key in sorted(now - self._active_keys):
            self._on_event(f"t={elapsed:6.2f}s  start  {labels[key]}")
        for key in sorted(self._active_keys - now):
            self._on_event(f"t={elapsed:6.2f}s  end    {self._labels.get(key, key[1])}")
        self._labels.update(labels)
        self._active_keys = now

    async def _close_listener(self, port: _Port) -> None:
        port.refused = True
        if port.site is not None:
            await port.site.stop()
            port.site = None
        # Idle keep-alive connections are closed too, as a stopped server's would be.
        if port.server is not None:
            for conn in port.server.connections:
                if getattr(conn, "_request_in_progress", True):
                    conn.close()  # after the answer in progress (a hang: never)
                else:
                    conn.force_close()

    async def _open_listener(self, port: _Port) -> None:
        if port.runner is None:
            return
        try:
            sock = _listen_socket(self.host, port.port)
        except OSError as exc:  # the port is briefly unavailable: try again on the next step
            log.warning("simulator: cannot reopen %s port %s yet: %s", port.name, port.port, exc)
            return
        port.site = web.SockSite(port.runner, sock)
        await port.site.start()
        port.refused = False

    # ------------------------------------------------------------------ request path

    def _make_handler(self, port: _Port) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
        async def handler(request: web.BaseRequest) -> web.StreamResponse:
            return await self._handle(request, port)

        return handler

    async def _sleep_until(self, deadline: float) -> None:
        remaining = deadline - perf_counter()
        if remaining > self._spin_s:
            await asyncio.sleep(remaining - self._spin_s)
        while perf_counter() < deadline:  # noqa: ASYNC110 - a timed spin, not waiting for an event
            await asyncio.sleep(0)

    async def _bench_fixed(self, request: web.BaseRequest, t0: float) -> web.StreamResponse:
        try:
            ms = float(request.query.get("ms", "0"))
        except ValueError:
            ms = 0.0
        if ms > 0:
            await self._sleep_until(t0 + ms / 1000.0)
        return web.Response(body=b"{}", content_type="application/json")

    async def _handle(self, request: web.BaseRequest, port: _Port) -> web.StreamResponse:
        t0 = getattr(request.protocol, "arrived", None) or perf_counter()
        self.requests += 1
        path = request.path
        if path == "/bench/fixed":
            return await self._bench_fixed(request, t0)
        venue = port.venue
        if port.publisher is not None and request.headers.get("Upgrade", "").lower() == "websocket":
            if self._maintenance_now(port):  # a venue in maintenance drops its streams
                return web.Response(status=503, text="service unavailable: maintenance")
            return await port.publisher.handle(request)
        route = venue.routes.get(path)
        probe = route.probe if route is not None else None
        mono = self._clock.monotonic()
        latency_ms = 0.0
        skew = self.skew_ms
        usage: float | None = None
        conn_fault: FaultBase | None = None
        resp_fault: FaultBase | None = None
        resp_window = (0.0, 0.0)
        resp_t_in = 0.0
        if port.entries:
            elapsed = mono - self._t0 if self._t0 is not None else 0.0
            rng = self._rng
            for entry in port.entries:
                t_in = entry.t_in(elapsed)
                if t_in is None:
                    continue
                f = entry.fault
                if not f.matches(probe, path) or (f.rate < 1.0 and rng.random() >= f.rate):
                    continue
                kind = f.type
                if kind == "latency":
                    latency_ms += f.ms.sample(rng) if isinstance(f, LatencyFault) else 0.0
                elif kind == "drift":
                    latency_ms += f.added_ms(t_in) if isinstance(f, DriftFault) else 0.0
                elif kind == "clock_skew":
                    skew += f.skew_ms(t_in) if isinstance(f, ClockSkewFault) else 0.0
                elif kind == "weight_climb":
                    if isinstance(f, WeightClimbFault):
                        level = f.usage(t_in)
                        usage = level if usage is None else max(usage, level)
                elif kind in ("refuse", "reset", "hang"):
                    if conn_fault is None:
                        conn_fault = f
                elif resp_fault is None:
                    resp_fault = f
                    resp_t_in = t_in
                    resp_window = entry.window(elapsed, t_in)
        if conn_fault is not None:
            if conn_fault.type == "hang":
                await self._hang()
            _abort(request)
            return web.Response(status=500)  # never sent: the transport is gone
        wall_ms = self._wall() * 1000.0 + skew
        arrival_ms = wall_ms + latency_ms / 2.0
        ctx = Ctx(
            path,
            request.query_string,
            request.query,
            request.headers,
            request.remote or "?",
            arrival_ms + 0.05,
            arrival_ms,
        )
        ctx.usage_override = usage
        try:
            reply = venue.account(ctx, route, mono)
            if reply is None and resp_fault is not None:
                if isinstance(resp_fault, HugeBodyFault):
                    return await self._huge(request, resp_fault, venue, ctx, t0, latency_ms)
                reply = self._render_fault(resp_fault, ctx, venue, route, resp_t_in, resp_window)
            if reply is None:
                reply = route.handler(ctx) if route is not None else venue.not_found(ctx)
        except Exception:  # a simulator bug must still look like an exchange's internal error
            log.exception("simulator %s: error answering %s", port.name, path)
            reply = venue.error(ctx, 500, None, None)
        status, body, content_type, extra = reply
        headers = {"Content-Type": content_type}
        if skew:  # the exchange's Date header follows its own (skewed) clock
            headers["Date"] = formatdate(wall_ms / 1000.0, usegmt=True)
        usage_headers = venue.usage_headers(ctx)
        if usage_headers:
            headers.update(usage_headers)
        if extra:
            headers.update(extra)
        if latency_ms > 0.0:
            await self._sleep_until(t0 + latency_ms / 1000.0)
        return web.Response(status=status, body=body, headers=headers)

    async def _hang(self) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), HANG_CAP_S)

    def _render_fault(
        self,
        fault: FaultBase,
        ctx: Ctx,
        venue: Venue,
        route: Route | None,
        t_in: float,
        window: tuple[float, float],
    ) -> Reply | None:
        remaining = window[1] - (window[0] + t_in)
        if isinstance(fault, ErrorsFault):
            if fault.echo:
                return _echoing_error(venue, ctx, fault)
            return venue.error(ctx, fault.status, fault.code, fault.message)
        if isinstance(fault, RateLimitFault):
            wait = fault.retry_after if fault.retry_after is not None else remaining
            return venue.rate_limited(ctx, wait if math.isfinite(wait) else 60.0)
        if isinstance(fault, BanFault):
            ban_s = fault.ban_for if fault.ban_for is not None else remaining
            if not math.isfinite(ban_s):
                ban_s = 120.0
            return venue.banned(ctx, ctx.now_ms + ban_s * 1000.0, ban_s)
        if isinstance(fault, MaintenanceFault):
            begin_ms = ctx.now_ms - t_in * 1000.0
            end_ms = ctx.now_ms + remaining * 1000.0 if math.isfinite(remaining) else math.inf
            return venue.maintenance(ctx, route, begin_ms, end_ms, fault.title, fault.block)
        if isinstance(fault, MalformedFault):
            _status, body, ctype, extra = route.handler(ctx) if route is not None else venue.not_found(ctx)
            cut = max(1, int(len(body) * fault.keep))
            if cut >= len(body):
                cut = len(body) - 1
            return fault.status, body[:cut], ctype, extra
        if isinstance(fault, WrongTypesFault):
            status, body, ctype, extra = route.handler(ctx) if route is not None else venue.not_found(ctx)
            try:
                mangled = _mangle(json.loads(body))
            except ValueError:
                return status, body, ctype, extra
            return status, json.dumps(mangled, separators=(",", ":")).encode(), ctype, extra
        if isinstance(fault, HtmlFault):
            body, headers = html_page(fault.status, fault.page)
            ctype = headers.pop("Content-Type")
            return fault.status, body, ctype, headers
        return None

    async def _huge(
        self, request: web.BaseRequest, fault: HugeBodyFault, venue: Venue, ctx: Ctx, t0: float, latency_ms: float
    ) -> web.StreamResponse:
        size = int(fault.size_mb * 1024 * 1024)
        head, tail = b'{"data":"', b'"}'
        resp = web.StreamResponse(status=200, headers={"Content-Type": venue.content_type})
        resp.content_length = size
        if latency_ms > 0.0:
            await self._sleep_until(t0 + latency_ms / 1000.0)
        try:
            await resp.prepare(request)
            await resp.write(head)
            left = size - len(head) - len(tail)
            while left > 0:
                chunk = _HUGE_CHUNK if left >= len(_HUGE_CHUNK) else _HUGE_CHUNK[:left]
                await resp.write(chunk)
                left -= len(chunk)
            await resp.write(tail)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client gave up reading, as it should
        return resp


_ECHOED_HEADERS = re.compile(r"(?i)key|sign|passphrase|auth|token|timestamp")


def _echoing_error(venue: Venue, ctx: Ctx, fault: ErrorsFault) -> Reply:
    """The fault's error, its message and headers repeating what the request carried (see ErrorsFault)."""
    values = [v for k, v in ctx.headers.items() if _ECHOED_HEADERS.search(k)] + list(fault.leak)
    pieces = []
    for value in values:
        raw = value.encode()
        pieces.append(
            f"{value} url={urllib.parse.quote(value, safe='')} b64={base64.b64encode(raw).decode()}"
        )
    pair = ":".join(values[:2]) if len(values) >= 2 else ""
    if pair:
        pieces.append(f"basic={base64.b64encode(pair.encode()).decode()}")
    message = f"{fault.message or 'request rejected'}; echo: {' | '.join(pieces)}; query={ctx.query_string}"
    status, body, ctype, extra = venue.error(ctx, fault.status, fault.code, message)
    headers = dict(extra or {})
    for i, value in enumerate(values):
        headers[f"X-Echo-{i}"] = urllib.parse.quote(value, safe="") if not value.isascii() else value
    return status, body, ctype, headers
