"""Validated analysis results, LLM usage records and the cost report shapes.

Pydantic models because they cross process and trust boundaries: an LLM reply is parsed into
``LlmVerdict`` and rejected when it does not fit, analyses go into SQLite and over the control API.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import iso_utc

MAX_ROOT_CAUSE_CHARS = 600
MAX_FIELD_CHARS = 800
MAX_EVIDENCE_ITEMS = 12


class AnalysisSeverity(StrEnum):
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _SEV_RANK[self]

    @classmethod
    def from_incident(cls, severity: Severity) -> AnalysisSeverity:
        return {
            Severity.INFO: cls.LOW,
            Severity.WARNING: cls.MEDIUM,
            Severity.ERROR: cls.HIGH,
            Severity.CRITICAL: cls.CRITICAL,
        }[severity]


_SEV_RANK = {
    AnalysisSeverity.LOW: 0,
    AnalysisSeverity.MEDIUM: 1,
    AnalysisSeverity.HIGH: 2,
    AnalysisSeverity.CRITICAL: 3,
}
_SEVERITY_WORDS = {
    "LOW": "LOW",
    "INFO": "LOW",
    "MINOR": "LOW",
    "MEDIUM": "MEDIUM",
    "MODERATE": "MEDIUM",
    "WARNING": "MEDIUM",
    "HIGH": "HIGH",
    "ERROR": "HIGH",
    "MAJOR": "HIGH",
    "CRITICAL": "CRITICAL",
    "SEVERE": "CRITICAL",
}


def _normalise_severity(v: object) -> object:
    if isinstance(v, str):
        word = _SEVERITY_WORDS.get(v.strip().upper())
        if word is None:
            raise ValueError(f"severity must be one of LOW, MEDIUM, HIGH, CRITICAL (got {v!r})")
        return word
    return v


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_sentences(text: str, count: int = 2) -> str:
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9])", " ".join(text.split()))
    return " ".join(parts[:count])


class _Verdict(BaseModel):
    """Fields shared by the offline result, the LLM reply and the stored analysis."""

    model_config = ConfigDict(extra="ignore")

    root_cause: str = Field(min_length=3)
    severity: AnalysisSeverity
    recommended_action: str = Field(min_length=3)
    estimated_recovery: str = Field(min_length=1)
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list)

    @field_validator("root_cause", mode="before")
    @classmethod
    def _one_or_two_sentences(cls, v: object) -> object:
        if isinstance(v, str):
            return _clip(_first_sentences(v, 2), MAX_ROOT_CAUSE_CHARS)
        return v

    @field_validator("recommended_action", "estimated_recovery", mode="before")
    @classmethod
    def _text(cls, v: object) -> object:
        if isinstance(v, list):  # models like to answer with bullet lists
            v = "; ".join(str(x) for x in v)
        if isinstance(v, str):
            return _clip(v, MAX_FIELD_CHARS)
        return v

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_words(cls, v: object) -> object:
        return _normalise_severity(v)

    @field_validator("confidence", mode="before")
    @classmethod
    def _percent_ok(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip().rstrip("%")
            try:
                v = float(text)
            except ValueError:
                return v
        if isinstance(v, int | float) and not isinstance(v, bool) and 1.0 < v <= 100.0:
            return float(v) / 100.0  # "85" or "85%" means 0.85
        return v

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence_list(cls, v: object) -> object:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [_clip(str(x), 300) for x in v if str(x).strip()][:MAX_EVIDENCE_ITEMS]
        return v


class LlmVerdict(_Verdict):
    """What the model must return (the JSON schema given in the prompt)."""


class Analysis(_Verdict):
    """One answer to "what broke, is it me or the exchange, what do I do, how long will it last"."""

    incident_id: str | None = None
    category: str | None = None  # offline rule that matched, e.g. "ip_banned", "local_network"
    source: str  # "offline" or the model name
    latency_ms: float = 0.0
    cost_usd: Decimal = Decimal("0")
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: list[str] = Field(default_factory=list)
    raw_text: str | None = None
    created_at: float

    @property
    def is_offline(self) -> bool:
        return self.source == "offline"

    def to_json_dict(self) -> JsonObject:
        d: JsonObject = self.model_dump(mode="json")
        d["created_at"] = iso_utc(self.created_at)
        d["cost_usd"] = str(self.cost_usd)
        return d


SUMMARY_MAX_SENTENCES = 3
# a sentence ends at . ! ? (or their CJK forms) followed by space and a capital, digit or quote: "e.g. x",
# "1.5 s" and "v5.0" stay inside their sentence
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])|(?<=[。！？])")


def sentences(text: str) -> list[str]:
    """The sentences of a short text (whitespace collapsed)."""
    flat = " ".join(text.split())
    return [p.strip() for p in _SENTENCE_END.split(flat) if p.strip()] if flat else []


def limit_sentences(text: str, limit: int = SUMMARY_MAX_SENTENCES) -> str:
    """At most ``limit`` sentences of ``text`` (the rest is dropped, not squeezed)."""
    return " ".join(sentences(text)[:limit])


class Summary(BaseModel):
    """One short picture of every open and recent incident (the "smart summary").

    ``text`` is what people read: at most three sentences (what is wrong, what to do, what recovered),
    enforced here for every writer, the LLM's reply included. ``details`` keep one line per incident for
    ``--json`` and the UI."""

    headline: str
    details: list[str] = Field(default_factory=list)
    severity: AnalysisSeverity
    recommended_action: str
    source: str
    incident_ids: list[str] = Field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: Decimal = Decimal("0")
    notes: list[str] = Field(default_factory=list)
    created_at: float
    recent: str = ""  # one sentence about incidents resolved in the asked period, if any
    text: str = ""

    @model_validator(mode="after")
    def _three_sentences(self) -> Summary:
        if not self.text:
            head = sentences(self.headline)[:1] or [self.headline.strip()]
            parts = [*head, *sentences(self.recommended_action)[:1], *sentences(self.recent)[:1]]
            self.text = " ".join(p if p[-1:] in ".!?。！？" else p + "." for p in parts if p)
        self.text = limit_sentences(self.text)
        return self

    def to_json_dict(self) -> JsonObject:
        d: JsonObject = self.model_dump(mode="json")
        d["created_at"] = iso_utc(self.created_at)
        d["cost_usd"] = str(self.cost_usd)
        return d


class LlmSummaryReply(BaseModel):
    model_config = ConfigDict(extra="ignore")

    headline: str = Field(min_length=3)
    details: list[str] = Field(default_factory=list)
    severity: AnalysisSeverity
    recommended_action: str = Field(min_length=3)

    @field_validator("severity", mode="before")
    @classmethod
    def _severity_words(cls, v: object) -> object:
        return _normalise_severity(v)

    @field_validator("headline", "recommended_action", mode="before")
    @classmethod
    def _text(cls, v: object) -> object:
        if isinstance(v, list):
            v = "; ".join(str(x) for x in v)
        return _clip(v, MAX_FIELD_CHARS) if isinstance(v, str) else v

    @field_validator("details", mode="before")
    @classmethod
    def _details(cls, v: object) -> object:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [_clip(str(x), 300) for x in v][:MAX_EVIDENCE_ITEMS]
        return v


class Usage(BaseModel):
    """One paid (or free, local) LLM call as the provider reported it."""

    ts: float
    model: str
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_usd: Decimal = Decimal("0")
    incident_id: str | None = None
    purpose: str = "analysis"  # analysis, repair, summary
    estimated: bool = False  # True when the provider sent no usage and tokens were estimated

    def to_json_dict(self) -> JsonObject:
        d: JsonObject = self.model_dump(mode="json")
        d["ts"] = iso_utc(self.ts)
        d["cost_usd"] = str(self.cost_usd)
        return d
