"""The pipeline shared by daemon and backtest: exact ticks, repeatable events, throughput."""

from __future__ import annotations

import json
import math
import random
import time
from typing import Any

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.engine.pipeline import DetectionPipeline
from cryptomon_tui.incidents.model import EventType, Matcher
from cryptomon_tui.kernel.results import Outcome, ProbeResult

from .detection_helpers import T0, Harness, fail, ok

EXCHANGES = ["binance", "bybit", "okx", "deribit", "binance_futures"]


def _stream(
    seconds: int, seed: int = 1, probes: tuple[str, ...] = ("ping", "time", "ticker", "book")
) -> list[ProbeResult]:
    """Jittered probes with a binance 5xx outage and an okx slowdown in the middle."""
    rnd = random.Random(seed)
    out = []
    for step in range(seconds):
        for ex in EXCHANGES:
            for p in probes:
                t = T0 + step + rnd.random() * 0.9
                bad = ex == "binance" and seconds // 3 <= step < seconds // 3 + 120
                lat = rnd.lognormvariate(math.log(40), 0.3)
                if ex == "okx" and seconds // 2 <= step < seconds // 2 + 300:
                    lat *= 10
                out.append(
                    ProbeResult(
                        ex,
                        p,
                        t,
                        30.0 if bad else lat,
                        Outcome.HTTP_5XX if bad else Outcome.OK,
                        http_status=503 if bad else 200,
                        rate_limit_used=0.2,
                        clock_offset_ms=rnd.uniform(-40, 40) if p == "time" else None,
                        clock_error_ms=15.0 if p == "time" else None,
                    )
                )
    out.sort(key=lambda r: r.started_at)
    return out


def _replay(results: list[ProbeResult]) -> tuple[list[str], DetectionPipeline, float]:
    clock = FakeClock(T0)
    pipe = DetectionPipeline(config_from_data({}), clock, id_seed=42)
    lines = []
    started = time.perf_counter()
    for r in results:
        clock.set(r.started_at)
        lines.extend(json.dumps(e.to_json_dict(), sort_keys=True) for e in pipe.on_result(r))
    elapsed = time.perf_counter() - started
    lines.extend(json.dumps(e.to_json_dict(), sort_keys=True) for e in pipe.tick(clock.now() + 1))
    return lines, pipe, elapsed


@pytest.mark.slow  # replays ~10^5 results
def test_replay_is_repeatable_and_detects_both_faults() -> None:
    results = _stream(2400)
    first, _pipe, elapsed = _replay(results)
    second, _, _ = _replay(results)
    assert first == second
    events = [json.loads(x) for x in first]
    opened = [(e["incident"]["rule"], e["incident"]["exchange"]) for e in events if e["event"] == "opened"]
    assert ("consecutive_failures", "binance") in opened
    assert ("latency_anomaly", "okx") in opened
    assert len(opened) == 2
    assert all(e["ts"].endswith("Z") for e in events)
    resolved = [e["incident"]["exchange"] for e in events if e["event"] == "resolved"]
    assert sorted(resolved) == ["binance", "okx"]
    print(f"\npipeline replay: {len(results) / elapsed:,.0f} results/s ({len(results)} results, {len(first)} events)")


def test_evaluation_runs_on_exact_ticks_of_the_engine_clock() -> None:
    clock = FakeClock(T0 + 0.3)
    cfg = config_from_data({"detection": {"evaluate_every": "2s"}})
    pipe = DetectionPipeline(cfg, clock, id_seed=1)
    ticks = []
    original = pipe.detector.evaluate

    def spy(now: float) -> list:  # type: ignore[type-arg]
        ticks.append(now)
        return original(now)

    pipe.detector.evaluate = spy  # type: ignore[method-assign]
    for t in (0.3, 0.9, 2.5, 2.7, 7.1):
        clock.set(T0 + t)
        pipe.on_result(ProbeResult("binance", "ping", T0 + t, 10.0, Outcome.OK))
    assert [round(t - T0, 6) for t in ticks] == [0.0, 2.0, 4.0, 6.0]
    pipe.tick(T0 + 8.0)
    assert round(ticks[-1] - T0, 6) == 8.0


def test_snapshot_is_json_and_carries_incidents_and_silences() -> None:
    h = Harness()
    h.run(30, ok())
    h.run(10, fail())
    h.pipeline.incidents.silence([Matcher("exchange", "binance")], 900, "looking", "alice")
    snap = h.pipeline.snapshot()
    json.dumps(snap)
    assert snap["exchanges"]["binance"]["probes"]["ping"]["consecutive_failures"] == 10
    assert [i["rule"] for i in snap["incidents"]] == ["consecutive_failures"]
    assert snap["incidents"][0]["silenced_by"] == snap["silences"][0]["id"]
    assert any(r["rule"] == "consecutive_failures" and r["phase"] == "firing" for r in snap["rules"])
    assert h.pipeline.metrics.drain_rollups(h.now + 120)


def test_restart_restores_incidents_without_reopening() -> None:
    h = Harness()
    h.run(30, ok())
    h.run(20, fail())
    inc = h.pipeline.incidents.open_incidents()[0]
    h.pipeline.incidents.ack(inc.id, "alice", "on it")
    state = h.pipeline.incidents.export_state()

    h2 = Harness()
    h2.clock.set(h.now)
    h2.pipeline.incidents.restore(
        state["incidents"], state["silences"], state["windows"], grace_s=h2.config.incidents.restore_grace
    )
    h2.run(30, fail())
    assert h2.opened() == [] and h2.of(EventType.REOPENED) == []
    [still] = h2.pipeline.incidents.open_incidents()
    assert still.id == inc.id and still.acknowledged_by == "alice"
    h2.run(200, ok())
    assert h2.opened() == []  # whatever detection re-learns after the restart continues the same incident
    assert {e.incident.id for e in h2.events} == {inc.id}
    assert h2.pipeline.incidents.open_incidents() == []


