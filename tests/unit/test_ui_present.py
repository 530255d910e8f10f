"""The UI presenter: formatting and colour decisions without an App."""

from __future__ import annotations

import functools
import math

from cryptomon_tui.kernel.snapshot import (
    SCHEMA_VERSION,
    BreakerView,
    ChannelView,
    ExchangeView,
    IncidentView,
    ProbeResultView,
    ProbeView,
    Snapshot,
)
from cryptomon_tui.kernel.units import format_duration, format_ms, iso_utc
from cryptomon_tui.ui import present
from cryptomon_tui.ui.present import SPARK_FAIL, clean_text, spark_text

NOW = 1_787_000_000.0

# the presenter reads the typed views a face gets from a snapshot frame; tests write them as the wire does
X, INC, S = ExchangeView.from_wire, IncidentView.from_wire, Snapshot.from_wire


def test_clean_text_escapes_controls_and_bidi_keeps_brackets() -> None:
    raw = "a[/b]\x1b[31m\x07\u202e\u200bz\nnext\ttab"
    out = clean_text(raw)
    assert out == "a[/b]\\x1b[31m\\x07\\u202e\\u200bz next tab"
    assert clean_text(None) == ""
    assert clean_text("x" * 50, limit=10) == "x" * 9 + "…"


def test_sparkline_fixed_scale_failures_and_no_nan() -> None:
    text, scale = spark_text([40.0, 41.0, None, float("nan"), 45.0], width=5)
    assert scale == 50.0
    assert text.count(SPARK_FAIL) == 2  # None and NaN are failed points, never drawn as latency
    flat, _ = spark_text([40.0] * 8, width=8)
    assert flat == present.SPARK_LEVELS[6] * 8  # 40 ms of a 50 ms full scale: high but not full
    low, scale_low = spark_text([5.0, 5.0], width=4)
    assert scale_low == 10.0 and low.startswith("  ")  # right-aligned, fewer points than columns
    huge, top = spark_text([10.0, 120_000.0], width=2)
    assert top == present.SPARK_SCALES_MS[-1] and huge[-1] == present.SPARK_LEVELS[-1]
    empty, _ = spark_text([], width=3)
    assert empty == "   "


def test_formatting() -> None:
    cell_ms = functools.partial(format_ms, compact=True)
    assert cell_ms(None) == "-" and cell_ms(math.inf) == "-"
    assert cell_ms(4.25) == "4.2ms" and cell_ms(41) == "41ms" and cell_ms(2500) == "2.5s" and cell_ms(12_345) == "12s"
    assert present.fmt_pct(0) == "0%" and present.fmt_pct(0.123) == "12%" and present.fmt_pct(0.0004) == "<0.1%"
    countdown = functools.partial(format_duration, compact=True)
    assert countdown(59) == "59s" and countdown(192) == "3m12s"
    assert countdown(7500) == "2h05m" and countdown(None) == "-"
    assert countdown(90061) == "1d01h" and countdown(-3) == "0s"
    assert present.fmt_offset(-1234.5) == "-1.2s" and present.fmt_offset(1.5) == "+1.5ms"


def test_age_is_coarse_after_the_first_minute() -> None:
    """Ages (not countdowns) change at most once a minute after the first minute."""
    assert present.fmt_age(0) == "0s" and present.fmt_age(45.9) == "45s" and present.fmt_age(59) == "59s"
    assert present.fmt_age(60) == "1m" and present.fmt_age(192) == "3m" and present.fmt_age(3599) == "59m"
    assert present.fmt_age(3600) == "1h00m" and present.fmt_age(7500) == "2h05m"
    assert present.fmt_age(86400 * 3 + 3600 * 4 + 59) == "3d04h"
    assert present.fmt_age(None) == "-" and present.fmt_age(math.nan) == "-" and present.fmt_age(-5) == "0s"
    assert {present.fmt_age(s) for s in range(1200, 1260)} == {"20m"}  # one text for a whole minute


def test_exchange_row_badges_ban_countdown_and_breaker() -> None:
    ex = {
        "status": "banned", "ban_until": iso_utc(NOW + 125), "rate_limit_used": 1.0,
        "breaker": {"state": "open", "next_trial_at": iso_utc(NOW + 9)}, "sparkline": [10.0], "error_rate": 0.2,
    }
    row = present.exchange_row("bybit", X(ex), NOW)
    assert (row["status"].text, row["status"].tone) == ("BANNED", "status-banned")
    assert row["rl"].text == "BAN 2m05s"
    assert row["breaker"].text == "OPEN 9s" and row["breaker"].tone == "breaker-open"
    assert row["err"].tone == "status-down"
    ok = present.exchange_row("okx", X({"status": "ok", "rate_limit_used": 0.5}), NOW)
    assert ok["rl"].text.startswith("██░") and ok["rl"].text.endswith("50%")
    assert present.exchange_row("x", X({"status": "weird[/]"}), NOW)["status"].text == "WEIRD[/]"
    half = present.breaker_cell(BreakerView("half_open"), NOW)
    assert half.text == "HALF-OPEN"


