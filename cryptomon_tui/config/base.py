"""Base model for every config section: unknown keys are errors, not silently ignored, and no number may be
NaN, infinite or absurdly large (``interval: .inf`` once passed the check and then busy-looped the scheduler;
``max_size_mb: 1e23`` was accepted). Both rules live here so a new field cannot forget them; fields narrow
the range further with ``Field(ge=, le=)`` or ``duration_range``."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

V = TypeVar("V")

MAX_CONFIG_NUMBER = 1e12  # larger than any count, size or price a config means; smaller than float trouble


def _check_number(value: V) -> V:
    """``value`` unchanged, or ValueError when it (or a list item in it) is a number too large to mean anything."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        try:
            size = abs(float(value))
        except (OverflowError, ValueError):
            size = math.inf
        if not size <= MAX_CONFIG_NUMBER:
            raise ValueError(f"is too large (at most {MAX_CONFIG_NUMBER:g})")
    if isinstance(value, list | tuple):
        for item in value:
            _check_number(item)
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True, allow_inf_nan=False)

    @field_validator("*")
    @classmethod
    def _bounded_numbers(cls, value: V) -> V:
        return _check_number(value)
