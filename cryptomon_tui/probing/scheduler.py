"""One async worker per exchange: fires each probe on its own cadence and turns answers into ProbeResults.

Cadence: probe k of a probe is due at ``start + k * interval`` (nominal, never drifts) plus a random
jitter of up to ``probing.jitter`` of the interval either way, so exchanges are not hit in lock-step.
Slots missed while paused or backing off are skipped, not replayed in a burst. Each request runs in its
own task, so a slow answer never delays another probe.

Schedule lag (actual send - scheduled time) is measured for every request and kept in a ring buffer;
it is our own delay and is never part of a latency.

Clock offset = server time - midpoint of the window in which the server answered (request written on
a ready connection .. response headers read), in wall time from one clock reading at send plus
perf_counter deltas; the error bound is half that window.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.exchanges import ExchangeConfig, ProbingConfig
from cryptomon_tui.exchanges.base import (
    Classification,
    Credentials,
    ExchangeAdapter,
    ProbeSpec,
)
from cryptomon_tui.exchanges.common import VENUE_OVERLOAD, bound_times, bounded_notes
from cryptomon_tui.kernel.results import Outcome, ProbeResult
from cryptomon_tui.kernel.snapshot import ScheduleLagView
from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.probing.backoff import Backoff, with_pause
from cryptomon_tui.probing.breaker import Admission, CircuitBreaker
from cryptomon_tui.probing.budget import PlannedProbe
from cryptomon_tui.probing.transport import Transport, TransportRequest, TransportResult, scrub
from cryptomon_tui.redaction import scrub_obj, scrub_opt

log = logging.getLogger(__name__)

ResultSink = Callable[[ProbeResult], None]
LagHook = Callable[[str, str, float], None]  # exchange, probe, lag_ms


class LagStats:
    """Schedule lag over the last ``size`` sends (ms)."""

    def __init__(self, size: int = 2048) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.count = 0
        self.max_ms = 0.0

    def add(self, lag_ms: float) -> None:
        self.samples.append(lag_ms)
        self.count += 1
        if lag_ms > self.max_ms:
            self.max_ms = lag_ms

    def percentile(self, q: float) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[index]

    def view(self) -> ScheduleLagView:
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return ScheduleLagView(self.count, None if p50 is None else round(p50, 3),
                               None if p99 is None else round(p99, 3), round(self.max_ms, 3))

    def snapshot(self) -> dict[str, float | int | None]:
        p50, p99 = self.percentile(0.5), self.percentile(0.99)
        return {
            "count": self.count,
            "p50_ms": None if p50 is None else round(p50, 3),
            "p99_ms": None if p99 is None else round(p99, 3),
            "max_ms": round(self.max_ms, 3),
        }


@dataclass(slots=True)
class _Slot:
    planned: PlannedProbe
    spec: ProbeSpec
    nominal: float = 0.0  # monotonic time of the next un-jittered slot
    scheduled: float = 0.0  # nominal + jitter
    last_skip_emit: float | None = None
    request: TransportRequest | None = None  # built once for unsigned probes
    last_sent: float = -math.inf


_logged: set[str] = set()


def _log_once(key: str, message: str, *args: object) -> None:
    if key not in _logged:
        _logged.add(key)
        log.warning(message, *args)


def connections_needed(planned: list[PlannedProbe], timeout_s: float) -> int:
    """Enough pooled connections for every probe's requests that can be in flight at once."""
    need = sum(math.ceil(timeout_s / p.interval_s) + 1 for p in planned)
    return max(2, min(64, need))


