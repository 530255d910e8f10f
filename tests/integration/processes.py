"""Ending the real processes the integration tests start (daemons, simulators), one way everywhere."""

from __future__ import annotations

import asyncio
import signal


async def stop(proc: asyncio.subprocess.Process, grace_s: float = 20.0) -> None:
    """SIGTERM and wait for a clean exit (its shutdown is part of what the tests check); SIGKILL after
    ``grace_s``. Nothing if it already exited."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def kill_hard(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL, as a crash or the OOM killer would: no shutdown code runs."""
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL


async def reap(proc: asyncio.subprocess.Process) -> None:
    """The cleanup of a ``finally``: kill it if a failed test left it running."""
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
