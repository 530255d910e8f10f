"""Alertmanager-style label matching for silences.

A missing label matches as the empty string (as in Alertmanager), regexes are fully anchored, and
``is_equal=False`` turns a matcher into ``!=`` / ``!~``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from cryptomon_tui.incidents.model import Incident, Matcher, Silence

MATCHABLE_LABELS = ("exchange", "probe", "rule", "severity", "id")

# The presets the UI and CLI offer; None = until the matched incident resolves.
SILENCE_PRESETS: dict[str, float | None] = {"15m": 900.0, "1h": 3600.0, "4h": 14400.0, "until_resolved": None}


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def validate_matcher(m: Matcher) -> None:
    if not m.name:
        raise ValueError("a matcher needs a label name")
    if m.is_regex:
        try:
            _compiled(m.value)
        except re.error as exc:
            raise ValueError(f"matcher {m.name}=~{m.value!r}: bad regular expression ({exc})") from None


def incident_labels(incident: Incident) -> dict[str, str]:
    labels = {k: str(v) for k, v in incident.labels.items() if v is not None}
    labels["exchange"] = incident.exchange or ""
    labels["probe"] = incident.probe or ""
    labels["rule"] = incident.rule
    labels["severity"] = incident.severity.value
    labels["id"] = incident.id
    return labels


def matcher_matches(m: Matcher, labels: dict[str, str]) -> bool:
    value = labels.get(m.name, "")
    hit = _compiled(m.value).fullmatch(value) is not None if m.is_regex else value == m.value
    return hit if m.is_equal else not hit


def silence_matches(silence: Silence, incident: Incident) -> bool:
    labels = incident_labels(incident)
    return all(matcher_matches(m, labels) for m in silence.matchers)


def parse_matcher(text: str) -> Matcher:
    """``exchange=binance``, ``rule=~latency.*``, ``severity!=info``, ``probe!~book|ticker``."""
    for op, is_regex, is_equal in (("!~", True, False), ("=~", True, True), ("!=", False, False), ("=", False, True)):
        if op in text:
            name, value = text.split(op, 1)
            m = Matcher(name.strip(), value.strip().strip('"'), is_regex=is_regex, is_equal=is_equal)
            validate_matcher(m)
            return m
    raise ValueError(f"{text!r} is not a matcher: use name=value, name!=value, name=~regex or name!~regex")
