"""Control API end to end over real sockets: handshake errors, commands, fan-out, slow clients."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.config.root import Config
from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import (
    AuthFailed,
    CommandFailed,
    ConnectionLost,
    DaemonClient,
    NoDaemonRunning,
    VersionMismatch,
    find_running_daemon,
)
from cryptomon_tui.daemon.control import ControlServer, ControlServerError, DaemonAlreadyRunning
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from tests.fakes.fake_engine import FakeEngine
from tests.fakes.waiting import eventually

TOKEN = "tok-0123456789abcdef-SECRET"


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to 107 bytes: pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="cmd-", dir="/tmp"))
    yield path / "run"
    shutil.rmtree(path, ignore_errors=True)


def unix_config(sock_dir: Path, **daemon: Any) -> Config:
    return config_from_data({"daemon": {"control": {"socket_path": str(sock_dir / "cryptomon.sock")}, **daemon}})


def tcp_config(**control: Any) -> Config:
    return config_from_data({"daemon": {"control": {"transport": "tcp", "port": 0, "token": TOKEN, **control}}})


@pytest.fixture
async def served(sock_dir: Path) -> AsyncIterator[tuple[ControlServer, FakeEngine]]:
    clock = RealClock()
    engine = FakeEngine(clock)
    server = ControlServer(engine, unix_config(sock_dir), clock)
    await server.start()
    try:
        yield server, engine
    finally:
        await server.stop()


async def raw_exchange(address: DaemonAddress, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send frames, read until the daemon closes (or 2 s), return what it said."""
    if address.socket_path is not None:
        reader, writer = await asyncio.open_unix_connection(str(address.socket_path))
    else:
        reader, writer = await asyncio.open_connection(address.host, address.port)
    for f in frames:
        writer.write(json.dumps(f).encode() + b"\n")
    await writer.drain()
    out = []
    try:
        while True:
            line = await asyncio.wait_for(reader.readline(), 2.0)
            if not line:
                break
            out.append(json.loads(line))
    except TimeoutError:
        pass
    writer.close()
    return out


async def test_socket_is_private_and_commands_round_trip(served: tuple[ControlServer, FakeEngine]) -> None:
    server, engine = served
    path = server.address.socket_path
    assert path is not None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    incident = engine.open_incident()
    async with DaemonClient(server.address, reconnect=False) as client:
        assert client.welcome is not None and client.welcome.location == "local"
        assert (await client.ping())["pong"] is True
        snap = await client.snapshot()  # typed
        assert snap.incidents[0].id == incident.id and snap.incidents[0].state == "firing"
        acked = await client.ack(incident.id, note="looking", by="alice")
        assert acked["incident"]["acknowledged_by"] == "alice"
        sil = await client.silence([{"name": "exchange", "value": "binance"}], 600, "maintenance", by="bob")
        assert sil["silence"]["created_by"] == "bob"
        await client.unsilence(sil["silence"]["id"])
        assert (await client.analyze(incident.id, offline=True))["source"] == "offline"
        assert (await client.summary())["open"] == 1
        assert (await client.pause("okx"))["status"] == "paused"
        assert (await client.resume("okx"))["status"] == "ok"
        assert (await client.reload())["ok"] is True
        assert (await client.health())["loop"] is True
        with pytest.raises(CommandFailed) as err:
            await client.ack("inc-nope")
        assert err.value.code == "not_found" and "inc-nope" in str(err.value)
        with pytest.raises(CommandFailed) as err:
            await client.request("silence", {"matchers": "all", "comment": "x"})
        assert err.value.code == "invalid"
        with pytest.raises(CommandFailed) as err:
            await client.request("shutdown")
        assert err.value.code == "invalid"
    assert [c[0] for c in engine.commands][:3] == ["ack", "silence", "unsilence"]


