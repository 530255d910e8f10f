"""The dashboard: exchanges, incidents, errors and the event feed, with every key flow.

One timer per screen pulls the latest snapshot (skipped when ``seq`` is unchanged) and updates
only the cells that changed; incident events arrive as messages and update the incident rows at
once (so a colleague's acknowledgement shows before the next snapshot). Commands run in async
workers; failures are shown with ``notify(markup=False)``.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.events import Key, Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Log, Static

from cryptomon_tui.kernel.events import EventType
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
from cryptomon_tui.kernel.snapshot import IncidentView, SilenceView, Snapshot
from cryptomon_tui.kernel.units import format_duration
from cryptomon_tui.ui import present
from cryptomon_tui.ui.bridge import ConnectionChanged, IncidentEventMessage
from cryptomon_tui.ui.modals import AckModal, SilenceModal, SilenceRequest, SilencesModal, TextModal
from cryptomon_tui.ui.present import Cell, clean_text, parse_ts
from cryptomon_tui.ui.widgets import KeyedTable, cells_content

if TYPE_CHECKING:
    from cryptomon_tui.ui.app import CryptomonApp

MIN_SIZE = (60, 16)
WIDE_AT = 140
SIDE_BY_SIDE_AT = 160  # exchanges and incidents side by side: half the screen was empty at 200 columns
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
EVENT_LOG_LINES = 500
EVENT_SETTLE_S = 0.2
ROWS_PER_TICK_S = 50  # exchange + probe rows redrawn per second before the tick slows down
MAX_TICK_S = 3.0
USER_MOVED_HOLD_S = 30.0  # a new critical incident scrolls into view unless the user moved the cursor this recently
NOTICE_S = {"information": 5.0, "warning": 8.0, "error": 12.0}
CURSOR_KEYS = frozenset({"up", "down", "pageup", "pagedown", "home", "end", "j", "k", "g", "G"})
CHROME_ROWS = 4  # status, verdict, notice and footer lines around the panes
UPTIME_EVERY_S = 300.0  # the 24 h strips change per 5 minutes at most
UPTIME_SPAN_S = 86400.0
UPTIME_WIDTH = 12  # one character per 2 hours
NO_SNAPSHOT = Snapshot()  # what is drawn before the first snapshot arrives: nothing


class DashboardScreen(Screen[None]):
    BINDINGS = [
        # footer order = importance; at 80 columns the footer shows these short labels up to `q`
        Binding("x", "analyse", "Analyse", id="analyse",
                tooltip="Analyse the selected incident (root cause, action)"),
        Binding("a", "acknowledge", "Ack", id="acknowledge", tooltip="Acknowledge the selected incident"),
        Binding("s", "silence", "Silence", id="silence",
                tooltip="Silence the incident / exchange (comment required)"),
        Binding("u", "unsilence", "Unsilence", id="unsilence", show=False,
                tooltip="Remove the selected incident's silence"),
        Binding("S", "silences", "Silences list", id="silences", show=False),
        Binding("m", "summary", "Sum", id="summary", tooltip="Summary of all open incidents"),
        Binding("p", "pause", "Pause/resume", id="pause", show=False,
                tooltip="Pause / resume probing the selected exchange"),
        Binding("f", "freeze", "Freeze", id="freeze", tooltip="Freeze the view (probing and alerting go on)"),
        Binding("slash", "filter", "Filter", id="filter", tooltip="Filter rows by text (esc clears)"),
        Binding("o", "sort", "Sort", id="sort", tooltip="Cycle the exchange sort: name, status, p99, errors"),
        Binding("e", "maximize", "Maximize", id="maximize", show=False),
        Binding("escape", "clear", "Clear filter", id="clear", show=False),
        Binding("j", "cursor_down", "Down", id="down", show=False),
        Binding("k", "cursor_up", "Up", id="up", show=False),
    ]

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE_AT, "-wide"), (SIDE_BY_SIDE_AT, "-xwide")]

    def __init__(self) -> None:
        super().__init__()
        self.shown_seq: int | None = None
        self.frozen = False
        self.frozen_at: float | None = None
        self.filter_text = ""
        self.sort_mode = present.SORT_MODES[0]
        self.snapshot: Snapshot | None = None
        self.received_at: float | None = None  # clock time the shown snapshot arrived
        self.event_incidents: dict[str, IncidentView] = {}  # newer than the snapshot's, from events
        self.analyses: dict[str, present.ShownAnalysis] = {}
        self.pending_analysis: set[str] = set()
        self.busy: dict[str, str] = {}  # worker label -> text for the spinner line
        self.connection = "connecting"
        self._tick: Timer | None = None
        self._age_timer: Timer | None = None
        self._spin_timer: Timer | None = None
        self._spin_i = 0
        self._event_timer: Timer | None = None
        self._incidents_dirty = False
        # event-log lines not yet written: written in one batch per burst of events, and only while
        # the log is on screen (a Log grows its virtual size per write, and each growth is a layout pass)
        self._pending_lines: deque[str] = deque(maxlen=EVENT_LOG_LINES)
        self._status_shown: tuple[Cell, ...] | None = None
        self._error_hold = present.ErrorWindowHold()  # Tries/Err% redrawn every few s, new errors at once
        self._binding_state: tuple[bool, bool, bool] | None = None
        self.renders = 0
        self._seen_incidents: set[str] | None = None
        self.user_moved_at: float | None = None  # clock time of the last cursor key in the incident pane
        self.notices: list[tuple[str, str]] = []  # (severity, text) shown on the notice line, newest last
        self._notice_timer: Timer | None = None
        self._verdict_shown: tuple[Cell, ...] | None = None
        self.uptime: dict[str, Cell] = {}  # exchange -> 24 h strip, from the daemon's history

    @property
    def cm_app(self) -> CryptomonApp:
        from cryptomon_tui.ui.app import CryptomonApp

        assert isinstance(self.app, CryptomonApp)
        return self.app

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(Content("cryptomon: connecting…"), id="status")
        yield Static(Content(""), id="verdict")
        yield Static(Content(""), id="notice")
        yield Static("", id="busy")
        with Vertical(id="main"):
            yield KeyedTable(present.EXCHANGE_COLUMNS, id="exchanges")
            with Horizontal(id="lower"):
                yield KeyedTable(present.INCIDENT_COLUMNS, id="incidents")
                with Vertical(id="side"):
                    yield KeyedTable(present.ERROR_COLUMNS, id="errors")
                    yield Log(max_lines=EVENT_LOG_LINES, id="events", auto_scroll=True)
        yield Input(placeholder="filter: exchange, probe, state, text (enter keeps, esc clears)", id="filter")
        yield Static(Content(""), id="too-small")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#exchanges", KeyedTable).border_title = "Exchanges"
        self.query_one("#incidents", KeyedTable).border_title = "Incidents"
        self.query_one("#errors", KeyedTable).border_title = "Errors (exchange × probe, failing only)"
        self.query_one("#events", Log).border_title = "Events"
        self.query_one("#filter", Input).cursor_blink = False
        self.query_one("#busy", Static).display = False
        self.cm_app.bridge.add_listener(self)
        self.tick_interval = 1 / self.cm_app.refresh_hz
        self._tick = self.set_interval(self.tick_interval, self.render_latest, name="snapshot-tick")
        self._check_size(self.size.width, self.size.height)
        self.set_interval(UPTIME_EVERY_S, self.load_uptime, name="uptime-strips")
        self.set_timer(2.0, self.load_uptime, name="uptime-first")
        self.query_one("#exchanges", KeyedTable).focus()
        self.render_latest()

    def on_unmount(self) -> None:
        self.cm_app.bridge.remove_listener(self)

    def on_resize(self, event: Resize) -> None:
        self._check_size(event.size.width, event.size.height)
        if self.snapshot is not None:
            self.call_after_refresh(self._size_panes)
            # column sets follow the width: cells sized to the columns (sparklines) and the
            # latency header are computed again once the tables have their new size
            self.call_after_refresh(self.redraw)
            if not self.uptime:
                self.call_after_refresh(self.load_uptime)
        if self._pending_lines:  # the event log may have just become visible (breakpoint styles apply later)
            self.call_after_refresh(self._flush_event_lines)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#too-small", Static).update(
                Content(f"terminal too small: {width}x{height}, cryptomon needs at least {MIN_SIZE[0]}x{MIN_SIZE[1]}")
            )

    # ------------------------------------------------------------------ rendering
    def render_latest(self) -> None:
        """Timer tick: draw the newest snapshot if there is one we have not shown."""
        if self.frozen:
            return
        snap = self.cm_app.bridge.latest
        if snap is None or snap.seq == self.shown_seq:
            return
        self.shown_seq = snap.seq
        self.snapshot = snap
        self.received_at = self.cm_app.clock.now()
        self._forget_stale_event_incidents(snap)
        self.redraw()

    def redraw(self) -> None:
        snap = self.snapshot
        if snap is None:
            return
        self.renders += 1
        self._adapt_tick(snap)
        now = parse_ts(snap.ts)
        with self.app.batch_update():
            self._draw_status()
            self._draw_verdict()
            exchanges = snap.exchanges
            order = [n for n in present.sorted_exchanges(exchanges, self.sort_mode)
                     if self._match(n, exchanges[n].status, exchanges[n].kind)]
            table = self.query_one("#exchanges", KeyedTable)
            spark_width = max(4, table.column_width("spark"))
            scale = present.view_spark_scale({n: exchanges[n] for n in order}, spark_width)
            table.set_label("spark", present.spark_label(scale, present.spark_window_s(exchanges, spark_width),
                                                         spark_width))
            table.show([(name, {**present.exchange_row(name, exchanges[name], now, spark_width, scale),
                                "uptime": self.uptime.get(name, present.Cell("-", "dim-text"))})
                        for name in order])
            self._draw_incidents()
            rows = present.error_rows(snap, present.sorted_exchanges(exchanges, self.sort_mode),
                                      hold=self._error_hold)
            self.query_one("#errors", KeyedTable).show(
                [(key, cells) for key, cells in rows if self._match(key, cells["code"].text, cells["message"].text,
                                                                    cells["classes"].text)]
            )

    def _draw_incidents(self) -> None:
        snap = self.snapshot or NO_SNAPSHOT
        now = parse_ts(snap.ts)
        channels = snap.notify
        every = present.incident_order(self.incidents())
        incidents = [
            i for i in every
            if self._match(i.id, str(i.exchange), str(i.probe), i.state, i.severity, i.rule, i.summary)
        ]
        table = self.query_one("#incidents", KeyedTable)
        before = table.keys
        table.show([(i.id, present.incident_row(i, now, channels)) for i in incidents])
        open_n = sum(1 for i in every if present.is_open(i))
        table.border_title = f"Incidents ({open_n} open)" if open_n else "Incidents"
        self._bring_new_critical(incidents)
        if table.keys != before:
            self._maybe_refresh_bindings()
            self._size_panes()
        self._count_hidden()

    @work(exclusive=True, group="uptime", exit_on_error=False)
    async def load_uptime(self) -> None:
        """24 h strips per exchange (shown at >= 120 columns), from the daemon's history API; only
        when the column is on screen, at most every 5 minutes."""
        table = self.query_one("#exchanges", KeyedTable)
        if not table.column_width("uptime"):
            return
        until = self.cm_app.clock.now()
        for name in list((self.snapshot or NO_SNAPSHOT).exchanges)[:200]:
            try:
                answer = await self.cm_app.bridge.history(name, until - UPTIME_SPAN_S, until, UPTIME_SPAN_S / 288)
            except Exception:
                continue  # no store, not connected: the column keeps "-"
            points = [(p.ts, p.attempts, p.errors) for p in answer.points]
            self.uptime[name] = present.strip_cell(
                present.uptime_strip(points, until - UPTIME_SPAN_S, until, UPTIME_WIDTH))
        if self.snapshot is not None and not self.frozen:
            self.redraw()

    def _bring_new_critical(self, incidents: list[IncidentView]) -> None:
        """Unless the user moved the incident cursor in the last 30 s, the cursor rests on the top
        row, the worst open incident: a new critical one (it sorts to the top) comes into view, and
        a selected incident that resolves does not drag the cursor (and the keys) to the bottom.
        A user who is reading a row keeps it."""
        ids = {i.id for i in incidents}
        seen, self._seen_incidents = self._seen_incidents, ids
        moved = self.user_moved_at
        if moved is not None and self.cm_app.clock.now() - moved < USER_MOVED_HOLD_S:
            return
        table = self.query_one("#incidents", KeyedTable)
        keys = table.keys
        if not keys or table.selected_key == keys[0]:
            return
        new_critical = seen is not None and any(
            i.id not in seen and present.is_open(i) and i.severity == "critical"
            for i in incidents)
        selected = self.selected_incident()
        if new_critical or moved is None or selected is None or not present.is_open(selected):
            table.select_key(keys[0])

    def _count_hidden(self) -> None:
        """"+N more" on the incident pane's border when rows are out of view."""
        table = self.query_one("#incidents", KeyedTable)
        height = table.scrollable_content_region.height - (table.header_height if table.show_header else 0)
        rows = table.row_count
        if height <= 0 or rows <= height:
            text = ""
        else:
            top = int(table.scroll_y)
            above, below = top, max(0, rows - top - height)
            parts = [f"+{n} {w}" for n, w in ((above, "above"), (below, "more")) if n]
            text = " ".join(parts)
        if table.border_subtitle != text:
            table.border_subtitle = text

    def _size_panes(self) -> None:
        """At 80x24 (panes stacked) the incident pane takes the rows its incidents need first; the
        exchange table shrinks (and scrolls) before an incident goes out of view."""
        if not self.has_class("-narrow"):
            return
        table = self.query_one("#incidents", KeyedTable)
        exchanges = self.query_one("#exchanges", KeyedTable)
        free = self.size.height - CHROME_ROWS - (1 if self.query_one("#busy", Static).display else 0)
        inc_need = max(4, table.row_count + 3)
        ex_need = exchanges.row_count + 3
        ex_h = max(5, min(ex_need, free - inc_need))
        if exchanges.styles.max_height is None or exchanges.styles.max_height.value != ex_h:
            exchanges.styles.max_height = ex_h
        inc_h = max(4, min(inc_need, free - ex_h))
        if table.styles.height is None or table.styles.height.value != inc_h:
            table.styles.height = inc_h
        self.call_after_refresh(self._count_hidden)

    def on_key(self, event: Key) -> None:
        focused = self.focused
        if event.key in CURSOR_KEYS and isinstance(focused, KeyedTable) and focused.id == "incidents":
            self.user_moved_at = self.cm_app.clock.now()

    def _draw_verdict(self) -> None:
        cells = tuple(present.verdict_line(self.snapshot or NO_SNAPSHOT, self.incidents()))
        if cells != self._verdict_shown:
            self._verdict_shown = cells
            widget = self.query_one("#verdict", Static)
            worst = present.worst_incident(self.incidents())
            widget.set_class(worst is not None and worst.severity in ("critical", "error"), "-bad")
            widget.update(cells_content(cells), layout=False)

    # ------------------------------------------------------------------ notices (instead of toasts)
    def show_notice(self, text: str, severity: str = "information", title: str = "",
                    timeout: float | None = None) -> None:
        """One line under the verdict: toasts would cover the Rate limit and Breaker columns at 80x24."""
        line = clean_text(f"{title}: {text}" if title else text, 400)
        self.notices.append((severity, line))
        del self.notices[:-50]
        tone = {"error": "status-down", "warning": "status-degraded"}.get(severity, "")
        mark = {"error": "! ", "warning": "! "}.get(severity, "· ")
        widget = self.query_one("#notice", Static)
        widget.update(Content.assemble(Content.styled(mark + line, f"${tone}" if tone else "")), layout=False)
        if self._notice_timer is not None:
            self._notice_timer.stop()
        wait = timeout if timeout is not None else NOTICE_S.get(severity, 5.0)
        self._notice_timer = self.set_timer(wait, self._clear_notice, name="notice-clear")

    def _clear_notice(self) -> None:
        self._notice_timer = None
        self.query_one("#notice", Static).update(Content(""), layout=False)

    def _events_settled(self) -> None:
        self._event_timer = None
        self._flush_event_lines()
        if self._incidents_dirty and not self.frozen and self.snapshot is not None:
            self._incidents_dirty = False
            self._draw_incidents()
            self._draw_verdict()

    def _flush_event_lines(self) -> None:
        """Write the pending event lines in one go, if the log is shown (narrow layouts hide it)."""
        if not self._pending_lines:
            return
        log = self.query_one("#events", Log)
        if not log.display:
            return
        log.write_lines(list(self._pending_lines))
        self._pending_lines.clear()

    def _adapt_tick(self, snap: Snapshot) -> None:
        """Big tables cost UI CPU on every redraw (Textual re-renders a DataTable's visible cells
        when any cell changes): above ROWS_PER_TICK_S rows a second, redraw less often. Incident
        events still update the incident pane at once; probing is not affected."""
        exchanges = snap.exchanges
        rows = len(exchanges) + sum(len(e.probes) for e in exchanges.values())
        wanted = max(1 / self.cm_app.refresh_hz, min(MAX_TICK_S, rows / ROWS_PER_TICK_S))
        if abs(wanted - self.tick_interval) > 0.05:
            self.tick_interval = wanted
            if self._tick is not None:
                self._tick.stop()
            self._tick = self.set_interval(wanted, self.render_latest, name="snapshot-tick")

    def _match(self, *texts: str) -> bool:
        return not self.filter_text or any(present.matches_filter(t, self.filter_text) for t in texts)

    def _draw_status(self) -> None:
        cells: list[Cell] = [Cell("cryptomon ", "primary", bold=True)]
        self.connection = self.cm_app.bridge.state
        if self.connection != "connected":
            cells.append(Cell(f"[{self.connection.upper()}] ", "status-down", bold=True))
        if self.frozen:
            age = None
            if self.received_at is not None:
                age = self.cm_app.clock.now() - self.received_at
            cells.append(Cell(f"FROZEN data age {present.fmt_age(age)} (probing goes on) ", "status-degraded",
                              bold=True))
        if self.snapshot is not None:
            cells.extend(present.status_line(self.snapshot))
        if self.filter_text:
            cells.append(Cell(f"  filter: {clean_text(self.filter_text, 30)}", "accent"))
        if self.sort_mode != present.SORT_MODES[0]:
            cells.append(Cell(f"  sort: {self.sort_mode}", "dim-text"))
        shown = tuple(cells)
        if shown != self._status_shown:  # same text and tones: no repaint
            self._status_shown = shown
            self.query_one("#status", Static).update(cells_content(cells), layout=False)  # 1 row, fixed height

    def incidents(self) -> list[IncidentView]:
        """Snapshot incidents, with newer versions from events laid over them."""
        out = {i.id: i for i in (self.snapshot or NO_SNAPSHOT).incidents}
        for ident, inc in self.event_incidents.items():
            out[ident] = inc
        return list(out.values())

    def _forget_stale_event_incidents(self, snap: Snapshot) -> None:
        by_id = {i.id: i for i in snap.incidents}
        for ident in list(self.event_incidents):
            newer = by_id.get(ident)
            if newer is None:
                continue
            mine = parse_ts(self.event_incidents[ident].updated_at) or 0.0
            theirs = parse_ts(newer.updated_at) or 0.0
            if theirs >= mine:
                del self.event_incidents[ident]

    # ------------------------------------------------------------------ events from the engine
    def on_incident_event_message(self, message: IncidentEventMessage) -> None:
        ev = message.event
        inc = ev.incident
        # every event carries the full incident; one without an id (a hostile frame) only goes to the log
        full = bool(inc.id)
        ident = inc.id or "?"
        kind = ev.event or "?"
        line = f"{clean_text(ev.ts, 24)[11:19]} {clean_text(kind, 20):<14} {clean_text(ident, 16)} " \
               f"{clean_text(inc.exchange or '', 12)} {clean_text(inc.summary, 160)}"
        if ev.actor:
            line += f" (by {clean_text(ev.actor, 40)})"
        self._pending_lines.append(line)
        if full:  # show it now rather than at the next snapshot
            self.event_incidents[ident] = inc
        if kind == EventType.ANALYSIS_READY:
            analysis = present.normalize_analysis(ev.detail)
            if analysis is not None:
                self.analyses[ident] = analysis
        elif kind in ("opened", "reopened") and inc.severity in ("error", "critical"):
            self.notify(f"{ident}: {clean_text(inc.summary, 200)}", title="incident opened",
                        severity="error", markup=False)
        elif kind == EventType.NOTIFICATION_FAILED:
            why = " ".join(clean_text(v, 200) for k, v in ev.detail.items()
                           if k in ("channel", "reason", "error") and v)
            self.notify(f"{ident}: {why or 'see the daemon log'}", title="notification failed", severity="warning",
                        markup=False)
        if full:
            self._incidents_dirty = True
        if self._event_timer is None:
            # a burst of events redraws the incident pane and writes the log once, 0.2 s after the first of them
            self._event_timer = self.set_timer(EVENT_SETTLE_S, self._events_settled, name="events-settled")

    def on_connection_changed(self, message: ConnectionChanged) -> None:
        self.connection = message.state
        if message.detail:
            self.notify(clean_text(message.detail, 300), title="daemon connection", severity="error", markup=False)
        if self.snapshot is not None:
            self._draw_status()

    # ------------------------------------------------------------------ selection
    def selected_incident(self) -> IncidentView | None:
        key = self.query_one("#incidents", KeyedTable).selected_key
        if key is None:
            return None
        for inc in self.incidents():
            if inc.id == key:
                return inc
        return None

    def selected_exchange(self) -> str | None:
        focused = self.focused
        if isinstance(focused, KeyedTable) and focused.id == "incidents":
            inc = self.selected_incident()
            if inc is not None and inc.exchange:
                return inc.exchange
        if isinstance(focused, KeyedTable) and focused.id == "errors":
            key = focused.selected_key
            if key:
                return key.split("/", 1)[0]
        return self.query_one("#exchanges", KeyedTable).selected_key

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.is_mounted:
            return True
        if action in ("analyse", "acknowledge"):
            return True if self.selected_incident() is not None else None
        if action == "unsilence":
            inc = self.selected_incident()
            return True if inc is not None and inc.silenced_by else None
        if action == "pause":
            return True if self.selected_exchange() is not None else None
        return True

    @on(DataTable.RowHighlighted)
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._maybe_refresh_bindings()
        if event.data_table.id == "incidents":
            self.call_after_refresh(self._count_hidden)

    def _maybe_refresh_bindings(self) -> None:
        """The footer recomposes on every refresh_bindings (costly): only when what check_action
        looks at has changed, not on every row rebuild of a live table."""
        inc = self.selected_incident()
        state = (inc is not None, bool(inc and inc.silenced_by), self.selected_exchange() is not None)
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        table = event.data_table
        key = None if event.row_key.value is None else str(event.row_key.value)
        if key is None or self.snapshot is None:
            return
        from cryptomon_tui.ui.details import ExchangeDetails, IncidentDetails

        if table.id == "incidents":
            inc = next((i for i in self.incidents() if i.id == key), None)
            if inc is not None:
                self.app.push_screen(IncidentDetails(key, self.analyses.get(key)))
        else:
            exchange = key.split("/", 1)[0]
            if exchange in self.snapshot.exchanges:
                self.app.push_screen(ExchangeDetails(exchange))

    # ------------------------------------------------------------------ busy spinner
    def _busy(self, label: str, text: str | None) -> None:
        if text is None:
            self.busy.pop(label, None)
        else:
            self.busy[label] = text
        widget = self.query_one("#busy", Static)
        if self.busy:
            widget.display = True
            self._spin()
            if self._spin_timer is None:
                self._spin_timer = self.set_interval(0.125, self._spin, name="spinner")
        else:
            widget.display = False
            if self._spin_timer is not None:
                self._spin_timer.stop()
                self._spin_timer = None

    def _spin(self) -> None:
        self._spin_i = (self._spin_i + 1) % len(SPINNER)
        text = " · ".join(self.busy.values())
        self.query_one("#busy", Static).update(Content.styled(f"{SPINNER[self._spin_i]} {text}", "$accent"))

    def _fail(self, what: str, exc: BaseException) -> None:
        self.notify(clean_text(str(exc) or type(exc).__name__, 500), title=f"{what} failed", severity="error",
                    markup=False)

    # ------------------------------------------------------------------ actions
    def action_analyse(self) -> None:
        self._user_acts()
        inc = self.selected_incident()
        if inc is None:
            self.notify("select an incident first (tab to the incident pane)", severity="warning", markup=False)
            return
        ident = inc.id
        cached = self.analyses.get(ident) or present.incident_analysis(inc)
        if cached is not None:
            self.analyses[ident] = cached
            self._show_analysis(ident, dataclasses.replace(cached, cached=True))
            return
        if ident in self.pending_analysis:
            self.notify(f"analysis of {ident} is running", markup=False)
            return
        self.run_analysis(ident)

    @work(group="analyse", exit_on_error=False)
    async def run_analysis(self, ident: str) -> None:
        self.pending_analysis.add(ident)
        self._busy(f"analyse:{ident}", f"analysing {ident}…")
        try:
            result = await self.cm_app.bridge.analyze(ident)
        except Exception as exc:
            self._fail(f"analysis of {ident}", exc)
            return
        finally:
            self.pending_analysis.discard(ident)
            self._busy(f"analyse:{ident}", None)
        analysis = present.normalize_analysis(result)
        if analysis is None:
            self.notify(f"the engine returned no analysis for {ident}", severity="warning", markup=False)
            return
        self.analyses[ident] = dataclasses.replace(analysis, cached=False)
        self._show_analysis(ident, analysis)

    def _show_analysis(self, ident: str, analysis: present.ShownAnalysis) -> None:
        self.app.push_screen(TextModal(f"Analysis of {ident}", present.analysis_lines(analysis)))

    def action_summary(self) -> None:
        self.run_summary()

    @work(group="summary", exclusive=True, exit_on_error=False)
    async def run_summary(self) -> None:
        self._busy("summary", "summarising open incidents…")
        try:
            result = await self.cm_app.bridge.summary()
        except Exception as exc:
            self._fail("summary", exc)
            return
        finally:
            self._busy("summary", None)
        self.app.push_screen(TextModal("Summary of open incidents", present.summary_lines(result)))

    def _user_acts(self) -> None:
        """Acting on a row counts as moving there: the cursor must not follow the top row meanwhile."""
        self.user_moved_at = self.cm_app.clock.now()

    def action_acknowledge(self) -> None:
        self._user_acts()
        inc = self.selected_incident()
        if inc is None:
            self.notify("select an incident first", severity="warning", markup=False)
            return
        if not present.is_open(inc):
            self.notify(f"{inc.id} is already resolved", severity="warning", markup=False)
            return
        ident = inc.id

        def done(note: str | None) -> None:
            if note is not None:
                self.run_ack(ident, note or None)

        self.app.push_screen(AckModal(inc), done)

    @work(group="commands", exit_on_error=False)
    async def run_ack(self, ident: str, note: str | None) -> None:
        try:
            result = await self.cm_app.bridge.ack(ident, note)
        except Exception as exc:
            self._fail(f"acknowledging {ident}", exc)
            return
        if (answer := as_object(result.get("incident"))) is not None:
            self.event_incidents[ident] = IncidentView.from_wire(answer)
            self.redraw()
        self.notify(f"{ident} acknowledged", markup=False)

    def action_silence(self) -> None:
        self._user_acts()
        inc = self.selected_incident()
        focused = self.focused
        exchange = self.selected_exchange()
        on_exchanges = isinstance(focused, KeyedTable) and focused.id in ("exchanges", "errors")
        if inc is not None and not on_exchanges:
            scopes = ["incident", "exchange", "rule"] if inc.exchange else ["incident", "rule"]
            title = f"{inc.id}: {inc.summary}"
            default = "incident"
        elif exchange is not None:
            scopes, title, default = ["exchange"], f"every incident on {exchange}", "exchange"
            inc = None
        else:
            self.notify("select an incident or an exchange first", severity="warning", markup=False)
            return

        def done(req: SilenceRequest | None) -> None:
            if req is None:
                return
            matchers = present.silence_scope_matchers(req.scope, inc, exchange)
            if not matchers:
                self.notify(f"nothing to silence for scope {req.scope}", severity="warning", markup=False)
                return
            self.run_silence(matchers, req.duration_s, req.comment)

        self.app.push_screen(SilenceModal(title, scopes, default), done)

    @work(group="commands", exit_on_error=False)
    async def run_silence(self, matchers: list[JsonObject], duration_s: float | None, comment: str) -> None:
        try:
            result = await self.cm_app.bridge.silence(matchers, duration_s, comment)
        except Exception as exc:
            self._fail("silence", exc)
            return
        sil = SilenceView.from_wire(result.get("silence"))
        until = "until resolved" if duration_s is None else f"for {format_duration(duration_s, compact=True)}"
        self.notify(f"silenced {until} ({clean_text(sil.id, 30)})", markup=False)

    def action_unsilence(self) -> None:
        inc = self.selected_incident()
        if inc is None or not inc.silenced_by:
            self.notify("the selected incident is not silenced (S lists all silences)", severity="warning",
                        markup=False)
            return
        self.run_unsilence(inc.silenced_by)

    def _unsilence(self, silence_id: str) -> None:
        self.run_unsilence(silence_id)

    @work(group="commands", exit_on_error=False)
    async def run_unsilence(self, silence_id: str) -> None:
        try:
            await self.cm_app.bridge.unsilence(silence_id)
        except Exception as exc:
            self._fail(f"unsilence {silence_id}", exc)
            return
        self.notify(f"silence {silence_id} removed", markup=False)

    def action_silences(self) -> None:
        def source() -> tuple[list[SilenceView], float | None]:
            snap = self.cm_app.bridge.latest or self.snapshot or NO_SNAPSHOT
            return list(snap.silences), parse_ts(snap.ts)

        self.app.push_screen(SilencesModal(source, lambda sid: self._unsilence(sid)))

    def action_pause(self) -> None:
        exchange = self.selected_exchange()
        if exchange is None:
            self.notify("select an exchange first", severity="warning", markup=False)
            return
        ex = (self.snapshot or NO_SNAPSHOT).exchanges.get(exchange)
        paused = ex is not None and (ex.paused or ex.status == "paused")
        self.run_pause(exchange, not paused)

    @work(group="commands", exit_on_error=False)
    async def run_pause(self, exchange: str, pause: bool) -> None:
        try:
            if pause:
                await self.cm_app.bridge.pause(exchange)
            else:
                await self.cm_app.bridge.resume(exchange)
        except Exception as exc:
            self._fail(f"{'pause' if pause else 'resume'} {exchange}", exc)
            return
        self.notify(f"{exchange} {'paused: no probes until resumed' if pause else 'resumed'}", markup=False)

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        if self.frozen:
            self.frozen_at = self.cm_app.clock.now()
            self._age_timer = self.set_interval(1.0, self._draw_status, name="frozen-age")
        else:
            self.frozen_at = None
            if self._age_timer is not None:
                self._age_timer.stop()
                self._age_timer = None
        # on the status line only: a class on the screen would restyle every widget under it
        self.query_one("#status", Static).set_class(self.frozen, "-frozen")
        if self.snapshot is not None:
            self._draw_status()
        if not self.frozen:
            self.shown_seq = None
            self.render_latest()
        # no toast: the FROZEN badge with the data age is the feedback (and a toast costs a layout pass)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("-shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.redraw()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.value.strip():
            box.remove_class("-shown")
        self.query_one("#incidents" if self.query_one("#incidents", KeyedTable).row_count else "#exchanges",
                       KeyedTable).focus()

    def action_clear(self) -> None:
        box = self.query_one("#filter", Input)
        if self.filter_text or box.has_class("-shown"):
            box.value = ""
            box.remove_class("-shown")
            self.filter_text = ""
            self.query_one("#exchanges", KeyedTable).focus()
            self.redraw()
        elif self.maximized is not None:
            self.minimize()

    def action_sort(self) -> None:
        modes = present.SORT_MODES
        self.sort_mode = modes[(modes.index(self.sort_mode) + 1) % len(modes)]
        self.redraw()
        self.notify(f"exchanges sorted by {self.sort_mode}", markup=False)

    def action_maximize(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_cursor_down(self) -> None:
        if isinstance(self.focused, DataTable):
            self.focused.action_cursor_down()

    def action_cursor_up(self) -> None:
        if isinstance(self.focused, DataTable):
            self.focused.action_cursor_up()
