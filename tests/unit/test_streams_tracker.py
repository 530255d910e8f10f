"""The stream tracker's verdicts from the outside: feed frames at known times, read the verdict."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.exchanges.ws import WsEvent
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.streams.tracker import StreamThresholds, StreamTracker

DATA = WsEvent(kind="data")
WALL0 = 1_700_000_000.0


def connected(rule=None, **kw) -> StreamTracker:
    t = StreamTracker("binance", "btcusdt@trade", seq_rule=rule, thresholds=StreamThresholds(**kw))
    t.connecting(0.0)
    t.connected_now(0.05)
    return t


def feed_regular(t: StreamTracker, start: float, count: int, every: float) -> float:
    mono = start
    for _ in range(count):
        mono += every
        t.frame(mono, WALL0 + mono, DATA)
    return mono


def test_connecting_then_ok_then_stale_only_after_learnt_threshold():
    t = StreamTracker("x", "s")
    assert t.stats(0.0).outcome is StreamOutcome.CONNECTING
    t.connecting(0.0)
    t.connected_now(0.2)
    s = t.stats(0.2)
    assert s.connected and s.connect_ms is not None and math.isclose(s.connect_ms, 200.0)
    end = feed_regular(t, 0.2, 100, 0.1)  # 10 msgs/s: p99 gap 0.1 s -> threshold is the 3 s floor
    assert t.stats(end + 2.9).outcome is StreamOutcome.OK
    stale = t.stats(end + 3.1)
    assert stale.outcome is StreamOutcome.WS_STALE
    assert stale.connected, "stale while the socket still looks connected"
    assert "no message" in stale.detail


def test_slow_stream_learns_a_longer_threshold():
    t = connected()
    end = feed_regular(t, 0.0, 60, 2.0)  # a message every 2 s -> 3 x p99 = 6 s
    assert math.isclose(t.stale_after(), 6.0)
    assert t.stats(end + 5.5).outcome is StreamOutcome.OK
    assert t.stats(end + 6.5).outcome is StreamOutcome.WS_STALE


def test_initial_threshold_before_enough_gaps():
    t = connected()
    feed_regular(t, 0.0, 5, 1.0)
    assert t.stale_after() == 10.0
    assert t.stats(5.0 + 9.0).outcome is StreamOutcome.OK
    assert t.stats(5.0 + 11.0).outcome is StreamOutcome.WS_STALE


def test_lag_uses_rest_clock_offset_and_error_bound():
    t = connected(lag_ms=500.0)
    # local clock 200 ms behind the exchange (offset +200); events stamped 700 ms before the
    # exchange-time moment we received them -> true lag 700 ms.
    for i in range(20):
        mono = 1.0 + i * 0.1
        wall = WALL0 + mono
        event_ms = (wall * 1000.0 + 200.0) - 700.0
        t.frame(mono, wall, WsEvent(kind="data", event_time_ms=event_ms), offset_ms=200.0, offset_error_ms=5.0)
    s = t.stats(3.0)
    assert s.lag_ms is not None and abs(s.lag_ms - 700.0) < 0.01
    assert s.lag_error_ms is not None and 5.0 <= s.lag_error_ms <= 7.0
    assert s.outcome is StreamOutcome.WS_LAG


def test_lag_without_rest_offset_never_alarms():
    t = connected(lag_ms=100.0)
    for i in range(20):
        mono = 1.0 + i * 0.1
        t.frame(mono, WALL0 + mono, WsEvent(kind="data", event_time_ms=(WALL0 + mono) * 1000 - 5000))
    s = t.stats(3.0)
    assert s.lag_ms is not None and s.lag_error_ms is None
    assert s.outcome is StreamOutcome.OK


def test_contiguous_sequence_holes_counted_and_verdict_clears():
    t = connected(rule="contiguous")
    mono = 0.0
    for seq in [1, 2, 3, 7, 8, 9]:
        mono += 0.1
        t.frame(mono, WALL0 + mono, WsEvent(kind="data", seq=seq, topic="trade"))
    s = t.stats(mono)
    assert s.seq_gaps == 1 and s.missed == 3
    assert s.outcome is StreamOutcome.WS_GAP
    later = feed_regular(t, mono, 200, 0.1)
    assert t.stats(later).outcome is StreamOutcome.OK  # the hole ages out of the gap window


def test_linked_sequence_and_topics_are_separate():
    t = connected(rule="linked")
    frames = [("a", 10, None), ("b", 100, None), ("a", 11, 10), ("b", 101, 100), ("a", 13, 12)]
    for i, (topic, seq, prev) in enumerate(frames):
        t.frame(i * 0.1, WALL0, WsEvent(kind="data", seq=seq, prev_seq=prev, topic=topic))
    assert t.stats(0.5).seq_gaps == 1


def test_new_connection_restarts_sequences():
    t = connected(rule="contiguous")
    t.frame(0.1, WALL0, WsEvent(kind="data", seq=5, topic="x"))
    t.closed(0.2, 1006, "reset")
    t.connected_now(1.0)
    t.frame(1.1, WALL0, WsEvent(kind="data", seq=900, topic="x"))
    assert t.stats(1.2).seq_gaps == 0


def test_disconnect_reports_close_code_and_reconnect_storm():
    t = connected()
    t.closed(1.0, 1006, "abnormal closure")
    s = t.stats(1.0)
    assert s.outcome is StreamOutcome.WS_DISCONNECTED and "1006" in s.detail
    for i in range(5):
        t.connected_now(2.0 + i * 10)
        t.closed(3.0 + i * 10, 1001, "going away")
    assert t.stats(60.0).outcome is StreamOutcome.WS_RECONNECT_STORM
    assert t.stats(60.0 + 301.0).outcome is StreamOutcome.WS_DISCONNECTED  # storm ages out


def test_planned_shutdown_is_not_a_fault():
    t = connected()
    feed_regular(t, 0.0, 10, 0.1)
    t.frame(1.1, WALL0, WsEvent(kind="server_shutdown"))
    t.closed(1.1, None, "server shutdown notice", planned=True)
    assert t.stats(1.2).outcome is StreamOutcome.OK
    for i in range(10):
        t.closed(2.0 + i, None, "renewal", planned=True)
        t.connected_now(2.5 + i)
    s = t.stats(20.0)
    assert s.recent_reconnects == 0 and s.planned_reconnects == 10


def test_unanswered_ping_is_a_heartbeat_verdict():
    t = connected(heartbeat_timeout_s=10.0)
    feed_regular(t, 0.0, 10, 0.1)
    t.ping_sent(1.0)
    t.frame(1.5, WALL0, DATA)
    assert t.stats(10.9).outcome is not StreamOutcome.WS_HEARTBEAT
    assert t.stats(11.5).outcome is StreamOutcome.WS_HEARTBEAT
    t.pong_received(12.0)
    assert t.stats(12.0).heartbeat_misses == 1


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["data", "pong", "subscribed", "server_shutdown", "close", "connect", "ping"]),
    st.floats(min_value=0.0, max_value=30.0, allow_nan=False),
    st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
), max_size=80))
def test_any_sequence_gives_a_bounded_finite_verdict(steps):
    t = StreamTracker("x", "s", seq_rule="contiguous")
    mono = 0.0
    for kind, dt, seq, ev_time in steps:
        mono += dt
        if kind == "close":
            t.closed(mono, 1006, "x")
        elif kind == "connect":
            t.connected_now(mono)
        elif kind == "ping":
            t.ping_sent(mono)
        else:
            t.frame(mono, WALL0 + mono, WsEvent(kind=kind, seq=seq, event_time_ms=ev_time, topic="t"),
                    offset_ms=ev_time, offset_error_ms=1.0)
        s = t.stats(mono)
        assert s.outcome in StreamOutcome
        for value in (s.silence_s, s.stale_after_s, s.msgs_per_s):
            assert math.isfinite(value) and value >= 0
        for value in (s.lag_ms, s.lag_error_ms, s.gap_p99_ms):
            assert value is None or math.isfinite(value)


def test_close_reason_is_scrubbed_where_it_enters() -> None:
    """Issue 12: an exchange's close reason is untrusted text (escapes, echoed keys) kept and shown later."""
    from cryptomon_tui import redaction

    redaction.add_process_secrets(["ws-secret-key-0123456789"])
    try:
        t = StreamTracker("x", "s")
        t.closed(1.0, 4001, "bad key ws-secret-key-0123456789 \x1b]52;c;eA==\x07\u202e" + "x" * 500)
    finally:
        redaction.use_config(None)
    assert "ws-secret-key-0123456789" not in t.last_close_reason and "\x1b" not in t.last_close_reason
    assert "\u202e" not in t.last_close_reason and len(t.last_close_reason) <= 200
    assert t.closes[-1] == (4001, t.last_close_reason)


