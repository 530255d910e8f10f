"""Run the notifier on the real store outside the daemon: ``python -m cryptomon_tui.notify.worker``.

Used by the kill test (``tests/integration/test_notify_kill.py``; ``--demo-incidents N`` opens N synthetic
incidents) and to drain a queue left by a stopped daemon (``--until-idle``). The engine builds the same
notifier itself: ``Notifier(config, StoreOutbox(store), clock, ...)``, which is ``notifier_for_store``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from cryptomon_tui.clock import Clock, RealClock
from cryptomon_tui.config import Config, ConfigError, load_config
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent, IncidentState
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.notify.notifier import ChannelCallback, Notifier
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.store.store import Store


def notifier_for_store(
    config: Config,
    store: Store,
    clock: Clock,
    on_channel_broken: ChannelCallback | None = None,
    on_channel_recovered: ChannelCallback | None = None,
) -> Notifier:
    """The notifier on the SQLite outbox: what the daemon starts next to the engine."""
    return Notifier(config, StoreOutbox(store), clock, on_channel_broken, on_channel_recovered)


def demo_incident(n: int, now: float, exchange: str = "binance") -> Incident:
    labels: dict[str, str] = {"exchange": exchange, "probe": "ping", "n": str(n)}
    fp_labels: dict[str, str | None] = dict(labels)
    return Incident(
        id=f"demo-{n}",
        fingerprint=fingerprint("endpoint_down", fp_labels),
        rule="endpoint_down",
        severity=Severity.ERROR,
        exchange=exchange,
        probe="ping",
        state=IncidentState.FIRING,
        summary=f"{exchange} ping failing (demo {n})",
        started_at=now,
        updated_at=now,
        labels=labels,
    )


async def run(config: Config, db: Path | None, demo: int, until_idle: bool, status_every: float) -> int:
    clock = RealClock()
    store = Store(config.storage, clock, path=db)
    if not await store.open():
        print(f"cannot open the store at {store.path}: {store.health().last_error}", file=sys.stderr)
        return 1
    notifier = notifier_for_store(config, store, clock)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await notifier.start()
    try:
        for n in range(demo):
            inc = demo_incident(n, clock.now())
            await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
        print(json.dumps({"enqueued": demo}), flush=True)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=status_every)
            await notifier.refresh_stats()
            status = notifier.status()
            print(json.dumps({"status": [s.to_json() for s in status]}), flush=True)
            if until_idle and all(s.queued == 0 for s in status):
                break
    finally:
        await notifier.stop()
        await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cryptomon_tui.notify.worker", description=__doc__)
    p.add_argument("--config", "-c", help="config file")
    p.add_argument("--db", help="SQLite file (default: storage.path or the data folder)")
    p.add_argument("--demo-incidents", type=int, default=0, help="open N synthetic incidents (tests, benchmarks)")
    p.add_argument("--until-idle", action="store_true", help="exit once every channel's queue is empty")
    p.add_argument("--status-every", type=float, default=0.5, help="seconds between JSON status lines")
    args = p.parse_args(argv)
    try:
        config, _ = load_config(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    return asyncio.run(
        run(config, Path(args.db) if args.db else None, args.demo_incidents, args.until_idle, args.status_every)
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
