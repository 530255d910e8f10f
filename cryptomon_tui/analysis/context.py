"""Everything an analyzer may look at for one incident, gathered once and read-only.

Window statistics come from the metrics package as plain (JSON-shaped) dicts. They are read defensively
through the kernel's narrowing helpers: any key may be missing (= unknown), hold None, a non-finite number
or a slightly different shape. Keys understood, per
exchange and again per probe under ``"probes"``:

    attempts, error_rate (0..1), p50_ms, p95_ms, p99_ms, timeouts, consecutive_failures,
    counts {outcome: n}, rate_limit_peak (0..1 share of the limit), clock_offset_ms, clock_error_ms,
    clock_offset_history [offset | [ts, offset] | {"ts", "offset_ms"}], last_error_code,
    last_error_message, ban_until (epoch s or ms), maintenance_until (epoch s or ms),
    baseline_p99_ms, probes {probe: {same keys}}

Whatever the stats leave out is derived from the recent ProbeResults, so the offline rules work with
either source (and in tests that only build ProbeResults).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields

from cryptomon_tui.config.exchanges import KIND_ALIASES
from cryptomon_tui.config.root import Config
from cryptomon_tui.incidents.model import Incident
from cryptomon_tui.kernel.jsonvalue import JsonObject, finite
from cryptomon_tui.kernel.results import Outcome, ProbeResult

MAX_RESULTS_PER_EXCHANGE = 200
_BAN_UNTIL = re.compile(r"banned until (\d{10,13})", re.IGNORECASE)




def _int(value: object) -> int | None:
    """A count, truncated toward zero like the metrics' own ints (2.0 -> 2); None when not a finite number."""
    n = finite(value)
    return None if n is None else int(n)


def epoch_seconds(value: object) -> float | None:
    """Epoch seconds from seconds or milliseconds (exchanges mix both)."""
    n = finite(value)
    if n is None or n <= 0:
        return None
    return n / 1000.0 if n > 1e11 else n


def ban_until_from_message(message: str | None) -> float | None:
    """Binance puts the ban expiry in the message: "... IP banned until 1660090423228."""
    if not message:
        return None
    match = _BAN_UNTIL.search(message)
    return epoch_seconds(match.group(1)) if match else None


def _history(value: object) -> list[tuple[float | None, float]]:
    out: list[tuple[float | None, float]] = []
    if not isinstance(value, list | tuple):
        return out
    for item in value:
        if isinstance(item, Mapping):
            off = finite(item.get("offset_ms", item.get("offset", item.get("value"))))
            ts = epoch_seconds(item.get("ts", item.get("t")))
            if off is not None:
                out.append((ts, off))
        elif isinstance(item, list | tuple) and len(item) >= 2:
            ts, off = epoch_seconds(item[0]), finite(item[1])
            if off is not None:
                out.append((ts, off))
        else:
            off = finite(item)
            if off is not None:
                out.append((None, off))
    return out


