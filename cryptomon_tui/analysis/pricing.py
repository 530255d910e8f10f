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
from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue

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

    def to_json_dict(self) -> JsonObject:
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
            "unpriced_models": list[JsonValue](self.unpriced_models),
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


# -- ROI: this month's real usage priced on every model, against the seed's reference figures ----------

SEED_TOKENS_PER_MONTH = 10_000_000
SEED_FIGURES = (("gpt-4.1", Decimal("80.00")), ("deepseek-v3.2", Decimal("4.20")))  # 10 M tokens/month (seed)
_MILLION = Decimal(1_000_000)


@dataclass(slots=True)
class RoiRow:
    model: str
    month_to_date: Decimal  # this month's tokens priced on this model
    monthly: Decimal  # projected to the end of the month
    yearly: Decimal
    diff_monthly: Decimal  # against the current model (positive = this model costs more)
    diff_yearly: Decimal
    budget_tokens: int | None  # tokens a month the budget covers on this model at this month's in/out mix


@dataclass(slots=True)
class RoiReport:
    month: str
    current: str
    tokens_month_to_date: int
    tokens_monthly: int  # projected
    rows: list[RoiRow]
    budget: Decimal | None
    seed: list[tuple[str, Decimal, Decimal | None]]  # model, seed figure, the price table's figure for 10 M
    seed_monthly_saving: Decimal
    break_even_tokens: int | None  # monthly tokens at which the seed's yearly saving covers the budget of a year

    def to_json_dict(self) -> JsonObject:
        return {
            "month": self.month,
            "current_model": self.current,
            "tokens_month_to_date": self.tokens_month_to_date,
            "tokens_monthly_projected": self.tokens_monthly,
            "budget_usd": None if self.budget is None else str(self.budget),
            "models": [
                {
                    "model": r.model,
                    "month_to_date_usd": str(r.month_to_date),
                    "monthly_usd": str(r.monthly.quantize(Decimal("0.0001"))),
                    "yearly_usd": str(r.yearly.quantize(Decimal("0.0001"))),
                    "diff_monthly_usd": str(r.diff_monthly.quantize(Decimal("0.0001"))),
                    "diff_yearly_usd": str(r.diff_yearly.quantize(Decimal("0.0001"))),
                    "budget_covers_tokens_per_month": r.budget_tokens,
                }
                for r in self.rows
            ],
            "seed": {
                "tokens_per_month": SEED_TOKENS_PER_MONTH,
                "figures_usd": {m: str(f) for m, f, _ in self.seed},
                "table_usd": {m: None if t is None else str(t) for m, _, t in self.seed},
                "monthly_saving_usd": str(self.seed_monthly_saving),
                "yearly_saving_usd": str(self.seed_monthly_saving * 12),
            },
            "break_even_tokens_per_month": self.break_even_tokens,
        }

    def render(self) -> str:
        lines = [
            f"ROI for {self.month}: {self.tokens_month_to_date:,} tokens so far, ~{self.tokens_monthly:,} by the end "
            f"of the month; differences against {self.current}",
            "",
            f"  {'model':<22} {'so far':>10} {'per month':>11} {'per year':>11} {'diff/month':>11} {'diff/year':>11}"
            + ("  budget covers" if self.budget is not None else ""),
        ]
        for r in self.rows:
            covers = ""
            if self.budget is not None:
                covers = "  unlimited" if r.budget_tokens is None else f"  {r.budget_tokens / 1e6:,.1f} M tok/mo"
            lines.append(
                f"  {r.model:<22} {money(r.month_to_date):>10} {money(r.monthly):>11} {money(r.yearly):>11} "
                f"{_signed(r.diff_monthly):>11} {_signed(r.diff_yearly):>11}{covers}"
            )
        seed = ", ".join(f"{m} ${f:.2f}" for m, f, _ in self.seed)
        lines += [
            "",
            f"  seed reference, {SEED_TOKENS_PER_MONTH // 1_000_000} M tokens/month: {seed}: "
            f"{money(self.seed_monthly_saving)}/month, {money(self.seed_monthly_saving * 12)}/year apart",
        ]
        checks = [f"{m} {money(t)}" for m, _, t in self.seed if t is not None]
        if checks:
            lines.append(f"  the price table gives for 10 M output-priced tokens: {', '.join(checks)}")
        share = self.tokens_monthly / SEED_TOKENS_PER_MONTH
        lines.append(
            f"  your volume is {share:.2%} of the seed's; at it the seed's models are "
            f"{money(self.seed_monthly_saving * Decimal(str(share)))}/month apart"
        )
        if self.break_even_tokens is not None and self.budget is not None:
            lines.append(
                f"  break-even: from {self.break_even_tokens:,} tokens/month the seed's saving "
                f"(${self.seed_monthly_saving / Decimal(SEED_TOKENS_PER_MONTH) * _MILLION:.2f} per M tokens) "
                f"exceeds your {money(self.budget)} monthly budget"
            )
        return "\n".join(lines)


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "-" if value < 0 else " ") + money(abs(value))


def build_roi(report: CostReport, table: PriceTable, now: float, current: str | None) -> RoiReport:
    """Price this month's real tokens (from the ledger's report) on every model of the table, project the
    month and the year, and set them against the seed's reference figures."""
    tokens = report.prompt_tokens + report.completion_tokens
    scale = (report.projection / report.spent) if report.spent else _elapsed_scale(report.month, now)
    current_key = (table.resolve(current) if current else None) or (
        table.resolve(report.by_model[0].model) if report.by_model else None
    ) or next(iter(table.prices), "")
    current_monthly = report.what_if.get(current_key, Decimal(0)) * scale
    rows = []
    for model, so_far in sorted(report.what_if.items(), key=lambda kv: kv[1]):
        monthly = so_far * scale
        covers: int | None = None
        if report.budget is not None and tokens:
            per_token = so_far / Decimal(tokens)
            covers = None if per_token == 0 else int(report.budget / per_token)
        rows.append(
            RoiRow(model, so_far, monthly, monthly * 12, monthly - current_monthly, (monthly - current_monthly) * 12,
                   covers)
        )
    seed = []
    for model, figure in SEED_FIGURES:
        price = table.price(model)
        ours = None if price is None else price.output_per_million * Decimal(SEED_TOKENS_PER_MONTH) / _MILLION
        seed.append((model, figure, ours))
    saving = SEED_FIGURES[0][1] - SEED_FIGURES[1][1]
    break_even = None
    if report.budget is not None and saving > 0:
        break_even = int(report.budget / (saving / Decimal(SEED_TOKENS_PER_MONTH)))
    return RoiReport(
        month=report.month,
        current=current_key,
        tokens_month_to_date=tokens,
        tokens_monthly=int(Decimal(tokens) * scale),
        rows=rows,
        budget=report.budget,
        seed=seed,
        seed_monthly_saving=saving,
        break_even_tokens=break_even,
    )


def _elapsed_scale(yyyy_mm: str, now: float) -> Decimal:
    start, end = month_bounds(yyyy_mm)
    if now >= end or now <= start:
        return Decimal(1)
    return Decimal(str(end - start)) / Decimal(str(now - start))
