"""Acceptance (issue 3): one hard failure, one incident, resolved soon after the exchange recovers.

The real engine (``Engine``: probing, breakers, detection, incidents) probes the simulator at the demo's
pace (250 ms, 1 s timeout, breaker cooldown 2 s). A hang is the hardest hard failure for the breaker:
every half-open trial waits the full timeout. Seen in the outage acceptance run: our own breaker cycling
open -> half-open -> open during one hang must not read as a flapping rule that keeps the incident open
long after the exchange answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from cryptomon_tui.cli.daemon_cmd import demo_config
from cryptomon_tui.config import config_from_data
from cryptomon_tui.engine.engine import Engine
from cryptomon_tui.incidents.model import IncidentEvent
from cryptomon_tui.simulator import Simulator, scenario_from_data

pytestmark = pytest.mark.slow
HANG_START_S = 2.0
HANG_S = 10.0
RECOVERY_BUDGET_S = 12.0  # breaker cooldown after the last failed trial (<= 8 s here) + a few evaluations


@pytest.mark.timeout(60)
async def test_a_hang_opens_one_incident_and_resolves_after_the_exchange_answers_again() -> None:
    scenario = scenario_from_data(
        {
            "name": "one-hang",
            "faults": [{"exchange": "bybit", "type": "hang", "start": f"{HANG_START_S}s",
                        "duration": f"{HANG_S}s"}],
        }
    )
    sim = Simulator(scenario, exchanges=["bybit"])
    await sim.start()
    events: list[dict[str, Any]] = []
    monitor: Engine | None = None
    rules: Any = None
    try:
        t0 = time.time() - sim.elapsed()
        config = demo_config(config_from_data({"exchanges": {"bybit": {"probes": ["time", "ticker"]}}}), sim.base_urls)
        monitor = Engine(config, use_store=False, notify=False)

        resolved_seen = asyncio.Event()

        def sink(event: IncidentEvent) -> None:
            d = event.to_json_dict()
            d["t"] = round(event.ts - t0, 2)
            events.append(d)
            if d["event"] == "resolved":
                resolved_seen.set()

        monitor.add_event_sink(sink)
        await monitor.start()
        deadline = HANG_START_S + HANG_S + RECOVERY_BUDGET_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resolved_seen.wait(), max(0.0, deadline - sim.elapsed()))
    finally:
        if monitor is not None:
            rules = monitor.pipeline.snapshot().get("rules")  # rule states, for the failure message
            await monitor.stop()
        await sim.stop()

    timeline = [(e["t"], e["event"], e["incident"]["id"], e["incident"]["rule"], e.get("detail")) for e in events]
    print("timeline:", *timeline, "rule states at the end:", *(rules or []), sep="\n  ")
    opened = [e for e in events if e["event"] == "opened"]
    assert len(opened) == 1, timeline
    assert opened[0]["incident"]["exchange"] == "bybit"
    assert opened[0]["incident"]["rule"] in ("timeouts", "consecutive_failures", "circuit_open"), timeline
    assert opened[0]["t"] - HANG_START_S <= 1.0 + 3 * 0.25 + 0.5, timeline  # timeout + 3 intervals (+ t0 slack)
    resolved = [e for e in events if e["event"] == "resolved"]
    assert [e["incident"]["id"] for e in resolved] == [opened[0]["incident"]["id"]], (
        f"not resolved within {RECOVERY_BUDGET_S:g}s after the hang ended", timeline, rules,
    )
    assert not [e for e in events if e["event"] in ("reopened", "flapping")], timeline
