"""Issue 14 item 4 and its acceptance: a fault that comes back after a real quiet spell is a new incident,
a problem that keeps flipping is one flapping incident.

Replayed with ``backtest.replay`` (what ``cryptomon backtest`` runs: the real pipeline on a FakeClock that
follows the rows) in the daemon's default configuration: one exchange, two probes, an answer every second
(and every 5 s, the default interval), ~40 ms when healthy.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cryptomon_tui.backtest import replay
from cryptomon_tui.config import config_from_data
from cryptomon_tui.config.detection import IncidentsConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import Outcome, ProbeResult

T0 = 1_700_000_000.0
PROBES = ("ping", "time")
FAILED_LATENCY = {Outcome.TIMEOUT: None, Outcome.CONNECT: None}
STATUS = {Outcome.HTTP_5XX: 503}

Down = Callable[[float], bool]  # seconds since start -> is the exchange failing then


def _rows(duration: float, down: Down, outcome: Outcome, every: float = 1.0) -> list[ProbeResult]:
    rows: list[ProbeResult] = []
    steps = round(duration / every)
    for i in range(1, steps + 1):
        t = i * every
        for probe in PROBES:
            if down(t):
                latency = FAILED_LATENCY.get(outcome, 30.0)
                rows.append(ProbeResult("binance", probe, T0 + t, latency, outcome, http_status=STATUS.get(outcome)))
            else:
                rows.append(ProbeResult("binance", probe, T0 + t, 40.0, Outcome.OK, http_status=200))
    return rows


def _replay(rows: list[ProbeResult]) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    replay(rows, config_from_data({}), events.append)
    return events


def _kinds(events: list[IncidentEvent]) -> list[tuple[str, str]]:
    return [(e.event.value, e.incident.id) for e in events if e.event is not EventType.UPDATED]


def _faults(*windows: tuple[float, float]) -> Down:
    return lambda t: any(a < t <= b for a, b in windows)


@pytest.mark.parametrize("apart_min", [10, 5, 3])
@pytest.mark.parametrize("outcome", [Outcome.HTTP_5XX, Outcome.TIMEOUT, Outcome.CONNECT])
@pytest.mark.parametrize("every", [1.0, 5.0])
def test_two_faults_minutes_apart_are_two_incidents_neither_flapping(
    apart_min: int, outcome: Outcome, every: float
) -> None:
    """Two 45 s outages starting ``apart_min`` minutes apart: two incidents (own ids, each opened and resolved
    once, no reopen), neither flapping, each resolved within 15 s of its fault's end."""
    first = (300.0, 345.0)
    second = (300.0 + apart_min * 60, 345.0 + apart_min * 60)
    events = _replay(_rows(second[1] + 300, _faults(first, second), outcome, every))
    kinds = _kinds(events)
    opened = [e for e in events if e.event is EventType.OPENED]
    resolved = [e for e in events if e.event is EventType.RESOLVED]
    assert len(opened) == 2, kinds
    assert opened[0].incident.id != opened[1].incident.id
    assert [e.incident.id for e in resolved] == [opened[0].incident.id, opened[1].incident.id], kinds
    assert not [k for k in kinds if k[0] in ("reopened", "flapping")], kinds
    assert not any(e.incident.flapping for e in events)
    for (start, end), op, res in zip((first, second), opened, resolved, strict=True):
        assert T0 + start < op.ts <= T0 + start + 20, (op.ts - T0, kinds)
        assert T0 + end < res.ts <= T0 + end + 15 + every, (res.ts - T0, kinds)
        assert op.incident.exchange == "binance"


def test_a_fault_back_while_its_recovery_was_being_confirmed_reopens_the_same_incident() -> None:
    """The reopen window's other side: back 30 s after the resolve is the same problem (same id, reopened)."""
    events = _replay(_rows(900, _faults((300, 345), (375, 420)), Outcome.HTTP_5XX))
    kinds = _kinds(events)
    [opened] = [e for e in events if e.event is EventType.OPENED]
    [reopened] = [e for e in events if e.event is EventType.REOPENED]
    first_resolve = next(e for e in events if e.event is EventType.RESOLVED)
    assert reopened.incident.id == opened.incident.id and reopened.incident.reopen_count == 1, kinds
    assert reopened.ts - first_resolve.ts < IncidentsConfig().reopen_cooldown
    assert [k for k in kinds if k[0] == "flapping"] == []
    assert kinds[-1][0] == "resolved"


@pytest.mark.parametrize("every", [1.0, 5.0])
@pytest.mark.parametrize("period", [30.0, 60.0, 120.0])
def test_a_flapping_fault_is_one_incident_marked_flapping(every: float, period: float) -> None:
    """Down and up every ``period``/2 for 20 minutes: one incident (opened once, reopened under the same id),
    marked flapping once, held open while it flips and for ``flap_calm`` after, then resolved once."""
    half = period / 2
    flips_end = 300 + 1200.0
    calm = IncidentsConfig().flap_calm
    events = _replay(
        _rows(flips_end + calm + 120, lambda t: 300 < t <= flips_end and (t - 300) % period <= half,
              Outcome.HTTP_5XX, every)
    )
    kinds = _kinds(events)
    ids = {e.incident.id for e in events}
    assert len(ids) == 1, kinds
    assert [k for k, _ in kinds].count("opened") == 1
    assert [k for k, _ in kinds].count("flapping") == 1
    flapped = next(e for e in events if e.event is EventType.FLAPPING)
    assert flapped.incident.flapping and flapped.ts < T0 + 300 + 5 * period, kinds
    resolved = [e for e in events if e.event is EventType.RESOLVED]
    # held open from the flapping mark until calm: the only resolve before it is one of the first flips
    assert T0 + flips_end + calm - period <= resolved[-1].ts <= T0 + flips_end + calm + 30, kinds
    assert all(r.ts < flapped.ts for r in resolved[:-1])
    assert kinds[-1][0] == "resolved"


def test_a_fault_back_every_3_minutes_is_two_incidents_then_one_recurring_flapping_one() -> None:
    """Six 45 s outages 3 minutes apart: the first two come back after a real quiet spell, so they are
    incidents of their own; the third fire within flap_window (30 min) is the rule coming back again:
    the same problem, so it reopens the second incident, which is held open as flapping through the
    later outages until flap_calm after the last one."""
    windows = [(300.0 + 180 * i, 345.0 + 180 * i) for i in range(6)]
    calm = IncidentsConfig().flap_calm
    events = _replay(_rows(windows[-1][1] + calm + 120, _faults(*windows), Outcome.HTTP_5XX))
    kinds = _kinds(events)
    opened = [e.incident.id for e in events if e.event is EventType.OPENED]
    assert len(opened) == len(set(opened)) == 2, kinds
    reopened = [e for e in events if e.event is EventType.REOPENED]
    assert [e.incident.id for e in reopened] == [opened[1]], kinds
    assert windows[2][0] < reopened[0].ts - T0 <= windows[2][0] + 15, kinds
    [flapped] = [e for e in events if e.event is EventType.FLAPPING]
    assert flapped.incident.id == opened[1] and windows[2][1] < flapped.ts - T0 <= windows[2][1] + 30, kinds
    resolved = [e for e in events if e.event is EventType.RESOLVED]
    assert [e.incident.id for e in resolved] == [opened[0], opened[1], opened[1]], kinds
    assert T0 + windows[-1][1] + calm - 15 <= resolved[-1].ts <= T0 + windows[-1][1] + calm + 30, kinds