def test_sorting_and_incident_order() -> None:
    exchanges = {"a": X({"status": "ok", "p99_ms": 10}), "b": X({"status": "down", "p99_ms": 5}),
                 "c": X({"status": "degraded", "p99_ms": 50})}
    assert present.sorted_exchanges(exchanges, "name") == ["a", "b", "c"]
    assert present.sorted_exchanges(exchanges, "status") == ["b", "c", "a"]
    assert present.sorted_exchanges(exchanges, "p99") == ["c", "a", "b"]
    incidents = [
        {"id": "r", "state": "resolved", "severity": "critical", "started_at": iso_utc(NOW)},
        {"id": "w", "state": "firing", "severity": "warning", "started_at": iso_utc(NOW)},
        {"id": "a", "state": "acknowledged", "severity": "critical", "started_at": iso_utc(NOW)},
        {"id": "c", "state": "firing", "severity": "critical", "started_at": iso_utc(NOW - 5)},
    ]
    # severity, then newest; an acknowledged incident keeps its place (State says ACK); resolved last
    assert [i.id for i in present.incident_order(map(INC, incidents))] == ["a", "c", "w", "r"]


def test_incident_row_silence_ack_and_notifications() -> None:
    inc = {"id": "I-1", "severity": "error", "state": "acknowledged", "exchange": "okx", "probe": "book",
           "summary": "s", "started_at": iso_utc(NOW - 65), "acknowledged_by": "alice",
           "silenced_by": "sil-1", "silenced_until": None,
           "timeline": [{"kind": "notified", "data": {"channel": "discord"}},
                        {"kind": "notification_failed", "data": {"channel": "mail"}}]}
    row = present.incident_row(INC(inc), NOW, [])
    assert row["age"].text == "1m" and row["ack"].text == "alice" and row["silenced"].text == "resolve"
    assert row["state"].text == "SILENCED until resolved"
    assert row["notify"].text == "sent discord FAILED mail" and row["notify"].tone == "status-down"
    channels = [ChannelView("ops", state="broken", queue=2)]
    assert present.notify_summary(INC({"timeline": []}), channels).text == "BROKEN ops"
    assert present.notify_summary(IncidentView(), [ChannelView("ops", state="ok", queue=4)]).text == "4 queued"


def test_analysis_shapes_from_engine_fake_and_events() -> None:
    engine = {"incident_id": "I-1", "cached": True, "analysis": {
        "root_cause": "binance 5xx", "severity": "error", "recommended_action": "wait",
        "estimated_recovery": "10m", "confidence": 0.8, "source": "deepseek-chat", "cost_usd": "0.0012"}}
    a = present.normalize_analysis(engine)
    assert a is not None and a.action == "wait" and a.cached and a.source == "deepseek-chat"
    lines = dict(present.analysis_lines(a))
    assert lines["Confidence"] == "80%" and lines["Cost"] == "$0.0012 (cached)" and lines["Recovery"] == "10m"
    flat = present.normalize_analysis({"root_cause": "x", "action": "y", "recovery_estimate": "z", "source": "offline"})
    assert flat is not None and dict(present.analysis_lines(flat))["Source"] == "offline analyzer (no LLM)"
    assert present.normalize_analysis(None) is None
    summary = dict(present.summary_lines({"summary": {"headline": "two down", "details": ["a"], "severity": "error",
                                                       "recommended_action": "wait", "source": "offline"},
                                          "open_incidents": 2}))
    assert summary["Open incidents"] == "2" and summary["Headline"] == "two down"


def test_silence_scopes() -> None:
    inc = INC({"id": "I-1", "rule": "error_rate", "exchange": "okx"})
    assert present.silence_scope_matchers("incident", inc, None)[0]["name"] == "id"
    assert [m["name"] for m in present.silence_scope_matchers("rule", inc, None)] == ["rule", "exchange"]
    assert present.silence_scope_matchers("exchange", None, "bybit")[0]["value"] == "bybit"
    assert present.silence_scope_matchers("exchange", inc, None)[0]["value"] == "okx"
    assert present.silence_scope_matchers("exchange", None, None) == []


