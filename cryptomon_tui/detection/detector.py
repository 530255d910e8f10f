"""Rules evaluated over the rolling metrics, producing Signals for the incident manager.

Cost is bounded per evaluation: only series recorded since the last evaluation and rule instances
that are not idle are looked at; window totals are O(1), percentiles walk a short sorted bin list,
and the anomaly model costs one comparison per healthy sample (detection/anomaly.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptomon_tui.config.detection import DetectionConfig, IncidentsConfig, RuleConfig
from cryptomon_tui.detection import signals as R
from cryptomon_tui.detection.anomaly import FAST, FLAT, AnomalySettings, LatencyAnomaly
from cryptomon_tui.detection.signals import Signal
from cryptomon_tui.detection.state import Phase, RuleInstance, Step
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.results import BreakerState, Outcome
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import format_ms, iso_utc
from cryptomon_tui.metrics.histogram import bin_index, bin_value
from cryptomon_tui.metrics.registry import ExchangeMetrics, MetricsRegistry
from cryptomon_tui.metrics.series import OUTCOME_INDEX, ExchangeSeries, Series, SeriesState, WindowStats

_ms = format_ms  # the kernel's one millisecond formatter, under the short name the f-strings use

DEFAULT_CLOCK_TOLERANCE_MS = (1000.0, 5000.0)  # (ahead, behind): Binance/Bybit reject > 1 s ahead, recvWindow 5 s

_MAINT = OUTCOME_INDEX[Outcome.MAINTENANCE]
_BAN = OUTCOME_INDEX[Outcome.IP_BANNED]
_429 = OUTCOME_INDEX[Outcome.RATE_LIMITED]
_OPEN = BreakerState.OPEN
_MAINTENANCE = Outcome.MAINTENANCE

# Outcomes with a cause rule of their own (rate_limited / ip_banned / maintenance)
CAUSE_OUTCOMES = frozenset({Outcome.RATE_LIMITED, Outcome.IP_BANNED, Outcome.MAINTENANCE})

Key = tuple[str, str | None, str | None]  # (rule, exchange, probe)
ProbeCheck = Callable[[Series, "RuleInstance | None", float], "Finding | None"]
ExchangeCheck = Callable[[ExchangeMetrics, "RuleInstance | None", float], "Finding | None"]

EXCHANGE_RULES: tuple[str, ...] = (
    R.MAINTENANCE,
    R.RATE_LIMITED,
    R.CONSECUTIVE_FAILURES,  # across the exchange's probes: a breaker shared by them opens on that streak
    R.RATE_LIMIT_USAGE,
    R.CIRCUIT_OPEN,
    R.CLOCK_OFFSET,
)
PROBE_RULE_ORDER: tuple[str, ...] = (
    R.CONSECUTIVE_FAILURES,
    R.TIMEOUTS,
    R.ERROR_RATE,
    R.LATENCY_P99,
    R.LATENCY_ANOMALY,
)


@dataclass(slots=True)
class Finding:
    """A rule's condition holds: what was measured and how to say it."""

    summary: str
    values: dict[str, float]
    rule: str | None = None  # sub-rule when one instance covers two (rate_limited / ip_banned)
    severity: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    ban_until: float | None = None


def _last_error(s: SeriesState) -> str | None:
    if s.last_error_outcome is None:
        return None
    text = f"{s.last_error_outcome.value}"
    if s.last_error_code and s.last_error_code != s.last_error_outcome.value:
        text += f" {s.last_error_code}"
    if s.last_error_message:
        text += f": {s.last_error_message[:200]}"
    return text


def _where(exchange: str | None, probe: str | None) -> str:
    return str(exchange) if probe is None else f"{exchange}/{probe}"


