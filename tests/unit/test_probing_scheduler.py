"""Scheduler and probe runner with a fake clock and a scripted transport: cadence, jitter, lag, breaker, backoff."""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import pytest

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.root import Config
from cryptomon_tui.kernel.results import BreakerState, Outcome, ProbeResult
from cryptomon_tui.probing.runner import ProbeRunner
from cryptomon_tui.probing.transport import TransportOptions, TransportRequest, TransportResult
from tests.fakes.probing_fakes import ScriptedTransport, error_result, fake_adapter_factory, ok_result


def config(interval: str = "1s", probes: list[str] | None = None, jitter: float = 0.0, **ex: object) -> Config:
    return Config.model_validate({
        "exchanges": {"fx": {"kind": "bybit", "interval": interval, "probes": probes or ["ping"], "timeout": "1s",
                             **ex}},
        "probing": {"jitter": jitter, "budget_share": 1.0,
                    "breaker": {"failure_threshold": 3, "cooldown": "5s", "max_cooldown": "40s"}},
    })


class Harness:
    def __init__(self, cfg: Config, responder=None, seed: int = 1) -> None:  # type: ignore[no-untyped-def]
        self.clock = FakeClock()
        self.transport = ScriptedTransport(self.clock, responder)
        self.results: list[ProbeResult] = []
        self.options: TransportOptions | None = None

        def factory(name: str, options: TransportOptions) -> ScriptedTransport:
            self.options = options
            return self.transport

        self.runner = ProbeRunner(cfg, clock=self.clock, transport_factory=factory,
                             adapter_factory=fake_adapter_factory, rng=random.Random(seed))
        self.runner.subscribe_results(self.results.append)

    async def __aenter__(self) -> Harness:
        await self.runner.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.stop()


async def test_cadence_without_jitter_is_exact_and_does_not_drift() -> None:
    async with Harness(config("2s")) as h:
        await h.clock.advance(100)
        times = [s.mono for s in h.transport.sent]
        gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
        assert gaps == {2.0}
        assert len(times) in (49, 50)
        assert all(r.outcome is Outcome.OK for r in h.results)
        state = h.runner.probe_state()["fx"]
        assert state["schedule_lag"]["count"] == len(times)  # type: ignore[index]
        assert state["schedule_lag"]["max_ms"] == 0  # type: ignore[index]


async def test_jitter_stays_inside_its_share_and_nominal_slots_do_not_drift() -> None:
    async with Harness(config("1s", jitter=0.2), seed=7) as h:
        await h.clock.advance(1000)
        times = [s.mono for s in h.transport.sent]
        first = times[0]
        # every send is within +-20 % of its nominal slot first + k (jitter of the first send is 0)
        offsets = [t - first - k for k, t in enumerate(times)]
        assert max(abs(o) for o in offsets) <= 0.2 + 1e-9
        assert max(offsets) > 0.1 and min(offsets) < -0.1  # jitter is really applied both ways
        assert 998 <= len(times) <= 1001  # no drift over 1000 intervals


async def test_each_probe_keeps_its_own_effective_interval() -> None:
    cfg = config("1s", probes=["ping", "status"])
    async with Harness(cfg) as h:
        await h.clock.advance(60)
        paths = [s.request.url.rsplit("/", 1)[-1] for s in h.transport.sent]
        assert 59 <= paths.count("ping") <= 61
        assert 11 <= paths.count("status") <= 12  # fake status endpoint: 1 call per 5 s (we keep 2 % under)
        planned = h.runner.probe_state()["fx"]["probes"]
        assert planned["status"]["interval_s"] == 5.1 and planned["status"]["stretched"]  # type: ignore[index]


async def test_jitter_never_brings_two_sends_closer_than_the_endpoint_limit() -> None:
    async with Harness(config("1s", probes=["status"], jitter=0.5), seed=3) as h:
        await h.clock.advance(600)
        times = [s.mono for s in h.transport.sent]
        assert len(times) > 100
        assert min(b - a for a, b in itertools.pairwise(times)) >= 5.0  # the fake endpoint: 1 call per 5 s
        assert max(b - a for a, b in itertools.pairwise(times)) > 5.5  # jitter still spreads them


