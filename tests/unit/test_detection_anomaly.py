"""Latency anomaly from minute one (issue 14): the acceptance scenarios on the injected clock.

A probe answers in ~40 ms with lognormal jitter every second; a slowdown of 5x, 10x or 20x lasting
45 s must give exactly one incident, within 30 s of its start with 60 s of history and within 15 s
with an hour or two, resolved within 30 s of its end. Calm days, a daily peak and a lasting new level
must not keep alarming; a drop to near zero (a cache or error page answering) is suspicious.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.config import config_from_data
from cryptomon_tui.detection.anomaly import AnomalySettings, LatencyAnomaly, SlowestStretches
from cryptomon_tui.incidents.model import EventType
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from tests.unit.detection_helpers import Harness

JITTER = 0.15  # lognormal sigma: +-15 % around the level


def _probe(level: list[float], rnd: random.Random, jitter: float = JITTER):  # type: ignore[no-untyped-def]
    """A probe whose level (ms) the test changes through ``level[0]``."""
    return lambda t: ProbeResult("binance", "ticker", t, rnd.lognormvariate(math.log(level[0]), jitter), Outcome.OK)


def _anomaly_events(h: Harness, kind: EventType) -> list[float]:
    return [e.ts for e in h.events if e.event is kind and e.incident.rule == "latency_anomaly"]


@pytest.mark.parametrize("factor", [5.0, 10.0, 20.0])
@pytest.mark.parametrize(("history", "within"), [(60.0, 30.0), (3600.0, 15.0), (7200.0, 15.0)])
def test_a_45s_slowdown_is_one_incident_found_early_and_let_go(factor: float, history: float, within: float) -> None:
    rnd = random.Random(int(factor * 10 + history))
    level = [40.0]
    h = Harness()
    h.run(history, _probe(level, rnd))
    assert h.events == []
    start = h.now
    level[0] = 40.0 * factor
    h.run(45, _probe(level, rnd))
    end = h.now
    level[0] = 40.0
    h.run(120, _probe(level, rnd))
    opened = [e for e in h.events if e.event in (EventType.OPENED, EventType.REOPENED)]
    assert len(opened) == 1, [(e.event, e.incident.rule) for e in opened]
    assert opened[0].incident.rule == "latency_anomaly"
    assert opened[0].ts - start <= within
    resolved = _anomaly_events(h, EventType.RESOLVED)
    assert len(resolved) == 1 and resolved[0] - end <= 30.0


def test_a_calm_day_with_the_same_jitter_gives_nothing() -> None:
    rnd = random.Random(11)
    h = Harness()
    h.run(86400, _probe([40.0], rnd), every=2.0)
    assert h.events == []


def test_three_days_with_a_daily_peak_give_no_incident() -> None:
    """Each afternoon the level climbs to 2x over two hours and back: the recent level follows the
    climb, and after two days the hour-of-day profile expects it."""
    rnd = random.Random(12)

    def daily(t: float) -> ProbeResult:
        hour = (t % 86400) / 3600
        bump = max(0.0, math.cos((hour - 15) / 4 * math.pi)) if abs(hour - 15) <= 2 else 0.0
        return ProbeResult("binance", "ticker", t, rnd.lognormvariate(math.log(40 * (1 + bump)), JITTER), Outcome.OK)

    h = Harness()
    h.run(3 * 86400, daily, every=5.0)
    assert h.events == []


def test_a_lasting_new_level_is_adopted_after_adapt_after() -> None:
    rnd = random.Random(13)
    level = [40.0]
    h = Harness({"detection": {"rules": {"latency_anomaly": {"adapt_after": "10m"}}}})
    h.run(1800, _probe(level, rnd), every=2.0)
    level[0] = 200.0
    h.run(3600, _probe(level, rnd), every=2.0)
    assert len(_anomaly_events(h, EventType.OPENED)) == 1
    assert len(_anomaly_events(h, EventType.RESOLVED)) == 1  # the new level became the normal
    h.run(3600, _probe(level, rnd), every=2.0)
    assert len(_anomaly_events(h, EventType.OPENED)) == 1 and _anomaly_events(h, EventType.REOPENED) == []


def test_a_short_host_stall_is_not_an_incident() -> None:
    """Every probe slow for under a second (the monitor's own host stalled) is not a latency anomaly."""
    rnd = random.Random(17)
    level = [40.0]
    h = Harness()
    h.run(600, _probe(level, rnd), every=0.25)
    for _ in range(3):
        level[0] = 2000.0
        h.run(1, _probe(level, rnd), every=0.25)
        level[0] = 40.0
        h.run(120, _probe(level, rnd), every=0.25)
    assert h.events == []


def test_a_drop_to_near_zero_is_suspicious() -> None:
    rnd = random.Random(14)
    level = [40.0]
    h = Harness()
    h.run(600, _probe(level, rnd))
    level[0] = 0.3  # answered from a cache or an error page
    h.run(30, _probe(level, rnd))
    opened = h.opened("latency_anomaly")
    assert len(opened) == 1 and "instantly" in opened[0].incident.summary


def test_a_flat_line_is_suspicious() -> None:
    rnd = random.Random(15)
    h = Harness()
    h.run(600, _probe([40.0], rnd))
    h.run(300, lambda t: ProbeResult("binance", "ticker", t, 12.5, Outcome.OK))
    opened = h.opened("latency_anomaly")
    assert len(opened) == 1 and "same latency" in opened[0].incident.summary


def test_model_is_bounded_and_learns_from_its_first_samples() -> None:
    state = LatencyAnomaly(AnomalySettings(window=600.0, max_samples=64))
    rnd = random.Random(16)
    for i in range(5000):
        state.feed(float(i), rnd.lognormvariate(math.log(40), JITTER))
    assert len(state.model) <= 64 and len(state.model.times) == len(state.model.values) == len(state.model)
    assert state.model.sorted == sorted(state.model.values)
    assert 30 < state.model.level_ms() < 55 and not state.alarm
    fresh = LatencyAnomaly(AnomalySettings())
    for i in range(12):
        fresh.feed(float(i), 40.0 + i % 3)
    for i in range(12, 21):
        fresh.feed(float(i), 400.0)
    assert not fresh.alarm  # nine slow samples in 8 s: could be a host stall (min_duration 10 s)
    for i in range(21, 24):
        fresh.feed(float(i), 400.0)
    assert fresh.alarm and fresh.kind == "slow"  # 10x for 10 s after 12 samples


def _model_after(
    history_s: float, every: float, rnd: random.Random, level: float = 40.0
) -> tuple[LatencyAnomaly, float]:
    """A model fed ``history_s`` of calm samples ``every`` seconds apart; returns it and the last time."""
    state = LatencyAnomaly(AnomalySettings())
    t = 0.0
    while t < history_s:
        t += every
        state.feed(t, rnd.lognormvariate(math.log(level), JITTER))
    return state, t


def _slowest_seen(state: LatencyAnomaly) -> float:
    """The slowest single answer the model remembers (its one-answer stretch record), in ms."""
    return math.exp(state.stretches.records[0])


def test_one_sample_slower_than_ever_is_news_when_probed_sparsely() -> None:
    """At a 10 s interval one sample is all the evidence about 10 s: slower than any answer the probe
    has given, over the bar and not contradicted by the next sample, it is an anomaly (CAD OSE's
    novel context)."""
    state, t = _model_after(6 * 3600, 10.0, random.Random(21))
    slow = _slowest_seen(state) * 1.5  # 98 ms: over the bar (40 ms + min_increase_ms)
    state.feed(t + 10, slow)
    assert not state.alarm  # one sample: not yet min_duration of evidence
    state.feed(t + 20, 40.0)
    assert state.alarm and state.kind == "slow" and state.peak_ms == pytest.approx(slow)
    for i in range(3, 10):
        state.feed(t + 10 * i, 40.0)
    assert not state.alarm  # calm samples end it


def test_a_slow_sample_seen_before_or_too_early_is_not_news() -> None:
    rnd = random.Random(22)
    state, t = _model_after(6 * 3600, 10.0, rnd)
    state.feed(t + 10, _slowest_seen(state) * 0.95)  # slower than usual, but the probe has done it before
    state.feed(t + 20, 40.0)
    assert not state.alarm
    young, t2 = _model_after(600, 10.0, rnd)  # 60 answers: too few to know what "never" means
    young.feed(t2 + 10, _slowest_seen(young) * 1.3)
    young.feed(t2 + 20, 40.0)
    assert not young.alarm


def test_what_was_reported_once_is_not_news_again() -> None:
    """Every answer counts toward the records, an alarm's too: the same spike a minute after the first
    was reported is not a new "never seen"."""
    state, t = _model_after(6 * 3600, 10.0, random.Random(25))
    spike = _slowest_seen(state) * 1.5
    state.feed(t + 10, spike)
    state.feed(t + 20, 40.0)
    assert state.alarm
    for i in range(3, 12):
        state.feed(t + 10 * i, 40.0)
    assert not state.alarm
    for i in range(12, 30):
        state.feed(t + 10 * i, 40.0)
    state.feed(t + 300, spike * 0.98)  # 17 answers later: no stretch holds both spikes
    state.feed(t + 310, 40.0)
    assert not state.alarm
    state.feed(t + 320, spike * 0.98)  # two in a row: the slowest 20 s it has had
    state.feed(t + 330, 40.0)
    assert state.alarm


def test_a_single_novel_sample_among_dense_probes_is_not_news() -> None:
    """At a 1 s interval the next samples contradict one slow answer within min_duration (a host
    stall, a GC pause): no alarm, however slow it was, unless the evidence itself lasts."""
    state, t = _model_after(3 * 3600, 1.0, random.Random(23))
    state.feed(t + 1, _slowest_seen(state) * 3)
    for i in range(2, 15):
        state.feed(t + i, 40.0)
        assert not state.alarm


def test_among_dense_probes_novelty_lends_no_evidence_to_a_busy_spell() -> None:
    """Probed every 5 s, a record answer inside a busy spell (1.6x the level, its answers now and then
    over the bar) is not an anomaly: the evidence that lasts min_duration must be the answers' own."""
    state, t = _model_after(3 * 3600, 5.0, random.Random(26))
    state.feed(t + 5, _slowest_seen(state) * 1.2)
    busy = [64.0, 90.0, 70.0, 95.0, 66.0, 88.0]  # 1.6x-2.4x of 40 ms: below the +50 ms floor or barely over
    for i, ms in enumerate(busy, start=2):
        state.feed(t + 5 * i, ms)
        assert not state.alarm


def test_a_lasting_drop_below_the_fastest_it_has_shown_is_suspicious() -> None:
    """Answers at or under the history's fastest 1 % and a fifth of its level, six in a row, are
    suspicious; five are not (drop_samples)."""
    state, t = _model_after(3600, 10.0, random.Random(24), level=200.0)
    for i in range(1, 6):
        state.feed(t + 10 * i, 1.0)
    assert not state.alarm
    state.feed(t + 60, 1.0)
    assert state.alarm and state.kind == "fast"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(min_value=-5.0, max_value=10.0, allow_nan=False), min_size=1, max_size=80),
    scales=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=4),
    margin=st.sampled_from([0.0, 0.1, 1.0]),
)
def test_stretch_records_match_a_brute_force_scan(values: list[float], scales: list[int], margin: float) -> None:
    """Without forgetting, an answer is news exactly when, for some length k, the mean of the last k
    values beats by ``margin`` the mean of every earlier run of k (checked against a direct scan)."""
    stretches = SlowestStretches(tuple(scales), window=math.inf)
    for n in range(1, len(values) + 1):
        expected = False
        for k in set(scales):
            if n < k:
                continue
            means = [sum(values[j - k:j]) / k for j in range(k, n + 1)]
            expected = expected or len(means) == 1 or means[-1] > max(means[:-1]) + margin
        got = stretches.add(float(n), values[n - 1], margin)
        if got != expected:  # a tie within float rounding of the running sums is not a disagreement
            k_close = any(
                n >= k and len(m := [sum(values[j - k:j]) / k for j in range(k, n + 1)]) > 1
                and abs(m[-1] - max(m[:-1]) - margin) < 1e-9
                for k in set(scales)
            )
            assert k_close, (n, got, expected)


