"""Notification benchmark (``make bench-notify``), against the local service sink and the real SQLite store.

1. Latency: incident opened -> request received by the sink, through ``on_event``, the committed outbox
   row, the dispatcher and HTTP. ``group_wait`` and ``group_interval`` are set to 0 for this measurement
   (with the defaults a notice waits for its group on purpose). Real clock.
2. Storm: 1,000 incidents opening over 10 s on 5 exchanges, six channels at their documented limits with
   the default grouping (group_wait 10 s, group_interval 1 m). Simulated clock (the rate limits and group
   timers run on it; HTTP and SQLite are real), so 15 minutes of storm take seconds. Reports per channel:
   messages, digests, the busiest 60 s and 1 s windows against the service's limit, and whether every
   incident reached the channel (outbox rows all sent; for the webhook, every idempotency key processed).

3. Outage: 1,000 incidents open over 10 s while three channels (slack, discord, webhook) answer 5xx for
   5 minutes; half of the incidents resolve during the outage (after group_wait, so their firings were
   due). Then the channels come back: every due firing and every resolve must be delivered, in order
   per incident and channel, within each service's limit; reports the time to drain after the outage.

``--append-results`` appends the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptomon_tui.clock import FakeClock, RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.incidents.model import EventType, IncidentEvent, IncidentState
from cryptomon_tui.notify.notifier import Notifier
from cryptomon_tui.notify.store_outbox import StoreOutbox
from cryptomon_tui.notify.worker import demo_incident
from cryptomon_tui.store.store import Store
from tests.fakes.webhook_sink import Reply, WebhookSink

EXCHANGES = ("binance", "bybit", "okx", "deribit", "binance_futures")
LIMITS = {  # the limit each channel must stay within: (max in any 60 s, max in any 1 s, as documented)
    "slack": (60, 1, "~1/s per webhook"),
    "discord": (30, 5, "30/min per webhook (conservative; live limits come in headers)"),
    "wecom": (20, 20, "20/min per robot"),
    "telegram": (20, 1, "1/s per chat, 20/min per group"),
    "pagerduty": (120, 120, "~120/min per routing key"),
    "webhook": (610, 20, "own default: 10/s, bursts of 10"),
}


def _channels(sink: WebhookSink) -> dict[str, Any]:
    return {
        "slack": {"type": "slack", "url": sink.url("slack", "/T0/B0/x")},
        "discord": {"type": "discord", "url": sink.url("discord", "/1/x")},
        "wecom": {"type": "wecom", "url": sink.url("wecom", "/send?key=x")},
        "telegram": {"type": "telegram", "token": "1:x", "chat_id": "-100", "api_url": sink.url("telegram")},
        "pagerduty": {"type": "pagerduty", "routing_key": "x" * 32, "url": sink.url("pagerduty", "/v2/enqueue")},
        "webhook": {"type": "webhook", "url": sink.url("webhook", "/in"), "secret": "s"},
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def bench_latency(n: int, tmp: Path) -> dict[str, Any]:
    sink = WebhookSink()
    await sink.start()
    cfg = config_from_data(
        {
            "exchanges": {},
            "notify": {
                "channels": {"webhook": _channels(sink)["webhook"] | {"rate_limit": "1000/s"}},
                "routes": [{"channels": ["webhook"], "group_wait": 0, "group_interval": 0}],
            },
        }
    )
    clock = RealClock()
    store = Store(cfg.storage, clock, path=tmp / "latency.sqlite3")
    await store.open()
    notifier = Notifier(cfg, StoreOutbox(store), clock)
    await notifier.start()
    latencies: list[float] = []
    on_event_ms: list[float] = []
    try:
        for i in range(n):
            inc = demo_incident(i, clock.now(), EXCHANGES[i % len(EXCHANGES)])
            seen = len(sink.requests)
            sink.arrived.clear()
            t0 = time.perf_counter()
            await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
            on_event_ms.append((time.perf_counter() - t0) * 1000)
            while len(sink.requests) <= seen:
                await asyncio.wait_for(sink.arrived.wait(), 10)
                sink.arrived.clear()
            latencies.append((time.perf_counter() - t0) * 1000)
            body = sink.requests[-1].json()
            assert body["notice"]["incident"]["id"] == inc.id
    finally:
        await notifier.stop()
        await store.close()
        await sink.stop()
    return {
        "n": n,
        "p50_ms": round(statistics.median(latencies), 2),
        "p90_ms": round(_pct(latencies, 0.9), 2),
        "p99_ms": round(_pct(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "on_event_p50_ms": round(statistics.median(on_event_ms), 2),
        "on_event_p99_ms": round(_pct(on_event_ms, 0.99), 2),
    }


def _max_in_window(times: list[float], window: float) -> int:
    """Most messages inside any half-open window of ``window`` seconds (1 ms slack for float rounding of
    the simulated clock: two sends 0.999999999 s apart are one second apart)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window + 0.001:
            j += 1
        best = max(best, i - j + 1)
    return best


