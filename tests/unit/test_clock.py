import asyncio

from cryptomon_tui.clock import FakeClock


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
