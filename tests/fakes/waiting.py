"""Wait for a condition in tests without sleep-based timing asserts: the bound only stops a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def eventually(predicate: Callable[[], bool], within_s: float = 5.0, what: str = "condition") -> None:
    for _ in range(int(within_s / 0.005)):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{what} not reached within {within_s:g}s")
