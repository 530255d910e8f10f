"""Acceptance (issue 6) against the real ``cryptomon daemon``: a changed interval in the config file takes
effect without a restart and without closing open incidents (file watcher and SIGHUP); a ``--demo`` daemon
runs side by side with a normal one (its own socket, database and HTTP port).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cryptomon_tui.config.paths import data_dir, runtime_dir
from cryptomon_tui.daemon.address import DaemonAddress, default_socket_path
from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.kernel.units import parse_iso_utc
from tests.fakes.daemon_harness import REAL_DAEMON_COMMAND, REPO, RealDaemon, real_daemon, stop_process
from tests.fakes.prom_stack import get_json

pytestmark = pytest.mark.slow


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cml-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def until(check: Any, within_s: float, what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within_s:g}s")
        await asyncio.sleep(step)


async def snapshot(daemon: RealDaemon) -> dict[str, Any]:
    return dict(await asyncio.to_thread(get_json, daemon.http_url + "/api/v1/snapshot"))


def okx_time_gaps(daemon: RealDaemon, start: int) -> list[float]:
    rows = daemon.probe_rows(start)
    sends = [parse_iso_utc(r["ts"]) for r in rows if r["exchange"] == "okx" and r["probe"] == "time"]
    return [b - a for a, b in itertools.pairwise(sends)]


async def median_gap(daemon: RealDaemon, gaps: int) -> float:
    start = len(daemon.probe_rows())
    await until(lambda: len(okx_time_gaps(daemon, start)) >= gaps, 20, f"{gaps} okx time probes")
    return statistics.median(okx_time_gaps(daemon, start))


def set_interval(daemon: RealDaemon, exchange: str, interval: str) -> None:
    data = yaml.safe_load(daemon.config_path.read_text())
    data["exchanges"][exchange]["interval"] = interval
    tmp = daemon.config_path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    os.replace(tmp, daemon.config_path)  # the way editors save: a new file renamed into place


async def test_interval_change_in_the_file_applies_without_restart_and_keeps_incidents(
    tmp_path: Path, short_dir: Path
) -> None:
    # jitter 0: every gap between two sends of a probe is its interval, so a few gaps measure the cadence
    with real_daemon(tmp_path, short_dir, interval="1s", extra={"probing": {"jitter": 0}}) as daemon:
        async def open_incident() -> dict[str, Any] | None:
            snap = await snapshot(daemon)
            return next((i for i in snap["incidents"] if i["exchange"] == "binance" and i["state"] == "firing"), None)

        incident = await until(open_incident, 20, "an open binance incident", step=0.1)
        before = await snapshot(daemon)
        assert before["exchanges"]["okx"]["intervals"]["time"] == pytest.approx(1.0)
        gap_before = await median_gap(daemon, 2)

        set_interval(daemon, "okx", "600ms")

        async def applied() -> bool:
            return bool((await snapshot(daemon))["exchanges"]["okx"]["intervals"]["time"] == pytest.approx(0.6))

        await until(applied, 10, "the new okx interval in the snapshot")
        gap_after = await median_gap(daemon, 5)
        print(f"okx time probe cadence: median gap {gap_before:.3f}s before, {gap_after:.3f}s after the reload")
        assert gap_before == pytest.approx(1.0, abs=0.15)
        assert gap_after == pytest.approx(0.6, abs=0.1)

        after = await snapshot(daemon)
        same = next(i for i in after["incidents"] if i["id"] == incident["id"])
        assert same["state"] == "firing"  # still open, same id: the reload kept it
        assert after["started_at"] == before["started_at"]  # no restart
        assert daemon.proc.poll() is None
        assert not [e for e in daemon.events() if e["incident"]["id"] == incident["id"] and e["event"] == "resolved"]
        opened = [e for e in daemon.events() if e["event"] == "opened" and e["incident"]["exchange"] == "binance"]
        assert len(opened) == 1, opened  # no second incident for the same outage after the reload
        assert "config reloaded" in daemon.log_path.read_text()


async def test_sighup_reloads_when_the_watcher_is_off(tmp_path: Path, short_dir: Path) -> None:
    extra = {"daemon": {"reload": {"watch": False}}}
    with real_daemon(tmp_path, short_dir, interval="1s", extra=extra) as daemon:
        set_interval(daemon, "okx", "700ms")
        assert (await snapshot(daemon))["exchanges"]["okx"]["intervals"]["time"] == pytest.approx(1.0)
        daemon.proc.send_signal(signal.SIGHUP)

        async def applied() -> bool:
            return bool((await snapshot(daemon))["exchanges"]["okx"]["intervals"]["time"] == pytest.approx(0.7))

        await until(applied, 10, "the new okx interval after SIGHUP")
        assert daemon.proc.poll() is None  # SIGHUP reloads, it does not end the daemon


async def test_a_demo_daemon_runs_beside_a_normal_one(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both on their DEFAULT sockets and databases: the demo never takes (or blocks) the real daemon's."""
    monkeypatch.setenv("CRYPTOMON_HOME", str(short_dir / "h"))  # short: socket paths have at most 107 bytes
    with real_daemon(tmp_path / "normal", short_dir, location="normal", default_socket=True) as normal:
        assert normal.socket_path == default_socket_path() and normal.socket_path.exists()
        demo_cfg = tmp_path / "demo.yaml"
        demo_cfg.write_text(yaml.safe_dump({"exchanges": {"okx": {}, "binance": {}},
                                            "daemon": {"location": "demo-box"}}))
        demo_log = tmp_path / "demo.log"
        demo_socket = runtime_dir() / "cryptomon-demo.sock"
        demo = start_demo(demo_cfg, demo_log)
        try:
            await until(lambda: demo_socket.exists() or demo.poll() is not None, 20, "the demo socket")
            assert demo.poll() is None, demo_log.read_text()
            async with DaemonClient(DaemonAddress(socket_path=demo_socket), reconnect=False) as client:
                assert client.welcome is not None and client.welcome.location == "demo-box"
                assert client.welcome.pid == demo.pid
                await until(lambda: _probing(client), 20, "the demo daemon probing its simulator", step=0.2)
                demo_snap = await client.request("snapshot")
            assert demo_snap["store"]["path"] == str(data_dir() / "cryptomon-demo.sqlite3")
            async with DaemonClient(normal.address, reconnect=False) as client:
                assert client.welcome is not None and client.welcome.location == "normal"
                assert client.welcome.pid == normal.proc.pid
                assert (await client.request("snapshot"))["store"]["path"] != demo_snap["store"]["path"]
            assert normal.proc.poll() is None and demo.poll() is None
        finally:
            rc = await asyncio.to_thread(stop_process, demo, 15.0)
        assert rc == 0, demo_log.read_text()[-3000:]
        assert not demo_socket.exists()
        assert normal.proc.poll() is None and normal.socket_path.exists()  # the demo's exit left it alone

        # A second normal daemon on the same socket is refused with a message (not a traceback).
        second = await asyncio.to_thread(
            subprocess.run, [*REAL_DAEMON_COMMAND, "--config", str(normal.config_path)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )
        assert second.returncode == 1, second
        assert "already running" in second.stderr and "Traceback" not in second.stderr, second.stderr[-2000:]
        assert normal.proc.poll() is None and normal.socket_path.exists()


def start_demo(config: Path, log_path: Path, extra_args: list[str] | None = None) -> subprocess.Popen[bytes]:
    """``cryptomon daemon --demo=calm`` (without --socket/--store: its own default socket and database)."""
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [*REAL_DAEMON_COMMAND, "--demo=calm", "--config", str(config), *(extra_args or [])], cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )


