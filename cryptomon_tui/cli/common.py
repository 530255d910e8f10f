"""Helpers shared by command modules: loading config with a clean exit, printing errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cryptomon_tui.config import Config, ConfigError, load_config

EXIT_CONFIG = 2


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="PATH", help="config file (default: the platformdirs config folder)")


def load_or_exit(path: str | Path | None) -> tuple[Config, Path | None]:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def fail(message: str, code: int = 1) -> int:
    print(f"cryptomon: {message}", file=sys.stderr)
    return code


def add_demo_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--demo", action="store_true",
                        help="use the demo daemon (`cryptomon demo`); found by itself when it is the only one")


def load_attached(args: argparse.Namespace) -> tuple[Config, Path | None]:
    """The config whose daemon (and store) a client command talks to: the real one, or the demo's
    own socket and database with ``--demo`` or when no real daemon answers but a demo daemon does
    (``cryptomon attach`` / ``status`` / ``incidents`` said "no daemon" while a demo ran)."""
    config, source = load_or_exit(getattr(args, "config", None))
    from cryptomon_tui.cli.daemon_cmd import demo_config

    demo = demo_config(config, {})
    if getattr(args, "demo", False) or getattr(args, "socket", None):
        return (demo if getattr(args, "demo", False) else config), source
    from cryptomon_tui.daemon.client import DaemonError, find_running_daemon

    try:
        if find_running_daemon(config, timeout=0.5) is not None:
            return config, source
        if find_running_daemon(demo, timeout=0.5) is not None:
            print("cryptomon: no monitoring daemon runs; using the demo daemon (`cryptomon demo`)", file=sys.stderr)
            return demo, source
    except DaemonError:
        pass  # the command reports it on the real address
    return config, source
