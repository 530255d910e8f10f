"""Parsing helpers every adapter shares: exchange responses are untrusted input.

Nothing here raises on bad input. Each helper returns ``None`` (or a described failure)
when a value is missing or has the wrong type, so classifiers can stay linear.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Final, NoReturn, TypedDict, Unpack

from cryptomon_tui.exchanges.base import Classification, RawResponse
from cryptomon_tui.kernel.jsonvalue import JsonArray, JsonObject, JsonValue, as_object, finite, integer, text
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.units import exchange_wait, format_duration, plausible_epoch
from cryptomon_tui.redaction import scrub

# Larger bodies are not parsed even if the transport did not cut them: a health probe
# never needs megabytes, and json.loads on 50 MB costs the engine loop real time.
MAX_JSON_BYTES = 8_000_000
MESSAGE_CAP = 300  # exchange messages are untrusted text: kept verbatim, but bounded

# Epoch-ms values outside 2000..2100 are not a clock reading (e.g. seconds sent as ms).
_EPOCH_MS_MIN = 946_684_800_000.0
_EPOCH_MS_MAX = 4_102_444_800_000.0

_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


class _Missing:
    """Marks an absent key, distinct from a JSON null."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()

# What ``dig`` finds: a JSON value, or MISSING when the path does not exist.
Found = JsonValue | _Missing


class Common(TypedDict, total=False):
    """The readings every classification of one response shares (rate-limit use, server time, wait),
    passed on with ``**common`` to each ``Classification`` an adapter builds."""

    rate_limit_used: float | None
    server_time_ms: float | None
    retry_after_s: float | None


def amend(common: Common, **changes: Unpack[Common]) -> Common:
    """``common`` with some readings replaced (e.g. a server time found deeper in the body)."""
    return {**common, **changes}


@dataclass(frozen=True, slots=True)
class Decoded:
    """A body read as JSON. ``error`` says why it could not be (then ``value`` is None)."""

    value: JsonValue
    error: str | None = None
    html_title: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-standard JSON constant {name}")


def decode_json(body: bytes, truncated: bool = False) -> Decoded:
    """Decode a response body; truncated, oversized, empty, HTML and invalid bodies are described."""
    if truncated:
        return Decoded(None, f"body truncated at the size cap ({len(body)} bytes kept)")
    if len(body) > MAX_JSON_BYTES:
        return Decoded(None, f"body too large to parse ({len(body)} bytes)")
    head = body[:512].lstrip()
    if not head:
        return Decoded(None, "empty body")
    if head[:1] == b"<":
        title = html_title(body)
        what = f"HTML page instead of JSON ({title!r})" if title else "HTML/XML instead of JSON"
        return Decoded(None, what, html_title=title)
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        return Decoded(None, "invalid JSON: nested too deeply")
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return Decoded(None, cap_text(f"invalid JSON: {exc}"))
    return Decoded(value)


def html_title(body: bytes) -> str | None:
    """The <title> of an HTML error page (proxies and CDNs answer with these), if any."""
    match = _TITLE_RE.search(body[:65536])
    if match is None:
        return None
    title = " ".join(match.group(1).decode("utf-8", "replace").split())
    return cap_text(title) or None


def body_snippet(body: bytes, limit: int = 120) -> str:
    """A short printable excerpt of a body for messages (scrubbed before it is cut, so a secret that
    straddles the cut cannot leave half of itself)."""
    text = scrub(body[: limit + _SCRUB_MARGIN].decode("utf-8", "replace"))
    return " ".join(text.split())[:limit]


_SCRUB_MARGIN = 512  # bytes read past a cut so that a secret crossing it is still masked whole


