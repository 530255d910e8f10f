"""Prometheus exposition of the engine snapshot, built at scrape time.

Nothing on the probe path touches prometheus_client: a custom collector reads one snapshot per
scrape and turns it into metric families. Names follow blackbox_exporter where one exists
(``probe_success``, ``probe_duration_seconds``, ``probe_http_duration_seconds{phase}``,
``probe_http_status_code``) so existing dashboards and alert rules keep working; the rest are
``cryptomon_*``. Every series carries ``location`` (daemon.location), ``exchange`` and, where it
applies, ``probe``.

Gauges describe "now" (last probe, rolling windows); what several locations must be summed over, or
``rate()``d, is a counter or the ``cryptomon_probe_duration_seconds`` histogram, read from the engine's
cumulative ``counters()`` (never from a window, so they only grow while the daemon runs). Percentiles
are not exported as gauges: ``histogram_quantile`` over the histogram gives them across locations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from cryptomon_tui import __version__
from cryptomon_tui.engine.api import BREAKER_STATES, EXCHANGE_STATUSES, EngineAPI, EngineCounters, Health
from cryptomon_tui.kernel.results import Phases
from cryptomon_tui.kernel.snapshot import Snapshot
from cryptomon_tui.kernel.units import parse_iso_utc

# blackbox_exporter's phase names for our Phases fields.
PHASES: tuple[tuple[str, Callable[[Phases], float | None]], ...] = (
    ("resolve", lambda p: p.dns_ms), ("connect", lambda p: p.connect_ms), ("tls", lambda p: p.tls_ms),
    ("processing", lambda p: p.ttfb_ms), ("transfer", lambda p: p.transfer_ms),
)
SEVERITIES = ("info", "warning", "error", "critical")
BREAKER_VALUE = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
assert set(BREAKER_VALUE) == set(BREAKER_STATES)


def _num(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _ms(value: float | None) -> float | None:
    return None if value is None else value / 1000.0


class EngineCollector(Collector):
    """Turns ``engine.snapshot()`` into metric families on every scrape."""

    def __init__(
        self,
        engine: EngineAPI,
        location: Callable[[], str],
        clock_now: Callable[[], float],
        extra: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.engine = engine
        self.location = location
        self.clock_now = clock_now
        self.extra = extra

    def describe(self) -> Iterable[Metric]:
        return []  # collected on demand; keeps registration from taking a snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.engine.snapshot()
        loc = snap.location or self.location()
        now = self.clock_now()
        ex_labels = ["exchange", "location"]
        pr_labels = ["exchange", "probe", "location"]

        success = GaugeMetricFamily("probe_success", "Whether the last probe succeeded", labels=pr_labels)
        duration = GaugeMetricFamily(
            "probe_duration_seconds", "Duration of the last probe in seconds", labels=pr_labels
        )
        phase = GaugeMetricFamily(
            "probe_http_duration_seconds",
            "Duration of the last probe's HTTP request by phase (dns=resolve, ttfb=processing)",
            labels=[*pr_labels, "phase"],
        )
        status_code = GaugeMetricFamily(
            "probe_http_status_code", "HTTP status of the last probe (0 = no response)", labels=pr_labels
        )
        err_ratio = GaugeMetricFamily(
            "cryptomon_probe_error_ratio", "Failed attempts / attempts over the rolling window", labels=pr_labels
        )
        attempts = GaugeMetricFamily(
            "cryptomon_probe_window_attempts", "Probes sent in the rolling window", labels=pr_labels
        )
        timeouts = GaugeMetricFamily(
            "cryptomon_probe_window_timeouts", "Timeouts in the rolling window", labels=pr_labels
        )
        outcomes = GaugeMetricFamily(
            "cryptomon_probe_window_outcomes",
            "Probe results in the rolling window by outcome",
            labels=[*pr_labels, "outcome"],
        )
        consecutive = GaugeMetricFamily(
            "cryptomon_probe_consecutive_failures", "Failed attempts in a row (0 after a success)", labels=pr_labels
        )
        status = GaugeMetricFamily(
            "cryptomon_exchange_status", "1 for the exchange's current status", labels=[*ex_labels, "status"]
        )
        ex_err = GaugeMetricFamily(
            "cryptomon_exchange_error_ratio", "Error ratio over all probes of the exchange", labels=ex_labels
        )
        offset = GaugeMetricFamily(
            "cryptomon_clock_offset_seconds", "Exchange clock minus local clock", labels=ex_labels
        )
        offset_err = GaugeMetricFamily(
            "cryptomon_clock_error_seconds", "Error bound of the clock offset (half the round trip)", labels=ex_labels
        )
        rl = GaugeMetricFamily(
            "cryptomon_rate_limit_used_ratio", "Share of the exchange's request limit in use", labels=ex_labels
        )
        breaker = GaugeMetricFamily(
            "cryptomon_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", labels=ex_labels
        )
        ban = GaugeMetricFamily(
            "cryptomon_ban_remaining_seconds", "Seconds until our IP ban is lifted (0 = none)", labels=ex_labels
        )

        for name, ex in snap.exchanges.items():
            exl = [name, loc]
            for st in EXCHANGE_STATUSES:
                status.add_metric([*exl, st], 1.0 if st == ex.status else 0.0)
            ex_err.add_metric(exl, ex.error_rate)
            if (v := _ms(ex.clock_offset_ms)) is not None:
                offset.add_metric(exl, v)
            if (v := _ms(ex.clock_error_ms)) is not None:
                offset_err.add_metric(exl, v)
            if ex.rate_limit_used is not None:
                rl.add_metric(exl, ex.rate_limit_used)
            if ex.breaker.state in BREAKER_VALUE:
                breaker.add_metric(exl, BREAKER_VALUE[ex.breaker.state])
            remaining = 0.0
            if ex.ban_until is not None:
                try:
                    remaining = max(0.0, parse_iso_utc(ex.ban_until) - now)
                except ValueError:
                    remaining = 0.0
            ban.add_metric(exl, remaining)

            for probe, row in ex.probes.items():
                prl = [name, probe, loc]
                last = row.last
                if last is not None and last.outcome == "skipped_open_circuit":
                    # Not sent because it kept failing: still a failure. A series that vanished while the
                    # circuit is open would hide the outage from `probe_success == 0` alerts.
                    success.add_metric(prl, 0.0)
                elif last is not None:
                    success.add_metric(prl, 1.0 if last.outcome == "ok" else 0.0)
                    if (v := _ms(last.latency_ms)) is not None:
                        duration.add_metric(prl, v)
                    status_code.add_metric(prl, float(last.http_status or 0))
                    if last.phases is not None:
                        for phase_name, read in PHASES:
                            if (v := _ms(read(last.phases))) is not None:
                                phase.add_metric([*prl, phase_name], v)
                err_ratio.add_metric(prl, row.error_rate)
                attempts.add_metric(prl, float(row.attempts))
                timeouts.add_metric(prl, float(row.timeouts))
                consecutive.add_metric(prl, float(row.consecutive_failures))
                for outcome, count in row.counts.items():
                    outcomes.add_metric([*prl, outcome], float(count))

        yield from (success, duration, phase, status_code, err_ratio, attempts, timeouts, outcomes,
                    consecutive, status, ex_err, offset, offset_err, rl, breaker, ban)
        yield from self._counters(self.engine.counters(), loc)
        yield from self._incidents(snap, loc)
        yield from self._streams(snap, loc)
        yield from self._notify(snap, loc)
        yield from self._analysis(snap, loc)
        yield from _store(self.engine.health(), loc)
        yield from _tls(snap, loc)

        info = GaugeMetricFamily("cryptomon_info", "Daemon version and location", labels=["version", "location"])
        info.add_metric([snap.version or __version__, loc], 1.0)
        yield info
        seq = GaugeMetricFamily("cryptomon_snapshot_seq", "Engine snapshot sequence number", labels=["location"])
        seq.add_metric([loc], float(snap.seq))
        yield seq
        if self.extra is not None:
            for key, value in self.extra().items():
                g = GaugeMetricFamily(f"cryptomon_{key}", key.replace("_", " "), labels=["location"])
                g.add_metric([loc], value)
                yield g

    def _counters(self, c: EngineCounters, loc: str) -> Iterator[Metric]:
        probes = CounterMetricFamily(
            "cryptomon_probes",
            "Probe results since the daemon started, by outcome (skipped_open_circuit = not sent)",
            labels=["exchange", "probe", "outcome", "location"],
        )
        for (ex, probe, outcome), n in sorted(c.probes.items()):
            probes.add_metric([ex, probe, outcome, loc], float(n))
        yield probes
        hist = HistogramMetricFamily(
            "cryptomon_probe_duration_seconds",
            "Latency of successful probes since the daemon started (fixed buckets 1 ms to 10 s)",
            labels=["exchange", "probe", "location"],
        )
        for (ex, probe), d in sorted(c.probe_durations.items()):
            hist.add_metric([ex, probe, loc], [(le, float(n)) for le, n in d.cumulative()], d.sum_s)
        yield hist
        opened = CounterMetricFamily(
            "cryptomon_incidents_opened",
            "Incidents opened since the daemon started",
            labels=["rule", "severity", "location"],
        )
        for (rule, sev), n in sorted(c.incidents_opened.items()):
            opened.add_metric([rule, sev, loc], float(n))
        yield opened
        notes = CounterMetricFamily(
            "cryptomon_notifications",
            "Notification deliveries since the daemon started (result: sent, or failed = a failed attempt)",
            labels=["channel", "result", "location"],
        )
        for (channel, result), n in sorted(c.notifications.items()):
            notes.add_metric([channel, result, loc], float(n))
        yield notes
        tokens = CounterMetricFamily(
            "cryptomon_llm_tokens", "LLM tokens used since the daemon started", labels=["model", "kind", "location"]
        )
        for (model, kind), n in sorted(c.llm_tokens.items()):
            tokens.add_metric([model, kind, loc], float(n))
        yield tokens
        cost = CounterMetricFamily(
            "cryptomon_llm_cost_usd", "LLM spend since the daemon started (USD)", labels=["model", "location"]
        )
        for model, usd in sorted(c.llm_cost_usd.items()):
            cost.add_metric([model, loc], usd)
        yield cost
        yield from _stream_counters(c, loc)

    def _streams(self, snap: Snapshot, loc: str) -> Iterator[Metric]:
        """Gauges of each stream now: up (connected), verdict, current silence, its stale threshold, lag."""
        labels = ["exchange", "stream", "location"]
        up = GaugeMetricFamily("cryptomon_stream_up", "1 while the stream is connected and subscribed", labels=labels)
        healthy = GaugeMetricFamily("cryptomon_stream_healthy", "1 while the stream's verdict is ok", labels=labels)
        silence = GaugeMetricFamily("cryptomon_stream_silence_seconds", "Seconds since the last data message",
                                    labels=labels)
        stale = GaugeMetricFamily("cryptomon_stream_stale_after_seconds",
                                  "Silence that makes this stream stale (learnt from its own gaps)", labels=labels)
        lag = GaugeMetricFamily("cryptomon_stream_lag_seconds_now",
                                "Median event-time lag over the last seconds", labels=labels)
        for item in snap.streams:
            key = [item.exchange, item.stream, loc]
            up.add_metric(key, 1.0 if item.connected and item.subscribed else 0.0)
            healthy.add_metric(key, 1.0 if item.outcome == "ok" else 0.0)
            silence.add_metric(key, item.silence_s)
            stale.add_metric(key, item.stale_after_s)
            if (v := _ms(item.lag_ms)) is not None:
                lag.add_metric(key, v)
        yield from (up, healthy, silence, stale, lag)

    def _incidents(self, snap: Snapshot, loc: str) -> Iterator[Metric]:
        fam = GaugeMetricFamily(
            "cryptomon_open_incidents",
            "Open incidents by severity and exchange (exchange empty = not tied to one)",
            labels=["severity", "exchange", "location"],
        )
        counts: dict[tuple[str, str], int] = {}
        exchanges = set(snap.exchanges) | {""}
        for inc in snap.open_incidents():
            ex = inc.exchange or ""
            exchanges.add(ex)
            key = (inc.severity or "error", ex)
            counts[key] = counts.get(key, 0) + 1
        for ex in sorted(exchanges):
            for sev in SEVERITIES:
                fam.add_metric([sev, ex, loc], float(counts.get((sev, ex), 0)))
        yield fam
        silences = GaugeMetricFamily("cryptomon_active_silences", "Active silences", labels=["location"])
        silences.add_metric([loc], float(len(snap.silences)))
        yield silences

    def _notify(self, snap: Snapshot, loc: str) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "cryptomon_notify_queue", "Notifications waiting in the outbox", labels=["channel", "location"]
        )
        dead = GaugeMetricFamily(
            "cryptomon_notify_dead_letters", "Notifications given up after retries", labels=["channel", "location"]
        )
        up = GaugeMetricFamily(
            "cryptomon_notify_channel_up", "1 when the channel delivers (state ok)", labels=["channel", "location"]
        )
        for ch in snap.notify:
            labels = [ch.channel or "?", loc]
            queue.add_metric(labels, float(ch.queue))
            dead.add_metric(labels, float(ch.dead_letters))
            up.add_metric(labels, 1.0 if ch.state in ("ok", "disabled") else 0.0)
        yield from (queue, dead, up)

    def _analysis(self, snap: Snapshot, loc: str) -> Iterator[Metric]:
        analysis = snap.analysis
        spend = GaugeMetricFamily(
            "cryptomon_llm_spend_usd_month", "LLM spend this calendar month (USD)", labels=["location"]
        )
        spend.add_metric([loc], analysis.llm_spend_usd_month or 0.0)
        yield spend
        if (budget := analysis.budget_usd_month) is not None:
            b = GaugeMetricFamily(
                "cryptomon_llm_budget_usd_month", "Monthly LLM budget (USD)", labels=["location"]
            )
            b.add_metric([loc], budget)
            yield b


def _tls(snap: Snapshot, loc: str) -> Iterator[Metric]:
    """Per exchange host: days until its TLS certificate expires, and 1 while it shows an unknown issuer."""
    days = GaugeMetricFamily("cryptomon_tls_cert_days_left", "Days until the host's TLS certificate expires",
                             labels=["exchange", "host", "location"])
    changed = GaugeMetricFamily("cryptomon_tls_issuer_changed", "1 while the host shows an issuer not seen before",
                                labels=["exchange", "host", "location"])
    for name, ex in snap.exchanges.items():
        for host in ex.tls:
            labels = [name, host.host or "?", loc]
            if host.days_left is not None:
                days.add_metric(labels, host.days_left)
            changed.add_metric(labels, 1.0 if host.issuer_changed else 0.0)
    yield from (days, changed)


def _stream_counters(c: EngineCounters, loc: str) -> Iterator[Metric]:
    labels = ["exchange", "stream", "location"]
    for name, help_text, values in (
        ("cryptomon_stream_messages", "Data messages received on the stream", c.stream_messages),
        ("cryptomon_stream_seq_gaps", "Holes in the stream's update numbering", c.stream_seq_gaps),
        ("cryptomon_stream_reconnects", "Stream reconnects (planned renewals included)", c.stream_reconnects),
    ):
        fam = CounterMetricFamily(name, help_text, labels=labels)
        for (ex, stream), n in sorted(values.items()):
            fam.add_metric([ex, stream, loc], float(n))
        yield fam
    for name, help_text, hists in (
        ("cryptomon_stream_gap_seconds", "Time between consecutive data messages", c.stream_gap_seconds),
        ("cryptomon_stream_lag_seconds", "Event-time lag (local receive, REST-offset corrected, minus exchange "
         "event time; negative clamps to 0)", c.stream_lag_seconds),
    ):
        hist = HistogramMetricFamily(name, help_text, labels=labels)
        for (ex, stream), d in sorted(hists.items()):
            hist.add_metric([ex, stream, loc], [(le, float(n)) for le, n in d.cumulative()], d.sum_s)
        yield hist


def _store(health: Health, loc: str) -> Iterator[Metric]:
    """Store health from ``engine.health()``: up (0 while SQLite refuses writes), errors by kind, and the
    notifications that wait in memory meanwhile."""
    up = GaugeMetricFamily("cryptomon_store_up", "1 while the SQLite store takes writes", labels=["location"])
    up.add_metric([loc], 1.0 if health.store_writable else 0.0)
    yield up
    store = health.store
    errors = CounterMetricFamily(
        "cryptomon_store_errors", "Storage errors by kind (disk_full, locked, corrupt, read_only ...)",
        labels=["kind", "location"],
    )
    for kind, count in (store.errors if store is not None else {}).items():
        errors.add_metric([kind, loc], float(count))
    yield errors
    failed = CounterMetricFamily(
        "cryptomon_store_failed_flushes", "Batched store writes that failed", labels=["location"]
    )
    failed.add_metric([loc], float(store.failed_flushes if store is not None else 0))
    yield failed
    memory = GaugeMetricFamily(
        "cryptomon_notify_in_memory", "Notifications waiting in memory because the store refuses them",
        labels=["location"],
    )
    memory.add_metric([loc], float(health.notify_in_memory or 0))
    yield memory


class LocatedProcessCollector(Collector):
    """prometheus_client's process metrics (CPU, RSS, fds) with the ``location`` label added."""

    def __init__(self, location: Callable[[], str]) -> None:
        self._inner = ProcessCollector(registry=None)
        self.location = location

    def collect(self) -> Iterator[Metric]:
        loc = self.location()
        for fam in self._inner.collect():
            fam.samples = [s._replace(labels={**s.labels, "location": loc}) for s in fam.samples]
            yield fam


def build_registry(
    engine: EngineAPI,
    location: Callable[[], str],
    clock_now: Callable[[], float],
    extra: Callable[[], dict[str, float]] | None = None,
) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, location, clock_now, extra))
    registry.register(LocatedProcessCollector(location))
    return registry
