"""Incident lifecycle: one incident per root cause, from detection signals to events.

Semantics (the contract notify, store and the faces rely on):

- ``opened``: a fingerprint fired and no open or recently resolved incident covers it. An incident
  that opens while a silence matches it carries ``silenced_by`` (no separate ``silenced`` event);
  one that opens inside a maintenance window carries ``in_maintenance``.
- ``updated``: severity rose (a 429 turning into a ban: the ``rate_limited`` instance and the
  ``ip_banned`` one share a fingerprint, the incident's rule becomes ``ip_banned`` and its
  severity critical), a peak value grew by ``peak_update_ratio``, new evidence was recorded, a
  maintenance window started or ended, or the own rule recovered while evidence still fires.
- ``acknowledged``, ``silenced``, ``unsilenced`` (silence expired or removed), ``flapping``
  (once, when the rule instance is held open because it flips too often).
- ``resolved``: every rule contributing to the incident recovered, or the incident was merged
  into a cause that opened later (``detail.superseded_by``), or an external incident was resolved.
- ``reopened``: the same fingerprint (or a symptom that was evidence on it) fires again within
  ``reopen_cooldown`` (90 s) of the resolution, while its recovery was still being confirmed: same id,
  ``reopen_count`` + 1, ack cleared. A fault that comes back after a longer quiet spell is a new
  incident with its own id and notifications; a problem that keeps coming back is caught by the
  detector's flapping count (fires within ``flap_window``) and held open as one flapping incident.

Cause over symptom: a firing signal on an exchange is recorded as evidence on the open incident of
a higher-ranked rule on that exchange (local_network covers every exchange); symptoms of equal rank
group into the first open symptom incident of the exchange. A cause that opens absorbs the
lower-ranked incidents already open on its exchange. clock_offset stands alone (only local_network
holds it back), and external incidents (raised by other components) are never grouped.
"""

from __future__ import annotations

import random
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypedDict, Unpack

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.detection import IncidentsConfig
from cryptomon_tui.detection.signals import LOCAL_NETWORK, STANDALONE, Signal, explains, rank_of
from cryptomon_tui.incidents.maintenance import check_window, covers, window_active
from cryptomon_tui.incidents.model import (
    EventType,
    Incident,
    IncidentChanges,
    IncidentEvent,
    IncidentState,
    MaintenanceWindow,
    Matcher,
    Silence,
    TimelineEntry,
)
from cryptomon_tui.incidents.silences import silence_matches, validate_matcher
from cryptomon_tui.kernel.fingerprint import fingerprint
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import check_epoch, check_silence_length, iso_utc

MAX_TIMELINE = 200


class ExportedState(TypedDict):
    """``IncidentManager.export_state``: what the store needs to rebuild a manager."""

    incidents: list[Incident]
    recently_resolved: list[Incident]
    silences: list[Silence]
    windows: list[MaintenanceWindow]

_ID_ALPHABET = "0123456789ABCDEF"


