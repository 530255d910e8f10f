"""Each exchange's error codes and their documented meaning (shared/reference/exchanges.md).

The offline analyzer reasons over these categories, and the LLM prompt carries the meaning next to
each code so the model does not have to remember (or invent) what -1021 or 50102 is.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodeInfo:
    category: str  # rate_limited, ip_banned, clock_skew, auth, maintenance, internal, overload, request, waf, region
    meaning: str


_BINANCE: dict[str, CodeInfo] = {
    "-1003": CodeInfo("rate_limited", "TOO_MANY_REQUESTS: request weight per IP exceeded (418 = IP banned)"),
    "-1015": CodeInfo("rate_limited", "TOO_MANY_ORDERS: order rate limit exceeded"),
    "-1008": CodeInfo("overload", "SERVER_BUSY: spot server overloaded"),
    "-1021": CodeInfo("clock_skew", "INVALID_TIMESTAMP: timestamp outside recvWindow or >1000 ms ahead of server"),
    "-1022": CodeInfo("auth", "INVALID_SIGNATURE: request signature invalid"),
    "-2015": CodeInfo("auth", "REJECTED_MBX_KEY: invalid API key, IP not whitelisted, or missing permission"),
    "-2014": CodeInfo("auth", "BAD_API_KEY_FMT: API key format invalid"),
    "-1002": CodeInfo("auth", "UNAUTHORIZED: not authorized for this request"),
    "-1016": CodeInfo("maintenance", "SERVICE_SHUTTING_DOWN: service unavailable / shutting down"),
    "-1000": CodeInfo("internal", "UNKNOWN: unknown error on the exchange side"),
    "-1001": CodeInfo("internal", "DISCONNECTED: internal error, unable to process the request"),
    "-1006": CodeInfo("internal", "UNEXPECTED_RESP: unexpected response from the message bus; status unknown"),
    "-1007": CodeInfo("internal", "TIMEOUT: backend timed out; execution status unknown"),
    "-1121": CodeInfo("request", "BAD_SYMBOL: invalid symbol (configuration, not an outage)"),
}

_BYBIT: dict[str, CodeInfo] = {
    "10006": CodeInfo("rate_limited", "Too many visits: per-UID/endpoint rate limit exceeded"),
    "429": CodeInfo("overload", "system-level frequency protection / high server load"),
    "10429": CodeInfo("overload", "system-level frequency protection"),
    "10002": CodeInfo("clock_skew", "request time outside the recv_window (server_timestamp is in the message)"),
    "-1": CodeInfo("clock_skew", "request expired"),
    "10003": CodeInfo("auth", "invalid API key (also on the wrong environment: mainnet/testnet/demo)"),
    "10004": CodeInfo("auth", "Error sign: invalid signature"),
    "10005": CodeInfo("auth", "permission denied for this key"),
    "10007": CodeInfo("auth", "user authentication failed"),
    "10010": CodeInfo("auth", "unmatched IP: the request IP is not on the key's whitelist"),
    "33004": CodeInfo("auth", "API key expired"),
    "10009": CodeInfo("region", "region restricted"),
    "10024": CodeInfo("region", "compliance rules triggered"),
    "10000": CodeInfo("internal", "server timeout"),
    "10016": CodeInfo("internal", "server error or service restarting"),
    "10019": CodeInfo("maintenance", "trade service is restarting"),
}

_OKX: dict[str, CodeInfo] = {
    "50011": CodeInfo("rate_limited", "Rate limit reached (per endpoint, per 2 s)"),
    "50061": CodeInfo("rate_limited", "sub-account order rate limit reached"),
    "50040": CodeInfo("rate_limited", "too frequent operations"),
    "50013": CodeInfo("overload", "Systems are busy, try again later"),
    "50102": CodeInfo("clock_skew", "Timestamp request expired: more than 30 s away from server time"),
    "50112": CodeInfo("clock_skew", "Invalid OK-ACCESS-TIMESTAMP format"),
    "50113": CodeInfo("auth", "invalid signature"),
    "50111": CodeInfo("auth", "invalid OK-ACCESS-KEY"),
    "50105": CodeInfo("auth", "passphrase incorrect"),
    "50101": CodeInfo("auth", "APIKey does not match the environment (demo key on live, or the reverse)"),
    "50110": CodeInfo("auth", "request IP not in the key's whitelist"),
    "50114": CodeInfo("auth", "invalid authorization"),
    "50100": CodeInfo("auth", "API frozen"),
    "50001": CodeInfo("maintenance", "Service temporarily unavailable (503): maintenance or outage"),
    "50005": CodeInfo("maintenance", "API endpoint is inactive or unavailable (410)"),
    "64008": CodeInfo("maintenance", "connection closing for a service upgrade (notice 60 s ahead)"),
    "50026": CodeInfo("internal", "System error (500)"),
    "50004": CodeInfo("internal", "API endpoint request timeout; outcome unknown"),
    "51001": CodeInfo("request", "instrument does not exist (configuration, not an outage)"),
}

_DERIBIT: dict[str, CodeInfo] = {
    "10028": CodeInfo("rate_limited", "too_many_requests: credits used up; session terminated"),
    "10066": CodeInfo("rate_limited", "too_many_concurrent_requests"),
    "10047": CodeInfo("overload", "matching_engine_queue_full"),
    "13004": CodeInfo("auth", "invalid_credentials"),
    "13009": CodeInfo("auth", "unauthorized: wrong/expired token or bad (possibly stale) signature"),
    "10000": CodeInfo("auth", "authorization_required"),
    "13021": CodeInfo("auth", "forbidden"),
    "13403": CodeInfo("auth", "scope_exceeded"),
    "13888": CodeInfo("clock_skew", "timed_out: server passed valid_until"),
    "11051": CodeInfo("maintenance", "system_maintenance"),
    "13025": CodeInfo("maintenance", "method_switched_off_by_admin"),
    "13503": CodeInfo("maintenance", "unavailable"),
    "13028": CodeInfo("maintenance", "temporarily_unavailable"),
    "11056": CodeInfo("maintenance", "unauthenticated public requests temporarily disabled"),
    "10041": CodeInfo("maintenance", "settlement_in_progress (a few seconds)"),
    "11094": CodeInfo("internal", "internal_server_error"),
    "10001": CodeInfo("internal", "error (general failure)"),
}

_FAMILY_TABLES = {"binance": _BINANCE, "bybit": _BYBIT, "okx": _OKX, "deribit": _DERIBIT}

_HTTP: dict[int, CodeInfo] = {
    418: CodeInfo("ip_banned", "HTTP 418: IP auto-banned after continuing past 429s (Binance: 2 min to 3 days)"),
    429: CodeInfo("rate_limited", "HTTP 429: rate limit broken"),
    401: CodeInfo("auth", "HTTP 401: authentication rejected"),
    403: CodeInfo("waf", "HTTP 403: forbidden (WAF rule, IP limit ban, or region block)"),
    503: CodeInfo("internal", "HTTP 503: service unavailable / backend timeout (status unknown)"),
    500: CodeInfo("internal", "HTTP 500: internal server error"),
    502: CodeInfo("internal", "HTTP 502: bad gateway in front of the exchange"),
    504: CodeInfo("internal", "HTTP 504: gateway timeout in front of the exchange"),
}

# Documented shared limits, used to explain bans and 429s.
WEIGHT_LIMITS = {
    "binance_spot": "6,000 request weight per minute per IP (shared by every client on the IP)",
    "binance_futures": "2,400 request weight per minute per IP (shared by every client on the IP)",
    "bybit": "600 requests per 5 s per IP (a breach gives HTTP 403 for at least 10 minutes)",
    "okx": "per-endpoint limits per 2 s (public by IP, private by user id)",
    "deribit": "credits: 20 requests/s sustained, bursts of 100, per sub-account; 32 connections per IP",
}

CLOCK_TOLERANCE = {
    "binance_spot": "requests are rejected when the timestamp is >1,000 ms ahead of server time or older than "
    "recvWindow (default 5,000 ms)",
    "binance_futures": "requests are rejected when the timestamp is >1,000 ms ahead of server time or older than "
    "recvWindow (default 5,000 ms)",
    "bybit": "requests are rejected outside server_time - recv_window (default 5,000 ms) .. server_time + 1,000 ms",
    "okx": "requests are rejected more than 30 s away from server time",
    "deribit": "signatures are valid for 60 s",
}

# Allowed |offset| in ms before signed requests fail (the tighter side).
CLOCK_LIMIT_MS = {
    "binance_spot": 1000.0,
    "binance_futures": 1000.0,
    "bybit": 1000.0,
    "okx": 30000.0,
    "deribit": 60000.0,
}

ALTERNATE_HOSTS = {
    "binance_spot": "api1-4.binance.com or api-gcp.binance.com",
    "binance_futures": "fapi.binance.com from another region/IP",
    "bybit": "api.bytick.com",
    "okx": "www.okx.com / openapi.okx.com (us.okx.com, eea.okx.com for those regions)",
    "deribit": "www.deribit.com from another region/IP",
}


def family(kind: str | None) -> str | None:
    """binance_spot/binance_futures -> binance; the others are their own family."""
    if kind is None:
        return None
    if kind.startswith("binance"):
        return "binance"
    return kind if kind in _FAMILY_TABLES else None


def lookup(kind: str | None, code: str | int | None) -> CodeInfo | None:
    """Documented meaning of an exchange error code (None when unknown)."""
    if code is None:
        return None
    text = str(code).strip()
    fam = family(kind)
    if fam is not None:
        table = _FAMILY_TABLES[fam]
        hit = table.get(text) or table.get(text.split("_", 1)[0])  # OKX sub-codes: 51008_1000
        if hit:
            return hit
        return None
    for table in _FAMILY_TABLES.values():  # unknown kind: a code that means one thing everywhere is still useful
        hit = table.get(text)
        if hit:
            return hit
    return None


def http_meaning(status: int | None) -> CodeInfo | None:
    if status is None:
        return None
    hit = _HTTP.get(status)
    if hit is None and 500 <= status <= 599:
        return CodeInfo("internal", f"HTTP {status}: server-side error")
    return hit