def cap_text(value: object, limit: int = MESSAGE_CAP) -> str:
    """Exchange text bounded, scrubbed of secrets and terminal controls before the cut (a secret crossing
    the cut must not leave its prefix); non-strings are rendered as compact JSON."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), default=str)[: limit + _SCRUB_MARGIN]
        except (ValueError, TypeError, RecursionError):
            text = type(value).__name__
    text = scrub(text[: limit + _SCRUB_MARGIN] if len(text) > limit + _SCRUB_MARGIN else text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup (HTTP/2 sends lower-case names, HTTP/1 often not)."""
    wanted = name.lower()
    try:
        value = headers.get(wanted)
        if value is None:
            for key, candidate in headers.items():
                if isinstance(key, str) and key.lower() == wanted:
                    value = candidate
                    break
    except (AttributeError, TypeError):
        return None
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return str(value).strip()


def response_date(headers: Mapping[str, str]) -> float | None:
    """The server's ``Date`` header as epoch seconds (1 s resolution)."""
    return http_date(header(headers, "date"))


def http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return None
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds: either delta-seconds, or an HTTP-date measured against ``Date``.

    An HTTP-date without a ``Date`` header cannot be turned into a wait without our own
    clock, so it yields None here (the adapter stays pure).
    """
    value = header(headers, "retry-after")
    if not value:
        return None
    seconds = to_float(value)
    if seconds is not None:
        return max(0.0, seconds)
    when = http_date(value)
    now = response_date(headers)
    if when is None or now is None:
        return None
    return max(0.0, when - now)


# The kernel's reader, under the name the adapters use (one implementation of "a number from JSON").
to_float = finite

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def to_int(value: object) -> int | None:
    """An exchange integer (JSON integer, integral float or decimal string) within int64: every venue's codes,
    ids, sequence numbers and epoch times fit, and a 400-digit one would overflow the float arithmetic on
    it (Bybit's timeNano, Deribit's usIn/usOut) or become a 400-character error code."""
    return integer(value, _INT64_MIN, _INT64_MAX)


def to_positive_price(value: object) -> float | None:
    number = to_float(value)
    return number if number is not None and number >= 0 else None


def epoch_ms(value: object) -> float | None:
    """A plausible epoch-milliseconds reading, or None."""
    number = to_float(value)
    if number is None or not (_EPOCH_MS_MIN <= number < _EPOCH_MS_MAX):
        return None
    return number


def epoch_seconds(value: object) -> float | None:
    """A plausible epoch-milliseconds reading in epoch seconds, or None."""
    ms = epoch_ms(value)
    return None if ms is None else ms / 1000.0


def dig(obj: JsonValue, *path: str | int) -> Found:
    """Walk objects/arrays without raising; MISSING when any step is absent or of the wrong type."""
    current = obj
    for step in path:
        if isinstance(step, str):
            if not isinstance(current, dict) or step not in current:
                return MISSING
            current = current[step]
        else:
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return MISSING
            current = current[step]
    return current


def first_dict(value: JsonValue) -> JsonObject | None:
    """The first element of an array when it is an object (OKX/Bybit wrap results in arrays)."""
    if isinstance(value, list) and value:
        return as_object(value[0])
    return None


def encode_query(params: Mapping[str, str]) -> str:
    """The query string exactly as the transport sends it (signatures cover these bytes)."""
    return urllib.parse.urlencode(list(params.items()), quote_via=urllib.parse.quote)


def check_levels(levels: JsonValue, *, min_width: int = 2) -> str | None:
    """Validate book levels ``[[price, size, ...], ...]``; returns what is wrong, or None."""
    if not isinstance(levels, list):
        return f"expected a list of levels, got {type(levels).__name__}"
    for index, level in enumerate(levels[:1000]):
        if not isinstance(level, list) or len(level) < min_width:
            return f"level {index} is not a [price, size] pair"
        if to_positive_price(level[0]) is None or to_positive_price(level[1]) is None:
            return f"level {index} has a non-numeric price or size"
    return None


def bad_payload(reason: str, **common: Unpack[Common]) -> Classification:
    return Classification(
        outcome=Outcome.BAD_PAYLOAD, error_code="bad_payload", error_message=cap_text(reason), **common
    )


def maintenance_status(
    events: JsonArray,
    common: Common,
    upcoming_states: Collection[str],
    summarize: Callable[[JsonObject], JsonObject],
) -> Classification:
    """A venue's list of maintenance events (Bybit and OKX share the shape): ``state: ongoing`` is
    maintenance now; ``upcoming_states`` (scheduled, pre_open) are reported in ``extra``, not alarmed.

    Events for the demo environment only (``env`` 2) do not make production unavailable. ``summarize``
    picks what is kept of one event; it must give ``title`` (text) and ``end`` (epoch seconds or None).
    """
    ongoing: JsonArray = []
    upcoming: JsonArray = []
    titles: list[str] = []
    ends: list[float] = []
    for item in events:
        event = as_object(item)
        state = text(event.get("state")) if event is not None else None
        if event is None or state is None:
            return bad_payload("a status entry has no state", **common)
        state = state.lower()
        if state != "ongoing" and state not in upcoming_states:
            continue
        if to_int(event.get("env")) == 2:
            continue
        summary = summarize(event)
        if state != "ongoing":
            upcoming.append(summary)
            continue
        ongoing.append(summary)
        titles.append(text(summary.get("title")) or "")
        end = finite(summary.get("end"))
        if end is not None:
            ends.append(end)
    extra: JsonObject = {"scheduled": upcoming} if upcoming else {}
    if ongoing:
        return Classification(
            outcome=Outcome.MAINTENANCE,
            error_code="maintenance_ongoing",
            error_message="; ".join(titles)[:300] or "maintenance ongoing",
            maintenance_until=max(ends) if ends else None,
            extra={**extra, "ongoing": ongoing},
            **common,
        )
    return Classification(outcome=Outcome.OK, extra=extra, **common)


VENUE_OVERLOAD = "venue_overload"  # Classification.extra flag: the venue is busy, back off anyway


def venue_overload(code: str, message: JsonValue, common: Common) -> Classification:
    """The exchange says it is overloaded (Binance -1008, OKX 50013): its problem, not our limit.

    Server-side (5xx class), so no "rate limited" incident blames our own request rate; the
    ``venue_overload`` flag makes the scheduler back off all the same, with a reason that says so.
    """
    text = cap_text(message) or "server busy"
    return Classification(outcome=Outcome.HTTP_5XX, error_code=code,
                          error_message=cap_text(f"venue overloaded: {text}"),
                          extra={VENUE_OVERLOAD: True}, **common)


def http_failure(response: RawResponse, decoded: Decoded, **common: Unpack[Common]) -> Classification | None:
    """Classify by HTTP status alone, for non-2xx responses without a readable exchange error.

    403 is read as a block (WAF/CDN/IP ban): exchanges answer 403 to IPs they refuse, and
    backing off is the safe reaction whatever the body says.
    """
    status = response.status
    if 200 <= status < 300:
        return None
    detail = decoded.html_title or (body_snippet(response.body) if decoded.ok else decoded.error) or ""
    message = cap_text(f"HTTP {status}" + (f": {detail}" if detail else ""))
    code = f"http_{status}"
    extra: JsonObject = {"html": True} if decoded.html_title is not None or _is_html(response.body) else {}
    if status == 429:
        outcome = Outcome.RATE_LIMITED
    elif status in (418, 403):
        outcome = Outcome.IP_BANNED
    elif status == 401:
        outcome = Outcome.AUTH
    elif 500 <= status < 600:
        outcome = Outcome.HTTP_5XX
    elif 400 <= status < 500:
        outcome = Outcome.HTTP_4XX
    else:
        outcome = Outcome.EXCHANGE_ERROR
        message = cap_text(f"unexpected HTTP {status}" + (f": {detail}" if detail else ""))
    return Classification(outcome=outcome, error_code=code, error_message=message, extra=extra, **common)


def _is_html(body: bytes) -> bool:
    return body[:512].lstrip()[:1] == b"<"


def ban_until_from_headers(headers: Mapping[str, str], retry_after_s: float | None) -> float | None:
    """Absolute ban expiry from ``Date`` + ``Retry-After`` when the exchange states no expiry."""
    if retry_after_s is None:
        return None
    now = response_date(headers)
    return None if now is None else now + retry_after_s


def never_raise(
    classify: Callable[[str, RawResponse], Classification],
    probe: str,
    response: RawResponse,
) -> Classification:
    """Last-resort guard: a classifier bug must become a data point, not a dead worker.

    Tests assert this guard never fires (error_code ``classifier_error``) on hostile input.
    """
    try:
        return classify(probe, response)
    except Exception as exc:  # deliberately total
        return Classification(
            outcome=Outcome.BAD_PAYLOAD,
            error_code="classifier_error",
            error_message=cap_text(f"unreadable response ({type(exc).__name__})"),
        )


def bound_times(c: Classification) -> Classification:
    """Every time value an exchange sent, made finite and bounded before anything stores or shows it.

    The one place all adapters' readings pass through (the scheduler calls it), so a new adapter cannot
    forget it: Retry-After capped at 24 h (the message says what the exchange asked for), ban and maintenance
    expiries and server times outside 2000..3000 dropped (an unreadable expiry falls back to our own backoff),
    a rate-limit share that is not a finite number dropped.
    """
    notes: list[str] = []
    retry_after_s, ban_until, maintenance_until = c.retry_after_s, c.ban_until, c.maintenance_until
    server_time_ms, rate_limit_used = c.server_time_ms, c.rate_limit_used
    if c.retry_after_s is not None:
        retry_after_s, capped = exchange_wait(c.retry_after_s)
        if capped:
            notes.append(f"asked to wait {_asked(c.retry_after_s)}; capped at {format_duration(retry_after_s or 0.0)}")
    if ban_until is not None and plausible_epoch(ban_until) is None:
        ban_until = None
        notes.append(f"ban until {c.ban_until!r:.40} is not a usable time")
    if maintenance_until is not None and plausible_epoch(maintenance_until) is None:
        maintenance_until = None
        notes.append(f"maintenance until {c.maintenance_until!r:.40} is not a usable time")
    if server_time_ms is not None and plausible_epoch(server_time_ms / 1000.0) is None:
        server_time_ms = None
    if rate_limit_used is not None and not (math.isfinite(rate_limit_used) and 0 <= rate_limit_used <= 1000):
        rate_limit_used = None
    unchanged = (
        _same(retry_after_s, c.retry_after_s) and ban_until is c.ban_until and maintenance_until is c.maintenance_until
        and server_time_ms is c.server_time_ms and rate_limit_used is c.rate_limit_used
    )
    if unchanged and not notes:
        return c
    error_message, extra = c.error_message, c.extra
    if notes:
        error_message = cap_text("; ".join([*([c.error_message] if c.error_message else []), *notes]))
        extra = {**c.extra, "bounded": [*notes]}
    return replace(c, retry_after_s=retry_after_s, ban_until=ban_until, maintenance_until=maintenance_until,
                   server_time_ms=server_time_ms, rate_limit_used=rate_limit_used, error_message=error_message,
                   extra=extra)


def _same(a: float | None, b: float | None) -> bool:
    """``a`` is ``b`` as far as ``bound_times`` changed it (a NaN wait always counts as changed)."""
    return a is b or (a is not None and b is not None and a == b)


def bounded_notes(c: Classification) -> list[str]:
    """What ``bound_times`` dropped or capped in ``c``, one sentence each (logged once by the scheduler)."""
    notes = c.extra.get("bounded")
    return [note for note in notes if isinstance(note, str)] if isinstance(notes, list) else []


def _asked(seconds: float) -> str:
    if not math.isfinite(seconds):
        return f"{seconds}s"
    if seconds > 365 * 86400:
        return f"{seconds / (365.25 * 86400):.3g} years"
    return format_duration(seconds)
