"""Money: model prices, the cost of a call, month-to-date spend, projection and the what-if table.

All money is ``Decimal`` (USD), rounded only for display. Model names are matched tolerantly: case,
a provider prefix (``deepseek/``, ``openai/``), a ``:tag`` (Ollama) and a date suffix are ignored, and
config aliases map serving names to the priced model (``deepseek-chat`` -> ``deepseek-v3.2``).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from cryptomon_tui.analysis.model import Usage
from cryptomon_tui.config.analysis import ModelPrice

MILLION = Decimal(1_000_000)
CENT = Decimal("0.01")
_DATE_SUFFIX = re.compile(r"[-@](\d{8}|\d{4}-\d{2}-\d{2}|latest)$")


def _norm(name: str) -> str:
    return name.strip().lower()


def _candidates(name: str) -> list[str]:
    """The name and progressively simpler forms of it."""
    n = _norm(name)
    out = [n]
    if ":" in n:
        n = n.split(":", 1)[0]
        out.append(n)
    if "/" in n:
        n = n.rsplit("/", 1)[-1]
        out.append(n)
    stripped = _DATE_SUFFIX.sub("", n)
    if stripped != n:
        out.append(stripped)
    return out


@dataclass(frozen=True, slots=True)
class PriceTable:
    prices: Mapping[str, ModelPrice]

    def resolve(self, model: str) -> str | None:
        """The pricing key a served model name maps to, or None when unpriced."""
        index: dict[str, str] = {}
        for key, price in self.prices.items():
            index[_norm(key)] = key
            for alias in price.aliases:
                index.setdefault(_norm(alias), key)
        for cand in _candidates(model):
            if cand in index:
                return index[cand]
        return None

    def price(self, model: str) -> ModelPrice | None:
        key = self.resolve(model)
        return None if key is None else self.prices[key]

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
        price = self.price(model)
        if price is None:
            return None
        return cost_of(price, prompt_tokens, completion_tokens)


def cost_of(price: ModelPrice, prompt_tokens: int, completion_tokens: int) -> Decimal:
    return (
        Decimal(prompt_tokens) * price.input_per_million + Decimal(completion_tokens) * price.output_per_million
    ) / MILLION


def money(value: Decimal) -> str:
    """$1.23 for display; sub-cent amounts keep 4 decimals so tiny test spends are visible."""
    if value != 0 and abs(value) < CENT:
        return f"${value.quantize(Decimal('0.0001'), rounding=ROUND_HALF_UP)}"
    return f"${value.quantize(CENT, rounding=ROUND_HALF_UP)}"


def month_key(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, tz=_dt.UTC).strftime("%Y-%m")


def month_bounds(yyyy_mm: str) -> tuple[float, float]:
    """[start, end) of a UTC month as epoch seconds."""
    try:
        year, month = (int(x) for x in yyyy_mm.split("-", 1))
        start = _dt.datetime(year, month, 1, tzinfo=_dt.UTC)
    except ValueError:
        raise ValueError(f"{yyyy_mm!r} is not a month: write YYYY-MM, e.g. 2025-03") from None
    days = calendar.monthrange(year, month)[1]
    end = start + _dt.timedelta(days=days)
    return start.timestamp(), end.timestamp()


def project_month(spent: Decimal, yyyy_mm: str, now: float) -> Decimal:
    """Linear end-of-month projection by the elapsed share of the month (past months: the actual total)."""
    start, end = month_bounds(yyyy_mm)
    if now >= end:
        return spent
    if now <= start:
        return Decimal(0)
    elapsed = Decimal(str(now - start)) / Decimal(str(end - start))
    if elapsed <= 0:
        return spent
    return spent / elapsed


@dataclass(slots=True)
class ModelUsage:
    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    estimated_calls: int = 0


@dataclass(slots=True)
class CostReport:
    month: str
    spent: Decimal
    projection: Decimal
    budget: Decimal | None
    budget_left: Decimal | None
    by_model: list[ModelUsage] = field(default_factory=list)
    what_if: dict[str, Decimal] = field(default_factory=dict)  # priced model -> cost of this month's usage
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    unpriced_models: list[str] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "month": self.month,
            "spent_usd": str(self.spent),
            "projection_usd": str(self.projection.quantize(Decimal("0.000001"))),
            "budget_usd": None if self.budget is None else str(self.budget),
            "budget_left_usd": None if self.budget_left is None else str(self.budget_left),
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "by_model": [
                {
                    "model": m.model,
                    "calls": m.calls,
                    "prompt_tokens": m.prompt_tokens,
                    "completion_tokens": m.completion_tokens,
                    "cost_usd": str(m.cost_usd),
                    "estimated_calls": m.estimated_calls,
                }
                for m in self.by_model
            ],
            "what_if_usd": {k: str(v) for k, v in self.what_if.items()},
            "unpriced_models": self.unpriced_models,
        }

    def render(self) -> str:
        lines = [f"LLM costs for {self.month}"]
        lines.append(
            f"  month to date   {money(self.spent)}  ({self.calls} calls, "
            f"{self.prompt_tokens:,} tokens in / {self.completion_tokens:,} out)"
        )
        lines.append(f"  projection      {money(self.projection)} by the end of the month")
        if self.budget is None:
            lines.append("  budget          none set (analysis.monthly_budget_usd)")
        else:
            left = self.budget_left if self.budget_left is not None else Decimal(0)
            lines.append(f"  budget          {money(self.budget)}, {money(left)} left")
        if self.by_model:
            lines.append("")
            lines.append(f"  {'model':<32} {'calls':>6} {'tokens in':>11} {'tokens out':>11} {'cost':>10}")
            for m in self.by_model:
                lines.append(
                    f"  {m.model:<32} {m.calls:>6} {m.prompt_tokens:>11,} {m.completion_tokens:>11,} "
                    f"{money(m.cost_usd):>10}"
                )
        if self.what_if and self.calls:
            lines.append("")
            lines.append("  the same usage on each model would have cost:")
            for model, cost in sorted(self.what_if.items(), key=lambda kv: kv[1]):
                lines.append(f"    {model:<30} {money(cost):>10}")
        if self.unpriced_models:
            lines.append("")
            lines.append(
                "  no price known for: " + ", ".join(self.unpriced_models) + " (add them under analysis.pricing)"
            )
        return "\n".join(lines)


def build_report(
    usages: Iterable[Usage], table: PriceTable, yyyy_mm: str, now: float, budget: Decimal | None
) -> CostReport:
    items = list(usages)
    spent = sum((u.cost_usd for u in items), Decimal(0))
    by_model: dict[str, ModelUsage] = {}
    unpriced: set[str] = set()
    for u in items:
        m = by_model.setdefault(u.model, ModelUsage(model=u.model))
        m.calls += 1
        m.prompt_tokens += u.prompt_tokens
        m.completion_tokens += u.completion_tokens
        m.cost_usd += u.cost_usd
        m.estimated_calls += int(u.estimated)
        if table.resolve(u.model) is None:
            unpriced.add(u.model)
    prompt = sum(u.prompt_tokens for u in items)
    completion = sum(u.completion_tokens for u in items)
    what_if = {
        key: sum((cost_of(price, u.prompt_tokens, u.completion_tokens) for u in items), Decimal(0))
        for key, price in table.prices.items()
    }
    left = None if budget is None else max(Decimal(0), budget - spent)
    return CostReport(
        month=yyyy_mm,
        spent=spent,
        projection=project_month(spent, yyyy_mm, now),
        budget=budget,
        budget_left=left,
        by_model=sorted(by_model.values(), key=lambda m: m.cost_usd, reverse=True),
        what_if=what_if,
        prompt_tokens=prompt,
        completion_tokens=completion,
        calls=len(items),
        unpriced_models=sorted(unpriced),
    )
