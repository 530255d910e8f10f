"""Where LLM usage and finished analyses are kept: protocols plus in-memory implementations.

The engine plugs in the store-backed versions (SQLite, shared with the CLI's ``cryptomon costs``);
tests and offline-only runs use these.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Protocol

from cryptomon_tui.analysis.model import Analysis, Usage
from cryptomon_tui.analysis.pricing import month_key
from cryptomon_tui.clock import Clock


class UsageLedger(Protocol):
    async def add(self, usage: Usage) -> None: ...

    async def month_usage(self, yyyy_mm: str) -> list[Usage]: ...

    async def month_total(self, yyyy_mm: str) -> Decimal: ...


class InMemoryUsageLedger:
    def __init__(self) -> None:
        self._items: list[Usage] = []
        self._lock = asyncio.Lock()

    async def add(self, usage: Usage) -> None:
        async with self._lock:
            self._items.append(usage)

    async def month_usage(self, yyyy_mm: str) -> list[Usage]:
        return [u for u in self._items if month_key(u.ts) == yyyy_mm]

    async def month_total(self, yyyy_mm: str) -> Decimal:
        return sum((u.cost_usd for u in await self.month_usage(yyyy_mm)), Decimal(0))


class UsageTotals:
    """LLM tokens and dollars since the engine started (for /metrics counters; only grows)."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str], int] = {}  # (model, "prompt" | "completion")
        self.cost_usd: dict[str, Decimal] = {}

    def add(self, usage: Usage) -> None:
        for kind, n in (("prompt", usage.prompt_tokens), ("completion", usage.completion_tokens)):
            key = (usage.model, kind)
            self.tokens[key] = self.tokens.get(key, 0) + n
        self.cost_usd[usage.model] = self.cost_usd.get(usage.model, Decimal(0)) + usage.cost_usd


class CountingLedger:
    """A ledger that also counts into ``totals``, which outlives the ledger (a reload builds a new one)."""

    def __init__(self, inner: UsageLedger, totals: UsageTotals) -> None:
        self.inner = inner
        self.totals = totals

    async def add(self, usage: Usage) -> None:
        await self.inner.add(usage)
        self.totals.add(usage)

    async def month_usage(self, yyyy_mm: str) -> list[Usage]:
        return await self.inner.month_usage(yyyy_mm)

    async def month_total(self, yyyy_mm: str) -> Decimal:
        return await self.inner.month_total(yyyy_mm)


class AnalysisCache(Protocol):
    """The latest analysis per (incident, source), so asking twice does not pay twice."""

    async def get(self, incident_id: str, source: str) -> Analysis | None: ...

    async def put(self, analysis: Analysis) -> None: ...


class InMemoryAnalysisCache:
    def __init__(self, clock: Clock, ttl_s: float) -> None:
        self._clock = clock
        self._ttl = ttl_s
        self._items: dict[tuple[str, str], Analysis] = {}

    async def get(self, incident_id: str, source: str) -> Analysis | None:
        hit = self._items.get((incident_id, source))
        if hit is None:
            return None
        if self._ttl > 0 and self._clock.now() - hit.created_at > self._ttl:
            self._items.pop((incident_id, source), None)
            return None
        return hit

    async def put(self, analysis: Analysis) -> None:
        if analysis.incident_id is None:
            return
        self._items[(analysis.incident_id, analysis.source)] = analysis
        if len(self._items) > 1000:  # bounded: drop the oldest
            oldest = min(self._items, key=lambda k: self._items[k].created_at)
            self._items.pop(oldest, None)
