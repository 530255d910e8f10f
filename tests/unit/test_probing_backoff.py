"""Backoff on rate limits and bans: Retry-After and ban expiry honoured, exponential otherwise."""

from __future__ import annotations

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.exchanges import ExchangeConfig
from cryptomon_tui.exchanges.base import RawResponse
from cryptomon_tui.exchanges.registry import create_adapter
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.probing.backoff import BAN_BASE_S, MARGIN_S, RATE_LIMIT_BASE_S, Backoff


async def test_retry_after_is_honoured() -> None:
    clock = FakeClock()
    b = Backoff(clock)
    pause = b.record(Outcome.RATE_LIMITED, retry_after_s=30, exchange="binance")
    assert pause is not None and "Retry-After 30s" in pause.reason
    await clock.advance(30)
    assert b.active
    await clock.advance(MARGIN_S + 0.01)
    assert not b.active


async def test_binance_ban_expiry_from_the_418_message() -> None:
    clock = FakeClock(start=1_660_090_000.0)
    adapter = create_adapter("binance", ExchangeConfig(kind="binance_spot"))
    body = (b'{"code":-1003,"msg":"Way too much request weight used; IP banned until 1660090423228. '
            b'Please use WebSocket Streams for live updates to avoid bans."}')
    c = adapter.classify("ticker", RawResponse(418, {}, body))
    assert c.outcome is Outcome.IP_BANNED
    b = Backoff(clock)
    b.record(c.outcome, c.retry_after_s, c.ban_until)
    assert b.snapshot()["paused"] is True
    assert "2022-08-10T00:13:43.228Z" in str(b.snapshot()["reason"])
    await clock.advance(423.228 - 1)
    assert b.active
    await clock.advance(1 + MARGIN_S + 0.01)
    assert not b.active


async def test_exponential_without_hints_and_reset_after_success() -> None:
    clock = FakeClock()
    b = Backoff(clock)
    waits = []
    for _ in range(3):
        b.record(Outcome.RATE_LIMITED)
        waits.append(b.remaining_s())
        await clock.advance(b.remaining_s())
    assert waits == pytest.approx([RATE_LIMIT_BASE_S + MARGIN_S, 2 * RATE_LIMIT_BASE_S + MARGIN_S,
                                   4 * RATE_LIMIT_BASE_S + MARGIN_S])
    b.record(Outcome.OK)  # a success after the pause resets the exponent
    b.record(Outcome.IP_BANNED)
    assert b.remaining_s() == pytest.approx(BAN_BASE_S + MARGIN_S)
    await clock.advance(b.remaining_s())
    b.record(Outcome.IP_BANNED)  # banned again straight away: twice as long
    assert b.remaining_s() == pytest.approx(2 * BAN_BASE_S + MARGIN_S)


def test_a_late_short_hint_does_not_shorten_a_longer_pause() -> None:
    clock = FakeClock()
    b = Backoff(clock)
    b.record(Outcome.IP_BANNED, retry_after_s=600)
    assert b.record(Outcome.RATE_LIMITED, retry_after_s=1) is None
    assert b.remaining_s() == pytest.approx(600 + MARGIN_S)
