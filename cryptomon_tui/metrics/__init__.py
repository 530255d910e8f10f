"""Rolling metrics: per (exchange, probe) and per exchange, fixed memory, percentiles, rollups."""

from cryptomon_tui.metrics.histogram import LogHistogram
from cryptomon_tui.metrics.registry import ExchangeMetrics, ExchangeStats, MetricsRegistry, MetricsSnapshot
from cryptomon_tui.metrics.series import Rollup, Series, SeriesStats, WindowStats

__all__ = [
    "ExchangeMetrics",
    "ExchangeStats",
    "LogHistogram",
    "MetricsRegistry",
    "MetricsSnapshot",
    "Rollup",
    "Series",
    "SeriesStats",
    "WindowStats",
]
