"""Store + real DetectionPipeline: restart restores incidents, acks, silences and windows; CLI commands reach
the daemon's state idempotently; a SIGKILLed writer loses nothing it committed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.engine.offline import OfflineCommands
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState, Matcher, Silence
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.store import Store
from cryptomon_tui.store.commands import apply_command

pipeline_module = pytest.importorskip("cryptomon_tui.engine.pipeline")
T0 = 1_700_000_000.0


async def _drive(
    pipeline: object, store: Store, clock: FakeClock, seconds: int, outcome: Outcome
) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    for _ in range(seconds):
        clock.set(clock.now() + 1)
        for exchange in ("okx", "binance"):
            bad = exchange == "okx" and outcome is not Outcome.OK
            r = ProbeResult(exchange, "ticker", clock.now(), None if bad else 30.0, outcome if bad else Outcome.OK)
            store.on_result(r)
            for ev in pipeline.on_result(r):  # type: ignore[attr-defined]
                store.on_event(ev)
                events.append(ev)
    return events


async def test_restart_restores_what_the_pipeline_and_the_cli_changed(tmp_path: Path) -> None:
    config = config_from_data({})
    clock = FakeClock(T0)
    path = tmp_path / "db.sqlite3"
    store = Store(StorageConfig(path=path), clock)
    assert await store.open(background=False)
    pipeline = pipeline_module.DetectionPipeline(config, clock, id_seed=1)
    events = await _drive(pipeline, store, clock, 30, Outcome.TIMEOUT)
    opened = [e for e in events if e.event is EventType.OPENED]
    assert len(opened) == 1
    incident_id = opened[0].incident.id

    # a CLI that found no daemon (this one was just starting) applies ack and silence offline, through the
    # incident manager restored from the store, which writes the result and queues the commands ...
    await store.flush()
    offline = OfflineCommands(store, config, clock)
    acked = (await offline.ack(incident_id[:6], "alice", "looking")).incident
    assert acked is not None and acked.state is IncidentState.ACKNOWLEDGED
    stored = await store.incident(incident_id)
    assert stored is not None and stored.acknowledged_by == "alice" and stored.timeline[-1].kind == "acknowledged"
    silence = Silence("sil-cli1", (Matcher("exchange", "okx"),), clock.now(), clock.now() + 3600, "bob", "upgrade",
                      clock.now())  # fmt: skip
    await offline.silence(silence)
    clock.set(clock.now() + 30)
    # ... and the daemon picks the commands up and applies them to its in-memory state (its minute tick)
    commands = await store.poll_commands()
    assert [c.kind for c in commands] == ["ack", "silence"]
    applied: list[IncidentEvent] = []
    for cmd in commands:
        result, produced = apply_command(pipeline.incidents, cmd)
        assert result == "ok"
        for ev in produced:
            store.on_event(ev)
        applied += produced
        assert await store.mark_command_done(cmd.id, result)
    assert [e.event for e in applied] == [EventType.ACKNOWLEDGED, EventType.SILENCED]
    live = pipeline.incidents.get(incident_id)
    assert live.state is IncidentState.ACKNOWLEDGED and live.acknowledged_by == "alice"
    assert live.silenced_by == "sil-cli1"
    # applying the same commands again changes nothing
    for cmd in commands:
        result, produced = apply_command(pipeline.incidents, cmd)
        assert result.startswith("ok: already") and produced == []
    window, _ = pipeline.incidents.add_maintenance("bybit", T0 + 86400, T0 + 90000, "planned", window_id="mw-1")
    store.sync_silences_and_windows(pipeline.incidents.silences(include_expired=True),
                                    pipeline.incidents.maintenance_windows())  # fmt: skip
    await store.close()  # flushes

    # restart
    store2 = Store(StorageConfig(path=path), clock)
    assert await store2.open(background=False)
    state = await store2.load_state()
    assert [i.id for i in state.open_incidents] == [incident_id]
    restored = state.open_incidents[0]
    assert restored == pipeline.incidents.get(incident_id)  # every field and the whole timeline
    assert [s.id for s in state.silences] == ["sil-cli1"]
    assert [w.id for w in state.maintenance_windows] == [window.id]
    assert await store2.poll_commands() == []
    fresh = pipeline_module.DetectionPipeline(config, clock, id_seed=2)
    fresh.incidents.restore(state.open_incidents, state.silences, state.maintenance_windows, state.recently_resolved,
                           grace_s=config.incidents.restore_grace)
    assert fresh.incidents.get(incident_id).acknowledged_by == "alice"
    # the problem continues after the restart: same incident, no new one
    more = await _drive(fresh, store2, clock, 20, Outcome.TIMEOUT)
    assert not [e for e in more if e.event is EventType.OPENED]
    await store2.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from cryptomon_tui.clock import RealClock
    from cryptomon_tui.config.storage import StorageConfig
    from cryptomon_tui.store import Store
    from tests.unit.store_helpers import event, make_incident, result

    async def main():
        store = Store(StorageConfig(path=sys.argv[1]), RealClock())
        assert await store.open(background=False)
        store.on_event(event(make_incident(1)))
        for i in range(100):
            store.on_result(result(i))
        await store.flush()
        for n in range(3):
            await store.outbox_enqueue(idempotency_key=f"k{n}", channel="slack", event="opened", payload={"n": n})
        await store.outbox_claim_due(limit=1)  # one message is "being sent" when the kill lands
        print("READY", flush=True)
        while True:
            store.on_result(result(0))
            await asyncio.sleep(0.001)

    asyncio.run(main())
    """
)