async def test_no_daemon_error_names_the_socket(sock_dir: Path) -> None:
    address = DaemonAddress(socket_path=sock_dir / "cryptomon.sock")
    with pytest.raises(NoDaemonRunning) as err:
        await DaemonClient(address).connect()
    assert str(sock_dir / "cryptomon.sock") in str(err.value)
    assert "cryptomon daemon" in str(err.value)
    assert find_running_daemon(unix_config(sock_dir)) is None


async def test_version_mismatch_is_a_clear_error(served: tuple[ControlServer, FakeEngine]) -> None:
    server, _ = served
    said = await raw_exchange(server.address, [{"type": "hello", "protocol": PROTOCOL_VERSION + 1, "client": "x"}])
    assert said == [
        {"type": "error", "code": "version_mismatch", "message": said[0]["message"]},
    ]
    assert f"speaks {PROTOCOL_VERSION}" in said[0]["message"]
    from cryptomon_tui.daemon import client as client_mod

    orig = client_mod.PROTOCOL_VERSION
    client_mod.PROTOCOL_VERSION = orig + 1  # type: ignore[misc]
    try:
        with pytest.raises(VersionMismatch, match="same cryptomon version"):
            await DaemonClient(server.address).connect()
    finally:
        client_mod.PROTOCOL_VERSION = orig  # type: ignore[misc]


async def test_first_frame_must_be_hello(served: tuple[ControlServer, FakeEngine]) -> None:
    server, _ = served
    said = await raw_exchange(server.address, [{"type": "request", "id": 1, "method": "snapshot"}])
    assert said and said[0]["type"] == "error" and "hello" in said[0]["message"]


async def test_live_daemon_is_refused_and_stale_socket_replaced(sock_dir: Path) -> None:
    clock = RealClock()
    config = unix_config(sock_dir)
    first = ControlServer(FakeEngine(clock), config, clock)
    await first.start()
    try:
        assert await asyncio.to_thread(find_running_daemon, config) == first.address
        second = ControlServer(FakeEngine(clock), config, clock)
        with pytest.raises(DaemonAlreadyRunning, match="already running"):
            await second.start()
    finally:
        await first.stop()
    assert first.address.socket_path is not None and not first.address.socket_path.exists()
    # A dead daemon's leftover: a bound socket nobody listens on.
    path = first.address.socket_path
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))
    leftover.close()
    assert path.exists()
    third = ControlServer(FakeEngine(clock), config, clock)
    await third.start()
    try:
        async with DaemonClient(third.address, reconnect=False) as client:
            assert (await client.ping())["pong"]
    finally:
        await third.stop()


async def test_non_socket_file_in_the_way_is_reported(sock_dir: Path) -> None:
    sock_dir.mkdir(parents=True, mode=0o700)  # noqa: ASYNC240 - test setup
    (sock_dir / "cryptomon.sock").write_text("not a socket")
    clock = RealClock()
    server = ControlServer(FakeEngine(clock), unix_config(sock_dir), clock)
    with pytest.raises(ControlServerError, match="not a socket"):
        await server.start()


async def test_tcp_refuses_missing_and_wrong_token() -> None:
    clock = RealClock()
    server = ControlServer(FakeEngine(clock), tcp_config(), clock)
    await server.start()
    try:
        addr = server.address
        assert addr.host == "127.0.0.1" and addr.port
        no_token = await raw_exchange(addr, [{"type": "hello", "protocol": PROTOCOL_VERSION, "client": "x"}])
        assert [f["code"] for f in no_token] == ["auth_failed"]
        assert "requires a token" in no_token[0]["message"]
        wrong = await raw_exchange(
            addr,
            [
                {"type": "hello", "protocol": PROTOCOL_VERSION, "token": "guess-guess-guess"},
                {"type": "request", "id": 1, "method": "snapshot"},
            ],
        )
        assert [f["code"] for f in wrong] == ["auth_failed"]  # no snapshot leaked after the refusal
        with pytest.raises(AuthFailed):
            await DaemonClient(DaemonAddress(host=addr.host, port=addr.port, token="nope-nope-nope-nope")).connect()
        async with DaemonClient(addr, reconnect=False) as client:
            assert (await client.ping())["pong"]
    finally:
        await server.stop()


