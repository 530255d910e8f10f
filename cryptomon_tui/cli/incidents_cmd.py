"""Incident commands: incidents, ack, silence, silences, unsilence, maintenance, export.

One write path per command:
- a daemon runs (it answers on the configured control address): ``ack``, ``silence``, ``unsilence`` and
  ``maintenance add|remove`` are sent to it over the control API and its answer is printed; this process
  never opens the store for them;
- no daemon runs: ``engine.offline`` restores the incident state from the store, applies the command with
  the daemon's own code (``IncidentManager`` through ``store.commands.apply_command``) and writes the result
  and the queued command in one transaction; a daemon that runs without a control address
  (``--no-control``) applies it within a second, otherwise the next daemon start does, idempotently,
  and announces an acknowledgement to the notification channels.
The listing commands (incidents, silences, maintenance list, export) read the store.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from cryptomon_tui.cli.common import add_config_arg, add_demo_arg, load_attached
from cryptomon_tui.cli.safe_output import SafeStream
from cryptomon_tui.clock import RealClock
from cryptomon_tui.incidents.model import Incident, MaintenanceWindow, Matcher, Silence
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
from cryptomon_tui.kernel.snapshot import IncidentView
from cryptomon_tui.kernel.units import (
    check_epoch,
    check_silence_length,
    format_duration,
    iso_utc,
    parse_duration,
    parse_iso_utc,
)

if TYPE_CHECKING:
    from cryptomon_tui.daemon.address import DaemonAddress
    from cryptomon_tui.daemon.client import DaemonClient
    from cryptomon_tui.engine.offline import OfflineCommands
    from cryptomon_tui.store import Store

T = TypeVar("T")
EXIT_USAGE = 2
SILENCE_LABELS = ("exchange", "rule", "probe", "severity")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("incidents", help="list incidents from the store")
    p.add_argument("--open", action="store_true", help="only firing or acknowledged incidents")
    p.add_argument("--since", metavar="DURATION", default="7d", help="incidents active in this period (default 7d)")
    p.add_argument("--limit", type=int, default=200, help="at most this many (newest first)")
    p.add_argument("--json", action="store_true", help="JSON with timelines")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_incidents)

    p = sub.add_parser("ack", help="acknowledge an incident (stops reminders)")
    p.add_argument("id", help="incident id (a unique prefix is enough)")
    p.add_argument("--note", help="what you are doing about it")
    p.add_argument("--by", default=None, help="who (default: your OS user)")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_ack)

    p = sub.add_parser(
        "silence",
        help="stop notifications for matching incidents",
        description="Matchers are ANDed. Presets: --for 15m, 1h, 4h, or --until-resolved.",
    )
    for label in SILENCE_LABELS:
        p.add_argument(f"--{label}", help=f"match {label} (exact)")
    p.add_argument("--incident", metavar="ID", help="match one incident by id")
    p.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="MATCHER",
        help="extra matcher: name=value, name!=value, name=~regex, name!~regex (repeatable)",
    )
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 15m, 1h, 4h")
    when.add_argument("--until-resolved", action="store_true", help="until the matched incident resolves")
    p.add_argument("--comment", required=True, help="why (required)")
    p.add_argument("--by", default=None, help="who (default: your OS user)")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_silence)

    p = sub.add_parser("silences", help="list silences")
    p.add_argument("--all", action="store_true", help="include expired ones")
    p.add_argument("--json", action="store_true")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_silences)

    p = sub.add_parser("unsilence", help="end a silence now")
    p.add_argument("id", help="silence id (a unique prefix is enough)")
    p.add_argument("--by", default=None, help="who (default: your OS user)")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_unsilence)

    p = sub.add_parser("maintenance", help="planned maintenance windows (incidents inside are not notified)")
    msub = p.add_subparsers(dest="maintenance_command", metavar="ACTION")
    add = msub.add_parser("add", help="add a one-off or recurring window")
    add.add_argument("--exchange", help="exchange name (default: all exchanges)")
    add.add_argument("--start", default="now", help="ISO-8601 time (naive = UTC) or 'now' (default)")
    end = add.add_mutually_exclusive_group(required=True)
    end.add_argument("--end", help="ISO-8601 end time")
    end.add_argument("--for", dest="duration", metavar="DURATION", help="length, e.g. 2h")
    add.add_argument("--recurrence", choices=("daily", "weekly"), help="repeat at the same local time")
    add.add_argument("--timezone", default="UTC", help="IANA zone a recurrence keeps its time in (default UTC)")
    add.add_argument("--comment", default="", help="what is planned")
    add.add_argument("--by", default=None, help="who (default: your OS user)")
    add_config_arg(add)
    add_demo_arg(add)
    add.set_defaults(handler=cmd_maintenance_add)
    lst = msub.add_parser("list", help="list windows")
    lst.add_argument("--all", action="store_true", help="include past one-off windows")
    lst.add_argument("--json", action="store_true")
    add_config_arg(lst)
    add_demo_arg(lst)
    lst.set_defaults(handler=cmd_maintenance_list)
    rm = msub.add_parser("remove", help="remove a window")
    rm.add_argument("id")
    add_config_arg(rm)
    add_demo_arg(rm)
    rm.set_defaults(handler=cmd_maintenance_remove)
    p.set_defaults(handler=lambda a: (p.print_help(), 0)[1])

    p = sub.add_parser(
        "export",
        help="write recorded probe results in the backtest input format",
        description="Writes ts, exchange, probe, latency_ms, outcome, http_status, error_code, error_message, "
        "rate_limit_used, clock_offset_ms: the format `cryptomon backtest --input` reads.",
    )
    p.add_argument("--since", default="24h", metavar="DURATION", help="how far back (default 24h)")
    p.add_argument("--exchange", help="only this exchange")
    p.add_argument(
        "--format", choices=("csv", "jsonl"), default=None, help="default: from --output's extension, else csv"
    )
    p.add_argument("--output", "-o", metavar="PATH", default="-", help="file (default: stdout)")
    add_config_arg(p)
    add_demo_arg(p)
    p.set_defaults(handler=cmd_export)


# --- plumbing ---------------------------------------------------------------------------------


def _user(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _err(message: str, code: int = 1) -> int:
    print(f"cryptomon: {message}", file=sys.stderr)
    return code


class _StoreProblem(Exception):
    pass


def _running_daemon(args: argparse.Namespace) -> DaemonAddress | None:
    """The daemon's address when one answers for this config, else None (then the store is written)."""
    from cryptomon_tui.daemon.client import find_running_daemon

    config, _ = load_attached(args)
    return find_running_daemon(config)


