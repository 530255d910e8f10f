"""Injectable time.

Everything that reads the time or waits takes a ``Clock`` so that tests and backtests run
deterministic and as fast as the CPU allows: ``FakeClock`` only moves when told to.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    """Wall time for timestamps, monotonic time for intervals, and an awaitable sleep."""

    def now(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (for intervals and deadlines)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


async def wait_for(clock: Clock, awaitable: Awaitable[T], seconds: float) -> T:
    """``asyncio.wait_for`` on the injected clock: TimeoutError once ``seconds`` of clock time passed.

    On timeout the awaitable is cancelled and allowed to finish cancelling before this returns.
    """
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.wait({task})  # never raises the task's own error; our own cancellation still propagates
    raise TimeoutError


class RealClock:
    """The system's clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when ``advance``/``set`` is called.

    ``sleep`` parks the caller until the fake time reaches its deadline, so a test can
    run minutes of scheduler time in microseconds: ``await clock.advance(60)``.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    def set(self, epoch_seconds: float) -> None:
        """Jump wall and monotonic time forward to ``epoch_seconds`` (used by backtests)."""
        delta = epoch_seconds - self._now
        if delta > 0:
            self._now = epoch_seconds
            self._mono += delta
            if self._sleepers:
                self._wake()

    async def advance(self, seconds: float, step: float | None = None) -> None:
        """Move time forward, waking sleepers in deadline order and letting them run."""
        target = self._mono + seconds
        while True:
            await _settle()
            if self._sleepers and self._sleepers[0][0] <= target:
                deadline = self._sleepers[0][0]
                if step is not None:
                    deadline = min(deadline, self._mono + step)
                self._now += deadline - self._mono
                self._mono = deadline
                self._wake()
            else:
                self._now += target - self._mono
                self._mono = target
                await _settle()
                return

    def _wake(self) -> None:
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


async def _settle(rounds: int = 5) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
