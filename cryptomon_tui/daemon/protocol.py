"""The control API wire protocol: newline-delimited JSON frames over a Unix socket or loopback TCP.

One JSON object per line, UTF-8. Every frame has a ``type``:

client -> daemon
    ``{"type": "hello", "protocol": 1, "client": "cryptomon-ui/0.1.0", "token": "..."}``  (first frame)
    ``{"type": "request", "id": 7, "method": "ack", "params": {...}}``
    ``{"type": "request", "id": 8, "method": "history", "params": {"exchange": "okx", "since": t0, "until": t1,
      "resolution_s": 60, "recent": 100}}``  -> ``{"points": [...], "recent": [...], ...}`` (engine/history.py)
daemon -> client
    ``{"type": "welcome", "protocol": 1, "server": "cryptomon/0.1.0", "location": "tokyo", "pid": 123}``
    ``{"type": "response", "id": 7, "ok": true, "result": {...}}``
    ``{"type": "response", "id": 7, "ok": false, "error": {"code": "not_found", "message": "..."}}``
    ``{"type": "snapshot", "data": {...engine snapshot...}}``   (pushed at the subscribed rate, only on change)
    ``{"type": "event", "data": {...incident event...}}``      (pushed in order, never dropped)
    ``{"type": "error", "code": "version_mismatch" | "auth_failed" | ..., "message": "..."}`` then close
    ``{"type": "bye", "reason": "..."}``                          (the daemon closes this connection)

The protocol number changes only on an incompatible change; additive keys keep it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from cryptomon_tui.kernel.history import MAX_POINTS, MAX_RECENT
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_array, as_object, finite, integer, text
from cryptomon_tui.kernel.units import MAX_SILENCE_S, check_duration, check_epoch, check_silence_length

MAX_PARAM_NUMBER = 1e12  # any number a command takes (seconds, epochs, counts) is far below this

PROTOCOL_VERSION = 1

# A client's frames are small commands; a daemon's snapshot with hundreds of endpoints is not.
MAX_CLIENT_FRAME = 1 << 20
MAX_SERVER_FRAME = 64 << 20

# Snapshot push rates a client may ask for (the UI redraws at 1-4 Hz).
MIN_SNAPSHOT_HZ = 0.1
MAX_SNAPSHOT_HZ = 4.0

HANDSHAKE_TIMEOUT_S = 5.0

# ``history`` requests are bounded so one client cannot make the daemon read or send without limit:
# at most a year back, points of at least one minute (the rollup size), at most HISTORY_MAX_POINTS of
# them, and at most HISTORY_MAX_RECENT raw results.
HISTORY_MAX_RANGE_S = 366 * 86400.0
HISTORY_MIN_RESOLUTION_S = 60.0
HISTORY_MAX_POINTS = MAX_POINTS  # what a face reads of an answer (kernel.history) is what a request may ask
HISTORY_MAX_RECENT = MAX_RECENT
HISTORY_MAX_NAME = 200

ErrorCode = Literal[
    "bad_frame",
    "version_mismatch",
    "auth_failed",
    "unknown_method",
    "invalid",
    "not_found",
    "busy",
    "too_many_clients",
    "internal",
    "backlog",
]


class ProtocolError(Exception):
    """A frame that breaks the protocol (not JSON, wrong shape, unknown type)."""

    def __init__(self, message: str, code: str = "bad_frame") -> None:
        super().__init__(message)
        self.code = code


# method -> {param: (accepted types, required)}. Checked by the daemon before the engine sees it.
_STR = (str,)
_OPT_STR = (str, type(None))
_NUM_OR_NONE = (int, float, type(None))
_BOOL = (bool,)
METHOD_PARAMS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "ping": {},
    "snapshot": {},
    "health": {},
    "subscribe": {"snapshot_hz": ((int, float), False), "events": (_BOOL, False)},
    "ack": {"incident_id": (_STR, True), "by": (_OPT_STR, False), "note": (_OPT_STR, False)},
    "silence": {
        "matchers": ((list,), True),
        "duration_s": (_NUM_OR_NONE, False),
        "comment": (_STR, True),
        "by": (_OPT_STR, False),
    },
    "unsilence": {"silence_id": (_STR, True), "by": (_OPT_STR, False)},
    "analyze": {"incident_id": (_STR, True), "force": (_BOOL, False), "offline": (_BOOL, False)},
    "summary": {"since_s": (_NUM_OR_NONE, False), "offline": (_BOOL, False)},
    "maintenance_add": {
        "exchange": (_OPT_STR, False),
        "starts_at": ((int, float), True),
        "ends_at": ((int, float), True),
        "comment": (_OPT_STR, False),
        "recurrence": (_OPT_STR, False),
        "timezone": (_OPT_STR, False),
        "by": (_OPT_STR, False),
    },
    "maintenance_remove": {"window_id": (_STR, True), "by": (_OPT_STR, False)},
    "pause": {"exchange": (_STR, True)},
    "resume": {"exchange": (_STR, True)},
    "reload": {},
    "shutdown": {},
    "history": {
        "exchange": (_STR, True),
        "probe": (_OPT_STR, False),
        "since": ((int, float), True),
        "until": ((int, float), True),
        "resolution_s": ((int, float), True),
        "recent": ((int,), False),
    },
}


def validate_params(method: str, raw: object) -> JsonObject:
    """Check a request's params against ``METHOD_PARAMS``; raise ProtocolError naming the problem."""
    spec = METHOD_PARAMS.get(method)
    if spec is None:
        raise ProtocolError(f"unknown method {method!r} (known: {', '.join(sorted(METHOD_PARAMS))})", "unknown_method")
    params = {} if raw is None else as_object(raw)
    if params is None:
        raise ProtocolError(f"{method}: params must be an object", "invalid")
    unknown = set(params) - set(spec)
    if unknown:
        raise ProtocolError(f"{method}: unknown parameter(s) {', '.join(sorted(unknown))}", "invalid")
    for name, (types, required) in spec.items():
        if name not in params:
            if required:
                raise ProtocolError(f"{method}: missing parameter {name!r}", "invalid")
            continue
        value = params[name]
        # bool is an int subclass: never accept true where a number is meant.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ProtocolError(f"{method}: parameter {name!r} must be {want}", "invalid")
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                check_duration(abs(value), 0.0, MAX_PARAM_NUMBER)  # every number: finite and of sane size
            except ValueError:
                raise ProtocolError(f"{method}: parameter {name!r} must be a finite number up to "
                                    f"{MAX_PARAM_NUMBER:g}", "invalid") from None
    hz = finite(params.get("snapshot_hz", 0))
    if method == "subscribe" and (hz is None or not 0 <= hz <= 100):
        raise ProtocolError("subscribe: snapshot_hz must be 0..100", "invalid")
    if method == "summary" and params.get("since_s") is not None:
        try:
            check_duration(_number(params["since_s"]))
        except ValueError as exc:
            raise ProtocolError(f"summary: since_s {exc}", "invalid") from None
    if method == "silence":
        matchers = as_array(params["matchers"]) or []
        for m in matchers:
            if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not isinstance(m.get("value"), str):
                raise ProtocolError("silence: each matcher needs string 'name' and 'value'", "invalid")
        if not matchers:
            raise ProtocolError("silence: at least one matcher is needed", "invalid")
        if not (text(params["comment"]) or "").strip():
            raise ProtocolError("silence: a comment is required", "invalid")
        duration = params.get("duration_s")
        if duration is not None:
            try:
                check_silence_length(_number(duration))
            except ValueError as exc:
                raise ProtocolError(
                    f"silence: duration_s must be a positive number of seconds up to {MAX_SILENCE_S:.0f} "
                    f"(90 days), or null = until resolved: {exc}",
                    "invalid",
                ) from None
    if method == "history":
        _check_history(params)
    if method == "maintenance_add":
        try:
            starts = check_epoch(_number(params["starts_at"]), "starts_at")
            ends = check_epoch(_number(params["ends_at"]), "ends_at")
            check_silence_length(ends - starts)
        except ValueError as exc:
            raise ProtocolError(f"maintenance_add: {exc} (the window must end after it starts, within 90 days)",
                                "invalid") from None
        for name, limit in (("comment", 1000), ("exchange", 200), ("recurrence", 20), ("timezone", 100)):
            if len(text(params.get(name)) or "") > limit:
                raise ProtocolError(f"maintenance_add: {name} longer than {limit} characters", "invalid")
    return dict(params)


