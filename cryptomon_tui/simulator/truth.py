"""Score probe results against a scenario's ground truth: was each fault seen, how soon, as what.

Input is what ``cryptomon daemon --probes-jsonl`` writes (or ``ProbeResult`` objects). Times in
the ground truth count from simulator start; ``t0`` places them on the results' wall clock.
Near fault edges a probe may legitimately see either state (``t0`` is an estimate, a probe was in
flight across the edge, or the monitor is still backing off): within ``grace_s`` of a start or an
end, and ``settle_s`` after an end, a matching outcome counts and anything else is not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptomon_tui.kernel.jsonvalue import finite
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.units import parse_iso_utc
from cryptomon_tui.simulator.scenario import ExpectedFault

_QUIET_TYPES = frozenset({"latency", "drift", "weight_climb", "clock_skew"})  # faults that keep probes ok


@dataclass
class FaultScore:
    expected: ExpectedFault
    judged: int = 0  # results inside the fault (past the grace period) on affected probes
    matched: int = 0  # ... with an acceptable outcome
    first_match_s: float | None = None  # seconds from fault start to the first matching result
    other: Counter[str] = field(default_factory=Counter)

    @property
    def acceptable_values(self) -> frozenset[str]:
        return frozenset(o.value for o in self.expected.acceptable)

    @property
    def detected(self) -> bool:
        return self.matched > 0


@dataclass
class Score:
    faults: list[FaultScore]
    healthy_ok: int = 0
    false_alarms: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (exchange, probe, outcome)

    @property
    def all_detected(self) -> bool:
        return all(f.detected for f in self.faults if f.expected.type not in _QUIET_TYPES)

    @property
    def passed(self) -> bool:
        return self.all_detected and not self.false_alarms

    def summary(self) -> str:
        lines = []
        for f in self.faults:
            e = f.expected
            mark = "ok  " if f.detected or e.type in _QUIET_TYPES else "MISS"
            first = "-" if f.first_match_s is None else f"{f.first_match_s:.2f}s"
            other = ", ".join(f"{k}={v}" for k, v in f.other.most_common()) or "none"
            lines.append(
                f"{mark} {e.start:7.2f}-{e.end:<7.2f} {e.exchange:16} {e.type:12} expect {e.outcome.value:13} "
                f"matched {f.matched}/{f.judged}, first after {first}; other outcomes: {other}"
            )
        for (exchange, probe, outcome), n in sorted(self.false_alarms.items()):
            lines.append(f"FALSE ALARM {exchange} {probe}: {outcome} x{n} outside any fault")
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"{verdict}: {sum(f.detected for f in self.faults)}/{len(self.faults)} faults seen, "
            f"{self.healthy_ok} healthy probes ok, {sum(self.false_alarms.values())} false alarms"
        )
        return "\n".join(lines)


def _fields(item: Mapping[str, object] | ProbeResult) -> tuple[float, str, str, str]:
    if isinstance(item, ProbeResult):
        return item.started_at, item.exchange, item.probe, item.outcome.value
    ts = item["ts"]
    started = parse_iso_utc(ts) if isinstance(ts, str) else finite(ts)
    if started is None:
        raise ValueError(f"ts {ts!r:.40} is not a time")
    return started, str(item["exchange"]), str(item["probe"]), str(item["outcome"])


def score(
    results: Iterable[Mapping[str, object] | ProbeResult],
    expected: list[ExpectedFault],
    t0: float,
    grace_s: float = 0.5,
    settle_s: float = 2.0,
) -> Score:
    """Match every probe result to the faults active at its send time (``t0`` = simulator start, epoch s)."""
    scores = [FaultScore(e) for e in expected]
    out = Score(scores)
    for item in results:
        started, exchange, probe, outcome = _fields(item)
        if outcome == Outcome.SKIPPED_OPEN_CIRCUIT.value:
            continue
        t = started - t0
        windows = [
            fs
            for fs in scores
            if fs.expected.exchange == exchange
            and fs.expected.outcome_for(probe) is not None
            and fs.expected.start - grace_s <= t < fs.expected.end + settle_s
        ]
        accounted = bool(windows)  # inside some fault window, core or edge
        explained = any(outcome in fs.acceptable_values for fs in windows)
        for fs in windows:
            e = fs.expected
            if outcome in fs.acceptable_values:
                fs.judged += 1
                fs.matched += 1
                if fs.first_match_s is None:
                    fs.first_match_s = max(0.0, t - e.start)
            elif explained or (e.rate < 1.0 and outcome == Outcome.OK.value):
                continue  # another overlapping fault explains it, or the fault spared this request
            elif e.start + grace_s <= t < e.end - grace_s:
                fs.judged += 1
                fs.other[outcome] += 1
        if not accounted:
            if outcome == Outcome.OK.value:
                out.healthy_ok += 1
            else:
                out.false_alarms[(exchange, probe, outcome)] += 1
    return out