def test_error_table_lists_failing_probes_only() -> None:
    healthy = {"counts": {"ok": 10}, "timeouts": 0, "last": {"outcome": "ok"}}
    failed_once = {"counts": {"ok": 9, "http_5xx": 1}, "last": {"outcome": "ok"}}
    failing_now = {"counts": {"ok": 3}, "timeouts": 1, "last": {"outcome": "timeout"}}
    snap = S({"exchanges": {"a": {"probes": {"ping": healthy, "time": failed_once}},
                            "b": {"probes": {"x": failing_now}}}})
    assert [k for k, _ in present.error_rows(snap, ["a", "b"])] == ["a/time", "b/x"]
    assert len(present.error_rows(snap, ["a", "b"], only_failing=False)) == 3


def _probe(ok: int, errors: int, last_ts: float, last_outcome: str = "ok") -> dict[str, object]:
    return {"attempts": ok + errors, "error_rate": errors / (ok + errors), "counts": {"ok": ok, "http_5xx": errors},
            "timeouts": 0, "last_error_code": "http_502", "last": {"ts": iso_utc(last_ts), "outcome": last_outcome}}


def test_error_window_figures_held_between_new_errors() -> None:
    """Tries/Err% that move only because the window slides are redrawn every few seconds; a new error,
    a new row and the last code/message show on the next snapshot."""
    hold = present.ErrorWindowHold(every_s=5.0)

    def shown(t: float, probes: dict[str, dict[str, object]]) -> dict[str, dict[str, str]]:
        snap = S({"ts": iso_utc(NOW + t), "exchanges": {"a": {"probes": probes}}})
        rows = present.error_rows(snap, ["a"], hold=hold)
        return {k: {c: cell.text for c, cell in cells.items()} for k, cells in rows}

    first = shown(0, {"x": _probe(60, 3, NOW - 10)})
    assert first["a/x"]["attempts"] == "63" and first["a/x"]["err"] == "4.8%"
    for t in (1, 2, 3, 4):  # the window fills with good results: figures held
        row = shown(t, {"x": _probe(60 + 4 * t, 3, NOW + t)})["a/x"]
        assert (row["attempts"], row["err"], row["classes"]) == ("63", "4.8%", "http_5xx:3")
    assert shown(5, {"x": _probe(80, 3, NOW + 5)})["a/x"]["attempts"] == "83"  # every 5 s: redrawn
    assert shown(6, {"x": _probe(84, 2, NOW + 6)})["a/x"]["attempts"] == "83"  # an old error aged out: held
    fresh = shown(7, {"x": _probe(87, 3, NOW + 7, "http_5xx")})["a/x"]  # a new error: at once
    assert (fresh["attempts"], fresh["classes"]) == ("90", "http_5xx:3")
    # same count (one aged out as one came in) but a failed latest result not seen before: at once
    assert shown(8, {"x": _probe(91, 3, NOW + 8, "http_5xx")})["a/x"]["attempts"] == "94"
    assert shown(9, {"x": _probe(92, 3, NOW + 8, "http_5xx")})["a/x"]["attempts"] == "94"  # same failure: held
    both = shown(9.5, {"x": _probe(92, 3, NOW + 8, "http_5xx"), "y": _probe(10, 1, NOW + 9)})
    assert both["a/y"]["attempts"] == "11" and both["a/x"]["code"] == "http_502"  # a new row: at once
    assert present.error_rows(S({"exchanges": {"a": {"probes": {"x": _probe(5, 1, NOW)}}}}), ["a"], hold=hold)[0][1][
        "attempts"].text == "6"  # no snapshot time: nothing held


def test_state_column_says_ack_silenced_flapping_in_words() -> None:
    base = {"id": "I-1", "severity": "error", "state": "firing", "started_at": iso_utc(NOW - 65)}
    assert present.incident_state_cell(INC(base), NOW).text == "FIRING"
    assert present.incident_state_cell(INC({**base, "flapping": True}), NOW).text == "FLAPPING"
    acked = {**base, "state": "acknowledged", "acknowledged_by": "alice@ops", "flapping": True}
    assert present.incident_state_cell(INC(acked), NOW).text == "ACK alice@ops"
    silenced = {**acked, "silenced_by": "s-1", "silenced_until": iso_utc(NOW + 299)}
    assert present.incident_state_cell(INC(silenced), NOW).text == "SILENCED 4m59s"
    assert present.incident_state_cell(INC({**base, "state": "resolved"}), NOW).text == "resolved"


