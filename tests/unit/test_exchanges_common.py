"""Shared parsing helpers: untrusted bodies and headers never raise, and read what they say."""

from __future__ import annotations

import pytest

from cryptomon_tui.exchanges.common import (
    MISSING,
    cap_text,
    check_levels,
    decode_json,
    dig,
    encode_query,
    epoch_ms,
    header,
    html_title,
    response_date,
    retry_after_seconds,
    to_float,
    to_int,
)
from cryptomon_tui.exchanges.ws import PlainText, decode_frame


def test_decode_json_describes_every_failure() -> None:
    assert decode_json(b'{"a": 1}').value == {"a": 1}
    assert decode_json(b"\xef\xbb\xbf{}").ok  # a UTF-8 BOM is tolerated by json.loads on bytes
    assert "truncated" in (decode_json(b'{"a": 1}', truncated=True).error or "")
    assert decode_json(b"").error == "empty body"
    html = decode_json(b"  <!doctype html><html><title> Bad\n Gateway </title></html>")
    assert html.html_title == "Bad Gateway" and "HTML" in (html.error or "")
    assert decode_json(b"[" * 100_000 + b"]" * 100_000).error == "invalid JSON: nested too deeply"
    assert "NaN" in (decode_json(b"[NaN]").error or "")
    assert not decode_json(b"{" + b" " * 9_000_000 + b"}").ok


def test_header_lookup_is_case_insensitive() -> None:
    assert header({"x-mbx-used-weight-1m": "5"}, "X-MBX-USED-WEIGHT-1M") == "5"
    assert header({"X-Bapi-Limit": " 10 "}, "x-bapi-limit") == "10"
    assert header({}, "retry-after") is None


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds({"retry-after": "120"}) == 120
    assert retry_after_seconds({"retry-after": "1.5"}) == 1.5
    assert retry_after_seconds({"retry-after": "-3"}) == 0
    dated = {"retry-after": "Wed, 10 Aug 2022 00:02:00 GMT", "date": "Wed, 10 Aug 2022 00:00:00 GMT"}
    assert retry_after_seconds(dated) == 120
    assert retry_after_seconds({"retry-after": "Wed, 10 Aug 2022 00:02:00 GMT"}) is None  # no reference clock
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert response_date({"date": "Wed, 10 Aug 2022 00:00:00 GMT"}) == 1660089600


@pytest.mark.parametrize(
    ("value", "number"),
    [(1, 1.0), (1.5, 1.5), ("2.50", 2.5), (" 3 ", 3.0), ("1e3", 1000.0), (True, None), ("abc", None), ("", None),
     ("nan", None), ("inf", None), (float("nan"), None), ("1_000", None), (None, None), ([1], None), ("9" * 100, None),
     (10**400, None)],
)
def test_to_float(value: object, number: float | None) -> None:
    assert to_float(value) == number


def test_to_int_and_epoch_ms() -> None:
    assert to_int("1688639403423213947") == 1688639403423213947
    assert to_int(5.0) == 5 and to_int(5.5) is None and to_int(False) is None and to_int("5.0") is None
    assert epoch_ms(1499827319559) == 1499827319559
    assert epoch_ms("1597026383085") == 1597026383085
    assert epoch_ms(1499827319) is None  # seconds are not milliseconds
    assert epoch_ms("abc") is None


def test_cap_text_keeps_text_readable_bounded_and_terminal_safe() -> None:
    assert cap_text("Invalid symbol.") == "Invalid symbol."
    assert cap_text("\x1b[31mred\x07") == "red\\x07"  # issue 12: exchange text is scrubbed where it enters
    long = cap_text("x" * 1000)
    assert len(long) == 300 and long.endswith("…")
    assert cap_text({"a": [1]}) == '{"a":[1]}'
    assert cap_text(None) == ""


def test_dig_and_levels() -> None:
    doc = {"a": [{"b": 1}]}
    assert dig(doc, "a", 0, "b") == 1
    assert dig(doc, "a", 5) is MISSING and dig(doc, "x") is MISSING and dig(None, "a") is MISSING
    assert check_levels([["1", "2"], [3, 4.5]]) is None
    assert check_levels([["1"]]) and check_levels("x") and check_levels([["a", "1"]])


def test_encode_query_and_title() -> None:
    assert encode_query({"symbol": "BTC USDT", "a": "1/2"}) == "symbol=BTC%20USDT&a=1%2F2"
    assert html_title(b"<html>no title</html>") is None


def test_decode_frame() -> None:
    assert decode_frame('{"a": 1}') == {"a": 1}
    assert decode_frame(b"pong") == PlainText("pong")
    assert isinstance(decode_frame("{broken"), PlainText)
    assert decode_frame({"a": 1}) == {"a": 1}
    assert decode_frame(None) is None and decode_frame(1.5) == 1.5
    # not a frame a socket delivers: its type name as text, which every adapter reports as unrecognised
    assert decode_frame(object()) == PlainText("object") and isinstance(decode_frame({1, 2}), PlainText)
