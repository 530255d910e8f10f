"""Circuit breaker per exchange: stop hammering an exchange whose path is broken.

closed --N consecutive failures--> open --cool-down--> half_open (exactly one trial request)
half_open --trial succeeds--> closed (cool-down back to its base)
half_open --trial fails--> open again with the cool-down doubled, up to max_cooldown

What counts as a failure (``BREAKER_FAILURES``): the path or the service is broken: timeout, dns,
connect, tls, reset, http_5xx and bad_payload (a truncated body or an HTML error page from a proxy
in front of the API). Everything else that got an answer counts as a success, because the exchange
answered coherently:
- rate_limited / ip_banned have their own, stricter backoff (``probing.backoff``) that honours the
  exchange's Retry-After and ban expiry; the breaker must not second-guess it.
- maintenance is announced with an end time; the status probe has to keep seeing it to report when
  it ends, and probing a maintenance page at our budgeted rate harms nobody.
- auth, clock_skew, http_4xx and exchange_error are about our request (keys, clock, parameters),
  not about the exchange being down; opening the circuit would hide them behind "skipped".
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.exchanges import BreakerConfig
from cryptomon_tui.kernel.results import BreakerState, Outcome
from cryptomon_tui.kernel.snapshot import BreakerView
from cryptomon_tui.kernel.units import iso_utc

BREAKER_FAILURES = frozenset(
    {
        Outcome.TIMEOUT,
        Outcome.DNS,
        Outcome.CONNECT,
        Outcome.TLS,
        Outcome.RESET,
        Outcome.HTTP_5XX,
        Outcome.BAD_PAYLOAD,
    }
)


class Admission(enum.Enum):
    ALLOW = "allow"  # closed: send normally
    TRIAL = "trial"  # the single half-open request
    SKIP = "skip"  # open (or a trial already in flight): do not send


@dataclass(frozen=True, slots=True)
class Transition:
    at: float  # wall time
    from_state: BreakerState
    to_state: BreakerState
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"at": iso_utc(self.at), "from": self.from_state.value, "to": self.to_state.value, "reason": self.reason}


class CircuitBreaker:
    """State machine driven by probe outcomes; time comes from the injected clock."""

    def __init__(self, config: BreakerConfig, clock: Clock, history: int = 50) -> None:
        self.threshold = config.failure_threshold
        self.base_cooldown_s = float(config.cooldown)
        self.max_cooldown_s = max(float(config.max_cooldown), self.base_cooldown_s)
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.cooldown_s = self.base_cooldown_s
        self._opened_mono: float | None = None
        self._trial_in_flight = False
        self.transitions: deque[Transition] = deque(maxlen=history)

    # -- admission -----------------------------------------------------------------------
    def admit(self) -> Admission:
        """Ask before sending. At most one TRIAL is handed out until its outcome is recorded."""
        if self.state is BreakerState.CLOSED:
            return Admission.ALLOW
        if self.state is BreakerState.HALF_OPEN or self._trial_in_flight:
            return Admission.SKIP
        assert self._opened_mono is not None
        if self._clock.monotonic() >= self._opened_mono + self.cooldown_s:
            self._move(BreakerState.HALF_OPEN, "cool-down over: one trial request")
            self._trial_in_flight = True
            return Admission.TRIAL
        return Admission.SKIP

    def record(self, outcome: Outcome, admission: Admission = Admission.ALLOW) -> None:
        """Feed one sent probe's outcome back. Skipped probes are never recorded."""
        if not outcome.counts_as_attempt:
            return
        failed = outcome in BREAKER_FAILURES
        if admission is Admission.TRIAL:
            self._trial_in_flight = False
            if failed:
                self.cooldown_s = min(self.cooldown_s * 2, self.max_cooldown_s)
                self._open(f"trial failed ({outcome.value}); next trial in {self.cooldown_s:g}s")
            else:
                self.consecutive_failures = 0
                self.cooldown_s = self.base_cooldown_s
                self._move(BreakerState.CLOSED, f"trial succeeded ({outcome.value})")
            return
        if self.state is not BreakerState.CLOSED:
            return  # a request sent before the circuit opened: its answer does not change the state
        if failed:
            self.consecutive_failures += 1
            if self.consecutive_failures >= self.threshold:
                self._open(f"{self.consecutive_failures} consecutive failures, last {outcome.value}")
        else:
            self.consecutive_failures = 0

    def abandon_trial(self) -> None:
        """The trial was never answered (cancelled at shutdown/pause): allow a new one later."""
        if self._trial_in_flight:
            self._trial_in_flight = False
            self._open("trial abandoned")

    # -- observation ---------------------------------------------------------------------
    @property
    def next_trial_mono(self) -> float | None:
        if self.state is BreakerState.OPEN and self._opened_mono is not None:
            return self._opened_mono + self.cooldown_s
        return None

    @property
    def next_trial_at(self) -> float | None:
        """Wall time of the next half-open trial (None unless open)."""
        mono = self.next_trial_mono
        if mono is None:
            return None
        return self._clock.now() + max(0.0, mono - self._clock.monotonic())

    def view(self) -> BreakerView:
        """What the snapshot shows (state and the next trial)."""
        nxt = self.next_trial_at
        return BreakerView(self.state.value, None if nxt is None else iso_utc(nxt))

    def snapshot(self) -> dict[str, object]:
        nxt = self.next_trial_at
        return {
            "state": self.state.value,
            "consecutive_failures": self.consecutive_failures,
            "cooldown_s": self.cooldown_s,
            "next_trial_at": None if nxt is None else iso_utc(nxt),
            "transitions": [t.as_dict() for t in self.transitions],
        }

    # -- internals -----------------------------------------------------------------------
    def _open(self, reason: str) -> None:
        self._opened_mono = self._clock.monotonic()
        self._move(BreakerState.OPEN, reason)

    def _move(self, to: BreakerState, reason: str) -> None:
        if to is not self.state or to is BreakerState.OPEN:
            self.transitions.append(Transition(self._clock.now(), self.state, to, reason))
        self.state = to
