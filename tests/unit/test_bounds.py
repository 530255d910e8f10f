"""Issue 13: the one shared validator for time values (units), the exchange-side bounding (bound_times), the
capped backoff, and the snapshot's last guard (iso_utc). Property tests use a fixed seed (derandomize)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.exchanges import ExchangeConfig
from cryptomon_tui.exchanges.base import Classification, RawResponse
from cryptomon_tui.exchanges.common import bound_times, bounded_notes
from cryptomon_tui.exchanges.registry import create_adapter
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.units import (
    MAX_DURATION_S,
    MAX_EXCHANGE_WAIT_S,
    MAX_SILENCE_S,
    check_silence_length,
    iso_utc,
    parse_duration,
    parse_iso_utc,
)
from cryptomon_tui.probing.backoff import MARGIN_S, Backoff, with_pause
from cryptomon_tui.store.rows import silence_from_row, window_from_row

FIXED = settings(derandomize=True, database=None, max_examples=300, deadline=None)
HOSTILE_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e12, 1e300, 1e308, -1e-9, 9e15, 2**63, -0.0]),
)
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e400", "1e12", "1e300", "-5m", "5m3", "1h30m", "", "٣s", "∞"]),
    st.text(max_size=20),
)


@FIXED
@given(st.one_of(HOSTILE_FLOATS, HOSTILE_TEXT, st.integers(min_value=-(10**30), max_value=10**30)))
def test_a_parsed_duration_is_finite_and_bounded_or_refused(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_S


@FIXED
@given(HOSTILE_FLOATS)
def test_a_silence_length_is_positive_and_at_most_90_days_or_refused(value: float) -> None:
    try:
        seconds = check_silence_length(value)
    except ValueError:
        return
    assert 0 < seconds <= MAX_SILENCE_S


@FIXED
@given(HOSTILE_FLOATS)
def test_iso_utc_never_raises(value: float) -> None:
    text = iso_utc(value)
    assert text.endswith("Z")
    parse_iso_utc(text)


@FIXED
@given(
    retry=st.one_of(st.none(), HOSTILE_FLOATS),
    ban=st.one_of(st.none(), HOSTILE_FLOATS),
    maint=st.one_of(st.none(), HOSTILE_FLOATS),
    server=st.one_of(st.none(), HOSTILE_FLOATS),
    used=st.one_of(st.none(), HOSTILE_FLOATS),
    outcome=st.sampled_from([Outcome.RATE_LIMITED, Outcome.IP_BANNED, Outcome.OK]),
)
def test_bounded_classification_feeds_a_bounded_pause(
    retry: float | None, ban: float | None, maint: float | None, server: float | None, used: float | None,
    outcome: Outcome,
) -> None:
    c = bound_times(Classification(outcome, retry_after_s=retry, ban_until=ban, maintenance_until=maint,
                                   server_time_ms=server, rate_limit_used=used))
    for value in (c.retry_after_s, c.ban_until, c.maintenance_until, c.server_time_ms, c.rate_limit_used):
        assert value is None or math.isfinite(value)
    if c.retry_after_s is not None:
        assert 0 <= c.retry_after_s <= MAX_EXCHANGE_WAIT_S
    clock = FakeClock()
    backoff = Backoff(clock)
    pause = backoff.record(c.outcome, c.retry_after_s, c.ban_until, "x")
    if pause is not None:
        assert pause.until_wall - clock.now() <= MAX_EXCHANGE_WAIT_S + MARGIN_S
        iso_utc(pause.until_wall)
    snap = backoff.snapshot()  # the call that failed every snapshot with "year 33715"
    assert isinstance(snap, dict)


def test_retry_after_1e12_pauses_a_day_and_says_the_exchange_asked_for_longer() -> None:
    adapter = create_adapter("x", ExchangeConfig(url="http://127.0.0.1:9/x"))
    c = bound_times(adapter.classify("x", RawResponse(429, {"retry-after": "1e12"}, b"")))
    assert c.outcome is Outcome.RATE_LIMITED and c.retry_after_s == MAX_EXCHANGE_WAIT_S
    assert "asked to wait" in (c.error_message or "") and "capped at 1d" in (c.error_message or "")
    clock = FakeClock()
    b = Backoff(clock)
    pause = b.record(c.outcome, c.retry_after_s, c.ban_until)
    assert pause is not None and pause.until_wall == pytest.approx(clock.now() + MAX_EXCHANGE_WAIT_S + MARGIN_S)
    assert b.snapshot()["paused"] is True


def test_bounded_notes_are_what_bound_times_dropped_and_only_text() -> None:
    """The scheduler logs these notes: they come out as strings whatever else ``extra`` holds."""
    clean = Classification(Outcome.OK, retry_after_s=5.0, ban_until=1.7e9, server_time_ms=1.7e12, rate_limit_used=0.5)
    assert bound_times(clean) is clean and bounded_notes(clean) == []
    c = bound_times(Classification(Outcome.IP_BANNED, retry_after_s=1e12, ban_until=1e30, maintenance_until=-1.0))
    notes = bounded_notes(c)
    assert len(notes) == 3 and notes[0].startswith("asked to wait") and "ban until" in notes[1]
    assert "maintenance until" in notes[2] and c.ban_until is None and c.maintenance_until is None
    assert bounded_notes(Classification(Outcome.OK, extra={"bounded": ["a", 1, None, {"b": 2}]})) == ["a"]
    assert bounded_notes(Classification(Outcome.OK, extra={"bounded": "not a list"})) == []


async def test_binance_ban_with_16_digits_is_honoured_with_our_own_backoff() -> None:
    adapter = create_adapter("binance", ExchangeConfig(kind="binance_spot"))
    body = b'{"code":-1003,"msg":"Way too many requests; IP banned until 1234567890123456."}'
    c = bound_times(adapter.classify("time", RawResponse(418, {}, body)))
    assert c.outcome is Outcome.IP_BANNED and c.ban_until is None
    assert "not a usable time" in (c.error_message or "")
    clock = FakeClock()
    b = Backoff(clock)
    assert b.record(c.outcome, c.retry_after_s, c.ban_until) is not None
    await clock.advance(300)
    assert b.active  # 10 minutes, Bybit's documented minimum, not ignored


def test_ban_until_2286_is_capped_at_24h_and_the_result_says_so() -> None:
    clock = FakeClock()
    b = Backoff(clock)
    pause = b.record(Outcome.IP_BANNED, None, 9_999_999_999.999)
    assert pause is not None and pause.capped
    assert pause.until_wall - clock.now() == pytest.approx(MAX_EXCHANGE_WAIT_S + MARGIN_S)
    c = with_pause(Classification(Outcome.IP_BANNED, error_message="banned", ban_until=9_999_999_999.999), pause)
    assert "capped at 1d" in (c.error_message or "") and c.ban_until == pause.until_wall


async def test_a_ban_that_already_ended_pauses_only_briefly() -> None:
    clock = FakeClock()
    b = Backoff(clock)
    pause = b.record(Outcome.IP_BANNED, None, clock.now() - 3600)
    assert pause is not None and "ended" in pause.reason
    await clock.advance(5)
    assert not b.active


def test_stored_silences_and_windows_with_hostile_times_load_bounded() -> None:
    row = ("S-1", "[]", 1_700_000_000.0, 1e308, "me", "why", 1_700_000_000.0, None)
    s = silence_from_row(row)
    assert s.ends_at == 1_700_000_000.0 + MAX_SILENCE_S
    s2 = silence_from_row(("S-2", "[]", float("nan"), float("inf"), "me", "why", float("nan"), float("nan")))
    assert all(math.isfinite(v) for v in (s2.starts_at, s2.ends_at or 0, s2.created_at, s2.expired_at or 0))
    s2.to_dict()
    w = window_from_row(("W-1", "binance", 1_700_000_000.0, float("inf"), "", None, "UTC", None))
    assert math.isfinite(w.ends_at) and w.ends_at > w.starts_at
