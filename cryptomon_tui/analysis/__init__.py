"""Root-cause analysis: context with secrets redacted, offline rules, OpenAI-compatible LLM, costs and budget."""

from cryptomon_tui.analysis.context import AnalysisContext, WindowStats, build_context
from cryptomon_tui.analysis.ledger import AnalysisCache, InMemoryAnalysisCache, InMemoryUsageLedger, UsageLedger
from cryptomon_tui.analysis.model import Analysis, AnalysisSeverity, Summary, Usage
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.analysis.service import AnalysisService, UnknownIncident
from cryptomon_tui.redaction import Redactor

__all__ = [
    "Analysis",
    "AnalysisCache",
    "AnalysisContext",
    "AnalysisService",
    "AnalysisSeverity",
    "InMemoryAnalysisCache",
    "InMemoryUsageLedger",
    "OfflineAnalyzer",
    "Redactor",
    "Summary",
    "UnknownIncident",
    "Usage",
    "UsageLedger",
    "WindowStats",
    "build_context",
]
