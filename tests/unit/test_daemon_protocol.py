"""Wire protocol: frames round-trip, malformed frames are refused with a reason, params are checked."""

from __future__ import annotations

import pytest

from cryptomon_tui.daemon.protocol import (
    PROTOCOL_VERSION,
    Bye,
    ErrorFrame,
    Hello,
    ProtocolError,
    Push,
    Request,
    Response,
    Welcome,
    decode,
    encode,
    validate_params,
)


@pytest.mark.parametrize(
    "msg",
    [
        Hello(protocol=PROTOCOL_VERSION, client="ui", token="t" * 20),
        Hello(protocol=PROTOCOL_VERSION, client="ui"),
        Welcome(protocol=PROTOCOL_VERSION, server="cryptomon/0.1.0", location="tokyo", pid=42),
        Request(id=7, method="ack", params={"incident_id": "inc-1", "note": "on it\nsecond line"}),
        Response(id=7, ok=True, result={"incident": {"id": "inc-1"}}),
        Response(id=8, ok=False, error_code="not_found", error_message="no incident 'x'"),
        Push("snapshot", {"seq": 3, "exchanges": {}}),
        Push("event", {"event": "opened", "incident": {"id": "inc-1", "summary": "[bold]x[/] ✓"}}),
        ErrorFrame("version_mismatch", "client speaks 2"),
        Bye("daemon shutting down"),
    ],
)
def test_every_message_round_trips_as_one_line(msg: object) -> None:
    frame = encode(msg)  # type: ignore[arg-type]
    assert frame.endswith(b"\n") and frame.count(b"\n") == 1
    assert decode(frame) == msg


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "object"),
        (b'{"type":"nope"}', "unknown frame type"),
        (b'{"type":"request","method":"ack"}', "'id'"),
        (b'{"type":"request","id":true,"method":"ack"}', "'id'"),
        (b'{"type":"hello"}', "'protocol'"),
        (b'{"type":"request","id":1,"method":"ack","params":[]}', "params"),
    ],
)
def test_malformed_frames_raise_with_a_reason(line: bytes, needle: str) -> None:
    with pytest.raises(ProtocolError, match=needle):
        decode(line)


def test_params_are_validated_per_method() -> None:
    assert validate_params("ack", {"incident_id": "a"}) == {"incident_id": "a"}
    with pytest.raises(ProtocolError, match="unknown method"):
        validate_params("rm_rf", {})
    with pytest.raises(ProtocolError, match="missing parameter 'incident_id'"):
        validate_params("ack", {})
    with pytest.raises(ProtocolError, match="unknown parameter"):
        validate_params("pause", {"exchange": "okx", "extra": 1})
    with pytest.raises(ProtocolError, match="must be"):
        validate_params("silence", {"matchers": [], "comment": "x", "duration_s": True})
    with pytest.raises(ProtocolError, match="at least one matcher"):
        validate_params("silence", {"matchers": [], "comment": "x"})
    okx = [{"name": "exchange", "value": "okx"}]
    with pytest.raises(ProtocolError, match="comment"):
        validate_params("silence", {"matchers": [{"name": "exchange", "value": "okx"}], "comment": " "})
    with pytest.raises(ProtocolError, match="positive"):
        validate_params("silence", {"matchers": okx, "comment": "c", "duration_s": -1})
    ok = validate_params("silence", {"matchers": [{"name": "exchange", "value": "okx"}], "comment": "c"})
    assert ok["comment"] == "c"


def _history(**kw: object) -> dict[str, object]:
    return {"exchange": "okx", "since": 1_750_000_000.0, "until": 1_750_003_600.0, "resolution_s": 60, **kw}


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        (_history(until=1_750_000_000.0), "until must be after since"),
        (_history(since=float("nan")), "since"),
        (_history(until=float("inf")), "until"),
        (_history(since=0), "since"),
        (_history(resolution_s=float("inf")), "finite"),
        (_history(resolution_s=1), "at least 60"),
        (_history(until=1_750_000_000.0 + 400 * 86400, resolution_s=86400), "at most 366 days"),
        (_history(until=1_750_000_000.0 + 30 * 86400, resolution_s=60), "at most 1500 points"),
        (_history(recent=10_000), "recent must be 0..500"),
        (_history(recent=True), "must be int"),
        (_history(exchange=""), "1..200 characters"),
        (_history(probe="p" * 300), "1..200 characters"),
        (_history(extra=1), "unknown parameter"),
    ],
)
def test_history_requests_are_bounded(params: dict[str, object], needle: str) -> None:
    from cryptomon_tui.daemon.protocol import ProtocolError, validate_params

    with pytest.raises(ProtocolError, match=needle):
        validate_params("history", params)


def test_a_history_request_within_bounds_passes() -> None:
    from cryptomon_tui.daemon.protocol import validate_params

    params = _history(probe="book", recent=100, until=1_750_000_000.0 + 86400, resolution_s=720)
    assert validate_params("history", params) == params


def test_maintenance_requests_are_bounded() -> None:
    from cryptomon_tui.daemon.protocol import ProtocolError, validate_params

    ok = {"exchange": "okx", "starts_at": 1_750_000_000.0, "ends_at": 1_750_003_600.0, "comment": "upgrade"}
    assert validate_params("maintenance_add", ok) == ok
    for bad in ({"ends_at": 1_750_000_000.0}, {"ends_at": 1_750_000_000.0 + 91 * 86400}, {"starts_at": float("nan")},
                {"comment": "x" * 2000}):
        with pytest.raises(ProtocolError):
            validate_params("maintenance_add", {**ok, **bad})
    assert validate_params("maintenance_remove", {"window_id": "mw-1"}) == {"window_id": "mw-1"}
