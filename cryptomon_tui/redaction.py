"""Redaction: secrets never leave the process, whichever face the text goes out of.

One collector finds the secrets in the config; one ``Redactor`` holds them (with the forms they take inside
JSON and URLs) and masks them in three modes, because the faces genuinely differ:

- ``redact_secrets``: only the exact configured secrets, as ``***``. For the control API, the HTTP server,
  JSONL files and notify answers: cheap enough for every frame, and IPs, e-mails and hosts stay readable.
- ``redact_for_log``: the secrets plus credential patterns nobody told us about (``?signature=``,
  ``user:pass@``, Slack/Discord/Telegram/WeCom webhook paths, auth and exchange key headers), as ``***``.
- ``redact_for_llm``: the secrets plus everything credential-like or identifying (signatures, bearer tokens,
  webhook URLs, account ids, e-mail and IP addresses) as ``[REDACTED:<kind>]``, for prompts that leave the
  machine. Exchange hosts, error codes, timestamps and latencies stay readable: the analysis needs them.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import threading
from collections.abc import Iterable
from typing import overload
from urllib.parse import quote, quote_plus, urlsplit

from pydantic import BaseModel, SecretStr

from cryptomon_tui.kernel.jsonvalue import JsonObject, JsonValue

MASK = "***"
MIN_SECRET_LEN = 6  # shorter strings masked on every frame and log line would hit ordinary words and numbers
MIN_LLM_SECRET_LEN = 4  # prompts leave the machine: mask shorter secrets too

# Field names whose plain-string values are credentials even when not typed SecretStr.
_SECRET_FIELD = re.compile(
    r"(token|secret|password|passphrase|api[_-]?key|webhook|routing[_-]?key|dsn|authorization)|(^|_)(passwd|key|auth)$",
    re.I,
)
# Field names whose values are not credentials but identify the operator (hidden from prompts only).
_IDENTIFYING_FIELD = re.compile(r"(^|_)(url|urls|chat_id)$", re.I)
_PUBLIC_ENDPOINT_FIELDS = {"base_url", "ws_url"}  # exchange and LLM endpoints: public, and useful evidence

# -- redact_for_log: credential patterns, masked in place ----------------------------------------

_LOG_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
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

# -- redact_for_llm: credential-like and identifying text ------------------------------------------

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


def collect_secrets(config: BaseModel | None, extra: Iterable[str] = (), *, identifying: bool = False) -> list[str]:
    """Every secret string in the config, longest first: SecretStr values, plain strings in secret-named
    fields, request header values, and the fragments of those that travel on their own.

    ``identifying`` adds what is no credential but names the operator: chat ids and private endpoint URLs
    (a generic target's ``url``, a notify channel's plain URLs). Only prompts hide those.
    """
    found: set[str] = {s for s in extra if s}

    def add(value: str) -> None:
        if len(value.strip()) >= MIN_LLM_SECRET_LEN:
            found.add(value)

    def walk(node: object, field_name: str, path: tuple[str, ...]) -> None:
        if isinstance(node, SecretStr):
            add(node.get_secret_value())
        elif isinstance(node, BaseModel):
            for name in type(node).model_fields:
                walk(getattr(node, name, None), name, (*path, name))
        elif isinstance(node, dict):
            for key, value in node.items():
                if identifying and field_name == "headers" and isinstance(value, str):
                    add(value)  # a generic target's header may carry a token under any name: prompts hide them all
                    add(value.split(" ", 1)[-1])
                else:  # elsewhere the header's name says whether it is a secret (Authorization, X-Api-Key ...)
                    walk(value, str(key), (*path, str(key)))
        elif isinstance(node, list | tuple | set | frozenset):
            for item in node:
                walk(item, field_name, path)
        elif isinstance(node, str):
            if "://" in node:
                for match in _SECRET_PARAM.finditer(node):  # https://bot/health?token=...: the token is a secret
                    add(match.group(2))
            if _SECRET_FIELD.search(field_name):
                add(node)
            elif identifying:
                in_notify = "notify" in path
                if field_name in _PUBLIC_ENDPOINT_FIELDS and not in_notify:
                    return
                if _IDENTIFYING_FIELD.search(field_name) or (in_notify and "://" in node):
                    add(node)

    if config is not None:
        walk(config, "", ())
    for secret in list(found):
        found.update(_parts(secret))
    return sorted(found, key=len, reverse=True)


_LEADING_AUTH_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token|bot)\s+(\S+)$")
MIN_SECRET_PART_LEN = 12  # a fragment shorter than this is too likely an ordinary word or path


def _parts(secret: str) -> list[str]:
    """Fragments of a secret that travel on their own: a webhook URL's path (the credential) shows up
    without the host in a server's error answer; a header's token without its ``Bearer`` scheme."""
    out: list[str] = []
    if match := _LEADING_AUTH_SCHEME.match(secret.strip()):
        out.append(match.group(1))
    if "://" in secret:
        parsed = urlsplit(secret)
        tail = parsed.path + (f"?{parsed.query}" if parsed.query else "")
        if len(tail) >= MIN_SECRET_PART_LEN:
            out.append(tail)
        out += [seg for seg in re.split(r"[/?&=]", tail) if len(seg) >= MIN_SECRET_PART_LEN]
    return [p for p in out if len(p) >= MIN_SECRET_PART_LEN and p != secret]


def secret_forms(secret: str) -> set[str]:
    """The ways one secret shows up in text: as is, escaped inside JSON, URL-encoded, and base64-encoded
    (standard and URL-safe alphabets, on its own or at any byte offset inside a longer encoded blob such
    as ``Basic base64(key:secret)``)."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret, safe="/:?=&"),
        quote_plus(secret),
    }
    forms |= _base64_forms(secret.encode("utf-8"))
    return forms


