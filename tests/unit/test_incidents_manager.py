"""Incident lifecycle semantics: reopen, ack, silences, maintenance windows, restore, externals."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.detection import IncidentsConfig
from cryptomon_tui.detection.signals import Signal
from cryptomon_tui.incidents.maintenance import next_occurrence, window_active
from cryptomon_tui.incidents.manager import IncidentManager
from cryptomon_tui.incidents.model import EventType, IncidentState, MaintenanceWindow, Matcher
from cryptomon_tui.incidents.silences import SILENCE_PRESETS, parse_matcher
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.severity import Severity

T0 = 1_700_000_000.0


def sig(
    rule: str = "error_rate",
    exchange: str | None = "binance",
    probe: str | None = "ticker",
    firing: bool = True,
    severity: Severity = Severity.ERROR,
    **values: float,
) -> Signal:
    labels = {k: v for k, v in (("exchange", exchange), ("probe", probe)) if v is not None}
    return Signal(
        rule=rule,
        fingerprint=fingerprint(rule, dict(labels)),
        exchange=exchange,
        probe=probe,
        severity=severity,
        firing=firing,
        summary=f"{rule} on {exchange}",
        ts=0.0,
        labels=labels,
        values=dict(values),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def mgr(clock: FakeClock) -> IncidentManager:
    return IncidentManager(clock, IncidentsConfig(reopen_cooldown=600), id_seed=3)


def test_open_update_resolve_and_id_shape(mgr: IncidentManager, clock: FakeClock) -> None:
    [opened] = mgr.process([sig(error_rate=0.2)])
    assert opened.event is EventType.OPENED
    assert re.fullmatch(r"I-[0-9A-F]{6}", opened.incident.id)
    # the same fingerprint firing again is not a new incident; a big peak is an update
    assert mgr.process([sig(error_rate=0.25)]) == []
    clock.set(T0 + 400)
    [up] = mgr.process([sig(error_rate=0.9)])
    assert up.event is EventType.UPDATED and up.incident.peak["error_rate"] == 0.9
    [done] = mgr.process([sig(firing=False)])
    assert done.event is EventType.RESOLVED and done.incident.state is IncidentState.RESOLVED
    assert done.incident.resolved_at == T0 + 400
    assert done.to_json_dict()["incident"]["resolved_at"].endswith("Z")


def test_ids_are_random_across_restarts(clock: FakeClock) -> None:
    ids = set()
    for _ in range(20):
        m = IncidentManager(clock)
        [e] = m.process([sig()])
        ids.add(e.incident.id)
    assert len(ids) == 20


def test_reopen_within_cooldown_keeps_id_and_new_incident_after(mgr: IncidentManager, clock: FakeClock) -> None:
    [first] = mgr.process([sig()])
    mgr.process([sig(firing=False)])
    clock.set(T0 + 300)
    [again] = mgr.process([sig()])
    assert again.event is EventType.REOPENED
    assert again.incident.id == first.incident.id and again.incident.reopen_count == 1
    assert again.incident.resolved_at is None and again.incident.state is IncidentState.FIRING
    mgr.process([sig(firing=False)])
    clock.set(T0 + 300 + 601)
    mgr.tick()
    [fresh] = mgr.process([sig()])
    assert fresh.event is EventType.OPENED and fresh.incident.id != first.incident.id


def test_default_reopen_window_is_short_and_resolved_incidents_stay_listed(clock: FakeClock) -> None:
    """Issue 14: a fault back within reopen_cooldown (90 s) of the resolve is the same incident; one back
    after a real quiet spell is a new incident with its own id. Resolved incidents stay listed (faces,
    commands) for keep_resolved (10 min) either way, and a restart reloads them for as long."""
    cfg = IncidentsConfig()
    assert cfg.reopen_cooldown == 90 and cfg.keep_resolved == 600
    m = IncidentManager(clock, cfg, id_seed=3)
    [first] = m.process([sig()])
    m.process([sig(firing=False)])
    clock.set(T0 + 90)
    [again] = m.process([sig()])
    assert again.event is EventType.REOPENED and again.incident.id == first.incident.id
    clock.set(T0 + 100)
    m.process([sig(firing=False)])
    clock.set(T0 + 100 + 91)
    m.tick()
    [fresh] = m.process([sig()])
    assert fresh.event is EventType.OPENED and fresh.incident.id != first.incident.id
    assert fresh.incident.reopen_count == 0
    # the first one is still listed, and a new manager restored from the same state lists it too
    assert [i.id for i in m.recently_resolved()] == [first.incident.id]
    clock.set(T0 + 500)
    m.tick()
    assert m.get(first.incident.id) is not None
    state = m.export_state()
    m2 = IncidentManager(clock, cfg, id_seed=4)
    m2.restore(state["incidents"], recently_resolved=state["recently_resolved"])
    assert [i.id for i in m2.recently_resolved()] == [first.incident.id]
    # a symptom of the same exchange long after the resolve does not join the old incident either
    m2.process([sig(firing=False)])
    clock.set(T0 + 800)
    [later] = m2.process([sig(rule="timeouts")])
    assert later.event is EventType.OPENED and later.incident.id not in (first.incident.id, fresh.incident.id)
    clock.set(T0 + 100 + 601)
    m2.tick()
    assert m2.get(first.incident.id) is None  # past keep_resolved: no longer listed


def test_ack_records_who_when_and_note(mgr: IncidentManager, clock: FakeClock) -> None:
    [e] = mgr.process([sig()])
    clock.set(T0 + 5)
    [ack] = mgr.ack(e.incident.id, "alice", "looking at it")
    assert ack.event is EventType.ACKNOWLEDGED and ack.actor == "alice"
    inc = ack.incident
    assert inc.state is IncidentState.ACKNOWLEDGED
    assert (inc.acknowledged_by, inc.acknowledged_at, inc.ack_note) == ("alice", T0 + 5, "looking at it")
    with pytest.raises(KeyError):
        mgr.ack("I-000000", "alice")
    [done] = mgr.process([sig(firing=False)])
    assert done.incident.state is IncidentState.RESOLVED
    with pytest.raises(ValueError):
        mgr.ack(e.incident.id, "alice")


@pytest.mark.parametrize(
    ("matchers", "hits"),
    [
        ([Matcher("exchange", "binance")], {"binance"}),
        ([Matcher("exchange", "bin.*", is_regex=True)], {"binance"}),
        ([Matcher("exchange", "binance", is_equal=False)], {"okx", "bybit"}),
        ([Matcher("exchange", "okx|bybit", is_regex=True, is_equal=False)], {"binance"}),
        ([Matcher("exchange", "binance"), Matcher("rule", "error_rate")], {"binance"}),
        ([Matcher("rule", "latency_p99")], set()),
        ([Matcher("severity", "critical")], {"bybit"}),
        ([Matcher("probe", "")], set()),  # missing label matches "" (all have a probe here)
        ([Matcher("exchange", "bin")], set()),  # exact, not prefix
        ([Matcher("exchange", "bin", is_regex=True)], set()),  # regexes are anchored
    ],
)
def test_silence_matching(mgr: IncidentManager, matchers: list[Matcher], hits: set[str]) -> None:
    mgr.process([sig(exchange="binance"), sig(exchange="okx"), sig(exchange="bybit", severity=Severity.CRITICAL)])
    silence, events = mgr.silence(matchers, 3600, "planned work", "bob")
    assert {e.incident.exchange for e in events} == hits
    assert all(e.event is EventType.SILENCED and e.actor == "bob" for e in events)
    for inc in mgr.open_incidents():
        assert (inc.silenced_by == silence.id) is (inc.exchange in hits)
        if inc.exchange in hits:
            assert inc.silenced_until == T0 + 3600


def test_silence_by_id_and_parse_matcher(mgr: IncidentManager) -> None:
    [e] = mgr.process([sig()])
    _, events = mgr.silence([parse_matcher(f"id={e.incident.id}")], None, "known", "bob")
    assert len(events) == 1
    assert parse_matcher("rule=~latency.*") == Matcher("rule", "latency.*", is_regex=True)
    assert parse_matcher("severity!=info") == Matcher("severity", "info", is_equal=False)
    assert parse_matcher("probe!~book|ticker") == Matcher("probe", "book|ticker", is_regex=True, is_equal=False)
    with pytest.raises(ValueError):
        parse_matcher("exchange")
    with pytest.raises(ValueError):
        parse_matcher("rule=~(")


def test_silence_requires_comment_author_and_matchers(mgr: IncidentManager) -> None:
    with pytest.raises(ValueError, match="comment"):
        mgr.silence([Matcher("exchange", "x")], 60, "  ", "bob")
    with pytest.raises(ValueError, match="author"):
        mgr.silence([Matcher("exchange", "x")], 60, "why", "")
    with pytest.raises(ValueError, match="matcher"):
        mgr.silence([], 60, "why", "bob")


@pytest.mark.parametrize("preset", ["15m", "1h", "4h"])
def test_silence_presets_expire_with_unsilenced(mgr: IncidentManager, clock: FakeClock, preset: str) -> None:
    duration = SILENCE_PRESETS[preset]
    assert duration is not None
    mgr.process([sig()])
    _silence, _ = mgr.silence([Matcher("exchange", "binance")], duration, "deploy", "bob")
    clock.set(T0 + duration - 1)
    assert mgr.tick() == []
    clock.set(T0 + duration)
    [ev] = mgr.tick()
    assert ev.event is EventType.UNSILENCED and ev.incident.silenced_by is None
    assert ev.detail["reason"] == "expired"
    assert mgr.silences() == []
    # a new incident matching an expired silence is not silenced
    [new] = mgr.process([sig(exchange="binance", probe="book")])
    assert new.incident.silenced_by is None


def test_silence_until_resolved_and_new_incident_silenced_at_open(mgr: IncidentManager, clock: FakeClock) -> None:
    silence, events = mgr.silence([Matcher("exchange", "okx")], SILENCE_PRESETS["until_resolved"], "known", "bob")
    assert events == []
    [opened] = mgr.process([sig(exchange="okx")])
    assert opened.event is EventType.OPENED and opened.incident.silenced_by == silence.id
    assert opened.incident.silenced_until is None
    clock.set(T0 + 50)
    mgr.process([sig(exchange="okx", firing=False)])
    assert mgr.silences() == []  # ended with the incident it silenced
    [again] = mgr.process([sig(exchange="okx", probe="book")])
    assert again.incident.silenced_by is None


def test_unsilence_emits_unsilenced_and_falls_back_to_another_silence(mgr: IncidentManager) -> None:
    mgr.process([sig()])
    short, _ = mgr.silence([Matcher("exchange", "binance")], 600, "a", "bob")
    long, _ = mgr.silence([Matcher("rule", "error_rate")], 7200, "b", "carol")
    assert mgr.open_incidents()[0].silenced_by == long.id
    assert mgr.unsilence(long.id, "carol") == []  # the shorter silence still covers it
    assert mgr.open_incidents()[0].silenced_by == short.id
    [ev] = mgr.unsilence(short.id, "bob")
    assert ev.event is EventType.UNSILENCED and ev.actor == "bob" and ev.detail["reason"] == "removed"


def test_one_off_maintenance_window_flags_incidents(mgr: IncidentManager, clock: FakeClock) -> None:
    _w, events = mgr.add_maintenance("binance", T0 + 100, T0 + 200, "upgrade")
    assert events == []
    [a] = mgr.process([sig(exchange="binance")])
    assert not a.incident.in_maintenance
    clock.set(T0 + 100)
    [up] = mgr.tick()
    assert up.event is EventType.UPDATED and up.incident.in_maintenance and up.detail == {"in_maintenance": True}
    [b] = mgr.process([sig(exchange="binance", probe="book")])
    assert b.incident.in_maintenance
    [c] = mgr.process([sig(exchange="okx")])
    assert not c.incident.in_maintenance
    clock.set(T0 + 200)
    ended = mgr.tick()
    assert {e.incident.id for e in ended} == {a.incident.id, b.incident.id}
    assert all(not e.incident.in_maintenance for e in ended)
    assert mgr.maintenance_windows() == []  # a finished one-off window is dropped


def test_recurring_window_keeps_local_time_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = dt.datetime(2026, 3, 24, 9, 0, tzinfo=berlin).timestamp()  # Tuesday, CET (UTC+1)
    w = MaintenanceWindow("M-1", "binance", start, start + 3600, recurrence="weekly", timezone="Europe/Berlin")
    after_dst = dt.datetime(2026, 3, 31, 9, 30, tzinfo=berlin).timestamp()  # CEST (UTC+2)
    assert window_active(w, after_dst)
    assert not window_active(w, dt.datetime(2026, 3, 31, 8, 30, tzinfo=berlin).timestamp())
    assert not window_active(w, dt.datetime(2026, 3, 31, 10, 30, tzinfo=berlin).timestamp())
    assert not window_active(w, dt.datetime(2026, 4, 1, 9, 30, tzinfo=berlin).timestamp())  # Wednesday
    assert not window_active(w, start - 60)  # never before the first occurrence
    nxt = next_occurrence(w, dt.datetime(2026, 4, 1, 12, 0, tzinfo=berlin).timestamp())
    assert nxt is not None
    assert dt.datetime.fromtimestamp(nxt[0], berlin) == dt.datetime(2026, 4, 7, 9, 0, tzinfo=berlin)
    daily = MaintenanceWindow("M-2", None, start, start + 1800, recurrence="daily", timezone="Europe/Berlin")
    assert window_active(daily, dt.datetime(2026, 10, 26, 9, 10, tzinfo=berlin).timestamp())  # after autumn DST
    assert not window_active(daily, dt.datetime(2026, 10, 26, 8, 10, tzinfo=berlin).timestamp())


def test_maintenance_window_validation(mgr: IncidentManager) -> None:
    with pytest.raises(ValueError):
        mgr.add_maintenance("x", T0 + 10, T0, "bad")
    with pytest.raises(ValueError):
        mgr.add_maintenance("x", T0, T0 + 10, recurrence="monthly")
    with pytest.raises(ValueError):
        mgr.add_maintenance("x", T0, T0 + 10, recurrence="daily", timezone="Mars/Olympus")
    w, _ = mgr.add_maintenance(None, T0, T0 + 60, recurrence="daily", timezone="Asia/Tokyo")
    assert mgr.in_maintenance("anything")
    mgr.remove_maintenance(w.id)
    assert not mgr.in_maintenance("anything")


def test_cause_over_symptom_records_evidence(mgr: IncidentManager) -> None:
    [m] = mgr.process([sig("maintenance", probe=None, severity=Severity.WARNING)])
    events = mgr.process([sig("error_rate"), sig("consecutive_failures", probe="book")])
    assert [e.event for e in events] == [EventType.UPDATED, EventType.UPDATED]
    inc = mgr.open_incidents()[0]
    assert inc.id == m.incident.id and inc.evidence == ("error_rate", "consecutive_failures")
    assert [t.kind for t in inc.timeline].count("evidence") == 2
    # the incident stays open while evidence still fires, then resolves once
    [still] = mgr.process([sig("maintenance", probe=None, firing=False)])
    assert still.event is EventType.UPDATED and still.detail["recovered"] == "maintenance"
    assert still.incident.is_open
    mgr.process([sig("error_rate", firing=False)])
    [done] = mgr.process([sig("consecutive_failures", probe="book", firing=False)])
    assert done.event is EventType.RESOLVED and len(mgr.open_incidents()) == 0


def test_clock_offset_stands_alone_and_local_network_holds_what_it_explains(mgr: IncidentManager) -> None:
    mgr.process([sig("maintenance", probe=None)])
    [clock_ev] = mgr.process([sig("clock_offset", probe=None)])
    assert clock_ev.event is EventType.OPENED
    events = mgr.process([sig("local_network", exchange=None, probe=None, severity=Severity.CRITICAL)])
    kinds = [(e.event, e.incident.rule) for e in events]
    assert (EventType.OPENED, "local_network") in kinds
    # the taxonomy: our network failing does not explain a venue's announced maintenance (issue 14)
    assert all(rule not in ("clock_offset", "maintenance") for _, rule in kinds)
    held = mgr.process([sig("error_rate", exchange="okx")])
    assert [e.incident.rule for e in held] == ["local_network"]
    assert sorted(i.rule for i in mgr.open_incidents()) == ["clock_offset", "local_network", "maintenance"]


def test_an_unrelated_symptom_opens_its_own_incident(mgr: IncidentManager) -> None:
    """Issue 14 item 5: a usage climb on an exchange with an open error burst is not its evidence."""
    [burst] = mgr.process([sig("error_rate", exchange="okx")])
    assert burst.event is EventType.OPENED
    [usage] = mgr.process([sig("rate_limit_usage", exchange="okx", probe=None)])
    assert usage.event is EventType.OPENED and usage.incident.id != burst.incident.id
    # while a rate-limited incident explains the usage climb and the failures it causes
    events = mgr.process([sig("rate_limited", exchange="okx", probe=None)])
    kinds = [(e.event, e.incident.rule) for e in events]
    assert (EventType.OPENED, "rate_limited") in kinds and (EventType.RESOLVED, "rate_limit_usage") in kinds


def test_external_incidents_are_not_grouped(mgr: IncidentManager) -> None:
    mgr.process([sig("maintenance", probe=None)])
    [e] = mgr.raise_external("channel_broken", {"channel": "slack"}, "error", "slack: invalid_token")
    assert e.event is EventType.OPENED and e.incident.rule == "channel_broken" and e.incident.exchange is None
    assert mgr.raise_external("channel_broken", {"channel": "slack"}, "error", "slack: invalid_token") == []
    [r] = mgr.resolve_external("channel_broken", {"channel": "slack"})
    assert r.event is EventType.RESOLVED


def test_restore_after_restart_without_reemitting(clock: FakeClock) -> None:
    m1 = IncidentManager(clock, IncidentsConfig(), id_seed=1)
    [e] = m1.process([sig()])
    m1.ack(e.incident.id, "alice")
    silence, _ = m1.silence([Matcher("exchange", "binance")], 3600, "work", "bob")
    m1.add_maintenance("okx", T0 + 10, T0 + 7200)
    state = m1.export_state()

    m2 = IncidentManager(clock, IncidentsConfig(), id_seed=1)
    m2.restore(state["incidents"], state["silences"], state["windows"], grace_s=300)
    [inc] = m2.open_incidents()
    assert inc.id == e.incident.id and inc.state is IncidentState.ACKNOWLEDGED and inc.silenced_by == silence.id
    assert m2.process([sig(error_rate=0.1)]) == []  # confirmed by detection: no `opened` again
    assert m2.get(e.incident.id) is not None and m2.in_maintenance("okx", T0 + 20)
    # a restored incident that is never confirmed resolves after the grace period
    m3 = IncidentManager(clock, IncidentsConfig())
    m3.restore(state["incidents"], state["silences"], state["windows"], grace_s=300)
    clock.set(T0 + 299)
    assert m3.tick() == []
    clock.set(T0 + 301)
    [gone] = m3.tick()
    assert gone.event is EventType.RESOLVED
    # it ended when monitoring resumed (T0, the restore), not after the grace spent waiting (issue 12: "Lasted")
    assert gone.incident.resolved_at == T0 and gone.ts == T0 + 301
    # ids created after a restore never collide with restored ones
    assert len({m2._new_id("I-") for _ in range(50)} & {inc.id}) == 0


def test_resolved_incidents_kept_are_bounded(clock: FakeClock) -> None:
    m = IncidentManager(clock, IncidentsConfig(max_resolved_kept=10))
    for i in range(50):
        m.process([sig(exchange=f"ex{i}")])
        m.process([sig(exchange=f"ex{i}", firing=False)])
    assert len(m.recently_resolved()) == 10
    assert len(m._resolved_by_fp) <= 10 and len(m._members) <= 10


def test_a_silence_scheduled_for_later_applies_when_it_starts(mgr: IncidentManager, clock: FakeClock) -> None:
    mgr.process([sig()])
    silence, events = mgr.silence([Matcher("exchange", "binance")], 600, "planned", "bob", starts_at=T0 + 100)
    assert events == [] and mgr.open_incidents()[0].silenced_by is None
    clock.set(T0 + 100)
    [ev] = mgr.tick()
    assert ev.event is EventType.SILENCED and ev.incident.silenced_by == silence.id
    assert ev.incident.silenced_until == T0 + 700
    clock.set(T0 + 700)
    [end] = mgr.tick()
    assert end.event is EventType.UNSILENCED
