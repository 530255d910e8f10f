import asyncio

import pytest

from cryptomon_tui.clock import FakeClock, wait_for


async def test_fake_clock_wakes_sleepers_in_order() -> None:
    clock = FakeClock(start=1000.0)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, delay: float) -> None:
        await clock.sleep(delay)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper("b", 2)), asyncio.create_task(sleeper("a", 1))]
    await clock.advance(1.5)
    assert woke == [("a", 1001.0)]
    await clock.advance(1)
    assert woke == [("a", 1001.0), ("b", 1002.0)]
    assert clock.now() == 1002.5
    await asyncio.gather(*tasks)


async def test_periodic_loop_runs_exact_count() -> None:
    clock = FakeClock()
    ticks = 0

    async def loop() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(0.1)
            ticks += 1

    task = asyncio.create_task(loop())
    await clock.advance(10.0)
    task.cancel()
    assert ticks == 100


async def test_wait_for_times_out_on_the_injected_clock_and_cancels_the_awaitable() -> None:
    clock = FakeClock()
    never: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    waiter = asyncio.create_task(wait_for(clock, never, 5.0))
    await clock.advance(4.9)
    assert not waiter.done()
    await clock.advance(0.2)
    with pytest.raises(TimeoutError):
        await waiter
    assert never.cancelled()


async def test_wait_for_returns_the_result_and_passes_errors_through() -> None:
    clock = FakeClock()
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    done.set_result(7)
    assert await wait_for(clock, done, 1.0) == 7
    failing: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    failing.set_exception(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        await wait_for(clock, failing, 1.0)