@pytest.mark.slow
def test_sigkill_keeps_committed_state_and_requeues_inflight(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)],
        cwd=root,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)},
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "READY"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    import asyncio

    async def check() -> None:
        store = Store(StorageConfig(path=path), FakeClock(T0))
        assert await store.open(background=False)
        state = await store.load_state(now=T0)
        assert [i.id for i in state.open_incidents] == ["inc-0001"]
        assert await store.count_results() >= 100
        assert await store.outbox_requeue_inflight() == 1
        due = await store.outbox_claim_due(now=1e12, limit=10)
        assert sorted(m.idempotency_key for m in due) == ["k0", "k1", "k2"]
        await store.close()

    asyncio.run(check())


async def test_an_offline_ack_is_announced_once_when_the_daemon_starts(tmp_path: Path) -> None:
    """No daemon: ``cryptomon ack`` stores the ack decided by the incident manager and queues the command; the
    next daemon restores the acknowledged incident and still tells the channels (one ACKNOWLEDGED event)."""
    config = config_from_data({})
    clock = FakeClock(T0)
    path = tmp_path / "db.sqlite3"
    store = Store(StorageConfig(path=path), clock)
    assert await store.open(background=False)
    pipeline = pipeline_module.DetectionPipeline(config, clock, id_seed=1)
    opened = [e for e in await _drive(pipeline, store, clock, 30, Outcome.TIMEOUT) if e.event is EventType.OPENED]
    await store.close()  # the daemon stops

    store = Store(StorageConfig(path=path), clock)
    assert await store.open(background=False)
    applied = await OfflineCommands(store, config, clock).ack(opened[0].incident.id, "alice", "on it")
    assert [e.event for e in applied.events] == [EventType.ACKNOWLEDGED]
    await store.close()
    clock.set(clock.now() + 120)

    store = Store(StorageConfig(path=path), clock)  # the daemon starts again
    assert await store.open(background=False)
    state = await store.load_state()
    fresh = pipeline_module.DetectionPipeline(config, clock, id_seed=2)
    fresh.incidents.restore(state.open_incidents, state.silences, state.maintenance_windows, state.recently_resolved)
    assert fresh.incidents.get(opened[0].incident.id).state is IncidentState.ACKNOWLEDGED
    announced = []
    for cmd in await store.poll_commands():
        result, events = apply_command(fresh.incidents, cmd)
        announced += events
        assert await store.mark_command_done(cmd.id, result)
    assert [(e.event, e.actor, e.detail.get("note")) for e in announced] == [(EventType.ACKNOWLEDGED, "alice", "on it")]
    assert announced[0].ts == T0 + 30  # when alice acknowledged, not when the daemon started
    assert await store.poll_commands() == []  # announced once
    await store.close()



