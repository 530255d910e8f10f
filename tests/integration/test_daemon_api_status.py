"""`cryptomon status`: text and JSON from a running daemon, exit codes 0 / 1 / 3."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptomon_tui.cli import main
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import load_config
from cryptomon_tui.daemon.control import ControlServer
from cryptomon_tui.kernel.severity import Severity
from tests.fakes.fake_engine import FakeEngine


@pytest.fixture
def config_file(tmp_path: Path) -> Iterator[Path]:
    sock_dir = Path(tempfile.mkdtemp(prefix="cms-", dir="/tmp"))
    path = tmp_path / "config.yaml"
    path.write_text(f"daemon:\n  location: frankfurt\n  control:\n    socket_path: {sock_dir}/c.sock\n")
    yield path
    shutil.rmtree(sock_dir, ignore_errors=True)


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_status_exit_codes_and_output(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_cli("status", "--config", str(config_file)) == 3
    err = capsys.readouterr().err
    assert "no cryptomon daemon is running" in err and "c.sock" in err

    clock = RealClock()
    engine = FakeEngine(clock, location="frankfurt")
    config, _ = load_config(config_file)
    server = ControlServer(engine, config, clock)
    await server.start()
    try:
        assert await run_cli("status", "--config", str(config_file)) == 0
        out = capsys.readouterr().out
        assert "frankfurt" in out and "binance" in out and "OK" in out and "INCIDENTS: 0 open" in out

        engine.open_incident(severity=Severity.CRITICAL, exchange="okx", summary="okx [bold]down\x1b[2J")
        engine.set_exchange("okx", status="down")
        assert await run_cli("status", "--config", str(config_file)) == 1
        out = capsys.readouterr().out
        assert "PROBLEMS" in out and "CRITICAL" in out and "okx [bold]down" in out and "\x1b" not in out

        assert await run_cli("status", "--json", "--config", str(config_file)) == 1
        data = json.loads(capsys.readouterr().out)
        assert data["ok"] is False and data["not_ok"] == ["okx"] and data["incidents"][0]["severity"] == "critical"
        assert data["location"] == "frankfurt" and data["health"]["loop"] is True
    finally:
        await server.stop()


async def test_status_refuses_a_newer_snapshot_schema(config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A daemon whose snapshot speaks a newer schema may have renamed what status reads: exit 4 and say so,
    never "OK" from keys that are not there."""
    from cryptomon_tui.kernel.snapshot import SCHEMA_VERSION
    from tests.fakes.impostor_daemon import impostor_daemon

    newer = {"schema": SCHEMA_VERSION + 1, "seq": 1, "location": "future", "exchanges": {}, "incidents_v2": []}
    async with impostor_daemon([], {"snapshot": newer, "health": {"loop": True}}) as address:
        argv = ("status", "--config", str(config_file), "--socket", str(address.socket_path))
        assert await run_cli(*argv) == 4
        assert "daemon speaks schema" in capsys.readouterr().err
        assert await run_cli(*argv, "--json") == 4
        data = json.loads(capsys.readouterr().out)
        assert data["ok"] is False and data["error"] == "schema"
        same = {**newer, "schema": SCHEMA_VERSION}
    async with impostor_daemon([], {"snapshot": same, "health": {"loop": True}}) as address:
        assert await run_cli("status", "--config", str(config_file), "--socket", str(address.socket_path)) == 0
        assert "future" in capsys.readouterr().out
