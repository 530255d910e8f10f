"""Issue 12 items 5 and 8: the verdict (root cause, severity, action) in every firing, read from the real
Analysis model; titles without doubled names or status words; "Failing for" stops at recovery."""

from __future__ import annotations

import pytest

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.model import Analysis
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.config import Config
from cryptomon_tui.notify.channels.discord import discord_payload
from cryptomon_tui.notify.channels.email import email_message
from cryptomon_tui.notify.channels.slack import slack_payload
from cryptomon_tui.notify.channels.telegram import telegram_text
from cryptomon_tui.notify.channels.webhook import webhook_body
from cryptomon_tui.notify.channels.wecom import wecom_payload
from cryptomon_tui.notify.format import build_view, plain_text
from cryptomon_tui.notify.model import Notice, NoticeKind, analysis_text, incident_payload
from tests.fakes import analysis_scenarios as sc

SCENARIOS = [sc.binance_ip_ban, sc.local_dns_outage, sc.okx_maintenance, sc.bybit_slow, sc.okx_endpoint_5xx]


def offline_verdict(s: sc.Scenario) -> Analysis:
    ctx = build_context(s.incident, s.stats, s.results, s.others, Config(), now=s.now)
    return OfflineAnalyzer().analyze_sync(ctx)


@pytest.mark.parametrize("make", SCENARIOS, ids=lambda f: f.__name__)
def test_offline_verdict_gives_cause_severity_and_action(make: object) -> None:
    s = make()  # type: ignore[operator]
    verdict = offline_verdict(s)
    text = analysis_text(verdict.model_dump(mode="json"))
    assert text is not None
    lines = text.split("\n")
    assert lines[0] == f"Root cause: {' '.join(verdict.root_cause.split())}"[:700]
    assert lines[1].startswith(f"Severity: {verdict.severity.value} (") and "offline" in lines[1]
    assert f"Action: {' '.join(verdict.recommended_action.split())}" in text


def test_llm_verdict_from_the_model_as_stored() -> None:
    verdict = Analysis.model_validate(
        {
            "root_cause": "Binance banned this IP after the weight limit.",
            "severity": "CRITICAL",
            "recommended_action": "Stop the bots on this IP.",
            "estimated_recovery": "in 10 minutes",
            "confidence": 0.9,
            "evidence": ["418"],
            "source": "deepseek-chat",
            "created_at": 1.0,
        }
    )
    text = analysis_text(verdict.model_dump(mode="json"))
    assert text == (
        "Root cause: Binance banned this IP after the weight limit.\n"
        "Severity: CRITICAL (confidence 90%, deepseek-chat)\n"
        "Action: Stop the bots on this IP.\n"
        "Recovery: in 10 minutes"
    )
    assert analysis_text(None) is None and analysis_text({}) is None
    assert analysis_text({"summary": "bare words"}) == "bare words"


def firing(analysis: str | None = None, **changes: object) -> Notice:
    s = sc.binance_ip_ban()
    inc = s.incident.with_changes(summary="binance: 12 failures in a row (last: ip_banned 418)", **changes)
    return Notice(kind=NoticeKind.FIRING, ts=s.now, incident=incident_payload(inc), analysis=analysis)


def test_every_channel_body_carries_the_action_line() -> None:
    s = sc.binance_ip_ban()
    verdict = offline_verdict(s)
    notice = firing(analysis_text(verdict.model_dump(mode="json")))
    action = verdict.recommended_action.split()[0]
    cfg = Config.model_validate(
        {"notify": {"channels": {"m": {"type": "email", "host": "127.0.0.1", "sender": "a@b.c", "to": "d@e.f"}}}}
    ).notify.channels["m"]
    bodies = {
        "plain": plain_text(build_view(notice)),
        "discord": str(discord_payload(notice, "cryptomon", None)),
        "slack": str(slack_payload(notice)),
        "telegram": telegram_text(notice),
        "wecom": str(wecom_payload(notice, [])),
        "webhook": str(webhook_body(notice, "k")),
        "email": email_message(notice, cfg, "k", s.now).as_string(),  # type: ignore[arg-type]
    }
    for name, body in bodies.items():
        assert "Root cause" in body and "Action" in body and action in body, name


def test_no_doubled_place_or_status_word() -> None:
    notice = firing()
    view = build_view(notice)
    assert "binance: binance:" not in view.title and view.title.count("binance") == 1
    discord = discord_payload(notice, "cryptomon", None)["content"]
    wecom = wecom_payload(notice, [])["markdown"]["content"]
    for body in (discord, wecom):
        assert "FIRING FIRING" not in body and "FIRING" in body


def test_failing_for_stops_at_recovery() -> None:
    """A firing sent late (its channel was down) says how long the failure lasted, not how long ago it began."""
    s = sc.binance_ip_ban()
    started = s.incident.started_at
    notice = firing(resolved_at=started + 60.0)
    late = Notice(kind=NoticeKind.FIRING, ts=started + 3600.0, incident=notice.incident)
    fields = dict(build_view(late).fields)
    assert fields["Failing for"] == "1m"


def test_digest_counts_incidents_lists_ids_and_puts_firing_first() -> None:
    """Issue 12 item 8: six messages about three incidents are three incidents, by id, firing first."""
    a, b, c = sc.binance_ip_ban().incident, sc.okx_maintenance().incident, sc.bybit_slow().incident
    b = b.with_changes(id="inc-okx")
    t = sc.T0

    def n(kind: NoticeKind, inc: object, ts: float) -> Notice:
        return Notice(kind=kind, ts=ts, incident=incident_payload(inc))  # type: ignore[arg-type]

    items = (
        n(NoticeKind.FIRING, a, t), n(NoticeKind.RESOLVED, a, t + 10),  # a fired and recovered
        n(NoticeKind.RESOLVED, c, t + 1),  # c only recovered here
        n(NoticeKind.FIRING, b, t + 2), n(NoticeKind.REMINDER, b, t + 20), n(NoticeKind.FIRING, c, t - 5),
    )
    view = build_view(Notice(kind=NoticeKind.DIGEST, ts=t + 30, items=items))
    assert view.title.startswith("3 incidents on ")
    assert view.summary == "1 firing, 2 resolved"
    assert view.lines[0].startswith("[STILL FIRING]") and "(inc-okx)" in view.lines[0]
    assert all("RESOLVED" in line for line in view.lines[1:])
    assert f"({a.id})" in "".join(view.lines) and f"({c.id})" in "".join(view.lines)
    assert "FIRED, RESOLVED" in "".join(view.lines)
