"""Detection benchmark (``make bench-detect``): does the real engine open one trustworthy incident per fault?

Three parts:
  1. Every built-in simulator scenario runs against the real engine (``engine.engine.Engine``: probing,
     metrics, detection, incidents) at a fast probe interval, and its incident events are scored against
     the simulator's ground truth (``Simulator.expected()``): faults detected / injected, time to detect,
     incidents per fault, false incidents, time to resolve after the fault ends.
  2. 24 h of calm probe results (5 exchanges x 3 probes at the default 5 s interval, with realistic
     jitter, latency noise, GC-like spikes and rare isolated failures) are generated and replayed with the
     ``cryptomon backtest`` machinery: the false-incident rate of a day in which nothing is wrong.
  3. Backtest throughput (results/s), with and without parsing the CSV.

Scoring is shared with the acceptance tests (tests/integration/test_acceptance_*.py) so that "one
incident per fault" means the same thing in both. Usage::

    python -m bench.bench_detect [--quick] [--interval 250ms] [--parallel 2] [--scenario NAME] [--record] [--strict]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import io
import logging
import math
import random
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptomon_tui.detection.streams import FOR_S as STREAM_FOR_S
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.streams import StreamOutcome
from cryptomon_tui.kernel.units import parse_iso_utc
from cryptomon_tui.simulator.scenario import ExpectedFault, Scenario

RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"

# --- what a correct engine may answer to each fault ---------------------------------------------

_FAILURE_RULES = frozenset({"error_rate", "consecutive_failures", "circuit_open"})
# Rules that may legitimately open for a fault whose probes see this outcome. A cause rule (maintenance,
# ban, 429) is the only right answer for its fault: a generic failure rule there means the cause was missed.
OUTCOME_RULES: dict[Outcome, frozenset[str]] = {
    Outcome.TIMEOUT: _FAILURE_RULES | {"timeouts"},
    Outcome.DNS: _FAILURE_RULES,
    Outcome.CONNECT: _FAILURE_RULES,
    Outcome.TLS: _FAILURE_RULES,
    Outcome.RESET: _FAILURE_RULES,
    Outcome.HTTP_5XX: _FAILURE_RULES,
    Outcome.HTTP_4XX: _FAILURE_RULES,
    Outcome.BAD_PAYLOAD: _FAILURE_RULES,
    Outcome.EXCHANGE_ERROR: _FAILURE_RULES,
    Outcome.AUTH: _FAILURE_RULES,
    Outcome.MAINTENANCE: frozenset({"maintenance"}),
    Outcome.RATE_LIMITED: frozenset({"rate_limited"}),
    Outcome.IP_BANNED: frozenset({"ip_banned"}),
    Outcome.CLOCK_SKEW: frozenset({"clock_offset"}),
}
# Faults whose probes stay ok: only a metric rule can see them.
QUIET_FAULT_RULES: dict[str, frozenset[str]] = {
    "latency": frozenset({"latency_p99", "latency_anomaly"}),
    "drift": frozenset({"latency_p99", "latency_anomaly"}),
    "weight_climb": frozenset({"rate_limit_usage"}),
    "clock_skew": frozenset({"clock_offset"}),
}
# Hard failures must be detected within 3 probe intervals (plus the probe timeout for a hang).
HARD_OUTCOMES = frozenset(
    {Outcome.TIMEOUT, Outcome.CONNECT, Outcome.DNS, Outcome.RESET, Outcome.HTTP_5XX, Outcome.IP_BANNED,
     Outcome.MAINTENANCE}
)
GRACE_S = 0.5  # a fault's edges: t0 is an estimate and a probe may be in flight across the edge
SETTLE_S = 2.0  # an incident may still open this long after its fault ended (plus the rule's `for`)


# Stream faults (REST stays healthy): the stream rules that read them right. A heartbeat failure makes the
# server drop the socket, so its drops and reconnects are the same problem.
_STREAM_DOWN = frozenset({"ws_disconnected", "ws_reconnect_storm"})
STREAM_RULES_FOR: dict[StreamOutcome, frozenset[str]] = {
    StreamOutcome.WS_STALE: frozenset({"ws_stale"}),
    StreamOutcome.WS_LAG: frozenset({"ws_lag"}),
    StreamOutcome.WS_GAP: frozenset({"ws_gap"}),
    StreamOutcome.WS_HEARTBEAT: frozenset({"ws_heartbeat"}) | _STREAM_DOWN,
    StreamOutcome.WS_DISCONNECTED: _STREAM_DOWN,
    StreamOutcome.WS_RECONNECT_STORM: _STREAM_DOWN,
}


# What each stream verdict needs before it can be given, at the demo's stream rates (10 msgs/s): silence
# past the learnt threshold (the 3-5 s floor); the lag median over its 10 s window; four drops of an
# established connection (reconnects back off 0.5-1 s, 1-2 s, 2-4 s ... between them); a hole at once;
# a dropped or unanswered heartbeat at once after the server's own timeout.
STREAM_BUDGET_S: dict[str, float] = {
    "ws_stale": 5.0, "ws_lag": 10.0, "ws_reconnect_storm": 20.0, "ws_disconnected": 10.0, "ws_gap": 1.0,
    "ws_heartbeat": 11.0,
}


def acceptable_rules(fault: ExpectedFault) -> frozenset[str]:
    """Rules that are a sensible reading of ``fault``."""
    if fault.stream_outcome is not None:
        return STREAM_RULES_FOR.get(fault.stream_outcome, frozenset())  # ok (shutdown notice, garbage): none
    if fault.outcome is Outcome.OK or fault.type in ("latency", "drift", "weight_climb"):
        return QUIET_FAULT_RULES.get(fault.type, frozenset())
    if fault.type == "clock_skew":
        return frozenset({"clock_offset"})
    return OUTCOME_RULES.get(fault.outcome, _FAILURE_RULES)


@dataclass
class Target:
    """One injected fault and what the engine did about it."""

    fault: ExpectedFault
    rules: frozenset[str]
    must_detect: bool  # False: a fault below every threshold (jitter, a small drift) that no rule should see
    onset: float  # seconds from scenario start at which it becomes detectable (a ramp crosses the threshold)
    hard: bool = False
    settle: float = SETTLE_S
    paused_s: float = 0.0  # a preceding 429's Retry-After on the same exchange: probes rightly wait it out
    incidents: set[str] = field(default_factory=set)  # incidents opened for it, or escalated to cover it
    reopens: int = 0
    detected_at: float | None = None
    rule: str | None = None
    detected_by: str | None = None
    how: str = ""  # opened | reopened | escalated
    resolved_after_s: float | None = None  # resolved - end of the last fault its incident covered

    @property
    def detect_s(self) -> float | None:
        return None if self.detected_at is None else self.detected_at - self.onset


def _ramp_crossing(start: float, end: float, v0: float, v1: float, threshold: float) -> float | None:
    """When a value moving linearly from v0 to v1 over [start, end] first exceeds ``threshold``."""
    if v0 > threshold:
        return start
    if v1 <= threshold or v1 == v0:
        return None
    return start + (threshold - v0) / (v1 - v0) * (end - start)


def plan_targets(
    scenario: Scenario,
    expected: Sequence[ExpectedFault],
    config: Any,
    tolerances: Mapping[str, tuple[float, float]] | None = None,
) -> list[Target]:
    """Decide, per injected fault, whether a correct engine must detect it and from when."""
    rules_cfg = config.detection.rules
    out: list[Target] = []
    for e in expected:
        rules = acceptable_rules(e)
        fault = scenario.faults[e.fault_index] if 0 <= e.fault_index < len(scenario.faults) else None
        onset: float | None = e.start
        if e.type in ("latency", "drift"):
            typical = getattr(getattr(fault, "ms", None), "typical_ms", 0.0)
            top = max(float(getattr(fault, "to_ms", 0.0) or 0.0), float(typical or 0.0))
            onset = e.start if top > rules_cfg.latency_p99.threshold_ms else None
        elif e.type == "weight_climb":
            onset = _ramp_crossing(e.start, e.end, float(getattr(fault, "usage_from", 0.0)),
                                   float(getattr(fault, "usage_to", 0.0)), rules_cfg.rate_limit_usage.threshold)
        elif e.type == "clock_skew":
            ahead_tol, behind_tol = (tolerances or {}).get(e.exchange, (1000.0, 5000.0))
            v0 = float(getattr(fault, "offset_ms", 0.0))
            to_ms = getattr(fault, "to_ms", None)
            v1 = float(to_ms) if to_ms is not None else v0
            # server behind (negative) = host ahead; server ahead = host behind
            ahead = _ramp_crossing(e.start, e.end, -v0, -v1, rules_cfg.clock_offset.ahead_share * ahead_tol)
            behind = _ramp_crossing(e.start, e.end, v0, v1, rules_cfg.clock_offset.behind_share * behind_tol)
            onset = min((t for t in (ahead, behind) if t is not None), default=None)
        if e.stream_outcome is not None and not rules:
            onset = None  # a planned shutdown or garbage frames: nothing to detect
        paused = 0.0
        for prev in expected:
            if prev.exchange == e.exchange and prev.type == "rate_limit" and abs(prev.end - e.start) < 0.01:
                prev_fault = scenario.faults[prev.fault_index] if 0 <= prev.fault_index < len(scenario.faults) else None
                paused = float(getattr(prev_fault, "retry_after", None) or 0.0)
        longest_for = max((float(getattr(getattr(rules_cfg, r, None), "for_", 0.0) or 0.0) for r in rules), default=0.0)
        out.append(
            Target(
                fault=e,
                rules=rules,
                must_detect=onset is not None and onset < e.end,
                onset=onset if onset is not None else e.start,
                hard=e.outcome in HARD_OUTCOMES and e.rate >= 1.0,
                settle=SETTLE_S + longest_for,
                paused_s=paused,
            )
        )
    return out


@dataclass
class ScenarioScore:
    name: str
    interval_s: float
    timeout_s: float
    targets: list[Target]
    false_incidents: list[dict[str, Any]]
    events: list[dict[str, Any]]
    run_s: float
    opened: int = 0
    config_rules: Any = None  # detection.rules of the run's config (for the rule budgets)
    intervals: dict[str, dict[str, float]] = field(default_factory=dict)  # effective, after budget stretching

    def interval_for(self, t: Target) -> float:
        """The fastest effective interval among the probes that see the fault (Bybit's status: 1 s)."""
        probes = self.intervals.get(t.fault.exchange) or {}
        seen = [v for p, v in probes.items() if v and (t.fault.probes is None or p in t.fault.probes)]
        return max(self.interval_s, min(seen)) if seen else self.interval_s

    @property
    def must(self) -> list[Target]:
        return [t for t in self.targets if t.must_detect]

    @property
    def detected(self) -> int:
        return sum(1 for t in self.must if t.detected_at is not None)

    @property
    def one_per_fault(self) -> bool:
        return all(len(t.incidents) == 1 for t in self.must)

    def problems(self) -> list[str]:
        """Everything that misses a target, in words (empty = all targets met)."""
        out = []
        for t in self.must:
            e = t.fault
            where = f"{e.exchange} {e.type} ({e.start:g}-{e.end:g}s)"
            if t.detected_at is None:
                out.append(f"{where}: not detected (acceptable rules {sorted(t.rules)}; "
                           f"incidents {sorted(t.incidents)})")
            elif len(t.incidents) != 1:
                out.append(f"{where}: {len(t.incidents)} incidents {sorted(t.incidents)}")
            if t.hard and t.detect_s is not None and t.detect_s > self.hard_budget(t):
                out.append(f"{where}: detected after {t.detect_s:.2f}s > {self.hard_budget(t):.2f}s (3 probe intervals"
                           f"{' + timeout' if e.outcome is Outcome.TIMEOUT else ''}"
                           f"{' + Retry-After' if t.paused_s else ''})")
            elif (not t.hard and e.rate >= 1.0 and t.detect_s is not None and t.rule
                  and t.detect_s > self.rule_budget(t)):  # intermittent faults: detected at all is the target
                out.append(f"{where}: {t.rule} after {t.detect_s:.2f}s > its for + 3 probe intervals "
                           f"({self.rule_budget(t):.2f}s)")
        for ev in self.false_incidents:
            inc = ev["incident"]
            out.append(f"false incident {inc['id']} {inc['rule']} on {inc['exchange']} at {ev['_rel']:.2f}s: "
                       f"{inc['summary']}")
        return out

    def rule_budget(self, t: Target) -> float:
        """A rule with a ``for``: that long plus 3 probe intervals (and a pause the probes honour).

        Stream rules judge a stream, not probes: their budget is what the verdict itself needs
        (STREAM_BUDGET_S) plus the rule's ``for`` and one evaluation tick."""
        if t.rule in STREAM_BUDGET_S:
            return STREAM_BUDGET_S[t.rule] + STREAM_FOR_S.get(t.rule, 0.0) + 1.0
        rules = self.config_rules
        hold = float(getattr(getattr(rules, t.rule or "", None), "for_", 0.0) or 0.0) if rules is not None else 0.0
        return hold + 3 * self.interval_for(t) + self.timeout_s + t.paused_s

    def hard_budget(self, t: Target) -> float:
        """3 probe intervals (+ the probe timeout for a hang, + a preceding Retry-After the probes honour)."""
        timeout = self.timeout_s if t.fault.outcome is Outcome.TIMEOUT else 0.0
        return 3 * self.interval_for(t) + timeout + t.paused_s


_OPENING = ("opened", "reopened")


def score_events(
    name: str,
    events: Iterable[Mapping[str, Any]],
    targets: list[Target],
    t0: float,
    *,
    interval_s: float = 0.25,
    timeout_s: float = 1.0,
    run_s: float = 0.0,
    config: Any = None,
    intervals: Mapping[str, Mapping[str, float]] | None = None,
) -> ScenarioScore:
    """Attribute every incident event (``--events-jsonl`` dicts) to the fault it answers; collect the rest."""
    evs = [dict(e) for e in events]
    for e in evs:
        e["_rel"] = parse_iso_utc(e["ts"]) - t0
    evs.sort(key=lambda e: e["_rel"])
    score = ScenarioScore(name, interval_s, timeout_s, targets, [], evs, run_s,
                          config_rules=None if config is None else config.detection.rules,
                          intervals={ex: dict(v) for ex, v in (intervals or {}).items()})
    rule_of: dict[str, str] = {}
    covers: dict[str, list[Target]] = {}
    resolved_at: dict[str, float] = {}

    def candidates(exchange: str | None, t: float) -> list[Target]:
        return [
            x for x in targets
            if x.fault.exchange == exchange and x.fault.start - GRACE_S <= t <= x.fault.end + x.settle
        ]

    def attribute(exchange: str | None, t: float, rule: str) -> Target | None:
        # only faults a correct engine must see: an incident for sub-threshold jitter or drift is a false one
        found = [x for x in candidates(exchange, t) if x.must_detect]
        fitting = [x for x in found if rule in x.rules]
        if fitting:  # the fault this rule answers; among chained faults the latest started
            return max(fitting, key=lambda x: (x.detected_at is None, x.fault.start))
        return max(found, key=lambda x: x.fault.start) if found else None

    def mark(target: Target, ident: str, rule: str, t: float, how: str) -> None:
        target.incidents.add(ident)
        covers.setdefault(ident, []).append(target)
        if target.detected_at is None and rule in target.rules and t >= target.onset - GRACE_S:
            target.detected_at, target.rule, target.detected_by, target.how = t, rule, ident, how

    for ev in evs:
        inc = ev["incident"]
        ident, rule, exchange, t, kind = inc["id"], inc["rule"], inc.get("exchange"), ev["_rel"], ev["event"]
        if kind in _OPENING:
            if kind == "opened":
                score.opened += 1
            target = attribute(exchange, t, rule)
            if target is None:
                score.false_incidents.append(ev)
            else:
                if kind == "reopened":
                    target.reopens += 1
                mark(target, ident, rule, t, kind)
        elif kind == "updated" and rule != rule_of.get(ident, rule):
            target = attribute(exchange, t, rule)  # an escalation (429 -> ban) inside one incident
            if target is not None and rule in target.rules:
                mark(target, ident, rule, t, "escalated")
        elif kind == "resolved":
            resolved_at[ident] = t
        if kind == "reopened":
            resolved_at.pop(ident, None)
        rule_of[ident] = rule
    for target in targets:
        if target.detected_by and target.detected_by in resolved_at:
            chain_end = max(x.fault.end for x in covers.get(target.detected_by, [target]))
            target.resolved_after_s = resolved_at[target.detected_by] - chain_end
    return score


# --- live scenarios through the real engine -----------------------------------------------------


async def run_scenario(name: str, interval_s: float, tail_s: float, timeout_s: float = 1.0) -> ScenarioScore:
    """One cycle of a built-in scenario (not looping), then ``tail_s`` of calm for the recoveries."""
    from cryptomon_tui.cli.daemon_cmd import demo_config
    from cryptomon_tui.config import config_from_data
    from cryptomon_tui.engine.engine import Engine
    from cryptomon_tui.incidents.model import IncidentEvent
    from cryptomon_tui.simulator import Simulator, load_scenario

    scenario = load_scenario(name).model_copy(update={"loop": False})
    sim = Simulator(scenario)
    await sim.start()
    events: list[dict[str, Any]] = []
    try:
        t0 = time.time() - sim.elapsed()
        config = demo_config(config_from_data({}), sim.base_urls)
        for ex in config.exchanges.values():
            if ex.enabled:
                ex.interval = interval_s
                ex.timeout = timeout_s
        monitor = Engine(config, use_store=False, notify=False)

        def sink(event: IncidentEvent) -> None:
            events.append(event.to_json_dict())

        monitor.add_event_sink(sink)
        await monitor.start()
        intervals: dict[str, dict[str, float]] = {}
        for ex_name, state in monitor.runner.probe_state().items():
            probes: Any = state.get("probes") or {}
            intervals[ex_name] = {p: float(v.get("interval_s") or interval_s) for p, v in probes.items()}
        try:
            horizon = float(scenario.duration or 60.0) + tail_s
            await asyncio.sleep(max(0.0, horizon - sim.elapsed()))
        finally:
            await monitor.stop()
        tolerances = monitor._tolerances(config)
    finally:
        await sim.stop()
    targets = plan_targets(scenario, scenario.expected(), config, tolerances)
    return score_events(name, events, targets, t0, interval_s=interval_s, timeout_s=timeout_s, run_s=horizon,
                        config=config, intervals=intervals)


async def run_scenarios(names: Sequence[str], interval_s: float, tail_s: float, parallel: int) -> list[ScenarioScore]:
    gate = asyncio.Semaphore(max(1, parallel))

    async def one(name: str) -> ScenarioScore:
        async with gate:
            print(f"  running {name} ...", file=sys.stderr, flush=True)
            return await run_scenario(name, interval_s, tail_s)

    return list(await asyncio.gather(*(one(n) for n in names)))


# --- 24 h of calm through the backtest ----------------------------------------------------------

CALM_EXCHANGES: dict[str, tuple[float, tuple[str, ...]]] = {
    # exchange -> (typical latency from a well-placed host in ms, probes)
    "binance": (22.0, ("time", "ticker", "book")),
    "binance_futures": (28.0, ("time", "ticker", "book")),
    "bybit": (35.0, ("time", "ticker", "status")),
    "okx": (48.0, ("time", "ticker", "status")),
    "deribit": (60.0, ("time", "ticker", "status")),
}
STRAY_FAILURES: tuple[tuple[Outcome, int | None, str | None], ...] = (
    (Outcome.TIMEOUT, None, None), (Outcome.RESET, None, None), (Outcome.HTTP_5XX, 502, "http_502"),
)


def calm_rows(hours: float, interval_s: float = 5.0, seed: int = 24, stray_rate: float = 1e-4) -> list[dict[str, Any]]:
    """Probe records of a healthy day: jittered schedule, lognormal latency with diurnal drift, GC-like
    spikes (1 in 500, 3-8x), a few slow minutes at the top of some hours (exchange load), rare isolated
    failures (timeouts, resets, a 502), low rate-limit usage with the odd burst, clock offsets within
    +-40 ms."""
    rng = random.Random(seed)
    start = _dt.datetime(2026, 3, 2, tzinfo=_dt.UTC).timestamp()
    end = start + hours * 3600
    rows: list[dict[str, Any]] = []
    for exchange, (base_ms, probes) in CALM_EXCHANGES.items():
        for probe in probes:
            t = start + rng.uniform(0, interval_s)
            offset = rng.gauss(0, 10)
            while t < end:
                hour = (t - start) / 3600
                level = base_ms * (1.0 + 0.15 * math.sin(2 * math.pi * hour / 24))  # busier in the evening
                if (t % 3600) < 120 and rng.random() < 0.5:
                    level *= 1.6  # hourly funding/settlement load
                latency: float | None = rng.lognormvariate(math.log(level), 0.25)
                if rng.random() < 0.002:
                    latency = (latency or level) * rng.uniform(3, 8)
                outcome: Outcome = Outcome.OK
                status: int | None = 200
                code: str | None = None
                if rng.random() < stray_rate:
                    outcome, status, code = rng.choice(STRAY_FAILURES)
                    latency = None if outcome is Outcome.TIMEOUT else rng.uniform(1, 50)
                offset = max(-40.0, min(40.0, offset + rng.gauss(0, 1.5)))
                usage = None
                if exchange in ("binance", "binance_futures", "bybit"):
                    usage = min(0.6, abs(rng.gauss(0.03, 0.01)) + (0.2 if rng.random() < 0.001 else 0.0))
                rows.append(
                    {
                        "ts": round(t, 6),
                        "exchange": exchange,
                        "probe": probe,
                        "latency_ms": None if latency is None else round(latency, 3),
                        "outcome": outcome.value,
                        "http_status": status,
                        "error_code": code,
                        "rate_limit_used": None if usage is None else round(usage, 4),
                        "clock_offset_ms": round(offset, 2) if probe == "time" else None,
                    }
                )
                t += interval_s * (1 + rng.uniform(-0.1, 0.1))
    rows.sort(key=lambda r: r["ts"])
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    from cryptomon_tui.backtest import EXPORT_COLUMNS

    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(EXPORT_COLUMNS) + "\n")
        for r in rows:
            f.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in EXPORT_COLUMNS) + "\n")


