"""Engine wiring that no single package owns: evidence kept for analysis, snapshot shape, commands."""

from __future__ import annotations

from typing import Any

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.engine.api import CommandError
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.notify.model import ChannelStatus
from tests.fakes.probing_fakes import ScriptedTransport


def _monitor(clock: FakeClock) -> Engine:
    cfg = config_from_data({"exchanges": {"binance": {"interval": "250ms"}}})
    monitor = Engine(cfg, clock=clock, use_store=False, notify=False)
    monitor._build_analysis()
    return monitor


def _feed(monitor: Engine, clock: FakeClock, outcome: Outcome, seconds: float, **kw: Any) -> None:
    steps = int(seconds / 0.25)
    for _ in range(steps):
        clock.set(clock.now() + 0.25)
        for probe in ("time", "status", "ticker"):
            ok = outcome is Outcome.OK
            monitor._on_result(
                ProbeResult(
                    "binance", probe, clock.now(), 0.6 if ok else 1.0, outcome,
                    http_status=200 if ok else kw.get("status"), error_code=None if ok else kw.get("code"),
                    error_message=None if ok else kw.get("message"),
                )
            )


async def test_analysis_after_recovery_still_sees_the_failures() -> None:
    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    _feed(monitor, clock, Outcome.OK, 20)
    _feed(monitor, clock, Outcome.HTTP_5XX, 5, status=500, code="-1001", message="Internal error")
    incidents = monitor.pipeline.incidents.open_incidents()
    assert len(incidents) == 1 and incidents[0].exchange == "binance"
    _feed(monitor, clock, Outcome.OK, 30)  # far more than the 60-result ring of recent results
    reply = await monitor.analyze(incidents[0].id, offline=True)
    analysis = reply["analysis"]
    assert "500" in analysis["root_cause"]
    assert "recent probes do not point" not in analysis["root_cause"]


async def test_snapshot_has_the_documented_keys_and_commands_refuse_clearly() -> None:
    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    _feed(monitor, clock, Outcome.OK, 5)
    snap = monitor.snapshot().to_wire()
    for key in ("seq", "ts", "location", "version", "exchanges", "incidents", "silences", "notify", "analysis"):
        assert key in snap
    ex = snap["exchanges"]["binance"]
    for key in ("kind", "status", "breaker", "rate_limit_used", "clock_offset_ms", "p50_ms", "p99_ms",
                "error_rate", "sparkline", "probes"):
        assert key in ex
    assert ex["status"] == "ok"
    assert ex["probes"]["ticker"]["last"]["outcome"] == "ok"
    with pytest.raises(CommandError):
        await monitor.ack("I-NOPE00", "tester", None)
    with pytest.raises(CommandError):
        await monitor.silence([{"name": "exchange", "value": "binance"}], 60, "", "tester")
    with pytest.raises(CommandError):
        await monitor.pause("kraken")


async def test_llm_spend_reaches_the_snapshot_after_an_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    _feed(monitor, clock, Outcome.OK, 20)
    _feed(monitor, clock, Outcome.HTTP_5XX, 5, status=500, code="-1001", message="Internal error")
    incident = monitor.pipeline.incidents.open_incidents()[0]

    async def spent() -> Decimal:
        return Decimal("1.23")

    monkeypatch.setattr(monitor.analysis, "month_spent", spent)
    assert monitor.snapshot().to_wire()["analysis"]["llm_spend_usd_month"] is None
    await monitor.analyze(incident.id, offline=True)
    clock.set(clock.now() + 1)  # snapshots are rebuilt at most every 0.2 s of engine time
    assert monitor.snapshot().to_wire()["analysis"]["llm_spend_usd_month"] == pytest.approx(1.23)


