"""The ``detection:`` and ``incidents:`` sections (rules, windows, cool-downs).

Owned by the detection package; filled in by the detection issue.
"""

from __future__ import annotations

from pydantic import Field

from cryptomon_tui.config.base import Section
from cryptomon_tui.units import Duration


class DetectionConfig(Section):
    window: Duration = 300.0
    evaluate_every: Duration = 1.0


class IncidentsConfig(Section):
    reopen_cooldown: Duration = 600.0
    flap_threshold: int = Field(default=4, ge=2)
