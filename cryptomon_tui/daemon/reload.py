"""Config reload without a restart: on SIGHUP, or when the file's content changes.

The watcher polls the file's stat on the injected clock and hashes it only when the stat moved, so
a touch without a change does nothing and an editor's rename-into-place is noticed. The engine
applies the new config (``EngineAPI.reload``) and keeps its state and open incidents.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from cryptomon_tui.clock import Clock
from cryptomon_tui.engine.api import ReloadResult

log = logging.getLogger(__name__)

StatKey = tuple[int, int, int]  # inode, size, mtime_ns


def _stat_and_hash(path: Path, previous: StatKey | None) -> tuple[StatKey | None, str | None]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    key = (st.st_ino, st.st_size, st.st_mtime_ns)
    if key == previous:
        return key, None
    try:
        return key, hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None, None


class ConfigWatcher:
    """Calls ``on_change`` once per real content change of ``path`` (and on ``trigger``)."""

    def __init__(
        self,
        path: Path,
        clock: Clock,
        on_change: Callable[[], Awaitable[ReloadResult]],
        interval: float = 2.0,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.on_change = on_change
        self.interval = interval
        self._stat: StatKey | None = None
        self._hash: str | None = None
        self._missing_logged = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.last_result: ReloadResult | None = None

    async def prime(self) -> None:
        """Remember the current content: the config the daemon started with is not a change."""
        self._stat, self._hash = await asyncio.to_thread(_stat_and_hash, self.path, None)

    async def check_once(self) -> bool:
        """Reload if the content changed since the last look. Returns whether it reloaded."""
        key, digest = await asyncio.to_thread(_stat_and_hash, self.path, self._stat)
        if key is None:
            if not self._missing_logged:
                log.warning("config file %s is gone or unreadable: keeping the running config", self.path)
                self._missing_logged = True
            return False
        self._missing_logged = False
        self._stat = key
        if digest is None or digest == self._hash:
            return False
        self._hash = digest
        await self.trigger("file changed")
        return True

    async def trigger(self, reason: str) -> ReloadResult:
        async with self._lock:
            log.info("reloading the config (%s)", reason)
            try:
                result = await self.on_change()
            except Exception as exc:
                log.exception("config reload failed; the running config stays")
                result = ReloadResult(False, error=f"{type(exc).__name__}: {exc}")
            self.reloads += 1
            self.last_result = result
            if result.ok:
                log.info("config reloaded: %s", ", ".join(result.changed) or "no changes")
            else:
                log.error("config reload refused, the running config stays: %s", result.error)
            return result

    async def run(self) -> None:
        if self._hash is None:
            await self.prime()
        while True:
            await self.clock.sleep(self.interval)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config watcher failed")

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="config-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def install_sighup(callback: Callable[[], None]) -> bool:
    """Run ``callback`` on SIGHUP (on the event loop). False where signals are unavailable."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, callback)
    except (NotImplementedError, RuntimeError, AttributeError, ValueError):
        return False
    return True
