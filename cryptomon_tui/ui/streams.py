"""Streams view (key ``w``): is the WebSocket data a bot trades on alive, fresh and complete?

One row per stream: state as a word (OK, STALE, LAG, GAP, DOWN, STORM, HEARTBEAT, CONNECTING), data
messages per second, the current silence against the stream's own stale threshold, the p99 gap, the
event-time lag with its error bound, sequence holes, reconnects, and a sparkline of recent lag (one
scale for the whole column, labelled in the header). Data comes from the daemon's snapshot
(``streams``), refreshed once a second; the UI keeps only the lag samples it drew.
"""

from __future__ import annotations

import functools
from collections import deque
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from cryptomon_tui.kernel.snapshot import StreamView
from cryptomon_tui.kernel.units import format_ms
from cryptomon_tui.ui.present import SPARK_FAIL, SPARK_LEVELS, clean_text

fmt_ms = functools.partial(format_ms, compact=True)

if TYPE_CHECKING:
    from cryptomon_tui.ui.app import CryptomonApp

STATE_WORDS = {
    "ok": "OK",
    "connecting": "CONNECTING",
    "ws_stale": "STALE",
    "ws_lag": "LAG",
    "ws_gap": "GAP",
    "ws_disconnected": "DOWN",
    "ws_reconnect_storm": "STORM",
    "ws_heartbeat": "HEARTBEAT",
    "ws_auth": "AUTH",
}
LEGEND = ("OK fresh  STALE silent past its own p99x3  LAG event time late  GAP skipped updates  "
          "DOWN disconnected  STORM reconnect storm  HEARTBEAT pings unanswered  × no data")
SPARK_POINTS = 12
COLUMNS = (("exchange", "Exchange", 16), ("stream", "Stream", 22), ("state", "State", 10), ("rate", "Msg/s", 6),
           ("silence", "Silence", 12), ("gap", "Gap p99", 8), ("lag", "Lag", 13), ("holes", "Holes", 6),
           ("reconn", "Reconn", 6), ("spark", "Lag trend", SPARK_POINTS))


def stream_cells(item: StreamView, spark: str) -> tuple[str, ...]:
    """One row as text (state as a word, never by colour alone)."""
    outcome = item.outcome or "?"
    lag, err = item.lag_ms, item.lag_error_ms
    lag_text = "-" if lag is None else fmt_ms(lag) + (f" ±{fmt_ms(err)}" if err is not None else " ±?")
    return (
        clean_text(item.exchange, 16),
        clean_text(item.stream, 22),
        STATE_WORDS.get(outcome, clean_text(outcome, 10).upper()),
        f"{item.msgs_per_s:.1f}",
        f"{item.silence_s:.1f}s/{item.stale_after_s:.0f}s",
        fmt_ms(item.gap_p99_ms),
        lag_text,
        str(item.seq_gaps),
        str(item.reconnects),
        spark,
    )


def sparkline(samples: list[float | None], scale_ms: float) -> str:
    """Lag samples on one shared scale; ``×`` where the stream had no fresh data."""
    out = []
    for value in samples[-SPARK_POINTS:]:
        if value is None:
            out.append(SPARK_FAIL)
            continue
        share = min(1.0, max(0.0, value / scale_ms)) if scale_ms > 0 else 0.0
        out.append(SPARK_LEVELS[min(len(SPARK_LEVELS) - 1, int(share * (len(SPARK_LEVELS) - 1) + 0.5))])
    return "".join(out)


class StreamsScreen(Screen[None]):
    BINDINGS = [Binding("escape,backspace,w", "app.pop_screen", "Back", id="streams.back")]

    def __init__(self) -> None:
        super().__init__()
        self._lags: dict[str, deque[float | None]] = {}

    @property
    def cm_app(self) -> CryptomonApp:
        from cryptomon_tui.ui.app import CryptomonApp

        assert isinstance(self.app, CryptomonApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Static("WebSocket streams", id="streams-title", markup=False)
        table: DataTable[str] = DataTable(id="streams-table", cursor_type="row", zebra_stripes=False)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        yield table
        yield Static(LEGEND, id="streams-legend", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_rows()
        self.set_interval(1.0, self.refresh_rows)

    def refresh_rows(self) -> None:
        snap = self.cm_app.bridge.latest
        items = snap.streams if snap is not None else ()
        for item in items:
            key = f"{item.exchange}/{item.stream}"
            ring = self._lags.setdefault(key, deque(maxlen=SPARK_POINTS))
            fresh = item.outcome in ("ok", "ws_lag", "ws_gap")
            ring.append(item.lag_ms if fresh else None)
        values = [abs(v) for ring in self._lags.values() for v in ring if v is not None]
        scale = max([10.0, *values])
        title = self.query_one("#streams-title", Static)
        title.update(f"WebSocket streams ({len(items)}) - lag trend: last {SPARK_POINTS}s, full bar = {fmt_ms(scale)}"
                     if items else "WebSocket streams: none (streams: false, or no stream URL; see config check)")
        table = self.query_one("#streams-table", DataTable)
        keys = []
        for item in items:
            key = f"{item.exchange}/{item.stream}"
            keys.append(key)
            cells = [Text(c) for c in stream_cells(item, sparkline(list(self._lags[key]), scale))]  # never markup
            if key in table.rows:
                for (col, _, _), value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(key, col, value)
            else:
                table.add_row(*cells, key=key)
        for row_key in list(table.rows):
            if row_key.value not in keys:
                table.remove_row(row_key)
