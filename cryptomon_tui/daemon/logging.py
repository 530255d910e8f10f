"""Structured daemon logs (text or one JSON object per line) with secrets redacted from every record.

The redacting filter sits on the handler, so it covers records from every library (aiohttp,
openai, ...), formatted messages, arguments, tracebacks and stack traces alike.
"""

from __future__ import annotations

import json as _json
import logging
import sys
from collections.abc import Iterable
from typing import IO

from cryptomon_tui.kernel.units import iso_utc
from cryptomon_tui.redaction import Redactor, process_redactor, safe_text

_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)
_HANDLER_MARK = "_cryptomon_handler"


class RedactingFilter(logging.Filter):
    """Replace configured secrets and credential-looking URL parts in every record."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redactor = Redactor(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        self.redactor.set_secrets(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        def scrub(text: str) -> str:  # terminal controls first, then this filter's and the process's secrets
            return process_redactor().redact_secrets(self.redactor.redact_for_log(safe_text(text)))

        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, scrub(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, exc, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {  # extras may be any object: dumped with default=str
            "ts": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                out[key] = value
        return _json.dumps(out, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(
    json: bool, level: str, secrets: list[str], stream: IO[str] | None = None
) -> RedactingFilter:
    """Install (or replace) cryptomon's root handler. Returns the filter so a reload can update secrets."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    redacting = RedactingFilter(secrets)
    handler.addFilter(redacting)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # aiohttp's access log would print every scrape; keep it at warning.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return redacting
