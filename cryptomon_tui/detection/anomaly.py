"""A probe's latency model that works from its first samples (issue 14; reasoning in docs/detection.md).

Why this shape:

- **Log space.** Latency is multiplicative (a 5x slowdown is the same news at 20 ms and at 200 ms),
  so the model keeps log-latencies; a distance in log space is a ratio.
- **Robust order statistics, no fitted distribution.** The history is a sorted sample of recent
  healthy latencies. Its median is the level; its quartiles give the spread; a high quantile says
  what this probe already did when healthy. Spikes the probe shows routinely (heavy tails) raise
  that quantile and stop alarming; a level it never showed is news (the idea behind CAD OSE's
  "novel context" and HTM's surprise, in its simplest form).
- **Shrinkage toward a prior while data is scarce.** With n samples the spread estimate is blended
  with a prior spread (``prior_spread`` in log units, weight ``prior_weight`` samples), and the
  bar is widened by a small-sample factor; as data accrues the prior fades and the history window
  widens from the first samples up to ``window`` seconds. So it can fire a minute after start,
  and only on a level far outside anything seen yet.
- **Time of day.** The median of each hour is kept per hour of day for a week; once two days of
  history exist, the expected level of the current hour (and its neighbours) is the median of
  those days, so a daily peak seen before is not news.
- **Novelty is evidence.** An answer over the bar that ends a stretch (1, 4 or 16 answers in a row)
  slower than any such stretch the probe has given in a day is news on its own (CAD OSE's "context
  never seen"; ``SlowestStretches``). Among dense probes it still has to be carried by the answers'
  own evidence for ``min_duration`` (a GC pause, a host stall, a record answer inside a busy minute
  are not incidents); probed every ``min_duration`` or more, one answer is all there is to know
  about that stretch, so it alarms unless the next answer contradicts it.
- **Evidence accumulates (CUSUM).** Each sample scores how far above the expected level it is, in
  units of the spread, minus an allowance ``k``; the positive part accumulates and an alarm is
  raised when the sum reaches ``h``. A 5x slowdown crosses it in one or two samples, a moderate
  lasting shift in a few, jitter never (its excess stays below the allowance).
- **Bounded cost.** At most ``max_samples`` history values (decimated in time), one bisect per
  accepted sample, O(1) reads of the bars, which are cached until the history changes.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass

_LOG_FLOOR_MS = 0.001  # log of anything below 1 microsecond is clamped
HOUR = 3600.0
DAY = 86400.0
SLOW, FAST, FLAT = "slow", "fast", "flat"


def _log(ms: float) -> float:
    return math.log(ms if ms > _LOG_FLOOR_MS else _LOG_FLOOR_MS)


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """The model's knobs (config ``detection.rules.latency_anomaly``); defaults in the config."""

    window: float = 6 * HOUR
    max_samples: int = 720
    recent_window: float = 1.5 * HOUR
    min_samples: int = 10
    high_quantile: float = 0.99
    prior_spread: float = 0.6
    prior_weight: float = 500.0
    allowance: float = 1.25
    threshold: float = 2.0
    max_step: float = 1.0  # most one sample adds: below ``threshold``, so one outlier never alarms
    novel_ratio: float = 1.0  # a stretch this many times slower than the slowest such stretch seen (0 = off)
    novel_after: int = 300  # once the probe has answered this many times
    novel_window: float = DAY  # the slowest stretches are remembered this long
    novel_scales: tuple[int, ...] = (1, 4, 16)  # stretch lengths, in answers
    recover_below: float = 0.2
    calm_samples: int = 5
    min_increase_ms: float = 50.0
    drop_ratio: float = 0.2
    drop_samples: int = 6
    min_drop_ms: float = 15.0  # and at least this much faster than the level
    min_duration: float = 10.0  # the evidence must have built up this long (a host stall is not an incident)
    drop_below_low: float = 1.0  # and below this share of the history's 1st percentile (drops it has shown)
    flat_samples: int = 120
    adapt_after: float = 3600.0