async def bench_storm(incidents: int, over_s: float, simulate_s: float, tmp: Path) -> dict[str, Any]:
    clock = FakeClock(1_800_000_000.0)
    sink = WebhookSink(clock.now)  # arrival stamped in simulated time
    await sink.start()
    channels = _channels(sink)
    cfg = config_from_data(
        {"exchanges": {}, "notify": {"channels": channels, "routes": [{"channels": list(channels)}]}}
    )
    store = Store(cfg.storage, clock, path=tmp / "storm.sqlite3")
    await store.open(background=False)
    outbox = StoreOutbox(store)
    notifier = Notifier(cfg, outbox, clock)
    await notifier.start()
    step = 0.1
    t_start = clock.now()
    wall0 = time.perf_counter()
    opened = 0
    try:
        while clock.now() - t_start < simulate_s:
            due = min(incidents, int((clock.now() - t_start) / over_s * incidents) + 1)
            while opened < due:
                inc = demo_incident(opened, clock.now(), EXCHANGES[opened % len(EXCHANGES)])
                await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
                opened += 1
            await clock.advance(step)
            await asyncio.sleep(0.001)  # let HTTP and SQLite threads progress between simulated steps
            while notifier.inflight:  # noqa: ASYNC110 - simulated time stands still while a request is on the wire
                await asyncio.sleep(0.0005)
            if opened == incidents and clock.now() - t_start > over_s + 15:
                stats = await outbox.outbox_stats()
                if all(stats[c].queued + stats[c].sending == 0 for c in channels):
                    break
        stats = await outbox.outbox_stats()
    finally:
        await notifier.stop()
        await store.close()
        await sink.stop()
    per_channel = {}
    for name in channels:
        times = sorted(r.at for r in sink.of(name))
        digests = 0
        for req in sink.of(name):
            text = req.body.decode("utf-8", "replace")
            digests += "incidents on" in text
        per_min, per_s, doc = LIMITS[name]
        span = (times[-1] - times[0]) if len(times) > 1 else 0.0
        per_channel[name] = {
            "messages": len(times),
            "digests": digests,
            "max_per_60s": _max_in_window(times, 60.0),
            "max_per_1s": _max_in_window(times, 1.0),
            "limit": doc,
            "within_limit": _max_in_window(times, 60.0) <= per_min and _max_in_window(times, 1.0) <= per_s,
            "delivered_rows": stats[name].sent,
            "all_delivered": stats[name].sent == incidents and stats[name].queued == 0 and stats[name].dead == 0,
            "last_message_after_s": round(times[-1] - t_start, 1) if times else None,
            "span_s": round(span, 1),
        }
    per_channel["webhook"]["keys_processed_once"] = len(sink.processed) == incidents == len(set(sink.processed))
    return {
        "incidents": incidents,
        "over_s": over_s,
        "simulated_s": round(clock.now() - t_start, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "channels": per_channel,
    }


DOWN = ("slack", "discord", "webhook")


async def bench_outage(incidents: int, over_s: float, down_s: float, simulate_s: float, tmp: Path) -> dict[str, Any]:
    """Three channels down for ``down_s`` while a storm opens and half of it resolves; then up."""
    import sqlite3

    clock = FakeClock(1_800_000_000.0)
    sink = WebhookSink(clock.now)
    await sink.start()
    channels = _channels(sink)
    cfg = config_from_data(
        {
            "exchanges": {},
            "notify": {"channels": channels, "routes": [{"channels": list(channels)}], "max_attempts": 10_000},
        }
    )
    db = tmp / "outage.sqlite3"
    store = Store(cfg.storage, clock, path=db)
    await store.open(background=False)
    outbox = StoreOutbox(store)
    notifier = Notifier(cfg, outbox, clock)
    await notifier.start()
    for name in DOWN:
        sink.fail(name, Reply(503, "down"))
    t_start = clock.now()
    wall0 = time.perf_counter()
    opened, resolved, up_at, drained_at = 0, False, None, {}
    live: list[Any] = []
    try:
        while clock.now() - t_start < simulate_s:
            due = min(incidents, int((clock.now() - t_start) / over_s * incidents) + 1)
            while opened < due:
                inc = demo_incident(opened, clock.now(), EXCHANGES[opened % len(EXCHANGES)])
                live.append(inc)
                await notifier.on_event(IncidentEvent(clock.now(), EventType.OPENED, inc))
                opened += 1
            if not resolved and clock.now() - t_start >= over_s + 60:
                resolved = True  # every second incident ends while the three channels are still down
                for inc in live[::2]:
                    gone = inc.with_changes(state=IncidentState.RESOLVED, resolved_at=clock.now())
                    await notifier.on_event(IncidentEvent(clock.now(), EventType.RESOLVED, gone))
            if up_at is None and clock.now() - t_start >= down_s:
                up_at = clock.now()
                for name in DOWN:
                    sink.fail(name, None)
            await clock.advance(0.1)
            # simulated time stands still until every worker has done what is due and sleeps again
            for _ in range(20_000):
                if not notifier.busy:
                    break
                await asyncio.sleep(0.0005)
            if up_at is not None and int((clock.now() - t_start) * 10) % 50 == 0:
                stats = await outbox.outbox_stats()
                for name in channels:
                    if name not in drained_at and stats[name].queued + stats[name].sending == 0:
                        drained_at[name] = clock.now()
                if len(drained_at) == len(channels):
                    break
        stats = await outbox.outbox_stats()
    finally:
        await notifier.stop()
        await store.close()
        await sink.stop()
    expect = incidents + len(live[::2])  # a firing per incident, a resolve per resolved one
    per_channel: dict[str, Any] = {}
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT channel, incident_id, event, state, sent_at FROM outbox ORDER BY channel, incident_id, id"
        ).fetchall()
    order_ok: dict[str, bool] = dict.fromkeys(channels, True)
    last: dict[tuple[str, str], tuple[str, float]] = {}
    for ch, inc_id, event, state, sent_at in rows:
        prev = last.get((ch, inc_id))
        if state != "sent" or (prev is not None and (prev[0] == "resolved" or float(sent_at) < prev[1])):
            order_ok[ch] = False
        last[(ch, inc_id)] = (event, float(sent_at or 0.0))
    hook_order = True  # the webhook sink's own arrival order: a resolve never arrives before its firing
    seen_firing: set[str] = set()
    for req in sink.of("webhook", 200):
        notice = req.json()["notice"]
        if notice["kind"] == "firing":
            seen_firing.add(notice["incident"]["id"])
        elif notice["kind"] == "resolved" and notice["incident"]["id"] not in seen_firing:
            hook_order = False
    for name in channels:
        times = sorted(r.at for r in sink.of(name) if r.status in (200, 202, 204))
        per_min, per_s, doc = LIMITS[name]
        per_channel[name] = {
            "down": name in DOWN,
            "messages": len(times),
            "max_per_60s": _max_in_window(times, 60.0),
            "max_per_1s": _max_in_window(times, 1.0),
            "limit": doc,
            "within_limit": _max_in_window(times, 60.0) <= per_min and _max_in_window(times, 1.0) <= per_s,
            "rows_sent": stats[name].sent,
            "all_delivered": stats[name].sent == expect and stats[name].queued == 0 and stats[name].dead == 0,
            "in_order": order_ok[name] and (hook_order if name == "webhook" else True),
            "drain_after_up_s": round(drained_at[name] - up_at, 1) if up_at and name in drained_at else None,
        }
    return {
        "incidents": incidents,
        "resolved_while_down": len(live[::2]),
        "expected_rows": expect,
        "down_s": down_s,
        "simulated_s": round(clock.now() - t_start, 1),
        "wall_s": round(time.perf_counter() - wall0, 1),
        "channels": per_channel,
    }


