"""The offline analyzer: rules over outcomes, documented error codes, rate-limit usage, clock offset,
maintenance status and cross-exchange timing. No network, no cost, answers in microseconds.

Each rule looks at the evidence and returns a ``Finding`` with a confidence; the strongest finding is
the verdict, the runner-up is mentioned in the evidence. The order of the questions follows what a
person on call asks first: is it me (network, clock, key, my request rate) or the exchange?
"""

from __future__ import annotations

import datetime as _dt
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptomon_tui.analysis import codes
from cryptomon_tui.analysis.context import AnalysisContext, WindowStats, ban_until_from_message
from cryptomon_tui.analysis.model import Analysis, AnalysisSeverity
from cryptomon_tui.kernel.results import BreakerState, Outcome, ProbeResult
from cryptomon_tui.kernel.units import format_duration, format_ms

_ms = format_ms  # the kernel's one millisecond formatter, under the short name the f-strings use

RECENT_WINDOW_S = 300.0
LAST_N = 6
_NETWORK = {Outcome.DNS, Outcome.CONNECT, Outcome.TLS, Outcome.RESET, Outcome.TIMEOUT}
_HTML = re.compile(r"<\s*(!doctype|html|head|body|title)|cloudflare|cloudfront|captive|squid|proxy", re.IGNORECASE)
_SERVER_TS = re.compile(
    r"server_timestamp\[(\d{10,13})\].*?req_timestamp\[(\d{10,13})\]|"
    r"req_timestamp\[(\d{10,13})\].*?server_timestamp\[(\d{10,13})\]",
    re.IGNORECASE,
)

Sev = AnalysisSeverity


@dataclass(slots=True)
class Finding:
    category: str
    confidence: float
    root_cause: str
    severity: AnalysisSeverity
    action: str
    recovery: str
    evidence: list[str] = field(default_factory=list)


def when(ts: float) -> str:
    """Readable UTC time for verdict text."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _dur(seconds: float) -> str:
    """Whole seconds for countdowns; sub-10 s values (probe intervals such as 250 ms) keep their
    fraction: rounding them said "this monitor probes every 0ms"."""
    seconds = max(0.0, seconds)
    return format_duration(seconds if seconds < 10 else round(seconds))


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _short(text: str | None, limit: int = 140) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(r: ProbeResult) -> str:
    """One result as a line of evidence: who, what, how it failed, when."""
    parts = [f"{r.exchange}/{r.probe}", r.outcome.value]
    if r.http_status is not None:
        parts.append(f"HTTP {r.http_status}")
    if r.error_code is not None:
        parts.append(f"code {r.error_code}")
    text = " ".join(parts)
    if r.error_message:
        text += f" {_short(r.error_message, 120)!r}"
    return f"{text} at {when(r.started_at)}"


class _View:
    """Per-exchange helpers over the context's recent results."""

    def __init__(self, ctx: AnalysisContext) -> None:
        self.ctx = ctx
        self.horizon = ctx.now - RECENT_WINDOW_S
        self.by_exchange: dict[str, list[ProbeResult]] = {}
        for r in ctx.recent:
            if r.started_at >= self.horizon:
                self.by_exchange.setdefault(r.exchange, []).append(r)
        self._attempts = {name: [r for r in rs if r.outcome.counts_as_attempt] for name, rs in self.by_exchange.items()}
        self._with_data = [name for name in ctx.watched() if self._attempts.get(name)]

    def results(self, exchange: str | None) -> list[ProbeResult]:
        return self.by_exchange.get(exchange or "", [])

    def attempts(self, exchange: str | None) -> list[ProbeResult]:
        return self._attempts.get(exchange or "", [])

    def last(self, exchange: str, n: int = LAST_N) -> list[ProbeResult]:
        return self.attempts(exchange)[-n:]

    def network_down(self, exchange: str) -> bool:
        """Most of the latest attempts (and the very last one) failed on the network path."""
        last = self.last(exchange)
        if not last:
            return False
        bad = sum(1 for r in last if r.outcome in _NETWORK)
        return last[-1].outcome in _NETWORK and bad * 3 >= len(last) * 2

    def healthy(self, exchange: str) -> bool:
        last = self.last(exchange, 4)
        return bool(last) and last[-1].ok and sum(1 for r in last if r.ok) * 2 >= len(last)

    def with_data(self) -> list[str]:
        return list(self._with_data)

    def first_failure(self, exchange: str) -> float | None:
        """Start of the current failure streak."""
        start = None
        for r in reversed(self.attempts(exchange)):
            if r.ok:
                break
            start = r.started_at
        return start


def _targets(ctx: AnalysisContext, view: _View) -> list[str]:
    """The exchange(s) the incident is about: its own, or every one with failures when it has none."""
    if ctx.exchange:
        return [ctx.exchange]
    return [name for name in view.with_data() if any(not r.ok for r in view.attempts(name))]


def _code_info(ctx: AnalysisContext, r: ProbeResult) -> codes.CodeInfo | None:
    return codes.lookup(ctx.kind_of(r.exchange), r.error_code)


_OUTCOME_CATEGORY = {
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.IP_BANNED: "ip_banned",
    Outcome.CLOCK_SKEW: "clock_skew",
    Outcome.AUTH: "auth",
    Outcome.MAINTENANCE: "maintenance",
}
_CATEGORY_CACHE: dict[tuple[str | None, str, str | None, int | None, bool], str | None] = {}


