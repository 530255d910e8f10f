"""The ``cryptomon`` command. One module per command group; each exposes ``register``.

Textual is imported only inside the commands that open the UI, so ``cryptomon daemon``
and ``cryptomon config check`` never load it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from cryptomon_tui import __version__
from cryptomon_tui.cli import safe_output

# Modules that add subcommands. A module listed here that does not exist yet is skipped,
# so command groups can land one at a time.
COMMAND_MODULES = (
    "cryptomon_tui.cli.config_cmd",
    "cryptomon_tui.cli.simulate_cmd",
    "cryptomon_tui.cli.daemon_cmd",
    "cryptomon_tui.cli.incidents_cmd",
    "cryptomon_tui.cli.backtest_cmd",
    "cryptomon_tui.cli.analyze_cmd",
    "cryptomon_tui.cli.notify_cmd",
    "cryptomon_tui.cli.status_cmd",
    "cryptomon_tui.cli.ui_cmd",
    "cryptomon_tui.cli.doctor_cmd",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryptomon",
        description="Live monitor for cryptocurrency exchange APIs (Binance, Bybit, OKX, Deribit, ...).",
    )
    parser.add_argument("--version", action="version", version=f"cryptomon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def _command_names(parser: argparse.ArgumentParser) -> set[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


# commands that hand the terminal to Textual (which cleans what it shows itself)
_INTERACTIVE = frozenset({"run", "demo", "attach"})


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    bare = not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version"))
    if bare and "run" in _command_names(parser):
        # plain `cryptomon [--config X]` = `cryptomon run`
        args_list = ["run", *args_list]
    args = parser.parse_args(args_list)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    wrapped = args_list[0] not in _INTERACTIVE
    if wrapped:
        safe_output.install()
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        if wrapped:
            safe_output.uninstall()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
