"""What every channel shares: the verdict of a send, secret scrubbing, and HTTP plumbing.

A channel never says "sent" on its own: each one parses its service's success signal, and every
other reply is classified as retryable (maybe with a wait), a message the service will never accept,
or a channel that is broken until a human fixes the config.
"""

from __future__ import annotations

import email.utils
import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import httpx

from cryptomon_tui.clock import Clock
from cryptomon_tui.config.notify import ChannelBase
from cryptomon_tui.kernel.jsonvalue import JsonValue, finite
from cryptomon_tui.notify.model import Notice
from cryptomon_tui.redaction import Redactor, scrub, scrub_obj

log = logging.getLogger("cryptomon.notify")
ANSWER_LIMIT = 500
MAX_WAIT_S = 86_400.0  # a service asking for a longer pause is broken or hostile: we wait a day at most
MIN_LOGGED_SECRET_LEN = 4  # library log lines are scrubbed of every channel's secrets at least this long


class _SecretScrubber(logging.Filter):
    """httpx logs every request URL at INFO, and webhook URLs and bot tokens are secrets: scrub them."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self._redactor = Redactor(min_len=MIN_LOGGED_SECRET_LEN)

    def add(self, secrets: list[str]) -> None:
        self.secrets.update(s for s in secrets if len(s) >= MIN_LOGGED_SECRET_LEN)
        self._redactor.set_secrets(self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:
            return True
        scrubbed = self._redactor.redact_secrets(text)
        if scrubbed != text:
            record.msg, record.args = scrubbed, None
        return True


SECRET_SCRUBBER = _SecretScrubber()
for _name in ("httpx", "httpcore", "aiosmtplib", "apprise"):
    logging.getLogger(_name).addFilter(SECRET_SCRUBBER)


def scrub_notice(notice: Notice) -> Notice:
    """The notice with every string in it scrubbed of secrets and terminal controls."""
    return Notice.from_dict(scrub_obj(notice.to_dict()))


class Verdict(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"  # transient: try again later (after retry_after when the service says so)
    REJECTED = "rejected"  # this message will never be accepted: dead letter, channel stays up
    BROKEN = "broken"  # the channel itself is misconfigured (bad key, deleted webhook): stop sending


@dataclass(frozen=True, slots=True)
class SendResult:
    verdict: Verdict
    answer: str  # the service's own words (secrets scrubbed), for logs, `notify test` and status
    retry_after: float | None = None
    status: int | None = None
    rate_limited: bool = False  # the service throttled us: pause the channel, do not count an attempt
    pause_for: float | None = None  # the service says its bucket is empty: wait this long before the next send

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.SUCCESS


class Channel(ABC):
    """One configured destination. Subclasses implement ``_send`` and nothing else is required."""

    type: ClassVar[str]
    # (count, per seconds, burst): the service's documented limit, used unless the config overrides it
    default_rate: ClassVar[tuple[float, float, int]] = (1.0, 1.0, 3)
    supports_digest: ClassVar[bool] = True

    def __init__(self, name: str, config: ChannelBase, clock: Clock, location: str = "local") -> None:
        self.name = name
        self.config = config
        self.clock = clock
        self.location = location
        self._secrets = sorted(config.secret_values, key=len, reverse=True)
        SECRET_SCRUBBER.add(self._secrets)
        self._redactor = Redactor(self._secrets, min_len=1)  # a channel knows exactly its secrets: mask even short ones

    def redact(self, text: str) -> str:
        """Remove every secret of this channel (and its JSON/URL-encoded forms) from text meant for humans."""
        return self._redactor.redact_secrets(text)

    async def start(self) -> None:  # noqa: B027
        """Open connections; called once by the notifier."""

    async def close(self) -> None:  # noqa: B027
        """Release connections."""

    async def send(self, notice: Notice, idempotency_key: str) -> SendResult:
        try:
            # every channel renders from the scrubbed notice: no secret, no terminal control in any body
            result = await self._send(scrub_notice(notice), idempotency_key)
        except Exception as exc:  # a channel bug or an unexpected library error must not kill the dispatcher
            log.exception("notify channel %s raised while sending", self.name)
            result = SendResult(Verdict.RETRY, f"internal error: {type(exc).__name__}: {exc}")
        # a receiver's answer may echo its own URL token: masked before it reaches status, logs or incidents
        answer = scrub(self.redact(result.answer))[:ANSWER_LIMIT]
        return SendResult(
            result.verdict, answer, result.retry_after, result.status, result.rate_limited, result.pause_for
        )

    @abstractmethod
    async def _send(self, notice: Notice, idempotency_key: str) -> SendResult: ...

    async def on_delivered(self, notice: Notice) -> None:  # noqa: B027
        """Hook after a confirmed delivery (Alertmanager keeps its firing set here)."""


def bounded_wait(value: object) -> float | None:
    """Seconds a service asks us to wait, from a JSON number or a header's text, clamped to
    [0, MAX_WAIT_S]; None when it is no finite number ("inf", NaN and 1e999 are no waits)."""
    seconds = finite(value)
    return None if seconds is None else min(max(seconds, 0.0), MAX_WAIT_S)


def json_wait(value: JsonValue) -> float | None:
    """A wait a service's JSON body gives as a number (a numeric string is not honoured)."""
    return None if isinstance(value, str) else bounded_wait(value)