def test_verdict_names_the_worst_open_incident_with_countdown_and_action() -> None:
    snap = S({"ts": iso_utc(NOW), "exchanges": {"bybit": {"ban_until": iso_utc(NOW + 587)}, "okx": {}}})
    incidents = [
        {"id": "w", "rule": "latency_p99", "severity": "warning", "state": "firing", "exchange": "okx",
         "started_at": iso_utc(NOW - 5)},
        {"id": "b", "rule": "ip_banned", "severity": "critical", "state": "firing", "exchange": "bybit",
         "started_at": iso_utc(NOW - 13)},
        {"id": "old", "rule": "error_rate", "severity": "critical", "state": "resolved", "exchange": "okx",
         "started_at": iso_utc(NOW - 900)},
    ]
    text = "".join(c.text for c in present.verdict_line(snap, map(INC, incidents)))
    assert text.startswith("CRIT bybit IP BANNED 9m47s left, since 13s")
    assert "- stop bots on this IP" in text and "(+1 open)" in text
    # a silenced critical yields to an unsilenced warning
    incidents[1]["silenced_by"] = "s-1"
    assert "".join(c.text for c in present.verdict_line(snap, map(INC, incidents))).startswith("WARN okx SLOW p99")
    quiet = "".join(c.text for c in present.verdict_line(snap, [INC(incidents[2])]))
    assert quiet.startswith("All clear")


def test_breaker_and_maintenance_countdowns() -> None:
    snap = S({"ts": iso_utc(NOW), "exchanges": {"kraken": {"breaker": {"state": "open",
                                                                       "next_trial_at": iso_utc(NOW + 42)}}},
              "maintenance": [{"exchange": "kraken", "active": True, "next_end": iso_utc(NOW + 1800)}]})
    breaker = IncidentView(rule="circuit_open", exchange="kraken")
    assert present.incident_countdown(breaker, snap, NOW) == "trial in 42s"
    maint = IncidentView(rule="maintenance", exchange="kraken")
    assert present.incident_countdown(maint, snap, NOW) == "ends in 30m00s"


def test_severity_order_survives_without_colour() -> None:
    """NO_COLOR / monochrome: CRIT reversed+bold > ERR underlined+bold > WARN bold > INFO plain."""
    styles = [present.severity_cell(s) for s in ("critical", "error", "warning", "info")]
    assert [(c.text, c.bold, c.extra) for c in styles] == [
        ("CRIT", True, "reverse"), ("ERR", True, "underline"), ("WARN", True, ""), ("INFO", False, "")]


def test_summary_shows_the_three_sentence_text_first() -> None:
    lines = present.summary_lines(
        {"summary": {"headline": "h", "text": "One. Two. Three.", "severity": "HIGH", "source": "offline"},
         "open_incidents": 1}
    )
    assert lines[:3] == [("Open incidents", "1"), ("Summary", "One. Two. Three."), ("Severity", "HIGH")]


def test_paused_exchange_shows_no_stale_breaker() -> None:
    ex = {"status": "paused", "paused": True, "breaker": {"state": "open", "next_trial_at": iso_utc(NOW)}}
    assert present.exchange_row("okx", X(ex), NOW)["breaker"].text == "-"
    ex["status"], ex["paused"] = "down", False
    assert present.exchange_row("okx", X(ex), NOW)["breaker"].text == "OPEN"


def test_sparkline_puts_failures_back_and_says_down_or_banned() -> None:
    # successful latencies only + ok flags of the latest attempts: failures return where they happened
    ex = X({"status": "degraded", "sparkline": [10.0, 20.0, 30.0], "sparkline_ok": [True, False, True, False, True]})
    assert present.spark_points(ex) == [10.0, None, 20.0, None, 30.0]
    cell = present.spark_cell(ex, 5, 50.0)
    assert cell.text.count(SPARK_FAIL) == 2 and cell.mark_tone == "spark-high"
    # 100 % DNS failures: no latency at all, the column is all failure marks (it was blank)
    dns = X({"status": "down", "sparkline": [], "sparkline_ok": [False] * 8, "error_rate": 1.0})
    assert present.spark_cell(dns, 6, 50.0).text == SPARK_FAIL * 6
    # down after a good line: the newest point is a failure, not the last good latency
    down = X({"status": "down", "sparkline": [10.0] * 8})
    assert present.spark_cell(down, 8, 50.0).text.endswith(SPARK_FAIL)
    assert present.spark_cell(X({"status": "banned", "sparkline": [10.0] * 8}), 10, 50.0).text == "BANNED    "


