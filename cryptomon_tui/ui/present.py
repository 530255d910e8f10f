"""Snapshot -> what each widget shows, as plain values: text plus a *tone* (a theme variable name).

No Textual here, so every formatting decision is unit-tested without an App. All relative times
are measured against the snapshot's own ``ts`` (never the wall clock), which keeps screenshots
deterministic and makes a frozen view show the ages it had when it froze.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_array, as_object, finite
from cryptomon_tui.kernel.snapshot import (
    BreakerView,
    ChannelView,
    ExchangeView,
    IncidentView,
    ProbeView,
    SilenceView,
    Snapshot,
    schema_problem,
)
from cryptomon_tui.kernel.units import format_duration, format_ms, parse_iso_utc

# The kernel's formatters in their table-cell form (at most 5 characters).
_cell_ms = functools.partial(format_ms, compact=True)
_countdown = functools.partial(format_duration, compact=True)

SPARK_LEVELS = "▁▂▃▄▅▆▇█"
SPARK_FAIL = "×"
SPARK_WIDTH = 16
SPARK_NARROW = 8
# Full-scale values for sparklines: the row's scale is the smallest of these above its worst point,
# so a flat 40 ms line draws low (not full-height), and the legend beside it says what full means.
SPARK_SCALES_MS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)

STATUS_WORDS = {
    "ok": "OK",
    "degraded": "DEGRADED",
    "down": "DOWN",
    "maintenance": "MAINT",
    "banned": "BANNED",
    "paused": "PAUSED",
}
STATUS_RANK = {"error": 0, "down": 0, "banned": 1, "degraded": 2, "maintenance": 3, "paused": 4, "ok": 5}
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}
STATE_WORDS = {"firing": "FIRING", "acknowledged": "ACKED", "resolved": "resolved"}
SORT_MODES = ("name", "status", "p99", "errors")

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@dataclass(frozen=True, slots=True)
class Cell:
    """One piece of text and the theme variable (without ``$``) that colours it; "" = default."""

    text: str
    tone: str = ""
    bold: bool = False
    extra: str = ""  # more text styles ("reverse", "underline"): order that survives NO_COLOR
    marks: str = ""  # characters drawn in ``mark_tone`` wherever they occur (failures in a sparkline)
    mark_tone: str = ""
    parts: tuple[Cell, ...] = ()  # several tones in one cell (the uptime strip); ``text`` is their join


# ----------------------------------------------------------------------------- text helpers
def clean_text(value: object, limit: int | None = None) -> str:
    """Untrusted text made safe to show: control, zero-width and bidi characters become visible
    ``\\xNN``/``\\uNNNN`` escapes, newlines and tabs become spaces. Markup is NOT touched here:
    widgets pass the result as plain Content, so ``[brackets]`` show verbatim."""
    if value is None:
        return ""
    text = str(value).replace("\r\n", " ").replace("\n", " ").replace("\t", " ")

    def esc(m: re.Match[str]) -> str:
        code = ord(m.group(0))
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    text = _CONTROL.sub(esc, text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def parse_ts(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return parse_iso_utc(str(value))
    except (ValueError, TypeError):
        return None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def fmt_pct(share: object) -> str:
    v = _finite(share)
    if v is None:
        return "-"
    pct = v * 100
    if pct == 0:
        return "0%"
    if pct < 0.1:
        return "<0.1%"
    return f"{pct:.1f}%" if pct < 10 else f"{pct:.0f}%"


def fmt_age(seconds: float | None) -> str:
    """How long something has been going on, as live panes show it: 45s, 3m, 2h05m, 3d04h.

    Seconds only in the first minute, then whole minutes (as Alertmanager, Grafana and k9s do):
    nobody needs the second of a 20-minute-old incident, and a per-second age repaints its row
    every second. Countdowns keep ``format_duration(compact=True)`` (when a ban or silence ends is worth seconds)."""
    if seconds is not None and 60 <= seconds < 3600:
        return f"{int(seconds) // 60}m"
    return _countdown(seconds)


def fmt_offset(value: object) -> str:
    v = _finite(value)
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v / 1000:+.1f}s"
    return f"{v:+.1f}ms"


# ----------------------------------------------------------------------------- sparkline
def spark_scale(values: Iterable[float]) -> float:
    worst = max(values, default=0.0)
    for scale in SPARK_SCALES_MS:
        if worst <= scale:
            return float(scale)
    return float(SPARK_SCALES_MS[-1])


def spark_points(ex: ExchangeView) -> list[float | None]:
    """Latencies with failures put back where they happened: ``sparkline`` holds only successful
    probes' latencies, ``sparkline_ok`` the ok/failed flag of the latest attempts (both oldest
    first), so the i-th ok flag from the end pairs with the i-th latency from the end."""
    lat = list(ex.sparkline)
    flags = ex.sparkline_ok
    if not flags:
        return lat
    out: list[float | None] = []
    j = len(lat) - 1
    for flag in reversed(flags):
        if flag:
            if j < 0:
                break
            out.append(lat[j])
            j -= 1
        else:
            out.append(None)
    out.reverse()
    return out


def view_spark_scale(exchanges: Mapping[str, ExchangeView], width: int) -> float:
    """One latency scale for the whole exchange table (rows with their own scales read as equal).

    Taken at the 90th percentile of the points on screen, so one slow exchange does not flatten
    every other line; points above it clip at full height (and that exchange's p99 says how slow)."""
    values: list[float] = []
    for ex in exchanges.values():
        values += [v for p in spark_points(ex)[-width:] if (v := _finite(p)) is not None and v >= 0]
    if not values:
        return spark_scale(values)
    values.sort()
    return spark_scale([values[min(len(values) - 1, int(len(values) * 0.9))]])


def spark_window_s(exchanges: Mapping[str, ExchangeView], width: int) -> float | None:
    """About how much time ``width`` attempts of one exchange cover (probes run side by side)."""
    spans: list[float] = []
    for ex in exchanges.values():
        rates = [1 / f for x in ex.intervals.values() if (f := _finite(x)) is not None and f > 0]
        if rates:
            spans.append(width / sum(rates))
    return max(spans) if spans else None


def spark_text(
    points: Iterable[float | None], width: int = SPARK_WIDTH, scale: float | None = None
) -> tuple[str, float]:
    """Latency points (ms, None = failed probe) -> block characters on a fixed 0..scale axis.

    Failed probes draw as ``×`` (never as a gap or a NaN), points above the largest scale clip
    at full height. Returns (text right-aligned to ``width``, scale in ms)."""
    pts = list(points)[-width:]
    values = [v for p in pts if (v := _finite(p)) is not None and v >= 0]
    if scale is None:
        scale = spark_scale(values)
    chars = []
    top = len(SPARK_LEVELS) - 1
    for p in pts:
        v = _finite(p)
        if v is None or v < 0:
            chars.append(SPARK_FAIL)
            continue
        level = min(top, max(0, math.ceil(v / scale * len(SPARK_LEVELS)) - 1))
        chars.append(SPARK_LEVELS[level])
    return "".join(chars).rjust(width), scale


def fmt_scale(scale: float) -> str:
    return f"{scale / 1000:g}s" if scale >= 1000 else f"{scale:g}ms"


def usage_bar(share: float | None, width: int = 6) -> str:
    v = _finite(share)
    if v is None:
        return "?".ljust(width)
    filled = min(width, max(0, round(min(1.0, v) * width)))
    return "█" * filled + "░" * (width - filled)


# ----------------------------------------------------------------------------- exchanges
# Column sets by available width: (min table width, ((key, label, width), ...)); width 0 = fill.
Columns = tuple[tuple[str, str, int], ...]
EXCHANGE_COLUMNS: tuple[tuple[int, Columns], ...] = (
    (0, (("name", "Exchange", 15), ("status", "Status", 8), ("p99", "p99", 6), ("err", "Err%", 5),
         ("spark", "Latency", SPARK_NARROW + 5), ("rl", "Rate lim", 9), ("breaker", "Breaker", 7))),
    (112, (("name", "Exchange", 15), ("status", "Status", 8), ("p50", "p50", 6), ("p99", "p99", 6),
           ("err", "Err%", 5), ("spark", "Latency", SPARK_WIDTH), ("rl", "Rate limit", 11),
           ("clock", "Clock", 7), ("breaker", "Breaker", 9), ("uptime", "24h uptime", 12))),
)


def status_cell(status: str) -> Cell:
    key = status or "ok"
    return Cell(STATUS_WORDS.get(key, clean_text(key, 10).upper()), f"status-{key}" if key in STATUS_WORDS else "",
                bold=True)


def breaker_cell(breaker: BreakerView, now: float | None) -> Cell:
    state = breaker.state or "closed"
    if state == "closed":
        return Cell("closed", "dim-text")
    trial = parse_ts(breaker.next_trial_at)
    wait = f" {_countdown(trial - now)}" if trial is not None and now is not None and trial > now else ""
    if state == "open":
        return Cell(f"OPEN{wait}", "breaker-open", bold=True)
    if state == "half_open":
        return Cell("HALF-OPEN", "breaker-half", bold=True)
    return Cell(clean_text(state, 11))


def rate_limit_cell(ex: ExchangeView, now: float | None) -> Cell:
    ban_until = parse_ts(ex.ban_until)
    if ban_until is not None and (now is None or ban_until > now):
        left = _countdown(ban_until - now) if now is not None else "?"
        return Cell(f"BAN {left}", "status-banned", bold=True)
    share = ex.rate_limit_used
    tone = "" if share is None else ("status-down" if share >= 0.9 else "status-degraded" if share >= 0.7 else "")
    return Cell(f"{usage_bar(share, 3)} {fmt_pct(share) if share is not None else '-':>4}", tone)


def spark_label(scale: float, window_s: float | None, width: int) -> str:
    """The latency column's header: the one scale of the view and the time it covers."""
    window = f" {_countdown(window_s)}" if window_s else ""
    for text in (f"Latency 0..{fmt_scale(scale)}{window}", f"Lat 0..{fmt_scale(scale)}{window}",
                 f"0..{fmt_scale(scale)}{window}", f"0..{fmt_scale(scale)}"):
        if len(text) <= width:
            return text
    return f"0..{fmt_scale(scale)}"


def spark_cell(ex: ExchangeView, width: int, scale: float | None) -> Cell:
    """A down or banned exchange says so (its last good line would look healthy); failed probes
    are ``×`` in the failure colour on the view's one scale."""
    status = ex.status
    if status == "banned":
        return Cell("BANNED".ljust(width)[:width], "status-banned", bold=True)
    pts = spark_points(ex)
    if status == "down" and (not pts or pts[-1] is not None):
        pts = [*pts, None]  # down now, whatever the last success drew
    if not pts and ex.error_rate > 0:
        return Cell((SPARK_FAIL * width)[:width], "spark-high", bold=True)
    spark, _ = spark_text(pts, width, scale)
    return Cell(spark, "spark-low", marks=SPARK_FAIL, mark_tone="spark-high")


def exchange_row(
    name: str, ex: ExchangeView, now: float | None, spark_width: int = SPARK_WIDTH,
    scale: float | None = None,
) -> dict[str, Cell]:
    err = ex.error_rate
    paused = ex.paused or ex.status == "paused"
    return {
        "name": Cell(clean_text(name, 15), bold=True),
        "status": status_cell(ex.status),
        "p50": Cell(_cell_ms(ex.p50_ms)),
        "p99": Cell(_cell_ms(ex.p99_ms)),
        "err": Cell(fmt_pct(err), _error_tone(err)),
        "spark": spark_cell(ex, spark_width, scale),
        "rl": rate_limit_cell(ex, now),
        "clock": Cell(fmt_offset(ex.clock_offset_ms)),
        # a paused exchange sends nothing: its breaker's last state ("OPEN 0s") would be stale
        "breaker": Cell("-", "dim-text") if paused else breaker_cell(ex.breaker, now),
    }


def _error_tone(err: float | None) -> str:
    if not err:
        return ""
    return "status-down" if err >= 0.05 else "status-degraded"


def sorted_exchanges(exchanges: Mapping[str, ExchangeView], mode: str) -> list[str]:
    names = sorted(exchanges)
    if mode == "status":
        names.sort(key=lambda n: STATUS_RANK.get(exchanges[n].status, 9))
    elif mode == "p99":
        names.sort(key=lambda n: -(exchanges[n].p99_ms or 0.0))
    elif mode == "errors":
        names.sort(key=lambda n: -exchanges[n].error_rate)
    return names


# ----------------------------------------------------------------------------- errors table
ERROR_COLUMNS: tuple[tuple[int, Columns], ...] = (
    (0, (("where", "Exchange/probe", 13), ("err", "Err%", 5), ("classes", "Errors by class", 12),
         ("code", "Code", 7), ("message", "Last error message", 0))),
    (72, (("where", "Exchange/probe", 13), ("attempts", "Tries", 5), ("classes", "Errors by class", 12),
          ("err", "Err%", 5), ("timeouts", "T/O", 4), ("code", "Code", 7), ("message", "Last error message", 0))),
    (100, (("where", "Exchange/probe", 16), ("attempts", "Tries", 5), ("classes", "Errors by class", 22),
           ("err", "Err%", 5), ("timeouts", "T/O", 4), ("code", "Last code", 10),
           ("message", "Last error message", 0))),
)


def _errors_by_class(counts: Mapping[str, int]) -> str:
    parts = [(k, v) for k, v in counts.items() if k != "ok" and v]
    parts.sort(key=lambda kv: -kv[1])
    return " ".join(f"{clean_text(k, 16)}:{v}" for k, v in parts)


def error_row(exchange: str, probe: str, row: ProbeView) -> dict[str, Cell]:
    last = row.last
    code: str | int | None = row.last_error_code
    message = row.last_error_message
    if code is None and message is None and last is not None and last.outcome != "ok":
        code = last.error_code or last.http_status or last.outcome
        message = last.error_message
    err = row.error_rate
    return {
        "where": Cell(clean_text(f"{exchange}/{probe}", 16)),
        "attempts": Cell(str(row.attempts)),
        "classes": Cell(_errors_by_class(row.counts), "status-degraded"),
        "err": Cell(fmt_pct(err), "status-down" if err >= 0.05 else ""),
        "timeouts": Cell(str(row.timeouts)),
        "code": Cell(clean_text(code, 10) if code is not None else "", "status-down" if code is not None else ""),
        "message": Cell(clean_text(message, 200) if message is not None else ""),
    }


def has_errors(row: ProbeView) -> bool:
    """A probe belongs in the error table when it failed within the rolling window. Judged on the
    window's counts only (not the last result), so rows do not blink in and out on every probe."""
    return bool(row.timeouts) or any(k != "ok" and v for k, v in row.counts.items())


# the error table's rolling-window figures, and how often they are redrawn when no new error comes in
ERROR_WINDOW_COLUMNS = ("attempts", "err", "classes", "timeouts")
ERROR_WINDOW_REFRESH_S = 5.0


def window_errors(row: ProbeView) -> int:
    """Failed attempts in the probe's rolling window (every outcome but ``ok``)."""
    return sum(v for k, v in row.counts.items() if k != "ok")


def last_failure(row: ProbeView) -> str | None:
    """The time of the probe's latest result if it failed, else None: a new value means a new error."""
    last = row.last
    return last.ts if last is not None and last.outcome != "ok" else None


class ErrorWindowHold:
    """Redraws the error table's rolling-window figures (Tries, Err%, errors by class, T/O) together every
    ``every_s`` seconds of snapshot time, and a row's at once when it has a new error.

    Between errors these figures move only because the window slides or fills (Tries 365 -> 369 every
    second at 4 probes/s, Err% by a tenth): on every failing probe, every second, that is flicker rather
    than news, and a row repaint each. A new error (more errors in the window, or a failed latest result
    not seen before), a new row and the last code/message still show on the next tick."""

    def __init__(self, every_s: float = ERROR_WINDOW_REFRESH_S) -> None:
        self.every_s = every_s
        self._held: dict[str, tuple[dict[str, Cell], int, str | None]] = {}  # key -> (cells, errors, last failure)
        self._refreshed_at: float | None = None

    def apply(
        self, now: float | None, rows: Sequence[tuple[str, ProbeView, dict[str, Cell]]]
    ) -> list[tuple[str, dict[str, Cell]]]:
        """(key, snapshot row, fresh cells) -> (key, cells to show); keys not passed are forgotten."""
        due = (now is None or self._refreshed_at is None or now - self._refreshed_at >= self.every_s
               or now < self._refreshed_at)
        if due:
            self._refreshed_at = now
        held: dict[str, tuple[dict[str, Cell], int, str | None]] = {}
        out: list[tuple[str, dict[str, Cell]]] = []
        for key, row, cells in rows:
            errors = window_errors(row)
            failed_at = last_failure(row)
            before = self._held.get(key)
            if before is None or due or errors > before[1] or (failed_at is not None and failed_at != before[2]):
                window = {c: cells[c] for c in ERROR_WINDOW_COLUMNS if c in cells}
            else:
                window = before[0]
                cells = {**cells, **window}
            seen = failed_at if failed_at is not None else (before[2] if before is not None else None)
            held[key] = (window, errors, seen)
            out.append((key, cells))
        self._held = held
        return out


def error_rows(
    snapshot: Snapshot, order: list[str], only_failing: bool = True, hold: ErrorWindowHold | None = None
) -> list[tuple[str, dict[str, Cell]]]:
    """Rows of the exchange x probe error table. Healthy probes are left out by default: the table
    answers "where are the errors", stays short with 100+ endpoints, and is cheap to redraw. With a
    ``hold``, the rolling-window figures change at most every few seconds unless a row has a new error."""
    out: list[tuple[str, ProbeView, dict[str, Cell]]] = []
    for name in order:
        ex = snapshot.exchanges.get(name)
        probes = ex.probes if ex is not None else {}
        for probe in sorted(probes):
            row = probes[probe]
            if only_failing and not has_errors(row):
                continue
            out.append((f"{name}/{probe}", row, error_row(name, probe, row)))
    if hold is not None:
        return hold.apply(parse_ts(snapshot.ts), out)
    return [(key, cells) for key, _, cells in out]


# ----------------------------------------------------------------------------- incidents
INCIDENT_COLUMNS: tuple[tuple[int, Columns], ...] = (
    # State carries ACK <who> / SILENCED <left> / FLAPPING as words at every width (colour is extra)
    (0, (("sev", "Sev", 4), ("state", "State", 14), ("where", "Where", 12), ("summary", "Summary", 0),
         ("age", "Age", 5))),
    (96, (("sev", "Sev", 4), ("state", "State", 16), ("where", "Where", 20), ("summary", "Summary", 0),
          ("age", "Age", 6), ("notify", "Notified", 14))),
)
SEVERITY_WORDS = {"critical": "CRIT", "error": "ERR", "warning": "WARN", "info": "INFO"}


def incident_order(incidents: Iterable[IncidentView]) -> list[IncidentView]:
    """Open incidents by severity, then newest first (acknowledged ones stay in their severity:
    the State column says ACK); resolved ones last."""
    return sorted(
        incidents,
        key=lambda i: (
            i.state == "resolved",
            SEVERITY_RANK.get(i.severity, 9),
            -(parse_ts(i.started_at) or 0.0),
            i.id,
        ),
    )


def is_open(inc: IncidentView) -> bool:
    return (inc.state or "firing") != "resolved"


def notify_summary(incident: IncidentView, channels: Iterable[ChannelView]) -> Cell:
    """Per-channel delivery as recorded on the incident's timeline, else the channels' state."""
    sent: dict[str, str] = {}
    for entry in incident.timeline:
        kind = entry.kind
        channel = entry.data.get("channel")
        if channel and kind in ("notified", "notification_sent"):
            sent[str(channel)] = "sent"
        elif channel and kind in ("notification_failed", "notify_failed"):
            sent[str(channel)] = "FAILED"
    if sent:
        failed = any(v == "FAILED" for v in sent.values())
        text = " ".join(f"{v} {clean_text(k, 12)}" for k, v in sorted(sent.items()))
        return Cell(text, "status-down" if failed else "status-ok")
    chans = list(channels)
    if not chans:
        return Cell("no channels", "dim-text")
    bad = [c for c in chans if c.state in ("failing", "broken")]
    queued = sum(c.queue for c in chans)
    if bad:
        words = {"failing": "FAIL", "broken": "BROKEN"}
        return Cell(" ".join(f"{words.get(c.state, '?')} {clean_text(c.channel, 12)}" for c in bad),
                    "status-down")
    if queued:
        return Cell(f"{queued} queued", "status-degraded")
    return Cell(f"{len(chans)} ch ok", "dim-text")


def incident_state_cell(inc: IncidentView, now: float | None) -> Cell:
    """The incident's state as words, so it reads without colour and at every width:
    ``SILENCED 14m59s`` > ``MAINT`` > ``ACK alice`` > ``FLAPPING`` > ``FIRING``; ``resolved``."""
    state = inc.state or "firing"
    if state == "resolved":
        return Cell("resolved", "foreground-muted")
    if inc.silenced_by:
        until = parse_ts(inc.silenced_until)
        left = "until resolved" if until is None else (_countdown(until - now) if now is not None else "")
        return Cell(f"SILENCED {left}".strip(), "foreground-muted")
    if inc.in_maintenance:
        return Cell("MAINT", "status-maintenance")
    if state == "acknowledged" or inc.acknowledged_by:
        who = clean_text(inc.acknowledged_by, 11)
        return Cell(f"ACK {who}".strip(), "status-ok", bold=True)
    if inc.flapping:
        return Cell("FLAPPING", "status-degraded", bold=True)
    return Cell(STATE_WORDS.get(state, clean_text(state, 8).upper()), "status-down", bold=True)


def incident_row(inc: IncidentView, now: float | None, channels: Sequence[ChannelView]) -> dict[str, Cell]:
    sev = inc.severity or "info"
    started = parse_ts(inc.started_at)
    resolved = parse_ts(inc.resolved_at)
    end = resolved if resolved is not None else now
    where = "/".join(x for x in (inc.exchange, inc.probe) if x) or clean_text(inc.rule)
    silenced = ""
    if inc.silenced_by:
        until = parse_ts(inc.silenced_until)
        silenced = "resolve" if until is None else (_countdown(until - now) if now is not None else "yes")
    elif inc.in_maintenance:
        silenced = "maint"
    state_cell = incident_state_cell(inc, now)
    return {
        "sev": severity_cell(sev),
        "state": state_cell,
        "where": Cell(clean_text(where, 14)),
        "summary": Cell(clean_text(inc.summary, 300)),
        "age": Cell(fmt_age(end - started) if end is not None and started is not None else "-"),
        "ack": Cell(clean_text(inc.acknowledged_by, 14)),
        "silenced": Cell(silenced, "foreground-muted"),
        "notify": notify_summary(inc, channels),
    }


# ----------------------------------------------------------------------------- status line
def status_line(snapshot: Snapshot) -> list[Cell]:
    """Counts, most important first, short enough for 80 columns (``1 silenced`` is never cut)."""
    incidents = snapshot.incidents
    firing = sum(1 for i in incidents if i.state == "firing")
    acked = sum(1 for i in incidents if i.state == "acknowledged")
    exchanges = snapshot.exchanges
    bad = sum(1 for e in exchanges.values() if e.status not in ("ok", "paused"))
    cells = [Cell(f"{clean_text(snapshot.location, 16)} ", "dim-text")]
    cells.append(Cell(f"{len(exchanges)} exch", ""))
    if bad:
        cells.append(Cell(f" {bad} not ok", "status-degraded", bold=True))
    cells.append(Cell(" · ", "dim-text"))
    cells.append(Cell(f"{firing} firing", "status-down" if firing else "", bold=bool(firing)))
    cells.append(Cell(f" {acked} acked", ""))
    silences = snapshot.silences
    if silences:
        cells.append(Cell(f" · {len(silences)} silenced", "dim-text"))
    analysis = snapshot.analysis
    model = analysis.model
    spend = analysis.llm_spend_usd_month
    cells.append(Cell(f" · analysis {clean_text(model, 20) if model else 'offline'}", "dim-text"))
    if spend is not None and model:
        budget = analysis.budget_usd_month
        cells.append(Cell(f" ${spend:.2f}" + (f"/{budget:.0f}" if budget else ""), "dim-text"))
    return cells


# ----------------------------------------------------------------------------- analysis results
@dataclass(frozen=True, slots=True)
class ShownAnalysis:
    """The fields of one analysis the UI shows, as received (cleaned when drawn: LLM output is untrusted)."""

    root_cause: JsonValue = None
    severity: JsonValue = None
    action: JsonValue = None
    recovery: JsonValue = None
    confidence: float | None = None
    source: JsonValue = "offline"
    cost_usd: JsonValue = None
    evidence: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    cached: bool = False


def _first(data: JsonObject, key: str, fallback: str) -> JsonValue:
    """``data[key]`` when the key is there (even as null), else ``data[fallback]``."""
    return data[key] if key in data else data.get(fallback)


def _cleaned_lines(value: JsonValue) -> tuple[str, ...]:
    return tuple(clean_text(e, 300) for e in (as_array(value) or []) if e is not None)


def normalize_analysis(result: Mapping[str, JsonValue] | None) -> ShownAnalysis | None:
    """Accept the engine's ``{"analysis": {...}, "cached": ...}`` answer, a bare analysis dict, or an
    ``analysis_ready`` event's detail; return the fields the UI shows (missing ones as None)."""
    if not result:
        return None
    data: JsonObject = dict(result)
    cached = bool(result.get("cached"))
    if (inner := as_object(result.get("analysis"))) is not None:
        data = inner
    return ShownAnalysis(
        root_cause=data.get("root_cause"),
        severity=data.get("severity"),
        action=_first(data, "recommended_action", "action"),
        recovery=_first(data, "estimated_recovery", "recovery_estimate"),
        confidence=_finite(data.get("confidence")),
        source=data.get("source") or "offline",
        cost_usd=data.get("cost_usd"),
        evidence=_cleaned_lines(data.get("evidence")),
        notes=_cleaned_lines(data.get("notes")),
        cached=cached,
    )


def incident_analysis(inc: IncidentView) -> ShownAnalysis | None:
    """The analysis an incident carries (the engine attaches it once one was made), as shown."""
    return normalize_analysis(inc.analysis.to_wire()) if inc.analysis is not None else None


def _cost_text(cost: JsonValue) -> str:
    """Money as ``$0.0012`` (a number or a decimal string on the wire); anything else shown as text."""
    if cost is None:
        return "-"
    number = finite(cost)
    return f"${number:.4f}" if number is not None else clean_text(cost, 20)


def analysis_lines(a: ShownAnalysis) -> list[tuple[str, str]]:
    """(label, value) pairs, every value cleaned untrusted text (LLM output is untrusted too)."""
    conf = a.confidence
    source = clean_text(a.source, 40)
    lines = [
        ("Root cause", clean_text(a.root_cause, 2000) or "-"),
        ("Severity", clean_text(a.severity, 20) or "-"),
        ("Action", clean_text(a.action, 2000) or "-"),
        ("Recovery", clean_text(a.recovery, 200) or "-"),
        ("Confidence", f"{conf:.0%}" if conf is not None else "-"),
        ("Source", source if source != "offline" else "offline analyzer (no LLM)"),
        ("Cost", _cost_text(a.cost_usd) + (" (cached)" if a.cached else "")),
    ]
    for ev in a.evidence:
        lines.append(("Evidence", ev))
    for note in a.notes:
        lines.append(("Note", note))
    return lines


def summary_lines(result: JsonObject) -> list[tuple[str, str]]:
    """The engine's ``{"summary": {...}, "open_incidents": n}`` or a simpler ``{"text": ...}`` shape."""
    data = as_object(result.get("summary")) or result
    lines: list[tuple[str, str]] = []
    open_n = _first(result, "open_incidents", "open")
    if open_n is not None:
        lines.append(("Open incidents", clean_text(open_n)))
    if data.get("text") and data.get("headline"):
        # the engine's Summary: its text is the summary (at most three sentences, the LLM's headline cut)
        lines.append(("Summary", clean_text(data["text"], 2000)))
    elif headline := _first(data, "headline", "text"):
        lines.append(("Headline", clean_text(headline, 2000)))
    for detail in as_array(data.get("details")) or []:
        lines.append(("Detail", clean_text(detail, 2000)))
    if data.get("severity"):
        lines.append(("Severity", clean_text(data.get("severity"), 20)))
    if data.get("recommended_action"):
        lines.append(("Action", clean_text(data.get("recommended_action"), 2000)))
    lines.append(("Source", clean_text(data.get("source") or "offline", 40)))
    if (cost := finite(data.get("cost_usd"))) is not None:
        lines.append(("Cost", f"${cost:.4f}"))
    return lines


def _matcher(name: str, value: str) -> JsonObject:
    return {"name": name, "value": value, "is_regex": False, "is_equal": True}


def silence_scope_matchers(scope: str, incident: IncidentView | None, exchange: str | None) -> list[JsonObject]:
    """Matchers for the silence modal's scopes (Matcher.to_dict shapes)."""
    if scope == "incident" and incident is not None:
        return [_matcher("id", incident.id)]
    if scope == "rule" and incident is not None:
        out = [_matcher("rule", incident.rule)]
        if incident.exchange:
            out.append(_matcher("exchange", incident.exchange))
        return out
    target = exchange or (incident.exchange if incident is not None and incident.exchange else None)
    if scope == "exchange" and target:
        return [_matcher("exchange", target)]
    return []


def silence_row(s: SilenceView, now: float | None) -> dict[str, Cell]:
    ends = parse_ts(s.ends_at)
    matchers = " ".join(
        f"{clean_text(m.name, 12)}{'=' if m.is_equal else '!='}{'~' if m.is_regex else ''}"
        f"{clean_text(m.value, 30)}"
        for m in s.matchers
    )
    return {
        "id": Cell(clean_text(s.id, 14)),
        "matchers": Cell(matchers),
        "ends": Cell("until resolved" if ends is None else (_countdown(ends - now) if now is not None else "?")),
        "by": Cell(clean_text(s.created_by, 20)),
        "comment": Cell(clean_text(s.comment, 200)),
    }


def matches_filter(text: str, needle: str) -> bool:
    return not needle or needle.casefold() in text.casefold()


# ----------------------------------------------------------------------------- verdict line
# What the worst open incident is, in words, and what the person on call should do about it.
RULE_WHAT = {
    "ip_banned": "IP BANNED",
    "rate_limited": "RATE LIMITED",
    "rate_limit_usage": "RATE LIMIT HIGH",
    "maintenance": "MAINTENANCE",
    "circuit_open": "BREAKER OPEN",
    "error_rate": "ERRORS",
    "latency_p99": "SLOW p99",
    "latency_anomaly": "SLOW",
    "timeouts": "TIMEOUTS",
    "consecutive_failures": "FAILING",
    "clock_offset": "CLOCK OFF",
    "local_network": "OUR NETWORK DOWN",
}
RULE_ACTION = {
    "ip_banned": "stop bots on this IP",
    "rate_limited": "slow bots down on this IP",
    "rate_limit_usage": "cut request rate before a ban",
    "maintenance": "planned: hold trading until it ends",
    "circuit_open": "hold orders; next trial shown",
    "error_rate": "check the exchange status page",
    "latency_p99": "expect slow fills",
    "latency_anomaly": "expect slow fills",
    "timeouts": "check network / exchange status",
    "consecutive_failures": "check the exchange status page",
    "clock_offset": "sync the clock (NTP): signed calls fail",
    "local_network": "check our uplink / DNS",
}


def worst_incident(incidents: Iterable[IncidentView]) -> IncidentView | None:
    """The open incident the verdict line names: unsilenced before silenced, then severity, then
    unacknowledged before acknowledged, then newest."""
    open_ = [i for i in incidents if is_open(i)]
    if not open_:
        return None
    return min(open_, key=lambda i: (
        bool(i.silenced_by) or i.in_maintenance,
        SEVERITY_RANK.get(i.severity, 9),
        i.state == "acknowledged",
        -(parse_ts(i.started_at) or 0.0),
        i.id,
    ))


def incident_countdown(inc: IncidentView, snapshot: Snapshot, now: float | None) -> str:
    """``9m47s left`` for a ban, the end of an active maintenance window, or the breaker's next trial."""
    if now is None:
        return ""
    exchange = inc.exchange
    ex = snapshot.exchanges.get(exchange) if exchange else None
    rule = inc.rule
    ban = parse_ts(inc.ban_until) or parse_ts(ex.ban_until if ex is not None else None)
    if ban is not None and ban > now and rule in ("ip_banned", "rate_limited", ""):
        return f"{_countdown(ban - now)} left"
    if rule == "maintenance" or inc.in_maintenance:
        for w in snapshot.maintenance:
            if not w.active:
                continue
            if w.exchange not in (None, exchange):
                continue
            end = parse_ts(w.next_end) or parse_ts(w.ends_at)
            if end is not None and end > now:
                return f"ends in {_countdown(end - now)}"
    breaker = ex.breaker if ex is not None else None
    trial = parse_ts(breaker.next_trial_at) if breaker is not None else None
    if breaker is not None and breaker.state == "open" and trial is not None and trial > now:
        return f"trial in {_countdown(trial - now)}"
    if ban is not None and ban > now:
        return f"ban {_countdown(ban - now)} left"
    return ""


def verdict_line(snapshot: Snapshot, incidents: Iterable[IncidentView]) -> list[Cell]:
    """One line, always visible: the worst open incident (severity, exchange, what, countdown,
    since when, action), e.g. ``CRIT bybit IP BANNED 9m47s left, since 13s - stop bots on this IP``;
    ``All clear`` when nothing is open. A daemon speaking a newer snapshot schema than this face reads
    gets the upgrade message instead: a renamed key would read as "no incident", never say All clear then."""
    if (problem := schema_problem(snapshot.schema)) is not None:
        return [Cell("UPGRADE", "status-down", bold=True), Cell(f": {clean_text(problem, 200)}")]
    incs = list(incidents)
    worst = worst_incident(incs)
    if worst is None:
        paused = sum(1 for e in snapshot.exchanges.values() if e.status == "paused")
        tail = f" ({paused} paused)" if paused else ""
        return [Cell("All clear", "status-ok", bold=True), Cell(f": no open incident{tail}", "dim-text")]
    now = parse_ts(snapshot.ts)
    sev = worst.severity or "info"
    rule = worst.rule
    what = RULE_WHAT.get(rule, clean_text(rule, 20).upper().replace("_", " "))
    where = clean_text(worst.exchange or "all", 20)
    tone = f"sev-{sev}" if sev in SEVERITY_WORDS else ""
    cells = [severity_cell(sev), Cell(f" {where} ", bold=True), Cell(what, tone, bold=True)]
    countdown = incident_countdown(worst, snapshot, now)
    if countdown:
        cells.append(Cell(f" {countdown}", bold=True))
    started = parse_ts(worst.started_at)
    if started is not None and now is not None:
        cells.append(Cell(f", since {fmt_age(now - started)}", "dim-text"))
    state = incident_state_cell(worst, now)
    if state.text != "FIRING":
        cells.append(Cell(f" [{state.text}]", state.tone))
    cells.append(Cell(f" - {RULE_ACTION.get(rule, 'see details (enter)')}"))
    others = sum(1 for i in incs if is_open(i)) - 1
    if others > 0:
        cells.append(Cell(f"  (+{others} open)", "dim-text"))
    return cells


SEVERITY_STYLE = {"critical": "reverse", "error": "underline", "warning": "", "info": ""}


def severity_cell(sev: str) -> Cell:
    """Severity word with a text style that keeps the order without colour (NO_COLOR, 16 colours):
    CRIT reverse+bold, ERR underline+bold, WARN bold, INFO plain."""
    return Cell(SEVERITY_WORDS.get(sev, clean_text(sev, 5).upper()), f"sev-{sev}" if sev in SEVERITY_WORDS else "",
                bold=sev != "info", extra=SEVERITY_STYLE.get(sev, ""))


# ----------------------------------------------------------------------------- 24 h uptime strip
UPTIME_MARK = "█"
UPTIME_NONE = "·"


def uptime_strip(points: Sequence[tuple[float, int, int]], start: float, end: float, width: int) -> list[Cell]:
    """(bucket ts, attempts, errors) over [start, end) -> ``width`` characters, oldest left: each
    character one slice of time, toned by its error share (none: ok; < 5 %: degraded; more: down)
    and ``·`` where nothing was probed. Runs of one tone are one Cell."""
    width = max(1, width)
    span = max(1e-9, end - start)
    attempts = [0] * width
    errors = [0] * width
    for ts, tries, errs in points:
        if not start <= ts < end:
            continue
        i = min(width - 1, int((ts - start) / span * width))
        attempts[i] += max(0, tries)
        errors[i] += max(0, errs)
    cells: list[Cell] = []
    for tries, errs in zip(attempts, errors, strict=True):
        if tries == 0:
            ch, tone = UPTIME_NONE, "dim-text"
        else:
            share = errs / tries
            ch, tone = UPTIME_MARK, ("status-ok" if share == 0 else "status-degraded" if share < 0.05
                                     else "status-down")
        if cells and cells[-1].tone == tone:
            cells[-1] = Cell(cells[-1].text + ch, tone)
        else:
            cells.append(Cell(ch, tone))
    return cells


def interval_text(ex: ExchangeView) -> str:
    """The real probe cadence (the engine's effective intervals, stretched to stay in budget), e.g.
    ``probes every 250ms`` or ``probes every 1s-5s``; "" when the snapshot does not say."""
    values = sorted(f for f in ex.intervals.values() if f is not None and f > 0)
    if not values:
        return ""
    low, high = format_duration(values[0]), format_duration(values[-1])
    return f"probes every {low}" if low == high else f"probes every {low}-{high}"


def strip_cell(cells: Sequence[Cell]) -> Cell:
    """Uptime strip cells as one table cell with several tones."""
    return Cell("".join(c.text for c in cells), parts=tuple(cells))
