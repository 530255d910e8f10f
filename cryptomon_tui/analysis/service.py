"""The engine's entry point for analysis: picks LLM or offline, enforces the budget, caches per incident,
runs in background tasks, summarises all open incidents and decides which incidents to analyse on its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from decimal import Decimal

from cryptomon_tui.analysis.context import AnalysisContext, build_context
from cryptomon_tui.analysis.ledger import AnalysisCache, InMemoryAnalysisCache, UsageLedger
from cryptomon_tui.analysis.llm import (
    BudgetExceeded,
    LlmAnalyzer,
    LlmClient,
    LlmFailure,
    PartialCallback,
    RunState,
    validate_reply,
)
from cryptomon_tui.analysis.model import Analysis, AnalysisSeverity, LlmSummaryReply, Summary
from cryptomon_tui.analysis.offline import OfflineAnalyzer, when
from cryptomon_tui.analysis.pricing import CostReport, PriceTable, build_report, month_key
from cryptomon_tui.analysis.prompt import SUMMARY_SCHEMA_TEXT, repair_messages, summary_messages
from cryptomon_tui.analysis.worker import off_loop
from cryptomon_tui.clock import Clock
from cryptomon_tui.config.analysis import AnalysisConfig, ModelPrice
from cryptomon_tui.config.root import Config
from cryptomon_tui.incidents.model import EventType, Incident, IncidentEvent
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import format_duration
from cryptomon_tui.redaction import Redactor

log = logging.getLogger(__name__)

ContextSource = Callable[[str], Awaitable[AnalysisContext | None]]
OFFLINE = "offline"
_AUTO_EVENTS = {EventType.OPENED, EventType.REOPENED, EventType.UPDATED}


class UnknownIncident(LookupError):
    pass


class AnalysisService:
    """One per engine (or per CLI run). Safe to call from the engine loop: nothing here blocks it."""

    def __init__(
        self,
        config: Config,
        ledger: UsageLedger,
        clock: Clock,
        cache: AnalysisCache | None = None,
        *,
        context_source: ContextSource | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.config = config
        self.settings = config.analysis
        self.ledger = ledger
        self.clock = clock
        self.cache: AnalysisCache = cache or InMemoryAnalysisCache(clock, self.settings.cache_ttl)
        self.context_source = context_source
        self.redactor = redactor or Redactor.for_llm(config)
        self.pricing = price_table(self.settings)
        self.offline = OfflineAnalyzer()
        self._llm: LlmAnalyzer | None = None
        if self.settings.llm is not None:
            client = LlmClient(self.settings.llm, clock, self.redactor)
            self._llm = LlmAnalyzer(
                self.settings.llm,
                self.pricing,
                clock,
                self.redactor,
                ledger=ledger,
                offline=self.offline,
                client=client,
            )
        self._tasks: set[asyncio.Task[Analysis]] = set()
        self._auto_times: deque[float] = deque()
        self._auto_done: dict[str, Severity] = {}
        self._spent_cache: tuple[str, Decimal] | None = None
        self._inflight: dict[tuple[str, str], asyncio.Task[Analysis]] = {}

    async def warm_up(self) -> None:
        """Pay the one-time costs (importing openai ~1 s, building the client) before the engine starts probing.

        Measured: done lazily under load, the import on the worker thread still held the GIL long enough to make
        a 10 ms ticker on the loop wake ~60-100 ms late once. Safe to skip; then the first analysis pays it.
        """
        if self._llm is not None:
            try:
                await self._llm.client.client()
            except Exception as exc:  # a broken setup shows up as a note on the first analysis instead
                log.warning("LLM client setup failed: %s", self.redactor.redact_for_llm(str(exc)))
        await off_loop(self.offline.analyze_sync, _warmup_context(self.config, self.clock.now()))

    # ------------------------------------------------------------------ budget

    @property
    def llm_configured(self) -> bool:
        return self._llm is not None and self.settings.enabled

    async def month_spent(self) -> Decimal:
        key = month_key(self.clock.now())
        total = await self.ledger.month_total(key)
        self._spent_cache = (key, total)
        return total

    async def remaining_budget(self) -> Decimal | None:
        budget = self.settings.monthly_budget_usd
        if budget is None:
            return None
        return budget - await self.month_spent()

    def _cached_over_budget(self) -> bool:
        budget = self.settings.monthly_budget_usd
        if budget is None or self._spent_cache is None:
            return False
        key, spent = self._spent_cache
        return key == month_key(self.clock.now()) and spent >= budget

    async def costs(self, month: str | None = None) -> CostReport:
        key = month or month_key(self.clock.now())
        usages = await self.ledger.month_usage(key)
        return build_report(usages, self.pricing, key, self.clock.now(), self.settings.monthly_budget_usd)

    # ------------------------------------------------------------------ analysis

    async def _context(self, target: str | AnalysisContext) -> AnalysisContext:
        if isinstance(target, AnalysisContext):
            return target
        if self.context_source is None:
            raise UnknownIncident(f"no context source to look up incident {target!r}")
        ctx = await self.context_source(target)
        if ctx is None:
            raise UnknownIncident(f"unknown incident {target!r}")
        return ctx

    async def analyze(
        self,
        target: str | AnalysisContext,
        *,
        force: bool = False,
        offline: bool = False,
        model: str | None = None,
        on_partial: PartialCallback | None = None,
    ) -> Analysis:
        """LLM when configured and within budget, else offline. Cached per (incident, source) unless forced."""
        ctx = await self._context(target)
        started = time.perf_counter()
        # Rules and prompt building are pure CPU (milliseconds each): a worker thread keeps the loop free.
        baseline = await off_loop(self.offline.analyze_sync, ctx)
        baseline = baseline.model_copy(update={"latency_ms": round((time.perf_counter() - started) * 1000, 3)})
        use_llm = self.llm_configured and not offline and (model is not None or self._llm is not None)
        if not use_llm:
            notes = []
            if not self.settings.enabled:
                notes.append("analysis.enabled is false: rule-based verdict only")
            elif offline:
                notes.append("offline analysis requested")
            result = baseline.model_copy(update={"notes": notes}) if notes else baseline
            await self.cache.put(result)  # history for the UI and notifications; lookups are per model
            return result
        assert self._llm is not None
        model_name = model or self._llm.name
        key = (ctx.incident.id, model_name)
        if not force:
            cached = await self.cache.get(ctx.incident.id, model_name)
            if cached is not None:
                return cached.model_copy(update={"notes": [*cached.notes, "cached: no new LLM call (use --force)"]})
            running = self._inflight.get(key)
            if running is not None:  # the same question is already being paid for
                return await asyncio.shield(running)
        task = asyncio.ensure_future(self._llm_analysis(ctx, baseline, model_name, on_partial))
        self._inflight[key] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._inflight.pop(key, None)
            else:
                task.add_done_callback(lambda _t: self._inflight.pop(key, None))

    async def _llm_analysis(
        self, ctx: AnalysisContext, baseline: Analysis, model_name: str, on_partial: PartialCallback | None
    ) -> Analysis:
        assert self._llm is not None
        remaining = await self.remaining_budget()
        if remaining is not None and remaining <= 0:
            budget = self.settings.monthly_budget_usd
            note = (
                f"monthly LLM budget of ${budget} is used up for {month_key(self.clock.now())}: "
                "answered offline (raise analysis.monthly_budget_usd to continue)"
            )
            result = baseline.model_copy(update={"notes": [note]})
            await self.cache.put(result)
            return result
        result = await self._llm.analyze(
            ctx, model=model_name, on_partial=on_partial, remaining_budget=remaining, offline_result=baseline
        )
        if result.cost_usd:
            self._spent_cache = None
        await self.cache.put(result)  # fallbacks too (source "offline"): they never satisfy a model lookup
        return result

    def start_background(
        self,
        target: str | AnalysisContext,
        *,
        force: bool = False,
        offline: bool = False,
        model: str | None = None,
        on_partial: PartialCallback | None = None,
        on_done: Callable[[Analysis], Awaitable[None] | None] | None = None,
    ) -> asyncio.Task[Analysis]:
        """Run an analysis as its own task; the caller's loop keeps going. Exceptions end in the offline verdict."""

        async def run() -> Analysis:
            try:
                result = await self.analyze(target, force=force, offline=offline, model=model, on_partial=on_partial)
            except UnknownIncident:
                raise
            except Exception as exc:  # never let a background analysis die silently
                log.warning("analysis failed: %s", self.redactor.redact_for_llm(str(exc)))
                ctx = await self._context(target)
                error = self.redactor.redact_for_llm(f"{type(exc).__name__}: {exc}")
                result = (await off_loop(self.offline.analyze_sync, ctx)).model_copy(
                    update={"notes": [f"analysis error: {error}"]}
                )
            if on_done is not None:
                outcome = on_done(result)
                if asyncio.iscoroutine(outcome):
                    await outcome
            return result

        task = asyncio.get_running_loop().create_task(run(), name="cryptomon-analysis")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._llm is not None:
            await self._llm.client.aclose()

    # ------------------------------------------------------------------ auto-analysis

    def should_auto_analyze(self, event: IncidentEvent) -> bool:
        """Auto-analysis policy: enabled, severity at or above the threshold, under max_per_hour, within budget.

        A True answer takes one slot of the hourly allowance, so call it once per event you will analyse.
        Over budget the analysis would be offline (free); ``offline_when_over_budget`` decides if it still runs.
        """
        auto = self.settings.auto_analyze
        if not (self.settings.enabled and auto.enabled) or event.event not in _AUTO_EVENTS:
            return False
        incident = event.incident
        if not incident.is_open or incident.is_silenced:
            return False
        threshold = Severity(auto.min_severity)
        if not incident.severity >= threshold:
            return False
        done = self._auto_done.get(incident.id)
        if event.event is EventType.UPDATED and (done is None or not incident.severity > done):
            return False  # updates only count when the severity escalated past what was analysed
        if event.event is EventType.OPENED and done is not None:
            return False
        if self.llm_configured and self._cached_over_budget() and not auto.offline_when_over_budget:
            return False
        now = self.clock.monotonic()
        while self._auto_times and now - self._auto_times[0] >= 3600:
            self._auto_times.popleft()
        if len(self._auto_times) >= auto.max_per_hour:
            return False
        self._auto_times.append(now)
        self._auto_done[incident.id] = incident.severity
        if len(self._auto_done) > 5000:
            self._auto_done.pop(next(iter(self._auto_done)))
        return True

    # ------------------------------------------------------------------ summary

    async def summarize(
        self,
        open_incidents: Iterable[Incident],
        stats: Mapping[str, Mapping[str, object]] | None = None,
        *,
        recent_results: Iterable[ProbeResult] = (),
        offline: bool = False,
        on_partial: PartialCallback | None = None,
        resolved: Iterable[Incident] = (),
        since_s: float | None = None,
    ) -> Summary:
        """The smart summary (at most three sentences, see ``Summary``) of the open incidents, plus one
        sentence about those in ``resolved`` (closed within the last ``since_s``)."""
        incidents = sorted((i for i in open_incidents if i.is_open), key=lambda i: (-i.severity.rank, i.started_at))
        recent = list(recent_results)
        base = await off_loop(self._offline_summary, incidents, stats or {}, recent)
        closed = [i for i in resolved if not i.is_open]
        if closed:
            # validated again so the three-sentence rule covers the added sentence
            base = Summary.model_validate({**base.model_dump(), "recent": recent_sentence(closed, since_s), "text": ""})
        if offline or not self.llm_configured or not incidents:
            return base
        assert self._llm is not None
        remaining = await self.remaining_budget()
        if remaining is not None and remaining <= 0:
            return base.model_copy(update={"notes": ["monthly LLM budget used up: offline summary"]})
        bundle: JsonObject = {
            "now": when(self.clock.now()),
            "incidents": [
                {
                    "rule": i.rule,
                    "exchange": i.exchange or "all",
                    "severity": i.severity.value,
                    "since": when(i.started_at),
                    "summary": i.summary[:160],
                    "state": i.state.value,
                    "likely_cause": line,
                }
                for i, line in zip(incidents[:20], base.details, strict=False)
            ],
            "rule_based_summary": base.headline,
        }
        messages = summary_messages(bundle, self.redactor, self._llm.config.max_prompt_tokens)
        state = RunState()
        started = time.perf_counter()
        model = self._llm.name
        try:
            result = await self._llm._paid_call(
                messages,
                model,
                state,
                incident_id=None,
                purpose="summary",
                remaining_budget=remaining,
                on_partial=on_partial,
            )
            try:
                reply = validate_reply(result.text or result.reasoning, LlmSummaryReply)
            except ValueError as problem:
                fixed = await self._llm._paid_call(
                    repair_messages(result.text, str(problem), self.redactor, SUMMARY_SCHEMA_TEXT),
                    model,
                    state,
                    incident_id=None,
                    purpose="repair",
                    remaining_budget=remaining,
                )
                reply = validate_reply(fixed.text or fixed.reasoning, LlmSummaryReply)
        except (LlmFailure, BudgetExceeded, ValueError) as exc:
            reason = exc.reason if isinstance(exc, LlmFailure) else str(exc)
            return base.model_copy(update={"notes": [reason], "cost_usd": state.cost})
        assert isinstance(reply, LlmSummaryReply)
        return Summary(
            headline=reply.headline,
            recent=base.recent,
            details=reply.details or base.details,
            severity=reply.severity,
            recommended_action=reply.recommended_action,
            source=model,
            incident_ids=base.incident_ids,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            cost_usd=state.cost,
            notes=state.notes,
            created_at=self.clock.now(),
        )

    def _offline_summary(
        self, incidents: list[Incident], stats: Mapping[str, Mapping[str, object]], recent: list[ProbeResult]
    ) -> Summary:
        now = self.clock.now()
        if not incidents:
            return Summary(
                headline="No open incidents: every watched exchange looks healthy.",
                severity=AnalysisSeverity.LOW,
                recommended_action="Nothing to do.",
                source=OFFLINE,
                created_at=now,
            )
        verdicts: list[Analysis] = []
        for inc in incidents[:20]:
            others = [o for o in incidents if o.id != inc.id]
            ctx = build_context(inc, stats, recent, others, self.config, now=now)
            verdicts.append(self.offline.analyze_sync(ctx))
        details = [
            f"{inc.severity.value.upper()} {inc.exchange or 'all'}: {v.root_cause}"
            for inc, v in zip(incidents, verdicts, strict=False)
        ]
        worst = max(verdicts, key=lambda v: (v.severity.rank, v.confidence))
        categories = {v.category for v in verdicts}
        exchanges = sorted({i.exchange for i in incidents if i.exchange})
        if "local_network" in categories:
            headline = "Your own network or DNS is down: every exchange fails at once, the exchanges are probably fine."
            action = next(v.recommended_action for v in verdicts if v.category == "local_network")
        elif len(incidents) == 1:
            headline = f"1 open incident on {incidents[0].exchange or 'all exchanges'}: {verdicts[0].root_cause}"
            action = verdicts[0].recommended_action
        else:
            top = ", ".join(sorted(c or "unclassified" for c in categories))
            headline = (
                f"{len(incidents)} open incidents on {len(exchanges) or 'several'} exchange(s) "
                f"({', '.join(exchanges[:5])}); causes: {top}."
            )
            action = worst.recommended_action
        return Summary(
            headline=headline,
            details=details,
            severity=worst.severity,
            recommended_action=action,
            source=OFFLINE,
            incident_ids=[i.id for i in incidents],
            created_at=now,
        )