def test_one_scale_per_view_with_its_time_window() -> None:
    exchanges = {"a": X({"sparkline": [5.0, 8.0]}), "b": X({"sparkline": [40.0, 45.0],
                                                             "intervals": {"ping": 1.0, "time": 1.0}})}
    scale = present.view_spark_scale(exchanges, 8)
    assert scale == 50.0
    # the 5 ms row draws low on the shared 50 ms scale (it drew full height on its own 10 ms scale)
    low = present.spark_cell(exchanges["a"], 2, scale).text
    assert set(low) <= set(present.SPARK_LEVELS[:2])
    assert present.spark_window_s(exchanges, 8) == 4.0
    # one slow outlier does not flatten every other line: the scale follows the 90th percentile
    many = {f"x{i}": X({"sparkline": [20.0] * 8}) for i in range(9)} | {"slow": X({"sparkline": [2500.0]})}
    assert present.view_spark_scale(many, 8) == 20.0
    assert present.spark_label(scale, 4.0, 14) == "Lat 0..50ms 4s"


def test_probe_table_rows_from_the_live_snapshot_and_the_store_read_alike() -> None:
    from cryptomon_tui.ui.details import probe_result_cells

    wire = {"ts": iso_utc(NOW), "outcome": "http_5xx", "http_status": 503, "latency_ms": 41.0,
            "phases": {"dns_ms": 1.0, "connect_ms": None, "reused": True}}
    live = probe_result_cells(ProbeView.from_wire({"last": wire}).last or ProbeResultView())
    stored = probe_result_cells(ProbeResultView.from_wire(wire))  # a ``history`` answer's recent row
    assert {k: c.text for k, c in live.items()} == {k: c.text for k, c in stored.items()}
    assert live["at"].text != "-" and live["connect"].text == "reused" and live["http"].text == "503"


def test_minute_points_draw_as_steps() -> None:
    from cryptomon_tui.ui.details import step_xy

    assert step_xy([-2.0, -1.0, 0.0], [10.0, 30.0, 20.0]) == (
        [-2.0, -1.0, -1.0, 0.0, 0.0], [10.0, 10.0, 30.0, 30.0, 20.0])
    assert step_xy([0.0], [5.0]) == ([0.0], [5.0])


def test_uptime_strip_tones_slices_by_error_share() -> None:
    start, end = 0.0, 400.0
    points = [(0.0, 10, 0), (100.0, 100, 1), (200.0, 10, 5)]  # ok, 1 % errors, 50 %; nothing at 300
    cells = present.uptime_strip(points, start, end, 4)
    assert "".join(c.text for c in cells) == "███·"
    assert [c.tone for c in cells] == ["status-ok", "status-degraded", "status-down", "dim-text"]
    # two slices per character: their counts add up
    assert [c.tone for c in present.uptime_strip(points, start, end, 2)] == ["status-degraded", "status-down"]


def test_interval_text_is_the_engines_real_cadence() -> None:
    assert present.interval_text(X({"intervals": {"ping": 0.25, "time": 0.25}})) == "probes every 250ms"
    assert present.interval_text(X({"intervals": {"ping": 1.0, "book": 5.0}})) == "probes every 1s-5s"
    assert present.interval_text(ExchangeView()) == ""


def test_status_line_shows_spend_only_once_the_ledger_answered() -> None:
    """The engine sends ``llm_spend_usd_month: null`` until its ledger first answers: no "$0.00" meanwhile."""
    wire = {"location": "tokyo", "analysis": {"model": "deepseek-chat", "budget_usd_month": 5.0,
                                              "llm_spend_usd_month": None}}
    assert "$" not in "".join(c.text for c in present.status_line(S(wire)))
    wire["analysis"]["llm_spend_usd_month"] = 1.234  # type: ignore[index]
    assert " $1.23/5" in "".join(c.text for c in present.status_line(S(wire)))


def test_a_newer_schema_replaces_the_verdict_never_all_clear() -> None:
    """A daemon on a newer snapshot schema may have renamed ``incidents``: this face must not say All clear."""
    newer = S({"schema": SCHEMA_VERSION + 1, "ts": iso_utc(NOW), "incidents": []})
    text = "".join(c.text for c in present.verdict_line(newer, newer.incidents))
    assert text.startswith("UPGRADE: daemon speaks schema") and "All clear" not in text
    same = S({"schema": SCHEMA_VERSION, "ts": iso_utc(NOW), "incidents": []})
    assert "".join(c.text for c in present.verdict_line(same, same.incidents)).startswith("All clear")
    old = S({"ts": iso_utc(NOW)})  # no schema key: the dicts before the model, read as schema 1
    assert "".join(c.text for c in present.verdict_line(old, old.incidents)).startswith("All clear")