def markdown_outage(out: dict[str, Any], command: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"**Outage (issue 12): {out['incidents']} incidents while {', '.join(DOWN)} answer 503 for "
        f"{out['down_s']:g} s**, {out['resolved_while_down']} of them resolving during the outage (after group_wait: "
        f"their firings were due). Run {now} with `{command}`; simulated clock ({out['simulated_s']} s simulated in "
        f"{out['wall_s']} s wall; HTTP and SQLite real). Expected per channel: {out['expected_rows']} rows "
        "(a firing per incident, then a resolve per resolved one), in order per incident.",
        "",
        "| channel | down | messages | rows sent | busiest 60 s | busiest 1 s | limit | within | in order | "
        "drained after up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in out["channels"].items():
        lines.append(
            f"| {name} | {'yes' if c['down'] else 'no'} | {c['messages']} | {c['rows_sent']}/{out['expected_rows']} | "
            f"{c['max_per_60s']} | {c['max_per_1s']} | {c['limit']} | {'yes' if c['within_limit'] else 'NO'} | "
            f"{'yes' if c['in_order'] else 'NO'} | "
            f"{'-' if c['drain_after_up_s'] is None else str(c['drain_after_up_s']) + ' s'} |"
        )
    lines.append("")
    return "\n".join(lines)


def markdown(lat: dict[str, Any], storm: dict[str, Any], command: str) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Notifications (bench/bench_notify.py)",
        "",
        f"Run {now} with `{command}` on {platform.node()} ({platform.machine()}, Python {platform.python_version()}).",
        "",
        "**Incident opened -> delivered to a local sink** (on_event -> committed SQLite outbox row -> dispatcher -> "
        f"HTTP webhook on 127.0.0.1; **group_wait = group_interval = 0 for this measurement**; {lat['n']} incidents, "
        "real clock):",
        "",
        "| p50 | p90 | p99 | max | target |",
        "|---|---|---|---|---|",
        f"| {lat['p50_ms']} ms | {lat['p90_ms']} ms | {lat['p99_ms']} ms | {lat['max_ms']} ms | p99 <= 1000 ms: "
        f"{'met' if lat['p99_ms'] <= 1000 else 'NOT met'} |",
        "",
        f"Time the engine loop spends in `on_event` (routing + one committed SQLite write): p50 "
        f"{lat['on_event_p50_ms']} ms, p99 {lat['on_event_p99_ms']} ms.",
        "",
        f"**Storm: {storm['incidents']} incidents opening over {storm['over_s']:g} s** on 5 exchanges, six channels, "
        "default grouping (group_wait 10 s, group_interval 1 m, digest threshold 5), documented rate limits. "
        f"Simulated clock ({storm['simulated_s']} s simulated in {storm['wall_s']} s wall; HTTP and SQLite real).",
        "",
        "| channel | messages | digests | busiest 60 s | busiest 1 s | limit | within | all delivered |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, c in storm["channels"].items():
        lines.append(
            f"| {name} | {c['messages']} | {c['digests']} | {c['max_per_60s']} | {c['max_per_1s']} | {c['limit']} | "
            f"{'yes' if c['within_limit'] else 'NO'} | {'yes' if c['all_delivered'] else 'NO'} "
            f"({c['delivered_rows']}/{storm['incidents']} rows) |"
        )
    webhook = storm["channels"]["webhook"]
    lines += [
        "",
        f"Webhook receiver processed every idempotency key exactly once: {webhook['keys_processed_once']}. "
        "PagerDuty and Alertmanager never get digests (each incident is its own alert, dedup_key = fingerprint); "
        f"PagerDuty's 1,000 triggers are paced at its 120/min limit, so the last one leaves after "
        f"{storm['channels']['pagerduty']['last_message_after_s']} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_notify", description=__doc__)
    p.add_argument("--latency-n", type=int, default=300)
    p.add_argument("--incidents", type=int, default=1000)
    p.add_argument("--over", type=float, default=10.0, help="seconds over which the storm opens")
    p.add_argument("--simulate", type=float, default=1200.0, help="simulated seconds at most")
    p.add_argument("--down", type=float, default=300.0, help="outage: seconds the three channels are down")
    p.add_argument("--only-outage", action="store_true", help="run the outage scenario only")
    p.add_argument("--append-results", action="store_true", help="append the markdown to bench/RESULTS.md")
    args = p.parse_args(argv)

    async def run() -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any]]:
        with tempfile.TemporaryDirectory() as tmp:
            lat = storm = None
            if not args.only_outage:
                lat = await bench_latency(args.latency_n, Path(tmp))
                storm = await bench_storm(args.incidents, args.over, args.simulate, Path(tmp))
            outage = await bench_outage(args.incidents, args.over, args.down, args.simulate + args.down, Path(tmp))
        return lat, storm, outage

    lat, storm, outage = asyncio.run(run())
    print(json.dumps({"latency": lat, "storm": storm, "outage": outage}, indent=2))
    command = (
        "make bench-notify"
        if not argv and len(sys.argv) <= 1
        else "python -m bench.bench_notify " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    md = markdown(lat, storm, command) if lat is not None and storm is not None else ""
    md += markdown_outage(outage, command)
    print(md)
    if args.append_results:
        results = Path(__file__).with_name("RESULTS.md")
        prefix = "" if results.exists() else "# Benchmark results\n\n"
        with results.open("a", encoding="utf-8") as fh:
            fh.write(prefix + md + "\n")
    ok = all(c["within_limit"] and c["all_delivered"] and c["in_order"] for c in outage["channels"].values())
    if lat is not None and storm is not None:
        ok = ok and lat["p99_ms"] <= 1000
        ok = ok and all(c["within_limit"] and c["all_delivered"] for c in storm["channels"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