def price_table(settings: AnalysisConfig) -> PriceTable:
    """The configured price table plus the LLM's own ``price_in``/``price_out`` (they win for its model)."""
    prices = dict(settings.pricing)
    llm = settings.llm
    if llm is not None and llm.price_in is not None and llm.price_out is not None:
        prices[llm.model] = ModelPrice(input_per_million=llm.price_in, output_per_million=llm.price_out)
    return PriceTable(prices)


def recent_sentence(resolved: list[Incident], since_s: float | None) -> str:
    """One sentence about the incidents that recovered in the asked period."""
    exchanges = sorted({i.exchange or "all" for i in resolved})
    period = f" in the last {format_duration(since_s)}" if since_s else " recently"
    ids = ", ".join(i.id for i in resolved[:5]) + (f" and {len(resolved) - 5} more" if len(resolved) > 5 else "")
    noun = "incident" if len(resolved) == 1 else "incidents"
    return f"{len(resolved)} {noun} resolved{period} on {', '.join(exchanges[:5])} ({ids})."


def _warmup_context(config: Config, now: float) -> AnalysisContext:
    from cryptomon_tui.incidents.model import IncidentState

    incident = Incident(
        id="warmup",
        fingerprint="warmup",
        rule="warmup",
        severity=Severity.INFO,
        exchange=None,
        probe=None,
        state=IncidentState.FIRING,
        summary="warm-up",
        started_at=now,
        updated_at=now,
    )
    return build_context(incident, {}, [], [], config, now=now)
