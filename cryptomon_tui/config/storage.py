"""The ``storage:`` section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cryptomon_tui.config.base import Section
from cryptomon_tui.units import Duration


class StorageConfig(Section):
    path: Path | None = None  # default: platformdirs data folder / cryptomon.sqlite3
    raw_retention: Duration = 86400.0
    rollup_retention: Duration = 30 * 86400.0
    max_size_mb: float = Field(default=512.0, gt=0)
    flush_interval: Duration = 1.0
