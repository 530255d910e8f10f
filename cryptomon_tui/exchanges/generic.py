"""A generic HTTP target: any other exchange, a status page, or the user's own bot health endpoint.

Success means: the status is one of ``expect_status``, the optional JSON condition holds,
and (judged after timing) the request was not slower than ``latency_limit``.

Conditions are a small safe expression language over the JSON body (never ``eval``)::

    $.status == 'ok'
    $.data[0].healthy == true
    $.count > 3 and len($.items) >= 1
    has($.x) or not $.degraded

Paths start at ``$`` and use ``.name``, ``['name']`` and ``[index]`` (negative counts from
the end). Operators: ``== != > >= < <=``, ``and``/``&&``, ``or``/``||``, ``not``/``!``,
parentheses. Literals: numbers, 'strings' or "strings", true, false, null. Functions:
``len(x)`` and ``has(path)``. A missing path makes a comparison false.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from cryptomon_tui.exchanges.base import (
    Classification,
    ExchangeAdapter,
    ProbeSpec,
    RateLimit,
    RawResponse,
)
from cryptomon_tui.exchanges.common import (
    MISSING,
    Common,
    Found,
    bad_payload,
    cap_text,
    decode_json,
    dig,
    never_raise,
    retry_after_seconds,
    to_float,
)
from cryptomon_tui.kernel.jsonvalue import JsonValue
from cryptomon_tui.kernel.results import Outcome

if TYPE_CHECKING:
    from cryptomon_tui.config.exchanges import ExchangeConfig

T = TypeVar("T", str, float)
MAX_CONDITION_LENGTH = 1000
DEFAULT_RATE_LIMIT = RateLimit(capacity=50, window_s=1, unit="requests")


class ConditionError(ValueError):
    """A condition that does not parse; the message points at the offending position."""


# --------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<number>-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
      | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|>=|<=|&&|\|\||[><!()\[\].,$])
      | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and": "&&", "or": "||", "not": "!"}
_LITERALS: dict[str, JsonValue] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, op, name, end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise ConditionError(f"unexpected character {text[pos:].lstrip()[:1]!r} at position {pos}")
        kind = match.lastgroup or "op"
        value = match.group(kind)
        start = match.start(kind)
        if kind == "name" and value.lower() in _KEYWORDS:
            kind, value = "op", _KEYWORDS[value.lower()]
        tokens.append(_Token(kind, value, start))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


# --------------------------------------------------------------------------- parser -> closures

# A compiled (sub)expression: the response document in, a JSON value (or MISSING: no such path) out.
Evaluator = Callable[[JsonValue], Found]
PathStep = str | int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self, text: str | None = None) -> _Token:
        token = self.tokens[self.index]
        if text is not None and not (token.kind == "op" and token.text == text):
            found = token.text or "end of condition"
            raise ConditionError(f"expected {text!r} at position {token.pos}, found {found!r}")
        self.index += 1
        return token

    def at(self, text: str) -> bool:
        token = self.peek()
        return token.kind == "op" and token.text == text

    def parse(self) -> Evaluator:
        expr = self.or_expr()
        if self.peek().kind != "end":
            token = self.peek()
            raise ConditionError(f"unexpected {token.text!r} at position {token.pos}")
        return expr

    def or_expr(self) -> Evaluator:
        left = self.and_expr()
        while self.at("||"):
            self.take()
            right = self.and_expr()
            left = _or(left, right)
        return left

    def and_expr(self) -> Evaluator:
        left = self.not_expr()
        while self.at("&&"):
            self.take()
            right = self.not_expr()
            left = _and(left, right)
        return left

    def not_expr(self) -> Evaluator:
        if self.at("!"):
            self.take()
            inner = self.not_expr()
            return lambda doc: not _truthy(inner(doc))
        return self.comparison()

    def comparison(self) -> Evaluator:
        left = self.operand()
        token = self.peek()
        if token.kind == "op" and token.text in _COMPARE:
            self.take()
            right = self.operand()
            return _compare(token.text, left, right)
        return left

    def operand(self) -> Evaluator:
        token = self.peek()
        if token.kind == "number":
            self.take()
            value: JsonValue = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
            return lambda doc: value
        if token.kind == "string":
            self.take()
            text = _unquote(token.text)
            return lambda doc: text
        if token.kind == "op" and token.text == "$":
            return self.path()
        if token.kind == "op" and token.text == "(":
            self.take()
            inner = self.or_expr()
            self.take(")")
            return inner
        if token.kind == "name":
            name = token.text.lower()
            if name in _LITERALS:
                self.take()
                literal = _LITERALS[name]
                return lambda doc: literal
            if name in ("len", "has"):
                self.take()
                self.take("(")
                arg = self.path() if name == "has" else self.or_expr()
                self.take(")")
                return _has(arg) if name == "has" else _len(arg)
            raise ConditionError(f"unknown name {token.text!r} at position {token.pos} (functions: len, has)")
        found = token.text or "end of condition"
        raise ConditionError(f"expected a value at position {token.pos}, found {found!r}")

    def path(self) -> Evaluator:
        self.take("$")
        steps: list[PathStep] = []
        while True:
            if self.at("."):
                self.take()
                token = self.take()
                if token.kind != "name":
                    raise ConditionError(f"expected a field name after '.' at position {token.pos}")
                steps.append(token.text)
            elif self.at("["):
                self.take()
                token = self.take()
                if token.kind == "number" and re.fullmatch(r"-?\d+", token.text):
                    steps.append(int(token.text))
                elif token.kind == "string":
                    steps.append(_unquote(token.text))
                else:
                    raise ConditionError(f"expected an index or 'key' at position {token.pos}")
                self.take("]")
            else:
                break
        frozen = tuple(steps)
        return lambda doc: dig(doc, *frozen)


def _truthy(value: Found) -> bool:
    return value is not MISSING and bool(value)


def _or(left: Evaluator, right: Evaluator) -> Evaluator:
    return lambda doc: _truthy(left(doc)) or _truthy(right(doc))


def _and(left: Evaluator, right: Evaluator) -> Evaluator:
    return lambda doc: _truthy(left(doc)) and _truthy(right(doc))


def _has(path: Evaluator) -> Evaluator:
    return lambda doc: path(doc) is not MISSING


def _len(arg: Evaluator) -> Evaluator:
    def length(doc: JsonValue) -> Found:
        value = arg(doc)
        return len(value) if isinstance(value, str | list | dict) else MISSING

    return length


def _number(value: Found) -> float | None:
    """Numbers, and numeric strings (many exchanges send numbers as strings)."""
    return to_float(value)


def _equal(a: Found, b: Found) -> bool:
    if a is MISSING or b is MISSING:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) or isinstance(b, int | float):
        x, y = _number(a), _number(b)
        return x is not None and y is not None and x == y
    return bool(type(a) is type(b) and a == b)


def _ordered(op: str) -> Callable[[Found, Found], bool]:
    def check(a: Found, b: Found) -> bool:
        if isinstance(a, str) and isinstance(b, str) and (_number(a) is None or _number(b) is None):
            return _holds(op, a, b)  # text against text: lexical order
        x, y = _number(a), _number(b)
        return x is not None and y is not None and _holds(op, x, y)

    return check


def _holds(op: str, x: T, y: T) -> bool:
    if op == ">":
        return x > y
    if op == ">=":
        return x >= y
    if op == "<":
        return x < y
    return x <= y


_COMPARE: dict[str, Callable[[Found, Found], bool]] = {
    "==": _equal,
    "!=": lambda a, b: a is not MISSING and b is not MISSING and not _equal(a, b),
    ">": _ordered(">"),
    ">=": _ordered(">="),
    "<": _ordered("<"),
    "<=": _ordered("<="),
}


def _compare(op: str, left: Evaluator, right: Evaluator) -> Evaluator:
    check = _COMPARE[op]
    return lambda doc: check(left(doc), right(doc))


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition; ``holds(doc)`` never raises."""

    text: str
    _evaluate: Evaluator

    def holds(self, document: JsonValue) -> bool:
        try:
            return _truthy(self._evaluate(document))
        except (RecursionError, TypeError, ValueError, OverflowError):
            return False


