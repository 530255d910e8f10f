"""Fake Binance/Bybit/OKX/Deribit REST APIs on loopback with scripted faults (YAML scenarios).

Used by ``cryptomon simulate``, ``cryptomon daemon --demo``, the tests and the benchmarks::

    sim = Simulator("outage")            # or a Scenario, a YAML path, or None (healthy)
    await sim.start()
    sim.base_urls["binance"]             # http://127.0.0.1:PORT
    sim.expected()                       # ground truth: which outcome each fault should produce
    await sim.stop()

See ``scenario.py`` (schema) and docs/simulator.md.
"""

from cryptomon_tui.simulator.scenario import (
    EXCHANGES,
    FAULT_TYPES,
    PORT_OFFSETS,
    ExpectedFault,
    FaultBase,
    LatencyDist,
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    make_fault,
    scenario_from_data,
)
from cryptomon_tui.simulator.server import Simulator

__all__ = [
    "EXCHANGES",
    "FAULT_TYPES",
    "PORT_OFFSETS",
    "ExpectedFault",
    "FaultBase",
    "LatencyDist",
    "Scenario",
    "ScenarioError",
    "Simulator",
    "builtin_scenarios",
    "load_scenario",
    "make_fault",
    "scenario_from_data",
]
