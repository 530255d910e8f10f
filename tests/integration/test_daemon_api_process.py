"""Acceptance against a daemon process: two attached clients, killed clients, a stalled client during an
event storm, and reload by file change and SIGHUP.

The daemon is ``tests.fakes.daemon_harness`` (the daemon's DaemonRunner around a FakeEngine) until the
engine implements EngineAPI; switch ``daemon_harness.DAEMON_COMMAND`` to ``cryptomon daemon`` then.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from tests.fakes.daemon_harness import daemon_process, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon_files(tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    sock_dir = Path(tempfile.mkdtemp(prefix="cmq-", dir="/tmp"))
    socket_path = sock_dir / "d.sock"
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "exchanges": {"binance": {"interval": "5s"}, "okx": {}},
                "daemon": {
                    "location": "proc",
                    "http": {"port": port},
                    "control": {"socket_path": str(socket_path), "max_event_backlog": 2000},
                    "reload": {"interval": "200ms"},
                },
            }
        )
    )
    yield config, socket_path, f"http://127.0.0.1:{port}"
    shutil.rmtree(sock_dir, ignore_errors=True)


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name:
                return float(sample.value)
    raise KeyError(name)


async def test_two_clients_on_a_daemon_process(daemon_files: tuple[Path, Path, str]) -> None:
    config, socket_path, url = daemon_files
    address = DaemonAddress(socket_path=socket_path)
    with daemon_process(config, url, ["--fail", "binance"]) as proc:
        async with DaemonClient(address) as alice, DaemonClient(address) as bob:
            snap = await alice.request("snapshot")
            incident = next(i for i in snap["incidents"] if i["exchange"] == "binance")
            events = bob.events()
            first = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0)
            await bob.ping()  # bob's subscribe was answered before this
            started = time.perf_counter()
            await alice.ack(incident["id"], note="on it", by="alice")
            event = await asyncio.wait_for(first, 1.0)
            assert event.event == "acknowledged" and event.incident.id == incident["id"]
            assert time.perf_counter() - started < 1.0
            # kill both clients without a goodbye
            for c in (alice, bob):
                assert c._conn is not None
                c._conn.writer.transport.abort()
        async with DaemonClient(address, reconnect=False) as carol:
            s1 = (await carol.request("snapshot"))["seq"]
            snaps = carol.snapshots(hz=4)
            while (await asyncio.wait_for(anext(snaps), 3.0)).seq <= s1:
                pass  # the daemon is still running and changing
            assert (await carol.health())["probes_running"] is True
        assert proc.poll() is None


async def test_stalled_client_during_an_event_storm(daemon_files: tuple[Path, Path, str]) -> None:
    config, socket_path, url = daemon_files
    with daemon_process(config, url, ["--event-rate", "4000"]):
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "client": "stalled"}).encode() + b"\n")
        writer.write(b'{"type":"request","id":1,"method":"subscribe","params":{"events":true,"snapshot_hz":4}}\n')
        await writer.drain()
        await reader.readline()  # welcome; then never read again
        # The storm (~1 kB events, 4000/s) fills the stalled client's backlog (2000): it is cut off.
        for _ in range(100):
            if await metric(url, "cryptomon_control_clients") == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the stalled client was never disconnected")
        lag_max = await metric(url, "cryptomon_event_loop_lag_max_seconds")
        print(f"daemon loop lag max during the storm with a stalled client: {lag_max * 1000:.1f} ms")
        # (a speed figure, measured on a quiet machine by `make bench-clients`: a timed assert here failed
        # whenever other work loaded the shared 2-core machine)
        await asyncio.wait_for(reader.read(), 10.0)
        assert reader.at_eof()
        writer.close()
        # the storm goes on and the daemon still serves: a new client is answered and sees it moving
        async with DaemonClient(DaemonAddress(socket_path=socket_path), reconnect=False) as carol:
            assert (await carol.ping())["pong"] is True
            first = (await carol.request("snapshot"))["seq"]
            snaps = carol.snapshots(hz=4)
            while (await asyncio.wait_for(anext(snaps), 10.0)).seq <= first:
                pass


async def test_reload_on_file_change_and_sighup(daemon_files: tuple[Path, Path, str]) -> None:
    config, socket_path, url = daemon_files
    with daemon_process(config, url) as proc:
        async with DaemonClient(DaemonAddress(socket_path=socket_path)) as client:
            assert (await client.health())["fake_reloads"] == 0
            data = yaml.safe_load(config.read_text())
            data["exchanges"]["binance"]["interval"] = "1s"
            config.write_text(yaml.safe_dump(data))
            snaps = client.snapshots(hz=4)
            # fake_reloads is the FakeEngine's own key, passed through health() (the typed snapshot has no room)
            async with asyncio.timeout(10):
                while (await client.health())["fake_reloads"] != 1:
                    await anext(snaps)  # a reload bumps the snapshot: look again after the next one
            proc.send_signal(signal.SIGHUP)
            async with asyncio.timeout(10):
                while (await client.health())["fake_reloads"] != 2:
                    await anext(snaps)
            assert proc.poll() is None
