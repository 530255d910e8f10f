"""The ``storage:`` section (SQLite location, retention, size bound, write batching)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from cryptomon_tui.config.base import Section
from cryptomon_tui.kernel.units import Duration


class StorageConfig(Section):
    path: Path | None = None  # default: platformdirs data folder / cryptomon.sqlite3
    raw_retention: Duration = 86400.0  # raw probe results
    rollup_retention: Duration = 30 * 86400.0  # 1-minute rollups (and resolved incidents)
    max_size_mb: float = Field(default=512.0, gt=0)  # oldest raw results go first, then rollups
    flush_interval: Duration = 1.0  # batched writes; a full batch or an incident event flushes at once

    @field_validator("flush_interval")
    @classmethod
    def _flush_interval_range(cls, v: float) -> float:
        if not 0.05 <= v <= 60:
            raise ValueError("flush_interval must be between 50ms and 60s")
        return v

    @field_validator("raw_retention", "rollup_retention")
    @classmethod
    def _retention_floor(cls, v: float) -> float:
        if v < 60:
            raise ValueError("a retention shorter than 1m keeps nothing useful")
        return v

    @model_validator(mode="after")
    def _rollups_outlive_raw(self) -> StorageConfig:
        if self.rollup_retention < self.raw_retention:
            raise ValueError("rollup_retention must be at least raw_retention (rollups are the long history)")
        return self
