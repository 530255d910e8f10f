"""The monitor's own request budget: which probes run, and how often, per exchange.

A configured interval is a wish. The plan stretches it when
- the endpoint has its own hard limit (``ProbeSpec.min_interval_s``, e.g. OKX status 1 call per 5 s; we keep
  2 % under it, so arrival jitter never makes two of our calls look too close),
- the endpoint has a documented per-endpoint limit (``ProbeSpec.endpoint_limit``), a hard ceiling,
- all probes of one exchange together would use more than the budget share (``probing.budget_share``,
  default 2 %, or the exchange's own ``budget_share``) of the exchange's limit (``adapter.rate_limit``),
  counted in the exchange's own units (Binance weight, requests, credits).
Stretching finds one common interval for the exchange's probes that fits the share (water-filling):
the fastest probes slow down first; a probe already slower because of its own endpoint limit keeps
it. ``cryptomon config check`` prints what was stretched and why; the daemon logs it at start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptomon_tui.exchanges.base import ExchangeAdapter, ProbeSpec
from cryptomon_tui.kernel.units import format_duration

if TYPE_CHECKING:
    from cryptomon_tui.config.exchanges import ExchangeConfig
    from cryptomon_tui.config.root import Config

AdapterFactory = Callable[[str, "ExchangeConfig"], ExchangeAdapter]


@dataclass(frozen=True, slots=True)
class PlannedProbe:
    exchange: str
    probe: str
    interval_s: float  # effective
    configured_interval_s: float
    stretched: bool
    reason: str
    weight: float = 1.0
    # The endpoint's own hard limit as a minimum gap between two sends (0 = none); the scheduler never lets
    # jitter bring two sends closer than this.
    min_gap_s: float = 0.0

    def explain(self) -> str:
        head = f"exchanges.{self.exchange}.{self.probe} runs every {format_duration(self.interval_s)}"
        if not self.stretched:
            return head
        return f"{head}, not {format_duration(self.configured_interval_s)}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "interval_s": self.interval_s,
            "configured_interval_s": self.configured_interval_s,
            "stretched": self.stretched,
            "reason": self.reason or None,
            "weight": self.weight,
            "min_gap_s": self.min_gap_s or None,
        }


def _rate(capacity: float, window_s: float, unit: str) -> str:
    return f"{capacity:g} {unit} per {format_duration(window_s)}"


def _default_factory() -> AdapterFactory:
    from cryptomon_tui.exchanges.registry import create_adapter

    return create_adapter


def selected_probes(name: str, cfg: ExchangeConfig, adapter: ExchangeAdapter) -> list[ProbeSpec]:
    """The probes this exchange runs, validated: unknown names and unsigned account probes are errors."""
    known = adapter.probes()
    wanted = list(cfg.probes) if cfg.probes is not None else list(adapter.default_probes)
    if not wanted:
        raise ValueError(f"exchanges.{name}.probes is empty: list at least one of {', '.join(known)}")
    specs: list[ProbeSpec] = []
    for probe in dict.fromkeys(wanted):  # keep order, drop duplicates
        spec = known.get(probe)
        if spec is None:
            raise ValueError(
                f"exchanges.{name}.probes: {probe!r} is not a probe of {name} ({cfg.kind}); "
                f"valid: {', '.join(known) or 'none'}"
            )
        if spec.signed and cfg.credentials is None:
            raise ValueError(
                f"exchanges.{name}.probes: {probe!r} is a signed (account) probe and needs "
                f"exchanges.{name}.credentials with a read-only API key"
            )
        specs.append(spec)
    return specs


HARD_LIMIT_MARGIN = 1.02  # arrival jitter must not make two of our sends look closer than the limit


def hard_gap(spec: ProbeSpec) -> float:
    """The shortest gap the endpoint itself allows between two calls (0 when it states none)."""
    gap = spec.min_interval_s
    limit = spec.endpoint_limit
    if limit is not None and limit.per_second > 0:
        gap = max(gap, 1.0 / limit.per_second)
    return gap


def _floor(spec: ProbeSpec, configured: float, who: str) -> tuple[float, str]:
    """The shortest interval this probe may run at on its own, and why.

    An endpoint's own limit is a hard ceiling (we never go past it, whatever the share). The budget
    share is applied to the exchange-wide limit, which already bounds our total use of every endpoint.
    """
    floor, reason = configured, ""
    if spec.min_interval_s * HARD_LIMIT_MARGIN > floor:
        floor = spec.min_interval_s * HARD_LIMIT_MARGIN
        reason = f"{who} allows 1 call per {format_duration(spec.min_interval_s)} on {spec.path} (we stay 2% under it)"
    limit = spec.endpoint_limit
    if limit is not None and limit.per_second > 0:
        endpoint_floor = HARD_LIMIT_MARGIN / limit.per_second
        if endpoint_floor > floor + 1e-9:
            floor = endpoint_floor
            reason = (f"{who} allows {_rate(limit.capacity, limit.window_s, limit.unit)} on {spec.path} "
                      "(we stay 2% under it)")
    return floor, reason


def _round_up(seconds: float) -> float:
    """Readable intervals: to 10 ms below 1 s, to 0.1 s above (rounding up keeps us inside the budget)."""
    step = 0.01 if seconds < 1 else 0.1
    return round(math.ceil(seconds / step - 1e-9) * step, 3)


def plan_exchange(name: str, cfg: ExchangeConfig, adapter: ExchangeAdapter, default_share: float) -> list[PlannedProbe]:
    specs = selected_probes(name, cfg, adapter)
    share = cfg.budget_share if cfg.budget_share is not None else default_share
    configured = float(cfg.interval)
    who = adapter.display_name or name
    floors = [_floor(spec, configured, who) for spec in specs]
    intervals = [f for f, _ in floors]
    reasons = [r for _, r in floors]

    limit = adapter.rate_limit
    allowed = limit.per_second * share
    cost = sum(spec.weight / iv for spec, iv in zip(specs, intervals, strict=True))
    if allowed > 0 and cost > allowed * (1 + 1e-9):
        common = _common_interval(specs, intervals, allowed)
        why = (
            f"{name}'s probes together would use {cost:.3g} {limit.unit}/s, over the {share:.0%} budget share of "
            f"{who}'s limit of {_rate(limit.capacity, limit.window_s, limit.unit)} ({allowed:.3g} {limit.unit}/s)"
        )
        for i in range(len(specs)):
            if common > intervals[i] * (1 + 1e-9):
                intervals[i] = common
                reasons[i] = why
    planned: list[PlannedProbe] = []
    for spec, interval, reason in zip(specs, intervals, reasons, strict=True):
        effective = _round_up(interval) if interval > configured * (1 + 1e-9) else configured
        planned.append(
            PlannedProbe(
                exchange=name,
                probe=spec.name,
                interval_s=effective,
                configured_interval_s=configured,
                stretched=effective > configured * (1 + 1e-9),
                reason=reason,
                weight=spec.weight,
                min_gap_s=hard_gap(spec) * (1 + (HARD_LIMIT_MARGIN - 1) / 2),
            )
        )
    return planned


def _common_interval(specs: list[ProbeSpec], floors: list[float], allowed: float) -> float:
    """The shortest interval T with sum(weight / max(floor, T)) <= allowed (water-filling).

    Only probes faster than T slow down; a probe already held back by its own endpoint limit
    (OKX status, 1 per 5 s) keeps that interval instead of being stretched further.
    """
    weights = [s.weight for s in specs]

    def cost(t: float) -> float:
        return sum(w / max(f, t) for w, f in zip(weights, floors, strict=True))

    lo, hi = min(floors), max(max(floors), sum(weights) / allowed)
    for _ in range(100):
        mid = (lo + hi) / 2
        if cost(mid) > allowed:
            lo = mid
        else:
            hi = mid
    return hi


def plan_schedule(config: Config, adapter_factory: AdapterFactory | None = None) -> list[PlannedProbe]:
    """Every probe of every enabled exchange with its effective interval.

    Raises ValueError naming the exchange and probe for configs that cannot run (unknown probe
    names, a signed probe without credentials, an adapter that rejects its settings).
    """
    factory = adapter_factory or _default_factory()
    plan: list[PlannedProbe] = []
    for name, cfg in config.enabled_exchanges().items():
        try:
            adapter = factory(name, cfg)
        except (KeyError, ValueError) as exc:
            message = exc.args[0] if exc.args else str(exc)
            raise ValueError(f"exchanges.{name}: {message}") from None
        plan.extend(plan_exchange(name, cfg, adapter, config.probing.budget_share))
    return plan