class ExchangeWorker:
    """Scheduler, breaker and backoff of one exchange."""

    def __init__(
        self,
        name: str,
        cfg: ExchangeConfig,
        adapter: ExchangeAdapter,
        planned: list[PlannedProbe],
        transport: Transport,
        clock: Clock,
        probing: ProbingConfig,
        sink: ResultSink,
        rng: random.Random | None = None,
        lag_hook: LagHook | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.adapter = adapter
        self.transport = transport
        self.clock = clock
        self.jitter = probing.jitter
        self.sink = sink
        self.rng = rng or random.Random()
        self.lag_hook = lag_hook
        self.breaker = CircuitBreaker(probing.breaker, clock)
        self.backoff = Backoff(clock)
        self.lag = LagStats()
        specs = adapter.probes()
        self.slots = [_Slot(p, specs[p.probe]) for p in planned]
        self.base_url = (cfg.base_url or adapter.default_base_url).rstrip("/")
        self.timeout_s = float(cfg.timeout)
        self.paused = False
        self._resumed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.skipped = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"probe-worker-{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._in_flight.clear()

    def pause(self) -> None:
        """No probes until ``resume`` (requests already in flight still report)."""
        self.paused = True
        self._resumed.clear()

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            self._resumed.set()

    # -- schedule --------------------------------------------------------------------------
    def _seed(self) -> None:
        """Spread the first sends over up to a second so probes do not start in lock-step."""
        now = self.clock.monotonic()
        for slot in self.slots:
            slot.nominal = now + self.rng.uniform(0, min(slot.planned.interval_s, 1.0))
            slot.scheduled = slot.nominal

    def _advance(self, slot: _Slot, now: float) -> None:
        interval = slot.planned.interval_s
        slot.nominal += interval
        if slot.nominal < now:  # fell behind (pause, backoff, a stalled loop): skip, do not burst
            slot.nominal += math.ceil((now - slot.nominal) / interval) * interval
        spread = self.jitter * interval
        slot.scheduled = slot.nominal + (self.rng.uniform(-spread, spread) if spread else 0.0)
        # Jitter must never bring two sends closer than the endpoint's own limit allows.
        slot.scheduled = max(slot.scheduled, slot.last_sent + slot.planned.min_gap_s)

    async def _run(self) -> None:
        self._seed()
        while True:
            if self.paused:
                await self._resumed.wait()
                self._seed()
                continue
            slot = min(self.slots, key=lambda s: s.scheduled)
            delay = slot.scheduled - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
                if self.paused:
                    continue
            scheduled = slot.scheduled
            now = self.clock.monotonic()
            slot.last_sent = now
            self._advance(slot, now)
            try:
                self._fire(slot, scheduled)
            except Exception as exc:  # never let the worker die
                _log_once(f"fire:{type(exc).__name__}", "probe scheduling error %s: %s", type(exc).__name__,
                          scrub(str(exc))[:200])

    def _fire(self, slot: _Slot, scheduled: float) -> None:
        if self.backoff.active:
            return  # rate limited or banned: not a single request until the pause ends
        admission = self.breaker.admit()
        if admission is Admission.SKIP:
            now = self.clock.monotonic()
            if slot.last_skip_emit is None or now - slot.last_skip_emit >= self.breaker.cooldown_s:
                slot.last_skip_emit = now
                self._emit_skipped(slot)
            return
        slot.last_skip_emit = None
        task = asyncio.create_task(self._probe(slot, admission, scheduled))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    def _emit_skipped(self, slot: _Slot) -> None:
        self.skipped += 1
        nxt = self.breaker.next_trial_at
        self.sink(
            ProbeResult(
                exchange=self.name,
                probe=slot.planned.probe,
                started_at=self.clock.now(),
                latency_ms=None,
                outcome=Outcome.SKIPPED_OPEN_CIRCUIT,
                error_message="circuit open" + (f"; next trial at {iso_utc(nxt)}" if nxt else "; trial in flight"),
                breaker=self.breaker.state,
            )
        )

    # -- one probe -------------------------------------------------------------------------
    async def _probe(self, slot: _Slot, admission: Admission, scheduled: float) -> None:
        probe = slot.planned.probe
        lag_ms = max(0.0, (self.clock.monotonic() - scheduled) * 1000)
        self.lag.add(lag_ms)
        if self.lag_hook is not None:
            self.lag_hook(self.name, probe, lag_ms)
        recorded = False
        try:
            self.sent += 1
            request = slot.request or self._build_request(slot.spec)
            if not slot.spec.signed:
                slot.request = request
            sent = await self.transport.send(request)
            classification = self._classify(probe, sent)
            self.breaker.record(classification.outcome, admission)
            recorded = True
            pause = self.backoff.record(
                classification.outcome, classification.retry_after_s, classification.ban_until, self.name,
                overload=bool(classification.extra.get(VENUE_OVERLOAD)),
            )
            if pause is not None:
                log.warning("pausing %s probes until %s: %s", self.name, iso_utc(pause.until_wall), pause.reason)
                classification = with_pause(classification, pause)
            result = self._result(probe, sent, classification, lag_ms)
        except asyncio.CancelledError:
            if admission is Admission.TRIAL and not recorded:
                self.breaker.abandon_trial()
            raise
        except Exception as exc:
            _log_once(f"probe:{type(exc).__name__}", "unexpected %s while probing %s/%s: %s", type(exc).__name__,
                      self.name, probe, scrub(str(exc))[:200])
            if not recorded:
                self.breaker.record(Outcome.EXCHANGE_ERROR, admission)
            result = ProbeResult(
                exchange=self.name,
                probe=probe,
                started_at=self.clock.now(),
                latency_ms=None,
                outcome=Outcome.EXCHANGE_ERROR,
                error_code="cryptomon_internal",
                error_message=f"internal error in the monitor ({type(exc).__name__}); see the log",
                breaker=self.breaker.state,
            )
        self.sink(result)

    def _build_request(self, spec: ProbeSpec) -> TransportRequest:
        path = spec.path
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        params = dict(spec.params)
        headers = dict(spec.headers)
        query = urllib.parse.urlencode(params)
        if spec.signed:
            creds = self.cfg.credentials
            if creds is None:
                raise ValueError(f"{self.name}/{spec.name} needs credentials")
            signed = self.adapter.sign(
                spec,
                Credentials(
                    creds.api_key.get_secret_value(),
                    creds.api_secret.get_secret_value(),
                    creds.passphrase.get_secret_value() if creds.passphrase else None,
                ),
                int(self.clock.now() * 1000),
                query,
            )
            headers.update(signed.headers)
            if signed.query is not None:
                query = signed.query
            elif signed.params:
                query = urllib.parse.urlencode({**params, **signed.params})
        if query:
            url += ("&" if "?" in url else "?") + query
        return TransportRequest(spec.method, url, self.timeout_s, headers)

    def _classify(self, probe: str, sent: TransportResult) -> Classification:
        if sent.error is not None or sent.response is None:
            return Classification(outcome=sent.error or Outcome.RESET, error_message=sent.error_message)
        try:
            classification = self.adapter.classify(probe, sent.response)
        except Exception as exc:  # adapters must not raise; if one does, the answer was unreadable
            _log_once(f"classify:{self.adapter.kind}:{type(exc).__name__}", "%s adapter raised %s on %s",
                      self.adapter.kind, type(exc).__name__, probe)
            return Classification(
                outcome=Outcome.BAD_PAYLOAD,
                error_message=f"response could not be read ({type(exc).__name__}); HTTP {sent.response.status}",
            )
        classification = bound_times(classification)
        for note in bounded_notes(classification):
            # classified (the result says it), and logged once per exchange and kind of value, never per probe
            _log_once(f"bounded:{self.name}:{note.split(' ', 2)[:2]}", "%s sent an unusable time value: %s",
                      self.name, note)
        if sent.latency_ms is not None:
            try:
                classification = self.adapter.judge_latency(classification, sent.latency_ms)
            except Exception as exc:
                _log_once(f"judge:{self.adapter.kind}", "%s judge_latency raised %s", self.adapter.kind,
                          type(exc).__name__)
        return classification

    def _result(self, probe: str, sent: TransportResult, c: Classification, lag_ms: float) -> ProbeResult:
        offset = error = None
        if c.server_time_ms is not None and sent.server_window is not None:
            start, end = sent.server_window
            offset = c.server_time_ms - (start + end) / 2 * 1000
            error = (end - start) / 2 * 1000
        extra = dict(c.extra) if c.extra else {}
        extra["schedule_lag_ms"] = round(lag_ms, 3)
        if sent.pool_wait_ms:
            extra["pool_wait_ms"] = round(sent.pool_wait_ms, 3)
        if sent.response is not None and sent.response.truncated:
            extra["truncated"] = True
        if sent.tls is not None:  # a new TLS connection: what certificate the exchange's host showed
            extra["tls_host"] = sent.tls.host
            extra["tls_fingerprint"] = sent.tls.fingerprint
            extra["tls_issuer"] = sent.tls.issuer
            if sent.tls.not_after is not None:
                extra["tls_not_after"] = sent.tls.not_after
        # The one door exchange text comes in by: an exchange or a gateway may echo the request (key,
        # signature, passphrase) or carry terminal escapes in its error; nothing downstream sees them.
        if c.error_message or c.error_code:
            c = replace(c, error_message=scrub_opt(c.error_message), error_code=scrub_opt(c.error_code))
        if c.extra or sent.tls is not None:  # a certificate's names are the server's text too
            extra = scrub_obj(extra)
        return ProbeResult(
            exchange=self.name,
            probe=probe,
            started_at=sent.sent_at,
            latency_ms=sent.latency_ms,
            outcome=c.outcome,
            http_status=None if sent.response is None else sent.response.status,
            error_code=c.error_code,
            error_message=c.error_message,
            rate_limit_used=c.rate_limit_used,
            clock_offset_ms=offset,
            clock_error_ms=error,
            retry_after_s=c.retry_after_s,
            ban_until=c.ban_until,
            maintenance_until=c.maintenance_until,
            phases=sent.phases,
            breaker=self.breaker.state,
            extra=extra,
        )

    # -- observation -----------------------------------------------------------------------
    def intervals(self) -> dict[str, float]:
        """The effective interval of each probe (s), after the request budget stretched it."""
        return {s.planned.probe: s.planned.interval_s for s in self.slots}

    def snapshot(self) -> dict[str, object]:
        return {
            "paused": self.paused,
            "breaker": self.breaker.snapshot(),
            "backoff": self.backoff.snapshot(),
            "schedule_lag": self.lag.snapshot(),
            "sent": self.sent,
            "skipped": self.skipped,
            "in_flight": len(self._in_flight),
            "probes": {s.planned.probe: s.planned.as_dict() for s in self.slots},
        }
