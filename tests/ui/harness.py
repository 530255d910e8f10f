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
