"""LLM analyzer over any OpenAI-compatible chat-completions API, with the offline verdict as the safety net.

The ``openai`` client does the HTTP; retries are ours (``max_retries=0``) so that a 429's Retry-After is
honoured on the injected clock with a bounded total wait, and every failure turns into the offline result
plus a note saying why. Every call's usage is recorded (cost included) even when its reply is unusable.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Required, TypedDict

from pydantic import BaseModel, ValidationError

from cryptomon_tui.analysis.context import AnalysisContext
from cryptomon_tui.analysis.ledger import UsageLedger
from cryptomon_tui.analysis.model import Analysis, LlmVerdict, Usage
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.analysis.pricing import PriceTable
from cryptomon_tui.analysis.prompt import (
    SCHEMA_TEXT,
    analysis_messages,
    estimate_messages,
    estimate_tokens,
    repair_messages,
)
from cryptomon_tui.analysis.worker import off_loop
from cryptomon_tui.clock import Clock
from cryptomon_tui.config.analysis import LlmConfig
from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object, finite, integer
from cryptomon_tui.redaction import Redactor, scrub, scrub_obj

if TYPE_CHECKING:
    import openai
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam
    from openai.types.chat.completion_create_params import ResponseFormat

    class _CreateArgs(TypedDict, total=False):
        """The chat-completions arguments we send; a key left out is not sent (the API's default)."""

        model: Required[str]
        messages: Required[list[ChatCompletionMessageParam]]
        max_tokens: int
        max_completion_tokens: int
        temperature: float
        response_format: ResponseFormat
        stream_options: ChatCompletionStreamOptionsParam

PartialCallback = Callable[[str], Awaitable[None] | None]
_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)
_NO_KEY = "not-needed"  # local servers (Ollama, vLLM, llama.cpp) ignore the key, the client needs one
MAX_REPORTED_TOKENS = 100_000_000  # a usage figure beyond this (or negative, or not an int) is not believed