async def test_two_clients_see_each_others_acks_within_a_second(served: tuple[ControlServer, FakeEngine]) -> None:
    server, engine = served
    incident = engine.open_incident()
    async with DaemonClient(server.address) as alice, DaemonClient(server.address) as bob:
        bob_events = bob.events()
        bob_snaps = bob.snapshots(hz=4)
        first = await asyncio.wait_for(anext(bob_snaps), 1.0)
        assert first.incidents[0].state == "firing"
        # events(): subscribe happens on first anext; make sure it is in place before acking.
        pending = asyncio.ensure_future(anext(bob_events))
        await eventually(lambda: bob._sub_events, what="bob subscribed")
        await bob.ping()  # the subscribe request was answered before this one
        started = time.perf_counter()
        await alice.ack(incident.id, by="alice")
        event = await asyncio.wait_for(pending, 1.0)
        assert event.event == "acknowledged" and event.actor == "alice"
        assert event.incident.acknowledged_by == "alice"
        snap = await asyncio.wait_for(anext(bob_snaps), 1.0)
        assert snap.incidents[0].state == "acknowledged"
        assert time.perf_counter() - started < 1.0


async def test_snapshots_pushed_only_when_seq_changes(served: tuple[ControlServer, FakeEngine]) -> None:
    server, engine = served
    async with DaemonClient(server.address) as client:
        snaps = client.snapshots(hz=4)
        s1 = await asyncio.wait_for(anext(snaps), 1.0)
        sent_before = server.client_stats()[0]["sent_frames"]
        for _ in range(3):  # 0.75 s of 4 Hz ticks with no change: nothing is sent
            server.push_due_snapshots()
            await asyncio.sleep(0.25)
        assert server.client_stats()[0]["sent_frames"] == sent_before
        engine.set_exchange("okx", status="degraded")
        s2 = await asyncio.wait_for(anext(snaps), 1.0)
        assert s2.seq > s1.seq and s2.exchanges["okx"].status == "degraded"


async def test_stalled_client_never_slows_the_daemon(sock_dir: Path) -> None:
    """A client that stops reading while events flood: the loop stays responsive, the client is cut off."""
    clock = RealClock()
    engine = FakeEngine(clock)
    config = unix_config(sock_dir, **{})
    config.daemon.control.max_event_backlog = 2_000
    server = ControlServer(engine, config, clock)
    await server.start()
    incident = engine.open_incident(summary="x" * 2000)  # ~5 kB per event frame
    try:
        assert server.address.socket_path is not None
        reader, writer = await asyncio.open_unix_connection(str(server.address.socket_path))
        writer.write(json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "client": "stalled"}).encode() + b"\n")
        writer.write(b'{"type":"request","id":1,"method":"subscribe","params":{"events":true,"snapshot_hz":4}}\n')
        await writer.drain()
        await reader.readline()  # welcome; from here on this client never reads again
        async with DaemonClient(server.address) as healthy:
            received = 0
            seen: list[int] = []

            async def consume() -> None:
                nonlocal received
                async for ev in healthy.events():  # the healthy client gets every event, in full, in order
                    received += 1
                    seen.append(int(str(ev.detail["note"]).split()[1]))

            consumer = asyncio.create_task(consume())
            await eventually(lambda: len(server.clients) == 2 and all(c.want_events for c in server.clients))

            lags: list[float] = []
            stop = asyncio.Event()

            async def ticker() -> None:
                interval = 0.01
                while not stop.is_set():
                    t0 = time.perf_counter()
                    await asyncio.sleep(interval)
                    lags.append(time.perf_counter() - t0 - interval)

            tick = asyncio.create_task(ticker())
            total = 0
            for _ in range(30):  # 30 bursts of 200 events = 6000 events, 30 MB for the stalled client
                engine.flood(200, incident)
                total += 200
                # Pace the storm to the healthy reader so only the stalled client can fall behind.
                await eventually(lambda t=total: received >= t, what=f"healthy client received {total} events")
            consumer.cancel()
            assert seen == list(range(200)) * 30
            stop.set()
            await tick
        # The stalled client was disconnected with a reason instead of growing without bound.
        assert all(c.name != "stalled" for c in server.clients)
        lags.sort()
        p99 = lags[int(len(lags) * 0.99) - 1]
        print(f"loop lag with a stalled client during 6000 events: p50 {lags[len(lags) // 2] * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms")
        assert p99 < 0.1, f"event-loop lag p99 {p99 * 1000:.1f} ms with a stalled client"
        # Its connection was closed: reading what was in flight ends in EOF (the bye is best effort).
        await asyncio.wait_for(reader.read(), 5.0)
        assert reader.at_eof()
        writer.close()
    finally:
        await server.stop()