def test_the_same_spike_every_few_minutes_alarms_once() -> None:
    """A probe (10 s interval) that spikes to the same 2 s every 200 s: the first spike is the slowest
    answer in a day and alarms; the repeats tie that record and are not news (a record that decayed
    would be beaten by a hair every time). 20 answers apart, no 16-answer stretch holds two spikes."""
    state, t = _model_after(6 * 3600, 10.0, random.Random(27))
    rises, was = 0, False
    for i in range(1, 800):
        state.feed(t + 10 * i, 2000.0 if i % 20 == 0 else 40.0)
        rises += state.alarm and not was
        was = state.alarm
    assert rises == 1


def test_stretch_records_forget_after_their_window() -> None:
    """Records are remembered for ``window`` (a day by default), then leave a bucket at a time."""
    stretches = SlowestStretches((1,), window=86400.0)
    stretches.add(0.0, math.log(500.0), 0.0)
    assert not stretches.add(3600.0, math.log(400.0), 0.0)
    assert not stretches.add(86000.0, math.log(400.0), 0.0)  # still within the day
    assert stretches.add(86400.0 + 1200.0, math.log(450.0), 0.0)  # the 500 ms bucket has left


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=-1e6, max_value=1e7, allow_nan=False),  # clock steps, back and far ahead too
            st.floats(min_value=-5.0, max_value=10.0, allow_nan=False),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_stretch_records_survive_any_clock_and_stay_within_what_was_seen(steps: list[tuple[float, float]]) -> None:
    """Whatever the clock does (steps back, jumps a year ahead), adding never raises, and every record
    is a mean of answers actually given."""
    stretches = SlowestStretches((1, 4, 16), window=86400.0)
    t, seen = 1.7e9, []
    for step, value in steps:
        t += step
        stretches.add(t, value, 0.0)
        seen.append(value)
        top = max(seen)
        assert all(r <= top + 1e-9 for r in stretches.records)


def test_a_config_reload_reaches_the_models_already_running() -> None:
    """The daemon's reload (new settings on a running pipeline): existing probes' models take the new
    novelty settings at once, keep their history, and keep their records when the lengths stay."""
    rnd = random.Random(28)
    h = Harness()
    h.run(600, _probe([40.0], rnd))
    state = h.pipeline.detector.anomaly_state("binance", "ticker")
    assert state is not None and state.stretches.scales == (1, 4, 16)
    history, kept = len(state.model), state.stretches
    h.pipeline.config = config_from_data({"detection": {"rules": {"latency_anomaly": {"novel_ratio": 1.5}}}})
    h.run(5, _probe([40.0], rnd))
    assert state.margin == pytest.approx(math.log(1.5)) and state.stretches is kept
    assert len(state.model) >= history
    h.pipeline.config = config_from_data({"detection": {"rules": {"latency_anomaly": {"novel_scales": [2, 8]}}}})
    h.run(5, _probe([40.0], rnd))
    assert state.stretches.scales == (2, 8) and state.margin == 0.0
