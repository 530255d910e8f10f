"""``cryptomon notify test CHANNEL | status [--json] [--dead] | resend ID|--all-dead``.

Works on the store directly, so it needs no running daemon; a running daemon picks up re-queued
messages within its poll interval and reads a channel's broken flag from the same table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from cryptomon_tui.cli.common import add_config_arg, fail, load_or_exit
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import Config
from cryptomon_tui.kernel.jsonvalue import JsonValue, text

if TYPE_CHECKING:
    from cryptomon_tui.notify.store_outbox import StoreOutbox

T = TypeVar("T")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("notify", help="test channels, show delivery status, resend dead letters")
    nsub = p.add_subparsers(dest="notify_command", metavar="ACTION")
    test = nsub.add_parser("test", help="send a test message to CHANNEL and print the service's answer")
    test.add_argument("channel")
    add_config_arg(test)
    test.set_defaults(handler=cmd_test)
    status = nsub.add_parser("status", help="channels: last success, failures, queued, dead letters, broken")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--dead", action="store_true", help="also list dead letters (ids for resend)")
    add_config_arg(status)
    status.set_defaults(handler=cmd_status)
    resend = nsub.add_parser("resend", help="put a dead letter (or all of them) back in the queue")
    resend.add_argument("id", nargs="?", type=int, help="message id (see notify status --dead)")
    resend.add_argument("--all-dead", action="store_true", help="every dead letter")
    add_config_arg(resend)
    resend.set_defaults(handler=cmd_resend)
    p.set_defaults(handler=lambda a: (p.print_help(), 0)[1])


async def _with_store(config: Config, fn: Callable[[StoreOutbox], Awaitable[T]]) -> T:
    from cryptomon_tui.notify.store_outbox import StoreOutbox
    from cryptomon_tui.store.store import Store

    store = Store(config.storage, RealClock())
    if not await store.open(background=False):
        raise RuntimeError(f"cannot open the store at {store.path}: {store.health().last_error}")
    try:
        return await fn(StoreOutbox(store))
    finally:
        await store.close()


def cmd_test(args: argparse.Namespace) -> int:
    config, _ = load_or_exit(args.config)
    from cryptomon_tui.notify.notifier import Notifier

    async def run(outbox: StoreOutbox) -> tuple[bool, str]:
        notifier = Notifier(config, outbox, RealClock())
        answer = await notifier.send_test(args.channel)
        return answer.startswith("success"), answer

    if args.channel not in config.notify.channels:
        known = ", ".join(sorted(config.notify.channels)) or "none configured"
        return fail(f"no channel named {args.channel!r} (channels: {known})", 2)
    if not config.notify.channels[args.channel].enabled or not config.notify.enabled:
        return fail(f"channel {args.channel!r} is disabled in the config", 2)
    try:
        ok, answer = asyncio.run(_with_store(config, run))
    except RuntimeError as exc:
        return fail(str(exc))
    print(f"{args.channel}: {answer}")
    return 0 if ok else 1


def _fmt(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def cmd_status(args: argparse.Namespace) -> int:
    config, _ = load_or_exit(args.config)
    from cryptomon_tui.notify.status import channel_status, scrub

    async def run(outbox: StoreOutbox) -> tuple[list[dict[str, JsonValue]], list[dict[str, JsonValue]]]:
        rows = await channel_status(config.notify, outbox)
        dead = [r.to_dict() for r in await outbox.outbox_dead()] if args.dead else []
        for d in dead:
            d["last_error"] = scrub(text(d.get("last_error")), config.notify)
        return rows, dead

    try:
        rows, dead = asyncio.run(_with_store(config, run))
    except RuntimeError as exc:
        return fail(str(exc))
    if args.json:
        out: dict[str, JsonValue] = {"channels": list[JsonValue](rows)}
        if args.dead:
            out["dead_letters"] = list[JsonValue](dead)
        print(json.dumps(out, indent=2))
        return 0
    if not rows:
        print("no notification channels configured (notify.channels in the config file)")
        return 0
    header = ("CHANNEL", "TYPE", "LAST SUCCESS", "FAILURES", "QUEUED", "DEAD", "SENT", "STATE")
    table = [header]
    for r in rows:
        state = "BROKEN" if r["broken"] else ("ok" if r["enabled"] else "disabled")
        table.append(
            (
                str(r["channel"]),
                str(r["type"]),
                _fmt(r["last_success"]),
                str(r["failures"]),
                str(r["queued"]),
                str(r["dead"]),
                str(r["sent"]),
                state,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    for r in rows:
        if r["broken"]:
            print(f"{r['channel']}: broken: {r['broken_reason']}")
        elif r["last_error"] and r["queued"]:
            print(f"{r['channel']}: last error: {r['last_error']}")
    if args.dead:
        print("\nDEAD LETTERS" if dead else "\nno dead letters")
        for d in dead:
            print(f"  #{d['id']} {d['channel']} {d['kind']} incident {_fmt(d['incident_id'])}: {_fmt(d['last_error'])}")
    return 0


def cmd_resend(args: argparse.Namespace) -> int:
    if args.id is None and not args.all_dead:
        return fail("give a message ID or --all-dead", 2)
    config, _ = load_or_exit(args.config)

    async def run(outbox: StoreOutbox) -> int:
        ids = [args.id] if args.id is not None else None
        n = int(await outbox.outbox_resend(ids, all_dead=args.all_dead, now=RealClock().now()))
        return n

    try:
        n = asyncio.run(_with_store(config, run))
    except RuntimeError as exc:
        return fail(str(exc))
    if n == 0:
        print("nothing to resend" + (f": no dead or queued message #{args.id}" if args.id is not None else ""))
        return 1 if args.id is not None else 0
    print(f"re-queued {n} message(s); a running daemon sends them within seconds", file=sys.stdout)
    return 0