class Detector:
    def __init__(
        self,
        config: DetectionConfig,
        incidents: IncidentsConfig,
        metrics: MetricsRegistry,
        clock_tolerances: dict[str, tuple[float, float]] | None = None,
        canaries: Iterable[str] | None = None,
    ) -> None:
        self.metrics = metrics
        self._clock_limits: dict[str, float] = {}
        # exchange -> its ``aggregate.unusual`` when the full exchange screen last answered False
        self._quiet_at: dict[str, int] = {}
        self._clock_tolerances = dict(clock_tolerances or {})
        self.canaries = set(canaries or ())
        self._instances: dict[Key, RuleInstance] = {}
        self._active: set[Key] = set()
        self._anomalies: dict[Series, LatencyAnomaly] = {}
        # rule instances per (exchange, probe) / (exchange, None): a series with none active and none
        # re-armed within the window is screened like one that never tripped a rule
        self._instances_of: dict[tuple[str, str | None], list[RuleInstance]] = {}
        self._net_failing: set[str] = set()  # exchanges with enough network failures in a row
        self._probe_check_by_rule: dict[str, ProbeCheck] = {
            R.CONSECUTIVE_FAILURES: self._consecutive,
            R.TIMEOUTS: self._timeouts,
            R.ERROR_RATE: self._error_rate,
            R.LATENCY_P99: self._p99,
            R.LATENCY_ANOMALY: self._anomaly,
        }
        self._exchange_check_by_rule: dict[str, ExchangeCheck] = {
            R.MAINTENANCE: self._maintenance,
            R.RATE_LIMITED: self._rate_limited,
            R.RATE_LIMIT_USAGE: self._usage,
            R.CIRCUIT_OPEN: self._circuit,
            R.CLOCK_OFFSET: self._clock,
            R.CONSECUTIVE_FAILURES: self._exchange_consecutive,
        }
        self.reconfigure(config, incidents)
        self.evaluations = 0

    @property
    def clock_tolerances(self) -> dict[str, tuple[float, float]]:
        """Per exchange (ahead_ms, behind_ms) it accepts; the default tolerances apply to the others."""
        return self._clock_tolerances

    @clock_tolerances.setter
    def clock_tolerances(self, tolerances: dict[str, tuple[float, float]]) -> None:
        self._clock_tolerances = dict(tolerances)
        self._clock_limits = {}

    def reconfigure(self, config: DetectionConfig, incidents: IncidentsConfig) -> None:
        """Apply new rule settings keeping all state (hot reload). A rule switched off resolves at the
        next evaluation. The metrics window and bucket size only change with a restart."""
        self.config = config
        self.rules = config.rules
        self.flap = (incidents.flap_threshold, incidents.flap_window, incidents.flap_calm)
        # the O(1) screens read the metrics window totals: valid when no rule looks at a shorter window
        self._screening = all(
            w >= self.metrics.window_s
            for w in (self.rules.error_rate.window, self.rules.timeouts.window, self.rules.latency_p99.window)
        )
        r = self.rules
        cf, to, er, p99 = r.consecutive_failures, r.timeouts, r.error_rate, r.latency_p99
        # the screen's thresholds as plain values (None = rule off): it runs for every series that got data
        # p99: the lowest histogram bin whose value is above the threshold (compared as an int per series)
        slow_bin = bin_index(p99.threshold_ms)
        if bin_value(slow_bin) <= p99.threshold_ms:
            slow_bin += 1
        self._series_screen: tuple[
            int | None, float | None, tuple[int, int, float] | None, tuple[int, float, int, int] | None, bool, int
        ] = (
            cf.threshold if cf.enabled else None,
            to.threshold if to.enabled else None,
            (er.min_attempts, er.min_errors, er.threshold) if er.enabled else None,
            (p99.min_attempts, p99.threshold_ms, p99.min_slow, slow_bin) if p99.enabled else None,
            r.latency_anomaly.enabled,
            r.latency_anomaly.min_samples,
        )
        usage = r.rate_limit_usage
        self._exchange_screen: tuple[int | None, float | None] = (
            cf.threshold if cf.enabled else None,
            usage.threshold if usage.enabled else None,
        )
        self._clock_limits = {}  # per exchange: |offset| beyond this is worth a look
        self._quiet_at = {}  # new thresholds: every exchange gets a full screen again
        self._probe_checks = [(r, self._probe_check_by_rule[r]) for r in PROBE_RULE_ORDER if self._cfg(r).enabled]
        self._exchange_checks = [
            (r, self._exchange_check_by_rule[r])
            for r in EXCHANGE_RULES
            if self._cfg(r).enabled or (r == R.RATE_LIMITED and self.rules.ip_banned.enabled)
        ]
        for inst in self._instances.values():
            if inst.sent_rule != inst.rule and not self._cfg(inst.sent_rule).enabled:
                inst.sent_rule = inst.rule
        a = self.rules.latency_anomaly
        self._anomaly_settings = AnomalySettings(
            window=a.baseline_window, max_samples=a.max_samples, recent_window=a.recent_window,
            min_samples=a.min_samples, high_quantile=a.high_quantile, prior_spread=a.prior_spread,
            prior_weight=a.prior_weight, allowance=a.allowance, threshold=a.threshold, max_step=a.max_step,
            novel_ratio=a.novel_ratio, novel_after=a.novel_after, novel_window=a.novel_window,
            novel_scales=tuple(a.novel_scales),
            recover_below=a.recover_below, calm_samples=a.calm_samples, min_increase_ms=a.min_increase_ms,
            drop_ratio=a.drop_ratio, drop_samples=a.drop_samples, drop_below_low=a.drop_below_low,
            min_drop_ms=a.min_drop_ms, min_duration=a.min_duration, flat_samples=a.flat_samples,
            adapt_after=a.adapt_after,
        )
        for state in self._anomalies.values():
            if state.cfg != self._anomaly_settings:  # new settings: the model goes on from its own history
                state.reconfigure(self._anomaly_settings)

    def rearm(self, exchange: str | None, now: float) -> None:
        """An incident of this exchange (all exchanges for None) resolved: its windowed symptom rules start
        from fresh data, so errors the incident already covered (a maintenance, a ban, a burst of 5xx)
        cannot open or reopen an incident once it is over while they linger in the 5-minute window. Firing
        symptoms are untouched: they kept the incident open and recover on their own."""
        targets = [exchange] if exchange is not None else list(self.metrics.exchanges())
        for ex in targets:
            exm = self.metrics.exchange(ex)
            if exm is None:
                continue
            for probe in exm.probes:
                for rule in PROBE_RULE_ORDER:
                    key: Key = (rule, ex, probe)
                    inst = self._instances.get(key)
                    if inst is None:
                        labels: dict[str, str | None] = dict(_labels(ex, probe))
                        inst = self._instances[key] = RuleInstance(key, fingerprint(rule, labels))
                        self._instances_of.setdefault((ex, probe), []).append(inst)
                    if not inst.firing:
                        inst.phase = Phase.IDLE
                        inst.armed_since = now
                        self._active.discard(key)

    def _enabled(self, rule: str) -> bool:
        if rule == R.RATE_LIMITED:
            return self.rules.rate_limited.enabled or self.rules.ip_banned.enabled
        return self._cfg(rule).enabled

    def _cfg(self, rule: str) -> RuleConfig:
        cfg: RuleConfig = getattr(self.rules, rule)
        return cfg

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, now: float) -> list[Signal]:
        """One evaluation tick. Returns signals with causes first (local_network, then by rank)."""
        self.evaluations += 1
        metrics = self.metrics
        changed = metrics.take_changed()
        instances = self._instances
        out: list[Signal] = []
        done: set[Key] = set()
        exchanges: set[str] = set()
        instances_of = self._instances_of
        anomaly_on = self._series_screen[4]
        for series in changed:
            ex, probe = series.exchange, series.probe
            exchanges.add(ex)
            series.advance(now)  # expire old buckets, close finished minutes
            if anomaly_on:
                self._feed_anomaly(series, now)
            watched = instances_of.get((ex, probe))
            if (watched is None or not _watching(watched, now - series.window_s)) and not self._screen_series(
                series, now
            ):
                continue  # the common case: a healthy series with every rule idle
            for rule, check in self._probe_checks:
                key: Key = (rule, ex, probe)
                inst = instances.get(key)
                finding = check(series, inst, now)
                if inst is None and finding is None:
                    continue  # the common case: an idle rule on a healthy series
                self._apply(key, inst, finding, now, out)
                done.add(key)
        net_failing = self._net_failing
        min_net = self.rules.local_network.min_consecutive
        by_name = metrics.exchanges()
        for ex in exchanges:
            exm = by_name.get(ex)
            if exm is None:
                continue
            if exm.aggregate.consecutive_network_failures >= min_net:
                net_failing.add(ex)
            else:
                net_failing.discard(ex)
            watched = instances_of.get((ex, None))
            if (watched is None or not _watching(watched, math.inf)) and not self._screen_exchange(exm, now):
                continue
            for rule, xcheck in self._exchange_checks:
                key = (rule, ex, None)
                inst = instances.get(key)
                finding = xcheck(exm, inst, now)
                if inst is None and finding is None:
                    continue
                self._apply(key, inst, finding, now, out)
                done.add(key)
        local_key: Key = (R.LOCAL_NETWORK, None, None)
        if self.rules.local_network.enabled and (net_failing or local_key in self._active):
            self._evaluate_key(local_key, now, out)  # only worth a look while some exchange fails
        done.add(local_key)
        if self._active:
            for active_key in [k for k in self._active if k not in done]:
                self._evaluate_key(active_key, now, out)
        if len(out) > 1:
            out.sort(
                key=lambda sig: (
                    -sig.rank,
                    not sig.firing,
                    R.SYMPTOM_ORDER.get(sig.rule, 9),
                    sig.exchange or "",
                    sig.probe or "",
                    sig.rule,
                )
            )
        return out

    def _screen_series(self, s: Series, now: float) -> bool:
        """O(1) necessary conditions of every probe rule; False = no rule can hold (skip them all)."""
        if not self._screening:
            return True
        cf, to, er, p99, anomaly_on, _min = self._series_screen
        if cf is not None and s.consecutive_failures >= cf and s.last_error_outcome not in CAUSE_OUTCOMES:
            return True
        if to is not None and s.timeouts > to:
            return True
        if er is not None and s.attempts >= er[0] and s.errors >= er[1] and s.errors > er[2] * s.attempts:
            return True
        hist = s.hist
        if p99 is not None and hist.total >= p99[0]:
            keys = hist.keys
            if keys and keys[-1] >= p99[3] and hist.count_above(p99[1]) >= p99[2]:
                return True
        if anomaly_on:
            state = self._anomalies.get(s)
            if state is not None and state.alarm:
                return True
        return False

    def _screen_exchange(self, exm: ExchangeMetrics, now: float) -> bool:
        """O(1)-ish necessary conditions of every exchange rule."""
        agg = exm.aggregate
        cf, usage_limit = self._exchange_screen
        if self._quiet_at.get(exm.name) == agg.unusual:
            # Quiet at the last full screen and only plain successes since: those cannot raise a streak,
            # a 429/ban, a breaker, maintenance or a deadline (time only lets those pass); usage and
            # clock offset are the only things they can have moved.
            return self._usage_or_clock(exm, agg, usage_limit)
        last_ok = agg.last_ok_at or 0.0
        seen = agg.last_seen
        if seen[_BAN] > last_ok or seen[_429] > last_ok:
            return True
        if cf is not None and agg.consecutive_failures >= cf and agg.last_error_outcome not in CAUSE_OUTCOMES:
            return True
        maint_seen = seen[_MAINT] > 0
        for p in exm.probes.values():  # one loop for both per-probe conditions (this runs every tick)
            if p.breaker is _OPEN:
                return True
            if maint_seen and p.last_outcome is _MAINTENANCE:
                return True  # one probe (e.g. the status endpoint) may report maintenance while others answer
        if (agg.maintenance_until or 0.0) > now or (agg.ban_until or 0.0) > now:
            return True
        if self._usage_or_clock(exm, agg, usage_limit):
            return True
        self._quiet_at[exm.name] = agg.unusual
        return False

    def _usage_or_clock(self, exm: ExchangeMetrics, agg: ExchangeSeries, usage_limit: float | None) -> bool:
        if usage_limit is not None and agg.last_usage is not None and (agg.newest_usage_peak() or 0.0) > usage_limit:
            return True
        offset = agg.clock_offset_ms
        if offset is not None:
            limit = self._clock_limits.get(exm.name)
            if limit is None:
                cfg = self.rules.clock_offset
                ahead, behind = self.clock_tolerances.get(exm.name, (cfg.default_ahead_ms, cfg.default_behind_ms))
                limit = self._clock_limits[exm.name] = min(ahead * cfg.ahead_share, behind * cfg.behind_share)
            if abs(offset) - (agg.clock_error_ms or 0.0) > limit:
                return True
        return False

    def _evaluate_key(self, key: Key, now: float, out: list[Signal]) -> None:
        rule, ex, probe = key
        inst = self._instances.get(key)
        if inst is not None and not self._enabled(rule):
            if inst.force_resolve(now):
                out.append(self._signal(inst, now, False, None))
            self._active.discard(key)
            return
        finding = self._check(rule, ex, probe, inst, now)
        if inst is None and finding is None:
            return
        self._apply(key, inst, finding, now, out)

    def _apply(
        self, key: Key, inst: RuleInstance | None, finding: Finding | None, now: float, out: list[Signal]
    ) -> None:
        rule, ex, probe = key
        if inst is None:
            if finding is None:
                return
            fp_rule = R.RATE_LIMITED if rule == R.RATE_LIMITED else rule
            labels = _labels(ex, probe)
            inst = self._instances[key] = RuleInstance(key, fingerprint(fp_rule, dict(labels)))
            if ex is not None:
                self._instances_of.setdefault((ex, probe), []).append(inst)
        sub_rule = finding.rule if finding is not None and finding.rule else inst.sent_rule
        cfg = self._cfg(sub_rule)
        threshold, window, calm = self.flap
        step = inst.step(
            now,
            finding is not None,
            cfg.for_,
            cfg.recovery.evaluations,
            cfg.recovery.for_,
            threshold,
            window,
            calm,
        )
        if step is Step.FIRE and finding is not None:
            inst.peak = {}
            self._update_peak(inst, finding)
            inst.sent_rule = finding.rule or rule
            inst.severity = finding.severity or cfg.severity
            inst.summary = finding.summary
            out.append(self._signal(inst, now, True, finding))
        elif step is Step.RESOLVE:
            out.append(self._signal(inst, now, False, None))
            inst.sent_rule = rule
        elif step is Step.FLAPPING:
            out.append(self._signal(inst, now, True, None))
        elif finding is not None and inst.firing:
            severity = finding.severity or cfg.severity
            new_rule = finding.rule or rule
            escalated = Severity(severity) > Severity(inst.severity) if inst.severity else True
            if self._update_peak(inst, finding) or escalated:
                if escalated:
                    inst.severity = severity
                    inst.sent_rule = new_rule
                inst.summary = finding.summary
                out.append(self._signal(inst, now, True, finding))
        if inst.active:
            self._active.add(key)
        else:
            self._active.discard(key)

    @staticmethod
    def _update_peak(inst: RuleInstance, finding: Finding) -> bool:
        grew = False
        peak = inst.peak
        for k, v in finding.values.items():
            old = peak.get(k)
            if old is None or abs(v) > abs(old):
                peak[k] = v
                grew = True
        return grew

    def _signal(self, inst: RuleInstance, now: float, firing: bool, finding: Finding | None) -> Signal:
        rule = inst.sent_rule
        if firing:
            summary = finding.summary if finding is not None else inst.summary
        else:
            summary = f"recovered: {inst.summary}" if inst.summary else "recovered"
        return Signal(
            rule=rule,
            fingerprint=inst.fingerprint,
            exchange=inst.exchange,
            probe=inst.probe,
            severity=Severity(inst.severity or self._cfg(rule).severity),
            firing=firing,
            summary=summary,
            ts=now,
            labels=_labels(inst.exchange, inst.probe),
            values=dict(finding.values) if finding is not None else dict(inst.peak),
            counts=dict(finding.counts) if finding is not None and finding.counts else self._counts(inst),
            last_error=finding.last_error if finding is not None else None,
            ban_until=finding.ban_until if finding is not None else None,
            flapping=inst.flapping,
            recent_fires=len(inst.transitions),
        )

    def _counts(self, inst: RuleInstance) -> dict[str, int]:
        """Outcome counts in the window behind a signal (the series, or the whole exchange)."""
        if inst.exchange is None:
            return {}
        if inst.probe is not None:
            series = self.metrics.series(inst.exchange, inst.probe)
            return series.counts_dict() if series is not None else {}
        exm = self.metrics.exchange(inst.exchange)
        return exm.aggregate.counts_dict() if exm is not None else {}

    # ------------------------------------------------------------------ conditions
    def _check(
        self, rule: str, ex: str | None, probe: str | None, inst: RuleInstance | None, now: float
    ) -> Finding | None:
        if rule == R.LOCAL_NETWORK:
            return self._local_network(now)
        assert ex is not None
        if probe is not None:
            series = self.metrics.series(ex, probe)
            check = self._probe_check_by_rule.get(rule)
            if series is None or check is None:
                return None
            series.advance(now)
            return check(series, inst, now)
        exm = self.metrics.exchange(ex)
        xcheck = self._exchange_check_by_rule.get(rule)
        return None if exm is None or xcheck is None else xcheck(exm, inst, now)

    @staticmethod
    def _recovering(inst: RuleInstance | None) -> bool:
        return inst is not None and inst.firing

    def _consecutive(self, s: SeriesState, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.consecutive_failures
        n = s.consecutive_failures
        if inst is not None and self._recovering(inst):
            if n == 0:
                if s.consecutive_ok >= cfg.recover_successes:
                    return None  # recovered: enough successful probes in a row
                return Finding(summary=inst.summary, values={})  # one success is not a recovery yet
        elif n < cfg.threshold:
            return None
        if s.last_error_outcome in CAUSE_OUTCOMES and not self._recovering(inst):
            return None  # a streak of 429s, bans or maintenance answers is their own rule's incident
        return Finding(
            summary=f"{_where(s.exchange, s.probe)}: {n} failures in a row (last: {_last_error(s)})",
            values={"consecutive_failures": float(n)},
            last_error=_last_error(s),
        )

    def _exchange_consecutive(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        """Failed attempts in a row over all probes of the exchange (any success breaks the streak)."""
        return self._consecutive(exm.aggregate, inst, now)

    def _window(
        self,
        s: Series,
        inst: RuleInstance | None,
        now: float,
        window: float,
        recovery: float | None,
        bins: bool = False,
    ) -> tuple[WindowStats | None, float]:
        """(attempts, errors, timeouts, latency bins or None) over the window the phase calls for."""
        if self._recovering(inst):
            span = recovery or window
            st = s.recent(now, span, bins=bins)
            return st, span
        since = inst.armed_since if inst is not None else -math.inf
        if since <= now - s.window_s and window >= s.window_s:
            return None, window  # the whole window: use the O(1) running totals
        return s.recent(now, window, since=since, bins=bins), window

    def _idle_on_totals(self, s: Series, inst: RuleInstance | None, now: float, window: float) -> bool:
        """Idle (or pending) and armed long enough ago that the O(1) window totals are the right input."""
        return (
            (inst is None or not inst.firing)
            and window >= s.window_s
            and (inst is None or inst.armed_since <= now - s.window_s)
        )

    def _error_rate(self, s: Series, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.error_rate
        if self._idle_on_totals(s, inst, now, cfg.window) and (
            s.attempts < cfg.min_attempts or s.errors < cfg.min_errors or s.errors <= cfg.threshold * s.attempts
        ):
            return None
        st, span = self._window(s, inst, now, cfg.window, cfg.recovery.window)
        if st is None:
            attempts, errors = s.attempts, s.errors
        else:
            attempts, errors = st.attempts, st.errors
        if self._recovering(inst):
            if attempts == 0 or errors / attempts <= cfg.threshold:
                return None
        elif attempts < cfg.min_attempts or errors < cfg.min_errors or errors / attempts <= cfg.threshold:
            return None
        rate = errors / attempts
        return Finding(
            summary=f"{_where(s.exchange, s.probe)}: {rate:.0%} errors ({errors}/{attempts} in {span:.0f}s; "
            f"last: {_last_error(s)})",
            values={"error_rate": round(rate, 4)},
            counts=s.counts_dict(),
            last_error=_last_error(s),
        )

    def _timeouts(self, s: Series, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.timeouts
        if s.timeouts <= cfg.threshold and self._idle_on_totals(s, inst, now, cfg.window):
            return None
        st, span = self._window(s, inst, now, cfg.window, cfg.recovery.window)
        n = s.timeouts if st is None else st.timeouts
        limit: float = cfg.threshold
        if self._recovering(inst):
            limit = cfg.threshold * span / cfg.window  # same rate over the shorter recovery window
        if n <= limit:
            return None
        return Finding(
            summary=f"{_where(s.exchange, s.probe)}: {n} timeouts in {span:.0f}s",
            values={"timeouts": float(n)},
            last_error=_last_error(s),
        )

    def _p99(self, s: Series, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.latency_p99
        if self._idle_on_totals(s, inst, now, cfg.window):
            keys = s.hist.keys
            if s.hist.total < cfg.min_attempts or not keys or bin_value(keys[-1]) <= cfg.threshold_ms:
                return None  # even the slowest sample in the window is under the limit
            if s.hist.count_above(cfg.threshold_ms) < cfg.min_slow:
                return None
        st, span = self._window(s, inst, now, cfg.window, cfg.recovery.window, bins=True)
        if st is None:
            n = s.hist.total
            if n < cfg.min_attempts:
                return None
            p99 = s.hist.quantile(0.99)
            slow = s.hist.count_above(cfg.threshold_ms) if p99 is not None and p99 > cfg.threshold_ms else 0
        else:
            n = sum(st.latency_bins.values())
            if n == 0 or (n < cfg.min_attempts and not self._recovering(inst)):
                return None
            p99 = st.quantile(0.99)
            limit_bin = bin_index(cfg.threshold_ms)
            slow = sum(c for b, c in st.latency_bins.items() if b > limit_bin)
        if p99 is None or p99 <= cfg.threshold_ms:
            return None
        need = cfg.min_slow if not self._recovering(inst) else max(1, math.ceil(cfg.min_slow * span / cfg.window))
        if slow < need:
            return None  # with few samples p99 is just the second-slowest: a couple of stray spikes is not it
        return Finding(
            summary=f"{_where(s.exchange, s.probe)}: p99 {_ms(p99)} over {span:.0f}s (limit {_ms(cfg.threshold_ms)}; "
            f"{slow}/{n} slower)",
            values={"p99_ms": round(p99, 3)},
        )

    def _feed_anomaly(self, s: Series, now: float) -> None:
        """Feed the probe's new successful latencies to its anomaly model, in order."""
        state = self._anomalies.get(s)
        if state is None:
            state = self._anomalies[s] = LatencyAnomaly(self._anomaly_settings)
        new = s.ok_latency_count - state.seen
        if new <= 0:
            return
        state.seen = s.ok_latency_count
        lat = s.latencies
        n = len(lat)
        feed = state.feed
        if new == 1:
            feed(now, lat[-1])  # the common case
            return
        for i in range(max(0, n - new), n):
            feed(now, lat[i])

    def _anomaly(self, s: Series, inst: RuleInstance | None, now: float) -> Finding | None:
        state = self._anomalies.get(s)
        if state is None or not state.alarm:
            return None
        level = state.model.level_ms()
        recent = sorted(list(s.latencies)[-3:])
        current = recent[len(recent) // 2] if recent else state.peak_ms
        where = _where(s.exchange, s.probe)
        values = {"latency_ms": round(current, 3), "baseline_ms": round(level, 3)}
        if state.kind == FAST:
            summary = (f"{where}: answers in {_ms(current)} vs usual {_ms(level)} (a cache or error page "
                       "answering instantly?)")
        elif state.kind == FLAT:
            summary = f"{where}: the same latency {_ms(current)} {state.flat_run} times in a row (a stuck responder?)"
        else:
            ratio = current / level if level > 0 else math.inf
            summary = f"{where}: latency {_ms(current)} vs usual {_ms(level)} (x{ratio:.1f})"
            if state.peak_ms > 1.5 * current:  # a spike never seen before that has already passed
                summary += f", peak {_ms(state.peak_ms)}"
            if level > 0:
                values["ratio"] = round(ratio, 2)
        return Finding(summary=summary, values=values)

    def _maintenance(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.maintenance
        agg = exm.aggregate
        probes = exm.probes.values()
        last = agg.last_seen[_MAINT]
        if last <= 0:
            return None
        until = agg.maintenance_until
        announced = until is not None and until > now
        ongoing = any(p.last_outcome is Outcome.MAINTENANCE and now - p.last_seen[_MAINT] <= cfg.window for p in probes)
        if not ongoing and not (announced and (agg.last_ok_at or 0.0) < last):
            return None
        text = f"{agg.exchange}: exchange reports maintenance"
        if announced and until is not None:
            text += f" until {iso_utc(until)}"
        return Finding(
            summary=text,
            values={},
            severity=cfg.announced_severity if announced else cfg.severity,
            last_error=_last_error(agg),
        )

    def _rate_limited(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        """One instance for 429s and bans so that a 429 turning into a ban escalates one incident."""
        agg = exm.aggregate
        last_ok = agg.last_ok_at or 0.0
        ban_cfg, rl_cfg = self.rules.ip_banned, self.rules.rate_limited
        hold = max(agg.ban_until or 0.0, agg.retry_until or 0.0)
        last_ban = agg.last_seen[_BAN]
        if ban_cfg.enabled and last_ban > 0 and last_ok < last_ban and (now - last_ban <= ban_cfg.window or hold > now):
            until = agg.ban_until if agg.ban_until and agg.ban_until > now else None
            text = f"{agg.exchange}: IP banned" + (f" until {iso_utc(until)}" if until else "")
            if agg.last_error_message and agg.last_error_outcome is Outcome.IP_BANNED:
                text += f" ({agg.last_error_message[:160]})"
            return Finding(
                summary=text,
                values={},
                rule=R.IP_BANNED,
                severity=ban_cfg.severity,
                ban_until=until,
                last_error=_last_error(agg),
            )
        last_429 = agg.last_seen[_429]
        already = inst is not None and inst.firing
        if (
            rl_cfg.enabled
            and last_429 > 0
            and last_ok < last_429
            and (now - last_429 <= rl_cfg.window or hold > now)
            and (already or agg.recent_count(_429, now, rl_cfg.window) >= rl_cfg.min_count)
        ):
            retry = agg.retry_until if agg.retry_until and agg.retry_until > now else None
            return Finding(
                summary=f"{agg.exchange}: rate limited (HTTP 429)"
                + (f", retry after {iso_utc(retry)}" if retry else ""),
                values={"rate_limited": float(agg.recent_count(_429, now, rl_cfg.window))},
                rule=R.RATE_LIMITED,
                severity=rl_cfg.severity,
                last_error=_last_error(agg),
            )
        return None

    def _usage(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        cfg = self.rules.rate_limit_usage
        agg = exm.aggregate
        if agg.last_usage is None:
            return None
        if (inst is None or not inst.active) and (agg.newest_usage_peak() or 0.0) <= cfg.threshold:
            return None  # idle and nothing high arrived since the last evaluation
        peak = agg.usage_peak(now, cfg.window)
        if peak is None or peak <= cfg.threshold:
            return None
        return Finding(
            summary=f"{agg.exchange}: rate-limit usage {peak:.0%} of the exchange's limit (alert above "
            f"{cfg.threshold:.0%}); bots sharing this IP are close to a ban",
            values={"rate_limit_usage": round(peak, 4)},
        )

    def _circuit(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        # Half-open is still open: one trial is in flight and nothing has recovered yet. Counting it as
        # closed made a long outage flip open/half-open on every trial and turn "flapping".
        probes = exm.probes
        open_ = sorted(p for p, s in probes.items() if s.breaker is not BreakerState.CLOSED)
        if not open_:
            return None
        ex = next(iter(probes.values())).exchange
        return Finding(
            summary=f"{ex}: circuit open on {', '.join(open_)} (probing paused to a single trial)",
            values={"open_circuits": float(len(open_))},
        )

    def _clock(self, exm: ExchangeMetrics, inst: RuleInstance | None, now: float) -> Finding | None:
        """Offset = exchange - local, so a host ahead of the exchange has a negative offset.

        The most precise of the last few measurements is used (smallest error bound, as NTP's clock
        filter does), and only the part of the offset beyond its error bound counts: a slow round
        trip never raises a false skew alarm.
        """
        cfg = self.rules.clock_offset
        ex, agg = exm.name, exm.aggregate
        offsets = agg.offsets
        if not offsets:
            return None
        recent = [
            o for o in (offsets[-i] for i in range(1, min(cfg.samples, len(offsets)) + 1)) if now - o[0] <= cfg.max_age
        ]
        if not recent:
            return None
        _ts, offset, err = min(recent, key=lambda o: o[2] if o[2] is not None else 0.0)
        err = err or 0.0
        ahead_tol, behind_tol = self.clock_tolerances.get(ex, (cfg.default_ahead_ms, cfg.default_behind_ms))
        ahead_limit = ahead_tol * cfg.ahead_share
        behind_limit = behind_tol * cfg.behind_share
        sure = abs(offset) - err
        if offset < 0 and sure > ahead_limit:
            text = (
                f"{ex}: host clock {_ms(-offset)} ahead of the exchange (±{_ms(err)}); requests are rejected beyond "
                f"{_ms(ahead_tol)} ahead - sync NTP"
            )
        elif offset > 0 and sure > behind_limit:
            text = (
                f"{ex}: host clock {_ms(offset)} behind the exchange (±{_ms(err)}); receive window is "
                f"{_ms(behind_tol)} - sync NTP"
            )
        else:
            return None
        return Finding(summary=text, values={"clock_offset_ms": round(offset, 3), "clock_error_ms": round(err, 3)})

    def _local_network(self, now: float) -> Finding | None:
        cfg = self.rules.local_network
        considered = 0
        failing: list[str] = []
        canary_failing: list[str] = []
        for name, exm in self.metrics.exchanges().items():
            agg = exm.aggregate
            if agg.last_at is None or now - agg.last_at > self.config.window:
                continue
            bad = (
                agg.consecutive_network_failures >= cfg.min_consecutive
                and agg.last_at is not None
                and now - agg.last_at <= cfg.max_age
            )
            if name in self.canaries:
                if bad:
                    canary_failing.append(name)
                continue
            considered += 1
            if bad:
                failing.append(name)
        need = max(cfg.min_exchanges, math.ceil(cfg.min_share * considered))
        if len(failing) >= need or (canary_failing and failing):
            reasons = []
            for name in failing + canary_failing:
                agg = self.metrics.exchanges()[name].aggregate
                reasons.append(f"{name}: {agg.last_error_outcome.value if agg.last_error_outcome else '?'}")
            text = f"local network: {len(failing)}/{considered} exchanges failing together"
            if canary_failing:
                text += f" and canary {', '.join(canary_failing)}"
            return Finding(
                summary=f"{text} ({'; '.join(reasons)})",
                values={"failing_exchanges": float(len(failing))},
            )
        return None

    # ------------------------------------------------------------------ introspection
    def active_instances(self) -> list[JsonObject]:
        """Rule instances that are pending, firing or recovering (for the UI and analysis)."""
        out: list[JsonObject] = []
        for key in sorted(self._active, key=_order):
            inst = self._instances[key]
            out.append(
                {
                    "rule": inst.sent_rule,
                    "exchange": inst.exchange,
                    "probe": inst.probe,
                    "phase": inst.phase.name.lower(),
                    "flapping": inst.flapping,
                    "summary": inst.summary,
                }
            )
        return out

    def pending_causes(self) -> set[str | None]:
        """Exchanges where a cause rule (429/ban, maintenance) is pending its ``for``, and None while
        several targets fail at the network level without local_network firing yet: symptoms there are
        held back briefly so the cause's incident opens first (two or more targets failing so)."""
        out: set[str | None] = set()
        instances = self._instances
        for key in self._active:
            rule, ex, _probe = key
            if rule in (R.RATE_LIMITED, R.MAINTENANCE) and instances[key].phase is Phase.PENDING:
                out.add(ex)
        if self._net_failing and self.rules.local_network.enabled:
            local = instances.get((R.LOCAL_NETWORK, None, None))
            if local is None or not local.firing:
                # probable when enough targets fail at the network level right now to meet the rule's
                # share if their streaks go on (three of five failing in their own ways is not it)
                ln = self.rules.local_network
                by_name = self.metrics.exchanges()
                failing = sum(1 for exm in by_name.values() if exm.aggregate.consecutive_network_failures >= 1)
                canary_failing = any(by_name[c].aggregate.consecutive_network_failures >= 1
                                     for c in self.canaries if c in by_name)
                others = len([n for n in by_name if n not in self.canaries]) or 1
                if failing >= ln.min_exchanges and (canary_failing or failing >= ln.min_share * others):
                    out.add(None)
        return out

    def anomaly_state(self, exchange: str, probe: str) -> LatencyAnomaly | None:
        series = self.metrics.series(exchange, probe)
        return None if series is None else self._anomalies.get(series)


def _watching(instances: list[RuleInstance], armed_after: float) -> bool:
    """Some instance is pending, firing or recovering, or was re-armed after ``armed_after``.

    Otherwise every rule of the series would answer exactly as if it had no instance: the idle
    state machine does nothing without a finding, and a windowed rule armed at least a window ago
    reads the same full-window totals the screen reads.
    """
    for inst in instances:  # noqa: SIM110 - a plain loop: this runs for every changed series each tick
        if inst.phase is not Phase.IDLE or inst.armed_since > armed_after:
            return True
    return False


def _labels(exchange: str | None, probe: str | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    if exchange is not None:
        labels["exchange"] = exchange
    if probe is not None:
        labels["probe"] = probe
    return labels


def _order(key: Key) -> tuple[int, str, str, str]:
    rule, ex, probe = key
    return (-R.rank_of(rule), ex or "", probe or "", rule)
