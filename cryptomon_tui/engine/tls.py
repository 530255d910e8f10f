"""TLS facts per exchange host, from the certificates the probes' new connections saw.

Two incidents come out of them:
- ``tls_issuer_changed`` (error): a host's certificate changed to one from an issuer outside the set seen
  before for that host: a TLS-intercepting proxy between the bots and the exchange looks exactly like
  this. A renewal by a known issuer is routine and says nothing. It resolves when the host shows a
  certificate from a known issuer again; if the exchange really changed its CA, acknowledge it (or delete
  the known-issuers file to take the new CA as the baseline).
- ``tls_expiry`` (warning): the certificate expires within ``warn_days``; resolves once renewed.

The issuers known per host are kept in a small JSON file next to the store (``<store>.tls-issuers.json``),
so a proxy that appeared while the daemon was down is still flagged after a restart; only the very first
certificate ever seen for a host is trusted as the baseline. Nothing here opens a connection: the facts
ride on probe results (one per new connection).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.snapshot import TlsHostView

log = logging.getLogger(__name__)
MAX_HOSTS = 1000
MAX_ISSUERS = 16

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

    def view(self, now: float) -> TlsHostView:
        days = None if self.not_after is None else round((self.not_after - now) / 86400.0, 2)
        return TlsHostView(self.host, self.fingerprint, self.issuer, days, tuple(sorted(self.known_issuers)),
                           self.intercepted)


@dataclass(frozen=True)
class TlsAction:
    """Raise or resolve one external incident (the engine applies it to its incident manager)."""

    raise_it: bool
    rule: str
    labels: dict[str, str]
    severity: Severity = Severity.WARNING
    summary: str = ""


class TlsWatch:
    def __init__(self, warn_days: float = TLS_EXPIRY_WARN_DAYS, path: Path | None = None) -> None:
        self.warn_days = warn_days
        self.path = path
        self.hosts: dict[tuple[str, str], HostTls] = {}  # (exchange, host) -> latest facts
        self.known: dict[tuple[str, str], set[str]] = {}  # issuers accepted per host (persisted)
        self.dirty = False

    # -- persistence (blocking: call from a thread) --

    def load(self) -> None:
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("tls: cannot read known issuers from %s (%s); starting afresh", self.path, exc)
            return
        if not isinstance(data, dict):
            return
        for key, issuers in list(data.items())[:MAX_HOSTS]:
            exchange, _, host = str(key).partition("|")
            if host and isinstance(issuers, list):
                self.known[(exchange, host)] = {i[:300] for i in issuers[:MAX_ISSUERS] if isinstance(i, str)}

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        self.dirty = False
        data = {f"{ex}|{host}": sorted(issuers) for (ex, host), issuers in self.known.items()}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            self.dirty = True  # retried on the next tick
            log.warning("tls: cannot save known issuers to %s: %s", self.path, exc)

    def view(self, exchange: str, now: float) -> list[TlsHostView]:
        return [h.view(now) for (ex, _), h in sorted(self.hosts.items()) if ex == exchange]

    def observe(self, exchange: str, extra: Mapping[str, object], now: float) -> list[TlsAction]:
        """The facts one probe result carries (``tls_*`` keys); returns the incidents to raise or resolve."""
        host = extra.get("tls_host")
        fingerprint = extra.get("tls_fingerprint")
        if not isinstance(host, str) or not isinstance(fingerprint, str):
            return []
        issuer = extra.get("tls_issuer") if isinstance(extra.get("tls_issuer"), str) else ""
        not_after = extra.get("tls_not_after")
        expiry = (
            float(not_after)
            if isinstance(not_after, int | float) and not isinstance(not_after, bool) and math.isfinite(not_after)
            else None
        )
        labels = {"exchange": exchange, "host": host}
        actions: list[TlsAction] = []
        key = (exchange, host)
        state = self.hosts.get(key)
        if state is None:
            known = self.known.get(key)
            if known is None and len(self.known) < MAX_HOSTS:  # never seen: this certificate is the baseline
                known = self.known[key] = {str(issuer)}
                self.dirty = True
            state = self.hosts[key] = HostTls(host, "", str(issuer), expiry, now, known or {str(issuer)})
        changed = fingerprint != state.fingerprint
        state.fingerprint, state.issuer, state.not_after, state.seen_at = fingerprint, str(issuer), expiry, now
        if changed and issuer not in state.known_issuers and not state.intercepted:
            state.intercepted = True
            seen = "; ".join(sorted(state.known_issuers)) or "none"
            actions.append(TlsAction(
                True, TLS_ISSUER_RULE, labels, Severity.ERROR,
                f"{host} now shows a certificate issued by {issuer or 'an unverified issuer'}, outside the "
                f"issuers seen before ({seen}): a TLS-intercepting proxy? fingerprint {fingerprint[:16]}",
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