async def _probing(client: DaemonClient) -> bool:
    snap = await client.request("snapshot")
    return sum(int(ex["attempts"]) for ex in snap["exchanges"].values()) > 5


async def test_demo_daemon_honours_socket_and_store_and_reloads_only_what_changed(
    tmp_path: Path, short_dir: Path
) -> None:
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump({"exchanges": {"okx": {}}, "daemon": {"location": "pinned"}}))
    socket_path, store = short_dir / "pinned.sock", tmp_path / "pinned.sqlite3"
    log_path = tmp_path / "pinned.log"
    demo = start_demo(config, log_path, ["--socket", str(socket_path), "--store", str(store)])
    try:
        await until(lambda: socket_path.exists() or demo.poll() is not None, 20, "the pinned demo socket")
        assert demo.poll() is None, log_path.read_text()
        assert not (runtime_dir() / "cryptomon-demo.sock").exists()
        async with DaemonClient(DaemonAddress(socket_path=socket_path), reconnect=False) as client:
            assert client.welcome is not None and client.welcome.location == "pinned"
            await until(lambda: _probing(client), 20, "the demo daemon probing", step=0.2)
            assert (await client.request("snapshot"))["store"]["path"] == str(store)
            config.write_text(yaml.safe_dump({"exchanges": {"okx": {}}, "daemon": {"location": "pinned"},
                                              "ui": {"theme": "cryptomon-light"}}))
            reply = await client.reload()
            # the file's default socket/store differ from --socket/--store: not a change of the running daemon
            assert reply["ok"] is True and reply["changed"] == ["ui"], reply
            assert (await client.request("snapshot"))["store"]["path"] == str(store)
    finally:
        rc = await asyncio.to_thread(stop_process, demo, 15.0)
    assert rc == 0, log_path.read_text()[-3000:]
