"""Attach-or-start: find_running_daemon and spawn_daemon start a detached daemon process and find it."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cryptomon_tui.config import load_config
from cryptomon_tui.daemon.client import (
    DaemonClient,
    DaemonStartFailed,
    attach_or_start,
    daemon_log_path,
    find_running_daemon,
    spawn_daemon,
)
from tests.fakes.daemon_harness import DAEMON_COMMAND, REPO, free_port
from tests.fakes.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def config_path(tmp_path: Path) -> Iterator[Path]:
    sock_dir = Path(tempfile.mkdtemp(prefix="cmn-", dir="/tmp"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"daemon": {"http": {"port": free_port()},
                                               "control": {"socket_path": str(sock_dir / "s.sock")}}}))
    yield path
    shutil.rmtree(sock_dir, ignore_errors=True)


async def test_spawn_then_find_then_shutdown(config_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the harness is imported as tests.fakes.daemon_harness
    config, _ = load_config(config_path)
    assert find_running_daemon(config) is None
    import asyncio

    address, started = await asyncio.to_thread(attach_or_start, config, config_path, command=DAEMON_COMMAND)
    assert started is True
    assert await asyncio.to_thread(find_running_daemon, config) == address
    assert await asyncio.to_thread(attach_or_start, config, config_path, command=DAEMON_COMMAND) == (address, False)
    async with DaemonClient(address, reconnect=False) as client:
        assert client.welcome is not None
        pid = client.welcome.pid
        assert pid != os.getpid()
        assert (await client.shutdown())["stopping"] is True

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie of our own child counts as gone
        try:
            return os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            return True

    await eventually(gone, within_s=10, what="the daemon exited after shutdown")
    assert await asyncio.to_thread(find_running_daemon, config) is None


def test_spawn_failure_reports_the_log(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("daemon:\n  nonsense: 1\n")
    config, _ = load_config(None)
    with pytest.raises(DaemonStartFailed) as err:
        spawn_daemon(bad, None, config=config, command=[sys.executable, "-m", "cryptomon_tui", "config", "check"],
                     timeout=20)
    assert "exited with code" in str(err.value)
    assert "nonsense" in str(err.value)  # the tail of the daemon log explains why
    assert daemon_log_path().exists()
