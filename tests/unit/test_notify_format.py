"""Pure pieces of notify: config parsing, quiet hours, escaping, size limits, notice round-trips, buckets."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import ConfigError, config_from_data
from cryptomon_tui.config.notify import QuietHours
from cryptomon_tui.notify.channels.discord import discord_payload
from cryptomon_tui.notify.channels.slack import slack_payload
from cryptomon_tui.notify.channels.telegram import telegram_text
from cryptomon_tui.notify.format import clip_bytes, escape_discord, escape_slack, escape_telegram_html, escape_wecom
from cryptomon_tui.notify.model import Notice, NoticeKind, incident_payload
from cryptomon_tui.notify.notifier import Notifier
from cryptomon_tui.notify.outbox import InMemoryOutbox
from cryptomon_tui.notify.ratelimit import TokenBucket
from cryptomon_tui.notify.router import quiet_until
from tests.unit.test_notify_notifier import incident


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_config_parses_channels_routes_and_env_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK", "https://hooks.slack.com/services/T/B/SECRET")
    cfg = config_from_data(
        {
            "notify": {
                "channels": {
                    "s": {"type": "slack", "url": "${HOOK}", "rate_limit": "20/min"},
                    "p": {"type": "pagerduty", "routing_key": "k" * 32, "send_resolved": False},
                },
                "routes": [
                    {"match": {"severity": "critical"}, "channels": ["p"], "continue": True, "group_wait": "0s"}
                ],
            }
        }
    ).notify
    assert cfg.channels["s"].url.get_secret_value().endswith("SECRET")  # type: ignore[union-attr]
    assert cfg.channels["s"].rate_limit is not None and cfg.channels["s"].rate_limit.per_second == pytest.approx(1 / 3)
    assert cfg.routes[0].continue_ and cfg.routes[0].match.severity == ["critical"]
    dumped = json.dumps(cfg.model_dump(mode="json"))
    assert "SECRET" not in dumped and "k" * 32 not in dumped


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"channels": {"x": {"type": "fax", "url": "u"}}}, "does not match any of the expected tags"),
        ({"channels": {"x": {"type": "slack", "url": "u"}}, "routes": [{"channels": ["y"]}]}, "unknown channel 'y'"),
        ({"channels": {"x": {"type": "slack", "url": "u", "rate_limit": "lots"}}}, "COUNT/UNIT"),
        ({"channels": {"x": {"type": "slack", "url": "u", "quiet_hours": {"start": "25:00", "end": "7:00"}}}}, "HH:MM"),
        ({"channels": {"x": {"type": "slack"}}}, "required"),
        ({"channels": {"x": {"type": "slack", "url": "u", "colour": 1}}}, "unknown key"),
    ],
)
def test_config_errors_name_the_problem(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_data({"notify": data})
    assert needle in err.value.render()


def test_quiet_hours_across_midnight_and_time_zones() -> None:
    night = QuietHours(start="22:00", end="07:00", tz="UTC")
    assert quiet_until(night, _ts("2026-01-01T23:30:00")) == _ts("2026-01-02T07:00:00")
    assert quiet_until(night, _ts("2026-01-02T06:59:00")) == _ts("2026-01-02T07:00:00")
    assert quiet_until(night, _ts("2026-01-02T07:00:00")) is None
    lunch = QuietHours(start="12:00", end="13:00", tz="Asia/Shanghai")  # UTC+8
    assert quiet_until(lunch, _ts("2026-01-01T04:30:00")) == _ts("2026-01-01T05:00:00")
    assert quiet_until(lunch, _ts("2026-01-01T12:30:00")) is None


def test_escaping_per_markup() -> None:
    evil = "<b>x</b> @everyone *y* _z_ `c` [l](u) & #h"
    assert "@everyone" not in escape_discord(evil) and "\\*y\\*" in escape_discord(evil)
    assert escape_slack(evil).startswith("&lt;b&gt;x&lt;/b&gt;") and "&amp;" in escape_slack(evil)
    assert escape_telegram_html(evil).startswith("&lt;b&gt;")
    wecom = escape_wecom(evil)
    assert not any(c in wecom for c in "<>[]*`#_")


def test_size_limits_hold_for_huge_untrusted_text() -> None:
    assert len(clip_bytes("故" * 5000, 4096).encode()) <= 4096
    huge = incident(summary="x" * 20_000, last_error="<" * 20_000)
    notice = Notice(NoticeKind.FIRING, huge.started_at, incident_payload(huge))
    d = discord_payload(notice, "cryptomon", "warning")
    embed = d["embeds"][0]
    total = len(embed["title"]) + len(embed.get("description", "")) + len(embed["footer"]["text"])
    total += sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
    assert total <= 6000 and len(d["content"]) <= 2000
    assert all(len(f["value"]) <= 1024 for f in embed["fields"])
    s = slack_payload(notice)
    assert len(s["blocks"][0]["text"]["text"]) <= 150 and len(s["text"]) <= 3000
    assert len(telegram_text(notice)) <= 4096


def test_notice_round_trip_and_digest_members() -> None:
    inc = incident()
    n = Notice(NoticeKind.FIRING, 1.0, incident_payload(inc), actor="a", analysis="dns", location="fra")
    digest = Notice(NoticeKind.DIGEST, 2.0, items=(n, n), member_keys=("k1", "k2"))
    again = Notice.from_json(digest.to_json())
    assert again == digest and again.items[0].incident["id"] == inc.id


def test_bucket_caps_any_window_at_the_configured_count() -> None:
    clock = FakeClock()
    cfg = config_from_data(
        {"notify": {"channels": {"w": {"type": "wecom", "url": "http://127.0.0.1/x", "rate_limit": "20/min"}}}}
    )
    bucket = Notifier(cfg, InMemoryOutbox(), clock).buckets["w"]
    sent: list[float] = []
    for _ in range(6000):  # 10 simulated minutes in 0.1 s steps, sending whenever a token is there
        if bucket.take():
            sent.append(clock.monotonic())
        clock.set(clock.now() + 0.1)
    worst = max(sum(1 for t in sent if start <= t < start + 60) for start in sent)
    assert worst <= 20 and len(sent) >= 170


def test_default_bucket_of_a_service() -> None:
    clock = FakeClock()
    bucket = TokenBucket(18 / 60, 2, clock)
    assert bucket.take() and bucket.take() and not bucket.take()
    assert bucket.wait_time() == pytest.approx(60 / 18)


@pytest.mark.parametrize("value", ["1e999", "Infinity", "NaN", "1e300", "-1e300", "true", '"1700000000"', "null"])
def test_stored_incident_times_that_are_no_time_render_everywhere(value: str) -> None:
    """A notice comes back from stored JSON: a time there that is no finite number, or beyond the calendar,
    rendered as 'Since -' instead of raising in every channel (which retried the message to a dead letter)."""
    from cryptomon_tui.config.notify import AlertmanagerChannelConfig
    from cryptomon_tui.notify.channels.alertmanager import am_alert
    from cryptomon_tui.notify.channels.pagerduty import pagerduty_event
    from cryptomon_tui.notify.channels.wecom import wecom_payload
    from cryptomon_tui.notify.format import build_view

    am = AlertmanagerChannelConfig(type="alertmanager", url="http://127.0.0.1:1")
    good = Notice(NoticeKind.FIRING, 1_700_000_100.0, incident_payload(incident()))
    for kind in ("firing", "resolved"):
        text = good.to_json().replace('"kind":"firing"', f'"kind":"{kind}"')
        for key in ("started_ts", "resolved_ts"):
            text = text.replace(f'"{key}":', f'"{key}":{value},"_{key}":', 1)
        notice = Notice.from_json(text)
        view = build_view(notice)
        assert view.title
        for rendered in (discord_payload(notice, "u", None), slack_payload(notice), telegram_text(notice),
                         wecom_payload(notice, []), pagerduty_event(notice, "rk", "src", None),
                         am_alert(notice, am, "here", 1.7e9)):
            assert json.dumps(rendered)