async def test_schedule_lag_is_measured_when_the_loop_is_late() -> None:
    lags: list[float] = []
    clock = FakeClock()
    transport = ScriptedTransport(clock)
    runner = ProbeRunner(config("1s"), clock=clock, transport_factory=lambda n, o: transport,
                    adapter_factory=fake_adapter_factory, lag_hook=lambda ex, p, lag: lags.append(lag))
    await runner.start()
    await clock.advance(3)
    # Jump the clock past the next deadline in one step: the worker wakes late by 0.25 s.
    nxt = transport.sent[-1].mono + 1
    clock.set(clock.now() + (nxt - clock.monotonic()) + 0.25)
    await clock.advance(0)
    await runner.stop()
    assert lags[-1] == pytest.approx(250, abs=1)
    assert runner.probe_state()["fx"]["schedule_lag"]["max_ms"] == pytest.approx(250, abs=1)  # type: ignore[index]


async def test_breaker_opens_skips_at_a_low_rate_and_sends_one_trial() -> None:
    failing = True
    gate = asyncio.Event()
    gate.set()

    def responder(req: TransportRequest) -> TransportResult:
        return error_result(Outcome.TIMEOUT) if failing else ok_result()

    cfg = config("500ms", probes=["ping", "time"])
    async with Harness(cfg, responder) as h:
        h.transport.gate = gate
        await h.clock.advance(2)  # 3 failures open it (threshold 3)
        assert h.runner.workers["fx"].breaker.state is BreakerState.OPEN
        sent_when_open = len(h.transport.sent)
        breaker = h.runner.workers["fx"].breaker
        assert breaker.next_trial_mono is not None
        await h.clock.advance(breaker.next_trial_mono - h.clock.monotonic() - 0.01)  # inside the cool-down
        assert len(h.transport.sent) == sent_when_open
        skipped = [r for r in h.results if r.outcome is Outcome.SKIPPED_OPEN_CIRCUIT]
        assert {r.probe for r in skipped} == {"ping", "time"}
        assert len(skipped) == 2  # once per cool-down per probe, not once per slot
        assert all(r.latency_ms is None and r.breaker is BreakerState.OPEN for r in skipped)
        # the trial hangs: only one request goes out whatever the number of slots
        gate.clear()
        failing = False
        await h.clock.advance(3)
        assert len(h.transport.sent) == sent_when_open + 1
        assert h.runner.workers["fx"].breaker.state is BreakerState.HALF_OPEN
        gate.set()
        await h.clock.advance(1)
        assert h.runner.workers["fx"].breaker.state is BreakerState.CLOSED
        assert h.results[-1].outcome is Outcome.OK
        assert len(h.transport.sent) > sent_when_open + 1


async def test_rate_limit_pauses_the_exchange_for_retry_after() -> None:
    calls = {"n": 0}

    def responder(req: TransportRequest) -> TransportResult:
        calls["n"] += 1
        if calls["n"] == 3:
            return ok_result(status=429, body=b"{}", headers={"retry-after": "20"})
        return ok_result()

    async with Harness(config("1s", probes=["ping", "time"]), responder) as h:
        await h.clock.advance(2.5)
        limited_at = next(s.mono for s in h.transport.sent[2:3])
        await h.clock.advance(20)
        after = [s.mono for s in h.transport.sent if s.mono > limited_at]
        assert after == [] or min(after) >= limited_at + 20
        await h.clock.advance(5)
        after = [s.mono for s in h.transport.sent if s.mono > limited_at]
        assert after and min(after) >= limited_at + 21  # Retry-After + safety margin
        backoff = h.runner.probe_state()["fx"]["backoff"]
        assert backoff["paused"] is False
        rl = [r for r in h.results if r.outcome is Outcome.RATE_LIMITED]
        assert len(rl) == 1 and rl[0].retry_after_s == 20


