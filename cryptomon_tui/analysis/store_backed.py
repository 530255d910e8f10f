"""The usage ledger and the analysis cache on the SQLite store, shared by the daemon and the CLI.

So ``cryptomon costs`` sees what the daemon spent, and ``cryptomon analyze`` twice does not pay twice
even across processes. Also gathers an incident's context (results, other incidents) from the store
for the CLI.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

from pydantic import ValidationError

from cryptomon_tui.analysis.context import AnalysisContext, build_context
from cryptomon_tui.analysis.model import Analysis, Usage
from cryptomon_tui.analysis.pricing import month_bounds
from cryptomon_tui.clock import Clock
from cryptomon_tui.config.root import Config

if TYPE_CHECKING:
    from cryptomon_tui.store import Store

log = logging.getLogger(__name__)
CONTEXT_LOOKBACK_S = 900.0  # results from this long before the incident started
CONTEXT_MAX_RESULTS = 20_000


class StoreUsageLedger:
    """UsageLedger on the store's llm_usage table. Writes are committed when ``add`` returns."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, usage: Usage) -> None:
        await self.store.llm_usage_add(
            model=usage.model,
            tokens_in=usage.prompt_tokens,
            tokens_out=usage.completion_tokens,
            cost_usd=usage.cost_usd,
            incident_id=usage.incident_id,
            purpose=usage.purpose + (":estimated" if usage.estimated else ""),
            ts=usage.ts,
        )

    async def month_usage(self, yyyy_mm: str) -> list[Usage]:
        start, end = month_bounds(yyyy_mm)
        records = await self.store.llm_usage_between(start, end)
        out = []
        for r in records:
            purpose = r.purpose or "analysis"
            estimated = purpose.endswith(":estimated")
            out.append(
                Usage(
                    ts=r.ts,
                    model=r.model,
                    prompt_tokens=r.tokens_in,
                    completion_tokens=r.tokens_out,
                    cost_usd=r.cost_usd,
                    incident_id=r.incident_id,
                    purpose=purpose.removesuffix(":estimated"),
                    estimated=estimated,
                )
            )
        return out

    async def month_total(self, yyyy_mm: str) -> Decimal:
        return sum((u.cost_usd for u in await self.month_usage(yyyy_mm)), Decimal(0))


class StoreAnalysisCache:
    """AnalysisCache on the store's analyses table (every analysis is kept as history)."""

    def __init__(self, store: Store, clock: Clock, ttl_s: float) -> None:
        self.store = store
        self.clock = clock
        self.ttl = ttl_s

    async def get(self, incident_id: str, source: str) -> Analysis | None:
        record = await self.store.analyses_latest(incident_id, source)
        if record is None:
            return None
        try:
            analysis = Analysis.model_validate(record.result)
        except ValidationError:
            log.warning("stored analysis %s for %s is unreadable; ignoring it", record.id, incident_id)
            return None
        if self.ttl > 0 and self.clock.now() - analysis.created_at > self.ttl:
            return None
        return analysis

    async def put(self, analysis: Analysis) -> None:
        if analysis.incident_id is None:
            return
        await self.store.analyses_put(
            analysis.incident_id,
            analysis.model_dump(mode="json"),
            source=analysis.source,
            model=None if analysis.is_offline else analysis.source,
            cost_usd=analysis.cost_usd,
            created_at=analysis.created_at,
        )

    async def latest(self, incident_id: str) -> Analysis | None:
        """The newest analysis of any source (what the UI and notifications show)."""
        record = await self.store.analyses_latest(incident_id)
        if record is None:
            return None
        try:
            return Analysis.model_validate(record.result)
        except ValidationError:
            return None


async def context_from_store(store: Store, incident_id: str, config: Config, now: float) -> AnalysisContext | None:
    """The incident (by id or unique prefix) with the results around it and the incidents open with it."""
    incident = await store.incident(incident_id)
    if incident is None:
        return None
    since = incident.started_at - CONTEXT_LOOKBACK_S
    until = (incident.resolved_at or now) + 1.0
    results = []
    async for page in store.iter_results(since, until):
        results.extend(page)
        if len(results) >= CONTEXT_MAX_RESULTS:
            break
    others = [i for i in await store.incidents(open_only=True) if i.id != incident.id]
    # As of the latest evidence: a resolved incident, or one whose daemon stopped, is judged on what was seen then.
    latest = max([incident.updated_at, *(r.started_at for r in results[-1:])])
    at = min(now, incident.resolved_at if incident.resolved_at is not None else latest)
    return build_context(incident, {}, results, others, config, now=at)
