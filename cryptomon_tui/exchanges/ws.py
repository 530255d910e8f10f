"""WebSocket frame classification shared by every adapter.

No WebSocket client lives here: adapters only read frames, so a future WS probe (or the
simulator's tests) can tell data from heartbeats, acks, shutdown notices and errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

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
_MESSAGE_CAP = 300


@dataclass(frozen=True, slots=True)
class WsEvent:
    """One frame's meaning. ``event_time_ms`` is the exchange's own event time (epoch ms), when carried."""

    kind: WsKind
    event_time_ms: float | None = None
    error_code: str | None = None
    message: str | None = None


class PlainText(str):
    """A frame that was not JSON (OKX answers ``ping`` with the bare text ``pong``)."""

    __slots__ = ()


def decode_frame(frame: Any) -> Any:
    """Turn a raw frame into JSON data; non-JSON text comes back as ``PlainText``; never raises."""
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
    return frame


def unreadable(message: Any) -> WsEvent:
    """The fallback for a frame no rule recognised."""
    text = message if isinstance(message, str) else type(message).__name__
    return WsEvent(kind="error", error_code="unrecognized_frame", message=str(text)[:_MESSAGE_CAP])