def _category(ctx: AnalysisContext, r: ProbeResult) -> str | None:
    """What a failed result means, from its outcome first, then its code, then its HTTP status."""
    if r.outcome is Outcome.OK:
        return None
    by_outcome = _OUTCOME_CATEGORY.get(r.outcome)
    if by_outcome:
        return by_outcome
    kind = ctx.kind_of(r.exchange)
    banned = ban_until_from_message(r.error_message) is not None
    key = (kind, r.outcome.value, r.error_code, r.http_status, banned)
    if key in _CATEGORY_CACHE:
        return _CATEGORY_CACHE[key]
    category: str | None
    if r.http_status == 418 or banned:
        category = "ip_banned"
    else:
        info = codes.lookup(kind, r.error_code)
        http = codes.http_meaning(r.http_status)
        category = info.category if info is not None else (http.category if http else None)
    if len(_CATEGORY_CACHE) < 4096:
        _CATEGORY_CACHE[key] = category
    return category


def _with_meaning(ctx: AnalysisContext, r: ProbeResult) -> str:
    line = describe(r)
    info = _code_info(ctx, r)
    if info is not None:
        line += f" [{info.meaning}]"
    return line


# --------------------------------------------------------------------------------------------- rules


def rule_local_network(ctx: AnalysisContext, view: _View) -> Finding | None:
    """Every exchange failing on the network path at once = the user's network or DNS."""
    names = view.with_data()
    if len(names) < 2:
        return None
    down = [n for n in names if view.network_down(n)]
    if len(down) < 2 or len(down) < len(names) * 0.8:
        return None
    outcomes: Counter[Outcome] = Counter()
    for n in down:
        outcomes.update(r.outcome for r in view.last(n) if r.outcome in _NETWORK)
    dominant = outcomes.most_common(1)[0][0]
    starts = [s for s in (view.first_failure(n) for n in down) if s is not None]
    spread = (max(starts) - min(starts)) if starts else None
    canaries = [n for n in down if ctx.exchanges.get(n) and ctx.exchanges[n].canary]
    evidence = [f"{len(down)} of {len(names)} watched targets fail on the network path: {', '.join(sorted(down))}"]
    evidence.append("outcomes: " + ", ".join(f"{o.value} x{c}" for o, c in outcomes.most_common()))
    if spread is not None:
        evidence.append(f"failures began within {_dur(spread)} of each other (first at {when(min(starts))})")
    if canaries:
        evidence.append(f"the non-exchange canary target(s) {', '.join(canaries)} fail too")
    for n in down[:3]:
        evidence.append(describe(view.last(n)[-1]))
    if dominant is Outcome.DNS:
        cause = (
            "DNS resolution fails for every exchange at once, so this machine's resolver or network is down, "
            "not the exchanges."
        )
        action = (
            "Check this host's DNS: `resolvectl status` or /etc/resolv.conf, then `dig api.binance.com @1.1.1.1`; "
            "switch to a working resolver. Bots on this host cannot reach the exchanges either."
        )
    elif dominant is Outcome.TIMEOUT:
        cause = "Every exchange times out at once, so this machine's uplink is down or saturated, not the exchanges."
        action = (
            "Check the local link and bandwidth (router, VPN, proxy, `mtr api.binance.com`); stop anything "
            "saturating the uplink. Bots on this host are affected too."
        )
    else:
        cause = (
            f"Connections to every exchange fail at once ({dominant.value}), so this machine's network, firewall, "
            "proxy or VPN is the problem, not the exchanges."
        )
        action = (
            "Check the local network path: `ip route`, firewall/VPN/proxy settings, then "
            "`curl -v https://api.binance.com/api/v3/ping`. Bots on this host cannot reach the exchanges either."
        )
    confidence = 0.9 if len(down) >= 3 else 0.75
    if spread is not None and spread <= 60:
        confidence = min(0.97, confidence + 0.05)
    return Finding(
        "local_network",
        confidence,
        cause,
        Sev.CRITICAL,
        action,
        "As soon as local connectivity returns; the exchanges themselves are probably fine.",
        evidence,
    )


