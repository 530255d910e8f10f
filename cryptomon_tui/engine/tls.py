"""TLS facts per exchange host, from the certificates the probes' new connections saw.

Two incidents come out of them:
- ``tls_issuer_changed`` (error): a host's certificate changed to one from an issuer outside the set seen
  before for that host: a TLS-intercepting proxy between the bots and the exchange looks exactly like
  this. A renewal by a known issuer is routine and says nothing. It resolves when the host shows a
  certificate from a known issuer again; if the exchange really changed its CA, acknowledge it (a restart
  accepts the new issuer as the first one seen).
- ``tls_expiry`` (warning): the certificate expires within ``warn_days``; resolves once renewed.

The set of known issuers lives in memory (the first certificate seen after a start is trusted as the
baseline); nothing here opens a connection: the facts ride on probe results (one per new connection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptomon_tui.kernel.severity import Severity

TLS_ISSUER_RULE = "tls_issuer_changed"
TLS_EXPIRY_RULE = "tls_expiry"
TLS_EXPIRY_WARN_DAYS = 14.0


@dataclass
class HostTls:
    host: str
    fingerprint: str
    issuer: str
    not_after: float | None
    seen_at: float
    known_issuers: set[str] = field(default_factory=set)
    intercepted: bool = False
    expiring: bool = False

    def view(self, now: float) -> dict[str, Any]:
        days = None if self.not_after is None else round((self.not_after - now) / 86400.0, 2)
        return {"host": self.host, "fingerprint": self.fingerprint, "issuer": self.issuer, "days_left": days,
                "known_issuers": sorted(self.known_issuers), "issuer_changed": self.intercepted}


@dataclass(frozen=True)
class TlsAction:
    """Raise or resolve one external incident (the engine applies it to its incident manager)."""

    raise_it: bool
    rule: str
    labels: dict[str, str]
    severity: Severity = Severity.WARNING
    summary: str = ""


class TlsWatch:
    def __init__(self, warn_days: float = TLS_EXPIRY_WARN_DAYS) -> None:
        self.warn_days = warn_days
        self.hosts: dict[tuple[str, str], HostTls] = {}  # (exchange, host) -> latest facts

    def view(self, exchange: str, now: float) -> list[dict[str, Any]]:
        return [h.view(now) for (ex, _), h in sorted(self.hosts.items()) if ex == exchange]

    def observe(self, exchange: str, extra: dict[str, Any], now: float) -> list[TlsAction]:
        """The facts one probe result carries (``tls_*`` keys); returns the incidents to raise or resolve."""
        host = extra.get("tls_host")
        fingerprint = extra.get("tls_fingerprint")
        if not isinstance(host, str) or not isinstance(fingerprint, str):
            return []
        issuer = extra.get("tls_issuer") if isinstance(extra.get("tls_issuer"), str) else ""
        not_after = extra.get("tls_not_after")
        expiry = float(not_after) if isinstance(not_after, int | float) and not isinstance(not_after, bool) else None
        labels = {"exchange": exchange, "host": host}
        actions: list[TlsAction] = []
        state = self.hosts.get((exchange, host))
        if state is None:
            state = self.hosts[(exchange, host)] = HostTls(host, fingerprint, str(issuer), expiry, now, {str(issuer)})
        else:
            changed = fingerprint != state.fingerprint
            state.fingerprint, state.issuer, state.not_after, state.seen_at = fingerprint, str(issuer), expiry, now
            if changed and issuer not in state.known_issuers and not state.intercepted:
                state.intercepted = True
                known = "; ".join(sorted(state.known_issuers)) or "none"
                actions.append(TlsAction(
                    True, TLS_ISSUER_RULE, labels, Severity.ERROR,
                    f"{host} now shows a certificate issued by {issuer or 'an unverified issuer'}, outside the "
                    f"issuers seen before ({known}): a TLS-intercepting proxy? fingerprint {fingerprint[:16]}",
                ))
            elif state.intercepted and issuer in state.known_issuers:
                state.intercepted = False
                actions.append(TlsAction(False, TLS_ISSUER_RULE, labels))
        if expiry is not None:
            days = (expiry - now) / 86400.0
            if days < self.warn_days and not state.expiring:
                state.expiring = True
                actions.append(TlsAction(
                    True, TLS_EXPIRY_RULE, labels, Severity.WARNING,
                    f"the TLS certificate of {host} expires in {days:.1f} days ({issuer or 'issuer unknown'})",
                ))
            elif days >= self.warn_days and state.expiring:
                state.expiring = False
                actions.append(TlsAction(False, TLS_EXPIRY_RULE, labels))
        return actions
