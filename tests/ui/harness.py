"""Shared UI test plumbing: an engine served over a real Unix socket, and apps attached to it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config import Config, config_from_data
from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.daemon.control import ControlServer
from cryptomon_tui.engine.api import EngineAPI
from cryptomon_tui.kernel.events import EventView
from cryptomon_tui.kernel.snapshot import Snapshot
from cryptomon_tui.ui.app import CryptomonApp
from cryptomon_tui.ui.state import UiState
from tests.fakes.fake_engine import FakeEngine

HOSTILE = "boom [/api/v3/time] [link=https://evil.example]click[/link] [bold]x \x1b[31mred\x07 \u202eevil [$error]"


@dataclass
class Served:
    engine: Any
    server: ControlServer
    address: DaemonAddress
    config: Config


def unix_config(sock_dir: Path, **extra: Any) -> Config:
    return config_from_data({"daemon": {"control": {"socket_path": str(sock_dir / "c.sock")}}, **extra})


@asynccontextmanager
async def serve(engine: EngineAPI, config: Config, clock: Clock | None = None) -> AsyncIterator[Served]:
    server = ControlServer(engine, config, clock or RealClock(), on_shutdown=lambda: None)
    await server.start()
    try:
        yield Served(engine, server, server.address, config)
    finally:
        await server.stop()


@asynccontextmanager
async def served_fake(**engine_kwargs: Any) -> AsyncIterator[Served]:
    tmp = Path(tempfile.mkdtemp(prefix="cmui-", dir="/tmp"))
    try:
        engine = FakeEngine(RealClock(), **engine_kwargs)
        async with serve(engine, unix_config(tmp / "run")) as served:
            yield served
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def make_app(address: DaemonAddress, **kwargs: Any) -> CryptomonApp:
    client = DaemonClient(address, client_name="ui-test", backoff_initial=0.05, backoff_max=0.2)
    kwargs.setdefault("state", UiState())
    kwargs.setdefault("persist_state", False)
    kwargs.setdefault("watch_signals", False)
    kwargs.setdefault("actor", "tester@ui")
    return CryptomonApp(client, **kwargs)


async def wait_for(pilot: Any, predicate: Any, limit_s: float = 5.0, step: float = 0.05) -> None:
    """Bounded polling of UI state (the UI updates on its own timer, not on a test clock)."""
    import time

    deadline = time.monotonic() + limit_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the deadline")
        await pilot.pause(step)


class FrozenClient:
    """A ClientLike with one fixed snapshot and no socket: deterministic screenshots."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.state = "disconnected"
        self._snapshot = Snapshot.from_wire(snapshot)  # as the daemon client reads a snapshot frame
        self.on_state: Any = None
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.history_source: Any = None  # a tests.fakes.fake_engine.MemoryHistory, or None = no store

    @property
    def latest_snapshot(self) -> Snapshot | None:
        return self._snapshot

    async def connect(self) -> None:
        self.state = "connected"

    async def close(self) -> None:
        self.state = "closed"

    async def subscribe(self, snapshot_hz: float = 0.0, events: bool = False) -> dict[str, Any]:
        return {"snapshot_hz": snapshot_hz, "events": events}

    async def events(self) -> Any:
        import asyncio

        await asyncio.Event().wait()
        yield EventView()

    async def _call(self, name: str, *args: Any) -> dict[str, Any]:
        self.calls.append((name, args))
        return {}

    async def ack(self, incident_id: str, note: str | None = None, by: str | None = None) -> dict[str, Any]:
        return await self._call("ack", incident_id, note, by)

    async def silence(self, matchers: Any, duration_s: float | None, comment: str, by: str | None = None) -> Any:
        return await self._call("silence", matchers, duration_s, comment, by)

    async def unsilence(self, silence_id: str, by: str | None = None) -> dict[str, Any]:
        return await self._call("unsilence", silence_id, by)

    async def analyze(self, incident_id: str, force: bool = False, offline: bool = False) -> dict[str, Any]:
        return await self._call("analyze", incident_id, force, offline)

    async def summary(self) -> dict[str, Any]:
        return await self._call("summary")

    async def history(
        self, exchange: str, since: float, until: float, resolution_s: float, probe: str | None = None,
        recent: int = 0,
    ) -> dict[str, Any]:
        """Answers from ``history_source`` (a ``MemoryHistory``), as the daemon would."""
        from cryptomon_tui.engine.history import read_history

        self.calls.append(("history", (exchange, since, until, resolution_s, probe, recent)))
        return await read_history(self.history_source, exchange, probe, since, until, resolution_s, recent)

    async def pause(self, exchange: str) -> dict[str, Any]:
        return await self._call("pause", exchange)

    async def resume(self, exchange: str) -> dict[str, Any]:
        return await self._call("resume", exchange)

    async def shutdown(self) -> dict[str, Any]:
        return await self._call("shutdown")


