"""Config watcher on a FakeClock: reloads once per real content change, never on a touch."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.daemon.reload import ConfigWatcher
from cryptomon_tui.engine.api import ReloadResult
from tests.fakes.waiting import eventually


async def test_watcher_reloads_on_content_change_only(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("exchanges:\n  binance:\n    interval: 5s\n")
    clock = FakeClock()
    calls: list[str] = []

    async def on_change() -> ReloadResult:
        calls.append(path.read_text())
        return ReloadResult(True, ("exchanges",))

    watcher = ConfigWatcher(path, clock, on_change, interval=2.0)
    watcher.start()
    try:
        await eventually(lambda: watcher._hash is not None, what="primed")
        await clock.advance(10)
        assert calls == []  # the starting config is not a change
        os.utime(path, ns=(1, 1))  # touched, same content
        await clock.advance(2)
        await asyncio.sleep(0.05)
        assert calls == []
        path.write_text("exchanges:\n  binance:\n    interval: 1s\n")
        await clock.advance(2)
        await eventually(lambda: len(calls) == 1, what="reload after edit")
        assert "interval: 1s" in calls[0]
        await clock.advance(20)
        await asyncio.sleep(0.05)
        assert len(calls) == 1  # once per change
        # an editor's write-to-temp-and-rename is a change too
        tmp = tmp_path / "config.yaml.tmp"
        tmp.write_text("exchanges:\n  binance:\n    interval: 2s\n")
        tmp.replace(path)
        await clock.advance(2)
        await eventually(lambda: len(calls) == 2, what="reload after rename")
    finally:
        await watcher.stop()


async def test_missing_file_and_failed_reload_keep_running(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: 1\n")
    clock = FakeClock()

    async def broken() -> ReloadResult:
        raise ValueError("interval must be at least 100ms")

    watcher = ConfigWatcher(path, clock, broken)
    await watcher.prime()
    path.unlink()
    assert await watcher.check_once() is False
    path.write_text("a: 2\n")
    assert await watcher.check_once() is True
    assert watcher.last_result is not None and watcher.last_result.ok is False
    assert "100ms" in (watcher.last_result.error or "")
    result = await watcher.trigger("SIGHUP")
    assert result.ok is False and watcher.reloads == 2
