"""The ``detection:`` and ``incidents:`` sections (rules, windows, cool-downs).

Every rule has: ``enabled``, ``severity``, ``for`` (how long the condition must hold before it
fires) and ``recovery`` (K consecutive good evaluations, optionally held for a duration, judged on
a recent window for windowed rules so an incident resolves soon after the problem ends instead of
when the last bad sample leaves a 5-minute window). Defaults follow the seed design.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration, duration_range

SeverityName = Literal["info", "warning", "error", "critical"]


class _RuleSection(Section):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)


class RecoveryConfig(_RuleSection):
    evaluations: int = Field(default=3, ge=1, description="K consecutive good evaluations before resolving")
    for_: Duration = Field(default=0.0, alias="for", description="and the condition must stay good this long")
    window: Duration | None = Field(
        default=None, description="recent window the recovery is judged on (windowed rules); None = the rule's"
    )


class RuleConfig(_RuleSection):
    enabled: bool = True
    severity: SeverityName = "error"
    for_: Duration = Field(default=0.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)


class ErrorRateRule(RuleConfig):
    threshold: float = Field(default=0.05, gt=0, le=1, description="fires when errors/attempts is above this")
    window: Duration = 300.0
    min_attempts: int = Field(default=10, ge=1)
    min_errors: int = Field(
        default=5, ge=1, description="and at least this many errors: one stray failure among few probes is not 5 %"
    )
    for_: Duration = Field(default=30.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3, window=10.0))


class LatencyP99Rule(RuleConfig):
    severity: SeverityName = "warning"
    threshold_ms: float = Field(default=2000.0, gt=0)
    window: Duration = 300.0
    min_attempts: int = Field(default=10, ge=1)
    min_slow: int = Field(
        default=5, ge=1, description="and at least this many samples above the limit (p99 of 150 is the 2nd-slowest)"
    )
    for_: Duration = Field(default=30.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=5, window=60.0))


class LatencyAnomalyRule(RuleConfig):
    """Latency against the probe's own history (detection/anomaly.py; reasoning in docs/detection.md)."""

    severity: SeverityName = "warning"
    baseline_window: Duration = Field(default=6 * 3600.0, description="healthy history the model keeps")
    max_samples: int = Field(default=720, ge=16, le=100_000, description="history size (spread over the window)")
    recent_window: Duration = Field(default=5400.0, description="a slow drift over this long is followed, not alarmed")
    min_samples: int = Field(default=10, ge=3, description="samples before it can fire (a prior covers the start)")
    high_quantile: float = Field(default=0.99, gt=0.5, lt=1, description="the history's tail that sets the spread")
    prior_spread: float = Field(default=0.6, gt=0, le=5, description="prior spread in log units (0.6 = x1.8)")
    prior_weight: float = Field(default=500.0, ge=0, le=1e6, description="the prior counts as this many samples")
    allowance: float = Field(default=1.25, ge=0, le=100, description="spreads above the level before a sample counts")
    threshold: float = Field(default=2.0, gt=0, le=1000, description="accumulated excess that raises the alarm")
    max_step: float = Field(default=1.0, gt=0, le=1000, description="most one sample adds (one outlier never alarms)")
    novel_ratio: float = Field(default=1.0, ge=0, le=1000,
                               description="news: a stretch this many times slower than any stretch seen (0 = off)")
    novel_scales: tuple[Annotated[int, Field(ge=1, le=1024)], ...] = Field(
        default=(1, 4, 16), min_length=1, max_length=8, description="stretch lengths (answers in a row) compared")
    novel_after: int = Field(default=300, ge=1, le=1_000_000, description="answers seen before that applies")
    novel_window: Duration = Field(default=86400.0, description="how long the slowest stretches are remembered")
    recover_below: float = Field(default=0.2, le=100, description="calm once samples are under this many spreads")
    calm_samples: int = Field(default=5, ge=1, le=10_000, description="calm samples in a row to end the alarm")
    min_increase_ms: float = Field(default=50.0, ge=0, description="and at least this much slower (no loopback noise)")
    drop_ratio: float = Field(default=0.2, ge=0, lt=1, description="a drop below this share of the level is suspicious")
    drop_samples: int = Field(default=6, ge=1, le=10_000, description="drops in a row (cache or error page)")
    min_drop_ms: float = Field(default=15.0, ge=0, description="and at least this much faster than the level")
    min_duration: Duration = Field(default=10.0, description="evidence must build this long (a host stall is not it)")
    drop_below_low: float = Field(default=1.0, ge=0, le=1000,
                                  description="and below this share of the history's 1st percentile")
    flat_samples: int = Field(default=120, ge=3, le=1_000_000, description="identical latencies in a row (flat line)")
    adapt_after: Duration = Field(default=3600.0, description="a level that lasts this long becomes the normal")
    for_: Duration = Field(default=0.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=1))


class RateLimitUsageRule(RuleConfig):
    severity: SeverityName = "warning"
    threshold: float = Field(default=0.8, gt=0, le=1, description="share of the exchange's limit in use")
    window: Duration = Field(default=60.0, description="peak usage over this recent window")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=5))


class TimeoutsRule(RuleConfig):
    threshold: int = Field(default=10, ge=0, description="fires with more than this many timeouts in the window")
    window: Duration = 300.0
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3, window=10.0))


