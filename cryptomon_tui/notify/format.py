"""Channel-neutral message content plus the escaping and size rules of each service's markup.

Everything that came from outside (exchange error messages, summaries built from them, labels) is
untrusted: each channel escapes it for its own markup before it goes out, and trims to the service's limits.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptomon_tui.kernel.jsonvalue import finite
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import format_duration
from cryptomon_tui.notify.model import Notice, NoticeKind

SEVERITY_EMOJI = {Severity.CRITICAL: "🔴", Severity.ERROR: "🟠", Severity.WARNING: "🟡", Severity.INFO: "🔵"}
KIND_EMOJI = {NoticeKind.RESOLVED: "✅", NoticeKind.ACKNOWLEDGED: "👀", NoticeKind.TEST: "🧪"}
SEVERITY_COLOR = {  # Discord embed colours (decimal RGB)
    Severity.CRITICAL: 0xD32F2F,
    Severity.ERROR: 0xF57C00,
    Severity.WARNING: 0xFBC02D,
    Severity.INFO: 0x1976D2,
}
RESOLVED_COLOR = 0x388E3C
ACK_COLOR = 0x7B1FA2
DIGEST_SHOWN = 25  # members listed by name in a digest; the rest are counted


@dataclass(slots=True)
class View:
    """What a message says, before any markup. All strings are raw (unescaped)."""

    status: str  # FIRING / RESOLVED / ...
    emoji: str
    title: str
    summary: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # digest members
    footer: str = ""
    severity: Severity = Severity.WARNING
    kind: NoticeKind = NoticeKind.FIRING


def clip(text: str, limit: int, marker: str = "…") -> str:
    """Trim to ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def clip_bytes(text: str, limit: int, marker: str = "…") -> str:
    """Trim to ``limit`` UTF-8 bytes without splitting a character (WeCom counts bytes)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    return data[: max(0, room)].decode("utf-8", errors="ignore") + marker


def ts_text(ts: float | None) -> str:
    """A time as messages write it; "-" when unknown or beyond what a calendar can show (a stored value)."""
    if ts is None:
        return "-"
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, ValueError, OSError):
        return "-"


def _time(inc: Mapping[str, object], key: str) -> float | None:
    """An epoch time the incident carries as a JSON number (stored JSON: bools, strings, NaN are absent)."""
    value = inc.get(key)
    return None if isinstance(value, str) else finite(value)


def _place(inc: Mapping[str, object]) -> str:
    exchange = inc.get("exchange") or ""
    probe = inc.get("probe") or ""
    return " ".join(str(p) for p in (exchange, probe) if p) or "cryptomon"


def _without_place(summary: str, inc: Mapping[str, object]) -> str:
    """The summary without a leading "binance:" (or "binance ticker:", "binance/ticker:") that the title
    already says: detection writes summaries that stand alone, a message puts the place in front."""
    exchange = str(inc.get("exchange") or "")
    probe = str(inc.get("probe") or "")
    if not exchange:
        return summary
    lowered = summary.lower()
    for prefix in (f"{exchange} {probe}", f"{exchange}/{probe}", exchange) if probe else (exchange,):
        if lowered.startswith(prefix.lower() + ":"):
            rest = summary[len(prefix) + 1 :].strip()
            return rest or summary
    return summary


def title_without_status(view: View) -> str:
    """The title for channels that print the status word in front of it themselves (no "FIRING FIRING")."""
    prefix = f"{view.status} "
    return view.title[len(prefix) :] if view.title.startswith(prefix) else view.title


def _status_word(kind: NoticeKind) -> str:
    return {
        NoticeKind.FIRING: "FIRING",
        NoticeKind.REOPENED: "REOPENED",
        NoticeKind.REMINDER: "STILL FIRING",
        NoticeKind.ACKNOWLEDGED: "ACKNOWLEDGED",
        NoticeKind.RESOLVED: "RESOLVED",
        NoticeKind.DIGEST: "DIGEST",
        NoticeKind.TEST: "TEST",
        NoticeKind.ANALYSIS: "ANALYSIS",
    }[kind]


def build_view(notice: Notice) -> View:
    if notice.kind is NoticeKind.DIGEST:
        return _digest_view(notice)
    inc = notice.incident
    sev = notice.severity
    emoji = KIND_EMOJI.get(notice.kind, SEVERITY_EMOJI.get(sev, "⚪"))
    status = _status_word(notice.kind)
    if notice.kind is NoticeKind.TEST:
        text = notice.text or "cryptomon test message: this channel works."
        return View(
            status, emoji, "cryptomon test message", text, footer=f"sent {ts_text(notice.ts)}", kind=notice.kind
        )
    summary = _without_place(str(inc.get("summary") or inc.get("rule") or "incident"), inc)
    title = f"{status} {sev.value.upper()} · {_place(inc)}: {summary}"
    fields: list[tuple[str, str]] = []
    started_f = _time(inc, "started_ts")
    ended = _time(inc, "resolved_ts")
    if notice.kind in (NoticeKind.FIRING, NoticeKind.REOPENED, NoticeKind.REMINDER) and started_f is not None:
        # a firing sent late (the channel was down) counts up to the recovery, not to the send
        until = min(notice.ts, ended) if ended is not None else notice.ts
        fields.append(("Failing for", format_duration(max(0.0, until - started_f))))
    if notice.kind is NoticeKind.RESOLVED and started_f is not None:
        end_f = ended if ended is not None else notice.ts
        fields.append(("Lasted", format_duration(max(0.0, end_f - started_f))))
    for label, key in (("Exchange", "exchange"), ("Probe", "probe"), ("Rule", "rule")):
        if inc.get(key):
            fields.append((label, str(inc[key])))
    fields.append(("Severity", sev.value))
    fields.append(("Since", ts_text(started_f)))
    if inc.get("last_error"):
        fields.append(("Last error", str(inc["last_error"])))
    counts = inc.get("counts")
    if isinstance(counts, dict) and counts:
        fields.append(("Outcomes", ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))))
    if notice.kind is NoticeKind.ACKNOWLEDGED:
        fields.append(("Acknowledged by", str(notice.actor or inc.get("acknowledged_by") or "someone")))
        if inc.get("ack_note"):
            fields.append(("Note", str(inc["ack_note"])))
    if notice.analysis:
        fields.append(("Analysis", notice.analysis))
    if notice.text:
        summary = f"{notice.text}\n{summary}"
    footer = f"incident {inc.get('id', '?')} · {notice.location} · {ts_text(notice.ts)}"
    return View(status, emoji, title, summary, fields, footer=footer, severity=sev, kind=notice.kind)


_FIRING_KINDS = (NoticeKind.FIRING, NoticeKind.REOPENED, NoticeKind.REMINDER)


def _digest_view(notice: Notice) -> View:
    """Counts incidents, not messages (one incident's firing and resolve are one incident), names each by its
    id, and lists what is still firing before what recovered."""
    items = sorted(notice.items, key=lambda i: i.ts)
    by_incident: dict[str, list[Notice]] = {}
    for n, item in enumerate(items):
        by_incident.setdefault(item.incident_id or f"#{n}", []).append(item)
    exchanges = sorted({str(i.incident.get("exchange") or "cryptomon") for i in items})
    span = items[-1].ts - items[0].ts if items else 0.0
    rows: list[tuple[int, int, float, str]] = []  # (group, -severity rank, ts, line)
    firing = resolved = others = 0
    for ident, group in by_incident.items():
        last = group[-1]
        inc = last.incident
        fired = any(i.kind in _FIRING_KINDS for i in group)
        if last.kind is NoticeKind.RESOLVED:
            resolved += 1
            word, rank = ("FIRED, RESOLVED" if fired else "RESOLVED"), 1
        elif last.kind in _FIRING_KINDS:
            firing += 1
            word, rank = _status_word(last.kind), 0
        else:
            others += 1
            word, rank = _status_word(last.kind), 2
        summary = _without_place(str(inc.get("summary") or inc.get("rule") or "incident"), inc)
        label = ident if not ident.startswith("#") else "?"
        line = f"[{word}] {last.severity.value} {_place(inc)} ({label}): {summary}"
        rows.append((rank, -last.severity.rank, last.ts, line))
    rows.sort(key=lambda r: r[:3])
    count = len(by_incident)
    where = ", ".join(exchanges[:5]) + (f" +{len(exchanges) - 5}" if len(exchanges) > 5 else "")
    noun = "incident" if count == 1 else "incidents"
    title = f"{count} {noun} on {where} in {format_duration(max(span, 1.0))}"
    parts = [f"{n} {what}" for n, what in ((firing, "firing"), (resolved, "resolved"), (others, "other updates")) if n]
    lines = [r[3] for r in rows[:DIGEST_SHOWN]]
    if len(rows) > DIGEST_SHOWN:
        lines.append(f"… and {len(rows) - DIGEST_SHOWN} more")
    sev = notice.severity
    emoji = SEVERITY_EMOJI.get(sev, "⚪") if firing else KIND_EMOJI[NoticeKind.RESOLVED]
    return View(
        "DIGEST",
        emoji,
        title,
        ", ".join(parts),
        lines=lines,
        footer=f"{notice.location} · {ts_text(notice.ts)}",
        severity=sev,
        kind=NoticeKind.DIGEST,
    )


def plain_text(view: View) -> str:
    out = [f"{view.emoji} {view.title}"]
    if view.summary and view.summary not in view.title:
        out.append(view.summary)
    out += [f"{k}: {v}" for k, v in view.fields]
    out += [f"- {line}" for line in view.lines]
    if view.footer:
        out.append(view.footer)
    return "\n".join(out)


# --- escaping per markup -------------------------------------------------------------------

_DISCORD_SPECIAL = re.compile(r"([\\*_~`|>#\[\]()<:-])")


def escape_discord(text: str) -> str:
    """Discord markdown: backslash every markup character; break @everyone/@here and mention syntax."""
    text = _DISCORD_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")


def escape_slack(text: str) -> str:
    """Slack mrkdwn: only &, < and > need escaping (they start links and mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_telegram_html(text: str) -> str:
    return html.escape(text, quote=False)


_WECOM_SWAP = str.maketrans({"<": "‹", ">": "›", "[": "［", "]": "］", "*": "∗", "`": "'", "#": "＃", "_": "＿"})


def escape_wecom(text: str) -> str:
    """WeCom markdown has no escape character: swap markup characters for look-alikes."""
    return text.translate(_WECOM_SWAP)


def escape_html(text: str) -> str:
    return html.escape(text, quote=True)
