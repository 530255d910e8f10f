"""End to end in a real terminal: `cryptomon demo` (which starts a real demo daemon on the
simulator) inside a private tmux server; wait for an incident, press analyse, acknowledge and
silence, check the screen through `tmux capture-pane`, and quit stopping the daemon."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.ui.engine_harness import UI_SCENARIO

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (make sysdeps)")

VENV_BIN = Path(sys.executable).parent


class Tmux:
    def __init__(self, home: Path) -> None:
        self.socket = f"cryptomon-e2e-{uuid.uuid4().hex[:8]}"
        self.home = home

    def run(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        return out.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def wait_for(self, text: str, limit_s: float = 15.0) -> str:
        deadline = time.monotonic() + limit_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear within {limit_s:g}s; screen:\n{screen}")


@pytest.fixture
def home() -> Iterator[Path]:
    # short: the demo daemon's Unix socket lives under it (AF_UNIX paths are limited to 107 bytes)
    path = Path(tempfile.mkdtemp(prefix="cme2e-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _stop_demo_daemon(home: Path) -> None:
    """If the test failed before quitting, stop the demo daemon through its control API."""
    from cryptomon_tui.daemon.address import DaemonAddress
    from cryptomon_tui.daemon.client import DaemonClient

    sock = home / "run" / "cryptomon-demo.sock"
    if not sock.exists():
        return

    async def stop() -> None:
        async with DaemonClient(DaemonAddress(socket_path=sock), reconnect=False) as client:
            await client.shutdown()

    try:
        asyncio.run(asyncio.wait_for(stop(), 5))
    except Exception:
        pass


@pytest.mark.timeout(120)
def test_demo_in_tmux_analyse_ack_silence(home: Path) -> None:
    scenario = home / "ui-e2e.yaml"
    scenario.write_text(yaml.safe_dump(UI_SCENARIO))
    tmux = Tmux(home)
    env = f"CRYPTOMON_HOME={home} TERM=xterm-256color TEXTUAL_ANIMATIONS=none PATH={VENV_BIN}:{os.environ['PATH']}"
    cmd = f"env {env} {VENV_BIN / 'cryptomon'} demo --no-mouse --scenario {scenario}; echo CRYPTOMON-EXIT=$?; sleep 30"
    tmux.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "40", cmd)
    try:
        tmux.wait_for("FIRING", limit_s=45)
        screen = tmux.screen()
        assert "binance" in screen and "Exchanges" in screen
        tmux.keys("Tab")  # to the incident pane
        time.sleep(0.3)
        tmux.keys("x")
        screen = tmux.wait_for("Root cause")
        assert "Confidence" in screen and "offline analyzer" in screen
        tmux.keys("Escape")
        time.sleep(0.3)
        tmux.keys("a")
        tmux.wait_for("Acknowledge incident")
        tmux.keys("-l", "e2e note")
        tmux.keys("Enter")
        tmux.wait_for("ACK ")
        tmux.keys("s")
        tmux.wait_for("custom duration")
        tmux.keys("-l", "e2e silence")
        tmux.keys("Enter")
        tmux.wait_for("silenced for")
        tmux.keys("S")
        tmux.wait_for("Silences (1)")
        tmux.wait_for("id=I-")  # the incident-scoped silence just created
        tmux.keys("Escape")
        time.sleep(0.3)
        tmux.keys("q")
        tmux.wait_for("Stop daemon")
        tmux.keys("s")
        tmux.wait_for("CRYPTOMON-EXIT=0")
        assert "the daemon was stopped" in tmux.screen()
    finally:
        tmux.run("kill-server")
        _stop_demo_daemon(home)


# ----------------------------------------------------------------------------- 80x24, the on-call size
SEVERITIES = ("CRIT", "ERR", "WARN", "INFO")


def incident_pane(screen: str) -> tuple[int, int, int]:
    """(open incidents per the pane title, open rows on screen, rows counted as hidden by +N)."""
    lines = screen.splitlines()
    top = next((i for i, line in enumerate(lines) if "Incidents" in line and "╭" in line), None)
    if top is None:
        return 0, 0, 0
    title = lines[top]
    open_n = int(title.split("Incidents (", 1)[1].split(" ", 1)[0]) if "Incidents (" in title else 0
    bottom = next(i for i in range(top + 1, len(lines)) if lines[i].lstrip().startswith("╰"))
    rows = [line for line in lines[top + 2:bottom] if line.strip("│ ").split(" ", 1)[0] in SEVERITIES]
    open_rows = sum(1 for line in rows if "resolved" not in line)
    hidden = 0
    for word in lines[bottom].replace("─", " ").split():
        if word.startswith("+") and word[1:].isdigit():
            hidden += int(word[1:])
    return open_n, open_rows, hidden


def check_on_call_screen(screen: str) -> None:
    """The verdict line (second line) names the worst incident; every open incident is on screen or
    counted in "+N more"."""
    lines = screen.splitlines()
    verdict = lines[1].strip()
    open_n, open_rows, hidden = incident_pane(screen)
    if open_n:
        assert verdict.split(" ", 1)[0] in SEVERITIES, screen
        assert " - " in verdict, screen  # the action
    else:
        assert verdict.startswith("All clear"), screen
    assert open_n <= open_rows + hidden, screen


def _demo_80x24(home: Path, scenario: str) -> Tmux:
    tmux = Tmux(home)
    env = f"CRYPTOMON_HOME={home} TERM=xterm-256color TEXTUAL_ANIMATIONS=none PATH={VENV_BIN}:{os.environ['PATH']}"
    cmd = f"env {env} {VENV_BIN / 'cryptomon'} demo --no-mouse --scenario {scenario}; echo CRYPTOMON-EXIT=$?; sleep 30"
    tmux.run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "80", "-y", "24", cmd)
    return tmux


def _silence_dialog_and_ack(tmux: Tmux) -> None:
    tmux.keys("Tab")  # exchanges -> incidents
    time.sleep(0.3)
    tmux.keys("s")
    tmux.wait_for("comment (required)")
    tmux.keys("Enter")  # no comment
    screen = tmux.wait_for("a comment is required")
    assert "comment (required)" in screen and "Silence" in screen and "Cancel" in screen, screen
    tmux.keys("Escape")
    time.sleep(0.3)
    tmux.keys("a")
    tmux.wait_for("Acknowledge incident")
    tmux.keys("Enter")
    screen = tmux.wait_for("ACK ")
    assert any(line.strip("│ ").split(" ", 1)[0] in SEVERITIES and "ACK " in line for line in screen.splitlines())


def _quit_stopping(tmux: Tmux) -> None:
    tmux.keys("q")
    tmux.wait_for("Stop daemon")
    tmux.keys("s")
    tmux.wait_for("CRYPTOMON-EXIT=0")


@pytest.mark.timeout(150)
def test_demo_80x24_rate_limit_storm(home: Path) -> None:
    tmux = _demo_80x24(home, "rate-limit-storm")
    try:
        screen = tmux.wait_for("IP BANNED", limit_s=70)  # binance is banned 24 s into the scenario
        check_on_call_screen(screen)
        assert "IP BANNED" in screen.splitlines()[1], screen
        for _ in range(10):  # a few more screens while incidents open and resolve
            time.sleep(0.5)
            check_on_call_screen(tmux.screen())
        _silence_dialog_and_ack(tmux)
        check_on_call_screen(tmux.screen())
        _quit_stopping(tmux)
    finally:
        tmux.run("kill-server")
        _stop_demo_daemon(home)


@pytest.mark.timeout(150)
def test_demo_80x24_outage(home: Path) -> None:
    tmux = _demo_80x24(home, "outage")
    try:
        screen = tmux.wait_for("open) ", limit_s=60)
        check_on_call_screen(screen)
        for _ in range(10):
            time.sleep(0.5)
            check_on_call_screen(tmux.screen())
        _silence_dialog_and_ack(tmux)
        _quit_stopping(tmux)
    finally:
        tmux.run("kill-server")
        _stop_demo_daemon(home)
