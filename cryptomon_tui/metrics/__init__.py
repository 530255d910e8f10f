"""Rolling metrics: per (exchange, probe) and per exchange, fixed memory, percentiles, rollups."""

from cryptomon_tui.metrics.histogram import LogHistogram
from cryptomon_tui.metrics.registry import ExchangeMetrics, MetricsRegistry
from cryptomon_tui.metrics.series import Rollup, Series, WindowStats

__all__ = ["ExchangeMetrics", "LogHistogram", "MetricsRegistry", "Rollup", "Series", "WindowStats"]