async def test_counters_are_cumulative_while_the_windows_forget() -> None:
    """/metrics counters come from totals, not windows: they keep every result after the 5-minute window
    moved on, never go down between snapshot builds, and count each opened incident once."""
    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    seen: list[int] = []
    for outcome, seconds in ((Outcome.OK, 200), (Outcome.HTTP_5XX, 5), (Outcome.OK, 400)):
        kw = {} if outcome is Outcome.OK else {"status": 500, "code": "-1001", "message": "Internal error"}
        _feed(monitor, clock, outcome, seconds, **kw)
        monitor.snapshot()
        seen.append(sum(monitor.counters().probes.values()))
    c = monitor.counters()
    assert seen == sorted(seen) and seen[-1] == 3 * 4 * (200 + 5 + 400)
    assert c.probes[("binance", "ticker", "http_5xx")] == 20 and c.probes[("binance", "ticker", "ok")] == 4 * 600
    window = monitor.snapshot().to_wire()["exchanges"]["binance"]["probes"]["ticker"]
    assert window["counts"].get("http_5xx", 0) == 0 and window["attempts"] < 4 * 600  # the window forgot
    durations = c.probe_durations[("binance", "ticker")]
    assert durations.count == 4 * 600 and durations.cumulative()[0] == ("0.001", 4 * 600)  # 0.6 ms each
    assert sum(c.incidents_opened.values()) == 1


async def test_maintenance_commands_go_through_the_incident_manager() -> None:
    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    now = clock.now()
    answer = await monitor.maintenance_add("binance", now + 60, now + 3660, "upgrade", None, "UTC", "alice")
    window_id = answer["window"]["id"]
    assert [w.id for w in monitor.pipeline.incidents.maintenance_windows()] == [window_id]
    with pytest.raises(CommandError):
        await monitor.maintenance_add("kraken", now, now + 60, "", None, "UTC", "alice")  # unknown exchange
    with pytest.raises(CommandError):
        await monitor.maintenance_add(None, now, now + 60, "", "monthly", "UTC", "alice")  # the manager refuses
    assert (await monitor.maintenance_remove(window_id, "alice"))["removed"] is True
    assert monitor.pipeline.incidents.maintenance_windows() == []
    with pytest.raises(CommandError):
        await monitor.maintenance_remove(window_id, "alice")


async def test_a_snapshot_cached_while_starting_is_not_served_once_the_probes_run() -> None:
    """The control API and /metrics serve from ``prepare`` on, so a snapshot can be built before the probe
    workers exist (no intervals); once ``start`` returns it must not be served again, not even within the
    snapshot rate limit (a real daemon read empty intervals right after /readyz said ready)."""
    clock = FakeClock(start=1_750_000_000.0)
    cfg = config_from_data({"exchanges": {"okx": {"interval": "700ms", "streams": False}}})
    transport = ScriptedTransport(clock)
    monitor = Engine(cfg, clock=clock, use_store=False, notify=False, transport_factory=lambda name, o: transport)
    await monitor.prepare()
    assert monitor.snapshot().to_wire()["exchanges"]["okx"]["intervals"] == {}  # no workers yet
    await monitor.start()
    try:
        planned = {p.probe: p.interval_s for p in monitor.runner.plan if p.exchange == "okx"}
        assert "time" in planned
        assert monitor.snapshot().to_wire()["exchanges"]["okx"]["intervals"] == planned  # at the same instant
    finally:
        await monitor.stop()


class _ChannelsReport:
    """A notifier as the engine sees it: only its status records."""

    def __init__(self, records: list[ChannelStatus]) -> None:
        self.records = records

    def status(self) -> list[ChannelStatus]:
        return self.records


