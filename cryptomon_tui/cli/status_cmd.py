"""``cryptomon status [--json]``: a one-screen summary from the running daemon, for people, scripts and cron.

Exit codes: 0 everything ok; 1 an exchange is not ok or incidents are open; 2 config error;
3 no daemon running; 4 the daemon refused us (other version, wrong token) or failed to answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from cryptomon_tui.cli.common import add_config_arg, add_demo_arg, load_attached
from cryptomon_tui.daemon.address import DaemonAddress, address_from_config
from cryptomon_tui.daemon.client import DaemonClient, DaemonError, NoDaemonRunning
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
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


def _clean(text: Any, width: int | None = None) -> str:
    """Exchange text verbatim but never terminal control sequences."""
    s = "".join(ch if ch.isprintable() else " " for ch in str(text))
    if width is not None and len(s) > width:
        s = s[: width - 1] + "…"
    return s


def _pct(value: Any) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "-"


def _age(iso: Any, now: float) -> str:
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


def summarize(snapshot: dict[str, Any], health: dict[str, Any]) -> dict[str, Any]:
    """The compact, stable shape printed by ``--json``."""
    exchanges = {
        name: {
            "status": ex.get("status"),
            "p50_ms": ex.get("p50_ms"),
            "p99_ms": ex.get("p99_ms"),
            "error_rate": ex.get("error_rate"),
            "rate_limit_used": ex.get("rate_limit_used"),
            "clock_offset_ms": ex.get("clock_offset_ms"),
            "breaker": (ex.get("breaker") or {}).get("state"),
            "ban_until": ex.get("ban_until"),
        }
        for name, ex in (snapshot.get("exchanges") or {}).items()
    }
    open_incidents = [i for i in snapshot.get("incidents") or [] if i.get("state") != "resolved"]
    open_incidents.sort(key=lambda i: (SEVERITY_ORDER.get(i.get("severity", ""), 9), str(i.get("started_at"))))
    incidents = [
        {k: i.get(k) for k in ("id", "severity", "state", "exchange", "probe", "rule", "summary", "started_at",
                               "acknowledged_by", "silenced_until")}
        for i in open_incidents
    ]
    bad_exchanges = [n for n, e in exchanges.items() if e["status"] not in ("ok", "paused")]
    ok = not bad_exchanges and not incidents
    return {
        "ok": ok,
        "location": snapshot.get("location"),
        "version": snapshot.get("version"),
        "ts": snapshot.get("ts"),
        "exchanges": exchanges,
        "not_ok": bad_exchanges,
        "incidents": incidents,
        "silences": len(snapshot.get("silences") or []),
        "notify": [
            {k: ch.get(k) for k in ("channel", "state", "queue", "dead_letters")} for ch in snapshot.get("notify") or []
        ],
        "health": health,
    }


def render_text(summary: dict[str, Any], where: str, now: float) -> str:
    lines = [
        f"cryptomon {summary.get('version') or '?'} @ {_clean(summary.get('location') or '?')} — {where} — "
        f"{'OK' if summary['ok'] else 'PROBLEMS'}",
        "",
        f"{'EXCHANGE':<18}{'STATUS':<13}{'P50':>8}{'P99':>9}{'ERR':>8}{'LIMIT':>7}{'CLOCK':>10}  BREAKER",
    ]
    for name, ex in summary["exchanges"].items():
        status = str(ex.get("status") or "?")
        if status == "banned" and ex.get("ban_until"):
            status = f"banned {_age_until(ex['ban_until'], now)}"
        offset = ex.get("clock_offset_ms")
        clock = f"{offset:+.0f}ms" if isinstance(offset, int | float) else "-"
        limit = _pct(ex.get("rate_limit_used")) if ex.get("rate_limit_used") is not None else "-"
        lines.append(
            f"{_clean(name, 17):<18}{_clean(status, 12):<13}{_ms(ex.get('p50_ms')):>8}{_ms(ex.get('p99_ms')):>9}"
            f"{_pct(ex.get('error_rate')):>8}{limit:>7}{clock:>10}  {ex.get('breaker') or '-'}"
        )
    incidents = summary["incidents"]
    lines += ["", f"INCIDENTS: {len(incidents)} open" + (f", {summary['silences']} silences" if summary["silences"]
                                                         else "")]
    for inc in incidents[:12]:
        who = f" ack {_clean(inc['acknowledged_by'], 20)}" if inc.get("acknowledged_by") else ""
        muted = " silenced" if inc.get("silenced_until") or inc.get("state") == "silenced" else ""
        where_ = "/".join(str(x) for x in (inc.get("exchange"), inc.get("probe")) if x) or "-"
        lines.append(
            f"  {str(inc.get('severity', '?')).upper():<9}{inc.get('state', '?')!s:<13}{_clean(where_, 22):<23}"
            f"{_age(inc.get('started_at'), now):>6}  {_clean(inc.get('summary') or '', 60)}{who}{muted}"
        )
    if len(incidents) > 12:
        lines.append(f"  … and {len(incidents) - 12} more (cryptomon status --json)")
    if summary["notify"]:
        parts = [
            f"{_clean(ch.get('channel'), 20)} {ch.get('state')}"
            + (f" (queue {ch.get('queue')}, dead {ch.get('dead_letters')})" if ch.get("queue") or ch.get("dead_letters")
               else "")
            for ch in summary["notify"]
        ]
        lines += ["", "NOTIFY: " + ", ".join(parts)]
    failing = [k for k in ("config_loaded", "store_writable", "probes_running") if summary["health"].get(k) is False]
    if failing:
        lines += ["", "NOT READY: " + ", ".join(failing)]
    return "\n".join(lines)


def _age_until(iso: Any, now: float) -> str:
    try:
        seconds = max(0.0, parse_iso_utc(str(iso)) - now)
    except ValueError:
        return ""
    return f"{seconds:.0f}s left" if seconds < 120 else f"{seconds / 60:.0f}m left"


async def fetch(address: DaemonAddress) -> tuple[JsonObject, JsonObject, str]:
    async with DaemonClient(address, reconnect=False, client_name="cryptomon-status") as client:
        snapshot = as_object(await client.request("snapshot", wait_s=10.0)) or {}
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
    summary = summarize(snapshot, health)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, default=str))
    else:
        print(render_text(summary, where, time.time()))
    return EXIT_OK if summary["ok"] else EXIT_PROBLEMS
