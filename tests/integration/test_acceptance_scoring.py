"""The acceptance scoring itself (bench/bench_detect.py): synthetic event streams against a known ground truth,
so a lenient scorer cannot hide a detection failure in the acceptance tests or the benchmark."""

from __future__ import annotations

from typing import Any

from bench.bench_detect import ScenarioScore, calm_rows, plan_targets, score_events
from cryptomon_tui.config import config_from_data
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.simulator import scenario_from_data

T0 = 1_800_000_000.0
SCENARIO = scenario_from_data(
    {
        "name": "scoring",
        "faults": [
            {"exchange": "binance", "type": "errors", "start": "2s", "duration": "5s", "status": 500},
            {"exchange": "okx", "type": "maintenance", "start": "3s", "duration": "5s"},
            {"exchange": "bybit", "type": "rate_limit", "start": "10s", "duration": "5s", "retry_after": "2s"},
            {"exchange": "bybit", "type": "ban", "start": "15s", "duration": "5s"},
            {"exchange": "all", "type": "latency", "ms": "normal(4, 1)"},
        ],
    }
)


def ev(t: float, event: str, ident: str, rule: str, exchange: str | None) -> dict[str, Any]:
    return {"ts": iso_utc(T0 + t), "event": event,
            "incident": {"id": ident, "rule": rule, "exchange": exchange, "summary": f"{rule} on {exchange}"}}


def score(events: list[dict[str, Any]]) -> ScenarioScore:
    config = config_from_data({})
    targets = plan_targets(SCENARIO, SCENARIO.expected(), config)
    return score_events("scoring", events, targets, T0, config=config)


GOOD = [
    ev(2.5, "opened", "I-1", "consecutive_failures", "binance"),
    ev(3.2, "opened", "I-2", "maintenance", "okx"),
    ev(9.0, "resolved", "I-1", "consecutive_failures", "binance"),
    ev(8.5, "resolved", "I-2", "maintenance", "okx"),
    ev(15.1, "opened", "I-3", "rate_limited", "bybit"),
    ev(16.0, "updated", "I-3", "ip_banned", "bybit"),
    ev(22.0, "resolved", "I-3", "ip_banned", "bybit"),
]


def test_a_correct_run_meets_every_target() -> None:
    s = score(GOOD)
    assert s.problems() == []
    assert [t.fault.type for t in s.must] == ["errors", "maintenance", "rate_limit", "ban"]  # jitter is not a fault
    ban = next(t for t in s.must if t.fault.type == "ban")
    assert (ban.how, ban.rule, ban.incidents) == ("escalated", "ip_banned", {"I-3"})
    errors = next(t for t in s.must if t.fault.type == "errors")
    assert errors.detect_s is not None and abs(errors.detect_s - 0.5) < 1e-6
    assert errors.resolved_after_s is not None and abs(errors.resolved_after_s - 2.0) < 1e-6


def test_a_second_incident_for_one_fault_is_reported() -> None:
    s = score([*GOOD, ev(4.0, "opened", "I-9", "error_rate", "binance")])
    assert any("binance errors" in p and "2 incidents" in p for p in s.problems()), s.problems()


def test_an_incident_outside_any_fault_is_false() -> None:
    s = score([*GOOD, ev(30.0, "opened", "I-8", "latency_p99", "deribit"),
               ev(5.0, "opened", "I-7", "local_network", None)])
    assert [e["incident"]["id"] for e in s.false_incidents] == ["I-7", "I-8"]


def test_a_generic_failure_rule_for_maintenance_is_a_miss() -> None:
    events = [e for e in GOOD if e["incident"]["id"] != "I-2"] + [ev(3.2, "opened", "I-2", "error_rate", "okx")]
    s = score(events)
    assert any("okx maintenance" in p and "not detected" in p for p in s.problems()), s.problems()


def test_a_slow_hard_failure_misses_the_three_interval_budget() -> None:
    events = [ev(4.0, "opened", "I-1", "consecutive_failures", "binance") if e["incident"]["id"] == "I-1"
              and e["event"] == "opened" else e for e in GOOD]
    assert any("detected after 2.00s" in p for p in score(events).problems())


def test_a_reopened_incident_counts_as_still_open() -> None:
    s = score([*GOOD, ev(9.5, "reopened", "I-1", "consecutive_failures", "binance")])
    errors = next(t for t in s.must if t.fault.type == "errors")
    assert errors.reopens == 1 and errors.resolved_after_s is None


def test_calm_rows_are_a_plausible_healthy_day() -> None:
    rows = calm_rows(0.5)
    assert {(r["exchange"], r["probe"]) for r in rows} and len({r["exchange"] for r in rows}) == 5
    assert len({(r["exchange"], r["probe"]) for r in rows}) == 15
    assert all(r["latency_ms"] is not None for r in rows if r["outcome"] == "ok")
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert 0.45 * 3600 / 5 * 15 < len(rows) < 0.55 * 3600 / 5 * 15
    assert calm_rows(0.5) == rows  # seeded: the same day every run
