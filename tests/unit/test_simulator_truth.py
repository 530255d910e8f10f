"""Scoring probe results against a scenario's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cryptomon_tui.cli import main
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.simulator import load_scenario, scenario_from_data
from cryptomon_tui.simulator.truth import score

T0 = 1_700_000_000.0
SCENARIO = scenario_from_data(
    {
        "faults": [
            {"exchange": "okx", "type": "refuse", "start": "2s", "duration": "4s"},
            {"exchange": "bybit", "type": "maintenance", "start": "1s", "duration": "4s"},
        ]
    }
)


def row(t: float, exchange: str, probe: str, outcome: str) -> dict[str, object]:
    return {"ts": iso_utc(T0 + t), "exchange": exchange, "probe": probe, "outcome": outcome}


def test_detected_faults_recovery_and_edges() -> None:
    rows = [row(t / 4, "okx", "ticker", "connect" if 2 <= t / 4 < 6 else "ok") for t in range(40)]
    rows += [row(t / 4, "bybit", "status", "maintenance" if 1 <= t / 4 < 5 else "ok") for t in range(40)]
    rows += [row(t / 4, "bybit", "ticker", "ok") for t in range(40)]  # market data flows on
    rows.append(row(6.2, "okx", "ticker", "timeout"))  # settling after the end: not judged
    rows.append(row(3.0, "okx", "ticker", "skipped_open_circuit"))
    result = score(rows, SCENARIO.expected(), T0)
    assert result.passed, result.summary()
    okx, bybit = sorted(result.faults, key=lambda f: f.expected.exchange, reverse=True)
    assert (okx.expected.exchange, okx.matched, okx.first_match_s) == ("okx", 16, 0.0)
    assert bybit.matched == 16 and not bybit.other
    assert result.healthy_ok > 0 and "PASS" in result.summary()


def test_misses_wrong_outcomes_and_false_alarms_fail() -> None:
    rows = [row(t / 4, "okx", "ticker", "reset" if 2 <= t / 4 < 6 else "ok") for t in range(40)]
    rows.append(row(8.0, "deribit", "time", "http_5xx"))
    rows.append(row(3.0, "bybit", "ticker", "maintenance"))  # bybit tickers are not affected
    result = score(rows, SCENARIO.expected(), T0)
    assert not result.passed and not result.all_detected
    okx = next(f for f in result.faults if f.expected.exchange == "okx")
    assert okx.matched == 0 and okx.other["reset"] == 12
    assert result.false_alarms == {("deribit", "time", "http_5xx"): 1, ("bybit", "ticker", "maintenance"): 1}
    text = result.summary()
    assert "MISS" in text and "FALSE ALARM deribit time: http_5xx" in text and "FAIL" in text


def test_accepts_probe_result_objects() -> None:
    results = [ProbeResult("okx", "ticker", T0 + 3, None, Outcome.CONNECT)]
    faults = score(results, SCENARIO.expected(), T0).faults
    assert [f.matched for f in faults if f.expected.exchange == "okx"] == [1]


def test_cli_scores_a_probe_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = load_scenario("outage").expected()
    lines = []
    for step in range(80):
        t = step / 4
        for exchange in ("binance", "binance_futures", "bybit", "okx", "deribit"):
            active = [e for e in truth if e.exchange == exchange and e.active_at(t)]
            lines.append(json.dumps(row(t, exchange, "ticker", active[0].outcome.value if active else "ok")))
    path = tmp_path / "probes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["simulate", "--scenario", "outage", "--score", str(path)]) == 0
    assert "PASS: 5/5 faults seen" in capsys.readouterr().out
    path.write_text("\n".join(line.replace('"timeout"', '"ok"') for line in lines) + "\n", encoding="utf-8")
    assert main(["simulate", "--scenario", "outage", "--score", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISS" in out and "bybit" in out
    path.write_text("not json\n", encoding="utf-8")
    assert main(["simulate", "--scenario", "outage", "--score", str(path)]) == 2


@pytest.mark.parametrize(
    "line",
    [
        '{"ts": "2026-01-01T00:00:00Z", "probe": "ticker", "outcome": "ok"}',
        '{"ts": "2026-01-01T00:00:00Z", "exchange": 5, "probe": "ticker", "outcome": "ok"}',
        '{"ts": "2026-01-01T00:00:00Z", "exchange": "okx", "probe": "ticker"}',
        "[1, 2]",
        '"text"',
    ],
)
def test_cli_score_names_a_row_that_is_not_a_probe_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    """A row missing exchange/probe/outcome is a clear line-numbered error (exit 2), never a KeyError crash."""
    path = tmp_path / "probes.jsonl"
    path.write_text(json.dumps(row(0.0, "okx", "ticker", "ok")) + "\n" + line + "\n", encoding="utf-8")
    assert main(["simulate", "--scenario", "outage", "--score", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 2: not a probe result" in err