class LlmFailure(Exception):
    """A call that produced no usable reply. ``kind``: auth, rate_limited, server, timeout, connection, request."""

    def __init__(self, kind: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after = retry_after


SERVER_RETRIES = 1  # an LLM 5xx or timeout is tried once more
SERVER_RETRY_BACKOFF_S = 1.0


class BudgetExceeded(Exception):
    pass


class UnpricedModel(BudgetExceeded):
    """A paid call to a model whose price nobody knows would escape the budget: refused."""


@dataclass(slots=True)
class CallResult:
    text: str
    reasoning: str
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    model: str


@dataclass(slots=True)
class RunState:
    """Money and notes accumulated across the calls of one analysis."""

    cost: Decimal = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    notes: list[str] = field(default_factory=list)


def _provider_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if body.get("message"):
            return str(body["message"])
    return str(getattr(exc, "message", "") or exc)


def retry_after_seconds(headers: Mapping[str, str] | None, now: float) -> float | None:
    """Retry-After as seconds: ``retry-after-ms``, ``retry-after`` in seconds, or an HTTP date. A value that
    is no finite number ("inf", "nan", 1e999) is no wait: the caller's own backoff applies."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        ms = finite(raw_ms)
        if ms is not None:
            return max(0.0, ms / 1000.0)
    raw = headers.get("retry-after")
    if not raw:
        return None
    seconds = finite(raw)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when.timestamp() - now)


def parse_json_object(text: str) -> JsonObject:
    """The first JSON object in a reply, tolerating code fences and prose around it."""
    cleaned = _FENCE.sub("", text.strip())
    try:
        value = json.loads(cleaned)
    except json.JSONDecodeError:
        start = cleaned.find("{")
        end = cleaned.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("the reply contains no JSON object") from None
        try:
            value = json.loads(cleaned[start : end + 1])
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc.msg} at char {exc.pos}") from None
    # JSON escapes (\u001b, \u202e) only become characters here: scrub the decoded strings again
    scrubbed = as_object(scrub_obj(value))
    if scrubbed is None:
        raise ValueError("the reply is JSON but not an object")
    return scrubbed


def validate_reply(text: str, model: type[BaseModel]) -> BaseModel:
    """Parse and validate; raises ValueError with a short, model-readable problem."""
    data = parse_json_object(text)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'reply'}: {e['msg']}" for e in exc.errors()[:5])
        raise ValueError(problems) from None


class LlmClient:
    """One configured endpoint. The AsyncOpenAI client is built once, off the event loop."""

    def __init__(self, config: LlmConfig, clock: Clock, redactor: Redactor) -> None:
        self.config = config
        self.clock = clock
        self.redactor = redactor
        self._client: openai.AsyncOpenAI | None = None
        self._lock = asyncio.Lock()
        self._stream_options_ok = True
        self._json_mode_ok = True
        self._temperature_ok = True  # reasoning models (o1/o3/gpt-5 style) refuse a temperature
        self._max_tokens_key = "max_tokens"  # ... and want max_completion_tokens instead

    async def client(self) -> openai.AsyncOpenAI:
        async with self._lock:
            if self._client is None:
                key = self.config.api_key.get_secret_value() if self.config.api_key else ""
                # Importing openai (1.5 s: never on the engine's start path) and building the client (CA
                # certificates) take long: _build_client does both off the loop.
                self._client = await off_loop(_build_client, self.config, key or _NO_KEY)
            return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _retry_server(self, attempts_left: int) -> bool:
        """Wait and say yes when a 5xx or a timeout may be tried again (once). A retry costs nothing (no
        tokens were billed) and the next attempt is checked against nothing new: the paid call's budget
        estimate already covered one answer."""
        if attempts_left <= 0:
            return False
        await self.clock.sleep(SERVER_RETRY_BACKOFF_S)
        return True

    def _reason(self, text: str) -> str:
        return self.redactor.redact_for_llm(" ".join(text.split()))[:300]

    async def complete(
        self,
        messages: list[dict[str, str]],
        model: str,
        *,
        on_partial: PartialCallback | None = None,
        json_mode: bool | None = None,
    ) -> CallResult:
        """One chat completion: bounded retries on 429 (Retry-After honoured), one more try after a 5xx or a
        timeout. Raises LlmFailure."""
        cfg = self.config
        waited = 0.0
        attempt = 0
        attempts_left = SERVER_RETRIES  # 5xx and timeouts: once more after a pause
        try:
            await self.client()
        except Exception as exc:  # a broken installation or base_url: report, do not crash the engine
            raise LlmFailure("connection", f"cannot set up the LLM client: {self._reason(str(exc))}") from None
        import openai  # imported by client() on the worker thread: only a lookup here
        while True:
            try:
                async with asyncio.timeout(cfg.timeout):
                    return await self._once(
                        messages, model, on_partial, cfg.json_mode if json_mode is None else json_mode
                    )
            except openai.AuthenticationError as exc:
                raise LlmFailure("auth", f"API key rejected: {self._reason(_provider_message(exc))}") from None
            except openai.PermissionDeniedError as exc:
                raise LlmFailure("auth", f"API key not allowed: {self._reason(_provider_message(exc))}") from None
            except openai.RateLimitError as exc:
                delay = retry_after_seconds(exc.response.headers, self.clock.now())
                wait = delay if delay is not None else min(8.0, 1.0 * 2**attempt)
                attempt += 1
                message = self._reason(_provider_message(exc))
                if attempt > cfg.max_retries or waited + wait > cfg.max_retry_wait:
                    hint = f"; retry after {wait:.0f}s" if delay is not None else ""
                    raise LlmFailure("rate_limited", f"LLM provider rate limit (429): {message}{hint}", delay) from None
                await self.clock.sleep(wait)
                waited += wait
            except openai.BadRequestError as exc:
                message = _provider_message(exc)
                lowered = message.lower()
                if self._stream_options_ok and "stream_options" in lowered:
                    self._stream_options_ok = False
                    continue
                if self._json_mode_ok and ("response_format" in lowered or "json" in lowered):
                    self._json_mode_ok = False
                    continue
                if self._temperature_ok and "temperature" in lowered:
                    self._temperature_ok = False
                    continue
                if self._max_tokens_key == "max_tokens" and "max_completion_tokens" in lowered:
                    self._max_tokens_key = "max_completion_tokens"
                    continue
                raise LlmFailure("request", f"LLM request rejected (400): {self._reason(message)}") from None
            except openai.APIStatusError as exc:
                kind = "server" if exc.status_code >= 500 else "request"
                if kind == "server" and await self._retry_server(attempts_left):
                    attempts_left -= 1
                    waited += SERVER_RETRY_BACKOFF_S
                    continue
                raise LlmFailure(
                    kind, f"LLM provider error {exc.status_code}: {self._reason(_provider_message(exc))}"
                ) from None
            except (TimeoutError, openai.APITimeoutError):
                if await self._retry_server(attempts_left):
                    attempts_left -= 1
                    waited += SERVER_RETRY_BACKOFF_S
                    continue
                raise LlmFailure("timeout", f"LLM did not answer within {cfg.timeout:g}s") from None
            except openai.APIConnectionError as exc:
                cause = exc.__cause__ or exc
                raise LlmFailure(
                    "connection",
                    f"cannot reach the LLM endpoint: {self._reason(type(cause).__name__ + ' ' + str(cause))}",
                ) from None
            except openai.APIError as exc:  # malformed stream, unexpected body
                raise LlmFailure("server", f"LLM reply unreadable: {self._reason(str(exc))}") from None

    async def _once(
        self, messages: list[dict[str, str]], model: str, on_partial: PartialCallback | None, json_mode: bool
    ) -> CallResult:
        client = await self.client()
        cfg = self.config
        kwargs: _CreateArgs = {"model": model, "messages": [_message_param(m) for m in messages]}
        if self._max_tokens_key == "max_tokens":
            kwargs["max_tokens"] = cfg.max_output_tokens
        else:
            kwargs["max_completion_tokens"] = cfg.max_output_tokens
        if self._temperature_ok:
            kwargs["temperature"] = cfg.temperature
        if json_mode and self._json_mode_ok:
            kwargs["response_format"] = {"type": "json_object"}
        if not cfg.stream:
            resp = await client.chat.completions.create(**kwargs)
            text = reasoning = ""
            if resp.choices:
                msg = resp.choices[0].message
                text = msg.content or ""
                reasoning = _extra(msg, "reasoning_content")
            if on_partial is not None and text:
                await _call(on_partial, scrub(text))
            usage = resp.usage
            return self._result(messages, text, reasoning, usage, resp.model or model)
        if self._stream_options_ok:
            kwargs["stream_options"] = {"include_usage": True}
        stream = await client.chat.completions.create(**kwargs, stream=True)
        parts: list[str] = []
        thinking: list[str] = []
        usage_obj: CompletionUsage | None = None
        served = model
        try:
            async for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage_obj = chunk.usage
                if getattr(chunk, "model", None):
                    served = chunk.model
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if delta is None:
                        continue
                    piece = _extra(delta, "reasoning_content")
                    if piece:
                        thinking.append(piece)
                    if delta.content:
                        parts.append(delta.content)
                        if on_partial is not None:
                            await _call(on_partial, scrub(delta.content))
                # Chunks that arrived together are parsed without a suspension: yield so a burst of
                # them cannot hold the loop.
                await asyncio.sleep(0)
        finally:
            await stream.close()
        return self._result(messages, "".join(parts), "".join(thinking), usage_obj, served)

    def _result(
        self, messages: list[dict[str, str]], text: str, reasoning: str, usage: CompletionUsage | None, model: str
    ) -> CallResult:
        # openai builds reply models without validating them: a server's usage figures are read as untrusted
        prompt = _tokens(getattr(usage, "prompt_tokens", None))
        completion = _tokens(getattr(usage, "completion_tokens", None))
        if prompt is None or completion is None:
            prompt = estimate_messages(messages)
            completion = estimate_tokens(text) + estimate_tokens(reasoning)
            reported = False
        else:
            reported = True
        # the one door LLM text comes in by: terminal controls and any echoed secret go before it is parsed,
        # cached, stored, notified or printed
        return CallResult(scrub(text), scrub(reasoning), prompt, completion, reported, model)


_WARMUP_CHUNK = {
    "id": "warmup",
    "object": "chat.completion.chunk",
    "created": 0,
    "model": "warmup",
    "choices": [{"index": 0, "delta": {"content": "{}", "reasoning_content": ""}, "finish_reason": None}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _tokens(value: object) -> int | None:
    """A token count a server reported: a non-negative int below MAX_REPORTED_TOKENS, else None."""
    return integer(value, 0, MAX_REPORTED_TOKENS) if isinstance(value, int) else None


def _message_param(message: dict[str, str]) -> ChatCompletionMessageParam:
    """One of our prompt messages ({"role", "content"}) as the client's typed parameter (same JSON)."""
    role, content = message["role"], message["content"]
    if role == "system":
        return {"role": "system", "content": content}
    if role == "assistant":
        return {"role": "assistant", "content": content}
    return {"role": "user", "content": content}


def _build_client(config: LlmConfig, key: str) -> openai.AsyncOpenAI:
    """Import openai, build the client and touch its lazy parts (resource modules, response models) on the
    worker thread, so the first real reply is not parsed on the loop with cold caches (~100 ms measured)."""
    import openai

    client = openai.AsyncOpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout, max_retries=0)
    _ = client.chat.completions
    for lazy in ("anyio._backends._asyncio", "httpcore2._backends.anyio", "httpcore._backends.anyio"):
        try:  # the HTTP stack imports its async backend on the first request, on the loop
            importlib.import_module(lazy)
        except ImportError:
            pass
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

    # model_construct is public (pydantic), and openai's models build their nested types in it: the same
    # path the client takes to parse a reply, without reaching into openai._models.
    ChatCompletionChunk.model_construct(None, **_WARMUP_CHUNK)
    message = {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
    ChatCompletion.model_construct(None, **{**_WARMUP_CHUNK, "object": "chat.completion", "choices": [message]})
    return client


def _extra(obj: object, name: str) -> str:
    """A provider's extra string field (``reasoning_content``), as an attribute or in ``model_extra``."""
    value = getattr(obj, name, None)
    if value is None:
        extra = getattr(obj, "model_extra", None) or {}
        value = extra.get(name)
    return value if isinstance(value, str) else ""


async def _call(callback: PartialCallback, text: str) -> None:
    result = callback(text)
    if inspect.isawaitable(result):
        await result


class LlmAnalyzer:
    """Analyse with the LLM; on any failure return the offline verdict with the reason in ``notes``."""

    def __init__(
        self,
        config: LlmConfig,
        pricing: PriceTable,
        clock: Clock,
        redactor: Redactor,
        *,
        ledger: UsageLedger | None = None,
        offline: OfflineAnalyzer | None = None,
        client: LlmClient | None = None,
    ) -> None:
        self.config = config
        self.pricing = pricing
        self.clock = clock
        self.redactor = redactor
        self.ledger = ledger
        self.offline = offline or OfflineAnalyzer()
        self.client = client or LlmClient(config, clock, redactor)

    @property
    def name(self) -> str:
        return self.config.model

    def estimate_call_cost(self, messages: list[dict[str, str]], model: str) -> Decimal:
        """Worst case of one call: the prompt plus a full-length reply."""
        price = self.pricing.price(model)
        if price is None:
            return Decimal(0)
        prompt = estimate_messages(messages)
        return (
            Decimal(prompt) * price.input_per_million
            + Decimal(self.config.max_output_tokens) * price.output_per_million
        ) / Decimal(1_000_000)

    async def _paid_call(
        self,
        messages: list[dict[str, str]],
        model: str,
        state: RunState,
        *,
        incident_id: str | None,
        purpose: str,
        remaining_budget: Decimal | None,
        on_partial: PartialCallback | None = None,
    ) -> CallResult:
        if self.pricing.price(model) is None:
            raise UnpricedModel(
                f"model {model!r} has no known price, so the monthly budget cannot cover it: refused "
                "(set analysis.llm.price_in and price_out in USD per million tokens, 0 for a free local model, "
                "or add it under analysis.pricing); answered offline"
            )
        if remaining_budget is not None:
            estimate = self.estimate_call_cost(messages, model)
            if state.cost + estimate > remaining_budget:
                raise BudgetExceeded(
                    f"monthly LLM budget: this call (up to ~${estimate:.4f}) would exceed the "
                    f"${max(Decimal(0), remaining_budget - state.cost):.4f} left; answered offline"
                )
        result = await self.client.complete(messages, model, on_partial=on_partial)
        cost = self.pricing.cost(model, result.prompt_tokens, result.completion_tokens)
        if cost is None:
            cost = Decimal(0)
            note = f"no price known for model {model!r} (add it under analysis.pricing); cost recorded as $0"
            if note not in state.notes:
                state.notes.append(note)
        if not result.usage_reported:
            note = "the provider reported no token usage; tokens were estimated"
            if note not in state.notes:
                state.notes.append(note)
        state.cost += cost
        state.prompt_tokens += result.prompt_tokens
        state.completion_tokens += result.completion_tokens
        if self.ledger is not None:
            await self.ledger.add(
                Usage(
                    ts=self.clock.now(),
                    model=model,
                    prompt_tokens=result.prompt_tokens,
                    completion_tokens=result.completion_tokens,
                    cost_usd=cost,
                    incident_id=incident_id,
                    purpose=purpose,
                    estimated=not result.usage_reported,
                )
            )
        return result

    async def analyze(
        self,
        ctx: AnalysisContext,
        *,
        model: str | None = None,
        on_partial: PartialCallback | None = None,
        remaining_budget: Decimal | None = None,
        offline_result: Analysis | None = None,
    ) -> Analysis:
        model_name = model or self.config.model
        started = time.perf_counter()
        if offline_result is None:
            offline_result = await off_loop(self.offline.analyze_sync, ctx)
        baseline: Analysis = offline_result
        messages = await off_loop(analysis_messages, ctx, baseline, self.redactor, self.config.max_prompt_tokens)
        state = RunState()
        incident_id = ctx.incident.id
        raw: str | None = None
        try:
            result = await self._paid_call(
                messages,
                model_name,
                state,
                incident_id=incident_id,
                purpose="analysis",
                remaining_budget=remaining_budget,
                on_partial=on_partial,
            )
            text = result.text or result.reasoning
            raw = text
            try:
                verdict = validate_reply(text, LlmVerdict)
            except ValueError as problem:
                repair = repair_messages(text, str(problem), self.redactor, SCHEMA_TEXT)
                fixed = await self._paid_call(
                    repair,
                    model_name,
                    state,
                    incident_id=incident_id,
                    purpose="repair",
                    remaining_budget=remaining_budget,
                )
                try:
                    verdict = validate_reply(fixed.text or fixed.reasoning, LlmVerdict)
                except ValueError as again:
                    state.notes.append(
                        f"the model's reply was not valid JSON for the schema ({again}), even after "
                        "one repair try; showing the offline verdict"
                    )
                    return self._fallback(baseline, state, started, raw_text=self.redactor.redact_for_llm(text)[:4000])
        except LlmFailure as failure:
            state.notes.append(failure.reason)
            return self._fallback(baseline, state, started, raw_text=None)
        except BudgetExceeded as over:
            state.notes.append(str(over))
            raw_text = self.redactor.redact_for_llm(raw)[:4000] if raw else None
            return self._fallback(baseline, state, started, raw_text=raw_text)
        assert isinstance(verdict, LlmVerdict)
        return Analysis(
            incident_id=incident_id,
            category=baseline.category,
            root_cause=verdict.root_cause,
            severity=verdict.severity,
            recommended_action=verdict.recommended_action,
            estimated_recovery=verdict.estimated_recovery,
            confidence=verdict.confidence,
            evidence=verdict.evidence or baseline.evidence,
            source=model_name,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            cost_usd=state.cost,
            prompt_tokens=state.prompt_tokens,
            completion_tokens=state.completion_tokens,
            notes=state.notes,
            created_at=self.clock.now(),
        )

    def _fallback(self, baseline: Analysis, state: RunState, started: float, raw_text: str | None) -> Analysis:
        return baseline.model_copy(
            update={
                "notes": [*baseline.notes, *state.notes],
                "cost_usd": state.cost,
                "prompt_tokens": state.prompt_tokens,
                "completion_tokens": state.completion_tokens,
                "raw_text": raw_text,
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
                "created_at": self.clock.now(),
            }
        )