FIXED_EPOCH = 1_787_000_000.0  # 2026-08-17: fixed so ages and countdowns on screen never change


def fixture_snapshot() -> dict[str, Any]:
    """A busy but deterministic dashboard: one exchange down with hostile text, one banned, one
    with an open breaker, incidents in each state, a silence and a failing channel."""
    from cryptomon_tui.clock import FakeClock
    from cryptomon_tui.kernel.severity import Severity
    from cryptomon_tui.kernel.units import iso_utc

    clock = FakeClock(start=FIXED_EPOCH)
    engine = FakeEngine(clock, location="tokyo", exchanges={
        "binance": "binance_spot", "bybit": "bybit", "okx": "okx", "deribit": "deribit"})
    engine.fail_exchange("okx")
    engine.set_probe("okx", "book", last_error_code="50011", last_error_message=HOSTILE)
    engine.set_exchange("okx", sparkline=[40.0, 55.0, 900.0, None, None, 2500.0])
    engine.set_exchange("bybit", status="banned", ban_until=iso_utc(FIXED_EPOCH + 312), rate_limit_used=1.0)
    engine.set_exchange("deribit", status="degraded", breaker={"state": "open",
                                                              "next_trial_at": iso_utc(FIXED_EPOCH + 103)},
                        p99_ms=812.0, error_rate=0.12, clock_offset_ms=-1234.5,
                        sparkline=[30.0, 35.0, 41.0, 120.0, 450.0, 812.0, 300.0, 44.0])
    engine.set_exchange("binance", sparkline=[38.0, 41.0, 40.0, 43.0, 39.0, 41.0, 42.0, 40.0, 39.0, 44.0],
                        rate_limit_used=0.42)
    engine.open_incident(rule="error_rate", exchange="okx", probe="book", severity=Severity.CRITICAL,
                         summary="okx book failing: " + HOSTILE)
    acked = engine.open_incident(rule="ip_banned", exchange="bybit", probe=None, severity=Severity.ERROR,
                                 summary="bybit banned our IP for 312 s")
    from cryptomon_tui.incidents.model import TimelineEntry

    engine.incidents[acked.id] = acked.with_changes(
        state=acked.state.ACKNOWLEDGED, acknowledged_by="alice@ops", ack_note="on it",
        timeline=(TimelineEntry(FIXED_EPOCH, "opened", "bybit answered -10006 (ip banned)"),
                  TimelineEntry(FIXED_EPOCH + 30, "acknowledged", "alice@ops: on it")))
    engine.open_incident(rule="latency_p99", exchange="deribit", probe="ticker", severity=Severity.WARNING,
                         summary="deribit p99 812 ms over 500 ms")
    clock.set(FIXED_EPOCH + 95)
    engine.notify[0].update(state="failing", queue=3, last_error="429 from discord")
    engine.changed()
    return engine.snapshot_dict()