class LatencyModel:
    """History of healthy log-latencies (time-decimated, sorted) and the bars read from it."""

    __slots__ = ("_hour_key", "_hour_vals", "_recent_sorted", "_recent_t", "_recent_v", "_tod", "_tod_days",
                 "cache", "calm_ms", "cfg", "decimate", "last_t", "sorted", "times", "values", "warm")

    def __init__(self, cfg: AnomalySettings) -> None:
        self.cfg = cfg
        self.decimate = cfg.window / max(16, cfg.max_samples)
        self.times: deque[float] = deque()
        self.values: deque[float] = deque()
        self.sorted: list[float] = []
        self.warm = 3 * cfg.min_samples  # learn each of the first samples, then one per ``decimate``
        # the recent part of the history, sorted too (its median follows a slow drift)
        self._recent_t: deque[float] = deque()
        self._recent_v: deque[float] = deque()
        self._recent_sorted: list[float] = []
        self.last_t = -math.inf
        # (expected log level, spread, slow bar ms where the score is 0, fast bar ms, valid until t)
        self.cache: tuple[float, float, float, float, float] | None = None
        self.calm_ms = math.inf  # at or under this a sample is back to normal (set with the bars)
        self._hour_key = -1
        self._hour_vals: list[float] = []
        self._tod: dict[int, deque[float]] = {}  # hour of day -> that hour's median on recent days
        self._tod_days: set[int] = set()

    def __len__(self) -> int:
        return len(self.sorted)

    def observe(self, t: float, latency_ms: float) -> None:
        """Learn one healthy sample: each of the first ``3 * min_samples``, then one per
        ``window / max_samples`` seconds (so it learns from its first samples and the history's span
        widens toward ``window`` as data accrues; then the oldest leave)."""
        cap = max(16, self.cfg.max_samples)
        if t - self.last_t < self.decimate and len(self.sorted) >= self.warm:
            return  # past the first samples: one per ``window / max_samples`` (the span widens in time)
        self.last_t = t
        v = _log(latency_ms)
        times, values, ordered = self.times, self.values, self.sorted
        horizon = t - self.cfg.window
        while times and (times[0] < horizon or len(times) >= cap):
            times.popleft()
            del ordered[bisect_left(ordered, values.popleft())]
        times.append(t)
        values.append(v)
        insort(ordered, v)
        rt, rv, rs = self._recent_t, self._recent_v, self._recent_sorted
        recent_from = t - self.cfg.recent_window
        while rt and rt[0] < recent_from:
            rt.popleft()
            del rs[bisect_left(rs, rv.popleft())]
        rt.append(t)
        rv.append(v)
        insort(rs, v)
        self.cache = None
        self._hourly(t, v)

    def _hourly(self, t: float, v: float) -> None:
        key = int(t // HOUR)
        if key != self._hour_key:
            if self._hour_vals and self._hour_key >= 0:
                vals = sorted(self._hour_vals)
                self._tod.setdefault(self._hour_key % 24, deque(maxlen=7)).append(vals[len(vals) // 2])
                self._tod_days.add(int(self._hour_key * HOUR // DAY))
                if len(self._tod_days) > 8:
                    self._tod_days.discard(min(self._tod_days))
            self._hour_key = key
            self._hour_vals = []
        self._hour_vals.append(v)

    def clear(self) -> None:
        """Forget the history (a lasting new level is the normal now); the time-of-day profile stays."""
        self.times.clear()
        self.values.clear()
        self.sorted.clear()
        self._recent_t.clear()
        self._recent_v.clear()
        self._recent_sorted.clear()
        self.last_t = -math.inf
        self.cache = None

    def level_ms(self) -> float:
        """Median latency of the history (ms), NaN when empty."""
        ordered = self.sorted
        return math.exp(ordered[len(ordered) // 2]) if ordered else math.nan

    def _expected(self, t: float) -> float:
        """The level to compare with: the larger of the history's median, the recent median (a slow
        drift is followed, not alarmed) and, after two days, the usual level of this hour of day."""
        ordered = self.sorted
        best = ordered[len(ordered) // 2]
        recent = self._recent_sorted
        if len(recent) > 2 and len(recent) < len(ordered):  # the history reaches further back
            best = max(best, recent[len(recent) // 2])
        if len(self._tod_days) >= 3:  # two full days before today
            hod = int(t // HOUR) % 24
            for h in (hod - 1, hod, hod + 1):
                days = self._tod.get(h % 24)
                if days is not None and len(days) >= 2:
                    vals = sorted(days)
                    best = max(best, vals[len(vals) // 2])
        return best

    def bars(self, t: float) -> tuple[float, float, float, float]:
        """(expected log level, spread in log units, ms above which a sample scores, ms below which a
        sample is a suspicious drop). Cached until the history or the hour changes."""
        cache = self.cache
        if cache is not None and t < cache[4]:
            return cache[0], cache[1], cache[2], cache[3]
        cfg = self.cfg
        ordered = self.sorted
        n = len(ordered)
        med = ordered[n // 2]
        high = ordered[min(n - 1, int(cfg.high_quantile * n))]
        low = ordered[int(0.01 * n)]
        # the history's own upper tail, shrunk toward a prior spread while the history is short
        w = cfg.prior_weight
        spread = (w * cfg.prior_spread + n * max(high - med, 0.0)) / (w + n)
        expected = self._expected(t)
        slow = max(math.exp(expected + cfg.allowance * spread), math.exp(expected) + cfg.min_increase_ms)
        fast = min(math.exp(med) * cfg.drop_ratio, math.exp(low) * cfg.drop_below_low, math.exp(med) - cfg.min_drop_ms)
        self.cache = (expected, spread, slow, fast, (int(t // HOUR) + 1) * HOUR)
        # back to normal: under the recovery bar, or within the history's usual range (its 90th percentile)
        self.calm_ms = max(math.exp(expected + cfg.recover_below * spread), math.exp(ordered[int(0.9 * n)]))
        return expected, spread, slow, fast


class SlowestStretches:
    """For each stretch length k (``scales``, in answers), the slowest stretch of k answers in a row
    this probe has given within ``window``: the largest mean log-latency over k consecutive answers,
    every answer counted (an alarm's too: what the probe has already done, and been reported for, is
    not new again).

    Why several lengths: one answer slower than any before is a spike; four or sixteen in a row slower
    on average than any such run before is a slowdown whose single samples are unremarkable. A record
    at any length is "never seen" evidence (CAD OSE's novel context, in its simplest form).

    Why an exact maximum over ``BUCKETS`` time buckets and not a decaying one: a record that decays
    makes the same spike, repeated a few minutes later, "slower than ever" by a hair, so a probe that
    spikes every few minutes would alarm on every spike. Old stretches leave a bucket at a time.
    Cost: O(number of lengths) per answer, O(BUCKETS x lengths) once per bucket.
    """

    BUCKETS = 144  # a day in 10-minute buckets

    __slots__ = ("buckets", "records", "ring", "scales", "span", "sums")

    def __init__(self, scales: tuple[int, ...], window: float) -> None:
        self.scales = tuple(sorted({max(1, int(k)) for k in scales}))
        self.ring: deque[float] = deque(maxlen=max(self.scales, default=1))
        self.sums = [0.0] * len(self.scales)
        self.records = [-math.inf] * len(self.scales)  # max over the remembered buckets
        self.span = max(window, 1e-3) / self.BUCKETS
        self.buckets: deque[tuple[float, list[float]]] = deque()  # (number, maxima per length), oldest first

    def _roll(self, bucket: float) -> list[float]:
        """Start bucket ``bucket`` (forgetting those out of the window) and return its maxima."""
        buckets = self.buckets
        expired = False
        while buckets and buckets[0][0] <= bucket - self.BUCKETS:
            buckets.popleft()
            expired = True
        if expired:
            self.records = [max((m[i] for _, m in buckets), default=-math.inf) for i in range(len(self.scales))]
        maxima = [-math.inf] * len(self.scales)
        buckets.append((bucket, maxima))
        return maxima

    def add(self, t: float, value: float, margin: float) -> bool:
        """Count one answer's log-latency; True if a stretch ending with it is slower, by ``margin``
        (log units), than every stretch of its length remembered."""
        bucket = t // self.span
        # a clock that steps back keeps filling the current bucket; a jump ahead forgets what fell out
        current = self.buckets[-1] if self.buckets else None
        maxima = current[1] if current is not None and not bucket > current[0] else self._roll(bucket)
        ring, sums, records = self.ring, self.sums, self.records  # after the roll: it may renew records
        n = len(ring)
        news = False
        for i, k in enumerate(self.scales):
            total = sums[i] + value
            if n >= k:
                total -= ring[n - k]
            sums[i] = total
            if n + 1 >= k:
                mean = total / k
                if mean > maxima[i]:
                    maxima[i] = mean
                    best = records[i]
                    if mean > best:
                        news = news or mean > best + margin
                        records[i] = mean
        ring.append(value)
        return news


class LatencyAnomaly:
    """One probe's anomaly state: the model, the evidence sum and the alarm (with hysteresis).

    ``feed`` takes each successful latency in order; ``alarm`` says whether the probe is anomalous
    now (``kind``: slow, a fast drop to near zero, or a flat line). The rule reads it every
    evaluation; the model does not learn while the alarm is up, unless it lasted ``adapt_after``
    (then the new level is the new normal).
    """

    __slots__ = (
        "alarm",
        "answers",
        "calm",
        "cfg",
        "drops",
        "flat_run",
        "kind",
        "last_lat",
        "margin",
        "model",
        "peak_ms",
        "score",
        "score_lift",
        "score_max_ms",
        "score_n",
        "score_peak",
        "score_since",
        "seen",
        "since",
        "stretches",
    )

    def __init__(self, cfg: AnomalySettings) -> None:
        self.cfg = cfg
        self.model = LatencyModel(cfg)
        self.score = 0.0
        self.score_since = 0.0  # when the evidence started building (the score left 0)
        self.score_peak = 0.0  # the most the evidence reached since it started building
        self.score_n = 0  # samples since it started building
        self.score_max_ms = 0.0  # the slowest of them
        self.score_lift = 0.0  # how much of the score novelty lent (only a sparse probe's one sample may use it)
        self.drops = 0
        self.calm = 0
        self.flat_run = 0
        self.last_lat = math.nan
        self.alarm = False
        self.kind = SLOW
        self.since = 0.0
        self.peak_ms = 0.0
        self.seen = 0  # how many of the series' successful latencies were fed
        self.answers = 0  # how many latencies this model was fed
        self.stretches = SlowestStretches(cfg.novel_scales, cfg.novel_window)
        self.margin = math.log(cfg.novel_ratio) if cfg.novel_ratio > 0 else 0.0

    def reconfigure(self, cfg: AnomalySettings) -> None:
        """New settings (a config reload): the history is kept; the stretch records restart only if
        their lengths or memory changed (a record of other lengths means nothing)."""
        old, self.cfg = self.cfg, cfg
        self.model.cfg = cfg
        self.model.decimate = cfg.window / max(16, cfg.max_samples)
        self.model.cache = None
        self.margin = math.log(cfg.novel_ratio) if cfg.novel_ratio > 0 else 0.0
        if (old.novel_scales, old.novel_window) != (cfg.novel_scales, cfg.novel_window):
            self.stretches = SlowestStretches(cfg.novel_scales, cfg.novel_window)

    def feed(self, t: float, lat: float) -> None:
        cfg = self.cfg
        model = self.model
        if lat == self.last_lat:
            self.flat_run += 1
        else:
            self.flat_run = 1
            self.last_lat = lat
        self.answers += 1
        record = cfg.novel_ratio > 0 and self.stretches.add(t, _log(lat), self.margin)
        if len(model.sorted) >= cfg.min_samples:
            cache = model.cache
            if cache is not None and t < cache[4]:
                expected, spread, slow, fast, _until = cache
            else:
                expected, spread, slow, fast = model.bars(t)
            if lat > slow or self.score > 0.0:
                e = (_log(lat) - expected) / spread - cfg.allowance
                if lat <= slow and e > 0.0:
                    e = 0.0  # under the absolute floor (min_increase_ms): no evidence either way
                novel = record and lat > slow and self.answers > cfg.novel_after
                if self.score <= 0.0:
                    self.score_since = t
                    self.score_peak = 0.0
                    self.score_n = 0
                    self.score_max_ms = 0.0
                    self.score_lift = 0.0
                self.score_n += 1
                if lat > self.score_max_ms:
                    self.score_max_ms = lat
                self.score = max(0.0, self.score + (e if novel else min(e, cfg.max_step)))
                if novel and self.score < cfg.threshold:
                    # never seen before: enough evidence about a sparse probe's stretch, if the next
                    # answer does not contradict it; among dense probes the evidence must build itself
                    self.score_lift += cfg.threshold - self.score
                    self.score = cfg.threshold
                if self.score > self.score_peak:
                    self.score_peak = self.score
            if lat <= fast:
                self.drops += 1
            elif self.drops:
                self.drops = 0
            if not self.alarm:
                if t - self.score_since >= cfg.min_duration and (
                    self.score - self.score_lift >= cfg.threshold
                    # probed sparsely (the next sample came min_duration later), one sample is all the
                    # evidence about that stretch: it counts if it reached the bar and nothing contradicted it
                    or (self.score_n <= 2 and self.score_peak >= cfg.threshold and self.score > 0.0)
                ):
                    kind: str | None = SLOW
                elif self.drops >= cfg.drop_samples:
                    kind = FAST
                elif self.flat_run >= cfg.flat_samples and model.sorted[-1] - model.sorted[0] > 0.01:
                    kind = FLAT
                else:
                    kind = None
                if kind is not None:
                    peak = max(lat, self.score_max_ms) if kind == SLOW else lat
                    self.alarm, self.kind, self.since, self.calm, self.peak_ms = True, kind, t, 0, peak
            else:
                if self.kind == SLOW:
                    calm = lat <= model.calm_ms
                    self.peak_ms = max(self.peak_ms, lat)
                elif self.kind == FAST:
                    calm = lat >= fast
                    self.peak_ms = min(self.peak_ms, lat)
                else:
                    calm = self.flat_run < cfg.flat_samples
                self.calm = self.calm + 1 if calm else 0
                if self.calm >= cfg.calm_samples:
                    self.alarm = False
                    self.score = 0.0
                    self.drops = 0
        if self.alarm and t - self.since >= cfg.adapt_after:
            # a level that lasted adapt_after is the new normal: learn it afresh (the prior covers
            # the short history), so the alarm ends on its calm samples and does not come back
            model.clear()
            self.score = 0.0
            self.alarm = False
        if not self.alarm and (t - model.last_t >= model.decimate or len(model.sorted) < model.warm):
            model.observe(t, lat)
