"""Circuit breaker: thresholds, exponential cool-down, exactly one half-open trial."""

from __future__ import annotations

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config.exchanges import BreakerConfig
from cryptomon_tui.kernel.results import BreakerState, Outcome
from cryptomon_tui.probing.breaker import BREAKER_FAILURES, Admission, CircuitBreaker


def make(threshold: int = 3, cooldown: float = 5, max_cooldown: float = 30) -> tuple[CircuitBreaker, FakeClock]:
    clock = FakeClock()
    return CircuitBreaker(BreakerConfig(failure_threshold=threshold, cooldown=cooldown, max_cooldown=max_cooldown),
                          clock), clock


def test_opens_after_threshold_consecutive_failures_only() -> None:
    b, _ = make(threshold=3)
    b.record(Outcome.TIMEOUT)
    b.record(Outcome.RESET)
    b.record(Outcome.OK)  # a success in between restarts the count
    b.record(Outcome.HTTP_5XX)
    b.record(Outcome.CONNECT)
    assert b.state is BreakerState.CLOSED
    b.record(Outcome.DNS)
    assert b.state is BreakerState.OPEN
    assert b.admit() is Admission.SKIP
    assert b.transitions[-1].to_state is BreakerState.OPEN
    assert "3 consecutive failures" in b.transitions[-1].reason


def test_rate_limits_auth_and_maintenance_do_not_open_it() -> None:
    b, _ = make(threshold=1)
    for outcome in (Outcome.RATE_LIMITED, Outcome.IP_BANNED, Outcome.AUTH, Outcome.MAINTENANCE,
                    Outcome.CLOCK_SKEW, Outcome.HTTP_4XX, Outcome.SKIPPED_OPEN_CIRCUIT):
        b.record(outcome)
        assert b.state is BreakerState.CLOSED, outcome
    assert Outcome.BAD_PAYLOAD in BREAKER_FAILURES and Outcome.TIMEOUT in BREAKER_FAILURES


async def test_single_half_open_trial_after_cooldown_then_close() -> None:
    b, clock = make(threshold=1, cooldown=5)
    b.record(Outcome.TIMEOUT)
    assert b.state is BreakerState.OPEN
    assert b.next_trial_at == clock.now() + 5
    await clock.advance(4.9)
    assert b.admit() is Admission.SKIP
    await clock.advance(0.2)
    assert b.admit() is Admission.TRIAL
    assert b.state is BreakerState.HALF_OPEN
    # while the trial is in flight nobody else gets through
    assert [b.admit() for _ in range(5)] == [Admission.SKIP] * 5
    b.record(Outcome.OK, Admission.TRIAL)
    assert b.state is BreakerState.CLOSED
    assert b.cooldown_s == 5
    assert b.admit() is Admission.ALLOW
    states = [(t.from_state, t.to_state) for t in b.transitions]
    assert states == [(BreakerState.CLOSED, BreakerState.OPEN), (BreakerState.OPEN, BreakerState.HALF_OPEN),
                      (BreakerState.HALF_OPEN, BreakerState.CLOSED)]


async def test_cooldown_doubles_up_to_the_cap_and_resets_on_success() -> None:
    b, clock = make(threshold=1, cooldown=5, max_cooldown=30)
    b.record(Outcome.TIMEOUT)
    seen = []
    for _ in range(5):
        await clock.advance(b.cooldown_s)
        assert b.admit() is Admission.TRIAL
        b.record(Outcome.CONNECT, Admission.TRIAL)
        seen.append(b.cooldown_s)
    assert seen == [10, 20, 30, 30, 30]
    await clock.advance(29.9)
    assert b.admit() is Admission.SKIP
    await clock.advance(0.1)
    assert b.admit() is Admission.TRIAL
    b.record(Outcome.OK, Admission.TRIAL)
    assert b.cooldown_s == 5 and b.state is BreakerState.CLOSED


async def test_late_answers_do_not_change_an_open_circuit_and_abandoned_trial_reopens() -> None:
    b, clock = make(threshold=1, cooldown=5)
    b.record(Outcome.TIMEOUT)
    b.record(Outcome.OK)  # answer to a request sent before it opened
    assert b.state is BreakerState.OPEN
    await clock.advance(5)
    assert b.admit() is Admission.TRIAL
    b.abandon_trial()
    assert b.state is BreakerState.OPEN
    snap = b.snapshot()
    assert snap["state"] == "open" and snap["next_trial_at"] is not None