@pytest.mark.parametrize("rule_fail", [Outcome.HTTP_5XX, Outcome.MAINTENANCE])
def test_a_restored_incident_whose_problem_ended_resolves_on_fresh_healthy_probes(rule_fail: Outcome) -> None:
    """Issue 14 item 7: no fixed 5-minute grace; three healthy answers after the restart end it."""
    h = Harness()
    h.run(30, ok())
    h.run(20, fail(outcome=rule_fail))
    [inc] = h.pipeline.incidents.open_incidents()
    state = h.pipeline.incidents.export_state()

    h2 = Harness()
    h2.clock.set(h.now + 600)  # the daemon was down 10 minutes; the problem ended meanwhile
    restarted = h2.now
    h2.pipeline.incidents.restore(
        state["incidents"], state["silences"], state["windows"], grace_s=h2.config.incidents.restore_grace
    )
    h2.run(15, ok())
    [done] = h2.resolved()
    assert done.incident.id == inc.id and done.ts - restarted <= 5.0
    assert h2.pipeline.incidents.open_incidents() == []
    # and a restored incident on an exchange that still fails stays open
    h3 = Harness()
    h3.clock.set(h.now + 600)
    h3.pipeline.incidents.restore(
        state["incidents"], state["silences"], state["windows"], grace_s=h3.config.incidents.restore_grace
    )
    h3.run(60, fail(outcome=rule_fail))
    assert [i.id for i in h3.pipeline.incidents.open_incidents()] == [inc.id] and h3.resolved() == []


def test_staggered_outages_on_three_of_five_are_not_our_network() -> None:
    """Like the simulator's outage scenario: separate faults overlap, one exchange still answers."""
    h = Harness()
    h.run(30, *[ok(ex) for ex in EXCHANGES])
    h.run(
        60,
        ok("binance"),
        fail("bybit", outcome=Outcome.TIMEOUT),
        fail("okx", outcome=Outcome.CONNECT),
        fail("deribit", outcome=Outcome.MAINTENANCE),
        fail("binance_futures", outcome=Outcome.RESET),
        every=0.25,
    )
    opened = sorted((e.incident.rule, e.incident.exchange) for e in h.opened())
    assert opened == [
        ("consecutive_failures", "binance_futures"),
        ("consecutive_failures", "bybit"),
        ("consecutive_failures", "okx"),
        ("maintenance", "deribit"),
    ]


@pytest.mark.slow  # replays ~10^5 results
def test_throughput_of_a_dense_replay_is_reported() -> None:
    results = _stream(1500, seed=3)
    _, pipe, elapsed = _replay(results)
    rate = len(results) / elapsed
    print(f"\npipeline dense replay: {rate:,.0f} results/s; evaluations {pipe.detector.evaluations}")
    assert pipe.metrics.recorded == len(results)


def test_hot_reload_keeps_state_and_resolves_a_disabled_rule() -> None:
    h = Harness()
    h.run(30, ok())
    h.run(20, fail())
    [inc] = h.pipeline.incidents.open_incidents()
    assert inc.rule == "consecutive_failures"
    series_before = h.pipeline.metrics.series("binance", "ping")
    new = config_from_data(
        {
            "detection": {"rules": {"consecutive_failures": {"enabled": False}, "error_rate": {"enabled": False}}},
            "incidents": {"reopen_cooldown": "1h"},
        }
    )
    h.pipeline.config = new  # what the daemon's reload does
    h.run(5, fail())
    assert [e.incident.id for e in h.resolved()] == [inc.id]
    assert h.pipeline.metrics.series("binance", "ping") is series_before
    assert h.pipeline.incidents.config.reopen_cooldown == 3600
    h.run(60, fail())
    assert h.opened() == [h.events[0]]  # nothing new: the rule is off


def test_snapshot_lists_maintenance_windows_with_their_next_occurrence() -> None:
    h = Harness()
    w, _ = h.pipeline.incidents.add_maintenance("binance", T0 + 60, T0 + 120, "upgrade", recurrence="daily", by="ops")
    snap = h.pipeline.snapshot()
    [entry] = snap["maintenance"]
    assert entry["id"] == w.id and entry["active"] is False and entry["created_by"] == "ops"
    assert entry["next_start"].startswith("2023-11-14T22:14")
    h.run(70, ok())
    assert h.pipeline.snapshot()["maintenance"][0]["active"] is True


def test_a_failing_evaluation_is_logged_and_monitoring_goes_on(caplog: Any) -> None:
    h = Harness()
    original = h.pipeline.detector.evaluate
    calls = iter(range(10**6))

    def flaky(now: float) -> list:  # type: ignore[type-arg]
        if next(calls) == 5:
            raise RuntimeError("rule bug")
        return original(now)

    h.pipeline.detector.evaluate = flaky  # type: ignore[method-assign]
    h.run(30, ok())
    h.run(10, fail())
    assert h.pipeline.evaluation_errors == 1
    assert "detection evaluation failed" in caplog.text
    assert [e.incident.rule for e in h.opened()] == ["consecutive_failures"]
