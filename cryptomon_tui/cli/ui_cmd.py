"""``cryptomon run`` (= plain ``cryptomon``), ``cryptomon demo``, ``cryptomon attach``, ``cryptomon themes``.

The UI is a client of the daemon: ``run`` attaches to a running one or starts one in the
background; ``demo`` does the same with a demo daemon on the simulator, on its own socket and
database so it never mixes with real monitoring; ``attach`` only attaches. Textual is imported
inside the handlers, so other commands never load it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptomon_tui.cli.common import add_config_arg, add_demo_arg, load_attached, load_or_exit
from cryptomon_tui.config.root import Config

if TYPE_CHECKING:  # the daemon client is imported when the UI opens
    from cryptomon_tui.daemon.address import DaemonAddress

DEMO_SCENARIO = "flaky"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    run = sub.add_parser("run", help="open the live monitor (attaches to the daemon, starting one if needed)")
    _ui_args(run)
    run.set_defaults(handler=run_ui)

    demo = sub.add_parser("demo", help="open the live monitor on the built-in exchange simulator (no network)")
    _ui_args(demo)
    demo.add_argument("--scenario", default=DEMO_SCENARIO, metavar="NAME",
                      help=f"simulator scenario (default {DEMO_SCENARIO}; also calm, outage, rate-limit-storm, "
                           "maintenance, clock-drift or a YAML file)")
    demo.set_defaults(handler=run_demo)

    attach = sub.add_parser("attach", help="open the live monitor on an already running daemon")
    _ui_args(attach)
    add_demo_arg(attach)
    attach.set_defaults(handler=run_attach)

    themes = sub.add_parser("themes", help="list the UI themes (shipped and yours); --check validates them")
    themes.add_argument("--check", action="store_true", help="exit 1 when a theme file is broken")
    themes.set_defaults(handler=run_themes)


def _ui_args(p: argparse.ArgumentParser) -> None:
    add_config_arg(p)
    p.add_argument("--theme", metavar="NAME", help="colour theme (see `cryptomon themes`)")
    p.add_argument("--no-mouse", action="store_true", help="no mouse reporting (less traffic over SSH)")


# ------------------------------------------------------------------------------------------ run
def run_ui(args: argparse.Namespace) -> int:
    config, source = load_or_exit(getattr(args, "config", None))
    return _attach_or_start(args, config, source, demo=None)


def run_attach(args: argparse.Namespace) -> int:
    from cryptomon_tui.daemon.client import DaemonError, find_running_daemon

    config, _ = load_attached(args)
    try:
        address = find_running_daemon(config)
    except DaemonError as exc:
        print(f"cryptomon: {exc}", file=sys.stderr)
        return 1
    if address is None:
        from cryptomon_tui.daemon.address import address_from_config

        print(
            f"cryptomon: no daemon is running on {address_from_config(config).describe()}.\n"
            "Start one with `cryptomon daemon` (or just run `cryptomon`, which starts one for you).",
            file=sys.stderr,
        )
        return 1
    return _open(args, config, address, owns_daemon=False)


def run_demo(args: argparse.Namespace) -> int:
    config, source = load_or_exit(getattr(args, "config", None))
    return _attach_or_start(args, config, source, demo=args.scenario)


def demo_view(config: Config) -> Config:
    """The demo daemon's own socket, database and HTTP port, exactly as ``cryptomon daemon --demo``
    derives them (so the demo never attaches to, or mixes with, real monitoring)."""
    from cryptomon_tui.cli.daemon_cmd import demo_config

    return demo_config(config, {})


def _attach_or_start(args: argparse.Namespace, config: Config, source: Path | None, demo: str | None) -> int:
    from cryptomon_tui.daemon.client import DaemonError, find_running_daemon, spawn_daemon

    if demo is not None:
        config = demo_view(config)
    try:
        address = find_running_daemon(config)
    except DaemonError as exc:
        print(f"cryptomon: {exc}", file=sys.stderr)
        return 1
    owns = False
    if address is None:
        what = f"a demo daemon ({demo})" if demo else "the monitoring daemon"
        print(f"cryptomon: starting {what} in the background…", file=sys.stderr)
        try:
            address = spawn_daemon(source, demo, config=config)
        except DaemonError as exc:
            print(f"cryptomon: {exc}", file=sys.stderr)
            return 1
        owns = True
    return _open(args, config, address, owns_daemon=owns, again="cryptomon demo" if demo else "cryptomon attach")


def _open(args: argparse.Namespace, config: Config, address: DaemonAddress, *, owns_daemon: bool,
          again: str = "cryptomon attach") -> int:
    from cryptomon_tui.daemon.client import DaemonClient
    from cryptomon_tui.ui.app import CryptomonApp

    client = DaemonClient(address)  # history charts come through it too (control API), local or TCP
    app = CryptomonApp(
        client,
        ui_config=config.ui,
        theme=getattr(args, "theme", None),
        owns_daemon=owns_daemon,
    )
    mouse = bool(config.ui.mouse) and not getattr(args, "no_mouse", False)
    result = app.run(mouse=mouse)
    if result is None:
        result = app.result
    for message in result.messages:
        print(f"cryptomon: {message}", file=sys.stderr)
    if result.daemon == "kept":
        print(f"cryptomon: the daemon keeps monitoring on {address.describe()}; `{again}` to return",
              file=sys.stderr)
    elif result.daemon == "stopped":
        print("cryptomon: the daemon was stopped", file=sys.stderr)
    return 0 if result.daemon != "stop-failed" else 1


# ------------------------------------------------------------------------------------------ themes
def run_themes(args: argparse.Namespace) -> int:
    from cryptomon_tui.config.paths import user_themes_dir
    from cryptomon_tui.ui.theming import DEFAULT_THEME, load_themes, shipped_theme_files

    themes, problems = load_themes()
    shipped = {p.stem for p in shipped_theme_files()}
    for theme in sorted(themes, key=lambda t: t.name):
        origin = "shipped" if theme.name in shipped else "user"
        mark = " (default)" if theme.name == DEFAULT_THEME else ""
        print(f"{theme.name:<28} {'dark' if theme.dark else 'light':<6} {origin}{mark}")
    print(f"user themes folder: {user_themes_dir()}")
    print("Textual's built-in themes (e.g. ansi-dark, ansi-light for the terminal's own colours) work too.")
    for problem in problems:
        print(f"broken theme file: {problem.render()}", file=sys.stderr)
    if args.check and problems:
        return 1
    return 0
