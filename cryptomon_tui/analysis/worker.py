"""One worker thread for the analysis package's CPU work (rules, prompt building, redaction, client setup).

Why one: every extra CPU-bound thread takes turns on the GIL with the engine loop, so five analyses on
five threads made a 10 ms ticker wake ~90 ms late; queued on one thread the loop shares the GIL with
a single worker only.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def _get() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cryptomon-analysis")
        return _executor


async def off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` on the analysis worker thread and await its result."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_get(), functools.partial(fn, *args, **kwargs))
