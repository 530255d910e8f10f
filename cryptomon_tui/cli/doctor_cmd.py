"""``cryptomon doctor``: the production checklist as a command that looks at the real setup.

Each check prints PASS, WARN or FAIL with what it saw and, when not passing, the fix. Exit 0 when nothing
fails (warnings allowed), 1 when something does, 2 when the config cannot be loaded. Checks that need the
daemon (read-only keys, IP binding, clock offsets) read its snapshot over the control API and say so when
it does not answer. ``--no-send`` skips the test message to each channel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptomon_tui.cli.common import add_config_arg, load_or_exit
from cryptomon_tui.config import Config
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
from cryptomon_tui.kernel.snapshot import FactValue, Snapshot

PASS, WARN, FAIL = "pass", "warn", "fail"
CLOCK_WARN_MS = 250.0
CLOCK_FAIL_MS = 1000.0
DISK_WARN_BYTES = 1 << 30
DISK_FAIL_BYTES = 100 << 20


@dataclass(frozen=True)
class Check:
    name: str
    verdict: str
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("doctor", help="check the setup against the production checklist (pass/warn/fail + fixes)")
    add_config_arg(p)
    p.add_argument("--no-send", action="store_true", help="do not send a test message to each channel")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--demo", action="store_true", help="check the daemon started by `cryptomon demo`")
    p.add_argument("--socket", metavar="PATH", help="the daemon's control socket (default: from the config)")
    p.set_defaults(handler=cmd_doctor)


# -- checks on the config file ---------------------------------------------------------------------


def check_config_file(config: Config, path: Path | None) -> list[Check]:
    from cryptomon_tui.redaction import collect_secrets

    if path is None or not path.exists():
        return [Check("config file", WARN, "no config file: built-in defaults",
                      "write one with `cryptomon config init` and keep it user-only (chmod 600)")]
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return [Check("config file", FAIL, f"cannot read {path}: {exc.strerror or exc}", "check its permissions")]
    literal = [s for s in collect_secrets(config) if s in text]
    readable_by_others = bool(mode & 0o044)
    checks: list[Check] = []
    if literal and readable_by_others:
        checks.append(Check("config permissions", FAIL,
                            f"{path} (mode {mode:04o}) holds {len(literal)} secret(s) other users can read",
                            f"chmod 600 {path}, and move the secrets to the environment (${{VAR}})"))
    elif readable_by_others:
        checks.append(Check("config permissions", PASS, f"{path} mode {mode:04o}, holds no literal secret"))
    else:
        checks.append(Check("config permissions", PASS, f"{path} mode {mode:04o} (user-only)"))
    if literal:
        checks.append(Check("secrets via environment", WARN if not readable_by_others else FAIL,
                            f"{len(literal)} secret(s) written literally in the config file",
                            "write them as ${ENV_VAR} (systemd EnvironmentFile=, a container secret)"))
    else:
        checks.append(Check("secrets via environment", PASS, "no literal secret in the config file"))
    return checks


def check_llm_budget(config: Config) -> Check:
    analysis = config.analysis
    if not analysis.enabled or analysis.llm is None:
        return Check("LLM budget", PASS, "no LLM configured (offline analysis only, no spend)")
    if analysis.monthly_budget_usd is None:
        return Check("LLM budget", FAIL, "an LLM is configured with no monthly budget (no cap on spend)",
                     "set analysis.monthly_budget_usd (e.g. 5.00)")
    return Check("LLM budget", PASS, f"monthly budget {analysis.monthly_budget_usd} USD")


def check_disk(config: Config) -> Check:
    from cryptomon_tui.config.paths import default_db_path

    path = Path(config.storage.path or default_db_path()).expanduser()
    probe = path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return Check("store disk space", FAIL, f"cannot stat {probe}: {exc.strerror or exc}", "check storage.path")
    free_mb = usage.free / (1 << 20)
    detail = f"{free_mb:.0f} MB free for {path}"
    if usage.free < DISK_FAIL_BYTES:
        return Check("store disk space", FAIL, detail, "free space or move storage.path (alerts go on from memory)")
    if usage.free < DISK_WARN_BYTES:
        return Check("store disk space", WARN, detail, "keep at least 1 GB free, or lower storage retention")
    if not os.access(probe, os.W_OK):
        return Check("store disk space", FAIL, f"{probe} is not writable", "fix the folder's owner or permissions")
    return Check("store disk space", PASS, detail)


def check_supervision() -> Check:
    if os.environ.get("INVOCATION_ID") or os.environ.get("NOTIFY_SOCKET"):
        return Check("supervision", PASS, "running under systemd")
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        return Check("supervision", PASS, "running in a container (give it a health check on /healthz, as "
                     "deploy/Containerfile does)")
    units = [Path(p) for p in ("/etc/systemd/system/cryptomon.service", "/lib/systemd/system/cryptomon.service",
                               "~/.config/systemd/user/cryptomon.service")]
    found = [u for u in units if u.expanduser().exists()]
    if found:
        return Check("supervision", PASS, f"systemd unit {found[0]}")
    return Check("supervision", WARN, "no systemd unit or container found: nothing restarts a crashed daemon",
                 "install deploy/cryptomon.service (or run deploy/Containerfile with its health check)")


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=5, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def ntp_state() -> tuple[bool | None, str]:
    """Whether the system clock is NTP-synchronised, and how we know (None: cannot tell)."""
    out = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
    if out is not None and out.strip() in ("yes", "no"):
        return out.strip() == "yes", "timedatectl"
    out = _run(["chronyc", "-n", "tracking"])
    if out is not None:
        return "Not synchronised" not in out and "Leap status     : Normal" in out, "chronyc tracking"
    return None, "neither timedatectl nor chronyc answers"


# -- checks that need the daemon -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DaemonAnswer:
    """What the running daemon said: its snapshot (typed) and its health reply."""

    snapshot: Snapshot
    health: JsonObject


async def _ask_daemon(config: Config, socket_path: Path | None) -> tuple[DaemonAnswer | None, str]:
    from cryptomon_tui.daemon.address import DaemonAddress, address_from_config
    from cryptomon_tui.daemon.client import DaemonClient, DaemonError

    address = DaemonAddress(socket_path=socket_path) if socket_path else address_from_config(config)
    try:
        async with DaemonClient(address, reconnect=False) as client:
            snap = await client.request("snapshot", wait_s=10.0)
            health = await client.request("health", wait_s=10.0)
    except DaemonError as exc:
        return None, str(exc)
    except (OSError, TimeoutError) as exc:
        return None, f"{address.describe()}: {exc}"
    if as_object(snap) is None:
        return None, f"{address.describe()}: no snapshot"
    return DaemonAnswer(Snapshot.from_wire(snap), as_object(health) or {}), address.describe()


def _facts(snap: Snapshot, exchange: str) -> dict[str, FactValue]:
    facts: dict[str, FactValue] = {}
    ex = snap.exchanges.get(exchange)
    for probe in ex.probes.values() if ex is not None else ():
        facts.update(probe.facts)
    return facts


def _shown(value: FactValue) -> str:
    """A fact as the exchange sent it (a list of permissions prints as one)."""
    return str(list(value)) if isinstance(value, tuple) else str(value)


def daemon_checks(config: Config, answer: DaemonAnswer | None, where: str) -> list[Check]:
    if answer is None:
        return [Check("daemon reachable", FAIL, where, "start it: `cryptomon daemon` (or the systemd unit)")]
    checks = [Check("daemon reachable", PASS, f"answers on {where}")]
    snap, health = answer.snapshot, answer.health
    health_detail = as_object(health.get("detail")) or {}
    if health.get("store_writable") is False:
        reason = str(health_detail.get("store_reason") or "the store refuses writes")
        checks.append(Check("store writable", FAIL, reason,
                            "free disk space / fix permissions / restore the database (alerts go on from memory)"))
    elif "store_writable" in health:
        checks.append(Check("store writable", PASS, "the daemon's store takes writes"))
    keyed = [name for name, ex in config.exchanges.items() if ex.enabled and ex.credentials is not None]
    if not keyed:
        checks.append(Check("read-only API keys", PASS, "no API keys configured (public probes only)"))
    for name in keyed:
        facts = _facts(snap, name)
        if facts.get("read_only") is True:
            checks.append(Check(f"read-only key ({name})", PASS, "the exchange says the key can only read"))
        elif facts.get("read_only") is False:
            perms = facts.get("permissions") or facts.get("write_permissions") or "trading/withdrawal"
            checks.append(Check(f"read-only key ({name})", FAIL, f"the key has write permissions: {_shown(perms)}",
                                "create a read-only key for monitoring and replace this one"))
        elif facts.get("can_trade") is True or facts.get("can_withdraw") is True:
            # /api/v3/account speaks for the account, not the key: a hint, not proof
            checks.append(Check(f"read-only key ({name})", WARN, "the account reports trading/withdrawal enabled "
                                "and the exchange gives no per-key answer on this endpoint",
                                "confirm in the exchange's API settings that this key is read-only"))
        else:
            checks.append(Check(f"read-only key ({name})", WARN, "no permission answer yet from the account probe",
                                "let the daemon run a minute (the account probe checks it), then rerun"))
        listed = facts.get("ips")
        ips: list[str | int | bool] | None = list(listed) if isinstance(listed, tuple) else None
        if isinstance(facts.get("ip_restricted"), bool):
            ips = ["restricted"] if facts["ip_restricted"] else []
        if isinstance(ips, list) and ips and ips != ["*"]:
            checks.append(Check(f"IP whitelist ({name})", PASS, "the exchange says the key is IP-restricted"))
        elif isinstance(ips, list):
            checks.append(Check(f"IP whitelist ({name})", WARN, "the key is not bound to any IP",
                                "bind it to this host's address in the exchange's API settings"))
        else:
            checks.append(Check(f"IP whitelist ({name})", WARN, "the exchange does not report the key's IP binding",
                                "check in the exchange's API settings that the key is IP-restricted"))
    offsets = []
    for name, ex in snap.exchanges.items():
        if ex.clock_offset_ms is not None:
            offsets.append((abs(ex.clock_offset_ms), name))
    synced, how = ntp_state()
    if offsets:
        worst, who = max(offsets)
        detail = f"largest offset {worst:.0f} ms ({who}); NTP: " + (
            "synchronised" if synced else ("not synchronised" if synced is False else "unknown")) + f" ({how})"
        if worst >= CLOCK_FAIL_MS:
            checks.append(Check("clock sync", FAIL, detail, "enable NTP (timedatectl set-ntp true / chrony)"))
        elif worst >= CLOCK_WARN_MS or synced is False:
            checks.append(Check("clock sync", WARN, detail, "enable NTP (timedatectl set-ntp true / chrony)"))
        else:
            checks.append(Check("clock sync", PASS, detail))
    else:
        verdict = PASS if synced else WARN
        checks.append(Check("clock sync", verdict, f"no exchange offset measured yet; NTP via {how}: {synced}",
                            "" if synced else "enable NTP (timedatectl set-ntp true / chrony)"))
    return checks


async def channel_checks(config: Config, send: bool, demo: bool = False) -> list[Check]:
    channels = {n: c for n, c in config.notify.channels.items() if c.enabled} if config.notify.enabled else {}
    if not channels:
        # The demo needs no channel (its outages are simulated); a real setup without one alerts nobody.
        return [Check("notification channels", WARN if demo else FAIL, "no enabled channel: nobody hears an alert",
                      "add one under notify.channels (docs/notifications.md), then `cryptomon notify test NAME`")]
    if not send:
        return [Check(f"channel {n}", WARN, "not tested (--no-send)", f"cryptomon notify test {n}") for n in channels]
    from cryptomon_tui.clock import RealClock
    from cryptomon_tui.notify.notifier import Notifier
    from cryptomon_tui.notify.outbox import InMemoryOutbox

    notifier = Notifier(config, InMemoryOutbox(), RealClock())
    out = []
    for name in channels:
        try:
            answer = await asyncio.wait_for(notifier.send_test(name), 30)
        except (KeyError, TimeoutError) as exc:
            answer = f"failed: {exc}"
        ok = answer.startswith("success")
        out.append(Check(f"channel {name}", PASS if ok else FAIL, f"test message: {answer}",
                         "" if ok else f"fix the channel's URL/credentials; `cryptomon notify test {name}`"))
    return out


# -- the command -----------------------------------------------------------------------------------


async def run_checks(
    config: Config, path: Path | None, send: bool, socket_path: Path | None = None, demo: bool = False
) -> list[Check]:
    checks = check_config_file(config, path)
    answer, where = await _ask_daemon(config, socket_path)
    checks += daemon_checks(config, answer, where)
    checks += await channel_checks(config, send, demo)
    checks.append(check_llm_budget(config))
    checks.append(check_disk(config))
    checks.append(check_supervision())
    return checks


def render(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"{c.verdict.upper():4}  {c.name}: {c.detail}")
        if c.fix and c.verdict != PASS:
            lines.append(f"      fix: {c.fix}")
    fails = sum(c.verdict == FAIL for c in checks)
    warns = sum(c.verdict == WARN for c in checks)
    lines.append(f"{len(checks)} checks: {fails} failed, {warns} warnings")
    return "\n".join(lines)


def cmd_doctor(args: argparse.Namespace) -> int:
    config, path = load_or_exit(getattr(args, "config", None))
    socket_path = Path(args.socket).expanduser() if args.socket else None
    if args.demo and socket_path is None:
        from cryptomon_tui.config.paths import runtime_dir

        socket_path = runtime_dir() / "cryptomon-demo.sock"  # where `cryptomon demo` puts its daemon
    checks = asyncio.run(run_checks(config, path, not args.no_send, socket_path, bool(args.demo)))
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], ensure_ascii=False))
    else:
        print(render(checks))
    sys.stdout.flush()
    return 1 if any(c.verdict == FAIL for c in checks) else 0
