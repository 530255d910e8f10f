"""``cryptomon backtest``: replay recorded probe results through detection, print incident events.

The input format and the replay's decisions are documented in ``cryptomon_tui.backtest``.
Exit codes: 0 replayed; 2 unreadable input, a missing required column, a config error, or
(with ``--strict``) any malformed row. Never touches the user's store.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import IO

from cryptomon_tui.backtest import MAX_REPORTED_PROBLEMS, InputError, event_line, read_input, replay
from cryptomon_tui.cli.common import EXIT_CONFIG, add_config_arg, load_or_exit
from cryptomon_tui.cli.safe_output import SafeStream
from cryptomon_tui.incidents.model import IncidentEvent


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser(
        "backtest",
        help="replay recorded probe results (CSV/JSONL) through detection and print the incident events",
        description="Replay recorded probe results through metrics, detection and incidents on a simulated clock. "
        "Input columns: ts, exchange, probe, latency_ms [, outcome, http_status, error_code, error_message, "
        "rate_limit_used, clock_offset_ms]; `cryptomon export` writes this format.",
    )
    p.add_argument(
        "--input", "-i", required=True, metavar="FILE", help="recorded results: .csv, .jsonl (.gz ok), - = stdin"
    )
    add_config_arg(p)
    p.add_argument("--events-jsonl", metavar="OUT", default="-", help="where to write the events (default: stdout)")
    p.add_argument("--strict", action="store_true", help="exit 2 on any malformed row instead of skipping it")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
    p.set_defaults(handler=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    # the same config lookup as every command, so the rules you tune are the rules replayed
    config, source = load_or_exit(args.config)
    try:
        parsed = read_input(args.input)
    except InputError as exc:
        print(f"cryptomon backtest: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    for problem in parsed.problems[:MAX_REPORTED_PROBLEMS]:
        print(f"cryptomon backtest: {args.input}: {problem}", file=sys.stderr)
    if len(parsed.problems) > MAX_REPORTED_PROBLEMS:
        print(f"cryptomon backtest: ... and {len(parsed.problems) - MAX_REPORTED_PROBLEMS} more", file=sys.stderr)
    if parsed.problems and args.strict:
        print(f"cryptomon backtest: {len(parsed.problems)} malformed rows (--strict)", file=sys.stderr)
        return EXIT_CONFIG
    with contextlib.ExitStack() as stack:
        out: IO[str]
        if args.events_jsonl == "-":
            out = sys.stdout
        else:
            target = Path(args.events_jsonl).expanduser()
            target.parent.mkdir(parents=True, exist_ok=True)
            # recorded exchange messages are untrusted text: the file gets what stdout would
            out = SafeStream(stack.enter_context(target.open("w", encoding="utf-8", newline="\n")))  # type: ignore[assignment]

        def emit(event: IncidentEvent) -> None:
            out.write(event_line(event))

        try:
            summary = replay(parsed.results, config, emit, streams=parsed.streams)
        except InputError as exc:
            print(f"cryptomon backtest: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        out.flush()
    summary.skipped = len(parsed.problems)
    if not args.quiet:
        print(summary.render(), file=sys.stderr)
        print(f"  rules from {source or 'built-in defaults'}", file=sys.stderr)
    return 0
