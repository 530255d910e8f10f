"""`cryptomon simulate` as a process: prints base URLs and a ready line, serves, stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from cryptomon_tui.cli import main
from tests.integration.processes import reap


async def test_simulate_serves_until_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cryptomon_tui.cli", "simulate", "--scenario", "calm", "--port-base", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    try:
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
            assert line, "simulate exited before it was ready"
            if line.startswith("ready:"):
                assert "calm" in line
                break
            name, url = line.split()
            urls[name] = url
        assert set(urls) == {"binance", "binance_futures", "bybit", "okx", "deribit"}
        assert all(url.startswith("http://127.0.0.1:") for url in urls.values())
        async with aiohttp.ClientSession() as http, http.get(urls["binance"] + "/api/v3/time") as resp:
            assert resp.status == 200 and "serverTime" in await resp.json()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        await reap(proc)


def test_bad_scenario_file_exits_2_naming_file_and_key(tmp_path: Path, capsys: object) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("faults:\n  - exchange: okx\n    type: hang\n    sart: 1s\n", encoding="utf-8")
    assert main(["simulate", "--scenario", str(path)]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert str(path) in err and "faults.0.sart" in err and "Traceback" not in err


def test_list_shows_builtins(capsys: object) -> None:
    assert main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    for name in ("calm", "flaky", "outage", "rate-limit-storm", "maintenance", "clock-drift"):
        assert name in out
