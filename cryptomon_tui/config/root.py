"""The whole config file."""

from __future__ import annotations

from pydantic import Field, model_validator

from cryptomon_tui.config.analysis import AnalysisConfig
from cryptomon_tui.config.base import Section
from cryptomon_tui.config.daemon import DaemonConfig, UiConfig
from cryptomon_tui.config.detection import DetectionConfig, IncidentsConfig
from cryptomon_tui.config.exchanges import (
    DEFAULT_EXCHANGES,
    KIND_ALIASES,
    KNOWN_KINDS,
    ExchangeConfig,
    ProbingConfig,
)
from cryptomon_tui.config.notify import NotifyConfig
from cryptomon_tui.config.storage import StorageConfig


def _default_exchanges() -> dict[str, ExchangeConfig]:
    return {name: ExchangeConfig() for name in DEFAULT_EXCHANGES}


class Config(Section):
    exchanges: dict[str, ExchangeConfig] = Field(default_factory=_default_exchanges)
    probing: ProbingConfig = Field(default_factory=ProbingConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    incidents: IncidentsConfig = Field(default_factory=IncidentsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    ui: UiConfig = Field(default_factory=UiConfig)

    @model_validator(mode="after")
    def _resolve_kinds(self) -> Config:
        for name, ex in self.exchanges.items():
            if ex.kind is None:
                kind = KIND_ALIASES.get(name.lower())
                if kind is None:
                    if ex.url:
                        kind = "generic"
                    else:
                        raise ValueError(
                            f"unknown exchange {name!r}: name it one of {', '.join(KIND_ALIASES)} "
                            f"or set kind: to one of {', '.join(KNOWN_KINDS)} (generic needs url:)"
                        )
                ex.kind = kind  # type: ignore[assignment]
        return self

    def enabled_exchanges(self) -> dict[str, ExchangeConfig]:
        return {name: ex for name, ex in self.exchanges.items() if ex.enabled}
