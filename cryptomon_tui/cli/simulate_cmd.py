"""``cryptomon simulate``: fake exchange APIs on loopback ports, serving a fault scenario."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptomon_tui.kernel.units import format_duration

if TYPE_CHECKING:
    from cryptomon_tui.simulator import ExpectedFault, Scenario, Simulator


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "simulate",
        help="serve fake Binance/Bybit/OKX/Deribit APIs on loopback with scripted faults",
        description=(
            "Serve fake Binance spot (port-base+0), Binance USD-M futures (+1), Bybit v5 (+2), OKX v5 (+3) and "
            "Deribit v2 (+4) REST APIs on loopback, replaying a fault scenario. Point cryptomon at the printed "
            "base URLs (exchanges.<name>.base_url) or use `cryptomon daemon --demo`."
        ),
    )
    p.add_argument("--scenario", "-s", default="calm", metavar="NAME|FILE", help="built-in name or YAML file")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port-base", type=int, default=18400, metavar="N", help="first port (default 18400; 0 = any)")
    p.add_argument("--skew-ms", type=float, default=0.0, help="offset added to every server time (ms)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the scenario's)")
    p.add_argument("--no-limits", action="store_true", help="do not enforce the exchanges' own rate limits")
    p.add_argument(
        "--no-spin",
        action="store_true",
        help="time added latency with plain timers (up to ~1 ms late) instead of spinning the last 1.5 ms; "
        "saves CPU when many delayed answers are in flight",
    )
    p.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    p.add_argument("--timeline", action="store_true", help="print the scenario's faults and expected outcomes")
    p.add_argument(
        "--config-snippet",
        action="store_true",
        help="print an exchanges: section pointing cryptomon at this simulator (paste into the config file)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="do not print fault start/end events")
    p.add_argument(
        "--score",
        metavar="JSONL|-",
        help="do not serve: score probe results (cryptomon daemon --probes-jsonl) against the scenario's "
        "ground truth; exit 0 when every fault was seen and nothing else failed",
    )
    p.set_defaults(handler=cmd_simulate)


def _print_list() -> int:
    from cryptomon_tui.simulator import builtin_scenarios, load_scenario

    for name in builtin_scenarios():
        scenario = load_scenario(name)
        cycle = format_duration(scenario.duration) if scenario.duration else "open-ended"
        loop = ", loops" if scenario.loop else ""
        print(f"{name:18} {cycle}{loop}: {scenario.description}")
    return 0


def _print_timeline(expected: list[ExpectedFault]) -> None:
    for item in expected:
        probes = "all probes" if item.probes is None else ",".join(sorted(item.probes))
        end = "   end" if item.end == float("inf") else f"{item.end:6.2f}s"
        print(f"  {item.start:6.2f}s .. {end}  {item.exchange:16} {item.type:12} -> {item.outcome.value} ({probes})")


def _score(scenario: Scenario, source: str) -> int:
    import json

    from cryptomon_tui.kernel.units import parse_iso_utc
    from cryptomon_tui.simulator.truth import score

    try:
        stream = sys.stdin if source == "-" else open(source, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        print(f"cryptomon: --score: {exc}", file=sys.stderr)
        return 2
    rows = []
    with stream:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if isinstance(row, dict) and row.get("kind") == "stream":
                    continue  # stream verdicts ride in the same file; the REST truth scores probes
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                missing = [k for k in ("exchange", "probe", "outcome") if not isinstance(row.get(k), str)]
                if missing:
                    raise ValueError(f"no text field {', '.join(missing)}")
                row["_t"] = parse_iso_utc(row["ts"])
            except (ValueError, KeyError, TypeError) as exc:
                print(f"cryptomon: --score: line {n}: not a probe result ({exc})", file=sys.stderr)
                return 2
            rows.append(row)
    if not rows:
        print("cryptomon: --score: no probe results", file=sys.stderr)
        return 2
    t0 = min(r["_t"] for r in rows)  # the simulator started just before the first probe
    horizon = max(r["_t"] for r in rows) - t0
    result = score(rows, scenario.expected(horizon), t0)
    print(result.summary())
    return 0 if result.passed else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.list:
        return _print_list()
    from cryptomon_tui.simulator import ScenarioError, Simulator, load_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if args.score:
        return _score(scenario, args.score)
    if args.port_base < 0 or args.port_base > 65535 - 4:
        print("cryptomon: --port-base must be between 0 and 65531", file=sys.stderr)
        return 2

    def event(text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
        print(f"{stamp} {text}", flush=True)

    sim = Simulator(
        scenario,
        host=args.host,
        port_base=args.port_base,
        skew_ms=args.skew_ms,
        seed=args.seed,
        enforce_limits=not args.no_limits,
        precise=not args.no_spin,
        on_event=None if args.quiet else event,
    )
    try:
        return asyncio.run(_serve(sim, args))
    except KeyboardInterrupt:
        return 0


async def _serve(sim: Simulator, args: argparse.Namespace) -> int:
    try:
        await sim.start()
    except OSError as exc:
        print(f"cryptomon: cannot listen on {args.host} (port base {args.port_base}): {exc}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    scenario = sim.scenario
    cycle = format_duration(scenario.duration) if scenario.duration else "open-ended"
    for name, url in sim.base_urls.items():
        print(f"{name:16} {url}")
    if args.config_snippet:
        print("# cryptomon config: watch this simulator")
        print("exchanges:")
        for name, url in sim.base_urls.items():
            print(f"  {name}:\n    base_url: {url}")
    if args.timeline:
        print(f"scenario {scenario.name} ({cycle}{', loops' if scenario.loop else ''}):")
        _print_timeline(sim.expected())
    print(
        f"ready: scenario {scenario.name} ({len(scenario.faults)} faults, {cycle}"
        f"{', loops' if scenario.loop else ''}); Ctrl-C to stop",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return 0
