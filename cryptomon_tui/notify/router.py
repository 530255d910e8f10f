"""Which channels hear about an incident, and when: routes, Alertmanager-style grouping, quiet hours.

Grouping (per channel, per route, per exchange): the first notice of a new group waits ``group_wait``
so its siblings can join; later notices of a live group go out on the next ``group_interval`` tick.
Everything due at the same moment on one channel can then be merged into one digest by the dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cryptomon_tui.config.notify import NotifyConfig, QuietHours, Route
from cryptomon_tui.incidents.model import Incident


def route_matches(route: Route, incident: Incident) -> bool:
    m = route.match
    if m.severity is not None and incident.severity.value not in m.severity:
        return False
    if m.exchange is not None:
        ex = (incident.exchange or "").lower()
        if ex not in {e.lower() for e in m.exchange}:
            return False
    if m.rule is not None and incident.rule not in m.rule:
        return False
    return not (m.probe is not None and (incident.probe or "") not in m.probe)


def quiet_until(quiet: QuietHours | None, now: float) -> float | None:
    """End of the quiet window containing ``now`` (epoch seconds), or None outside it."""
    if quiet is None:
        return None
    tz = ZoneInfo(quiet.tz)
    local = datetime.fromtimestamp(now, tz)
    start, end = quiet.start_time(), quiet.end_time()
    if start == end:
        return None
    t = local.time()
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # crosses midnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    end_local = datetime.combine(end_day, end, tzinfo=tz)
    return end_local.timestamp()


@dataclass(slots=True)
class Group:
    flush_at: float
    members: set[str] = field(default_factory=set)  # open incident ids in the group


@dataclass(slots=True)
class Delivery:
    """One incident on one channel, as chosen by the first route naming that channel."""

    channel: str
    route: Route
    route_index: int


@dataclass(slots=True)
class Tracked:
    """What the notifier remembers about an open incident it told someone about."""

    incident: Incident
    deliveries: dict[str, Delivery]
    last_notified: dict[str, float] = field(default_factory=dict)  # channel -> wall time
    reminders: dict[str, int] = field(default_factory=dict)


class Router:
    def __init__(self, config: NotifyConfig) -> None:
        self.config = config
        self.routes = config.effective_routes()
        self.enabled = set(config.enabled_channels())
        self.groups: dict[tuple[str, str], Group] = {}

    def deliveries(self, incident: Incident) -> dict[str, Delivery]:
        out: dict[str, Delivery] = {}
        for i, route in enumerate(self.routes):
            if not route_matches(route, incident):
                continue
            for name in route.channels:
                if name in self.enabled and name not in out:
                    out[name] = Delivery(name, route, i)
            if not route.continue_:
                break
        return out

    @staticmethod
    def group_key(delivery: Delivery, incident: Incident) -> str:
        return f"r{delivery.route_index}:{(incident.exchange or '-').lower()}"

    def schedule(self, delivery: Delivery, incident: Incident, now: float) -> tuple[str, float]:
        """(group key, when this notice may go out) for a firing notice."""
        key = self.group_key(delivery, incident)
        group = self.groups.get((delivery.channel, key))
        route = delivery.route
        if group is None or not group.members:
            group = Group(flush_at=now + route.group_wait)
            self.groups[(delivery.channel, key)] = group
        elif now > group.flush_at:
            group.flush_at = max(now, group.flush_at + route.group_interval)
        group.members.add(incident.id)
        return key, group.flush_at

    def forget(self, incident: Incident) -> None:
        for group in self.groups.values():
            group.members.discard(incident.id)
        self.groups = {k: g for k, g in self.groups.items() if g.members}

    def not_before(self, channel: str, critical: bool, when: float) -> float:
        """Hold non-critical notices until the channel's quiet hours end (critical ones always pass)."""
        if critical:
            return when
        cfg = self.config.channels.get(channel)
        end = quiet_until(cfg.quiet_hours if cfg else None, when)
        return when if end is None else max(when, end)
