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
