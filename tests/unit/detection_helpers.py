"""Drive a DetectionPipeline on a FakeClock with synthetic probe results (detection/incident tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.detection.signals import RULE_NAMES
from cryptomon_tui.engine.pipeline import DetectionPipeline
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import Outcome, ProbeResult

T0 = 1_700_000_000.0

ResultFn = Callable[[float], ProbeResult | list[ProbeResult] | None]


def ok(exchange: str = "binance", probe: str = "ping", latency: float = 20.0, **kw: Any) -> ResultFn:
    return lambda t: ProbeResult(exchange, probe, t, latency, Outcome.OK, http_status=200, **kw)


def fail(exchange: str = "binance", probe: str = "ping", outcome: Outcome = Outcome.HTTP_5XX, **kw: Any) -> ResultFn:
    latency = None if outcome in (Outcome.TIMEOUT, Outcome.CONNECT, Outcome.DNS) else 30.0
    status = {Outcome.HTTP_5XX: 503, Outcome.RATE_LIMITED: 429, Outcome.IP_BANNED: 418}.get(outcome)
    kw.setdefault("http_status", status)
    return lambda t: ProbeResult(exchange, probe, t, latency, outcome, **kw)


class Harness:
    def __init__(self, config: dict[str, Any] | None = None, **pipeline_kw: Any) -> None:
        self.clock = FakeClock(T0)
        self.config = config_from_data(config or {})
        self.pipeline = DetectionPipeline(self.config, self.clock, id_seed=7, **pipeline_kw)
        self.events: list[IncidentEvent] = []

    @property
    def now(self) -> float:
        return self.clock.now()

    def run(self, seconds: float, *fns: ResultFn, every: float = 1.0) -> list[IncidentEvent]:
        """Advance ``seconds`` in steps of ``every``; at each step emit each fn's results and tick."""
        new: list[IncidentEvent] = []
        steps = round(seconds / every)
        for _ in range(steps):
            t = self.clock.now() + every
            self.clock.set(t)
            for fn in fns:
                out = fn(t)
                if out is None:
                    continue
                for r in out if isinstance(out, list) else [out]:
                    new.extend(self.pipeline.on_result(r))
            new.extend(self.pipeline.tick(t))
        self.events.extend(new)
        return new

    def of(self, kind: EventType, rule: str | None = None) -> list[IncidentEvent]:
        return [e for e in self.events if e.event is kind and (rule is None or e.incident.rule == rule)]

    def opened(self, rule: str | None = None) -> list[IncidentEvent]:
        return self.of(EventType.OPENED, rule)

    def resolved(self, rule: str | None = None) -> list[IncidentEvent]:
        return self.of(EventType.RESOLVED, rule)

    def open_rules(self) -> list[tuple[str, str | None]]:
        return sorted((i.rule, i.exchange) for i in self.pipeline.incidents.open_incidents())


def rules_only(config: dict[str, Any]) -> dict[str, Any]:
    """Config with every rule disabled except the ones given (isolates one rule in a test)."""
    names = list(RULE_NAMES)
    rules: dict[str, Any] = {n: {"enabled": False} for n in names}
    for name, body in config.items():
        rules[name] = {"enabled": True, **body}
    return {"detection": {"rules": rules}}
