"""The ``analysis:`` section: offline analyzer, optional OpenAI-compatible LLM, pricing, budget, auto-analysis.

``llm: null`` (the default) keeps every analysis offline and free. Pricing entries given in the
file are merged over the built-in table, so adding one model does not drop the others.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration, duration_range


class LlmConfig(Section):
    """Any OpenAI-compatible chat-completions endpoint (DeepSeek, OpenAI, OpenRouter, relays, Ollama, vLLM)."""

    base_url: str = "https://api.deepseek.com/v1"
    model: str = "deepseek-chat"
    api_key: SecretStr | None = Field(default=None, description='write "${DEEPSEEK_API_KEY}"; empty for local servers')
    timeout: Annotated[Duration, duration_range(0.0, 600.0, above=True)] = 30.0
    max_output_tokens: int = Field(default=500, ge=64, le=8192)
    temperature: float = Field(default=0.2, ge=0, le=2)
    stream: bool = True
    json_mode: bool = True
    max_retries: int = Field(default=2, ge=0, le=5, description="retries after HTTP 429 (Retry-After honoured)")
    max_retry_wait: Duration = Field(default=20.0, description="total time spent waiting on 429s before going offline")
    max_prompt_tokens: int = Field(default=2000, ge=500, le=100_000)
    price_in: Decimal | None = Field(
        default=None, ge=0, le=1000, description="USD per million input tokens of this model (0 for a free local one)"
    )
    price_out: Decimal | None = Field(default=None, ge=0, le=1000, description="USD per million output tokens")

    @model_validator(mode="after")
    def _both_prices(self) -> LlmConfig:
        if (self.price_in is None) != (self.price_out is None):
            raise ValueError("set both price_in and price_out (USD per million tokens), or neither")
        return self

    @field_validator("timeout")
    @classmethod
    def _timeout_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("timeout must be greater than 0")
        return v

    @field_validator("base_url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")


class ModelPrice(Section):
    """USD per million tokens. ``aliases`` are other names the same model is served under."""

    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)
    aliases: list[str] = Field(default_factory=list)


def default_pricing() -> dict[str, ModelPrice]:
    """List prices per million tokens (input / output)."""
    return {
        "gpt-4.1": ModelPrice(
            input_per_million=Decimal("2.00"),
            output_per_million=Decimal("8.00"),
            aliases=["gpt-4.1-2025-04-14", "openai/gpt-4.1"],
        ),
        "claude-sonnet-4.5": ModelPrice(
            input_per_million=Decimal("3.00"),
            output_per_million=Decimal("15.00"),
            aliases=["claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "anthropic/claude-sonnet-4.5"],
        ),
        "gemini-2.5-flash": ModelPrice(
            input_per_million=Decimal("0.30"),
            output_per_million=Decimal("2.50"),
            aliases=["google/gemini-2.5-flash", "models/gemini-2.5-flash"],
        ),
        "deepseek-v3.2": ModelPrice(
            input_per_million=Decimal("0.28"),
            output_per_million=Decimal("0.42"),
            aliases=["deepseek-chat", "deepseek-reasoner", "deepseek/deepseek-v3.2", "deepseek-v3.2-exp"],
        ),
    }


SeverityName = Literal["info", "warning", "error", "critical"]


class AutoAnalyzeConfig(Section):
    """Analyse incidents at or above ``min_severity`` as they open, so notifications carry the verdict."""

    enabled: bool = False
    min_severity: SeverityName = "error"
    max_per_hour: int = Field(default=6, ge=0)
    offline_when_over_budget: bool = Field(
        default=True, description="past the budget, still attach the free offline verdict"
    )


class AnalysisConfig(Section):
    enabled: bool = True
    llm: LlmConfig | None = None
    pricing: dict[str, ModelPrice] = Field(default_factory=default_pricing)
    monthly_budget_usd: Decimal | None = Field(default=Decimal("5.00"), ge=0, description="null = no cap")
    auto_analyze: AutoAnalyzeConfig = Field(default_factory=AutoAnalyzeConfig)
    cache_ttl: Duration = 3600.0

    @model_validator(mode="before")
    @classmethod
    def _merge_pricing(cls, data: object) -> object:
        """The configured prices on top of the built-in ones (a config names only the models it changes)."""
        if isinstance(data, dict):
            pricing = data.get("pricing")
            if isinstance(pricing, dict):
                merged: dict[object, object] = {name: price.model_dump() for name, price in default_pricing().items()}
                merged.update(pricing)
                return {**data, "pricing": merged}
        return data