async def test_pause_and_resume_an_exchange() -> None:
    async with Harness(config("1s")) as h:
        await h.clock.advance(5)
        h.runner.pause("fx")
        n = len(h.transport.sent)
        await h.clock.advance(30)
        assert len(h.transport.sent) == n
        assert h.runner.probe_state()["fx"]["paused"] is True
        h.runner.resume("fx")
        await h.clock.advance(5)
        assert len(h.transport.sent) >= n + 4
        with pytest.raises(KeyError, match="unknown exchange"):
            h.runner.pause("nope")


async def test_clock_offset_uses_the_server_window_midpoint() -> None:
    clock_holder: dict[str, FakeClock] = {}

    def responder(req: TransportRequest) -> TransportResult:
        now = clock_holder["c"].now()
        # the server answered between now+0.010 and now+0.030 and says it is 500 ms ahead of our midpoint
        body = json.dumps({"ok": True, "serverTime": (now + 0.020) * 1000 + 500}).encode()
        return ok_result(body=body, latency_ms=40, sent_at=now, window=(now + 0.010, now + 0.030))

    async with Harness(config("1s", probes=["time"]), responder) as h:
        clock_holder["c"] = h.clock
        await h.clock.advance(2)
        r = h.results[-1]
        assert r.clock_offset_ms == pytest.approx(500, abs=1e-3)
        assert r.clock_error_ms == pytest.approx(10, abs=1e-3)
        assert r.latency_ms == 40
        assert r.to_json_dict()["breaker"] == "closed"


async def test_signed_probe_uses_the_adapter_query_verbatim_and_keys_never_reach_results() -> None:
    cfg = config("1s", probes=["account"], credentials={"api_key": "KEY123", "api_secret": "SECRET456"})
    async with Harness(cfg) as h:
        await h.clock.advance(2)
        req = h.transport.sent[0].request
        assert "/account?timestamp=" in req.url
        assert "signature=abc" in req.url and req.headers["X-KEY"] == "KEY123"
        dumped = json.dumps([r.to_json_dict() for r in h.results])
        assert "KEY123" not in dumped and "SECRET456" not in dumped


async def test_a_raising_adapter_or_subscriber_never_stops_the_worker() -> None:
    async with Harness(config("1s")) as h:
        h.runner.workers["fx"].adapter.classify = lambda probe, resp: 1 / 0  # type: ignore[method-assign]
        boom = []

        def bad_subscriber(r: ProbeResult) -> None:
            boom.append(r)
            raise RuntimeError("subscriber bug")

        h.runner.subscribe_results(bad_subscriber)
        await h.clock.advance(5)
        assert len(boom) >= 4
        sent = [r for r in h.results if r.outcome is not Outcome.SKIPPED_OPEN_CIRCUIT]
        assert sent and all(r.outcome is Outcome.BAD_PAYLOAD for r in sent)
        assert h.runner.workers["fx"].breaker.state is BreakerState.OPEN  # unreadable answers count as failures
        assert "ZeroDivisionError" in (sent[-1].error_message or "")


async def test_pool_size_covers_probes_in_flight() -> None:
    async with Harness(config("250ms", probes=["ping", "time"], timeout="2s")) as h:
        assert h.options is not None and h.options.max_connections >= 2 * (8 + 1)
        assert h.options.wall == h.clock.now


async def test_a_rebuilt_runner_keeps_the_rate_limit_pause_of_the_one_it_replaces() -> None:
    calls = {"n": 0}

    def responder(req: TransportRequest) -> TransportResult:
        calls["n"] += 1
        if calls["n"] == 2:
            return ok_result(status=429, body=b"{}", headers={"retry-after": "60"})
        return ok_result()

    async with Harness(config("1s"), responder) as h:
        await h.clock.advance(3)
        assert h.runner.probe_state()["fx"]["backoff"]["paused"] is True  # type: ignore[index]
        await h.runner.stop()
        transport = ScriptedTransport(h.clock)
        rebuilt = ProbeRunner(config("1s"), clock=h.clock, transport_factory=lambda n, o: transport,
                         adapter_factory=fake_adapter_factory)
        rebuilt.adopt_state(h.runner)
        await rebuilt.start()
        await h.clock.advance(30)
        assert transport.sent == []  # still inside the 60 s Retry-After
        await h.clock.advance(40)
        assert transport.sent
        await rebuilt.stop()
