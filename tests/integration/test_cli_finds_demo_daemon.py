"""`cryptomon status`, `incidents` and `attach` find a running demo daemon when it is the only daemon
(they said "no daemon" while `cryptomon demo` ran), and with --demo; the real process, a private home."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "cryptomon"


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmdemo-", dir="/tmp"))  # short: the Unix socket lives under it
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CRYPTOMON_HOME": str(home)}
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.timeout(90)
def test_status_and_incidents_find_the_only_daemon_a_demo(home: Path) -> None:
    env = {**os.environ, "CRYPTOMON_HOME": str(home)}
    daemon = subprocess.Popen([str(BIN), "daemon", "--demo", "calm", "--for", "60s", "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        status = _cli(home, "status", "--json")
        while status.returncode == 3 and time.monotonic() < deadline:  # 3 = no daemon (yet)
            time.sleep(0.3)
            status = _cli(home, "status", "--json")
        assert status.returncode in (0, 1), status.stdout + status.stderr
        assert "demo daemon" in status.stderr
        assert "no_daemon" not in status.stdout and json.loads(status.stdout)
        assert _cli(home, "status", "--json", "--demo").returncode in (0, 1)
        listed = _cli(home, "incidents", "--open", "--json")
        assert listed.returncode == 0, listed.stderr
    finally:
        daemon.terminate()
        daemon.wait(20)
    # no daemon at all: still "no daemon" (exit 3), not a demo found by mistake
    assert _cli(home, "status", "--json").returncode == 3


@pytest.mark.timeout(90)
def test_demo_daemon_stops_after_its_last_client_left(home: Path) -> None:
    import asyncio

    from cryptomon_tui.daemon.address import DaemonAddress
    from cryptomon_tui.daemon.client import DaemonClient

    env = {**os.environ, "CRYPTOMON_HOME": str(home)}
    daemon = subprocess.Popen([str(BIN), "daemon", "--demo", "calm", "--idle-stop", "2s", "--for", "80s",
                               "--log-level", "info"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        sock = home / "run" / "cryptomon-demo.sock"

        async def attached_then_leave() -> None:
            deadline = time.monotonic() + 30
            while not sock.exists():
                assert time.monotonic() < deadline, "demo daemon did not start"
                await asyncio.sleep(0.1)
            async with DaemonClient(DaemonAddress(socket_path=sock), reconnect=False) as client:
                # attached for longer than --idle-stop: the daemon must still answer
                for _ in range(8):
                    assert await client.request("health", wait_s=5.0)
                    await asyncio.sleep(0.5)

        asyncio.run(attached_then_leave())
        assert daemon.poll() is None, "stopped while a client was attached"
        _, err = daemon.communicate(timeout=40)  # idle 2 s after the client left (well before --for 80s)
        assert daemon.returncode == 0 and "no client for 2s; stopping" in err, err
    finally:
        if daemon.poll() is None:
            daemon.terminate()
            daemon.wait(20)


def test_only_a_demo_daemon_stops_when_idle() -> None:
    import argparse

    from cryptomon_tui.cli.daemon_cmd import _idle_stop_s

    assert _idle_stop_s(argparse.Namespace(demo=None, idle_stop="1s")) == 0.0  # a real daemon never
    assert _idle_stop_s(argparse.Namespace(demo="calm", idle_stop="10m")) == 600.0
    assert _idle_stop_s(argparse.Namespace(demo="calm", idle_stop="0")) == 0.0
