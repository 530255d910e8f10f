"""Base model for every config section: unknown keys are errors, not silently ignored, and no number may be
NaN or infinite (``interval: .inf`` once passed the check and then busy-looped the scheduler)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, allow_inf_nan=False)
