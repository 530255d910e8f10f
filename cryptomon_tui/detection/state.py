"""Per rule-instance state machine: idle -> pending -> firing -> recovering -> idle.

Why: a threshold crossed once is not an incident. ``for`` makes a condition hold before firing;
recovery needs K consecutive good evaluations (and optionally a duration) so a borderline series
does not open and close incidents; a rule that still flips often is held open as flapping until it
calms down, and notified once.
"""

from __future__ import annotations

from collections import deque
from enum import Enum


class Phase(Enum):
    IDLE = 0
    PENDING = 1
    FIRING = 2
    RECOVERING = 3


class Step(Enum):
    NONE = 0
    FIRE = 1
    RESOLVE = 2
    FLAPPING = 3  # would have resolved, but flips too often: held open and marked


class RuleInstance:
    """One rule on one label set (exchange, probe). Pure state; conditions are computed outside."""

    __slots__ = (
        "armed_since",
        "exchange",
        "fingerprint",
        "fired_at",
        "flapping",
        "good",
        "key",
        "last_flip",
        "peak",
        "pending_since",
        "phase",
        "prev_cond",
        "probe",
        "recover_since",
        "rule",
        "sent_rule",
        "severity",
        "summary",
        "transitions",
    )  # fmt: skip

    def __init__(self, key: tuple[str, str | None, str | None], fingerprint: str) -> None:
        self.key = key
        self.rule, self.exchange, self.probe = key
        self.fingerprint = fingerprint
        self.phase = Phase.IDLE
        self.pending_since = 0.0
        self.good = 0
        self.recover_since = 0.0
        self.fired_at = 0.0
        self.armed_since = float("-inf")  # windowed rules only count data from here on
        self.transitions: deque[float] = deque(maxlen=64)
        self.flapping = False
        self.last_flip = float("-inf")
        self.prev_cond = False
        self.peak: dict[str, float] = {}
        self.severity = ""
        self.summary = ""
        self.sent_rule = self.rule

    @property
    def active(self) -> bool:
        return self.phase is not Phase.IDLE

    @property
    def firing(self) -> bool:
        return self.phase is Phase.FIRING or self.phase is Phase.RECOVERING

    def step(
        self,
        now: float,
        cond: bool,
        for_s: float,
        recover_evals: int,
        recover_for_s: float,
        flap_threshold: int,
        flap_window_s: float,
        flap_calm_s: float,
    ) -> Step:
        if cond != self.prev_cond:
            self.last_flip = now
            self.prev_cond = cond
        phase = self.phase
        if cond:
            if phase is Phase.IDLE:
                self.phase = phase = Phase.PENDING
                self.pending_since = now
            if phase is Phase.PENDING:
                if now - self.pending_since >= for_s:
                    self.phase = Phase.FIRING
                    self.fired_at = now
                    self.peak = {}
                    self._transition(now, flap_window_s)
                    return Step.FIRE
                return Step.NONE
            if phase is Phase.RECOVERING:
                self.phase = Phase.FIRING
                self.good = 0
            return Step.NONE
        # condition is good
        if phase is Phase.PENDING:
            self.phase = Phase.IDLE
            return Step.NONE
        if phase is Phase.IDLE:
            return Step.NONE
        if phase is Phase.FIRING:
            self.phase = Phase.RECOVERING
            self.good = 0
            self.recover_since = now
        self.good += 1
        if self.good < recover_evals or now - self.recover_since < recover_for_s:
            return Step.NONE
        if self.flapping:
            if now - self.last_flip < flap_calm_s:
                return Step.NONE
            return self._resolve(now)
        self._prune(now, flap_window_s)
        if len(self.transitions) >= flap_threshold:  # fired this often within the window: flapping
            self.flapping = True
            self.phase = Phase.RECOVERING
            return Step.FLAPPING
        return self._resolve(now)

    def _resolve(self, now: float) -> Step:
        self.phase = Phase.IDLE
        self.good = 0
        self.armed_since = now
        if self.flapping:
            self.flapping = False
            self.transitions.clear()
        return Step.RESOLVE

    def _transition(self, now: float, flap_window_s: float) -> None:
        """Count a fire (only fires: two real faults in the window are two fires, not four flips)."""
        self.transitions.append(now)
        self._prune(now, flap_window_s)

    def _prune(self, now: float, flap_window_s: float) -> None:
        t = self.transitions
        while t and t[0] < now - flap_window_s:
            t.popleft()

    def force_resolve(self, now: float) -> bool:
        """Disable-at-runtime path: drop a firing instance. Returns True if it was firing."""
        was = self.firing
        self.phase = Phase.IDLE
        self.good = 0
        self.flapping = False
        self.prev_cond = False  # idle means "condition not seen": the detector may skip idle instances
        self.armed_since = now
        return was