def _number(value: JsonValue) -> float:
    """A parameter already checked to be a finite number (NaN for anything else, which every check refuses)."""
    number = finite(value)
    return math.nan if number is None else number


def _check_history(params: JsonObject) -> None:
    """Range, resolution and sizes of a ``history`` request within the HISTORY_* bounds."""
    for name in ("exchange", "probe"):
        value = text(params.get(name))
        if value is not None and not (0 < len(value) <= HISTORY_MAX_NAME):
            raise ProtocolError(f"history: {name} must be 1..{HISTORY_MAX_NAME} characters", "invalid")
    since, until, res = _number(params["since"]), _number(params["until"]), _number(params["resolution_s"])
    try:
        check_epoch(since, "since")
        check_epoch(until, "until")
    except ValueError as exc:
        raise ProtocolError(f"history: {exc}", "invalid") from None
    if not math.isfinite(res):
        raise ProtocolError("history: resolution_s must be finite", "invalid")
    if until <= since:
        raise ProtocolError("history: until must be after since", "invalid")
    if until - since > HISTORY_MAX_RANGE_S:
        raise ProtocolError(f"history: the range is at most {HISTORY_MAX_RANGE_S / 86400:g} days", "invalid")
    if res < HISTORY_MIN_RESOLUTION_S:
        raise ProtocolError(f"history: resolution_s is at least {HISTORY_MIN_RESOLUTION_S:g}", "invalid")
    if math.ceil((until - since) / res) > HISTORY_MAX_POINTS:
        finest = (until - since) / HISTORY_MAX_POINTS
        raise ProtocolError(f"history: at most {HISTORY_MAX_POINTS} points (use resolution_s >= {finest:g})", "invalid")
    recent = integer(params.get("recent", 0))
    if recent is None or not 0 <= recent <= HISTORY_MAX_RECENT:
        raise ProtocolError(f"history: recent must be 0..{HISTORY_MAX_RECENT}", "invalid")


