"""The compact evidence bundle and the prompts built from it.

The bundle is trimmed step by step (timeline, failure lines, message length, per-probe detail) until
the whole prompt fits the token budget, estimated conservatively at 3.5 characters per token. Every
string in it passes through the Redactor before it is serialised.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from cryptomon_tui.analysis import codes
from cryptomon_tui.analysis.context import AnalysisContext
from cryptomon_tui.analysis.model import Analysis
from cryptomon_tui.analysis.offline import describe, when
from cryptomon_tui.incidents.model import Incident
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, get_text
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.units import format_duration, iso_utc
from cryptomon_tui.redaction import Redactor

CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD_TOKENS = 4

SCHEMA_TEXT = (
    '{"root_cause": "1-2 sentences: what broke and whether it is the user\'s side or the exchange", '
    '"severity": "LOW|MEDIUM|HIGH|CRITICAL", "recommended_action": "concrete next step", '
    '"estimated_recovery": "when it will be fixed, with the time if known", '
    '"confidence": 0.0-1.0, "evidence": ["short facts from the bundle that support the verdict"]}'
)

SYSTEM_PROMPT = (
    "You are an SRE for crypto trading bots. You get an evidence bundle about one incident from a monitor that "
    "probes exchange APIs (Binance, Bybit, OKX, Deribit). Decide the root cause: the user's own side (network, "
    "DNS, host clock, API key, request rate shared by bots on the same IP) or the exchange (maintenance, "
    "outage, degraded endpoint). Error code meanings in the bundle are from the exchanges' docs; trust them. "
    "The bundle includes the rule-based verdict; agree or correct it using the facts. Be specific and brief. "
    "Values shown as [REDACTED:...] were removed for privacy; never ask for them. "
    "Reply with only one JSON object, no prose, no code fences, with exactly these keys: " + SCHEMA_TEXT
)

SUMMARY_SCHEMA_TEXT = (
    '{"headline": "one sentence on the overall state", "details": ["one short line per incident or group"], '
    '"severity": "LOW|MEDIUM|HIGH|CRITICAL", "recommended_action": "the single most useful next step"}'
)

SUMMARY_SYSTEM_PROMPT = (
    "You are an SRE for crypto trading bots. Summarise all open incidents of an exchange-API monitor for a "
    "person glancing at a dashboard: group related incidents (e.g. every exchange failing at once = the "
    "user's own network), say what matters most. Values shown as [REDACTED:...] were removed for privacy. "
    "Reply with only one JSON object, no prose, with exactly these keys: " + SUMMARY_SCHEMA_TEXT
)


def estimate_tokens(text: str) -> int:
    """Conservative token estimate: chars/3.5, and every non-ASCII char counted as a token on top."""
    extra = sum(1 for ch in text if ord(ch) > 127)
    return math.ceil(len(text) / CHARS_PER_TOKEN) + extra


def estimate_messages(messages: list[dict[str, str]]) -> int:
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages) + 3


@dataclass(frozen=True, slots=True)
class TrimLevel:
    timeline: int
    failures: int
    message_chars: int
    per_probe: bool
    others_detail: bool
    offline_evidence: int
    other_incidents: int


TRIM_LEVELS = (
    TrimLevel(16, 8, 220, True, True, 6, 8),
    TrimLevel(10, 6, 160, True, True, 4, 6),
    TrimLevel(8, 4, 120, False, True, 3, 5),
    TrimLevel(5, 3, 90, False, False, 2, 4),
    TrimLevel(3, 2, 70, False, False, 1, 3),
    TrimLevel(2, 1, 50, False, False, 0, 2),
)


def _clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _incident_brief(inc: Incident, now: float, level: TrimLevel) -> JsonObject:
    out: JsonObject = {
        "rule": inc.rule,
        "severity": inc.severity.value,
        "exchange": inc.exchange or "all",
        "probe": inc.probe,
        "state": inc.state.value,
        "summary": _clip(inc.summary, level.message_chars),
        "started": iso_utc(inc.started_at),
        "open_for": format_duration(max(0.0, round(now - inc.started_at))),
    }
    if inc.last_error:
        out["last_error"] = _clip(inc.last_error, level.message_chars)
    if inc.counts:
        out["counts"] = dict(inc.counts)
    if inc.peak:
        out["peak"] = {k: round(v, 3) for k, v in inc.peak.items()}
    if inc.evidence:
        out["symptoms"] = list[JsonValue](inc.evidence[:6])
    if inc.ban_until:
        out["ban_until"] = iso_utc(inc.ban_until)
    for flag in ("in_maintenance", "flapping"):
        if getattr(inc, flag):
            out[flag] = True
    if inc.reopen_count:
        out["reopen_count"] = inc.reopen_count
    return {k: v for k, v in out.items() if v not in (None, "", [], {})}


def _timeline(inc: Incident, level: TrimLevel) -> list[str]:
    entries = list(inc.timeline)
    if len(entries) > level.timeline:
        head = max(1, level.timeline // 3)
        tail = level.timeline - head
        skipped = len(entries) - head - tail
        picked = [*entries[:head], None, *entries[-tail:]] if tail > 0 else [*entries[:head], None]
    else:
        picked, skipped = list(entries), 0
    lines = []
    for entry in picked:
        if entry is None:
            lines.append(f"... {skipped} entries omitted ...")
        else:
            lines.append(f"{iso_utc(entry.ts)[11:19]}Z {entry.kind}: {_clip(entry.text, level.message_chars)}")
    return lines


def _grouped_failures(failures: list[ProbeResult]) -> list[str]:
    """Identical failures collapsed into one line with a count and a time span, oldest first."""
    groups: dict[tuple[object, ...], list[ProbeResult]] = {}
    for r in failures:
        key = (r.exchange, r.probe, r.outcome, r.http_status, r.error_code, r.error_message)
        groups.setdefault(key, []).append(r)
    lines = []
    for rs in sorted(groups.values(), key=lambda rs: rs[-1].started_at):
        line = describe(rs[-1])
        if len(rs) > 1:
            span = f" x{len(rs)} from {when(rs[0].started_at)} to {when(rs[-1].started_at)}"
            line = line.rsplit(" at ", 1)[0] + span
        lines.append(line)
    return lines


def build_bundle(ctx: AnalysisContext, offline: Analysis | None, level: TrimLevel) -> JsonObject:
    inc = ctx.incident
    bundle: JsonObject = {"now": iso_utc(ctx.now), "incident": _incident_brief(inc, ctx.now, level)}
    timeline = _timeline(inc, level)
    if timeline:
        bundle["timeline"] = list[JsonValue](timeline)
    target = inc.exchange
    stats: JsonObject = {}
    for name in ctx.watched():
        s = ctx.stats_for(name)
        brief = s.to_brief()
        if "last_error_message" in brief:
            brief["last_error_message"] = _clip(get_text(brief, "last_error_message"), level.message_chars)
        if s.ban_until:
            brief["ban_until"] = iso_utc(s.ban_until)
        if s.maintenance_until:
            brief["maintenance_until"] = iso_utc(s.maintenance_until)
        if len(s.clock_offset_history) >= 2:
            hist = s.clock_offset_history
            brief["clock_offset_trend_ms"] = [round(hist[0][1]), round(hist[len(hist) // 2][1]), round(hist[-1][1])]
        facts = ctx.exchanges.get(name)
        if facts and facts.kind:
            brief["kind"] = facts.kind
        if name == target or target is None:
            if level.per_probe and len(s.probes) > 1:
                brief["probes"] = {
                    probe: {k: v for k, v in ps.to_brief().items() if k != "last_error_message"}
                    for probe, ps in list(s.probes.items())[:6]
                }
            stats[name] = brief
        elif level.others_detail:
            stats[name] = {
                k: v
                for k, v in brief.items()
                if k
                in (
                    "kind",
                    "error_rate",
                    "p99_ms",
                    "baseline_p99_ms",
                    "failures_by_outcome",
                    "clock_offset_ms",
                    "rate_limit_peak",
                    "last_error_code",
                )
            }
        else:
            failing = brief.get("failures_by_outcome")
            stats[name] = {"failures": failing} if failing else {"state": "ok" if s.attempts else "no data"}
    if stats:
        bundle["exchanges"] = stats
    failures = [r for r in ctx.recent if not r.ok and (target is None or r.exchange == target)]
    if target is not None:
        failures += [r for r in ctx.recent if not r.ok and r.exchange != target][-max(1, level.failures // 3) :]
        failures.sort(key=lambda r: r.started_at)
    lines = [_clip(line, level.message_chars + 80) for line in _grouped_failures(failures)[-level.failures :]]
    if lines:
        bundle["recent_failures"] = list[JsonValue](lines)
    seen_codes: dict[str, str] = {}
    for r in ctx.recent:
        if r.error_code is None:
            continue
        info = codes.lookup(ctx.kind_of(r.exchange), r.error_code)
        if info is not None:
            seen_codes.setdefault(f"{r.exchange} {r.error_code}", info.meaning)
    if seen_codes:
        bundle["error_code_meanings"] = dict(list(seen_codes.items())[:8])
    limits = {}
    for name in {r.exchange for r in ctx.recent if r.rate_limit_used is not None} | ({target} if target else set()):
        kind = ctx.kind_of(name)
        if kind is not None and kind in codes.WEIGHT_LIMITS:
            limits[name] = codes.WEIGHT_LIMITS[kind]
    if limits:
        bundle["documented_limits"] = dict[str, JsonValue](limits)
    config: JsonObject = {}
    for name, facts in ctx.exchanges.items():
        if facts.interval_s is not None:
            config[name] = f"every {format_duration(facts.interval_s)}, timeout {format_duration(facts.timeout_s or 0)}"
    if config and level.others_detail:
        bundle["probe_intervals"] = config
    if ctx.budget_share is not None:
        bundle["monitor_budget_share"] = ctx.budget_share
    others = sorted(ctx.other_incidents, key=lambda i: i.started_at)[: level.other_incidents]
    if others:
        bundle["other_open_incidents"] = [
            f"{o.rule} on {o.exchange or 'all'} ({o.severity.value}) since {when(o.started_at)}" for o in others
        ]
    if offline is not None:
        verdict: JsonObject = {
            "category": offline.category,
            "root_cause": offline.root_cause,
            "severity": offline.severity.value,
            "confidence": offline.confidence,
        }
        if level.offline_evidence:
            verdict["evidence"] = [_clip(e, level.message_chars) for e in offline.evidence[: level.offline_evidence]]
        bundle["rule_based_verdict"] = verdict
    return bundle


def analysis_messages(
    ctx: AnalysisContext, offline: Analysis | None, redactor: Redactor, max_tokens: int
) -> list[dict[str, str]]:
    """System + user messages for one incident, redacted, within ``max_tokens`` (estimated)."""
    messages: list[dict[str, str]] = []
    for level in TRIM_LEVELS:
        bundle = redactor.redact_obj_for_llm(build_bundle(ctx, offline, level))
        text = redactor.redact_for_llm(json.dumps(bundle, ensure_ascii=False, separators=(",", ":")))
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Evidence bundle:\n" + text},
        ]
        if estimate_messages(messages) <= max_tokens:
            return messages
    # Still too big (absurdly long fields): hard-cut the bundle text.
    budget_chars = int((max_tokens - estimate_tokens(SYSTEM_PROMPT) - 40) * CHARS_PER_TOKEN / 1.3)
    text = messages[-1]["content"][: max(200, budget_chars)]
    while estimate_messages([messages[0], {"role": "user", "content": text}]) > max_tokens and len(text) > 200:
        text = text[: int(len(text) * 0.9)]
    return [messages[0], {"role": "user", "content": text}]


def repair_messages(raw: str, problem: str, redactor: Redactor, schema: str = SCHEMA_TEXT) -> list[dict[str, str]]:
    """Ask once more for only valid JSON, showing the previous reply (clipped)."""
    return [
        {"role": "system", "content": "You fix JSON. Reply with only one valid JSON object and nothing else."},
        {
            "role": "user",
            "content": redactor.redact_for_llm(
                "This reply should have been one JSON object with exactly these keys: "
                + schema
                + f"\nProblem: {_clip(problem, 300)}\nReply to fix:\n<<<\n{raw[:3000]}\n>>>\n"
                "Return only the corrected JSON object."
            ),
        },
    ]


def summary_messages(bundle: JsonObject, redactor: Redactor, max_tokens: int) -> list[dict[str, str]]:
    clean = redactor.redact_obj_for_llm(bundle)
    text = redactor.redact_for_llm(json.dumps(clean, ensure_ascii=False, separators=(",", ":")))
    messages = [
        {"role": "system", "content": SUMMARY_SYSTEM_PROMPT},
        {"role": "user", "content": "Open incidents:\n" + text},
    ]
    while estimate_messages(messages) > max_tokens and len(messages[1]["content"]) > 300:
        messages[1]["content"] = messages[1]["content"][: int(len(messages[1]["content"]) * 0.85)]
    return messages
