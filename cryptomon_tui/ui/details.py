"""Details screens (enter on a row): an exchange's history and recent probes, an incident's timeline.

History comes from the daemon over the control API (``history`` request, see history.py), so a UI
attached over TCP shows the same charts; plots redraw only when new data arrived, on a range change, or
on a theme change, never on the snapshot tick.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static
from textual_plotext import PlotextPlot

from cryptomon_tui.kernel.events import EventType
from cryptomon_tui.kernel.history import HistoryPoint
from cryptomon_tui.kernel.results import Phases
from cryptomon_tui.kernel.snapshot import ExchangeView, IncidentView, ProbeResultView, Snapshot
from cryptomon_tui.kernel.units import format_ms
from cryptomon_tui.ui import present
from cryptomon_tui.ui.bridge import IncidentEventMessage
from cryptomon_tui.ui.history import RANGES, resolution_for
from cryptomon_tui.ui.present import Cell, clean_text, parse_ts
from cryptomon_tui.ui.widgets import cell_content, cells_content

if TYPE_CHECKING:
    from cryptomon_tui.ui.app import CryptomonApp

PROBE_COLUMNS = (("at", "At", 9), ("probe", "Probe", 8), ("outcome", "Outcome", 13), ("lat", "Latency", 8),
                 ("dns", "DNS", 7), ("connect", "Connect", 8), ("tls", "TLS", 7), ("ttfb", "TTFB", 7),
                 ("transfer", "Xfer", 7), ("http", "HTTP", 5), ("error", "Error", 40))
ERROR_CLASSES_SHOWN = 5
RECENT_PROBES = 100


LIVE_RELOAD_S = 20.0
UPTIME_SPAN_S = 86400.0
UPTIME_BUCKET_S = 300.0


def step_xy(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """A bucketed series as steps: each value holds until the next bucket starts (plotext draws
    straight lines between points, which made three minute points look like smooth ramps)."""
    if len(xs) < 2:
        return list(xs), list(ys)
    sx: list[float] = []
    sy: list[float] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        sx.append(x)
        sy.append(y)
        if i + 1 < len(xs):
            sx.append(xs[i + 1])
            sy.append(y)
    return sx, sy


def probe_result_cells(r: ProbeResultView) -> dict[str, Cell]:
    phases = r.phases or Phases()
    outcome = r.outcome or "?"
    at = parse_ts(r.ts)
    error = " ".join(clean_text(x) for x in (r.error_code, r.error_message) if x)
    return {
        "at": Cell(time.strftime("%H:%M:%S", time.gmtime(at)) if at is not None else "-", "dim-text"),
        "probe": Cell(clean_text(r.probe, 8)),
        "outcome": Cell(clean_text(outcome, 13), "status-ok" if outcome == "ok" else "status-down",
                        bold=outcome != "ok"),
        "lat": Cell(format_ms(r.latency_ms, compact=True)),
        "dns": Cell(format_ms(phases.dns_ms, compact=True)),
        "connect": Cell("reused" if phases.reused else format_ms(phases.connect_ms, compact=True)),
        "tls": Cell(format_ms(phases.tls_ms, compact=True)),
        "ttfb": Cell(format_ms(phases.ttfb_ms, compact=True)),
        "transfer": Cell(format_ms(phases.transfer_ms, compact=True)),
        "http": Cell(clean_text(r.http_status or "", 5)),
        "error": Cell(clean_text(error, 300)),
    }


class DetailsScreen(Screen[None]):
    BINDINGS = [Binding("escape,backspace", "app.pop_screen", "Back", id="details.back")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]

    @property
    def cm_app(self) -> CryptomonApp:
        from cryptomon_tui.ui.app import CryptomonApp

        assert isinstance(self.app, CryptomonApp)
        return self.app


class ExchangeDetails(DetailsScreen):
    BINDINGS = [
        *DetailsScreen.BINDINGS,
        Binding("1", "range('15m')", "15m", id="details.15m"),
        Binding("2", "range('1h')", "1h", id="details.1h"),
        Binding("3", "range('24h')", "24h", id="details.24h"),
        Binding("r", "reload", "Reload", id="details.reload"),
    ]

    def __init__(self, exchange: str) -> None:
        super().__init__()
        self.exchange = exchange
        self.range = "15m"
        self.rollups: list[HistoryPoint] = []
        self.history_error: str | None = None
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Static(Content(clean_text(self.exchange)), id="detail-head")
        yield Static(Content(""), id="uptime")
        with Horizontal(classes="plots"):
            yield PlotextPlot(id="latency-plot")
            yield PlotextPlot(id="errors-plot")
        yield DataTable(cursor_type="row", id="probe-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#probe-table", DataTable)
        table.border_title = "Recent probes (newest first) with phases"
        for key, label, width in PROBE_COLUMNS:
            table.add_column(label, width=width, key=key)
        self.app.theme_changed_signal.subscribe(self, lambda _t: self._draw_plots())
        self._draw_head()
        self.action_reload()
        self.load_uptime()
        # live charts: the newest bucket fills in while the screen is open (history is per minute,
        # so more often would redraw the same picture)
        self.set_interval(LIVE_RELOAD_S, self._live_reload, name="details-live")
        table.focus()

    def _live_reload(self) -> None:
        self._draw_head()
        self.action_reload()
        self.load_uptime()

    @work(exclusive=True, group="uptime", exit_on_error=False)
    async def load_uptime(self) -> None:
        """24 h of 5-minute buckets from the daemon for the uptime strip (the charts have their own range)."""
        until = self.cm_app.clock.now()
        try:
            answer = await self.cm_app.bridge.history(self.exchange, until - UPTIME_SPAN_S, until,
                                                      UPTIME_BUCKET_S, recent=0)
            points, note = list(answer.points), answer.note
        except Exception as exc:
            points, note = [], f"unavailable: {type(exc).__name__}"
        width = max(10, self.size.width - 16)
        cells = [Cell("24h uptime ", "dim-text"),
                 *present.uptime_strip([(p.ts, p.attempts, p.errors) for p in points], until - UPTIME_SPAN_S,
                                       until, width),
                 Cell(" now", "dim-text")]
        if not points:
            cells = [Cell(f"24h uptime: {clean_text(note or 'no history yet', 60)}", "dim-text")]
        self.query_one("#uptime", Static).update(cells_content(cells))

    def _exchange(self) -> ExchangeView:
        snap = self.cm_app.bridge.latest
        ex = snap.exchanges.get(self.exchange) if snap is not None else None
        return ex if ex is not None else ExchangeView()

    def _draw_head(self) -> None:
        snap = self.cm_app.bridge.latest
        ex = self._exchange()
        row = present.exchange_row(self.exchange, ex, parse_ts(snap.ts if snap is not None else None))
        cells = [row["name"], Cell(f" ({clean_text(ex.kind, 20)}) "), row["status"],
                 Cell(f"  p50 {row['p50'].text}  p99 {row['p99'].text}  errors {row['err'].text}  "
                      f"clock {row['clock'].text}  rate limit "), row["rl"], Cell("  breaker "), row["breaker"],
                 Cell(f"  {present.interval_text(ex)}", "dim-text"),
                 Cell(f"   range {self.range} (1/2/3)", "dim-text")]
        self.query_one("#detail-head", Static).update(cells_content(cells))

    def action_range(self, name: str) -> None:
        if name in RANGES:
            self.range = name
            self._draw_head()
            self.action_reload()

    def action_reload(self) -> None:
        self.load_history(self.range)

    @work(exclusive=True, group="history", exit_on_error=False)
    async def load_history(self, range_name: str) -> None:
        """Ask the daemon (control API ``history``): works the same over a socket or TCP from anywhere."""
        until = self.cm_app.clock.now()
        span = RANGES[range_name]
        try:
            answer = await self.cm_app.bridge.history(
                self.exchange, until - span, until, resolution_for(span), recent=RECENT_PROBES
            )
            rollups, recent, error = list(answer.points), list(answer.recent), answer.note
        except Exception as exc:  # not connected, refused, malformed: shown in the chart, never a crash
            rollups, recent, error = [], [], f"history unavailable: {type(exc).__name__}: {exc}"
        self._loaded(rollups, recent, error)

    def _loaded(self, rollups: list[HistoryPoint], recent: list[ProbeResultView], error: str | None) -> None:
        self.loads += 1
        self.rollups = rollups
        self.history_error = error
        self._draw_plots()
        rows = list(recent)
        if not rows:  # no store: at least the last result of each probe from the live snapshot
            rows = [p.last for p in self._exchange().probes.values() if p.last is not None]
        table = self.query_one("#probe-table", DataTable)
        table.clear()
        for i, r in enumerate(rows):
            cells = probe_result_cells(r)
            table.add_row(*(cell_content(cells[c]) for c, _, _ in PROBE_COLUMNS), key=str(i))

    def _draw_plots(self) -> None:
        lat = self.query_one("#latency-plot", PlotextPlot)
        err = self.query_one("#errors-plot", PlotextPlot)
        lat.border_title = f"Latency percentiles, {self.range} (ms)"
        err.border_title = f"Errors by class per bucket, {self.range}"
        for plot in (lat, err):
            plot.plt.clear_data()
            plot.plt.clear_figure()
        if not self.rollups:
            note = clean_text(self.history_error or "no history in this range yet", 80)
            for plot in (lat, err):
                plot.plt.title(note)
            lat.refresh()
            err.refresh()
            return
        origin = self.rollups[-1].ts
        xs = [(r.ts - origin) / 60.0 for r in self.rollups]
        narrow = self.size.width < 120
        for attr, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
            pts = [(x, float(v)) for x, r in zip(xs, self.rollups, strict=True) if (v := getattr(r, attr)) is not None]
            if pts:
                # minute buckets are steps, not ramps between three points
                sx, sy = step_xy([p[0] for p in pts], [p[1] for p in pts])
                lat.plt.plot(sx, sy, label=label)
        lat.plt.xlabel("minutes ago")
        lat.plt.ylabel("ms")
        totals: dict[str, int] = {}
        for r in self.rollups:
            for k, v in r.outcomes.items():
                if k != "ok":
                    totals[k] = totals.get(k, 0) + v
        classes = sorted(totals, key=lambda k: -totals[k])[:ERROR_CLASSES_SHOWN]
        if classes:
            for cls in classes:
                sx, sy = step_xy(xs, [float(r.outcomes.get(cls, 0)) for r in self.rollups])
                err.plt.plot(sx, sy, label=cls[:16])
        else:
            sx, sy = step_xy(xs, [0.0 for _ in xs])
            err.plt.plot(sx, sy, label="no errors")
        err.plt.xlabel("minutes ago")
        err.plt.ylabel("errors")
        for plot in (lat, err):
            if narrow:  # 80x24: fewer ticks, so labels do not run into each other
                plot.plt.xfrequency(3)
                plot.plt.yfrequency(3)
        lat.refresh()
        err.refresh()


TIMELINE_COLUMNS = (("at", "At (UTC)", 9), ("kind", "What", 16), ("text", "Detail", 90))


class IncidentDetails(DetailsScreen):
    """Timeline with notes, analyses and notifications; updates live on events for this incident."""

    BINDINGS = [
        *DetailsScreen.BINDINGS,
        Binding("x", "analyse", "Analyse", id="details.analyse"),
        Binding("a", "acknowledge", "Ack", id="details.acknowledge"),
        Binding("s", "silence", "Silence", id="details.silence"),
    ]

    def __init__(self, incident_id: str, analysis: present.ShownAnalysis | None = None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.analysis = analysis
        self.timeline_len = -1

    def compose(self) -> ComposeResult:
        yield Static(Content(self.incident_id), id="detail-head")
        yield Static(Content(""), id="detail-body")
        yield DataTable(cursor_type="row", id="timeline")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#timeline", DataTable)
        table.border_title = "Timeline"
        for key, label, width in TIMELINE_COLUMNS:
            table.add_column(label, width=width, key=key)
        self.cm_app.bridge.add_listener(self)
        self.set_interval(1.0, self.refresh_view, name="incident-refresh")
        self.refresh_view()
        table.focus()

    def on_unmount(self) -> None:
        self.cm_app.bridge.remove_listener(self)

    def incident(self) -> IncidentView | None:
        for inc in self.cm_app.dashboard.incidents():
            if inc.id == self.incident_id:
                return inc
        return None

    def on_incident_event_message(self, message: IncidentEventMessage) -> None:
        if message.event.incident.id == self.incident_id:
            if message.event.event == EventType.ANALYSIS_READY:
                self.analysis = present.normalize_analysis(message.event.detail)
            self.refresh_view()

    def refresh_view(self) -> None:
        inc = self.incident()
        if inc is None:
            self.query_one("#detail-head", Static).update(Content(f"{self.incident_id}: no longer in the snapshot"))
            return
        snap = self.cm_app.bridge.latest or Snapshot()
        now = parse_ts(snap.ts)
        row = present.incident_row(inc, now, snap.notify)
        head = [row["sev"], Cell(" "), row["state"], Cell(f"  {clean_text(inc.id)}  "), row["where"],
                Cell(f"  age {row['age'].text}  rule {clean_text(inc.rule, 30)}")]
        self.query_one("#detail-head", Static).update(cells_content(head))
        lines: list[tuple[str, str]] = [("Summary", clean_text(inc.summary, 500))]
        if inc.last_error:
            lines.append(("Last error", clean_text(inc.last_error, 500)))
        if inc.acknowledged_by:
            note = f" — {clean_text(inc.ack_note, 200)}" if inc.ack_note else ""
            lines.append(("Acknowledged", f"{clean_text(inc.acknowledged_by, 60)}{note}"))
        if inc.silenced_by:
            lines.append(("Silenced", f"{clean_text(inc.silenced_by, 30)} for {row['silenced'].text}"))
        lines.append(("Notifications", row["notify"].text))
        if (stream_line := _stream_evidence(inc, snap)) is not None:
            lines.append(("Stream now", stream_line))
        analysis = self.analysis or present.incident_analysis(inc)
        if analysis is not None:
            lines.extend((f"Analysis · {k}", v) for k, v in present.analysis_lines(analysis)[:6])
        else:
            lines.append(("Analysis", "none yet: press x"))
        from cryptomon_tui.ui.modals import _lines_content

        self.query_one("#detail-body", Static).update(_lines_content(lines))
        timeline = inc.timeline
        if len(timeline) != self.timeline_len:
            self.timeline_len = len(timeline)
            table = self.query_one("#timeline", DataTable)
            table.clear()
            for i, entry in enumerate(timeline):
                ts = parse_ts(entry.ts)
                kind = entry.kind
                tone = "status-down" if "fail" in kind else ("accent" if kind in ("analysis", "note") else "")
                at = time.strftime("%H:%M:%S", time.gmtime(ts)) if ts is not None else "-"
                table.add_row(
                    Content.styled(at, "$dim-text"),
                    cell_content(Cell(clean_text(kind, 16), tone)),
                    Content(clean_text(entry.text, 500)),
                    key=str(i),
                )

    def _dashboard_action(self, name: str) -> None:
        dash = self.cm_app.dashboard
        dash.query_one("#incidents", DataTable).focus()
        from cryptomon_tui.ui.widgets import KeyedTable

        dash.query_one("#incidents", KeyedTable).select_key(self.incident_id)
        getattr(dash, f"action_{name}")()

    def action_analyse(self) -> None:
        self._dashboard_action("analyse")

    def action_acknowledge(self) -> None:
        self._dashboard_action("acknowledge")

    def action_silence(self) -> None:
        self._dashboard_action("silence")


def _stream_evidence(inc: IncidentView, snap: Snapshot) -> str | None:
    """A stream incident's stream as the engine sees it now (state, silence, lag, holes, reconnects)."""
    name = inc.labels.get("stream")
    if not name:
        return None
    from cryptomon_tui.ui.streams import stream_cells

    for item in snap.streams:
        if item.stream == name and item.exchange == inc.exchange:
            _, _, state, rate, silence, gap, lag, holes, reconn, _ = stream_cells(item, "")
            return (f"{state}  {rate} msg/s  silence {silence}  gap p99 {gap}  lag {lag}  holes {holes}  "
                    f"reconnects {reconn}")
    return "not watched any more"
