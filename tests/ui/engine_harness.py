"""The real engine (``Engine``) on the simulator, served over a Unix socket in tmp: what
``cryptomon demo`` runs, in-process so Pilot tests start in well under a second."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptomon_tui.cli.daemon_cmd import demo_config
from cryptomon_tui.config import config_from_data
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.simulator import Simulator, scenario_from_data
from tests.ui.harness import HOSTILE, Served, serve

# binance answers 500s with hostile error text from the start (an incident within ~2 s of 250 ms
# probes); okx stays healthy so pause/resume has a calm target.
UI_SCENARIO: dict[str, Any] = {
    "name": "ui-test",
    "description": "binance failing with hostile error text from t=0",
    "duration": "10m",
    "loop": False,
    "seed": 7,
    "faults": [
        {"exchange": "binance", "type": "errors", "start": "0s", "duration": "10m", "status": 500,
         "code": -1001, "message": HOSTILE},
    ],
}


@asynccontextmanager
async def served_monitor(scenario: dict[str, Any] | None = None, **config_data: Any) -> AsyncIterator[Served]:
    tmp = Path(tempfile.mkdtemp(prefix="cmui-", dir="/tmp"))
    sim = Simulator(scenario_from_data(scenario or UI_SCENARIO))
    await sim.start()
    monitor = None
    try:
        base = config_from_data({
            "daemon": {"control": {"socket_path": str(tmp / "run" / "c.sock")}, "http": {"port": 0}},
            "exchanges": {
                "binance": {"kind": "binance_spot"},
                "okx": {"kind": "okx"},
            },
            **config_data,
        })
        config = demo_config(base, sim.base_urls)
        config.daemon.control.socket_path = tmp / "run" / "c.sock"  # short: AF_UNIX paths are limited
        monitor = Engine(config, use_store=False, notify=False)
        await monitor.start()
        async with serve(monitor, config) as served:
            yield served
    finally:
        if monitor is not None:
            await monitor.stop()
        await sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)