@dataclass(slots=True)
class WindowStats:
    """One exchange's (or one probe's) recent window. None everywhere means "unknown"."""

    attempts: int | None = None
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    timeouts: int | None = None
    consecutive_failures: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    rate_limit_peak: float | None = None
    clock_offset_ms: float | None = None
    clock_error_ms: float | None = None
    clock_offset_history: list[tuple[float | None, float]] = field(default_factory=list)
    last_error_code: str | None = None
    last_error_message: str | None = None
    ban_until: float | None = None
    maintenance_until: float | None = None
    baseline_p99_ms: float | None = None
    probes: dict[str, WindowStats] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, object] | None) -> WindowStats:
        if not isinstance(data, Mapping):
            return cls()
        counts: dict[str, int] = {}
        raw_counts = data.get("counts")
        if isinstance(raw_counts, Mapping):
            for key, n in raw_counts.items():
                value = _int(n)
                if value is not None:
                    counts[str(getattr(key, "value", key))] = value
        probes: dict[str, WindowStats] = {}
        raw_probes = data.get("probes")
        if isinstance(raw_probes, Mapping):
            probes = {str(k): cls.from_dict(v) for k, v in raw_probes.items() if isinstance(v, Mapping)}
        code = data.get("last_error_code")
        message = data.get("last_error_message")
        rate = finite(data.get("rate_limit_peak"))
        if rate is not None and rate > 1.0 and rate <= 100.0:
            rate = rate / 100.0  # a percentage
        return cls(
            attempts=_int(data.get("attempts")),
            error_rate=finite(data.get("error_rate")),
            p50_ms=finite(data.get("p50_ms")),
            p95_ms=finite(data.get("p95_ms")),
            p99_ms=finite(data.get("p99_ms")),
            timeouts=_int(data.get("timeouts")),
            consecutive_failures=_int(data.get("consecutive_failures")),
            counts=counts,
            rate_limit_peak=rate,
            clock_offset_ms=finite(data.get("clock_offset_ms")),
            clock_error_ms=finite(data.get("clock_error_ms")),
            clock_offset_history=_history(data.get("clock_offset_history")),
            last_error_code=None if code is None else str(code),
            last_error_message=None if message is None else str(message),
            ban_until=epoch_seconds(data.get("ban_until")),
            maintenance_until=epoch_seconds(data.get("maintenance_until")),
            baseline_p99_ms=finite(data.get("baseline_p99_ms")),
            probes=probes,
        )

    @classmethod
    def from_results(cls, results: Iterable[ProbeResult]) -> WindowStats:
        """What a window would say, computed from raw results (fallback for missing metrics)."""
        items = sorted(results, key=lambda r: r.started_at)
        stats = cls()
        if not items:
            return stats
        counts: Counter[str] = Counter(r.outcome.value for r in items)
        attempts = [r for r in items if r.outcome.counts_as_attempt]
        failures = [r for r in attempts if not r.ok]
        stats.counts = dict(counts)
        stats.attempts = len(attempts)
        stats.error_rate = (len(failures) / len(attempts)) if attempts else None
        stats.timeouts = counts.get(Outcome.TIMEOUT.value, 0)
        consecutive = 0
        for r in reversed(attempts):
            if r.ok:
                break
            consecutive += 1
        stats.consecutive_failures = consecutive
        latencies = sorted(r.latency_ms for r in attempts if r.ok and r.latency_ms is not None)
        if latencies:
            stats.p50_ms = _percentile(latencies, 0.50)
            stats.p95_ms = _percentile(latencies, 0.95)
            stats.p99_ms = _percentile(latencies, 0.99)
        usage = [r.rate_limit_used for r in items if r.rate_limit_used is not None]
        if usage:
            stats.rate_limit_peak = max(usage)
        offsets = [(r.started_at, r.clock_offset_ms) for r in items if r.clock_offset_ms is not None]
        if offsets:
            stats.clock_offset_history = [(ts, float(off)) for ts, off in offsets]
            stats.clock_offset_ms = float(offsets[-1][1])
            errors = [r.clock_error_ms for r in items if r.clock_error_ms is not None]
            stats.clock_error_ms = errors[-1] if errors else None
        for r in reversed(failures):
            if r.error_code is not None or r.error_message:
                stats.last_error_code = r.error_code
                stats.last_error_message = r.error_message
                break
        bans = [r.ban_until or ban_until_from_message(r.error_message) for r in items]
        ban_values = [b for b in bans if b]
        if ban_values:
            stats.ban_until = max(ban_values)
        maint = [r.maintenance_until for r in items if r.maintenance_until]
        if maint:
            stats.maintenance_until = max(maint)
        return stats

    def merged_over(self, derived: WindowStats) -> WindowStats:
        """These (metrics) values, with gaps filled from ``derived`` (raw results)."""
        out = WindowStats()
        for spec in fields(self):
            name = spec.name
            mine = getattr(self, name)
            theirs = getattr(derived, name)
            empty = mine is None or (isinstance(mine, dict | list) and not mine)
            setattr(out, name, theirs if empty else mine)
        probes = dict(derived.probes)
        for probe, stats in self.probes.items():
            probes[probe] = stats.merged_over(derived.probes.get(probe, WindowStats()))
        out.probes = probes
        return out

    def failures(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome not in ("ok", "skipped_open_circuit"))

    def to_brief(self) -> JsonObject:
        """Compact, prompt-friendly form (None fields dropped)."""
        out: JsonObject = {}
        for key in ("attempts", "consecutive_failures", "timeouts"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.error_rate is not None:
            out["error_rate"] = round(self.error_rate, 3)
        for key in ("p50_ms", "p95_ms", "p99_ms", "baseline_p99_ms", "clock_offset_ms", "clock_error_ms"):
            value = getattr(self, key)
            if value is not None:
                out[key] = round(value, 1)
        if self.rate_limit_peak is not None:
            out["rate_limit_peak"] = round(self.rate_limit_peak, 3)
        bad: JsonObject = {k: v for k, v in self.counts.items() if k != "ok" and v}
        if bad:
            out["failures_by_outcome"] = bad
        if self.last_error_code is not None:
            out["last_error_code"] = self.last_error_code
        if self.last_error_message:
            out["last_error_message"] = self.last_error_message
        return out


def _percentile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True, slots=True)
class ExchangeFacts:
    """Config facts the analyzer needs: the kind (for error codes) and how often we probe."""

    name: str
    kind: str | None
    interval_s: float | None = None
    timeout_s: float | None = None
    canary: bool = False
    authenticated: bool = False


