"""``cryptomon status [--json]``: a one-screen summary from the running daemon, for people, scripts and cron.

Exit codes: 0 everything ok; 1 an exchange is not ok or incidents are open; 2 config error;
3 no daemon running; 4 the daemon refused us (other version, wrong token), failed to answer, or speaks a
newer snapshot schema than this cryptomon reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from cryptomon_tui.cli.common import add_config_arg, add_demo_arg, load_attached
from cryptomon_tui.daemon.address import DaemonAddress, address_from_config
from cryptomon_tui.daemon.client import DaemonClient, DaemonError, NoDaemonRunning
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue, as_object
from cryptomon_tui.kernel.snapshot import IncidentView, Snapshot, schema_problem
from cryptomon_tui.kernel.units import format_ms, parse_iso_utc

_ms = format_ms  # the kernel's one millisecond formatter, under the short name the f-strings use

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_NO_DAEMON = 3
EXIT_DAEMON_ERROR = 4

SEVERITY_ORDER = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "status",
        help="one-screen summary from the running daemon (exit 0 ok, 1 problems, 3 no daemon)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--socket", metavar="PATH", help="daemon socket (default: from the config)")
    add_demo_arg(p)
    p.set_defaults(handler=run_status)


def _clean(text: object, width: int | None = None) -> str:
    """Exchange text verbatim but never terminal control sequences."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    if width is not None and len(s) > width:
        s = s[: width - 1] + "…"
    return s


def _pct(value: float | None) -> str:
    return f"{value * 100:.1f}%" if value is not None else "-"


def _age(iso: str | None, now: float) -> str:
    try:
        seconds = max(0.0, now - parse_iso_utc(str(iso)))
    except ValueError:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def open_incidents(snapshot: Snapshot) -> list[IncidentView]:
    """Open incidents, most severe first, then oldest first."""
    found = [i for i in snapshot.incidents if i.state != "resolved"]
    found.sort(key=lambda i: (SEVERITY_ORDER.get(i.severity, 9), str(i.started_at)))
    return found


def not_ok(snapshot: Snapshot) -> list[str]:
    return [name for name, ex in snapshot.exchanges.items() if ex.status not in ("ok", "paused")]


def summarize(snapshot: Snapshot, health: JsonObject) -> JsonObject:
    """The compact, stable shape printed by ``--json``."""
    exchanges: JsonObject = {
        name: {
            "status": ex.status,
            "p50_ms": ex.p50_ms,
            "p99_ms": ex.p99_ms,
            "error_rate": ex.error_rate,
            "rate_limit_used": ex.rate_limit_used,
            "clock_offset_ms": ex.clock_offset_ms,
            "breaker": ex.breaker.state,
            "ban_until": ex.ban_until,
        }
        for name, ex in snapshot.exchanges.items()
    }
    incidents: list[JsonValue] = [
        {"id": i.id, "severity": i.severity, "state": i.state, "exchange": i.exchange, "probe": i.probe,
         "rule": i.rule, "summary": i.summary, "started_at": i.started_at, "acknowledged_by": i.acknowledged_by,
         "silenced_until": i.silenced_until}
        for i in open_incidents(snapshot)
    ]
    bad_exchanges: list[JsonValue] = list(not_ok(snapshot))
    return {
        "ok": not bad_exchanges and not incidents,
        "location": snapshot.location,
        "version": snapshot.version,
        "ts": snapshot.ts,
        "exchanges": exchanges,
        "not_ok": bad_exchanges,
        "incidents": incidents,
        "silences": len(snapshot.silences),
        "notify": [
            {"channel": ch.channel, "state": ch.state, "queue": ch.queue, "dead_letters": ch.dead_letters}
            for ch in snapshot.notify
        ],
        "health": health,
    }


