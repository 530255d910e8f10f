"""Timed HTTP requests: one reused aiohttp session per exchange, phases from its trace hooks.

Why aiohttp and not httpx (measured in bench/RESULTS.md): httpx costs ~4-5x the CPU per request and
adds ~1.5 ms to a 50 ms latency; aiohttp's trace hooks also tell exactly when a request waited for a
pooled connection, so that wait is taken out of the measured latency (the engine never counts its own
queueing as the exchange's latency).

Nothing here raises for a failed request: every transport failure becomes a ``TransportResult`` with
an ``Outcome`` (timeout, dns, connect, tls, reset ...). No retries: a failed probe is a data point
(aiohttp's silent one-shot retry on a dropped connection is switched off).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.client_proto import ResponseHandler
from yarl import URL

from cryptomon_tui.exchanges.base import RawResponse
from cryptomon_tui.kernel.results import Outcome, Phases

log = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024
_QUERY_RE = re.compile(r"\?[^\s'\"]*")


@dataclass(frozen=True, slots=True)
class TransportRequest:
    """One request as it goes on the wire. ``url`` is already encoded (query included, verbatim)."""

    method: str
    url: str
    timeout_s: float
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class TlsFacts:
    """The server certificate seen on a new TLS connection (read once per connection, never per request)."""

    host: str
    fingerprint: str  # sha256 of the leaf certificate (DER), hex
    issuer: str  # the issuer's distinguished name ("" when the certificate was not verified)
    not_after: float | None  # expiry, epoch seconds (None when not verified)


_DN_SHORT = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
             "stateOrProvinceName": "ST", "localityName": "L"}


PeerCertificate = tuple[bytes, Mapping[str, object]]  # DER, and ``SSLObject.getpeercert()`` when verified


def peer_certificate(transport: asyncio.BaseTransport | None) -> PeerCertificate | None:
    """The peer certificate of a TLS connection (DER, and the decoded form when it was verified)."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    try:
        der = ssl_object.getpeercert(binary_form=True)
        info = ssl_object.getpeercert() or {}
    except (ValueError, ssl.SSLError):
        return None
    return (der, info) if der else None


def tls_facts(host: str, peer: PeerCertificate | None) -> TlsFacts | None:
    """What the probe result carries about a new connection's certificate; None for plain HTTP."""
    if peer is None:
        return None
    der, info = peer
    rdns = info.get("issuer")  # ((("countryName", "US"),), (("organizationName", "Let's Encrypt"),), ...)
    names: list[str] = []
    for rdn in rdns if isinstance(rdns, tuple) else ():
        for pair in rdn if isinstance(rdn, tuple) else ():
            if isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], str):
                names.append(f"{_DN_SHORT.get(pair[0], pair[0])}={pair[1]}")
    issuer = ", ".join(names)
    not_after: float | None = None
    expiry = info.get("notAfter")
    if isinstance(expiry, str):
        try:
            not_after = float(ssl.cert_time_to_seconds(expiry))
        except ValueError:
            not_after = None
    return TlsFacts(host=host, fingerprint=hashlib.sha256(der).hexdigest(), issuer=issuer[:300], not_after=not_after)


@dataclass(frozen=True, slots=True)
class TransportResult:
    """What happened to one request, timed.

    ``latency_ms`` runs from the request going out on a reused connection (or the start of opening a
    new one: dns, connect and TLS count) to the arrival of the last body byte; pool waits, request
    building and our own parsing are excluded; None on timeout. ``sent_at`` is the wall time at that
    moment. ``server_window`` is the wall-time interval (start, end) in which the server must have produced its response
    (request written on a ready connection .. response headers read): its midpoint and half-width
    give the clock offset and its error bound.
    """

    response: RawResponse | None
    error: Outcome | None
    error_message: str | None
    latency_ms: float | None
    sent_at: float
    phases: Phases | None = None
    pool_wait_ms: float = 0.0
    server_window: tuple[float, float] | None = None
    tls: TlsFacts | None = None  # only on a request that opened a new TLS connection


@dataclass(frozen=True, slots=True)
class TransportOptions:
    max_body_bytes: int = 2_000_000
    user_agent: str = "cryptomon/0.1"
    max_connections: int = 8  # enough for every probe of one exchange in flight at once
    keepalive_s: float = 30.0
    wall: Callable[[], float] = time.time  # the engine passes its clock's ``now``
    resolver: AbstractResolver | None = None  # tests fake DNS with one
    ssl: ssl.SSLContext | bool = True


class Transport(Protocol):
    async def send(self, request: TransportRequest) -> TransportResult: ...

    async def aclose(self) -> None: ...


TransportFactory = Callable[[str, TransportOptions], Transport]


