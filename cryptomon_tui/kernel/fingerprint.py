"""The stable identity of a problem, shared by detection (dedup while firing) and incidents (dedup, silences)."""

from __future__ import annotations

import hashlib


def fingerprint(rule: str, labels: dict[str, str | None]) -> str:
    """Stable identity of a problem: rule + sorted labels (missing label == empty)."""
    parts = [f"rule={rule}"] + [f"{k}={v or ''}" for k, v in sorted(labels.items()) if k != "rule"]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