async def test_client_reconnects_after_daemon_restart(sock_dir: Path) -> None:
    clock = RealClock()
    config = unix_config(sock_dir)
    engine = FakeEngine(clock)
    server = ControlServer(engine, config, clock)
    await server.start()
    states: list[str] = []
    client = DaemonClient(server.address, backoff_initial=0.05, backoff_max=0.2, on_state=states.append)
    await client.connect()
    snaps = client.snapshots(hz=4)
    await asyncio.wait_for(anext(snaps), 1.0)
    await server.stop()
    engine2 = FakeEngine(clock, location="restarted")
    engine2.seq = 1000
    server2 = ControlServer(engine2, config, clock)
    await server2.start()
    try:
        snap = await asyncio.wait_for(anext(snaps), 5.0)
        assert snap.location == "restarted"  # the subscription was restored on the new connection
        assert client.reconnects == 1 and "reconnecting" in states and client.connected
        assert (await client.ping())["pong"]
    finally:
        await client.close()
        await server2.stop()


async def test_disconnecting_clients_leave_the_daemon_serving(served: tuple[ControlServer, FakeEngine]) -> None:
    server, engine = served
    for _ in range(5):
        c = DaemonClient(server.address, reconnect=False)
        await c.connect()
        await c.subscribe(4, True)
        engine.open_incident()
        c._conn.writer.transport.abort()  # type: ignore[union-attr]  # vanish without a goodbye
    async with DaemonClient(server.address, reconnect=False) as client:
        assert len((await client.request("snapshot"))["incidents"]) == 5
    await eventually(lambda: not server.clients, what="dead clients dropped")


async def test_client_stops_reconnecting_when_the_new_daemon_speaks_another_version(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = RealClock()
    config = unix_config(sock_dir)
    server = ControlServer(FakeEngine(clock), config, clock)
    await server.start()
    client = DaemonClient(server.address, backoff_initial=0.05, backoff_max=0.2)
    await client.connect()
    snaps = client.snapshots(hz=4)
    await asyncio.wait_for(anext(snaps), 1.0)
    pending = asyncio.ensure_future(client.request("analyze", {"incident_id": "inc-x"}))
    await server.stop()
    with pytest.raises((CommandFailed, ConnectionLost)):
        await asyncio.wait_for(pending, 2.0)  # answered not_found, or failed by the drop: never hangs
    from cryptomon_tui.daemon import control as control_mod

    monkeypatch.setattr(control_mod, "PROTOCOL_VERSION", PROTOCOL_VERSION + 1)
    upgraded = ControlServer(FakeEngine(clock), config, clock)
    await upgraded.start()
    try:
        with pytest.raises(VersionMismatch):
            await asyncio.wait_for(anext(snaps), 5.0)
        assert client.state == "disconnected"
        with pytest.raises(VersionMismatch):
            await client.ping()
    finally:
        await client.close()
        await upgraded.stop()