def rule_ip_banned(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        bans = [r for r in results if _category(ctx, r) == "ip_banned"]
        stats = ctx.stats_for(exchange)
        kind = ctx.kind_of(exchange)
        bybit_403 = [r for r in results if kind == "bybit" and r.http_status == 403 and r.outcome is not Outcome.AUTH]
        if (
            not bans
            and not bybit_403
            and not stats.ban_until
            and not (ctx.incident.ban_until and ctx.incident.exchange == exchange)
        ):
            continue
        candidates = [r.ban_until or ban_until_from_message(r.error_message) for r in bans]
        until_values = [u for u in candidates if u]
        if stats.ban_until:
            until_values.append(stats.ban_until)
        if ctx.incident.ban_until and ctx.incident.exchange == exchange:
            until_values.append(ctx.incident.ban_until)
        until = max(until_values) if until_values else None
        first_ban = min((r.started_at for r in bans + bybit_403), default=None)
        limited_before = [
            r
            for r in results
            if _category(ctx, r) == "rate_limited" and (first_ban is None or r.started_at <= first_ban)
        ]
        limit = codes.WEIGHT_LIMITS.get(kind or "", "the exchange's per-IP request limit")
        evidence = [_with_meaning(ctx, r) for r in (limited_before[-1:] + (bans or bybit_403)[:2])]
        if stats.rate_limit_peak is not None:
            evidence.append(f"{exchange} request-weight usage peaked at {_pct(stats.rate_limit_peak)} of the limit")
        if until:
            evidence.append(f"ban expiry from the exchange: {when(until)}")
        after_429 = " after it kept sending requests past HTTP 429 warnings" if limited_before else ""
        if kind == "bybit" and not bans:
            cause = (
                f"Bybit answers HTTP 403, which for an IP over {limit.split(' (')[0]} means this IP is blocked for "
                "at least 10 minutes (or the IP is in a restricted region)."
            )
            recovery = "At least 10 minutes after the request rate drops; the block lifts by itself."
        else:
            until_text = f" until {when(until)}" if until else ""
            cause = (
                f"{exchange} has banned this IP{until_text}{after_429}: the request weight shared by every "
                f"client on this IP passed {limit.split(' (')[0]}."
            )
            if until:
                remaining = until - ctx.now
                recovery = (
                    f"When the ban lifts at {when(until)} (in {_dur(remaining)}), if requests stay under the limit"
                    if remaining > 0
                    else f"The ban expired at {when(until)}; probes should recover now"
                )
            else:
                recovery = "Binance bans last from 2 minutes to 3 days and grow for repeat offenders."
        facts = ctx.exchanges.get(exchange)
        monitor_note = ""
        if facts and facts.interval_s:
            monitor_note = f" (this monitor probes every {_dur(facts.interval_s)}"
            if ctx.budget_share:
                monitor_note += f" and may use at most {_pct(ctx.budget_share)} of the limit"
            monitor_note += ", so other clients on the IP used most of it)"
        action = (
            "Stop or slow every bot on this IP until the ban lifts, then reduce polling: use WebSocket streams for "
            "market data, honour Retry-After on 429, or split bots across IPs" + monitor_note + "."
        )
        confidence = 0.95 if until else (0.85 if bans else 0.7)
        return Finding("ip_banned", confidence, cause, Sev.CRITICAL, action, recovery + ".", evidence)
    return None


def _usage_trend(results: list[ProbeResult]) -> tuple[float, float] | None:
    usage = [r.rate_limit_used for r in results if r.rate_limit_used is not None]
    if len(usage) < 3:
        return None
    third = max(1, len(usage) // 3)
    early = sum(usage[:third]) / third
    late = sum(usage[-third:]) / third
    return early, late


def rule_rate_limited(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        limited = [r for r in results if _category(ctx, r) == "rate_limited"]
        stats = ctx.stats_for(exchange)
        kind = ctx.kind_of(exchange)
        limit = codes.WEIGHT_LIMITS.get(kind or "", "the exchange's request limit")
        trend = _usage_trend(results)
        peak = stats.rate_limit_peak
        evidence = [_with_meaning(ctx, r) for r in limited[-2:]]
        if peak is not None:
            evidence.append(f"usage peaked at {_pct(peak)} of the limit")
        if trend:
            evidence.append(f"usage went from {_pct(trend[0])} to {_pct(trend[1])} of the limit over the window")
        retry = max((r.retry_after_s for r in limited if r.retry_after_s), default=None)
        if limited:
            cause = (
                f"{exchange} is rate-limiting requests from this IP/account ({limit}); the budget is shared with "
                "every other client on the IP, so other bots are probably using most of it."
            )
            if kind and kind.startswith("binance"):
                cause += " Continuing after 429s gets the IP banned (HTTP 418)."
            recovery = (
                f"Within {_dur(retry)} (Retry-After) if the request rate drops."
                if retry
                else "Within the current limit window (a minute on Binance, seconds elsewhere) if the rate drops."
            )
            return Finding(
                "rate_limited",
                0.85,
                cause,
                Sev.HIGH,
                "Reduce polling by the bots on this IP, honour Retry-After, use WebSocket streams for market data, "
                "or split bots across IPs before the exchange escalates to a ban.",
                recovery,
                evidence,
            )
        climbing = trend is not None and trend[1] >= 0.7 and trend[1] > trend[0] + 0.1
        if climbing or (peak is not None and peak >= 0.85):
            cause = (
                f"Rate-limit usage on {exchange} is climbing toward {limit.split(' (')[0]}: no errors yet, but at this "
                "pace the IP will be throttled (429) and then banned."
            )
            return Finding(
                "rate_limit_climbing",
                0.7,
                cause,
                Sev.MEDIUM,
                "Find the client on this IP that increased its request rate and slow it down, or move its market "
                "data to WebSocket streams.",
                "Nothing is broken yet; usage falls as soon as the request rate drops.",
                evidence,
            )
    return None


def _slope_ms_per_min(history: list[tuple[float | None, float]]) -> float | None:
    points = [(ts, off) for ts, off in history if ts is not None]
    if len(points) < 3:
        return None
    t0 = points[0][0]
    xs = [(ts - t0) / 60.0 for ts, _ in points]
    ys = [off for _, off in points]
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var <= 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var


def _same_offset(offset: float | None, others: list[float]) -> bool:
    """Other exchanges see (about) the same offset: the local clock is what is off."""
    if offset is None or abs(offset) < 100:
        return False
    big = [o for o in others if abs(o) >= 100]
    return bool(big) and all((o > 0) == (offset > 0) and abs(o - offset) <= max(250.0, abs(offset) * 0.3) for o in big)


def rule_clock_skew(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        skewed = [r for r in results if _category(ctx, r) == "clock_skew"]
        stats = ctx.stats_for(exchange)
        kind = ctx.kind_of(exchange)
        offset = stats.clock_offset_ms
        limit_ms = codes.CLOCK_LIMIT_MS.get(kind or "", 1000.0)
        history = stats.clock_offset_history
        over = offset is not None and abs(offset) >= limit_ms
        if not skewed and not over:
            continue
        evidence = [_with_meaning(ctx, r) for r in skewed[-2:]]
        for r in skewed[-1:]:
            match = _SERVER_TS.search(r.error_message or "")
            if match:
                g = match.groups()
                server, req = (g[0], g[1]) if g[0] else (g[3], g[2])
                evidence.append(f"request timestamp was {int(req) - int(server):+,} ms vs server time")
        slope = _slope_ms_per_min(history)
        growing = False
        if len(history) >= 2:
            first, last = history[0][1], history[-1][1]
            noise = max(50.0, 2 * (stats.clock_error_ms or 0.0))
            growing = abs(last) > abs(first) + noise
            evidence.append(f"clock offset vs {exchange} moved from {first:+,.0f} ms to {last:+,.0f} ms")
        if slope is not None:
            evidence.append(f"drift rate {slope:+,.1f} ms/min")
        others = []
        for name in ctx.watched():
            if name == exchange:
                continue
            other = ctx.stats_for(name).clock_offset_ms
            if other is not None:
                others.append((name, other))
        same_everywhere = _same_offset(offset, [o for _, o in others])
        if same_everywhere:
            evidence.append(
                "other exchanges see the same offset: " + ", ".join(f"{n} {o:+,.0f} ms" for n, o in others[:4])
            )
        direction = ""
        if offset is not None:
            direction = (
                f" it is now {_ms(abs(offset))} {'ahead of' if offset < 0 else 'behind'} {exchange}'s server time"
            )
        drift = f" and drifting {abs(slope):,.0f} ms/min" if slope is not None and growing else ""
        code_text = ""
        if skewed and skewed[-1].error_code:
            code_text = f", so signed requests fail with {skewed[-1].error_code}"
        tolerance = codes.CLOCK_TOLERANCE.get(kind or "", "")
        if growing or same_everywhere:
            cause = f"This host's clock drifts:{direction}{drift}{code_text}."
        else:
            cause = f"This host's clock is off:{direction}{code_text}."
        if tolerance:
            evidence.append(f"{exchange}: {tolerance}")
        action = (
            "Fix time sync on this host: `timedatectl status` (is NTP active and the clock synchronized?), enable "
            "chrony or systemd-timesyncd (`sudo timedatectl set-ntp true`; `chronyc tracking`, `chronyc makestep` "
            "for an immediate step). A bigger recvWindow only hides the drift."
        )
        confidence = 0.6
        if skewed:
            confidence = 0.8
        if skewed and (growing or same_everywhere):
            confidence = 0.92
        recovery = (
            "Within minutes of syncing the clock; without a fix the offset keeps growing."
            if growing
            else ("Within minutes of syncing the clock.")
        )
        return Finding("clock_skew", confidence, cause, Sev.HIGH, action, recovery, evidence)
    return None


def rule_maintenance(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        maint = [r for r in results if _category(ctx, r) == "maintenance"]
        stats = ctx.stats_for(exchange)
        ends = [r.maintenance_until for r in results if r.maintenance_until] + (
            [stats.maintenance_until] if stats.maintenance_until else []
        )
        in_window = ctx.incident.in_maintenance and ctx.incident.exchange == exchange
        if not maint and not ends and not in_window:
            continue
        end = max(ends) if ends else None
        if end is not None and end < ctx.now - RECENT_WINDOW_S and not maint:
            continue  # an old announcement, not what is happening now
        evidence = [_with_meaning(ctx, r) for r in maint[-2:]]
        status_said = [r for r in maint if r.probe == "status"]
        if status_said:
            evidence.append(f"{exchange}'s status endpoint reports maintenance")
        if in_window:
            evidence.append("the incident falls inside a configured maintenance window")
        planned = "planned " if (end is not None or status_said or in_window) else ""
        until = f" until {when(end)}" if end is not None else ""
        cause = f"{exchange} is down for {planned}maintenance{until}; the outage is on the exchange side."
        if end is not None:
            evidence.append(f"announced end: {when(end)}")
            remaining = end - ctx.now
            recovery = (
                f"At the announced end, {when(end)} (in {_dur(remaining)}); APIs often need a few minutes more."
                if remaining > 0
                else f"The announced end ({when(end)}) has passed; recovery is overdue, check the status page."
            )
        else:
            recovery = "Unknown: no end was announced; check the exchange's status page."
        return Finding(
            "maintenance",
            0.9 if end is not None or status_said else 0.75,
            cause,
            Sev.MEDIUM if planned else Sev.HIGH,
            f"Nothing to fix locally: pause strategies on {exchange} until it is back, and silence this incident "
            "until the announced end.",
            recovery,
            evidence,
        )
    return None


def rule_auth(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        rejected = [r for r in results if _category(ctx, r) == "auth"]
        if not rejected:
            continue
        last = rejected[-1]
        info = _code_info(ctx, last)
        public_ok = any(r.ok for r in results if r.probe != last.probe)
        evidence = [_with_meaning(ctx, r) for r in rejected[-2:]]
        if public_ok:
            evidence.append(f"{exchange}'s public endpoints answer normally")
        code = str(last.error_code or "")
        meaning = f" ({code}: {info.meaning})" if info else ""
        cause = f"{exchange} rejects the API credentials{meaning}; this is the key or its setup, not an outage."
        if code in {"10010", "50110", "-2015"}:
            action = (
                "Check the key's IP whitelist (did this host's public IP change?), that it has read permission, "
                "and that it has not expired or been deleted."
            )
        elif code in {"50101", "10003"}:
            action = (
                "The key belongs to another environment: use a live key on live, a demo/testnet key on demo/testnet "
                "(check base_url)."
            )
        elif code in {"-1022", "10004", "50113", "13009"}:
            action = (
                "The signature does not verify: check the secret (stray whitespace, wrong key pair), the host clock, "
                "and that no proxy rewrites the request."
            )
        elif code in {"50105"}:
            action = "The OKX passphrase is wrong: set the one chosen when the key was created."
        else:
            action = "Check the API key, secret and passphrase in the config, its permissions and its IP whitelist."
        return Finding(
            "auth",
            0.85 if info or last.outcome is Outcome.AUTH else 0.7,
            cause,
            Sev.HIGH,
            action,
            "It will not recover by itself: only after the key or its settings are fixed.",
            evidence,
        )
    return None


def _baseline_and_current(
    stats: WindowStats, results: list[ProbeResult], split_at: float
) -> tuple[float | None, float | None]:
    """Usual and current p99: from the metrics when they have a baseline, else before/after ``split_at``."""
    current = stats.p99_ms
    baseline = stats.baseline_p99_ms
    if baseline is None:
        # Before the incident the rule was already pending for a while: the older half of it is the clean part.
        before_all = [r.latency_ms for r in results if r.ok and r.latency_ms is not None and r.started_at < split_at]
        before = sorted(before_all[: max(5, len(before_all) // 2)])
        after = sorted(r.latency_ms for r in results if r.ok and r.latency_ms is not None and r.started_at >= split_at)
        if len(before) >= 5 and len(after) >= 5:
            baseline = before[int(0.99 * (len(before) - 1))]
            current = after[int(0.99 * (len(after) - 1))]
    return baseline, current


def rule_latency(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        stats = ctx.stats_for(exchange)
        results = view.results(exchange)
        split = ctx.incident.started_at
        baseline, current = _baseline_and_current(stats, ctx.results_for(exchange), split)
        peak = ctx.incident.peak.get("p99_ms") if ctx.incident.exchange == exchange else None
        if current is None and peak is not None:
            current = peak
        if baseline is None or current is None or baseline <= 0:
            continue
        ratio = current / baseline
        if ratio < 5:
            continue
        error_rate = stats.error_rate or 0.0
        if error_rate > 0.05:
            continue  # errors explain it better; other rules speak to those
        others_slow: list[str] = []
        others_fine: list[str] = []
        for name in view.with_data():
            if name == exchange:
                continue
            o_base, o_cur = _baseline_and_current(ctx.stats_for(name), ctx.results_for(name), split)
            if o_base and o_cur:
                (others_slow if o_cur / o_base >= 3 else others_fine).append(name)
        evidence = [
            f"{exchange} p99 {_ms(current)} vs usual {_ms(baseline)} ({ratio:.0f}x), error rate {_pct(error_rate)}"
        ]
        ttfb = [r.phases.ttfb_ms for r in results[-10:] if r.phases and r.phases.ttfb_ms is not None]
        conn = [r.phases.connect_ms for r in results[-10:] if r.phases and r.phases.connect_ms is not None]
        if ttfb:
            evidence.append(f"recent time-to-first-byte up to {_ms(max(ttfb))} (server-side wait)")
        if conn:
            evidence.append(f"recent connect times up to {_ms(max(conn))}")
        if others_slow and len(others_slow) >= len(others_fine):
            evidence.append("other exchanges are slow too: " + ", ".join(others_slow))
            return Finding(
                "local_latency",
                0.7,
                "Every exchange answers slowly at once without errors, so this host's network or CPU is "
                "congested, not one exchange.",
                Sev.MEDIUM,
                "Check the host's load and uplink (other transfers, CPU steal on a VPS, VPN); latency-sensitive "
                "bots on this host are affected too.",
                "When the local congestion ends.",
                evidence,
            )
        if others_fine:
            evidence.append("other exchanges answer at their usual speed: " + ", ".join(others_fine))
        return Finding(
            "exchange_degraded",
            0.85 if others_fine else 0.7,
            f"{exchange} is degraded on its side: p99 latency is {ratio:.0f}x its usual {_ms(baseline)} with no "
            "errors, while other exchanges are normal.",
            Sev.MEDIUM,
            f"Expect slow fills and cancels on {exchange}: widen timeouts of latency-sensitive bots, avoid "
            "strategies that depend on fast cancels, and watch its status page.",
            "Exchange-side slowdowns usually clear within minutes to an hour.",
            evidence,
        )
    return None


def rule_server_errors(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        fives = [
            r
            for r in results
            if r.outcome is Outcome.HTTP_5XX or (r.http_status is not None and r.http_status >= 500)
            if _category(ctx, r) not in ("maintenance", "rate_limited")
        ]
        if not fives:
            continue
        bad_probes = Counter(r.probe for r in fives)
        ok_probes = {r.probe for r in results if r.ok} - set(bad_probes)
        statuses = sorted({r.http_status for r in fives if r.http_status})
        status_text = "/".join(str(s) for s in statuses) or "5xx"
        evidence = [_with_meaning(ctx, r) for r in fives[-2:]]
        unknown_note = (
            " Binance 5xx means the execution status is unknown: check orders before retrying."
            if (ctx.kind_of(exchange) or "").startswith("binance")
            else ""
        )
        if len(bad_probes) == 1 and ok_probes:
            probe = next(iter(bad_probes))
            evidence.append(f"other {exchange} endpoints answer normally: {', '.join(sorted(ok_probes))}")
            return Finding(
                "endpoint_5xx",
                0.85,
                f"Only {exchange}'s {probe} endpoint fails with HTTP {status_text} while its other endpoints answer, "
                "so that endpoint's backend is failing on the exchange side.",
                Sev.MEDIUM,
                f"Nothing to fix locally; bots that use the {probe} endpoint should fall back to another endpoint or "
                f"a WebSocket stream until it recovers.{unknown_note}",
                "Single-endpoint failures are usually fixed by the exchange within minutes.",
                evidence,
            )
        others_fine = [n for n in view.with_data() if n != exchange and view.healthy(n)]
        if others_fine:
            evidence.append("other exchanges are healthy: " + ", ".join(others_fine))
        return Finding(
            "exchange_5xx",
            0.8,
            f"{exchange} returns HTTP {status_text} on {len(bad_probes)} endpoint(s): a server-side outage at the "
            "exchange.",
            Sev.HIGH,
            f"Nothing to fix locally: pause or de-risk strategies on {exchange} and watch its status page."
            + unknown_note,
            "Unknown; exchange-side outages usually last minutes, occasionally hours.",
            evidence,
        )
    return None


def rule_exchange_network(ctx: AnalysisContext, view: _View) -> Finding | None:
    """Timeouts / connect / TLS / DNS / resets on one exchange while the others answer."""
    for exchange in _targets(ctx, view):
        if not view.network_down(exchange):
            continue
        attempts = view.last(exchange, 2 * LAST_N)
        failures = [r for r in attempts if r.outcome in _NETWORK]
        others = [n for n in view.with_data() if n != exchange]
        others_fine = [n for n in others if view.healthy(n)]
        kinds = Counter(r.outcome for r in failures)
        dominant = kinds.most_common(1)[0][0]
        evidence = [
            f"{len(failures)} of {len(attempts)} recent probes to {exchange} failed: "
            + ", ".join(f"{o.value} x{c}" for o, c in kinds.most_common())
        ]
        evidence.append(describe(failures[-1]))
        if others_fine:
            evidence.append("other exchanges answer normally: " + ", ".join(others_fine))
        start = view.first_failure(exchange)
        if start is not None:
            evidence.append(f"failing since {when(start)}")
        kind = ctx.kind_of(exchange) or ""
        alt = codes.ALTERNATE_HOSTS.get(kind, "another host or region")
        confidence = 0.8 if others_fine else 0.55
        if dominant is Outcome.DNS:
            cause = (
                f"{exchange}'s host name does not resolve while other exchanges do: its DNS record changed, or a "
                "resolver/ISP filter blocks it."
            )
            action = f"Compare `dig` against 1.1.1.1 and your resolver, flush the DNS cache, try {alt}."
        elif dominant is Outcome.TLS:
            cause = (
                f"The TLS handshake with {exchange} fails while other exchanges work: a proxy or antivirus intercepts "
                "TLS, the certificate changed, or the host clock is wrong."
            )
            action = (
                "Run `openssl s_client -connect <host>:443` from this host and check the certificate chain and clock."
            )
        elif dominant is Outcome.TIMEOUT:
            cause = (
                f"Only {exchange} times out while other exchanges answer, so its edge or the route to it is failing, "
                "not your connection."
            )
            action = f"Check the route (`mtr` to its API host), try {alt}, and compare from another network or VPS."
        else:
            cause = (
                f"Connections to {exchange} fail ({dominant.value}) while other exchanges answer, so its edge or the "
                "route to it is failing, not your connection."
            )
            action = f"Check the route (`mtr` to its API host), try {alt}, and compare from another network or VPS."
        if not others_fine:
            cause = cause.split(" while ")[0] + "."
        return Finding(
            "exchange_unreachable",
            confidence,
            cause,
            Sev.HIGH,
            action,
            "Unknown; route and edge problems usually clear within minutes, or when the exchange fixes them.",
            evidence,
        )
    return None


def rule_intermittent_network(ctx: AnalysisContext, view: _View) -> Finding | None:
    """Some requests to one exchange fail on the network path while most succeed."""
    for exchange in _targets(ctx, view):
        attempts = view.attempts(exchange)
        failures = [r for r in attempts if r.outcome in _NETWORK]
        if len(failures) < 2 or view.network_down(exchange):
            continue
        kinds = Counter(r.outcome.value for r in failures)
        probes = Counter(r.probe for r in failures)
        ok_probes = {r.probe for r in attempts if r.ok}
        share = len(failures) / len(attempts)
        evidence = [
            f"{len(failures)} of {len(attempts)} recent probes to {exchange} failed ({share:.0%}): "
            + ", ".join(f"{k} x{n}" for k, n in kinds.most_common()),
            describe(failures[-1]),
        ]
        others_fine = [n for n in view.with_data() if n != exchange and view.healthy(n)]
        if others_fine:
            evidence.append("other exchanges answer normally: " + ", ".join(others_fine))
        only_probe = next(iter(probes)) if len(probes) == 1 and ok_probes - set(probes) else None
        where = f"{exchange}'s {only_probe} endpoint" if only_probe else exchange
        return Finding(
            "intermittent_network",
            0.55 if others_fine else 0.45,
            f"Requests to {where} fail intermittently ({', '.join(kinds)}) while most succeed: an unstable route "
            f"or {'that endpoint' if only_probe else 'the exchange'}'s edge, not a full outage.",
            Sev.MEDIUM,
            "Retry with backoff; if it persists compare from another network (`mtr` to the API host) and "
            f"consider {codes.ALTERNATE_HOSTS.get(ctx.kind_of(exchange) or '', 'another host or region')}.",
            "Intermittent failures usually clear on their own within minutes.",
            evidence,
        )
    return None


def rule_bad_payload(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        bad = [r for r in results if r.outcome is Outcome.BAD_PAYLOAD]
        waf = [
            r
            for r in results
            if r.outcome is not Outcome.AUTH
            and (
                (r.http_status == 403 and (ctx.kind_of(exchange) or "").startswith("binance"))
                or (r.outcome is Outcome.HTTP_4XX and _HTML.search(r.error_message or ""))
            )
        ]
        if not bad and not waf:
            rejected = [r for r in results if r.outcome is Outcome.HTTP_4XX]
            if rejected:
                last = rejected[-1]
                status = last.http_status or "4xx"
                hint = {
                    404: "the path does not exist (wrong base_url or a retired endpoint)",
                    403: "access is forbidden (WAF rule, IP block or region restriction)",
                    451: "the region is blocked",
                }.get(last.http_status or 0, "the request is rejected")
                return Finding(
                    "http_4xx",
                    0.5,
                    f"{exchange} answers HTTP {status} on {last.probe}: {hint}.",
                    Sev.MEDIUM,
                    "Check the endpoint and base_url in the config against the exchange's docs, and whether this "
                    "IP's region is allowed.",
                    "Not until the request or the access rule changes.",
                    [describe(r) for r in rejected[-2:]],
                )
            continue
        pages = [r for r in bad + waf if _HTML.search(r.error_message or "")]
        evidence = [describe(r) for r in (bad + waf)[-2:]]
        if pages or waf:
            return Finding(
                "proxy_page",
                0.8,
                f"{exchange} requests get a web page instead of the API's JSON: a proxy, captive portal or the "
                "exchange's WAF/CDN answers in its place.",
                Sev.HIGH,
                "Fetch the URL from this host with `curl -v` and read the page; check HTTP(S)_PROXY and captive "
                "portals; a Binance 403 WAF block lifts once the triggering request pattern stops.",
                "When the proxy or WAF block goes away.",
                evidence,
            )
        return Finding(
            "api_changed",
            0.7,
            f"{exchange} answers with JSON that no longer has the expected shape: the API probably changed.",
            Sev.MEDIUM,
            f"Compare a response with {exchange}'s API changelog; update cryptomon and any bot that parses "
            "this endpoint.",
            "Not until the client is updated to the new response format.",
            evidence,
        )
    return None


def rule_exchange_error(ctx: AnalysisContext, view: _View) -> Finding | None:
    """Documented exchange codes not covered by a sharper rule (overload, internal, region, request errors)."""
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        coded = [(r, _code_info(ctx, r)) for r in results if not r.ok and r.error_code is not None]
        known = [(r, info) for r, info in coded if info is not None]
        if not coded:
            envelope = [r for r in results if r.outcome is Outcome.EXCHANGE_ERROR]
            if envelope and view.attempts(exchange):
                share = len(envelope) / len(view.attempts(exchange))
                last = envelope[-1]
                return Finding(
                    "exchange_error",
                    0.45,
                    f"{exchange} answers {share:.0%} of requests with an error inside its normal response "
                    f"({_short(last.error_message, 80) or 'no message'}): a problem on the exchange side.",
                    Sev.MEDIUM,
                    "Nothing to fix locally; retry with backoff and check the exchange's status page.",
                    "Usually within minutes.",
                    [describe(r) for r in envelope[-2:]],
                )
            continue
        if known:
            r, info = known[-1]
            text = {
                "overload": (
                    f"{exchange} reports overload ({r.error_code}: {info.meaning}); the exchange is shedding load.",
                    "Back off and retry later; avoid bursts from bots on this IP.",
                    "Usually within minutes.",
                ),
                "internal": (
                    f"{exchange} reports an internal error ({r.error_code}: {info.meaning}).",
                    "Nothing to fix locally; check order status before retrying anything that trades.",
                    "Usually within minutes.",
                ),
                "region": (
                    f"{exchange} refuses this IP's region ({r.error_code}: {info.meaning}).",
                    "Use an allowed region/host for this account; this will not clear by itself.",
                    "Not until the request comes from an allowed region.",
                ),
                "request": (
                    f"{exchange} rejects the request itself ({r.error_code}: {info.meaning}); a configuration "
                    "problem, not an outage.",
                    "Fix the symbol/instrument or endpoint in the config.",
                    "Not until the config is fixed.",
                ),
            }.get(info.category)
            if text is None:
                continue
            return Finding(
                f"exchange_{info.category}",
                0.7,
                text[0],
                Sev.HIGH if info.category in ("internal", "region") else Sev.MEDIUM,
                text[1],
                text[2],
                [_with_meaning(ctx, x) for x, _ in known[-2:]],
            )
        r = coded[-1][0]
        return Finding(
            "exchange_error",
            0.4,
            f"{exchange} answers with error code {r.error_code} ({_short(r.error_message, 80) or 'no message'}), "
            "which is not in the documented tables.",
            Sev.MEDIUM,
            f"Look the code up in {exchange}'s API error documentation.",
            "Unknown.",
            [describe(r)],
        )
    return None


def rule_circuit_open(ctx: AnalysisContext, view: _View) -> Finding | None:
    for exchange in _targets(ctx, view):
        results = view.results(exchange)
        skipped = [r for r in results if r.outcome is Outcome.SKIPPED_OPEN_CIRCUIT or r.breaker is BreakerState.OPEN]
        if not skipped:
            continue
        failures = [r for r in view.attempts(exchange) if not r.ok]
        last = failures[-1] if failures else None
        tail = f"; the last failure was {last.outcome.value}" if last else ""
        return Finding(
            "circuit_open",
            0.5,
            f"The monitor stopped probing {exchange} after repeated failures (circuit open){tail}.",
            Sev.HIGH,
            "Look at the failure that opened the circuit (below); probing resumes with a single trial request "
            "after the cool-down.",
            "The circuit closes on the first successful trial probe.",
            [f"{len(skipped)} probes skipped while the circuit was open"] + ([describe(last)] if last else []),
        )
    return None


RULES: tuple[Callable[[AnalysisContext, _View], Finding | None], ...] = (
    rule_local_network,
    rule_ip_banned,
    rule_maintenance,
    rule_clock_skew,
    rule_auth,
    rule_rate_limited,
    rule_server_errors,
    rule_latency,
    rule_bad_payload,
    rule_exchange_network,
    rule_intermittent_network,
    rule_exchange_error,
    rule_circuit_open,
)


def _fallback(ctx: AnalysisContext, view: _View) -> Finding:
    inc = ctx.incident
    failures = [r for r in view.results(inc.exchange) if not r.ok]
    evidence = [describe(r) for r in failures[-3:]]
    if inc.last_error:
        evidence.append(f"last error: {_short(inc.last_error)}")
    if inc.counts:
        evidence.append("counts: " + ", ".join(f"{k} x{v}" for k, v in sorted(inc.counts.items())))
    where = inc.exchange or "several targets"
    return Finding(
        "unclassified",
        0.3,
        f"{inc.rule} fired on {where} ({_short(inc.summary, 120)}), but the recent probes do not point to one cause.",
        AnalysisSeverity.from_incident(inc.severity),
        "Watch the next probes and the exchange's status page; if it persists, compare from another host.",
        "Unknown.",
        evidence,
    )


def _timing_evidence(ctx: AnalysisContext) -> list[str]:
    inc = ctx.incident
    lines = [
        f"incident {inc.rule} on {inc.exchange or 'all'} open since {when(inc.started_at)} "
        f"({_dur(ctx.now - inc.started_at)})"
    ]
    near = [o for o in ctx.other_incidents if abs(o.started_at - inc.started_at) <= 120]
    if near:
        lines.append("opened within 2 min of: " + ", ".join(f"{o.rule} on {o.exchange or 'all'}" for o in near[:4]))
    return lines


class OfflineAnalyzer:
    """Rule-based analyzer; the default and the fallback for every LLM failure."""

    name = "offline"

    def findings(self, ctx: AnalysisContext) -> list[Finding]:
        view = _View(ctx)
        found = [f for f in (rule(ctx, view) for rule in RULES) if f is not None]
        found.sort(key=lambda f: f.confidence, reverse=True)
        return found or [_fallback(ctx, view)]

    def analyze_sync(self, ctx: AnalysisContext) -> Analysis:
        found = self.findings(ctx)
        best = found[0]
        evidence = list(best.evidence)
        circuit = next((f for f in found if f.category == "circuit_open"), None)
        if circuit is not None and best is not circuit:
            evidence.append(circuit.root_cause)
        runner_up = next((f for f in found[1:] if f.category != "circuit_open"), None)
        if runner_up is not None:
            evidence.append(f"also considered ({runner_up.confidence:.0%}): {runner_up.root_cause}")
        evidence.extend(_timing_evidence(ctx))
        return Analysis(
            incident_id=ctx.incident.id,
            category=best.category,
            root_cause=best.root_cause,
            severity=best.severity,
            recommended_action=best.action,
            estimated_recovery=best.recovery,
            confidence=round(best.confidence, 2),
            evidence=evidence,
            source="offline",
            created_at=ctx.now,
        )

    async def analyze(self, ctx: AnalysisContext) -> Analysis:
        return self.analyze_sync(ctx)
