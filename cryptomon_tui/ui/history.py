"""Ranges and bucket widths of the details screens' charts, asked of the daemon over the control API.

The UI never opens the daemon's SQLite file: a UI attached over TCP from another machine or working
directory gets the same charts as one on the daemon's own socket. The answer is a typed
``kernel.history.HistoryAnswer`` read as untrusted input by the client (``HistoryAnswer.from_wire``).
"""

from __future__ import annotations

import math

RANGES: dict[str, float] = {"15m": 900.0, "1h": 3600.0, "24h": 86400.0}
CHART_POINTS = 120  # per chart: what a terminal-wide plot can show
MIN_RESOLUTION_S = 60.0  # the daemon keeps 1-minute rollups


def resolution_for(range_s: float) -> float:
    """Bucket width giving at most CHART_POINTS points over ``range_s``, never finer than a minute."""
    return max(MIN_RESOLUTION_S, math.ceil(range_s / CHART_POINTS / 60.0) * 60.0)