def test_a_drip_stays_stale_until_it_lasts_adapt_after_then_is_adopted():
    from cryptomon_tui.streams.tracker import ADAPT_AFTER_S

    t = connected()
    mono = feed_regular(t, 0.0, 200, 0.1)  # 10 msgs/s: threshold is the 3 s floor
    t.stats(mono)
    stale_seen = ok_seen = 0
    while mono < 300.0:  # a 5 s drip for 5 minutes
        for step in range(5):
            verdict = t.stats(mono + step + 0.5).outcome
            stale_seen += verdict is StreamOutcome.WS_STALE
            ok_seen += verdict is StreamOutcome.OK
        mono += 5.0
        t.frame(mono, WALL0 + mono, DATA)
    assert stale_seen >= 100, "a drip does not become normal within minutes"
    assert t.stats(mono).stale_after_s == 3.0
    while mono < 300.0 + ADAPT_AFTER_S + 30.0:  # the drip lasts: it is adopted as the new rhythm
        mono += 5.0
        t.frame(mono, WALL0 + mono, DATA)
        t.stats(mono)
    assert t.stats(mono).stale_after_s >= 15.0
    assert t.stats(mono + 4.0).outcome is StreamOutcome.OK


def test_login_rejection_is_the_auth_verdict_until_a_login_succeeds():
    t = connected()
    t.login_sent(0.1)
    t.frame(0.2, WALL0, WsEvent(kind="subscribed"))  # Deribit's set_heartbeat ack is not the login's answer
    assert t.auth_error is None
    t.frame(0.3, WALL0, WsEvent(kind="error", error_code="60009", message="Login failed.\x1b[2J"))
    s = t.stats(0.3)
    assert s.outcome is StreamOutcome.WS_AUTH and s.detail.startswith("login rejected (auth): 60009 Login failed.")
    assert "\x1b" not in s.detail
    t.closed(0.4, 4001, "login failed")
    t.connecting(1.0)
    t.connected_now(1.1)
    assert t.stats(1.1).outcome is StreamOutcome.WS_AUTH  # still rejected until a login is accepted
    t.login_sent(1.2)
    t.frame(1.3, WALL0, WsEvent(kind="auth_ok"))
    s = t.stats(1.3)
    assert s.outcome is StreamOutcome.OK and s.subscribed and t.logins == 1


def test_an_error_frame_without_a_pending_login_is_not_an_auth_failure():
    t = connected()
    t.frame(0.2, WALL0, WsEvent(kind="error", error_code="60012", message="bad subscribe"))
    assert t.auth_error is None and t.stats(0.2).outcome is not StreamOutcome.WS_AUTH