@dataclass
class CalmReplay:
    hours: float
    rows: int
    stray_failures: int
    events: list[dict[str, Any]]
    replay_rate: float  # results/s through detection alone
    total_rate: float  # results/s including reading the CSV
    replay_s: float
    total_s: float

    @property
    def false_incidents(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] in _OPENING]


def calm_backtest(hours: float, interval_s: float = 5.0) -> CalmReplay:
    from cryptomon_tui.backtest import read_input, replay
    from cryptomon_tui.config import config_from_data
    from cryptomon_tui.incidents.model import IncidentEvent

    rows = calm_rows(hours, interval_s)
    stray = sum(1 for r in rows if r["outcome"] != "ok")
    events: list[dict[str, Any]] = []

    def emit(event: IncidentEvent) -> None:
        events.append(event.to_json_dict())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calm.csv"
        write_csv(rows, path)
        del rows
        started = time.perf_counter()
        parsed = read_input(path)
        summary = replay(parsed.results, config_from_data({}), emit)
        total = time.perf_counter() - started
    return CalmReplay(hours, summary.results, stray, events, summary.rate, summary.results / total,
                      summary.elapsed_s, total)


# --- report ---------------------------------------------------------------------------------------


def _fmt(value: float | None, unit: str = "s") -> str:
    return "-" if value is None else f"{value:.2f}{unit}"


