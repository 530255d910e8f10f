"""``cryptomon config check|show|init``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from pathlib import Path

import yaml

from cryptomon_tui.cli.common import EXIT_CONFIG, add_config_arg
from cryptomon_tui.config import Config, ConfigError, load_config
from cryptomon_tui.config.loader import config_file_warnings
from cryptomon_tui.config.paths import default_config_path


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("config", help="check, show or create the config file")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    check = csub.add_parser("check", help="validate a config file; exit 2 on errors")
    check.add_argument("path", nargs="?", help="file to check (default: the configured location)")
    add_config_arg(check)
    check.set_defaults(handler=cmd_check)
    show = csub.add_parser("show", help="print the effective config with secrets masked")
    add_config_arg(show)
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    show.set_defaults(handler=cmd_show)
    init = csub.add_parser("init", help="write a commented starter config file")
    init.add_argument("path", nargs="?", help=f"where (default: {default_config_path()})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(handler=cmd_init)
    p.set_defaults(handler=lambda a: (p.print_help(), 0)[1])


def _path(args: argparse.Namespace) -> str | None:
    return getattr(args, "path", None) or getattr(args, "config", None)


def cmd_check(args: argparse.Namespace) -> int:
    path = _path(args)
    try:
        config, source = load_config(path)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    for warning in [*config_file_warnings(source, config), *config_advice(config)]:
        print(f"warning: {warning}")
    try:
        from cryptomon_tui.probing.budget import plan_schedule
    except ModuleNotFoundError:
        plan_schedule = None  # type: ignore[assignment,unused-ignore]
    if plan_schedule is not None:
        try:
            plan = plan_schedule(config)
        except ValueError as exc:
            print(f"{source or '<defaults>'}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        for item in plan:
            if item.stretched:
                print(f"note: {item.explain()}")
    from cryptomon_tui.streams.runner import stream_plan

    watched = []
    for planned in stream_plan(config):
        if planned.spec is None:
            print(f"note: exchanges.{planned.exchange}: {planned.note}")
        else:
            watched.append(f"{planned.exchange} {planned.spec.name}")
    if watched:
        print(f"streams: {', '.join(watched)}")
    where = str(source) if source else "built-in defaults (no config file)"
    enabled = ", ".join(config.enabled_exchanges()) or "none"
    print(f"OK: {where}; watching {enabled}")
    return 0


def config_advice(config: Config) -> list[str]:
    """Settings that load but will not do what their author expects: a password sent in clear, an LLM whose
    calls the budget cannot price (and that are therefore refused)."""
    from cryptomon_tui.analysis.service import price_table
    from cryptomon_tui.config.notify import EmailChannelConfig, is_loopback_host

    out: list[str] = []
    for name, channel in config.notify.channels.items():
        if not isinstance(channel, EmailChannelConfig) or not channel.plaintext_auth:
            continue
        where = f"notify.channels.{name}"
        if channel.plaintext_auth_refused:
            out.append(
                f"{where}: security none with a login to {channel.host} would send the password in clear: the "
                "channel refuses to send; use security: starttls or tls (or allow_plaintext_auth: true)"
            )
        elif not is_loopback_host(channel.host):
            out.append(f"{where}: allow_plaintext_auth sends the SMTP password to {channel.host} in clear")
    llm = config.analysis.llm
    if llm is not None and price_table(config.analysis).price(llm.model) is None:
        out.append(
            f"analysis.llm.model {llm.model!r} has no known price: LLM calls are refused (the monthly budget "
            "could not cover them) until you set analysis.llm.price_in and price_out (USD per million tokens, "
            "0 for a free local model) or add it under analysis.pricing"
        )
    return out


def cmd_show(args: argparse.Namespace) -> int:
    try:
        config, source = load_config(_path(args))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    data = config.model_dump(mode="json")
    print(f"# effective config from {source or 'built-in defaults'}; secrets masked")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), end="")
    return 0


def sample_config_text() -> str:
    """The shipped, commented sample config (wheel: package data; checkout: repo root)."""
    try:
        res = resources.files("cryptomon_tui").joinpath("sample_config.yaml")
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        pass
    repo = Path(__file__).resolve().parents[2] / "sample_config.yaml"
    return repo.read_text(encoding="utf-8")


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.path).expanduser() if args.path else default_config_path()
    if target.exists() and not args.force:
        print(f"cryptomon: {target} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(sample_config_text())
    os.chmod(target, 0o600)
    print(f"wrote {target} (mode 600); check it with: cryptomon config check {target}")
    return 0
