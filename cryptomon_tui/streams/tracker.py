"""Bookkeeping and verdict for one WebSocket stream: no I/O, every time passed in.

Why a separate, pure piece: the verdicts that matter ("connected but silent for 40 s", "lagging
1.2 s behind the exchange", "missed 37 updates") must be exact and testable on an injected clock
and in a backtest, and the probe's I/O loop must stay a thin feeder.

Times: ``mono`` is the monotonic clock in seconds (gaps, silence); ``wall`` is epoch seconds (lag
against the exchange's event time). Every number that comes from a frame is finite-checked by the
adapter's reader; the tracker bounds what it keeps (ring buffers) so a firehose cannot grow it.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field

from cryptomon_tui.exchanges.ws import SeqRule, WsEvent
from cryptomon_tui.kernel.streams import StreamOutcome, StreamStats
from cryptomon_tui.redaction import scrub

GAP_RING = 1024  # inter-message gaps kept for the percentiles (about 17 min at 1 msg/s)
LAG_RING = 256  # recent lag samples (ms)
CLOSE_RING = 16  # recent close codes/reasons
RECONNECT_WINDOW_S = 300.0  # reconnect-storm window (Binance counts attempts per 5 minutes too)
MIN_GAPS_TO_LEARN = 30  # gaps needed before the learnt p99 sets the stale threshold
ADAPT_AFTER_S = 600.0  # a slower rhythm that lasts this long is the stream's new normal (a quiet market)


@dataclass(slots=True)
class CumulativeHistogram:
    """Counts per fixed bucket (seconds; last = above the top bound) and their sum: Prometheus-ready.

    The bounds come from the caller (the engine uses the probe-duration bounds) so every daemon
    shares them and ``histogram_quantile`` works across locations.
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def add(self, seconds: float) -> None:
        if seconds < 0.0:
            seconds = 0.0  # a negative lag is clock error inside its bound: count it as "no lag"
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum_s += seconds


NO_BOUNDS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass(frozen=True, slots=True)
class StreamThresholds:
    """Verdict knobs; defaults suit a public ticker or book stream."""

    stale_floor_s: float = 3.0  # never call a stream stale before this much silence
    stale_factor: float = 3.0  # ... nor before this many times its own p99 gap
    initial_stale_s: float = 10.0  # until enough gaps are learnt (or the spec's floor, if higher)
    lag_ms: float = 1000.0  # median lag over the recent samples above this (beyond its error bound)
    lag_window_s: float = 10.0
    storm_reconnects: int = 4  # unplanned drops within RECONNECT_WINDOW_S that make a storm ...
    stable_s: float = 15.0  # ... unless the current connection has held this long
    heartbeat_timeout_s: float = 10.0  # a ping of ours unanswered this long
    gap_window_s: float = 10.0  # a sequence hole keeps the verdict ws_gap this long
    heartbeat_window_s: float = 15.0  # a heartbeat failure keeps the verdict ws_heartbeat this long


@dataclass(slots=True)
class _SeqState:
    last: int | None = None
    gaps: int = 0
    missed: int = 0


