"""Every recorded/documented body in the shared reference samples is classified as it means.

The folder is walked, so a new sample without an expectation in tests/fakes/exchange_samples.py
fails the suite.
HTTP statuses are the ones samples/SOURCES.md gives (418 ban, 400 -1021, 401 -2015, 429
OKX 50011, 200 Bybit errors, 400 Deribit errors, 200 successes).
"""

from __future__ import annotations

import json

import pytest

from cryptomon_tui.exchanges.base import RawResponse
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter
from cryptomon_tui.kernel.results import Outcome
from tests.fakes.exchange_samples import EXPECTED, SAMPLES, Ws, sample_files

FILES = sample_files()
OK = Outcome.OK


def test_samples_folder_is_present_and_fully_covered() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"reference samples not found at {SAMPLES} (set CRYPTOMON_SAMPLES)")
    missing = [name for name in FILES if name not in EXPECTED]
    assert not missing, f"samples without an expectation: {missing}"
    stale = [name for name in EXPECTED if name not in FILES]
    assert not stale, f"expectations for samples that no longer exist: {stale}"


@pytest.mark.parametrize("name", FILES)
def test_sample_is_classified_as_it_means(name: str) -> None:
    expected = EXPECTED.get(name)
    assert expected is not None, f"{name} has no expectation in EXPECTED"
    body = (SAMPLES / name).read_bytes()
    adapter = expected.adapter()
    if isinstance(expected, Ws):
        event = adapter.classify_ws_message(body)
        assert event.kind == expected.kind, event
        assert event.event_time_ms == expected.event_time_ms, event
        if expected.error_code is not None:
            assert event.error_code == expected.error_code
        # The decoded form gives the same answer as the raw frame.
        assert adapter.classify_ws_message(json.loads(body)) == event
        return
    response = RawResponse(status=expected.status, headers={}, body=body)
    result = adapter.classify(expected.probe, response)
    assert result.outcome is expected.outcome, result
    assert result.error_code == expected.error_code, result
    if expected.server_time_ms is None:
        assert result.server_time_ms is None, result
    else:
        assert result.server_time_ms == pytest.approx(expected.server_time_ms, abs=1e-3), result
    assert result.ban_until == expected.ban_until
    for key, value in expected.extra.items():
        assert result.extra.get(key) == value, result
    if expected.outcome is not OK and expected.error_code != "locked":
        doc = json.loads(body)  # the exchange's own message is carried verbatim
        assert result.error_message == (doc.get("msg") or doc.get("retMsg") or doc["error"]["message"])


def test_binance_success_samples_also_classify_on_futures() -> None:
    """The futures API returns the same shapes for ping/time/depth."""
    adapter = BinanceFuturesAdapter()
    for name, probe in (("spot_ping_success.json", "ping"), ("spot_time_success.json", "time")):
        body = (SAMPLES / "binance" / name).read_bytes() if SAMPLES.is_dir() else b""
        if body:
            assert adapter.classify(probe, RawResponse(200, {}, body)).outcome is OK
