"""One long-lived WebSocket connection per stream, fed into a ``StreamTracker``.

The loop: take a connection-attempt slot, connect (timed: TCP + TLS + upgrade), send the spec's
subscribe frames, then read frames until the socket closes; every frame is classified by the
exchange adapter's reader and handed to the tracker. A side task sends the client heartbeat, checks
that it is answered and renews the connection before the exchange's forced lifetime ends. After a
close the probe waits (backoff with jitter, reset only by a connection that lived) and reconnects;
a planned shutdown notice reconnects at once, still inside the attempt limit.

I/O sits behind ``WsConnector`` so the loop runs on an injected clock against a scripted socket in
unit tests and against the real simulator in integration tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import aiohttp

from cryptomon_tui.clock import Clock
from cryptomon_tui.exchanges.ws import StreamSpec, WsEvent
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.streams.attempts import AttemptLimiter, ReconnectBackoff, attempt_cap
from cryptomon_tui.streams.tracker import NO_BOUNDS, StreamThresholds, StreamTracker

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
RENEW_AT_ONCE_AFTER_S = 5.0  # a planned renewal reconnects at once only from a connection that lived this long
REASON_CAP = 200

FrameKind = Literal["text", "binary", "closed", "error"]


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    data: str | bytes = ""
    close_code: int | None = None


class WsConnection(Protocol):
    async def send_str(self, text: str) -> None: ...
    async def receive(self) -> Frame: ...
    async def close(self) -> None: ...


class WsConnector(Protocol):
    async def connect(self, url: str, timeout_s: float, max_frame_bytes: int) -> WsConnection: ...
    async def aclose(self) -> None: ...


OffsetSource = Callable[[], tuple[float, float] | None]  # (server - local ms, error bound ms) from REST
Classifier = Callable[[object], WsEvent]


class StreamProbe:
    """Keeps one stream connected and measured until ``stop()``."""

    def __init__(
        self,
        exchange: str,
        spec: StreamSpec,
        classify: Classifier,
        connector: WsConnector,
        clock: Clock,
        *,
        offset: OffsetSource | None = None,
        thresholds: StreamThresholds | None = None,
        rng: random.Random | None = None,
        limiter: AttemptLimiter | None = None,
        bounds: tuple[float, ...] | None = None,
        attempt_share: float = 0.02,
    ) -> None:
        self.exchange = exchange
        self.spec = spec
        self._classify = classify
        self._connector = connector
        self._clock = clock
        self._offset = offset or (lambda: None)
        base = thresholds or StreamThresholds()
        thresholds = replace(base, stale_floor_s=max(base.stale_floor_s, spec.stale_floor_s),
                             initial_stale_s=max(base.initial_stale_s, spec.stale_floor_s))
        self.tracker = StreamTracker(exchange, spec.name, seq_rule=spec.seq_rule, thresholds=thresholds,
                                     bounds=bounds or NO_BOUNDS)
        if limiter is None:
            attempts, window = attempt_cap(spec.venue_connect_attempts, spec.venue_connect_window_s, attempt_share)
            limiter = AttemptLimiter(clock, attempts, window)
        self.limiter = limiter
        self.backoff = ReconnectBackoff(rng)
        self.attempts = 0
        self.paused = False
        self._stopping = False
        self._conn: WsConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._renew = False
        self._backing_off = False
        self._retry_pending = False

    # -- control ----------------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"stream:{self.exchange}:{self.spec.name}")
        return self._task

    def restart(self) -> None:
        """Start again after ``stop`` (a resumed exchange)."""
        self._stopping = False
        self.start()

    async def stop(self) -> None:
        self._stopping = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def stats(self) -> StreamStats:
        return self.tracker.stats(self._clock.monotonic())

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self) -> None:
        while not self._stopping:
            await self.limiter.acquire()
            if self._stopping:
                return
            self.attempts += 1
            lived = await self._one_connection()
            if self._stopping:
                return
            self.backoff.connection_lived(lived)
            if self._renew:
                self._renew = False
                if lived >= RENEW_AT_ONCE_AFTER_S:
                    continue  # planned: reconnect at once (the limiter still applies)
                # a shutdown notice on a connection that has barely started (a venue repeating it, or a
                # hostile peer) is churn: back off as after any drop, or it would spend the attempt budget
            await self._back_off(self.backoff.next_delay())

    async def _back_off(self, delay: float) -> None:
        """Wait ``delay`` before the next attempt, or until ``retry_now`` cuts it short. The sleep is awaited
        directly (a cut is a cancel that this wait takes back), so the loop's steps stay as they were."""
        self._backing_off = True
        try:
            await self._clock.sleep(delay)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._retry_pending or self._stopping or task is None or task.cancelling() > 1:
                raise  # a stop (or anyone else's cancel) wins
            task.uncancel()  # retry_now's cancel, and only it: go on with the next attempt
        finally:
            self._backing_off = False
            self._retry_pending = False

    def retry_now(self) -> bool:
        """The exchange answers again (its REST probes recovered): end a reconnect backoff now instead of
        waiting it out (up to 30 s after a few failures), so the stream is judged on the exchange as it is
        and not on our own wait (a 5 s maintenance or refusal otherwise left the stream down for 8-16 s:
        a false 'stream disconnected' incident, or the outage's incident held open by its stream). Each wait
        is cut short at most once and the attempt limiter still applies. True when a wait was cut short."""
        if not self._backing_off or self._stopping or self._retry_pending or self._task is None:
            return False
        self._retry_pending = True
        self._task.cancel()
        return True

    async def _one_connection(self) -> float:
        """Connect, subscribe, read until closed. Returns how long the connection was up (s)."""
        tracker, spec, clock = self.tracker, self.spec, self._clock
        tracker.connecting(clock.monotonic())
        try:
            conn = await self._connector.connect(spec.url, CONNECT_TIMEOUT_S, spec.max_frame_bytes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # classified as a disconnect with the reason; never raised
            tracker.closed(clock.monotonic(), None, _reason(exc))
            return 0.0
        self._conn = conn
        up_at = clock.monotonic()
        tracker.connected_now(up_at)
        keeper = asyncio.create_task(self._keep_alive(conn, up_at))
        try:
            if spec.login is not None:
                tracker.login_sent(clock.monotonic())
                await conn.send_str(spec.login())
            for text in spec.subscribe:
                tracker.subscribe_sent(clock.monotonic())
                await conn.send_str(text)
            await self._read(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            tracker.closed(clock.monotonic(), None, _reason(exc), planned=self._renew)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await keeper
            self._conn = None
            with contextlib.suppress(Exception):
                await conn.close()
        return clock.monotonic() - up_at

    async def _read(self, conn: WsConnection) -> None:
        tracker, clock = self.tracker, self._clock
        while True:
            frame = await conn.receive()
            mono, wall = clock.monotonic(), clock.now()  # at receipt: classifying is not lag
            if frame.kind in ("closed", "error"):
                reason = frame.data if isinstance(frame.data, str) else ""
                if any(word in reason.lower() for word in ("heartbeat", "pong", "ping timeout")):
                    tracker.heartbeat_missed(mono)
                tracker.closed(mono, frame.close_code, _clean(reason), planned=self._renew)
                return
            event = self._classify(frame.data)
            offset_ms = offset_error_ms = None
            if event.event_time_ms is not None:  # only a timestamped frame needs the REST offset
                offset = self._offset()
                if offset is not None and math.isfinite(offset[0]) and math.isfinite(offset[1]):
                    offset_ms, offset_error_ms = offset
            tracker.frame(mono, wall, event, offset_ms, offset_error_ms)
            if event.kind == "heartbeat_request" and self.spec.heartbeat_answer is not None:
                await conn.send_str(self.spec.heartbeat_answer)
            elif event.kind in ("server_shutdown", "notice_reconnect"):
                # Binance serverShutdown / OKX 64008 (60 s ahead): renew now, on our schedule.
                self._renew = True
                tracker.closed(mono, None, f"planned: {event.message or event.kind}", planned=True)
                return

    async def _keep_alive(self, conn: WsConnection, up_at: float) -> None:
        """Client heartbeat, its deadline, and renewal before the forced lifetime."""
        spec, tracker, clock = self.spec, self.tracker, self._clock
        step = 1.0
        next_ping = up_at + spec.ping_every_s
        while True:
            await clock.sleep(step)
            mono = clock.monotonic()
            tracker.check_heartbeat(mono)
            if tracker.heartbeat_failing:
                tracker.closed(mono, None, "heartbeat unanswered")
                await _quiet_close(conn)
                return
            if spec.max_lifetime_s is not None and mono - up_at >= spec.max_lifetime_s:
                self._renew = True
                tracker.closed(mono, None, "planned renewal before the exchange's connection lifetime",
                               planned=True)
                await _quiet_close(conn)
                return
            if spec.ping_text is not None and mono >= next_ping:
                next_ping = mono + spec.ping_every_s
                tracker.ping_sent(mono)
                try:
                    await conn.send_str(spec.ping_text)
                except Exception:  # the reader sees the close
                    return


async def _quiet_close(conn: WsConnection) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


def _clean(text: str) -> str:
    """Close reasons come from the exchange: printable, short."""
    return "".join(ch for ch in text if ch.isprintable())[:REASON_CAP]


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = _clean(str(exc))
    return f"{name}: {text}" if text else name


class AiohttpConnector:
    """The real connector: one aiohttp session per stream probe; answers server pings itself."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def connect(self, url: str, timeout_s: float, max_frame_bytes: int) -> WsConnection:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_connect=timeout_s),
            )
        ws = await self._session.ws_connect(
            url, autoping=True, heartbeat=None, max_msg_size=max_frame_bytes, compress=0,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
        )
        return _AiohttpConnection(ws)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


class _AiohttpConnection:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send_str(self, text: str) -> None:
        await self._ws.send_str(text)

    async def receive(self) -> Frame:
        msg = await self._ws.receive()
        while msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):  # autoping answers them
            msg = await self._ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            return Frame("text", msg.data)
        if msg.type == aiohttp.WSMsgType.BINARY:
            return Frame("binary", msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = self._ws.close_code
            extra = msg.extra if isinstance(msg.extra, str) else ""
            return Frame("closed", extra, code if isinstance(code, int) else None)
        if msg.type == aiohttp.WSMsgType.ERROR:
            exc = self._ws.exception()
            return Frame("error", _reason(exc) if exc else "error", self._ws.close_code)
        return Frame("error", f"unexpected frame type {msg.type!r}", self._ws.close_code)

    async def close(self) -> None:
        await self._ws.close()
