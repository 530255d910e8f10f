"""Cost math to the cent against the pricing table, projections, the what-if table and config merging."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import pytest

from cryptomon_tui.analysis.ledger import InMemoryUsageLedger
from cryptomon_tui.analysis.model import Usage
from cryptomon_tui.analysis.pricing import PriceTable, build_report, month_bounds, project_month
from cryptomon_tui.config import config_from_data
from cryptomon_tui.config.analysis import AnalysisConfig, default_pricing


def cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


TABLE = PriceTable(default_pricing())


@pytest.mark.parametrize(
    "served,key",
    [
        ("deepseek-chat", "deepseek-v3.2"),
        ("DeepSeek-Reasoner", "deepseek-v3.2"),
        ("deepseek/deepseek-v3.2", "deepseek-v3.2"),
        ("gpt-4.1", "gpt-4.1"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("openai/gpt-4.1", "gpt-4.1"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet-4.5"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("google/gemini-2.5-flash:free", "gemini-2.5-flash"),
        ("llama3.1:8b", None),
        ("gpt-4.1-mini", None),  # a different model, not a date suffix
    ],
)
def test_model_names_are_matched_tolerantly(served: str, key: str | None) -> None:
    assert TABLE.resolve(served) == key


@pytest.mark.parametrize(
    "model,expected",
    [
        # 123,456 tokens in, 7,890 out
        ("gpt-4.1", "0.31"),  # 0.246912 + 0.06312 = 0.310032
        ("claude-sonnet-4.5", "0.49"),  # 0.370368 + 0.11835 = 0.488718
        ("gemini-2.5-flash", "0.06"),  # 0.0370368 + 0.019725 = 0.0567618
        ("deepseek-chat", "0.04"),  # 0.03456768 + 0.0033138 = 0.03788148
    ],
)
def test_call_cost_to_the_cent(model: str, expected: str) -> None:
    cost = TABLE.cost(model, 123_456, 7_890)
    assert cost is not None and cents(cost) == Decimal(expected)


def test_exact_decimal_cost_has_no_float_error() -> None:
    assert TABLE.cost("deepseek-chat", 1_000_000, 1_000_000) == Decimal("0.70")
    assert TABLE.cost("gpt-4.1", 1, 1) == Decimal("0.00001")
    assert TABLE.cost("unknown-model", 10, 10) is None


def test_month_bounds_and_linear_projection() -> None:
    start, end = month_bounds("2024-02")  # leap year
    assert end - start == 29 * 86400
    spent = Decimal("1.50")
    assert project_month(spent, "2024-02", ts("2024-02-15T12:00:00")) == Decimal("3.00")  # halfway
    assert project_month(spent, "2024-02", ts("2024-03-02T00:00:00")) == spent  # month over: actual
    assert project_month(spent, "2024-03", ts("2024-02-15T00:00:00")) == 0  # not started
    with pytest.raises(ValueError, match="YYYY-MM"):
        month_bounds("March")


async def test_report_from_recorded_usage_with_what_if_table() -> None:
    ledger = InMemoryUsageLedger()
    day = ts("2023-11-11T00:00:00")  # 10 of 30 days elapsed at 2023-11-11 00:00
    await ledger.add(
        Usage(
            ts=day - 3600,
            model="deepseek-chat",
            prompt_tokens=1_200_000,
            completion_tokens=300_000,
            cost_usd=TABLE.cost("deepseek-chat", 1_200_000, 300_000) or Decimal(0),
            incident_id="a",
        )
    )
    await ledger.add(
        Usage(
            ts=day - 60,
            model="gpt-4.1",
            prompt_tokens=800_000,
            completion_tokens=200_000,
            cost_usd=TABLE.cost("gpt-4.1", 800_000, 200_000) or Decimal(0),
            incident_id="b",
        )
    )
    await ledger.add(
        Usage(
            ts=ts("2023-10-31T23:59:00"), model="gpt-4.1", prompt_tokens=9, completion_tokens=9, cost_usd=Decimal("5")
        )
    )  # last month: not counted
    usages = await ledger.month_usage("2023-11")
    report = build_report(usages, TABLE, "2023-11", day, Decimal("10"))
    # deepseek: 0.336 + 0.126 = 0.462 ; gpt-4.1: 1.60 + 1.60 = 3.20
    assert report.spent == Decimal("3.662")
    assert await ledger.month_total("2023-11") == Decimal("3.662")
    assert cents(report.projection) == Decimal("10.99")  # 3.662 / (10/30)
    assert report.budget_left == Decimal("6.338")
    assert [m.model for m in report.by_model] == ["gpt-4.1", "deepseek-chat"]
    # the same 2,000,000 in / 500,000 out on each model
    assert report.what_if == {
        "gpt-4.1": Decimal("8.00"),  # 4.00 + 4.00
        "claude-sonnet-4.5": Decimal("13.50"),  # 6.00 + 7.50
        "gemini-2.5-flash": Decimal("1.85"),  # 0.60 + 1.25
        "deepseek-v3.2": Decimal("0.77"),  # 0.56 + 0.21
    }
    text = report.render()
    assert "$3.66" in text and "$10.99" in text and "$6.34 left" in text and "$13.50" in text
    data = report.to_json_dict()
    assert data["spent_usd"] == "3.662" and Decimal(data["what_if_usd"]["deepseek-v3.2"]) == Decimal("0.77")


def test_empty_month_report() -> None:
    report = build_report([], TABLE, "2023-11", ts("2023-11-20T00:00:00"), None)
    assert report.spent == 0 and report.projection == 0 and report.budget_left is None
    assert "none set" in report.render()


def test_user_pricing_is_merged_over_the_defaults() -> None:
    cfg = config_from_data(
        {
            "analysis": {
                "pricing": {
                    "qwen-max": {"input_per_million": "1.6", "output_per_million": 6.4, "aliases": ["qwen/qwen-max"]},
                    "gpt-4.1": {"input_per_million": 1.0, "output_per_million": 4.0},
                },
                "monthly_budget_usd": None,
            }
        }
    )
    table = PriceTable(cfg.analysis.pricing)
    assert table.resolve("qwen/qwen-max") == "qwen-max"
    assert table.cost("gpt-4.1", 1_000_000, 0) == Decimal("1.0")  # override
    assert table.resolve("deepseek-chat") == "deepseek-v3.2"  # defaults kept
    assert cfg.analysis.monthly_budget_usd is None


def test_analysis_config_defaults_are_offline_and_capped() -> None:
    cfg = AnalysisConfig()
    assert cfg.llm is None and cfg.monthly_budget_usd == Decimal("5.00")
    assert cfg.pricing["deepseek-v3.2"].output_per_million == Decimal("0.42")
    assert cfg.pricing["gpt-4.1"].output_per_million == Decimal("8.00")
    assert cfg.pricing["claude-sonnet-4.5"].output_per_million == Decimal("15.00")
    assert cfg.pricing["gemini-2.5-flash"].output_per_million == Decimal("2.50")


def test_llm_config_env_key_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-from-env")
    cfg = config_from_data({"analysis": {"llm": {"api_key": "${DEEPSEEK_API_KEY}", "timeout": "20s"}}})
    assert cfg.analysis.llm is not None
    assert cfg.analysis.llm.api_key is not None and cfg.analysis.llm.api_key.get_secret_value() == "sk-from-env"
    assert cfg.analysis.llm.timeout == 20.0
    assert "sk-from-env" not in repr(cfg)
    from cryptomon_tui.config import ConfigError

    with pytest.raises(ConfigError, match="base_url"):
        config_from_data({"analysis": {"llm": {"base_url": "api.deepseek.com"}}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_data({"analysis": {"llm": {"modle": "x"}}})


async def test_counting_ledger_keeps_totals_across_ledgers() -> None:
    """The /metrics LLM counters (tokens, dollars) only grow, also when a reload builds a new ledger."""
    from cryptomon_tui.analysis.ledger import CountingLedger, UsageTotals

    totals = UsageTotals()
    first = CountingLedger(InMemoryUsageLedger(), totals)
    await first.add(Usage(ts=1_750_000_000.0, model="m", prompt_tokens=1000, completion_tokens=200,
                          cost_usd=Decimal("0.0012")))
    second = CountingLedger(InMemoryUsageLedger(), totals)  # after a reload
    await second.add(Usage(ts=1_750_000_060.0, model="m", prompt_tokens=10, completion_tokens=2,
                           cost_usd=Decimal("0.0001")))
    assert totals.tokens == {("m", "prompt"): 1010, ("m", "completion"): 202}
    assert totals.cost_usd == {"m": Decimal("0.0013")}
    assert await second.month_total("2025-06") == Decimal("0.0001")  # the ledger itself is unchanged
