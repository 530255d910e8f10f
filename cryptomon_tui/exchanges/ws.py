"""WebSocket frame classification shared by every adapter.

No WebSocket client lives here: adapters only read frames, so a future WS probe (or the
simulator's tests) can tell data from heartbeats, acks, shutdown notices and errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from cryptomon_tui.kernel.jsonvalue import JsonValue

WsKind = Literal[
    "data",  # market data / subscription push
    "pong",  # answer to our ping (or an unsolicited keepalive)
    "subscribed",  # subscribe (or session-setting) acknowledgement
    "auth_ok",  # login/auth accepted
    "heartbeat_request",  # the server wants an answer now or it closes the socket (Deribit test_request)
    "server_shutdown",  # the server is about to close the connection (Binance serverShutdown)
    "notice_reconnect",  # the server announces a disconnect ahead of time (OKX 64008)
    "error",  # an error reply or an unreadable frame
]
WS_KINDS: tuple[str, ...] = (
    "data",
    "pong",
    "subscribed",
    "auth_ok",
    "heartbeat_request",
    "server_shutdown",
    "notice_reconnect",
    "error",
)

_MAX_FRAME_BYTES = 8_000_000
USER_STREAM_STALE_FLOOR_S = 86_400.0  # user-data streams push only on account activity: silence is normal
_MESSAGE_CAP = 300


# How an exchange numbers a stream's updates, so a hole can be seen:
# - contiguous: each update is the previous + 1 (Binance trade ids, Bybit orderbook ``u``)
# - linked: each update names the previous one (OKX ``prevSeqId``, Deribit ``prev_change_id``,
#   Binance futures depth ``pu``)
# - monotonic: numbers only grow (Bybit ``cs``, Binance bookTicker ``u``); going back is a reset
SeqRule = Literal["contiguous", "linked", "monotonic"]


@dataclass(frozen=True, slots=True)
class WsEvent:
    """One frame's meaning. ``event_time_ms`` is the exchange's own event time (epoch ms), when carried.

    ``seq``/``prev_seq`` are the update numbers where the exchange gives them, per ``topic`` (a
    connection may carry several subscriptions, each numbered on its own).
    """

    kind: WsKind
    event_time_ms: float | None = None
    error_code: str | None = None
    message: str | None = None
    seq: int | None = None
    prev_seq: int | None = None
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream probe: where to connect, what to send, how to keep it alive, how it is numbered.

    Built by each adapter (``stream_specs``) from its defaults and the user's config; the stream
    probe only executes it, so a new exchange needs no change outside its adapter.
    """

    name: str  # shown to people: "btcusdt@trade", "tickers.BTCUSDT"
    url: str
    subscribe: tuple[str, ...] = ()  # text frames sent after connect, in order (may be empty: raw URL)
    ping_text: str | None = None  # client heartbeat frame (Bybit {"op":"ping"}, OKX "ping")
    ping_every_s: float = 20.0
    heartbeat_answer: str | None = None  # frame answering a server heartbeat request (Deribit)
    seq_rule: SeqRule | None = None
    stale_floor_s: float = 3.0  # never stale before this much silence (quiet markets: higher)
    # The exchange's documented limit on new connections per IP (attempts per window). The monitor takes
    # only its budget share of it (probing.budget_share, like the REST limits; never fewer than a few).
    venue_connect_attempts: int = 300
    venue_connect_window_s: float = 300.0
    max_lifetime_s: float | None = None  # renew before the exchange's forced disconnect (Binance 24 h)
    max_frame_bytes: int = 1 << 20  # a bigger frame closes the connection (1009) instead of buffering
    # Signed user-data streams (read-only keys): the login frame, built at each connect (fresh timestamp
    # and signature; it holds the key, so it is sent and never logged). The probe checks login and
    # keep-alive only: no data is expected, so silence is never judged (stale_floor_s is a day).
    login: Callable[[], str] | None = field(default=None, compare=False, repr=False)


class PlainText(str):
    """A frame that was not JSON (OKX answers ``ping`` with the bare text ``pong``)."""

    __slots__ = ()


def decode_frame(frame: object) -> JsonValue:
    """Turn a raw frame into JSON data; non-JSON text comes back as ``PlainText``; never raises.

    An already decoded JSON value is returned as is; anything else (no frame a socket delivers) comes back
    as ``PlainText`` of its type name, which every adapter reports as unrecognised."""
    if isinstance(frame, bytes | bytearray | memoryview):
        raw = bytes(frame[:_MAX_FRAME_BYTES])
        try:
            frame = raw.decode("utf-8")
        except UnicodeDecodeError:
            return PlainText(raw[:_MESSAGE_CAP].decode("utf-8", "replace"))
    if isinstance(frame, PlainText):
        return frame
    if isinstance(frame, str):
        text = frame[:_MAX_FRAME_BYTES]
        stripped = text.strip()
        if stripped[:1] in ("{", "["):
            try:
                return json.loads(stripped)
            except (ValueError, RecursionError):
                return PlainText(stripped[:_MESSAGE_CAP])
        return PlainText(stripped[:_MESSAGE_CAP])
    if frame is None or isinstance(frame, bool | int | float | list | dict):
        return frame
    return PlainText(type(frame).__name__)


def topic_key(*parts: object) -> str:
    """A stream's topic as the tracker's sequence key: bounded, never shown, stored or sent, so it is not
    scrubbed (scrubbing every data frame's symbol was a tenth of the per-message cost)."""
    return ":".join(part[:30] if isinstance(part, str) else type(part).__name__ for part in parts)


def unreadable(message: object) -> WsEvent:
    """The fallback for a frame no rule recognised."""
    text = message if isinstance(message, str) else type(message).__name__
    return WsEvent(kind="error", error_code="unrecognized_frame", message=str(text)[:_MESSAGE_CAP])