class ConsecutiveFailuresRule(RuleConfig):
    threshold: int = Field(default=3, ge=1, description="fires at this many failed attempts in a row")
    recover_successes: int = Field(default=2, ge=1, description="successful probes in a row before it can recover")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class ClockOffsetRule(RuleConfig):
    """Fires when the host is surely (offset minus its error bound) too far ahead or behind."""

    ahead_share: float = Field(default=0.5, gt=0, le=1, description="share of the exchange's ahead-tolerance")
    behind_share: float = Field(default=0.5, gt=0, le=1, description="share of the exchange's receive window")
    default_ahead_ms: float = Field(default=1000.0, gt=0)
    default_behind_ms: float = Field(default=5000.0, gt=0)
    samples: int = Field(default=3, ge=1, description="use the most precise of the last N measurements")
    max_age: Duration = Field(default=300.0, description="ignore measurements older than this")
    for_: Duration = Field(default=10.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=5))


class MaintenanceRule(RuleConfig):
    severity: SeverityName = "warning"
    announced_severity: SeverityName = "info"
    window: Duration = Field(default=60.0, description="a maintenance answer within this long keeps it open")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class IpBannedRule(RuleConfig):
    severity: SeverityName = "critical"
    window: Duration = Field(default=60.0, description="a ban answer within this long keeps it open")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class RateLimitedRule(RuleConfig):
    window: Duration = Field(default=60.0, description="a 429 within this long keeps it open")
    min_count: int = Field(default=1, ge=1, description="429 answers within `window` before it can fire")
    # A lone 429 on one endpoint with Retry-After 1 s (OKX's status endpoint allows one call per 5 s) clears
    # with the next answer; being held off for 5 s is what a bot feels.
    for_: Duration = Field(default=5.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class CircuitOpenRule(RuleConfig):
    for_: Duration = Field(default=0.0, alias="for")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class LocalNetworkRule(RuleConfig):
    """Most exchanges failing together with network errors (or a canary failing with them)."""

    severity: SeverityName = "critical"
    # 0.8, not a bare majority: three of five exchanges failing in their own ways at once happens (see the
    # simulator's outage scenario), and a false "our network" incident would hide real exchange outages.
    min_share: float = Field(default=0.8, gt=0, le=1, description="share of exchanges failing together")
    min_exchanges: int = Field(default=2, ge=1)
    min_consecutive: int = Field(default=2, ge=1, description="network failures in a row per exchange")
    max_age: Duration = Field(default=60.0, description="a failure older than this no longer counts")
    recovery: RecoveryConfig = Field(default_factory=lambda: RecoveryConfig(evaluations=3))


class RulesConfig(Section):
    error_rate: ErrorRateRule = Field(default_factory=ErrorRateRule)
    latency_p99: LatencyP99Rule = Field(default_factory=LatencyP99Rule)
    latency_anomaly: LatencyAnomalyRule = Field(default_factory=LatencyAnomalyRule)
    rate_limit_usage: RateLimitUsageRule = Field(default_factory=RateLimitUsageRule)
    timeouts: TimeoutsRule = Field(default_factory=TimeoutsRule)
    consecutive_failures: ConsecutiveFailuresRule = Field(default_factory=ConsecutiveFailuresRule)
    clock_offset: ClockOffsetRule = Field(default_factory=ClockOffsetRule)
    maintenance: MaintenanceRule = Field(default_factory=MaintenanceRule)
    ip_banned: IpBannedRule = Field(default_factory=IpBannedRule)
    rate_limited: RateLimitedRule = Field(default_factory=RateLimitedRule)
    circuit_open: CircuitOpenRule = Field(default_factory=CircuitOpenRule)
    local_network: LocalNetworkRule = Field(default_factory=LocalNetworkRule)


class DetectionConfig(Section):
    window: Annotated[Duration, duration_range(1.0, 7 * 86400.0)] = Field(
        default=300.0, description="sliding window of the rolling metrics (1s .. 7d)"
    )
    bucket: Annotated[Duration, duration_range(0.1, 3600.0)] = Field(
        default=5.0, description="time bucket of the window ring"
    )
    evaluate_every: Annotated[Duration, duration_range(0.1, 60.0)] = Field(
        default=1.0, description="rule evaluation tick (never coarser than the fastest probe)"
    )
    sparkline_points: int = Field(default=120, ge=2, le=10_000)
    rules: RulesConfig = Field(default_factory=RulesConfig)


class IncidentsConfig(Section):
    # 90 s: the rules confirm a recovery within 3-10 s of healthy answers, so a problem back soon after its
    # resolve was not over; a flap (up/down every 30-60 s) comes back 15-65 s after each resolve at a 1-5 s
    # probe interval (measured on the backtest harness): the same incident. 90 s of healthy answers (18
    # probes at the default 5 s) is a real quiet spell: two faults 3 minutes apart are two incidents. A
    # slower flap is the flapping count's job (flap_threshold fires within flap_window hold it open as one
    # flapping incident). The key kept its name; it was 10 minutes (two real faults were one incident).
    reopen_cooldown: Duration = Field(
        default=90.0,
        description="a fault back within this long of its resolve reopens the incident (same id); later, a new one",
    )
    flap_threshold: int = Field(
        default=3, ge=2, description="fires within flap_window that make a rule one recurring, flapping incident")
    flap_window: Duration = 1800.0
    flap_calm: Duration = Field(default=600.0, description="a flapping rule resolves after this long without flips")
    peak_update_ratio: float = Field(default=1.5, gt=1, description="re-announce a peak value grown by this factor")
    peak_update_interval: Duration = Field(default=300.0, description="and at most this often per incident")
    cause_hold: Duration = Field(default=5.0, le=60.0,
                                 description="a symptom whose probable cause is pending waits this long to open")
    restore_grace: Duration = Field(default=300.0, description="a restored incident not seen again resolves after")
    keep_resolved: Duration = Field(
        default=600.0, description="resolved incidents stay listed (faces, commands, summaries) this long"
    )
    max_resolved_kept: int = Field(default=2000, ge=10, description="resolved incidents kept in memory at most")