def render_text(snapshot: Snapshot, health: JsonObject, where: str, now: float) -> str:
    incidents = open_incidents(snapshot)
    ok = not not_ok(snapshot) and not incidents
    lines = [
        f"cryptomon {snapshot.version or '?'} @ {_clean(snapshot.location or '?')} — {where} — "
        f"{'OK' if ok else 'PROBLEMS'}",
        "",
        f"{'EXCHANGE':<18}{'STATUS':<13}{'P50':>8}{'P99':>9}{'ERR':>8}{'LIMIT':>7}{'CLOCK':>10}  BREAKER",
    ]
    for name, ex in snapshot.exchanges.items():
        status = ex.status or "?"
        if status == "banned" and ex.ban_until:
            status = f"banned {_age_until(ex.ban_until, now)}"
        offset = ex.clock_offset_ms
        clock = f"{offset:+.0f}ms" if offset is not None else "-"
        limit = _pct(ex.rate_limit_used)
        lines.append(
            f"{_clean(name, 17):<18}{_clean(status, 12):<13}{_ms(ex.p50_ms):>8}{_ms(ex.p99_ms):>9}"
            f"{_pct(ex.error_rate):>8}{limit:>7}{clock:>10}  {ex.breaker.state or '-'}"
        )
    silences = len(snapshot.silences)
    lines += ["", f"INCIDENTS: {len(incidents)} open" + (f", {silences} silences" if silences else "")]
    for inc in incidents[:12]:
        who = f" ack {_clean(inc.acknowledged_by, 20)}" if inc.acknowledged_by else ""
        muted = " silenced" if inc.silenced_until or inc.state == "silenced" else ""
        where_ = "/".join(x for x in (inc.exchange, inc.probe) if x) or "-"
        lines.append(
            f"  {inc.severity.upper():<9}{inc.state:<13}{_clean(where_, 22):<23}"
            f"{_age(inc.started_at, now):>6}  {_clean(inc.summary, 60)}{who}{muted}"
        )
    if len(incidents) > 12:
        lines.append(f"  … and {len(incidents) - 12} more (cryptomon status --json)")
    if snapshot.notify:
        parts = [
            f"{_clean(ch.channel, 20)} {ch.state}"
            + (f" (queue {ch.queue}, dead {ch.dead_letters})" if ch.queue or ch.dead_letters else "")
            for ch in snapshot.notify
        ]
        lines += ["", "NOTIFY: " + ", ".join(parts)]
    failing = [k for k in ("config_loaded", "store_writable", "probes_running") if health.get(k) is False]
    if failing:
        lines += ["", "NOT READY: " + ", ".join(failing)]
    return "\n".join(lines)


def _age_until(iso: str, now: float) -> str:
    try:
        seconds = max(0.0, parse_iso_utc(iso) - now)
    except ValueError:
        return ""
    return f"{seconds:.0f}s left" if seconds < 120 else f"{seconds / 60:.0f}m left"


async def fetch(address: DaemonAddress) -> tuple[Snapshot, JsonObject, str]:
    async with DaemonClient(address, reconnect=False, client_name="cryptomon-status") as client:
        snapshot = Snapshot.from_wire(await client.request("snapshot", wait_s=10.0))
        health = as_object(await client.request("health", wait_s=10.0)) or {}
        pid = client.welcome.pid if client.welcome else 0
    return snapshot, health, f"daemon pid {pid} on {address.describe()}"


def run_status(args: argparse.Namespace) -> int:
    config, _ = load_attached(args)
    address = address_from_config(config)
    if getattr(args, "socket", None):
        from pathlib import Path

        address = DaemonAddress(socket_path=Path(args.socket).expanduser())
    try:
        snapshot, health, where = asyncio.run(fetch(address))
    except NoDaemonRunning as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": "no_daemon", "message": str(exc)}))
        else:
            print(f"cryptomon: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    except DaemonError as exc:
        if args.json:
            print(json.dumps({"ok": False, "error": type(exc).__name__, "message": str(exc)}))
        else:
            print(f"cryptomon: {exc}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    if (problem := schema_problem(snapshot.schema)) is not None:  # a summary read from renamed keys would lie
        if args.json:
            print(json.dumps({"ok": False, "error": "schema", "message": problem}))
        else:
            print(f"cryptomon: {problem}", file=sys.stderr)
        return EXIT_DAEMON_ERROR
    summary = summarize(snapshot, health)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        print(render_text(snapshot, health, where, time.time()))
    return EXIT_OK if summary["ok"] else EXIT_PROBLEMS
