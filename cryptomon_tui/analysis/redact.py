"""Redaction: nothing secret or identifying leaves the machine in a prompt.

Two layers: the literal secret values from the config (API keys and secrets, passphrases, channel
URLs and tokens, SMTP passwords, the LLM key), and patterns for what the config cannot list
(signatures, bearer tokens, webhook URLs, account ids, e-mail and IP addresses). Exchange host names,
error codes, timestamps and latencies stay readable, because the analysis needs them.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, SecretStr

_MIN_SECRET_LEN = 4
# Config fields whose plain-string value is a secret (channel URLs carry their token in the path/query).
_SECRETISH_FIELD = re.compile(
    r"(^|_)(url|urls|webhook|token|secret|password|passwd|passphrase|api_key|apikey|key|auth|authorization|"
    r"bot_token|chat_id|routing_key|integration_key|dsn)$",
    re.IGNORECASE,
)
_SAFE_URL_FIELDS = {"base_url", "ws_url"}  # exchange endpoints: public, and useful evidence

_WEBHOOK_HOSTS = re.compile(
    r"https?://(?:[a-z0-9-]+\.)*(?:discord(?:app)?\.com/api/webhooks|hooks\.slack\.com|qyapi\.weixin\.qq\.com|"
    r"api\.telegram\.org/bot|oapi\.dingtalk\.com|open\.feishu\.cn/open-apis/bot|open\.larksuite\.com/open-apis/bot|"
    r"outlook\.office\.com/webhook|[a-z0-9-]+\.webhook\.office\.com|events\.pagerduty\.com|api\.pushover\.net|"
    r"ntfy\.sh)[^\s\"'<>)\]]*",
    re.IGNORECASE,
)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>)\]]+", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s:@\"']+:[^/\s@\"']+@", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"([?&;](?:[a-z0-9_.-]*(?:key|token|secret|signature|sig|password|passwd|auth|sign|hash|session|code|"
    r"access_token|apikey|api_key|credential)[a-z0-9_.-]*)=)([^&#\s\"'<>]+)",
    re.IGNORECASE,
)
_TELEGRAM_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")
_AUTH_SCHEME = re.compile(
    r"\b(bearer|basic|token|deri-hmac-sha256|hmac-sha256|apikey)(\s+)([^\s\"',;]{6,}(?:,\s*[a-z]+=[^\s\"',;]+)*)",
    re.IGNORECASE,
)
_HEADER_SECRET = re.compile(
    r"\b((?:x-mbx-apikey|x-bapi-api-key|x-bapi-sign|ok-access-key|ok-access-sign|ok-access-passphrase|"
    r"authorization|x-api-key|api-key|apikey|x-auth-token|signature|sign|passphrase|api_secret|api_key|secret|"
    r"password|token|client_secret|client_id|access_token|refresh_token)\"?\s*[:=]\s*\"?)([^\s\"',;&}]{4,})",
    re.IGNORECASE,
)
_ACCOUNT_KEY = (
    r"(?:uid|user[\s_-]?id|account[\s_-]?id|sub[\s_-]?account(?:[\s_-]?id)?|sub[\s_-]?uid|member[\s_-]?id|"
    r"main[\s_-]?uid|acct[\s_-]?id|account|user)"
)
_ACCOUNT = re.compile(r"\b(" + _ACCOUNT_KEY + r"\"?\s*[:=#]\s*\"?)([A-Za-z0-9_.@-]{3,})", re.IGNORECASE)
_ACCOUNT_SPACED = re.compile(
    r"\b(" + _ACCOUNT_KEY + r"\s+(?:no\.?\s+|number\s+)?#?)(\d[A-Za-z0-9_-]{3,})", re.IGNORECASE
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
_HEX_SIG = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_B64_SIG = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{22,}={1,2}(?![A-Za-z0-9+/=])")
_B64_HMAC = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/]{43}=(?![A-Za-z0-9+/=])")
_OPAQUE = re.compile(
    r"(?<![A-Za-z0-9_+-])(?=[A-Za-z0-9_+-]*\d)(?=[A-Za-z0-9_+-]*[A-Za-z])[A-Za-z0-9_+-]{32,}(?![A-Za-z0-9_+-])"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_PROVIDER_KEY = re.compile(r"\b(?:sk|pk|rk|xox[abprs])-[A-Za-z0-9_-]{8,}")
_IPV4 = re.compile(r"(?<![0-9.])(?:\d{1,3}\.){3}\d{1,3}(?![0-9]|\.\d)")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?:%[0-9A-Za-z]+)?(?![0-9A-Za-z:])")


def _mark(kind: str) -> str:
    return f"[REDACTED:{kind}]"


def _ipv4(match: re.Match[str]) -> str:
    text = match.group(0)
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return text
    return _mark("ip")


def _ipv6(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.count(":") < 2:
        return text
    try:
        ipaddress.IPv6Address(text.split("%")[0])
    except ValueError:
        return text
    return _mark("ip")


def _url(match: re.Match[str]) -> str:
    """Keep the host and path of ordinary URLs; drop credentials in userinfo and secret-looking params."""
    text = match.group(0)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + _mark("credentials") + "@", text)
    return _SECRET_PARAM.sub(lambda m: m.group(1) + _mark("secret"), text)


class Redactor:
    """Replaces secrets and identifying data with ``[REDACTED:<kind>]`` markers."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        secrets = list(secrets)
        variants: set[str] = set()
        for secret in secrets:
            if not isinstance(secret, str):
                continue
            value = secret.strip()
            if len(value) < _MIN_SECRET_LEN:
                continue
            variants.add(value)
            variants.add(json.dumps(value)[1:-1])  # as it appears inside JSON text
            variants.add(urllib.parse.quote(value, safe=""))
            variants.add(urllib.parse.quote_plus(value))
        ordered = sorted((v for v in variants if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None
        self.secrets: tuple[str, ...] = tuple(
            dict.fromkeys(s.strip() for s in secrets if isinstance(s, str) and len(s.strip()) >= _MIN_SECRET_LEN)
        )

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secrets)"

    def with_secrets(self, extra: Iterable[str]) -> Redactor:
        return Redactor([*self.secrets, *extra])

    @classmethod
    def from_config(cls, config: Any) -> Redactor:
        """Every SecretStr anywhere in the config, plus secret-looking string fields (channel URLs, tokens)."""
        return cls(collect_secrets(config))

    def redact(self, text: str) -> str:
        if not text:
            return text
        out = text
        if self._literal is not None:
            out = self._literal.sub(_mark("secret"), out)
        out = _WEBHOOK_HOSTS.sub(_mark("webhook_url"), out)
        out = _TELEGRAM_TOKEN.sub(_mark("token"), out)
        out = _URL.sub(_url, out)
        out = _JWT.sub(_mark("token"), out)
        out = _PROVIDER_KEY.sub(_mark("token"), out)
        out = _AUTH_SCHEME.sub(lambda m: m.group(1) + m.group(2) + _mark("token"), out)
        out = _HEADER_SECRET.sub(lambda m: m.group(1) + _mark("secret"), out)
        out = _EMAIL.sub(_mark("email"), out)
        out = _ACCOUNT.sub(lambda m: m.group(1) + _mark("account"), out)
        out = _ACCOUNT_SPACED.sub(lambda m: m.group(1) + _mark("account"), out)
        out = _HEX_SIG.sub(_mark("signature"), out)
        out = _B64_HMAC.sub(_mark("signature"), out)
        out = _B64_SIG.sub(_mark("signature"), out)
        out = _OPAQUE.sub(_mark("token"), out)
        out = _IPV4.sub(_ipv4, out)
        out = _IPV6.sub(_ipv6, out)
        return out

    def redact_obj(self, value: Any) -> Any:
        """Redact every string (and key) inside JSON-like data, so the serialised form stays valid JSON."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact(str(k)): self.redact_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_obj(v) for v in value]
        return value


def collect_secrets(config: Any) -> list[str]:
    found: list[str] = []

    def walk(node: Any, field_name: str, path: tuple[str, ...]) -> None:
        if isinstance(node, SecretStr):
            found.append(node.get_secret_value())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name, None), name, (*path, name))
        elif isinstance(node, dict):
            for key, value in node.items():
                sub = field_name if isinstance(value, dict | list | tuple) else str(key)
                if field_name == "headers":  # request headers on generic targets often carry tokens
                    if isinstance(value, str):
                        found.append(value.split(" ", 1)[-1])
                        found.append(value)
                    continue
                walk(value, sub, (*path, str(key)))
        elif isinstance(node, list | tuple):
            for item in node:
                walk(item, field_name, path)
        elif isinstance(node, str):
            in_notify = "notify" in path
            if field_name in _SAFE_URL_FIELDS and not in_notify:
                return
            if _SECRETISH_FIELD.search(field_name) or (in_notify and "://" in node):
                found.append(node)

    walk(config, "", ())
    # pricing aliases and model names are not secrets; drop obviously harmless short values
    return [s for s in found if isinstance(s, str) and len(s.strip()) >= _MIN_SECRET_LEN]