@dataclass(frozen=True, slots=True)
class AnalysisContext:
    """One incident plus the state of the whole watch list around it."""

    incident: Incident
    now: float
    stats: dict[str, WindowStats]  # per exchange, metrics merged over what the recent results show
    recent: tuple[ProbeResult, ...]  # newest last, bounded
    other_incidents: tuple[Incident, ...]
    exchanges: dict[str, ExchangeFacts]
    budget_share: float | None = None  # share of each exchange's limit the monitor may use

    @property
    def exchange(self) -> str | None:
        return self.incident.exchange

    @property
    def kind(self) -> str | None:
        facts = self.exchanges.get(self.incident.exchange or "")
        return facts.kind if facts else None

    def kind_of(self, exchange: str) -> str | None:
        facts = self.exchanges.get(exchange)
        return facts.kind if facts else None

    def results_for(self, exchange: str, probe: str | None = None) -> list[ProbeResult]:
        return [r for r in self.recent if r.exchange == exchange and (probe is None or r.probe == probe)]

    def stats_for(self, exchange: str | None) -> WindowStats:
        return self.stats.get(exchange or "", WindowStats())

    def watched(self) -> list[str]:
        """Exchanges we know something about (configured or seen in results)."""
        names = list(self.exchanges)
        for r in self.recent:
            if r.exchange not in names:
                names.append(r.exchange)
        return names


def _config_facts(config: Config) -> tuple[dict[str, ExchangeFacts], float | None]:
    facts: dict[str, ExchangeFacts] = {}
    for name, ex in config.exchanges.items():
        if not ex.enabled:
            continue
        facts[name] = ExchangeFacts(
            name=name,
            kind=ex.kind,
            interval_s=finite(ex.interval),
            timeout_s=finite(ex.timeout),
            canary=ex.canary,
            authenticated=ex.credentials is not None,
        )
    return facts, finite(config.probing.budget_share)


def build_context(
    incident: Incident,
    exchange_stats: Mapping[str, Mapping[str, object]] | None,
    recent_results: Iterable[ProbeResult],
    other_open_incidents: Iterable[Incident],
    config: Config,
    *,
    now: float | None = None,
) -> AnalysisContext:
    """Gather the evidence for one incident. ``exchange_stats`` is the metrics snapshot's ``exchanges``."""
    # Bounded per exchange, so a chatty exchange cannot push a quiet one's evidence out.
    grouped: dict[str, list[ProbeResult]] = {}
    for r in sorted(recent_results, key=lambda r: r.started_at):
        grouped.setdefault(r.exchange, []).append(r)
    recent = sorted((r for rs in grouped.values() for r in rs[-MAX_RESULTS_PER_EXCHANGE:]), key=lambda r: r.started_at)
    facts, budget_share = _config_facts(config)
    for r in recent:
        if r.exchange not in facts:
            facts[r.exchange] = ExchangeFacts(name=r.exchange, kind=KIND_ALIASES.get(r.exchange.lower()))
    if incident.exchange and incident.exchange not in facts:
        facts[incident.exchange] = ExchangeFacts(
            name=incident.exchange, kind=KIND_ALIASES.get(incident.exchange.lower())
        )
    by_exchange: dict[str, list[ProbeResult]] = {}
    for r in recent:
        by_exchange.setdefault(r.exchange, []).append(r)
    stats: dict[str, WindowStats] = {}
    names = set(facts) | set(by_exchange) | set(exchange_stats or {})
    for name in names:
        results = by_exchange.get(name, [])
        derived = WindowStats.from_results(results)
        per_probe: dict[str, list[ProbeResult]] = {}
        for r in results:
            per_probe.setdefault(r.probe, []).append(r)
        derived.probes = {probe: WindowStats.from_results(rs) for probe, rs in per_probe.items()}
        given = WindowStats.from_dict((exchange_stats or {}).get(name))
        stats[name] = given.merged_over(derived)
    others = tuple(i for i in other_open_incidents if i.id != incident.id)
    when = now if now is not None else max([incident.updated_at] + [r.started_at for r in recent[-1:]])
    return AnalysisContext(
        incident=incident,
        now=when,
        stats=stats,
        recent=tuple(recent),
        other_incidents=others,
        exchanges=facts,
        budget_share=budget_share,
    )
