"""The stream part of the result contract: what one WebSocket stream looks like at one moment.

Part of the kernel (imports nothing of the project) so the stream probes, detection, the control
protocol and the UI share one shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TypeVar

from cryptomon_tui.kernel.jsonvalue import JsonObject, get_finite, get_flag, get_int, get_text


class StreamOutcome(StrEnum):
    """What one stream looks like right now. ``ok`` plus the stream part of the taxonomy."""

    OK = "ok"
    CONNECTING = "connecting"  # first connection not up yet (no verdict: nothing was promised)
    WS_STALE = "ws_stale"  # connected, nothing within the expected gap
    WS_LAG = "ws_lag"  # event times lag local receive time beyond the threshold
    WS_GAP = "ws_gap"  # sequence numbers skipped or went backwards
    WS_DISCONNECTED = "ws_disconnected"  # socket down (closed, refused, timed out)
    WS_RECONNECT_STORM = "ws_reconnect_storm"  # too many reconnects in the window
    WS_HEARTBEAT = "ws_heartbeat"  # our pings unanswered / the server dropped us for heartbeats
    WS_AUTH = "ws_auth"  # a signed user-data stream's login was rejected (key, signature, permissions)


STREAM_FAULTS = frozenset(o for o in StreamOutcome if o not in (StreamOutcome.OK, StreamOutcome.CONNECTING))


@dataclass(frozen=True, slots=True)
class StreamStats:
    """Everything a face or a rule reads about one stream at one moment (immutable)."""

    exchange: str
    stream: str
    outcome: StreamOutcome
    detail: str
    connected: bool
    subscribed: bool
    messages: int  # data messages since the probe started
    msgs_per_s: float  # over the last 60 s (or since connect if shorter)
    silence_s: float  # since the last data message (or since subscribe)
    stale_after_s: float  # the current stale threshold
    gap_p50_ms: float | None
    gap_p99_ms: float | None
    gap_max_ms: float | None
    lag_ms: float | None  # median of recent lag samples (positive: we see it late)
    lag_error_ms: float | None  # its error bound (clock-offset uncertainty + timestamp resolution)
    seq_gaps: int  # holes since start
    missed: int  # messages known missing (contiguous numbering)
    reconnects: int  # since start
    recent_reconnects: int  # unplanned drops of an established connection in the last 5 min
    heartbeat_misses: int
    connect_ms: float | None  # last connect + TLS + upgrade time
    subscribe_ms: float | None  # subscribe sent -> acknowledged
    first_message_ms: float | None  # subscribed (or connected) -> first data message
    last_close_code: int | None
    last_close_reason: str | None
    planned_reconnects: int  # shutdown notices / lifetime renewals (not faults)

    def to_wire(self) -> JsonObject:
        """JSON-ready dict (the control protocol and events carry it as is)."""
        data: JsonObject = {name: getattr(self, name) for name in _FIELD_NAMES}  # flat: no deep copy (asdict) needed
        data["outcome"] = self.outcome.value
        return data

    def to_record(self, ts_iso: str) -> JsonObject:
        """The ``--probes-jsonl`` / backtest record: ``kind: stream`` tells it from a probe result."""
        return {"kind": "stream", "ts": ts_iso, **self.to_wire()}

    @classmethod
    def from_wire(cls, data: Mapping[str, object]) -> StreamStats:
        """Inverse of ``to_wire``; unknown keys are ignored. A required field that is missing or of the wrong
        type, or an unknown outcome, raises ValueError; an optional one that is unreadable reads as None."""
        outcome = data.get("outcome", "ok")
        return cls(
            exchange=_text(data, "exchange"),
            stream=_text(data, "stream"),
            outcome=StreamOutcome(outcome if isinstance(outcome, str) else repr(outcome)),
            detail=_text(data, "detail"),
            connected=_flag(data, "connected"),
            subscribed=_flag(data, "subscribed"),
            messages=_count(data, "messages"),
            msgs_per_s=_number(data, "msgs_per_s"),
            silence_s=_number(data, "silence_s"),
            stale_after_s=_number(data, "stale_after_s"),
            gap_p50_ms=get_finite(data, "gap_p50_ms"),
            gap_p99_ms=get_finite(data, "gap_p99_ms"),
            gap_max_ms=get_finite(data, "gap_max_ms"),
            lag_ms=get_finite(data, "lag_ms"),
            lag_error_ms=get_finite(data, "lag_error_ms"),
            seq_gaps=_count(data, "seq_gaps"),
            missed=_count(data, "missed"),
            reconnects=_count(data, "reconnects"),
            recent_reconnects=_count(data, "recent_reconnects"),
            heartbeat_misses=_count(data, "heartbeat_misses"),
            connect_ms=get_finite(data, "connect_ms"),
            subscribe_ms=get_finite(data, "subscribe_ms"),
            first_message_ms=get_finite(data, "first_message_ms"),
            last_close_code=get_int(data, "last_close_code"),
            last_close_reason=get_text(data, "last_close_reason"),
            planned_reconnects=_count(data, "planned_reconnects"),
        )


_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(StreamStats))


_T = TypeVar("_T")


def _need(data: Mapping[str, object], name: str, value: _T | None) -> _T:
    """A required field's narrowed value; ValueError saying which field when it was missing or mistyped."""
    if value is None:
        raise ValueError(f"stream field {name} is {'missing' if name not in data else 'not readable'}")
    return value


def _text(data: Mapping[str, object], name: str) -> str:
    return _need(data, name, get_text(data, name))


def _flag(data: Mapping[str, object], name: str) -> bool:
    return _need(data, name, get_flag(data, name))


def _count(data: Mapping[str, object], name: str) -> int:
    return _need(data, name, get_int(data, name))


def _number(data: Mapping[str, object], name: str) -> float:
    return _need(data, name, get_finite(data, name))
