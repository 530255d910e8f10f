"""The ``analysis:`` section (offline analyzer, LLM, pricing, budget). Filled in by the analysis issue."""

from __future__ import annotations

from cryptomon_tui.config.base import Section


class AnalysisConfig(Section):
    enabled: bool = True