class _Timing:
    """Per-request trace marks (perf_counter_ns), filled by the TraceConfig callbacks."""

    __slots__ = (
        "acquired",
        "create_end",
        "create_start",
        "deadline",
        "dns_end",
        "dns_start",
        "headers_sent",
        "pool_wait_ns",
        "queued_start",
        "response_start",
        "reused",
    )

    def __init__(self, deadline: asyncio.Timeout | None) -> None:
        self.deadline = deadline
        self.acquired = 0
        self.queued_start = 0
        self.pool_wait_ns = 0
        self.create_start = 0
        self.create_end = 0
        self.dns_start = 0
        self.dns_end = 0
        self.headers_sent = 0  # a bodiless request goes on the wire right after this mark
        self.response_start = 0
        self.reused: bool | None = None


def _ctx(params: SimpleNamespace) -> _Timing | None:
    timing = getattr(params, "trace_request_ctx", None)
    return timing if isinstance(timing, _Timing) else None


async def _on_queued_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.queued_start = time.perf_counter_ns()


async def _on_queued_end(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        waited = time.perf_counter_ns() - t.queued_start
        t.pool_wait_ns += waited  # aiohttp may queue more than once for one request
        # The timeout is the exchange's, not our pool's: give back the time spent queueing.
        if t.deadline is not None and (when := t.deadline.when()) is not None:
            t.deadline.reschedule(when + waited / 1e9)


async def _on_create_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.create_start = time.perf_counter_ns()
        t.acquired = t.create_start  # a new connection: its dns/connect/tls are part of the latency
        t.reused = False


async def _on_create_end(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.create_end = time.perf_counter_ns()


async def _on_reuse(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.reused = True
        t.acquired = t.create_end = time.perf_counter_ns()


async def _on_dns_start(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.dns_start = time.perf_counter_ns()


async def _on_dns_end(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.dns_end = time.perf_counter_ns()


async def _on_headers_sent(_s: object, ctx: SimpleNamespace, _p: object) -> None:
    if (t := _ctx(ctx)) is not None:
        t.headers_sent = time.perf_counter_ns()


def _trace_config() -> aiohttp.TraceConfig:
    """Only hooks that carry information we cannot take ourselves: one signal per reused request."""
    tc = aiohttp.TraceConfig()
    tc.on_connection_queued_start.append(_on_queued_start)
    tc.on_connection_queued_end.append(_on_queued_end)
    tc.on_connection_create_start.append(_on_create_start)
    tc.on_connection_create_end.append(_on_create_end)
    tc.on_connection_reuseconn.append(_on_reuse)
    tc.on_dns_resolvehost_start.append(_on_dns_start)
    tc.on_dns_resolvehost_end.append(_on_dns_end)
    tc.on_request_headers_sent.append(_on_headers_sent)
    return tc


class _TimedResponseHandler(ResponseHandler):
    """aiohttp's protocol, noting when bytes arrive.

    Latency then ends when the last byte reached us, not when our task got round to reading it: the
    parsing and wake-ups in between are our own time (on a busy loop, other probes' too).
    """

    last_data_ns = 0
    peer: PeerCertificate | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Once per connection (after the TLS handshake): the certificate, before the connection may close.
        self.peer = peer_certificate(transport)

    def data_received(self, data: bytes) -> None:
        if data:
            self.last_data_ns = time.perf_counter_ns()
        super().data_received(data)


# Three aiohttp internals this transport relies on (aiohttp is pinned below the next minor in pyproject.toml;
# tests/unit/test_probing_aiohttp_hooks.py fails loudly when one changes; at run time each logs one warning):
#   TCPConnector._factory: functools.partial(ResponseHandler, loop=...), the protocol of every connection;
#   ClientResponse._protocol: that protocol, kept by the response even once the connection is released;
#   ClientSession._retry_connection: True makes aiohttp resend an idempotent request once, silently, when a
#   reused keep-alive connection turns out dead.
_warned: set[str] = set()


def _warn_once(hook: str, consequence: str) -> None:
    if hook not in _warned:
        _warned.add(hook)
        log.warning("aiohttp %s changed its internal %s: %s", aiohttp.__version__, hook, consequence)


def _install_timed_protocol(connector: aiohttp.TCPConnector) -> bool:
    """Make the connector build ``_TimedResponseHandler``s; False (and one warning) when aiohttp changed."""
    factory = getattr(connector, "_factory", None)
    if isinstance(factory, functools.partial) and factory.func is ResponseHandler:
        connector._factory = functools.partial(_TimedResponseHandler, *factory.args, **factory.keywords)  # type: ignore[assignment]
        return True
    _warn_once("TCPConnector._factory", "latency ends when the reply is read, not when its last byte arrived")
    return False


def _disable_silent_retry(session: aiohttp.ClientSession) -> bool:
    """No silent retries: a dropped connection is a data point. False (and one warning) when aiohttp changed."""
    if isinstance(getattr(session, "_retry_connection", None), bool):
        session._retry_connection = False
        return True
    _warn_once("ClientSession._retry_connection", "a dead keep-alive connection may be retried silently")
    return False


def start_mark(timing: _Timing, t0: int) -> int:
    if timing.reused and timing.headers_sent:
        return timing.headers_sent
    return timing.acquired or (t0 + timing.pool_wait_ns)


def _ms(start_ns: int, end_ns: int) -> float | None:
    if start_ns and end_ns and end_ns >= start_ns:
        return (end_ns - start_ns) / 1e6
    return None


def scrub(text: str) -> str:
    """Drop query strings (signatures, keys) from a message before it is logged or shown."""
    return _QUERY_RE.sub("?…", text)


def classify_exception(exc: BaseException, timeout_s: float) -> tuple[Outcome, str]:
    """Map a transport exception to the outcome taxonomy with a short, secret-free message."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Outcome.DNS, f"DNS lookup failed: {scrub(str(exc.os_error) or exc.host)}"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError | ssl.SSLError):
        return Outcome.TLS, f"TLS failed: {scrub(str(exc))[:200]}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, socket.gaierror):
            return Outcome.DNS, f"DNS lookup failed: {os_error}"
        if isinstance(os_error, ssl.SSLError):
            return Outcome.TLS, f"TLS failed: {os_error}"
        if isinstance(os_error, TimeoutError):
            return Outcome.TIMEOUT, f"connect timed out after {timeout_s:g}s"
        if isinstance(os_error, ConnectionRefusedError):
            return Outcome.CONNECT, f"connection refused by {exc.host}:{exc.port}"
        return Outcome.CONNECT, f"cannot connect to {exc.host}:{exc.port}: {os_error.strerror or os_error}"
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError and aiohttp's ServerTimeoutError
        return Outcome.TIMEOUT, f"no complete response within {timeout_s:g}s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Outcome.RESET, "server closed the connection before responding"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return Outcome.RESET, f"response body cut off: {scrub(str(exc))[:200]}"
    if isinstance(exc, ConnectionResetError | BrokenPipeError | aiohttp.ClientConnectionResetError):
        return Outcome.RESET, "connection reset by peer"
    if isinstance(exc, aiohttp.ClientResponseError):
        # The bytes that came back were not HTTP (a broken proxy, a non-HTTP service).
        return Outcome.BAD_PAYLOAD, f"malformed HTTP response: {scrub(exc.message)[:200]}"
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.CONNECT, "connection refused"
    if isinstance(exc, socket.gaierror):
        return Outcome.DNS, f"DNS lookup failed: {exc}"
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        errno = getattr(exc, "errno", None)
        return Outcome.CONNECT if errno in _CONNECT_ERRNOS else Outcome.RESET, f"network error: {scrub(str(exc))[:200]}"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return Outcome.RESET, f"connection error: {scrub(str(exc))[:200]}"
    return Outcome.EXCHANGE_ERROR, f"unexpected {type(exc).__name__}"


_CONNECT_ERRNOS = frozenset({101, 111, 113, 110})  # ENETUNREACH, ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT

_logged_unexpected: set[str] = set()


def _log_unexpected_once(exc: BaseException) -> None:
    name = type(exc).__name__
    if name not in _logged_unexpected:
        _logged_unexpected.add(name)
        log.warning("unexpected %s in a probe request (logged once per type): %s", name, scrub(str(exc))[:300])


class AiohttpTransport:
    """One keep-alive aiohttp session for one exchange (never a client per probe)."""

    def __init__(self, exchange: str, options: TransportOptions | None = None) -> None:
        self.exchange = exchange
        self.options = options or TransportOptions()
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}  # parsed once: unsigned probes repeat the same URL forever

    def _url(self, text: str) -> URL:
        url = self._urls.get(text)
        if url is None:
            url = URL(text, encoded=True)
            if len(self._urls) < 256:  # signed URLs change every time; do not grow without bound
                self._urls[text] = url
        return url

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            opts = self.options
            connector = aiohttp.TCPConnector(
                limit=max(1, opts.max_connections),
                limit_per_host=0,
                keepalive_timeout=opts.keepalive_s,
                ttl_dns_cache=60,
                resolver=opts.resolver,
                ssl=opts.ssl,
            )
            _install_timed_protocol(connector)
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None),  # our own deadline, net of pool waits
                trace_configs=[_trace_config()],
                headers={"User-Agent": opts.user_agent},
                auto_decompress=True,
                raise_for_status=False,
            )
            _disable_silent_retry(session)
            self._session = session
        return self._session

    async def send(self, request: TransportRequest) -> TransportResult:
        """Send one request and time it. Never raises (except for cancellation)."""
        try:
            return await self._send(request)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # pragma: no cover - a safety net around _send's own handling
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            _log_unexpected_once(exc)
            return TransportResult(None, Outcome.EXCHANGE_ERROR, f"unexpected {type(exc).__name__}", None,
                                   self.options.wall())

    async def _send(self, request: TransportRequest) -> TransportResult:
        session = self._ensure_session()
        cap = self.options.max_body_bytes
        wall0 = self.options.wall()
        t0 = time.perf_counter_ns()
        timing = _Timing(None)
        truncated = False
        response: RawResponse | None = None
        error: Outcome | None = None
        message: str | None = None
        t_end = 0
        protocol: object = None
        tls: TlsFacts | None = None
        try:
            async with asyncio.timeout(request.timeout_s) as deadline:
                timing.deadline = deadline
                async with session.request(
                    request.method,
                    self._url(request.url),
                    headers=request.headers or None,
                    data=request.body,
                    allow_redirects=False,
                    trace_request_ctx=timing,
                ) as resp:
                    timing.response_start = time.perf_counter_ns()  # status line and headers are in
                    # The connection may already be released (whole body in): aiohttp keeps its protocol.
                    protocol = getattr(resp, "_protocol", None)
                    if not isinstance(protocol, _TimedResponseHandler):
                        _warn_once("ClientResponse._protocol", "latency ends when the reply is read")
                    if timing.reused is False and resp.url.scheme == "https":
                        peer = protocol.peer if isinstance(protocol, _TimedResponseHandler) else None
                        tls = tls_facts(resp.url.host or "", peer)
                    chunks: list[bytes] = []
                    size = 0
                    while True:
                        chunk = await resp.content.read(min(_READ_CHUNK, cap + 1 - size))
                        if not chunk:
                            break
                        size += len(chunk)
                        chunks.append(chunk)
                        if size > cap:
                            truncated = True
                            break
                    t_end = time.perf_counter_ns()
                    arrived = getattr(protocol, "last_data_ns", 0)
                    if not truncated and start_mark(timing, t0) < arrived <= t_end:
                        t_end = arrived
                        timing.response_start = min(timing.response_start, arrived)
                    body = b"".join(chunks)
                    if truncated:
                        body = body[:cap]
                        resp.close()  # drop the connection instead of draining megabytes we will not read
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    response = RawResponse(status=resp.status, headers=headers, body=body, truncated=truncated)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            t_end = time.perf_counter_ns()
            error, message = classify_exception(exc, request.timeout_s)
            if error is Outcome.EXCHANGE_ERROR:
                _log_unexpected_once(exc)
        pool_wait_ns = timing.pool_wait_ns
        # Timing starts when the request goes out on a reused connection, or when opening a new one starts
        # (its dns/connect/tls are the exchange's path too). Request building, aiohttp's own send path and
        # any pool wait before that are our time, not the exchange's.
        start = start_mark(timing, t0)
        sent_at = wall0 + (start - t0) / 1e9
        latency_ms: float | None = None
        if error is not Outcome.TIMEOUT:
            latency_ms = max(0.0, (t_end - start) / 1e6)
        ready = timing.create_end or start
        window: tuple[float, float] | None = None
        if response is not None and timing.response_start:
            sent = timing.headers_sent or ready
            window = (wall0 + (sent - t0) / 1e9, wall0 + (timing.response_start - t0) / 1e9)
        phases = Phases(
            dns_ms=_ms(timing.dns_start, timing.dns_end),
            connect_ms=self._connect_ms(timing),
            tls_ms=None,  # aiohttp creates TCP and TLS in one call; connect_ms includes the handshake
            ttfb_ms=_ms(timing.headers_sent or ready, timing.response_start),
            transfer_ms=_ms(timing.response_start, t_end) if response is not None else None,
            reused=timing.reused,
        )
        return TransportResult(
            response=response,
            error=error,
            error_message=message,
            latency_ms=latency_ms,
            sent_at=sent_at,
            phases=phases,
            pool_wait_ms=pool_wait_ns / 1e6,
            server_window=window,
            tls=tls,
        )

    @staticmethod
    def _connect_ms(timing: _Timing) -> float | None:
        total = _ms(timing.create_start, timing.create_end)
        if total is None or timing.reused:
            return None
        dns = _ms(timing.dns_start, timing.dns_end) or 0.0
        return max(0.0, total - dns)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def aiohttp_transport_factory(exchange: str, options: TransportOptions) -> Transport:
    return AiohttpTransport(exchange, options)