def _base64_forms(raw: bytes) -> set[str]:
    """The whole encodings plus, for each of the three byte alignments, the run of base64 characters
    that depends on the secret's bytes alone: that run appears whenever the secret is encoded inside a
    longer value, whatever comes before or after it."""
    out: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode("ascii")
        out |= {whole, whole.rstrip("=")}
        for pad in range(3):
            enc = encode(b"\0" * pad + raw + b"\0\0").decode("ascii")
            start = -(-pad * 8 // 6)  # first character made of secret bits only
            end = (pad + len(raw)) * 8 // 6  # last such character, exclusive
            core = enc[start:end]
            if len(core) >= 4:
                out.add(core)
    return out


class Redactor:
    """Masks known secrets (and, per mode, credential-looking or identifying text). See the module doc."""

    def __init__(self, secrets: Iterable[str] = (), *, min_len: int = MIN_SECRET_LEN) -> None:
        self.min_len = min_len
        self.set_secrets(secrets)

    @classmethod
    def for_llm(cls, config: BaseModel | None) -> Redactor:
        """Every credential and identifying value in the config, down to the shorter prompt minimum."""
        return cls(collect_secrets(config, identifying=True), min_len=MIN_LLM_SECRET_LEN)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"

    def set_secrets(self, secrets: Iterable[str]) -> None:
        values = dict.fromkeys(s.strip() for s in secrets if isinstance(s, str) and len(s.strip()) >= self.min_len)
        self._secrets: tuple[str, ...] = tuple(values)
        variants = {form for value in values for form in secret_forms(value) if len(form) >= self.min_len}
        ordered = sorted(variants, key=len, reverse=True)
        self._literal = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    @property
    def secrets(self) -> tuple[str, ...]:
        return self._secrets

    def contains_secret(self, text: str) -> bool:
        return self._literal is not None and self._literal.search(text) is not None

    def redact_secrets(self, text: str) -> str:
        """Only the exact configured secrets, as ``***`` (cheap; used on every outgoing frame)."""
        if self._literal is None or not text:
            return text
        return self._literal.sub(MASK, text)


    def redact_for_log(self, text: str) -> str:
        """Known secrets and credential patterns, as ``***``; everything else stays readable for operators."""
        text = self.redact_secrets(text)
        for pattern, repl in _LOG_PATTERNS:
            text = pattern.sub(repl, text)
        return text

    def redact_for_llm(self, text: str) -> str:
        """Known secrets plus everything credential-like or identifying, as ``[REDACTED:<kind>]``."""
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

    @overload
    def redact_obj_for_llm(self, value: JsonObject) -> JsonObject: ...

    @overload
    def redact_obj_for_llm(self, value: JsonValue) -> JsonValue: ...

    def redact_obj_for_llm(self, value: JsonValue) -> JsonValue:
        """``redact_for_llm`` on every string (and key) inside JSON data, so it stays valid JSON (a tuple
        comes back a list, as JSON would have it)."""
        if isinstance(value, str):
            return self.redact_for_llm(value)
        if isinstance(value, dict):
            return {self.redact_for_llm(str(k)): self.redact_obj_for_llm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_obj_for_llm(v) for v in value]
        return value


# -- terminal safety ---------------------------------------------------------------------------------

# Whole escape sequences go (a CSI that clears the screen, an OSC 52 that writes the clipboard, a DCS ...):
# escaping them would still print their payload as noise. 7-bit and 8-bit introducers; unterminated
# string sequences run to the end of the line (text after it stays).
_ESC_SEQUENCE = re.compile(
    "\x1b\\[[0-?]*[ -/]*[@-~]?"  # CSI
    "|\x1b[\\]PX^_][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\\\|\x9c)?"  # OSC, DCS, SOS, PM, APC ... BEL or ST
    "|\x1b[ -/]*[0-~]?"  # other escapes (charset selection, RIS, keypad modes ...)
    "|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
    "|[\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c\n]*(?:\x07|\x1b\\\\|\x9c)?"  # 8-bit string sequences
)
# Single characters that move the cursor, ring the bell, or reorder what the reader sees: C0 (but newline
# and tab), DEL, C1, and the bidi marks, embeddings, overrides and isolates.
_UNSAFE_CHAR = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(text: str) -> str:
    """Text that cannot drive a terminal: escape sequences removed, other control and bidi characters shown
    as ``\\xNN`` / ``\\uNNNN``; newline and tab kept (a lone CR becomes ``\\x0d``, CRLF a newline)."""
    if not text or (text.isprintable() and "\x1b" not in text):
        return text
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    text = _ESC_SEQUENCE.sub("", text)
    return _UNSAFE_CHAR.sub(_visible, text)


# -- the process-wide scrubber -------------------------------------------------------------------------
# Every byte cryptomon keeps or sends (SQLite rows, notifications, CLI output, probe results, LLM replies,
# receivers' error answers) passes ``scrub``. It knows the secrets of the config this process loaded
# last (``use_config``, called by the config loader), so a new path needs no plumbing to be safe.

_PROCESS = Redactor()
_PROCESS_LOCK = threading.Lock()


def use_config(config: BaseModel | None, extra: Iterable[str] = ()) -> None:
    """Make ``scrub`` mask every secret of this config (replacing the previous config's)."""
    secrets = collect_secrets(config, extra)
    with _PROCESS_LOCK:
        _PROCESS.set_secrets(secrets)


def add_process_secrets(secrets: Iterable[str]) -> None:
    """Also mask these (a channel's or an exchange's own secrets learned outside a loaded config)."""
    with _PROCESS_LOCK:
        _PROCESS.set_secrets([*_PROCESS.secrets, *secrets])


def process_redactor() -> Redactor:
    return _PROCESS


def scrub(text: str) -> str:
    """Untrusted text made safe to keep, send or show: terminal controls neutralised first (so a control
    character cannot split a secret and rejoin it later), then every configured secret masked."""
    if not text:
        return text
    return _PROCESS.redact_secrets(safe_text(text))


def scrub_opt(text: str | None) -> str | None:
    return None if text is None else scrub(text)


@overload
def scrub_obj(value: JsonObject) -> JsonObject: ...


@overload
def scrub_obj(value: JsonValue) -> JsonValue: ...


def scrub_obj(value: JsonValue) -> JsonValue:
    """``scrub`` on every string (and key) inside JSON data (a tuple comes back a list)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(k) if isinstance(k, str) else k: scrub_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_obj(v) for v in value]
    return value