class IncidentManager:
    def __init__(self, clock: Clock, config: IncidentsConfig | None = None, *, id_seed: int | None = None) -> None:
        self.clock = clock
        self.config = config or IncidentsConfig()
        # seeded ids make a backtest repeatable; live ids are random so they never collide across restarts
        self._rng: random.Random = random.Random(id_seed) if id_seed is not None else secrets.SystemRandom()
        self._open: dict[str, Incident] = {}
        self._by_fp: dict[str, str] = {}  # own fingerprint -> open incident id
        self._host_of: dict[str, str] = {}  # absorbed fingerprint -> host incident id
        self._active: dict[str, set[str]] = {}  # incident id -> fingerprints still firing on it
        self._members: dict[str, set[str]] = {}  # incident id -> fingerprints that reopen it
        self._external: set[str] = set()  # fingerprints raised by other components
        self._last_signal: dict[str, Signal] = {}
        self._announced_peak: dict[str, dict[str, float]] = {}
        self._peak_announced_at: dict[str, float] = {}
        # symptoms held back while a probable cause is pending: fingerprint -> (latest signal, deadline)
        self._held: dict[str, tuple[Signal, float]] = {}
        # exchanges with a cause rule pending (None: our network may be failing); set by the pipeline
        self.pending_causes: set[str | None] = set()
        self._orphans: dict[str, float] = {}  # restored incident id -> deadline to be seen again
        self._restored_at: dict[str, float] = {}  # restored incident id -> when monitoring resumed
        self._resolved: OrderedDict[str, Incident] = OrderedDict()
        self._resolved_by_fp: dict[str, str] = {}
        self._silences: dict[str, Silence] = {}
        self._silence_started: set[str] = set()
        self._restored_silences: set[str] = set()  # came from the store, not yet announced by this manager
        self._live_silences: set[str] = set()  # not expired: the only ones a tick has to look at
        self._windows: dict[str, MaintenanceWindow] = {}
        self._known_ids: set[str] = set()

    # ------------------------------------------------------------------ queries
    def open_incidents(self) -> list[Incident]:
        return sorted(self._open.values(), key=lambda i: i.started_at)

    def recently_resolved(self) -> list[Incident]:
        return list(self._resolved.values())

    @property
    def resolved_kept_for(self) -> float:
        """How long a resolved incident stays listed (faces, commands, summaries) and can be reopened:
        ``keep_resolved``, and never less than the reopen window."""
        return max(self.config.keep_resolved, self.config.reopen_cooldown)

    def is_external(self, fp: str) -> bool:
        """Raised by another component (raise_external), not by detection."""
        return fp in self._external

    def get(self, incident_id: str) -> Incident | None:
        return self._open.get(incident_id) or self._resolved.get(incident_id)

    def silences(self, include_expired: bool = False) -> list[Silence]:
        now = self.clock.now()
        return [s for s in self._silences.values() if include_expired or s.expired_at is None or s.expired_at > now]

    def maintenance_windows(self) -> list[MaintenanceWindow]:
        return list(self._windows.values())

    def in_maintenance(self, exchange: str | None, now: float | None = None) -> bool:
        t = self.clock.now() if now is None else now
        return any(covers(w, exchange) and window_active(w, t) for w in self._windows.values())

    # ------------------------------------------------------------------ ids
    def _new_id(self, prefix: str) -> str:
        if len(self._known_ids) > 50_000:  # keep only ids still in use (ids are random: collisions are rare)
            self._known_ids = {*self._open, *self._resolved, *self._silences, *self._windows}
        while True:
            new = prefix + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(6))
            if new not in self._known_ids:
                self._known_ids.add(new)
                return new

    # ------------------------------------------------------------------ signals
    def process(self, signals: Sequence[Signal], now: float | None = None) -> list[IncidentEvent]:
        """Apply one evaluation's signals (causes first) and return the resulting events."""
        t = self.clock.now() if now is None else now
        events: list[IncidentEvent] = []
        ordered = sorted(signals, key=lambda s: (-s.rank, not s.firing)) if len(signals) > 1 else signals
        for sig in ordered:
            if sig.firing:
                self._on_firing(sig, t, events)
            else:
                self._held.pop(sig.fingerprint, None)  # recovered while held: it never opens
                self._on_recovered(sig.fingerprint, sig, t, events)
        if self._held:
            self.release_held(t, events)
        return events

    def _cause_pending(self, sig: Signal) -> bool:
        pending = self.pending_causes
        return bool(pending) and (sig.exchange in pending or None in pending)

    def release_held(self, now: float, events: list[IncidentEvent] | None = None) -> list[IncidentEvent]:
        """Held symptoms: the cause's incident opened and explains them (evidence), or the hold ended
        or the cause is no longer pending (they open on their own)."""
        out: list[IncidentEvent] = [] if events is None else events
        for fp, (sig, deadline) in list(self._held.items()):
            host = self._find_host(sig)
            if host is not None:
                del self._held[fp]
                self._absorb(host, sig, now, out)
            elif now >= deadline or not self._cause_pending(sig):
                del self._held[fp]
                self._reopen_or_open(sig, now, out)
        return out

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def _on_firing(self, sig: Signal, now: float, events: list[IncidentEvent]) -> None:
        fp = sig.fingerprint
        self._last_signal[fp] = sig
        own = self._by_fp.get(fp)
        if own is not None:
            self._orphans.pop(own, None)
            self._active.setdefault(own, set()).add(fp)
            self._update_own(self._open[own], sig, now, events)
            return
        host_id = self._host_of.get(fp)
        if host_id is not None:
            self._orphans.pop(host_id, None)
            self._note_evidence(self._open[host_id], sig, now, events, new=False)
            return
        host = None if fp in self._external else self._find_host(sig)
        if host is not None:
            self._absorb(host, sig, now, events)
            return
        if sig.rank == 0 and fp not in self._external and self.config.cause_hold > 0 and self._cause_pending(sig):
            held = self._held.get(fp)
            self._held[fp] = (sig, held[1] if held is not None else now + self.config.cause_hold)
            return  # cause before symptom: wait for the probable cause's incident (issue 14)
        incident = self._reopen_or_open(sig, now, events)
        if sig.rank > 0 and fp not in self._external:
            self._merge_victims(incident, sig, now, events)

    def _on_recovered(self, fp: str, sig: Signal | None, now: float, events: list[IncidentEvent]) -> None:
        self._last_signal.pop(fp, None)
        own = self._by_fp.get(fp)
        host_id = own if own is not None else self._host_of.pop(fp, None)
        if host_id is None:
            return
        incident = self._open[host_id]
        active = self._active.setdefault(host_id, set())
        active.discard(fp)
        rule = sig.rule if sig is not None else incident.rule
        if active:
            still = self._active_rules(active)
            text = f"{rule} recovered; still firing: {', '.join(still)}"
            incident = self._replace(
                incident, now, timeline=_tl(incident, now, "recovered", text, {"rule": rule, "exchange": _ex(sig)})
            )
            self._open[host_id] = incident
            if own is not None:
                detail: JsonObject = {"recovered": rule, "still_firing": [r for r in still]}
                events.append(self._event(now, EventType.UPDATED, incident, detail=detail))
            return
        self._resolve(incident, now, events, text=f"{rule} recovered" if sig is not None else "resolved")

    def _active_rules(self, fps: Iterable[str]) -> list[str]:
        out = []
        for fp in fps:
            s = self._last_signal.get(fp)
            out.append(f"{s.rule}@{s.exchange}" if s is not None and s.exchange else (s.rule if s else fp[:8]))
        return sorted(set(out))

    def _find_host(self, sig: Signal) -> Incident | None:
        if sig.exchange is None or sig.rule == LOCAL_NETWORK:
            return None
        best: Incident | None = None
        best_rank = -10
        for inc in self._open.values():
            if inc.fingerprint in self._external:
                continue
            if sig.rule in STANDALONE or inc.rule in STANDALONE or not explains(inc.rule, sig.rule):
                continue  # the taxonomy: only what the open incident's cause explains joins it
            if inc.rule == LOCAL_NETWORK:
                return inc
            if inc.exchange != sig.exchange:
                continue
            r = rank_of(inc.rule)
            if (r > sig.rank or (r == 0 and sig.rank == 0)) and (
                r > best_rank or (r == best_rank and best is not None and inc.started_at < best.started_at)
            ):
                best, best_rank = inc, r
        return best

    def _absorb(self, host: Incident, sig: Signal, now: float, events: list[IncidentEvent]) -> None:
        self._host_of[sig.fingerprint] = host.id
        self._active.setdefault(host.id, set()).add(sig.fingerprint)
        if rank_of(host.rule) == 0:
            self._members.setdefault(host.id, set()).add(sig.fingerprint)
        self._note_evidence(host, sig, now, events, new=True)

    def _note_evidence(
        self, host: Incident, sig: Signal, now: float, events: list[IncidentEvent], *, new: bool
    ) -> None:
        if not new:
            return  # a still-firing symptom: the host already lists it
        evidence_name = sig.rule
        first = evidence_name not in host.evidence
        changes: IncidentChanges = {
            "timeline": _tl(
                host, now, "evidence", sig.summary, {"rule": sig.rule, "exchange": sig.exchange, "probe": sig.probe}
            ),
        }
        if first:
            changes["evidence"] = (*host.evidence, evidence_name)
        if sig.severity > host.severity and rank_of(host.rule) == 0:
            changes["severity"] = sig.severity
        if sig.last_error:
            changes["last_error"] = sig.last_error
        updated = self._replace(host, now, **changes)
        self._open[host.id] = updated
        if first or "severity" in changes:
            events.append(
                self._event(now, EventType.UPDATED, updated, detail={"evidence": sig.rule, "summary": sig.summary})
            )

    def _update_own(self, inc: Incident, sig: Signal, now: float, events: list[IncidentEvent]) -> None:
        changes: IncidentChanges = {}
        detail: JsonObject = {}
        escalated = sig.severity > inc.severity
        if escalated:
            changes["severity"] = sig.severity
            detail["severity"] = {"from": inc.severity.value, "to": sig.severity.value}
        if sig.rule != inc.rule and (escalated or rank_of(sig.rule) > rank_of(inc.rule)):
            changes["rule"] = sig.rule
            detail["rule"] = {"from": inc.rule, "to": sig.rule}
        if sig.summary and sig.summary != inc.summary:
            changes["summary"] = sig.summary
        peak = dict(inc.peak)
        announced = self._announced_peak.setdefault(inc.id, {})
        grown = {}
        may_announce = now - self._peak_announced_at.get(inc.id, inc.started_at) >= self.config.peak_update_interval
        for k, v in sig.values.items():
            if k not in peak or abs(v) > abs(peak[k]):
                peak[k] = v
                last = announced.get(k)
                if may_announce and (last is None or abs(v) >= abs(last) * self.config.peak_update_ratio):
                    grown[k] = v
        if peak != inc.peak:
            changes["peak"] = peak
        if sig.counts:
            counts = dict(inc.counts)
            for k, c in sig.counts.items():
                counts[k] = max(counts.get(k, 0), c)
            changes["counts"] = counts
        if sig.last_error:
            changes["last_error"] = sig.last_error
        if sig.ban_until is not None:
            changes["ban_until"] = sig.ban_until
        flapping_now = sig.flapping and not inc.flapping
        if flapping_now:
            changes["flapping"] = True
        if escalated or "rule" in changes:
            changes["timeline"] = _tl(inc, now, "escalated", sig.summary, detail)
        elif flapping_now:
            changes["timeline"] = _tl(inc, now, "flapping", f"{sig.rule} flips too often: held open until it calms")
        if not changes:
            return
        updated = self._replace(inc, now, **changes)
        self._open[inc.id] = updated
        if flapping_now:
            events.append(self._event(now, EventType.FLAPPING, updated))
        if escalated or "rule" in changes or grown:
            if grown:
                announced.update(grown)
                self._peak_announced_at[inc.id] = now
                detail["peak"] = {k: v for k, v in grown.items()}
            events.append(self._event(now, EventType.UPDATED, updated, detail=detail))

    def _reopen_candidate(self, sig: Signal, now: float) -> Incident | None:
        """The resolved incident this signal continues: same fingerprint (or a member of its group), else,
        for a symptom, the latest symptom incident of the same exchange (symptoms group per exchange);
        only one resolved within ``reopen_cooldown``: a problem coming back while its recovery was still
        being confirmed is the same incident, one back after a real quiet period is a new one. A rule
        that fires ``flap_threshold`` times within ``flap_window`` keeps coming back: the same problem,
        so its last incident reopens if it resolved within ``flap_window``, and is held open as
        flapping (two faults are two incidents)."""
        window = self.config.reopen_cooldown
        if sig.recent_fires >= self.config.flap_threshold:
            window = max(window, self.config.flap_window)
        old_id = self._resolved_by_fp.get(sig.fingerprint)
        old = self._resolved.get(old_id) if old_id is not None else None
        if old is not None and old.resolved_at is not None and now - old.resolved_at <= window:
            return old
        if sig.rank != 0 or sig.exchange is None or sig.fingerprint in self._external:
            return None
        for inc in reversed(self._resolved.values()):
            if inc.resolved_at is None or now - inc.resolved_at > window:
                break
            if (
                inc.exchange == sig.exchange
                and rank_of(inc.rule) == 0
                and inc.fingerprint not in self._external
                and not any(t.kind == "resolved" and "superseded_by" in t.data for t in inc.timeline[-1:])
            ):
                return inc
        return None

    def _reopen_or_open(self, sig: Signal, now: float, events: list[IncidentEvent]) -> Incident:
        fp = sig.fingerprint
        old = self._reopen_candidate(sig, now)
        if old is not None:
            del self._resolved[old.id]
            for m in self._members.get(old.id, {fp}):
                if self._resolved_by_fp.get(m) == old.id:
                    del self._resolved_by_fp[m]
            own_fp = old.fingerprint
            inc = old.with_changes(
                state=IncidentState.FIRING,
                resolved_at=None,
                reopen_count=old.reopen_count + 1,
                acknowledged_by=None,
                acknowledged_at=None,
                ack_note=None,
                silenced_by=None,
                silenced_until=None,
                severity=sig.severity,
                summary=sig.summary,
                updated_at=now,
                last_error=sig.last_error or old.last_error,
                ban_until=sig.ban_until,
                flapping=sig.flapping,
                in_maintenance=self.in_maintenance(old.exchange, now),
                timeline=_tl(old, now, "reopened", sig.summary, {"rule": sig.rule}),
            )
            inc = self._apply_silences(inc, now)
            self._open[inc.id] = inc
            self._by_fp[own_fp] = inc.id
            self._active[inc.id] = {fp}
            if fp != own_fp:
                self._host_of[fp] = inc.id
            self._members.setdefault(inc.id, {own_fp}).add(fp)
            self._announced_peak[inc.id] = dict(sig.values)
            events.append(self._event(now, EventType.REOPENED, inc))
            return inc
        inc = Incident(
            id=self._new_id("I-"),
            fingerprint=fp,
            rule=sig.rule,
            severity=sig.severity,
            exchange=sig.exchange,
            probe=sig.probe,
            state=IncidentState.FIRING,
            summary=sig.summary,
            started_at=now,
            updated_at=now,
            labels=dict(sig.labels),
            in_maintenance=self.in_maintenance(sig.exchange, now),
            flapping=sig.flapping,
            peak=dict(sig.values),
            counts=dict(sig.counts),
            last_error=sig.last_error,
            ban_until=sig.ban_until,
            timeline=(TimelineEntry(now, "opened", sig.summary, {"rule": sig.rule}),),
        )
        inc = self._apply_silences(inc, now)
        self._open[inc.id] = inc
        self._by_fp[fp] = inc.id
        self._active[inc.id] = {fp}
        self._members[inc.id] = {fp}
        self._announced_peak[inc.id] = dict(sig.values)
        events.append(self._event(now, EventType.OPENED, inc))
        return inc

    def _merge_victims(self, cause: Incident, sig: Signal, now: float, events: list[IncidentEvent]) -> None:
        """A cause opened: lower-ranked incidents already open in its scope become its evidence."""
        global_scope = sig.rule == LOCAL_NETWORK
        victims = [
            inc
            for inc in self._open.values()
            if inc.id != cause.id
            and inc.fingerprint not in self._external
            and inc.rule not in STANDALONE
            and inc.exchange is not None
            and (global_scope or inc.exchange == sig.exchange)
            and rank_of(inc.rule) < sig.rank
            and explains(sig.rule, inc.rule)
        ]
        for victim in victims:
            host = self._open[cause.id]
            moved = self._active.pop(victim.id, set())
            for fp in moved:
                self._host_of[fp] = cause.id
            self._active.setdefault(cause.id, set()).update(moved)
            self._by_fp.pop(victim.fingerprint, None)
            self._host_of.pop(victim.fingerprint, None)
            if victim.fingerprint in moved:
                self._host_of[victim.fingerprint] = cause.id
            evidence = tuple(dict.fromkeys((*host.evidence, victim.rule, *victim.evidence)))
            host = self._replace(
                host,
                now,
                evidence=evidence,
                timeline=_tl(
                    host,
                    now,
                    "evidence",
                    f"merged {victim.id} ({victim.rule}): {victim.summary}",
                    {"merged": victim.id, "rule": victim.rule},
                ),
            )
            self._open[cause.id] = host
            self._finish(
                victim,
                now,
                events,
                text=f"superseded by {cause.id} ({cause.rule})",
                detail={"superseded_by": cause.id},
            )
        if victims:
            events.append(
                self._event(now, EventType.UPDATED, self._open[cause.id], detail={"merged": [v.id for v in victims]})
            )

    def _resolve(
        self, inc: Incident, now: float, events: list[IncidentEvent], text: str, ended_at: float | None = None
    ) -> None:
        self._finish(inc, now, events, text=text, detail={}, ended_at=ended_at)

    def _finish(
        self,
        inc: Incident,
        now: float,
        events: list[IncidentEvent],
        *,
        text: str,
        detail: JsonObject,
        ended_at: float | None = None,
    ) -> None:
        """``ended_at``: when the problem was last known to exist, if earlier than ``now`` (a restored
        incident not seen again ended at the restart, not at the end of the grace period)."""
        del self._open[inc.id]
        if self._by_fp.get(inc.fingerprint) == inc.id:
            del self._by_fp[inc.fingerprint]
        for fp in self._active.pop(inc.id, set()):
            if self._host_of.get(fp) == inc.id:
                del self._host_of[fp]
        self._orphans.pop(inc.id, None)
        self._restored_at.pop(inc.id, None)
        self._announced_peak.pop(inc.id, None)
        self._peak_announced_at.pop(inc.id, None)
        done = self._replace(
            inc,
            now,
            state=IncidentState.RESOLVED,
            resolved_at=now if ended_at is None else max(inc.started_at, min(now, ended_at)),
            timeline=_tl(inc, now, "resolved", text, detail),
        )
        self._remember_resolved(done)
        events.append(self._event(now, EventType.RESOLVED, done, detail=detail))
        if done.silenced_by is not None:
            self._expire_until_resolved(done.silenced_by, now)

    def _remember_resolved(self, inc: Incident) -> None:
        self._resolved[inc.id] = inc
        for fp in self._members.get(inc.id, {inc.fingerprint}) | {inc.fingerprint}:
            self._resolved_by_fp[fp] = inc.id
        while len(self._resolved) > self.config.max_resolved_kept:
            self._forget_resolved(next(iter(self._resolved)))

    def _forget_resolved(self, incident_id: str) -> None:
        inc = self._resolved.pop(incident_id, None)
        for fp in self._members.pop(incident_id, set()) | ({inc.fingerprint} if inc else set()):
            if self._resolved_by_fp.get(fp) == incident_id:
                del self._resolved_by_fp[fp]

    # ------------------------------------------------------------------ time
    def tick(self, now: float | None = None) -> list[IncidentEvent]:
        """Expire silences, follow maintenance windows, drop old resolved incidents, settle orphans."""
        t = self.clock.now() if now is None else now
        events: list[IncidentEvent] = []
        if not (self._live_silences or self._windows or self._open or self._resolved or self._orphans):
            return events  # nothing that time alone can change (the common case between incidents)
        for sid in list(self._live_silences) if self._live_silences else ():
            s = self._silences[sid]
            if s.expired_at is None and s.ends_at is not None and s.ends_at <= t:
                self._expire_silence(s, s.ends_at, events, actor=None)
            elif s.id not in self._silence_started and s.expired_at is None and s.starts_at <= t:
                self._silence_started.add(s.id)  # a silence created for later starts now
                for inc in list(self._open.values()):
                    if silence_matches(s, inc):
                        self._set_silence(inc, s, t, events, actor=s.created_by)
        if self._windows:
            for w in list(self._windows.values()):
                if w.recurrence is None and w.ends_at <= t:
                    del self._windows[w.id]
            self._refresh_maintenance(t, events)
        elif self._open and any(i.in_maintenance for i in self._open.values()):
            self._refresh_maintenance(t, events)
        kept = self.resolved_kept_for
        while self._resolved:
            first = next(iter(self._resolved.values()))
            if first.resolved_at is not None and t - first.resolved_at > kept:
                self._forget_resolved(first.id)
            else:
                break
        for incident_id, deadline in list(self._orphans.items()) if self._orphans else ():
            if deadline <= t and incident_id in self._open:
                # it ended when monitoring resumed: the grace period spent waiting for it is not its duration
                self._resolve(
                    self._open[incident_id], t, events, text="not seen again after a restart",
                    ended_at=self._restored_at.get(incident_id),
                )
            if deadline <= t:
                self._orphans.pop(incident_id, None)
                self._restored_at.pop(incident_id, None)
        return events

    def _refresh_maintenance(self, now: float, events: list[IncidentEvent]) -> None:
        for inc in list(self._open.values()):
            flag = self.in_maintenance(inc.exchange, now)
            if flag != inc.in_maintenance:
                text = "maintenance window started" if flag else "maintenance window ended"
                updated = self._replace(inc, now, in_maintenance=flag, timeline=_tl(inc, now, "maintenance", text))
                self._open[inc.id] = updated
                events.append(self._event(now, EventType.UPDATED, updated, detail={"in_maintenance": flag}))

    # ------------------------------------------------------------------ commands
    def ack(self, incident_id: str, by: str, note: str | None = None) -> list[IncidentEvent]:
        inc = self._open.get(incident_id)
        if inc is None:
            if incident_id in self._resolved:
                raise ValueError(f"incident {incident_id} is already resolved")
            raise KeyError(f"no open incident {incident_id}")
        if not by:
            raise ValueError("an acknowledgement needs who (by)")
        now = self.clock.now()
        text = f"acknowledged by {by}" + (f": {note}" if note else "")
        updated = self._replace(
            inc,
            now,
            state=IncidentState.ACKNOWLEDGED,
            acknowledged_by=by,
            acknowledged_at=now,
            ack_note=note,
            timeline=_tl(inc, now, "acknowledged", text, {"by": by}),
        )
        self._open[inc.id] = updated
        return [self._event(now, EventType.ACKNOWLEDGED, updated, actor=by, detail={"note": note} if note else {})]

    def silence(
        self,
        matchers: Sequence[Matcher],
        duration_s: float | None,
        comment: str,
        by: str,
        *,
        starts_at: float | None = None,
        silence_id: str | None = None,
    ) -> tuple[Silence, list[IncidentEvent]]:
        """Create a silence. ``duration_s`` None = until the matched incident resolves."""
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        if not comment or not comment.strip():
            raise ValueError("a silence needs a comment saying why")
        if not by or not by.strip():
            raise ValueError("a silence needs an author (by)")
        if duration_s is not None:
            try:
                duration_s = check_silence_length(duration_s)
            except ValueError as exc:
                raise ValueError(f"a silence's duration {exc}") from None
        for m in matchers:
            validate_matcher(m)
        now = self.clock.now()
        start = now if starts_at is None else check_epoch(starts_at, "a silence's start")
        silence = Silence(
            id=silence_id or self._new_id("S-"),
            matchers=tuple(matchers),
            starts_at=start,
            ends_at=None if duration_s is None else start + duration_s,
            created_by=by,
            comment=comment.strip(),
            created_at=now,
        )
        self._silences[silence.id] = silence
        self._live_silences.add(silence.id)
        events: list[IncidentEvent] = []
        if silence.is_active(now):
            self._silence_started.add(silence.id)
            for inc in list(self._open.values()):
                if silence_matches(silence, inc):
                    self._set_silence(inc, silence, now, events, actor=by)
        return silence, events

    def announce_restored_silence(self, silence_id: str) -> bool:
        """True once for a silence this manager restored rather than made: one made offline (the CLI with no
        daemon) is announced when the daemon starts, and only then (issue 13 item 7)."""
        if silence_id in self._restored_silences:
            self._restored_silences.discard(silence_id)
            return True
        return False

    def unsilence(self, silence_id: str, by: str | None = None) -> list[IncidentEvent]:
        silence = self._silences.get(silence_id)
        if silence is None:
            raise KeyError(f"no silence {silence_id}")
        events: list[IncidentEvent] = []
        if silence.expired_at is None:
            self._expire_silence(silence, self.clock.now(), events, actor=by)
        return events

    def _set_silence(
        self, inc: Incident, silence: Silence, now: float, events: list[IncidentEvent], actor: str | None
    ) -> None:
        current = self._silences.get(inc.silenced_by) if inc.silenced_by else None
        if current is not None and current.is_active(now) and not _ends_later(silence, current):
            return
        until = silence.ends_at
        updated = self._replace(
            inc,
            now,
            silenced_by=silence.id,
            silenced_until=until,
            timeline=_tl(
                inc,
                now,
                "silenced",
                f"silenced by {silence.created_by} "
                + (f"until {iso_utc(until)}" if until else "until resolved")
                + f": {silence.comment}",
                {"silence": silence.id},
            ),
        )
        self._open[inc.id] = updated
        events.append(
            self._event(
                now,
                EventType.SILENCED,
                updated,
                actor=actor or silence.created_by,
                detail={"silence": silence.id, "comment": silence.comment},
            )
        )

    def _apply_silences(self, inc: Incident, now: float) -> Incident:
        best: Silence | None = None
        for s in self._silences.values():
            if s.is_active(now) and silence_matches(s, inc) and (best is None or _ends_later(s, best)):
                best = s
        if best is None:
            return inc
        return inc.with_changes(silenced_by=best.id, silenced_until=best.ends_at)

    def _expire_silence(self, silence: Silence, at: float, events: list[IncidentEvent], actor: str | None) -> None:
        self._silences[silence.id] = _expired(silence, at)
        self._live_silences.discard(silence.id)
        now = max(at, self.clock.now()) if actor is not None else at
        for inc in list(self._open.values()):
            if inc.silenced_by != silence.id:
                continue
            other = self._apply_silences(inc.with_changes(silenced_by=None, silenced_until=None), now)
            if other.silenced_by is not None:
                self._open[inc.id] = self._replace(other, now)
                continue
            updated = self._replace(
                inc,
                now,
                silenced_by=None,
                silenced_until=None,
                timeline=_tl(
                    inc, now, "unsilenced", "silence removed" if actor else "silence expired", {"silence": silence.id}
                ),
            )
            self._open[inc.id] = updated
            events.append(
                self._event(
                    now,
                    EventType.UNSILENCED,
                    updated,
                    actor=actor,
                    detail={"silence": silence.id, "reason": "removed" if actor else "expired"},
                )
            )
        if len(self._silences) > 1000:
            for sid in [sid for sid, s in self._silences.items() if s.expired_at is not None][:200]:
                del self._silences[sid]
                self._silence_started.discard(sid)

    def _expire_until_resolved(self, silence_id: str, now: float) -> None:
        """An "until resolved" silence ends with the last open incident it silences."""
        s = self._silences.get(silence_id)
        if s is None or s.ends_at is not None or s.expired_at is not None:
            return
        if any(i.silenced_by == silence_id for i in self._open.values()):
            return
        self._silences[silence_id] = _expired(s, now)
        self._live_silences.discard(silence_id)

    def add_maintenance(
        self,
        exchange: str | None,
        starts_at: float,
        ends_at: float,
        comment: str = "",
        recurrence: str | None = None,
        timezone: str = "UTC",
        by: str | None = None,
        window_id: str | None = None,
    ) -> tuple[MaintenanceWindow, list[IncidentEvent]]:
        w = MaintenanceWindow(
            id=window_id or self._new_id("M-"),
            exchange=exchange,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            recurrence=recurrence,
            timezone=timezone,
            created_by=by,
        )
        check_window(w)
        self._windows[w.id] = w
        events: list[IncidentEvent] = []
        self._refresh_maintenance(self.clock.now(), events)
        return w, events

    def remove_maintenance(self, window_id: str) -> list[IncidentEvent]:
        if self._windows.pop(window_id, None) is None:
            raise KeyError(f"no maintenance window {window_id}")
        events: list[IncidentEvent] = []
        self._refresh_maintenance(self.clock.now(), events)
        return events

    def raise_external(
        self, rule: str, labels: dict[str, str], severity: Severity | str, summary: str
    ) -> list[IncidentEvent]:
        """An incident about another component (e.g. notify's ``channel_broken``); never grouped."""
        fp = fingerprint(rule, dict(labels))
        self._external.add(fp)
        sig = Signal(
            rule=rule,
            fingerprint=fp,
            exchange=labels.get("exchange"),
            probe=labels.get("probe"),
            severity=Severity(severity),
            firing=True,
            summary=summary,
            ts=self.clock.now(),
            labels=dict(labels),
        )
        events: list[IncidentEvent] = []
        self._on_firing(sig, sig.ts, events)
        return events

    def resolve_external(self, rule: str, labels: dict[str, str]) -> list[IncidentEvent]:
        fp = fingerprint(rule, dict(labels))
        events: list[IncidentEvent] = []
        self._on_recovered(fp, None, self.clock.now(), events)
        return events

    # ------------------------------------------------------------------ persistence
    @property
    def has_unconfirmed_restored(self) -> bool:
        return bool(self._orphans)

    def unconfirmed_restored(self) -> list[tuple[str, str | None, float]]:
        """(id, exchange, restored at) of restored incidents no firing signal has confirmed yet."""
        return [(i, self._open[i].exchange, self._restored_at.get(i, 0.0)) for i in self._orphans if i in self._open]

    def healthy_after_restore(self, incident_id: str, now: float) -> list[IncidentEvent]:
        """Fresh probes say the restored incident's problem is over: resolve it now (issue 14: no
        fixed grace; a restored state is not shown as current once fresh data contradicts it)."""
        events: list[IncidentEvent] = []
        if incident_id in self._orphans and incident_id in self._open:
            self._resolve(self._open[incident_id], now, events, text="healthy again after a restart",
                          ended_at=self._restored_at.get(incident_id))
        self._orphans.pop(incident_id, None)
        self._restored_at.pop(incident_id, None)
        return events

    def restore(
        self,
        open_incidents: Iterable[Incident],
        silences: Iterable[Silence] = (),
        windows: Iterable[MaintenanceWindow] = (),
        recently_resolved: Iterable[Incident] = (),
        *,
        grace_s: float = 300.0,
        external_rules: Iterable[str] = ("channel_broken",),
    ) -> None:
        """Reload state after a restart without emitting events.

        Detection starts from scratch, so a restored incident whose problem is gone would never get
        a recovery signal: each one must be confirmed by a firing signal within ``grace_s`` or it
        resolves on a later ``tick`` ("not seen again after a restart"). External incidents (rules
        in ``external_rules``) wait for their component instead.
        """
        now = self.clock.now()
        ext = set(external_rules)
        for inc in open_incidents:
            if not inc.is_open:
                continue
            self._open[inc.id] = inc
            self._known_ids.add(inc.id)
            self._by_fp[inc.fingerprint] = inc.id
            self._active[inc.id] = {inc.fingerprint}
            self._members[inc.id] = {inc.fingerprint}
            self._announced_peak[inc.id] = dict(inc.peak)
            if inc.rule in ext:
                self._external.add(inc.fingerprint)
            else:
                self._orphans[inc.id] = now + grace_s
                self._restored_at[inc.id] = now
        for inc in sorted(recently_resolved, key=lambda i: i.resolved_at or 0.0):
            if inc.resolved_at is not None and now - inc.resolved_at <= self.resolved_kept_for:
                self._known_ids.add(inc.id)
                self._remember_resolved(inc)
        for s in silences:
            self._silences[s.id] = s
            self._restored_silences.add(s.id)
            if s.expired_at is None:
                self._live_silences.add(s.id)
            self._known_ids.add(s.id)
            if s.starts_at <= now:
                self._silence_started.add(s.id)
        for w in windows:
            self._windows[w.id] = w
            self._known_ids.add(w.id)

    def export_state(self) -> ExportedState:
        """What the store needs to rebuild this manager: open incidents, silences, windows."""
        return {
            "incidents": self.open_incidents(),
            "recently_resolved": self.recently_resolved(),
            "silences": self.silences(),
            "windows": self.maintenance_windows(),
        }

    # ------------------------------------------------------------------ helpers
    def _replace(self, inc: Incident, now: float, **changes: Unpack[IncidentChanges]) -> Incident:
        changes.setdefault("updated_at", now)
        return inc.with_changes(**changes)

    @staticmethod
    def _event(
        now: float,
        kind: EventType,
        inc: Incident,
        actor: str | None = None,
        detail: JsonObject | None = None,
    ) -> IncidentEvent:
        return IncidentEvent(ts=now, event=kind, incident=inc, actor=actor, detail=detail or {})


def _tl(
    inc: Incident, now: float, kind: str, text: str, data: JsonObject | None = None
) -> tuple[TimelineEntry, ...]:
    entry = TimelineEntry(now, kind, text, {k: v for k, v in (data or {}).items() if v is not None})
    timeline = (*inc.timeline, entry)
    if len(timeline) > MAX_TIMELINE:
        timeline = (timeline[0], *timeline[-(MAX_TIMELINE - 1) :])
    return timeline


def _ex(sig: Signal | None) -> str | None:
    return sig.exchange if sig is not None else None


def _ends_later(a: Silence, b: Silence) -> bool:
    if a.ends_at is None:
        return b.ends_at is not None
    return b.ends_at is not None and a.ends_at > b.ends_at


def _expired(s: Silence, at: float) -> Silence:
    return replace(s, expired_at=at)
