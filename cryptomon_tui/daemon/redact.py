"""Keep secrets out of everything the daemon writes: logs, control API frames, HTTP responses.

Two layers: the exact secret strings found in the config (API keys, tokens, webhook URLs), and
patterns that look like credentials in URLs and headers even when we were never told about them
(``?signature=...``, ``https://user:pass@host``, Slack/Discord/Telegram webhook paths, Bearer tokens).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

MASK = "***"
MIN_SECRET_LEN = 6  # shorter strings would mask ordinary words

# Field names whose plain-string values are secrets even when not typed SecretStr.
_SECRET_FIELD = re.compile(
    r"(token|secret|password|passphrase|api[_-]?key|webhook|routing[_-]?key|dsn|authorization)", re.I
)

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # query/form parameters that carry credentials
    (
        re.compile(
            r"(?i)\b((?:api[_-]?key|apikey|access[_-]?token|token|secret|signature|sign|passphrase|password|"
            r"passwd|key|auth|sig)=)[^&\s\"'#]+"
        ),
        r"\1" + MASK,
    ),
    # user:password@ in URLs
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@\"']+:[^/\s@\"']+@"), r"\1" + MASK + "@"),
    # webhook URLs whose path is the credential
    (re.compile(r"(?i)(hooks\.slack\.com/services/)[A-Za-z0-9/_-]+"), r"\1" + MASK),
    (re.compile(r"(?i)(discord(?:app)?\.com/api/webhooks/\d+/)[A-Za-z0-9._-]+"), r"\1" + MASK),
    (re.compile(r"(?i)(api\.telegram\.org/bot)\d+:[A-Za-z0-9_-]+"), r"\1" + MASK),
    (re.compile(r"(?i)(qyapi\.weixin\.qq\.com/cgi-bin/webhook/send\?key=)[A-Za-z0-9-]+"), r"\1" + MASK),
    # HTTP auth headers and exchange key headers
    (
        re.compile(r"(?i)\b(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)\s+)[A-Za-z0-9._~+/=-]+"),
        r"\1" + MASK,
    ),
    (
        re.compile(
            r"(?i)\b((?:x-mbx-apikey|x-bapi-api-key|x-bapi-sign|ok-access-key|ok-access-sign|ok-access-passphrase)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
        ),
        r"\1" + MASK,
    ),
)


def collect_secrets(config: BaseModel | None, extra: Iterable[str] = ()) -> list[str]:
    """Every secret string in the config: SecretStr values and plain strings in secret-named fields."""
    found: set[str] = {s for s in extra if s and len(s) >= MIN_SECRET_LEN}

    def walk(value: Any, field_name: str) -> None:
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if len(secret) >= MIN_SECRET_LEN:
                found.add(secret)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name, None), name)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k) if not isinstance(v, BaseModel) else field_name)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                walk(v, field_name)
        elif isinstance(value, str) and _SECRET_FIELD.search(field_name) and len(value) >= MIN_SECRET_LEN:
            found.add(value)

    if config is not None:
        walk(config, "")
    for secret in list(found):
        found.update(_parts(secret))
    return sorted(found, key=len, reverse=True)


_AUTH_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token|bot)\s+(\S+)$")
MIN_SECRET_PART_LEN = 12  # a fragment shorter than this is too likely an ordinary word or path


def _parts(secret: str) -> list[str]:
    """Fragments of a secret that travel on their own: a webhook URL's path (the credential) shows up
    without the host in a server's error answer; a header's token without its ``Bearer`` scheme."""
    out: list[str] = []
    if match := _AUTH_SCHEME.match(secret.strip()):
        out.append(match.group(1))
    if "://" in secret:
        parsed = urlsplit(secret)
        tail = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        if len(tail) >= MIN_SECRET_PART_LEN:
            out.append(tail)
        out += [seg for seg in re.split(r"[/?&=]", tail) if len(seg) >= MIN_SECRET_PART_LEN]
    return [p for p in out if len(p) >= MIN_SECRET_PART_LEN and p != secret]


class Redactor:
    """Replace known secrets and credential-looking patterns with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.set_secrets(secrets)

    def set_secrets(self, secrets: Iterable[str]) -> None:
        unique = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True)
        self._secrets = tuple(unique)
        self._secret_re = re.compile("|".join(re.escape(s) for s in unique)) if unique else None

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def contains_secret(self, text: str) -> bool:
        return self._secret_re is not None and self._secret_re.search(text) is not None

    def scrub_known(self, text: str) -> str:
        """Only the exact configured secrets (cheap; used on every outgoing frame)."""
        if self._secret_re is None:
            return text
        return self._secret_re.sub(MASK, text)

    def scrub(self, text: str) -> str:
        """Known secrets and credential patterns (used on log records)."""
        text = self.scrub_known(text)
        for pattern, repl in _PATTERNS:
            text = pattern.sub(repl, text)
        return text