def _send(address: DaemonAddress, call: Callable[[DaemonClient], Awaitable[JsonObject]]) -> JsonObject:
    """One command to the running daemon; its answer (DaemonError carries the daemon's own message)."""
    from cryptomon_tui.daemon.client import DaemonClient

    async def run() -> JsonObject:
        async with DaemonClient(address, reconnect=False, client_name="cryptomon-cli") as client:
            return await call(client)

    return asyncio.run(run())


def _command(
    args: argparse.Namespace,
    online: Callable[[DaemonClient], Awaitable[JsonObject]],
    show: Callable[[JsonObject], str],
    offline: Callable[[OfflineCommands], Awaitable[str]],
) -> int:
    """Send to the running daemon and print its answer, or (no daemon) apply offline through the store."""
    from cryptomon_tui.daemon.client import DaemonError

    try:
        address = _running_daemon(args)
        if address is not None:
            print(show(_send(address, online)))
            return 0
    except DaemonError as exc:
        return _err(str(exc))

    async def work(store: Store) -> int:
        from cryptomon_tui.engine.offline import OfflineCommands

        config, _ = load_attached(args)
        print(await offline(OfflineCommands(store, config, RealClock())))
        return 0

    return _run(args, work)


def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store (no background task), run ``work(store)``, close."""
    from cryptomon_tui.store import Store

    config, _ = load_attached(args)

    async def run() -> T:
        store = Store(config.storage, RealClock())
        try:
            if not await store.open(background=False):
                health = store.health()
                raise _StoreProblem(f"cannot open the store at {store.path}: {health.last_error}")
            result = await work(store)
            health = store.health()
            if not health.ok:
                raise _StoreProblem(f"storage error at {store.path}: {health.last_error}")
            return result
        finally:
            await store.close()

    return asyncio.run(run())


def _run(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    from cryptomon_tui.engine.offline import OfflineCommandError

    try:
        return _with_store(args, work)
    except (_StoreProblem, OfflineCommandError) as exc:
        return _err(str(exc))


def _duration(text: str, what: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what}: {exc}") from None


def _length(text: str, what: str) -> float:
    """A silence's or maintenance window's length: the shared bound (finite, > 0, at most 90 days)."""
    try:
        return check_silence_length(parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what}: {exc}") from None


def _when(text: str, now: float) -> float:
    if text.strip().lower() == "now":
        return now
    try:
        value = float(text) if text.replace(".", "", 1).isdigit() else parse_iso_utc(text)
        return check_epoch(value)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: use ISO-8601 such as 2025-06-01T09:00Z (years 2000 to 3000)"
        ) from None


def _ago(seconds: float) -> str:
    return format_duration(max(0.0, round(seconds)))


def _table(rows: list[list[str]], out: IO[str]) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() + "\n")


# --- incidents / ack ------------------------------------------------------------------------------


def cmd_incidents(args: argparse.Namespace) -> int:
    try:
        window = _duration(args.since, "--since")
    except argparse.ArgumentTypeError as exc:
        return _err(str(exc), EXIT_USAGE)
    now = RealClock().now()

    async def work(store: Store) -> int:
        items: list[Incident] = await store.incidents(
            open_only=args.open, since=now - window, limit=args.limit, timelines=args.json
        )
        if args.json:
            json.dump([i.to_dict() for i in items], sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            return 0
        if not items:
            print("no incidents" + (" open" if args.open else f" in the last {args.since}"))
            return 0
        rows = [["ID", "STATE", "SEVERITY", "RULE", "EXCHANGE", "PROBE", "STARTED", "FOR", "SUMMARY"]]
        for i in items:
            end = i.resolved_at if i.resolved_at is not None else now
            state = i.state.value + (" (silenced)" if i.silenced_by else "") + (" (flapping)" if i.flapping else "")
            rows.append(
                [
                    i.id,
                    state,
                    i.severity.value,
                    i.rule,
                    i.exchange or "-",
                    i.probe or "-",
                    iso_utc(i.started_at)[:19].replace("T", " "),
                    _ago(end - i.started_at),
                    i.summary,
                ]
            )
        _table(rows, sys.stdout)
        return 0

    return _run(args, work)


def cmd_ack(args: argparse.Namespace) -> int:
    by = _user(args.by)

    def said(inc: IncidentView) -> str:
        return f"acknowledged {inc.id} ({inc.rule} on {inc.exchange or 'all'}) as {by}"

    async def offline(commands: OfflineCommands) -> str:
        applied = await commands.ack(args.id, by, args.note)
        inc = applied.incident
        assert inc is not None
        if applied.result.startswith("ok: already"):
            return f"{inc.id} was already acknowledged by {inc.acknowledged_by}"
        return said(IncidentView.from_wire(inc.to_dict())) + " (no daemon running: stored; announced when it starts)"

    return _command(
        args,
        lambda client: client.ack(args.id, note=args.note, by=by),
        lambda answer: said(IncidentView.from_wire(answer.get("incident"))),
        offline,
    )


# --- silences -------------------------------------------------------------------------------------


def _matchers(args: argparse.Namespace) -> list[Matcher]:
    matchers = [Matcher(label, getattr(args, label)) for label in SILENCE_LABELS if getattr(args, label)]
    if args.incident:
        matchers.append(Matcher("id", args.incident))
    if args.match:
        from cryptomon_tui.incidents.silences import parse_matcher

        for text in args.match:
            try:
                matchers.append(parse_matcher(text))
            except ValueError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from None
    return matchers


def _describe(matchers: tuple[Matcher, ...] | list[Matcher]) -> str:
    ops = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return ",".join(f"{m.name}{ops[(m.is_regex, m.is_equal)]}{m.value}" for m in matchers)


def cmd_silence(args: argparse.Namespace) -> int:
    try:
        matchers = _matchers(args)
        length = None if args.until_resolved else _length(args.duration, "--for")
    except argparse.ArgumentTypeError as exc:
        return _err(str(exc), EXIT_USAGE)
    if not matchers:
        return _err(
            "a silence needs at least one matcher: --exchange, --rule, --probe, --severity, --incident or --match",
            EXIT_USAGE,
        )
    if not args.comment.strip():
        return _err("--comment must say why", EXIT_USAGE)
    if length is not None and length <= 0:
        return _err("--for must be longer than 0", EXIT_USAGE)
    now = RealClock().now()
    silence = Silence(
        id="sil-" + secrets.token_hex(4),
        matchers=tuple(matchers),
        starts_at=now,
        ends_at=None if length is None else now + length,
        created_by=_user(args.by),
        comment=args.comment.strip(),
        created_at=now,
    )

    def said(s: Silence) -> str:
        until = "until resolved" if s.ends_at is None else f"until {iso_utc(s.ends_at)}"
        return f"{s.id}: silenced {_describe(s.matchers)} {until} ({s.created_by})"

    async def offline(commands: OfflineCommands) -> str:
        if args.incident and await commands.store.incident(args.incident) is None:
            print(f"note: no incident {args.incident!r} in the store yet; the silence applies if it appears",
                  file=sys.stderr)  # fmt: skip
        return said(await commands.silence(silence))

    def show(answer: JsonObject) -> str:
        from cryptomon_tui.store.rows import silence_from_dict

        return said(silence_from_dict(answer.get("silence")))

    return _command(
        args,
        lambda client: client.silence([m.to_dict() for m in silence.matchers], length, silence.comment,
                                      by=silence.created_by),
        show,
        offline,
    )


def _silence_state(s: Silence, now: float) -> str:
    if s.expired_at is not None and s.expired_at <= now:
        return "expired"
    if s.ends_at is not None and s.ends_at <= now:
        return "expired"
    return "active" if s.starts_at <= now else "pending"


def cmd_silences(args: argparse.Namespace) -> int:
    now = RealClock().now()

    async def work(store: Store) -> int:
        items: list[Silence] = await store.silences(include_expired=args.all)
        if args.json:
            out = [{**s.to_dict(), "state": _silence_state(s, now)} for s in items]
            json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            return 0
        if not items:
            print("no silences" if args.all else "no active silences")
            return 0
        rows = [["ID", "STATE", "MATCHERS", "ENDS", "BY", "COMMENT"]]
        for s in items:
            ends = "when resolved" if s.ends_at is None else f"in {_ago(s.ends_at - now)}"
            if _silence_state(s, now) == "expired":
                ends = iso_utc(min(x for x in (s.expired_at, s.ends_at) if x is not None))[:19].replace("T", " ")
            rows.append([s.id, _silence_state(s, now), _describe(s.matchers), ends, s.created_by, s.comment])
        _table(rows, sys.stdout)
        return 0

    return _run(args, work)


def cmd_unsilence(args: argparse.Namespace) -> int:
    by = _user(args.by)

    def said(s: Silence) -> str:
        return f"{s.id}: ended ({_describe(s.matchers)})"

    async def offline(commands: OfflineCommands) -> str:
        return said(await commands.unsilence(args.id, by))

    def show(answer: JsonObject) -> str:
        from cryptomon_tui.store.rows import silence_from_dict

        return said(silence_from_dict(answer.get("silence")))

    return _command(args, lambda client: client.unsilence(args.id, by=by), show, offline)


# --- maintenance ----------------------------------------------------------------------------------


def cmd_maintenance_add(args: argparse.Namespace) -> int:
    now = RealClock().now()
    try:
        start = _when(args.start, now)
        end = _when(args.end, now) if args.end else start + _length(args.duration, "--for")
    except argparse.ArgumentTypeError as exc:
        return _err(str(exc), EXIT_USAGE)
    values: JsonObject = {
        "id": "mw-" + secrets.token_hex(4),
        "exchange": args.exchange,
        "starts_at": start,
        "ends_at": end,
        "comment": args.comment,
        "recurrence": args.recurrence,
        "timezone": args.timezone,
        "created_by": _user(args.by),
    }
    from cryptomon_tui.store.rows import window_from_dict

    window = window_from_dict(values)
    if end <= start:
        return _err("the window must end after it starts", EXIT_USAGE)
    with contextlib.suppress(ModuleNotFoundError):
        from cryptomon_tui.incidents.maintenance import check_window

        try:
            check_window(window)
        except ValueError as exc:
            return _err(str(exc), EXIT_USAGE)

    repeat = f", {args.recurrence}" if args.recurrence else ""

    def said(window_id: str) -> str:
        return f"{window_id}: {args.exchange or 'all exchanges'} {iso_utc(start)} .. {iso_utc(end)}{repeat}"

    async def offline(commands: OfflineCommands) -> str:
        return said((await commands.maintenance_add(window)).id)

    return _command(
        args,
        lambda client: client.maintenance_add(args.exchange, start, end, args.comment or "", args.recurrence,
                                              args.timezone or "UTC", by=window.created_by),
        lambda answer: said(str((as_object(answer.get("window")) or {}).get("id"))),
        offline,
    )


def cmd_maintenance_list(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        items: list[MaintenanceWindow] = await store.maintenance_windows(include_past=args.all)
        if args.json:
            json.dump([w.to_dict() for w in items], sys.stdout, indent=2, ensure_ascii=False)
            sys.stdout.write("\n")
            return 0
        if not items:
            print("no maintenance windows")
            return 0
        rows = [["ID", "EXCHANGE", "STARTS", "ENDS", "REPEATS", "COMMENT"]]
        for w in items:
            rows.append(
                [
                    w.id,
                    w.exchange or "all",
                    iso_utc(w.starts_at)[:16].replace("T", " "),
                    iso_utc(w.ends_at)[:16].replace("T", " "),
                    (w.recurrence or "-") + (f" ({w.timezone})" if w.recurrence and hasattr(w, "timezone") else ""),
                    w.comment,
                ]
            )
        _table(rows, sys.stdout)
        return 0

    return _run(args, work)


def cmd_maintenance_remove(args: argparse.Namespace) -> int:
    async def offline(commands: OfflineCommands) -> str:
        await commands.maintenance_remove(args.id)
        return f"{args.id}: removed"

    return _command(
        args,
        lambda client: client.maintenance_remove(args.id, by=_user(getattr(args, "by", None))),
        lambda answer: f"{answer.get('window_id')}: removed",
        offline,
    )


# --- export ---------------------------------------------------------------------------------------


def cmd_export(args: argparse.Namespace) -> int:
    from cryptomon_tui.backtest import RecordWriter

    try:
        window = _duration(args.since, "--since")
    except argparse.ArgumentTypeError as exc:
        return _err(str(exc), EXIT_USAGE)
    fmt = args.format
    if fmt is None:
        fmt = "jsonl" if str(args.output).lower().endswith((".jsonl", ".ndjson", ".json")) else "csv"
    now = RealClock().now()
    with contextlib.ExitStack() as stack:
        out: IO[str]
        if args.output == "-":
            out = sys.stdout
        else:
            target = Path(args.output).expanduser()
            target.parent.mkdir(parents=True, exist_ok=True)
            # a file gets what stdout would: rows stored before the scrubber existed are cleaned too
            out = SafeStream(stack.enter_context(target.open("w", encoding="utf-8", newline="")))  # type: ignore[assignment]
        writer = RecordWriter(out, fmt)

        async def work(store: Store) -> int:
            async for page in store.iter_results(now - window, now + 1, exchange=args.exchange):
                writer.write(page)
            return 0

        code = _run(args, work)
        out.flush()
    if code == 0:
        print(f"exported {writer.count} results ({fmt})", file=sys.stderr)
    return code