def retry_after_header(response: httpx.Response, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date), at most MAX_WAIT_S."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = bounded_wait(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if now is None:
        return None
    return bounded_wait(when.timestamp() - now)


def classify_status(status: int) -> Verdict:
    """Generic HTTP status classes; channels refine them with their service's body."""
    if 200 <= status < 300:
        return Verdict.SUCCESS
    if status in (408, 425, 429) or status >= 500:
        return Verdict.RETRY
    if status in (401, 403, 404, 410):
        return Verdict.BROKEN
    return Verdict.REJECTED


def body_text(response: httpx.Response, limit: int = ANSWER_LIMIT) -> str:
    try:
        text = response.text
    except Exception:  # undecodable body
        text = repr(response.content[:limit])
    return text.strip()[:limit]


def json_body(response: httpx.Response) -> JsonValue:
    """The reply's JSON, untrusted (callers narrow it); None when it is not JSON."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


class HttpChannel(Channel):
    """A channel that talks JSON over HTTP through one pooled client with timeouts."""

    def __init__(self, name: str, config: ChannelBase, clock: Clock, location: str = "local") -> None:
        super().__init__(name, config, clock, location)
        self._client: httpx.AsyncClient | None = None

    def _make_client(self) -> httpx.AsyncClient:
        t = float(self.config.timeout)
        return httpx.AsyncClient(
            timeout=httpx.Timeout(t, connect=min(t, 5.0)),
            limits=httpx.Limits(max_connections=4, max_keepalive_connections=2),
            headers={"User-Agent": "cryptomon-notify/0.1"},
            follow_redirects=False,
            trust_env=False,
        )

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    async def start(self) -> None:
        _ = self.client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post_json(
        self, url: str, payload: JsonValue, headers: dict[str, str] | None = None, content: bytes | None = None
    ) -> httpx.Response | SendResult:
        """POST; transport failures come back as a retryable SendResult (never with the URL in it)."""
        body = content if content is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        hdrs = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            return await self.client.post(url, content=body, headers=hdrs)
        except httpx.TimeoutException as exc:
            return SendResult(Verdict.RETRY, f"timeout ({type(exc).__name__}) after {self.config.timeout:g}s")
        except httpx.TransportError as exc:
            return SendResult(Verdict.RETRY, f"connection failed: {type(exc).__name__}")
        except httpx.InvalidURL:
            return SendResult(Verdict.BROKEN, "invalid URL in the channel config")