def compile_condition(text: str) -> Condition:
    """Parse a condition once (at config time); ConditionError says what is wrong and where."""
    if len(text) > MAX_CONDITION_LENGTH:
        raise ConditionError(f"condition is longer than {MAX_CONDITION_LENGTH} characters")
    if not text.strip():
        raise ConditionError("condition is empty")
    try:
        evaluator = _Parser(text).parse()
    except RecursionError:
        raise ConditionError("condition is nested too deeply") from None
    return Condition(text, evaluator)


# --------------------------------------------------------------------------- adapter


class GenericAdapter(ExchangeAdapter):
    """One configured URL; the probe's name is the target's own name."""

    kind = "generic"
    display_name = "HTTP target"
    default_probes: tuple[str, ...] = ()
    rate_limit = DEFAULT_RATE_LIMIT

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "GET",
        expect_status: list[int] | tuple[int, ...] = (200,),
        condition: str | None = None,
        latency_limit_s: float | None = None,
        headers: dict[str, str] | None = None,
        requests_per_second_limit: float | None = None,
    ) -> None:
        super().__init__(None, name=name)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be an absolute http(s) URL, got {url!r}")
        self.url = url
        self.default_base_url = f"{parts.scheme}://{parts.netloc}"
        self.path = parts.path or "/"
        self.query_params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        self.method = method.upper()
        self.expect_status = tuple(expect_status) or (200,)
        self.condition = compile_condition(condition) if condition else None
        self.latency_limit_s = latency_limit_s
        self.headers = dict(headers or {})
        self.default_probes = (name,)
        if requests_per_second_limit:
            self.rate_limit = RateLimit(capacity=requests_per_second_limit, window_s=1)

    @classmethod
    def from_config(cls, name: str, cfg: ExchangeConfig) -> GenericAdapter:
        if not cfg.url:
            raise ValueError(f"generic target {name!r} needs url:")
        try:
            return cls(
                name,
                cfg.url,
                method=cfg.method,
                expect_status=list(cfg.expect_status),
                condition=cfg.condition,
                latency_limit_s=cfg.latency_limit,
                headers=dict(cfg.headers),
                requests_per_second_limit=cfg.requests_per_second_limit,
            )
        except ConditionError as exc:
            raise ValueError(f"condition: {exc}") from None

    def probes(self) -> dict[str, ProbeSpec]:
        spec = ProbeSpec(
            name=self.name,
            method=self.method,
            path=self.path,
            params=self.query_params,
            weight=1,
            headers=self.headers,
            description=f"{self.method} {self.url}",
        )
        return {self.name: spec}

    def classify(self, probe: str, response: RawResponse) -> Classification:
        return never_raise(self._classify, probe, response)

    def _classify(self, probe: str, response: RawResponse) -> Classification:
        status = response.status
        common: Common = {"retry_after_s": retry_after_seconds(response.headers)}
        if status not in self.expect_status:
            expected = ", ".join(str(s) for s in self.expect_status)
            message = cap_text(f"HTTP {status}, expected {expected}")
            if status == 429:
                outcome = Outcome.RATE_LIMITED
            elif 500 <= status < 600:
                outcome = Outcome.HTTP_5XX
            elif 400 <= status < 500:
                outcome = Outcome.HTTP_4XX
            else:
                outcome = Outcome.EXCHANGE_ERROR
            return Classification(outcome=outcome, error_code=f"http_{status}", error_message=message, **common)
        if response.truncated:
            # Cut at max_body_bytes (a never-ending chunked stream, 200 MB, a gzip bomb): whatever the target
            # meant, it did not answer like a health endpoint, and a condition would judge half a document.
            return Classification(
                outcome=Outcome.BAD_PAYLOAD,
                error_code="body_too_large",
                error_message=f"HTTP {status} body larger than max_body_bytes (cut at {len(response.body)} bytes)",
                **common,
            )
        if self.condition is None:
            return Classification(outcome=Outcome.OK, **common)
        decoded = decode_json(response.body, response.truncated)
        if not decoded.ok:
            return bad_payload(f"condition needs a JSON body: {decoded.error}", **common)
        if not self.condition.holds(decoded.value):
            return Classification(
                outcome=Outcome.EXCHANGE_ERROR,
                error_code="condition_failed",
                error_message=cap_text(f"condition {self.condition.text} is false"),
                **common,
            )
        return Classification(outcome=Outcome.OK, **common)

    def judge_latency(self, classification: Classification, latency_ms: float) -> Classification:
        limit = self.latency_limit_s
        if limit is None or classification.outcome is not Outcome.OK or latency_ms <= limit * 1000:
            return classification
        return replace(
            classification,
            outcome=Outcome.EXCHANGE_ERROR,
            error_code="latency_limit",
            error_message=f"took {latency_ms:.1f} ms, over the {limit * 1000:g} ms latency limit",
        )
