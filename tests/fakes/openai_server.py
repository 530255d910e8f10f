"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

It behaves like real providers where it matters to a client: ``usage`` in replies, JSON mode, SSE
streaming in small chunks with usage in a final chunk (when ``stream_options.include_usage`` is sent),
a ``reasoning_content`` field (DeepSeek-reasoner style), 401/429(+Retry-After)/500 error bodies, slow
replies, replies that never end, and non-JSON content. Every request body is recorded byte for byte.

    server = FakeOpenAIServer()
    await server.start()                  # on the test's loop, or server.start_in_thread()
    server.script(Step(status=429, headers={"Retry-After": "2"}), Step(content='{"root_cause": ...}'))
    ... base_url=server.url ...
    server.requests[0].body               # exact bytes the client sent
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Step:
    """What the server does for one request."""

    status: int = 200
    content: str | None = None  # assistant message text (default: a valid analysis JSON)
    reasoning: str | None = None  # sent as reasoning_content before the content
    prompt_tokens: int | None = 420  # None = no usage object at all
    completion_tokens: int | None = 95
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # error body for status != 200 (default: OpenAI-style error object)
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never finish the reply (streams send one chunk first)
    chunk_chars: int = 12  # SSE chunk size
    chunk_delay: float = 0.0
    reject_stream_options: bool = False  # 400 when stream_options is present (some local servers)
    model: str | None = None  # model name echoed in replies (default: the requested one)


VALID_ANALYSIS = json.dumps(
    {
        "root_cause": "The exchange banned this IP after the shared request weight passed the limit.",
        "severity": "CRITICAL",
        "recommended_action": "Stop the bots on this IP until the ban lifts, then reduce polling.",
        "estimated_recovery": "When the ban lifts in about 10 minutes.",
        "confidence": 0.9,
        "evidence": ["HTTP 418 with code -1003", "ban until time in the message"],
    }
)

_ERRORS = {
    401: {
        "error": {
            "message": "Incorrect API key provided: sk-te****",
            "type": "invalid_request_error",
            "code": "invalid_api_key",
        }
    },
    429: {"error": {"message": "Rate limit reached for requests", "type": "rate_limit_error", "code": "rate_limit"}},
    500: {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}},
    503: {"error": {"message": "Service unavailable: overloaded", "type": "server_error"}},
}


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class FakeOpenAIServer:
    def __init__(self) -> None:
        self.steps: deque[Step] = deque()
        self.default = Step()
        self.requests: list[RecordedRequest] = []
        self.completed = 0
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._hanging: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app(), shutdown_timeout=0.1, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self._port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        for task in list(self._hanging):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self) -> None:
        """Serve from a separate thread and loop, so the test's loop only carries the client side."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake OpenAI server did not start")

    def stop_thread(self) -> None:
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(10)
            self._thread = None

    def _next(self) -> Step:
        return self.steps.popleft() if self.steps else self.default

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        step = self._next()
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        if step.delay:
            await asyncio.sleep(step.delay)
        if step.status != 200:
            error = step.body if step.body is not None else _ERRORS.get(step.status, {"error": {"message": "error"}})
            self.completed += 1
            return web.json_response(error, status=step.status, headers=step.headers)
        if step.reject_stream_options and "stream_options" in payload:
            return web.json_response(
                {"error": {"message": "Unrecognized request argument supplied: stream_options"}}, status=400
            )
        model = step.model or payload.get("model", "fake-model")
        content = VALID_ANALYSIS if step.content is None else step.content
        usage = None
        if step.prompt_tokens is not None and step.completion_tokens is not None:
            usage = {
                "prompt_tokens": step.prompt_tokens,
                "completion_tokens": step.completion_tokens,
                "total_tokens": step.prompt_tokens + step.completion_tokens,
            }
        if payload.get("stream"):
            return await self._stream(request, step, payload, model, content, usage)
        if step.hang:
            await self._hang()
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if step.reasoning is not None:
            message["reasoning_content"] = step.reasoning
        reply: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
        if usage is not None:
            reply["usage"] = usage
        self.completed += 1
        return web.json_response(reply, headers=step.headers)

    async def _hang(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._hanging.add(task)
        try:
            await asyncio.Event().wait()
        finally:
            self._hanging.discard(task)

    async def _stream(
        self, request: web.Request, step: Step, payload: dict[str, Any], model: str, content: str, usage: Any
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        def chunk(
            delta: dict[str, Any], finish: str | None = None, with_usage: Any = None, empty: bool = False
        ) -> bytes:
            data: dict[str, Any] = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [] if empty else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if with_usage is not None:
                data["usage"] = with_usage
            return f"data: {json.dumps(data)}\n\n".encode()

        await resp.write(chunk({"role": "assistant", "content": ""}))
        if step.reasoning:
            for i in range(0, len(step.reasoning), step.chunk_chars):
                await resp.write(
                    chunk({"reasoning_content": step.reasoning[i : i + step.chunk_chars], "content": None})
                )
        if step.hang:
            await resp.write(chunk({"content": content[:5]}))
            await self._hang()
        for i in range(0, len(content), step.chunk_chars):
            await resp.write(chunk({"content": content[i : i + step.chunk_chars]}))
            if step.chunk_delay:
                await asyncio.sleep(step.chunk_delay)
        await resp.write(chunk({}, finish="stop"))
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        if include_usage and usage is not None:
            await resp.write(chunk({}, with_usage=usage, empty=True))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        self.completed += 1
        return resp