@dataclass(slots=True)
class StreamTracker:
    """State of one stream. Feed it the probe's events; ask ``stats(mono)`` for the verdict."""

    exchange: str
    stream: str
    seq_rule: SeqRule | None = None
    thresholds: StreamThresholds = field(default_factory=StreamThresholds)
    bounds: tuple[float, ...] = NO_BOUNDS  # histogram bucket bounds (s) for gaps and lag
    connected: bool = False
    subscribed: bool = False
    ever_connected: bool = False
    messages: int = 0
    reconnects: int = 0
    planned_reconnects: int = 0
    heartbeat_misses: int = 0
    heartbeat_failing: bool = False
    connect_ms: float | None = None
    subscribe_ms: float | None = None
    first_message_ms: float | None = None
    last_close_code: int | None = None
    last_close_reason: str | None = None
    _gaps: deque[float] = field(default_factory=lambda: deque(maxlen=GAP_RING))
    # Gaps longer than the stale threshold do not teach the threshold at once (a drip or bursts would
    # otherwise become "normal" within a minute); they are held back and adopted only when the slower
    # rhythm has lasted ADAPT_AFTER_S (a market that went quiet for the night).
    _held: deque[float] = field(default_factory=lambda: deque(maxlen=GAP_RING))
    _held_since: float | None = None
    _held_last: float = 0.0
    _threshold: float = 0.0  # stale threshold as of the last stats() (refreshed once per tick)
    _lags: deque[tuple[float, float, float]] = field(default_factory=lambda: deque(maxlen=LAG_RING))
    _arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=4096))
    _reconnect_times: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    closes: deque[tuple[int | None, str]] = field(default_factory=lambda: deque(maxlen=CLOSE_RING))
    _seq: dict[str, _SeqState] = field(default_factory=dict)
    _last_data: float | None = None
    _silence_from: float | None = None
    _connect_started: float | None = None
    _subscribe_sent: float | None = None
    _connected_at: float | None = None
    _ping_sent: float | None = None
    _planned_pending: bool = False
    _stale_floor: float = 0.0
    _seq_gap_times: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    _heartbeat_times: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    _login_pending: bool = False  # a signed user-data stream sent its login; its answer is awaited
    auth_error: str | None = None  # the last login rejection (kept until a login succeeds)
    logins: int = 0
    gap_hist: CumulativeHistogram = field(init=False)
    lag_hist: CumulativeHistogram = field(init=False)

    def __post_init__(self) -> None:
        self._stale_floor = max(self.thresholds.stale_floor_s, 0.0)
        self.gap_hist = CumulativeHistogram(self.bounds)
        self.lag_hist = CumulativeHistogram(self.bounds)

    # -- connection lifecycle -------------------------------------------------------------------
    def connecting(self, mono: float) -> None:
        self._connect_started = mono

    def connected_now(self, mono: float) -> None:
        if self.ever_connected:
            self.reconnects += 1
            if self._planned_pending:
                self.planned_reconnects += 1
        self._planned_pending = False
        self.ever_connected = True
        self.connected = True
        self.subscribed = False
        self.heartbeat_failing = False
        self._ping_sent = None
        self._connected_at = mono
        self._silence_from = mono
        self._last_data = None
        self.first_message_ms = None
        for state in self._seq.values():
            state.last = None  # a new connection starts a new sequence (snapshots resend)
        if self._connect_started is not None:
            self.connect_ms = max(0.0, (mono - self._connect_started) * 1000.0)

    def login_sent(self, mono: float) -> None:
        """A signed user-data stream sent its login frame: the next auth answer or error decides."""
        self._login_pending = True
        self._subscribe_sent = mono

    def subscribe_sent(self, mono: float) -> None:
        self._subscribe_sent = mono

    def subscribed_now(self, mono: float) -> None:
        if self.subscribed:
            return
        self.subscribed = True
        self._silence_from = mono
        if self._subscribe_sent is not None:
            self.subscribe_ms = max(0.0, (mono - self._subscribe_sent) * 1000.0)

    def closed(self, mono: float, code: int | None, reason: str, *, planned: bool = False) -> None:
        """The socket is gone (a close frame, a reset, a refused connect, our own planned renewal)."""
        if self.connected and not planned and not self._planned_pending:
            self._reconnect_times.append(mono)  # an established connection dropped: storm material
        self.connected = False
        self.subscribed = False
        self.last_close_code = code
        reason = scrub(reason[:1000])[:200]  # the exchange's words: secrets and terminal controls go here
        self.last_close_reason = reason
        self.closes.append((code, reason))
        self._planned_pending = planned
        if not self.ever_connected:
            self._silence_from = self._silence_from if self._silence_from is not None else mono

    def planned_shutdown_notice(self) -> None:
        """The exchange announced a disconnect (Binance serverShutdown, OKX 64008): not a fault."""
        self._planned_pending = True

    # -- heartbeats ---------------------------------------------------------------------------
    def ping_sent(self, mono: float) -> None:
        if self._ping_sent is None:
            self._ping_sent = mono

    def pong_received(self, mono: float) -> None:
        self._ping_sent = None
        self.heartbeat_failing = False

    def check_heartbeat(self, mono: float) -> None:
        """A ping of ours unanswered past the timeout counts as one miss."""
        waited = mono - self._ping_sent if self._ping_sent is not None else 0.0
        if self.connected and waited > self.thresholds.heartbeat_timeout_s:
            self._ping_sent = None
            self.heartbeat_missed(mono)

    def heartbeat_missed(self, mono: float | None = None) -> None:
        """The server dropped us for a heartbeat, or a ping of ours went unanswered."""
        self.heartbeat_misses += 1
        self.heartbeat_failing = True
        if mono is not None:
            self._heartbeat_times.append(mono)

    # -- frames -------------------------------------------------------------------------------
    def frame(self, mono: float, wall: float, event: WsEvent, offset_ms: float | None = None,
              offset_error_ms: float | None = None) -> None:
        """One classified frame. ``offset_ms`` is server minus local time from the REST probes."""
        kind = event.kind
        if kind == "data":
            self._data(mono, wall, event, offset_ms, offset_error_ms)
        elif self._login_pending and kind in ("auth_ok", "error"):
            self._login_pending = False
            if kind == "auth_ok":
                self.logins += 1
                self.auth_error = None
                self.subscribed_now(mono)  # a user-data stream's "subscription" is its login
            else:  # the exchange's words, bounded and scrubbed (never the key or the signature we sent)
                code = f"{event.error_code} " if event.error_code else ""
                self.auth_error = scrub(f"login rejected (auth): {code}{event.message or ''}".strip()[:1000])[:200]
        elif kind == "subscribed":
            self.subscribed_now(mono)
        elif kind == "pong":
            self.pong_received(mono)
        elif kind in ("server_shutdown", "notice_reconnect"):
            self.planned_shutdown_notice()

    def _data(self, mono: float, wall: float, event: WsEvent, offset_ms: float | None,
              offset_error_ms: float | None) -> None:
        if not self.subscribed:
            self.subscribed_now(mono)  # some streams (Binance raw /ws/<name>) push without an ack
        self.messages += 1
        if self._last_data is not None:
            gap = max(0.0, mono - self._last_data)
            self.gap_hist.add(gap)
            if self._threshold > 0.0 and gap > self._threshold and len(self._gaps) >= MIN_GAPS_TO_LEARN:
                if self._held_since is None or mono - self._held_last > ADAPT_AFTER_S:
                    self._held.clear()  # a new slow spell (the last one ended long ago)
                    self._held_since = self._last_data
                self._held.append(gap)
                self._held_last = mono
                if mono - self._held_since >= ADAPT_AFTER_S:
                    self._gaps.extend(self._held)  # the slower rhythm has lasted: it is the new normal
                    self._held.clear()
                    self._held_since = None
            else:
                self._gaps.append(gap)
        elif self.first_message_ms is None:
            start = self._silence_from if self._silence_from is not None else mono
            self.first_message_ms = max(0.0, (mono - start) * 1000.0)
        self._last_data = mono
        self._arrivals.append(mono)
        if event.event_time_ms is not None and math.isfinite(event.event_time_ms):
            local_ms = wall * 1000.0 + (offset_ms if offset_ms is not None and math.isfinite(offset_ms) else 0.0)
            lag = local_ms - event.event_time_ms
            if math.isfinite(lag) and abs(lag) < 86_400_000.0:
                error = 1.0 + (abs(offset_error_ms) if offset_error_ms is not None
                               and math.isfinite(offset_error_ms) else 0.0)
                if offset_ms is None:
                    error = math.inf  # no REST offset yet: the lag includes our own clock error
                else:
                    self.lag_hist.add(lag / 1000.0)
                self._lags.append((mono, lag, error))
        if self.seq_rule is not None and event.seq is not None:
            self._sequence(mono, event)

    def _sequence(self, mono: float, event: WsEvent) -> None:
        key = event.topic or ""
        state = self._seq.get(key)
        if state is None:
            if len(self._seq) >= 64:
                return  # a bounded number of topics per stream
            state = self._seq[key] = _SeqState()
        seq = event.seq
        assert seq is not None
        last = state.last
        before = state.gaps
        if last is not None:
            if self.seq_rule == "contiguous":
                if seq > last + 1:
                    state.gaps += 1
                    state.missed += min(seq - last - 1, 1_000_000_000)
                elif seq <= last:
                    state.gaps += 1  # went backwards: a reset or a replay
            elif self.seq_rule == "linked":
                if event.prev_seq is not None and event.prev_seq != last:
                    state.gaps += 1
            elif self.seq_rule == "monotonic" and seq < last:
                state.gaps += 1
        state.last = seq
        if state.gaps > before:
            self._seq_gap_times.append(mono)

    # -- verdict ------------------------------------------------------------------------------
    def stale_after(self, sorted_gaps: list[float] | None = None) -> float:
        """Silence that makes this stream stale: learnt from its own gaps, never below the floor."""
        t = self.thresholds
        if len(self._gaps) < MIN_GAPS_TO_LEARN:
            return max(t.initial_stale_s, self._stale_floor)
        p99 = _quantile(sorted_gaps if sorted_gaps is not None else sorted(self._gaps), 0.99)
        return max(self._stale_floor, t.stale_factor * p99)

    def total_seq_gaps(self) -> int:
        return sum(s.gaps for s in self._seq.values())

    def stats(self, mono: float) -> StreamStats:
        t = self.thresholds
        gaps = sorted(self._gaps)
        p50 = _quantile(gaps, 0.5) * 1000.0 if gaps else None
        p99 = _quantile(gaps, 0.99) * 1000.0 if gaps else None
        gmax = gaps[-1] * 1000.0 if gaps else None
        since = self._last_data if self._last_data is not None else self._silence_from
        silence = max(0.0, mono - since) if since is not None and self.connected else 0.0
        stale_after = self.stale_after(gaps)
        self._threshold = stale_after
        recent = [(lag, err) for at, lag, err in self._lags if mono - at <= t.lag_window_s]
        lag_ms = _quantile(sorted(lag for lag, _ in recent), 0.5) if recent else None
        lag_err = max(err for _, err in recent) if recent else None
        cutoff = mono - RECONNECT_WINDOW_S
        recent_reconnects = sum(1 for at in self._reconnect_times if at >= cutoff)
        window_start = max(mono - 60.0, self._connected_at if self._connected_at is not None else mono)
        span = mono - window_start
        arrivals = sum(1 for at in self._arrivals if at >= window_start)
        rate = arrivals / span if span >= 1.0 else 0.0
        seq_gaps = sum(s.gaps for s in self._seq.values())
        missed = sum(s.missed for s in self._seq.values())
        self.check_heartbeat(mono)
        recent_holes = sum(1 for at in self._seq_gap_times if mono - at <= t.gap_window_s)
        recent_beats = sum(1 for at in self._heartbeat_times if mono - at <= t.heartbeat_window_s)
        stable = self.connected and self._connected_at is not None and mono - self._connected_at >= t.stable_s
        outcome, detail = self._judge(silence, stale_after, lag_ms, lag_err, 0 if stable else recent_reconnects,
                                      recent_holes, recent_beats)
        return StreamStats(
            exchange=self.exchange, stream=self.stream, outcome=outcome, detail=detail,
            connected=self.connected, subscribed=self.subscribed, messages=self.messages,
            msgs_per_s=rate, silence_s=silence, stale_after_s=stale_after,
            gap_p50_ms=p50, gap_p99_ms=p99, gap_max_ms=gmax,
            lag_ms=lag_ms, lag_error_ms=lag_err if lag_err is None or math.isfinite(lag_err) else None,
            seq_gaps=seq_gaps, missed=missed, reconnects=self.reconnects,
            recent_reconnects=recent_reconnects, heartbeat_misses=self.heartbeat_misses,
            connect_ms=self.connect_ms, subscribe_ms=self.subscribe_ms,
            first_message_ms=self.first_message_ms, last_close_code=self.last_close_code,
            last_close_reason=self.last_close_reason, planned_reconnects=self.planned_reconnects,
        )

    def _judge(self, silence: float, stale_after: float, lag_ms: float | None, lag_err: float | None,
               recent_reconnects: int, recent_holes: int, recent_beats: int) -> tuple[StreamOutcome, str]:
        t = self.thresholds
        if self.auth_error is not None:  # the cause of the close that usually follows
            return StreamOutcome.WS_AUTH, self.auth_error
        if (self.heartbeat_failing and self.connected) or recent_beats:
            # the cause of the drops, so it comes before the storm they make
            return StreamOutcome.WS_HEARTBEAT, f"heartbeat failed ({recent_beats or 1} in {t.heartbeat_window_s:.0f}s)"
        if recent_reconnects >= t.storm_reconnects:
            return StreamOutcome.WS_RECONNECT_STORM, f"dropped {recent_reconnects} times in 5 min"
        if not self.connected:
            if not self.ever_connected and not self.closes:
                return StreamOutcome.CONNECTING, "connecting"
            if self._planned_pending:
                return StreamOutcome.OK, "reconnecting after a planned shutdown"
            code = f" (close {self.last_close_code})" if self.last_close_code is not None else ""
            reason = f": {self.last_close_reason}" if self.last_close_reason else ""
            return StreamOutcome.WS_DISCONNECTED, f"disconnected{code}{reason}"
        if silence > stale_after:
            return StreamOutcome.WS_STALE, f"connected, no message for {silence:.0f}s (expected < {stale_after:.1f}s)"
        if recent_holes > 0:
            return StreamOutcome.WS_GAP, f"{recent_holes} sequence gap(s) in {t.gap_window_s:.0f}s"
        if lag_ms is not None and lag_err is not None and math.isfinite(lag_err) and lag_ms - lag_err > t.lag_ms:
            return StreamOutcome.WS_LAG, f"event-time lag {lag_ms:.0f} ms (±{lag_err:.0f} ms)"
        return StreamOutcome.OK, "ok"


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of an already sorted, non-empty list."""
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))
    return values[index]