@dataclass(frozen=True, slots=True)
class Hello:
    protocol: int
    client: str = ""
    token: str | None = field(default=None, repr=False)

    def to_wire(self) -> JsonObject:
        out: JsonObject = {"type": "hello", "protocol": self.protocol, "client": self.client}
        if self.token is not None:
            out["token"] = self.token
        return out


@dataclass(frozen=True, slots=True)
class Welcome:
    protocol: int
    server: str
    location: str
    pid: int

    def to_wire(self) -> JsonObject:
        return {
            "type": "welcome",
            "protocol": self.protocol,
            "server": self.server,
            "location": self.location,
            "pid": self.pid,
        }


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    method: str
    params: JsonObject = field(default_factory=dict)

    def to_wire(self) -> JsonObject:
        return {"type": "request", "id": self.id, "method": self.method, "params": self.params}


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    ok: bool
    result: JsonValue = None
    error_code: str | None = None
    error_message: str | None = None

    def to_wire(self) -> JsonObject:
        if self.ok:
            return {"type": "response", "id": self.id, "ok": True, "result": self.result}
        return {
            "type": "response",
            "id": self.id,
            "ok": False,
            "error": {"code": self.error_code or "internal", "message": self.error_message or ""},
        }


@dataclass(frozen=True, slots=True)
class Push:
    """A server-initiated ``snapshot`` or ``event`` frame."""

    kind: Literal["snapshot", "event"]
    data: JsonObject  # Snapshot.to_wire() / EventView.to_wire() (kernel.snapshot, kernel.events)

    def to_wire(self) -> JsonObject:
        return {"type": self.kind, "data": self.data}


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    code: str
    message: str

    def to_wire(self) -> JsonObject:
        return {"type": "error", "code": self.code, "message": self.message}


@dataclass(frozen=True, slots=True)
class Bye:
    reason: str

    def to_wire(self) -> JsonObject:
        return {"type": "bye", "reason": self.reason}


Message = Hello | Welcome | Request | Response | Push | ErrorFrame | Bye


def encode(msg: Message | Mapping[str, object]) -> bytes:
    """One frame: compact JSON and a newline (JSON never contains a raw newline)."""
    obj = msg.to_wire() if isinstance(msg, Message) else msg
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8") + b"\n"


def _wrong(obj: JsonObject, key: str) -> ProtocolError:
    return ProtocolError(f"{obj.get('type')} frame: {key!r} missing or of the wrong type")


def _need_int(obj: JsonObject, key: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _wrong(obj, key)
    return value


def _need_str(obj: JsonObject, key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _wrong(obj, key)
    return value


def _need_object(obj: JsonObject, key: str) -> JsonObject:
    value = as_object(obj.get(key))
    if value is None:
        raise _wrong(obj, key)
    return value


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def decode(line: bytes | str) -> Message:
    """Parse one frame into a typed message. Raises ProtocolError on anything malformed (NaN and Infinity,
    which Python's json accepts but JSON does not, and nesting deep enough to exhaust the stack included)."""
    try:
        obj = json.loads(line, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise ProtocolError("frame is nested too deeply") from None
    obj = as_object(obj)
    if obj is None:
        raise ProtocolError("frame must be a JSON object")
    kind = obj.get("type")
    if kind == "hello":
        token = obj.get("token")
        return Hello(
            protocol=_need_int(obj, "protocol"),
            client=str(obj.get("client") or ""),
            token=token if isinstance(token, str) else None,
        )
    if kind == "welcome":
        return Welcome(
            protocol=_need_int(obj, "protocol"),
            server=str(obj.get("server") or ""),
            location=str(obj.get("location") or ""),
            pid=_need_int(obj, "pid") if obj.get("pid") is not None else 0,
        )
    if kind == "request":
        raw_params = obj.get("params")
        params = {} if raw_params is None else as_object(raw_params)
        if params is None:
            raise ProtocolError("request frame: 'params' must be an object")
        return Request(id=_need_int(obj, "id"), method=_need_str(obj, "method"), params=params)
    if kind == "response":
        rid = _need_int(obj, "id")
        if obj.get("ok") is True:
            return Response(id=rid, ok=True, result=obj.get("result"))
        err = as_object(obj.get("error")) or {}
        return Response(
            id=rid, ok=False, error_code=str(err.get("code") or "internal"), error_message=str(err.get("message") or "")
        )
    if kind in ("snapshot", "event"):
        return Push(kind="snapshot" if kind == "snapshot" else "event", data=_need_object(obj, "data"))
    if kind == "error":
        return ErrorFrame(code=str(obj.get("code") or "internal"), message=str(obj.get("message") or ""))
    if kind == "bye":
        return Bye(reason=str(obj.get("reason") or ""))
    raise ProtocolError(f"unknown frame type {kind!r}")