def scenario_table(scores: Sequence[ScenarioScore]) -> str:
    lines = [
        "| scenario | exchange | fault (s) | rule (how) | detect after onset | incidents | resolved after end |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        for t in s.targets:
            e = t.fault
            if not t.must_detect and not t.incidents:
                continue
            rule = f"{t.rule} ({t.how})" if t.rule else ("**missed**" if t.must_detect else "- (below thresholds)")
            n = len(t.incidents) + 0
            inc = f"{n}" + (f" (+{t.reopens} reopen)" if t.reopens else "")
            resolved = _fmt(t.resolved_after_s) if t.detected_by else "-"
            if t.detected_by and t.resolved_after_s is None:
                resolved = "open at end"
            kind = e.type + ("" if e.rate >= 1 else f" {e.rate:.0%}")
            lines.append(f"| {s.name} | {e.exchange} | {kind} {e.start:g}-{e.end:g} | {rule} | "
                         f"{_fmt(t.detect_s)} | {inc} | {resolved} |")
        for ev in s.false_incidents:
            inc = ev["incident"]
            lines.append(f"| {s.name} | {inc['exchange']} | **false incident** at {ev['_rel']:.1f} | "
                         f"{inc['rule']} | - | 1 | - |")
    return "\n".join(lines)


def summary_table(scores: Sequence[ScenarioScore]) -> str:
    lines = [
        "| scenario | detected / injected | incidents per fault | false incidents | hard failures <= 3 intervals* |",
        "|---|---|---|---|---|",
    ]
    for s in scores:
        per = [len(t.incidents) for t in s.must]
        per_txt = "-" if not per else (f"{min(per)}" if min(per) == max(per) else f"{min(per)}-{max(per)}")
        hard = [t for t in s.must if t.hard and t.detect_s is not None]
        ok = sum(1 for t in hard if t.detect_s is not None and t.detect_s <= s.hard_budget(t))
        lines.append(f"| {s.name} | {s.detected}/{len(s.must)} | {per_txt} | {len(s.false_incidents)} | "
                     f"{ok}/{len(hard)} |")
    return "\n".join(lines)


def report(scores: Sequence[ScenarioScore], calm: CalmReplay | None, args: argparse.Namespace) -> str:
    out = io.StringIO()
    out.write(summary_table(scores) + "\n\n" + scenario_table(scores) + "\n")
    out.write("\n* 3 effective intervals of the probes that see the fault (+ the probe timeout for a hang, "
              "+ a preceding 429's Retry-After the probes honour).\n")
    problems = [f"{s.name}: {p}" for s in scores for p in s.problems()]
    if calm is not None:
        out.write(
            f"\nCalm backtest: {calm.hours:g} h, {calm.rows:,} results (5 exchanges x 3 probes, ~5 s interval, "
            f"{calm.stray_failures} isolated stray failures): {len(calm.false_incidents)} false incidents "
            f"({len(calm.events)} events).\n"
            f"Backtest throughput: {calm.replay_rate:,.0f} results/s through detection "
            f"({calm.replay_s:.2f} s), {calm.total_rate:,.0f} results/s including CSV parsing ({calm.total_s:.2f} s).\n"
        )
        for ev in calm.false_incidents[:10]:
            inc = ev["incident"]
            problems.append(f"calm backtest: false incident {inc['rule']} on {inc['exchange']} at {ev['ts']}: "
                            f"{inc['summary']}")
        if calm.replay_rate < 50_000:
            problems.append(f"backtest throughput {calm.replay_rate:,.0f} results/s < 50,000")
    out.write("\nTargets: " + ("all met.\n" if not problems else "MISSED:\n" + "".join(f"- {p}\n" for p in problems)))
    return out.getvalue()


def record(text: str, args: argparse.Namespace) -> None:
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmd = "make bench-detect" + (f" ARGS='{' '.join(args.argv)}'" if args.argv else "")
    section = (
        f"\n## bench-detect ({stamp})\n\nCommand: `{cmd}` (probe interval {args.interval * 1000:g} ms, "
        f"probe timeout 1 s, scenarios run once without looping plus {args.tail:g} s of calm, "
        f"{args.parallel} at a time on a shared 2-core machine).\n\n{text}"
    )
    with RESULTS_MD.open("a", encoding="utf-8") as f:
        f.write(section)


def main(argv: Sequence[str] | None = None) -> int:
    from cryptomon_tui.kernel.units import parse_duration
    from cryptomon_tui.simulator import builtin_scenarios

    parser = argparse.ArgumentParser(prog="bench_detect", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="all scenarios at once, short tail, 2 h calm backtest")
    parser.add_argument("--interval", type=parse_duration, default=0.25, help="probe interval (default 250ms)")
    parser.add_argument("--tail", type=parse_duration, default=None, help="calm after each scenario (default 25s)")
    parser.add_argument("--parallel", type=int, default=None, help="scenarios at once (default 2; --quick: all)")
    parser.add_argument("--scenario", action="append", help="only these scenarios (repeatable)")
    parser.add_argument("--calm-hours", type=float, default=None, help="calm backtest length (default 24)")
    parser.add_argument("--no-live", action="store_true", help="only the backtest parts")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    names = args.scenario or [n for n in builtin_scenarios() if n != "hostile"]
    args.tail = args.tail if args.tail is not None else (12.0 if args.quick else 25.0)
    args.parallel = args.parallel or (len(names) if args.quick else 2)
    hours = args.calm_hours if args.calm_hours is not None else (2.0 if args.quick else 24.0)
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # demo_config names a socket we never open

    scores: list[ScenarioScore] = []
    if not args.no_live:
        print(f"live scenarios at {args.interval * 1000:g} ms: {', '.join(names)}", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            scores = asyncio.run(run_scenarios(names, args.interval, args.tail, args.parallel))
    print(f"calm backtest: {hours:g} h ...", file=sys.stderr, flush=True)
    calm = calm_backtest(hours) if hours > 0 else None
    text = report(scores, calm, args)
    print(text)
    if args.record:
        record(text, args)
    missed = any(s.problems() for s in scores) or bool(calm and (calm.false_incidents or calm.replay_rate < 50_000))
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