async def test_notify_view_reads_the_notifiers_status_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot's notify rows (and /metrics' dead letters and channel_up) come from the typed status: a
    channel failing in a row is "failing" and its dead letters are counted (the old dict reading looked up
    keys the notifier never wrote, so both always read ok / 0)."""
    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    base = {"type": "webhook", "total_failures": 4, "total_sent": 7, "queued": 2, "sent": 7,
            "broken_reason": None, "last_error": "HTTP 503"}
    monkeypatch.setattr(monitor, "notifier", _ChannelsReport([
        ChannelStatus("ok", last_success=1_750_000_000.0, failures=0, dead=0, broken=False, **base),
        ChannelStatus("flaky", last_success=None, failures=3, dead=5, broken=False, **base),
        ChannelStatus("gone", last_success=None, failures=9, dead=1, broken=True, **base),
    ]))
    rows = {r["channel"]: r for r in monitor.snapshot().to_wire()["notify"]}
    assert [(rows[n]["state"], rows[n]["dead_letters"], rows[n]["queue"]) for n in ("ok", "flaky", "gone")] == [
        ("ok", 0, 2), ("failing", 5, 2), ("broken", 1, 2)
    ]
    assert rows["ok"]["last_sent_at"] == iso_utc(1_750_000_000.0) and rows["flaky"]["last_sent_at"] is None
    totals = monitor.counters().notifications
    assert totals[("flaky", "sent")] == 7 and totals[("gone", "failed")] == 4


def _key_paths(value: object, path: str = "") -> set[str]:
    """Every key path of a JSON value; map keys that are names (exchanges, probes, counts ...) read as ``*``."""
    names = ("exchanges", "probes", "counts", "intervals", "labels", "peak", "data", "errors", "facts")
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{'*' if path.endswith(names) else key}"
            out |= {sub} | _key_paths(item, sub)
    elif isinstance(value, list):
        for item in value:
            out |= _key_paths(item, f"{path}[]")
    return out


async def test_typed_snapshot_sends_every_key_the_untyped_engine_sent() -> None:
    """Compatibility of the wire (schema 2 adds, never drops): every key path of a snapshot recorded from the
    untyped engine (a `daemon --demo outage` run) is in the typed engine's ``to_wire()``, for the parts this
    engine has (no store, no streams, no probe workers and results without phases or facts here: their sub-keys are
    left out)."""
    import json
    from pathlib import Path

    clock = FakeClock(start=1_750_000_000.0)
    monitor = _monitor(clock)
    _feed(monitor, clock, Outcome.OK, 20)
    _feed(monitor, clock, Outcome.HTTP_5XX, 5, status=500, code="-1001", message="Internal error")
    incident = monitor.pipeline.incidents.open_incidents()[0]
    await monitor.analyze(incident.id, offline=True)
    await monitor.silence([{"name": "exchange", "value": "binance"}], 600, "known", "tester")
    await monitor.maintenance_add("binance", clock.now() + 3600, clock.now() + 7200, "planned", None, "UTC", "tester")
    clock.set(clock.now() + 1)
    wire = monitor.snapshot().to_wire()
    recorded = json.loads(Path(__file__).with_name("snapshot_demo_outage.json").read_text(encoding="utf-8"))
    absent_here = (".store.", ".streams[].", ".backoff.", ".schedule_lag.", ".intervals.", ".phases.", ".facts.")
    expected = {p for p in _key_paths(recorded) if not any(a in p + "." for a in absent_here)}
    assert expected - _key_paths(wire) == set()
    assert _key_paths(wire) - _key_paths(recorded) == {".schema"}
    assert wire["schema"] == 2 and wire["incidents"][0]["analysis"]["source"] == "offline"


@pytest.mark.parametrize("flags", [{"is_equal": None}, {"is_equal": 0}, {"is_equal": ""}, {"is_regex": "false"},
                                   {"is_regex": 1}])
async def test_a_matcher_flag_that_is_not_a_boolean_is_refused(flags: dict[str, object]) -> None:
    """Read by truthiness, ``"is_equal": null`` silenced every exchange except the named one."""
    monitor = _monitor(FakeClock(start=1_750_000_000.0))
    with pytest.raises(CommandError, match="true or false"):
        await monitor.silence([{"name": "exchange", "value": "binance", **flags}], 600, "known", "tester")
    assert monitor.pipeline.incidents.silences() == []
    reply = await monitor.silence([{"name": "exchange", "value": "binance", "is_equal": True}], 600, "known", "t")
    assert reply["silence"]["matchers"] == [
        {"name": "exchange", "value": "binance", "is_regex": False, "is_equal": True}]