async def test_a_command_queued_next_to_a_running_engine_is_applied_on_its_next_check(tmp_path: Path) -> None:
    """A CLI that finds no control address (a daemon run with ``--no-control``) applies its command offline and
    queues it; the running engine applies it at its next check, after ``COMMAND_CHECK_S`` of engine time (not
    at the minute pass), and while no other process commits it never reads the queue (its own writes do not
    count)."""
    from cryptomon_tui.engine.engine import COMMAND_CHECK_S, COSTS_REFRESH_S, Engine

    path = tmp_path / "db.sqlite3"
    config = config_from_data({"exchanges": {"okx": {"interval": "1s"}}, "storage": {"path": str(path)}})
    clock = FakeClock(T0)
    engine = Engine(config, clock=clock, notify=False)
    await engine.prepare()
    store = engine.store
    seen: list[IncidentEvent] = []
    news = asyncio.Event()  # set by every event and every finished check
    engine.add_event_sink(lambda e: (seen.append(e), news.set()))
    engine._build_analysis()
    events = asyncio.create_task(engine._event_loop())  # events reach the store and the sink
    for _ in range(30):
        clock.set(clock.now() + 1)
        engine._on_result(ProbeResult("okx", "time", clock.now(), None, Outcome.TIMEOUT))

    calls = {"checks": 0, "reads": 0, "done": 0}
    check, poll, mark_done = store.others_committed, store.poll_commands, store.mark_command_done

    async def counted_check() -> bool:
        changed = await check()
        calls["checks"] += 1
        news.set()
        return changed

    async def counted_poll(limit: int = 100) -> list[object]:
        calls["reads"] += 1
        return await poll(limit)

    async def counted_done(command_id: int, result: str = "ok") -> bool:
        marked = await mark_done(command_id, result)
        calls["done"] += 1
        news.set()
        return marked

    async def until(cond: Callable[[], bool]) -> None:  # store threads answer in real time; the test timeout guards
        while not cond():
            news.clear()
            await news.wait()

    await until(lambda: any(e.event is EventType.OPENED for e in seen))
    opened = [e.incident for e in seen if e.event is EventType.OPENED]
    assert len(opened) == 1
    store.others_committed, store.poll_commands, store.mark_command_done = counted_check, counted_poll, counted_done
    await store.flush()
    assert await check()  # the first call: the baseline, as at start
    loop = asyncio.create_task(engine._command_loop())
    cli = Store(StorageConfig(path=path), clock)  # another connection, as the CLI process has
    try:
        await clock.advance(COMMAND_CHECK_S)
        await until(lambda: calls["checks"] == 1)
        engine._on_result(ProbeResult("okx", "time", clock.now(), None, Outcome.TIMEOUT))
        await store.flush()  # the engine's own commit
        await clock.advance(COMMAND_CHECK_S)
        await until(lambda: calls["checks"] == 2)
        assert calls["reads"] == 0  # idle: one pragma per check, the queue is never read

        assert await cli.open(background=False)
        await OfflineCommands(cli, config, clock).ack(opened[0].id, "alice", "on it")
        await clock.advance(COMMAND_CHECK_S)  # one more check is due, and nothing else
        await until(lambda: calls["done"] == 1 and any(e.event is EventType.ACKNOWLEDGED for e in seen))
        acks = [e for e in seen if e.event is EventType.ACKNOWLEDGED]
        assert [(e.incident.id, e.actor) for e in acks] == [(opened[0].id, "alice")]
        assert engine.pipeline.incidents.get(opened[0].id).state is IncidentState.ACKNOWLEDGED
        assert calls == {"checks": 3, "reads": 1, "done": 1}
        assert 3 * COMMAND_CHECK_S < COSTS_REFRESH_S  # applied long before the minute pass
        assert await cli.poll_commands() == []  # marked done
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        engine._events.put_nowait(None)
        await events
        await cli.close()
        await store.close()
