"""Analyses in flight never delay the engine loop: a ticking task keeps its schedule while 5 slow
analyses stream from a slow provider."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from cryptomon_tui.analysis.context import build_context
from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.service import AnalysisService
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.analysis import AnalysisConfig, LlmConfig
from tests.fakes import analysis_scenarios as sc
from tests.fakes.openai_server import FakeOpenAIServer, Step

TICK_S = 0.01


@pytest.fixture
def slow_server() -> Iterator[FakeOpenAIServer]:
    srv = FakeOpenAIServer()
    srv.default = Step(delay=0.4, chunk_chars=6, chunk_delay=0.01)  # ~0.4 s to first byte, ~0.6 s of streaming
    srv.start_in_thread()  # the provider lives on its own loop, like a remote server
    yield srv
    srv.stop_thread()


async def _ticker(lags: list[float], stop: asyncio.Event) -> None:
    """What a probe scheduler does: wake every 10 ms and note how late it woke."""
    loop = asyncio.get_running_loop()
    due = loop.time() + TICK_S
    while not stop.is_set():
        await asyncio.sleep(max(0.0, due - loop.time()))
        lags.append(loop.time() - due)
        due += TICK_S


async def measure(server: FakeOpenAIServer) -> dict[str, Any]:
    """Five analyses streaming from ``server`` beside a 10 ms ticker; the ticker's lags idle and during them.
    Also used by bench/bench_analysis.py, which holds the lag targets (timing is a benchmark's business)."""
    llm = LlmConfig(base_url=server.url, model="deepseek-chat", api_key=SecretStr("sk-x-123456"), stream=True,
                    timeout=10)
    config = Config(analysis=AnalysisConfig(llm=llm))
    svc = AnalysisService(config, InMemoryUsageLedger(), RealClock())
    scenarios = [make() for make in sc.ALL_SCENARIOS[:5]]
    contexts = [build_context(s.incident, s.stats, s.results, s.others, config, now=s.now) for s in scenarios]
    await svc.warm_up()  # what the engine does at start, before probing: imports and client setup, once

    stop = asyncio.Event()
    idle_lags: list[float] = []
    ticking = asyncio.create_task(_ticker(idle_lags, stop))
    await asyncio.sleep(0.5)
    stop.set()
    await ticking

    lags: list[float] = []
    stop = asyncio.Event()
    ticking = asyncio.create_task(_ticker(lags, stop))
    started = time.perf_counter()
    tasks = [svc.start_background(ctx) for ctx in contexts]  # returns at once: nothing awaited here
    scheduled_in = time.perf_counter() - started
    pending_after_scheduling = sum(not t.done() for t in tasks)
    results = await asyncio.gather(*tasks)
    stop.set()
    await ticking
    await svc.aclose()
    lags.sort()
    idle_lags.sort()
    return {
        "results": results, "pending_after_scheduling": pending_after_scheduling, "ticks": len(lags),
        "scheduled_in_s": scheduled_in, "p50_s": lags[len(lags) // 2], "p99_s": lags[int(0.99 * (len(lags) - 1))],
        "max_s": lags[-1], "idle_p99_s": idle_lags[int(0.99 * (len(idle_lags) - 1))],
    }


@pytest.mark.timeout(60)
async def test_five_slow_analyses_do_not_delay_a_ticking_task(slow_server: FakeOpenAIServer) -> None:
    m = await measure(slow_server)
    results = m["results"]
    assert all(r.source == "deepseek-chat" for r in results), [r.notes for r in results]
    assert len(slow_server.requests) == 5
    assert m["pending_after_scheduling"] == 5  # start_background awaited nothing: all five still running
    print(f"ticks={m['ticks']} p50={m['p50_s'] * 1000:.1f}ms p99={m['p99_s'] * 1000:.1f}ms "
          f"max={m['max_s'] * 1000:.1f}ms idle_p99={m['idle_p99_s'] * 1000:.1f}ms")
    assert m["ticks"] >= 50  # the ticker kept ticking through the analyses (they took at least half a second)
    # How late the ticker woke (p99 < max(75 ms, 3x idle + 50 ms), max < 250 ms; 90-230 ms before the fixes:
    # CPU work on the loop, five worker threads fighting over the GIL, lazy imports on the first reply) is a
    # speed figure: bench/bench_analysis.py measures it (a timed assert here failed whenever other work loaded
    # the shared 2-core machine).
