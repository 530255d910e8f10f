"""TlsWatch: which certificate changes are incidents (an unknown issuer, a near expiry) and which are routine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptomon_tui.engine.tls import TLS_EXPIRY_RULE, TLS_ISSUER_RULE, TlsWatch

DAY = 86400.0
NOW = 1_800_000_000.0


def facts(fp: str, issuer: str, days: float, host: str = "api.example.com") -> dict[str, Any]:
    return {"tls_host": host, "tls_fingerprint": fp, "tls_issuer": issuer, "tls_not_after": NOW + days * DAY}


def summary(actions: list[Any]) -> list[tuple[str, str]]:
    return [("raise" if a.raise_it else "resolve", a.rule) for a in actions]


def test_renewal_by_a_known_issuer_is_routine_and_an_unknown_one_is_not() -> None:
    w = TlsWatch()
    assert w.observe("ex", facts("aa", "CN=R11", 60), NOW) == []
    assert w.observe("ex", facts("aa", "CN=R11", 60), NOW) == []  # same certificate, new connection
    assert w.observe("ex", facts("bb", "CN=R11", 89), NOW) == []  # renewed by the same CA
    got = w.observe("ex", facts("cc", "CN=Corp Proxy", 365), NOW)
    assert summary(got) == [("raise", TLS_ISSUER_RULE)] and "CN=R11" in got[0].summary
    assert w.observe("ex", facts("dd", "CN=Corp Proxy", 365), NOW) == []  # one incident, not one per connection
    assert summary(w.observe("ex", facts("bb", "CN=R11", 89), NOW)) == [("resolve", TLS_ISSUER_RULE)]
    assert w.view("ex", NOW)[0].days_left == 89.0


def test_expiry_warning_until_renewed() -> None:
    w = TlsWatch(warn_days=14)
    assert summary(w.observe("ex", facts("aa", "CN=R11", 10), NOW)) == [("raise", TLS_EXPIRY_RULE)]
    assert w.observe("ex", facts("aa", "CN=R11", 9), NOW + DAY) == []
    assert summary(w.observe("ex", facts("bb", "CN=R11", 90), NOW)) == [("resolve", TLS_EXPIRY_RULE)]


def test_known_issuers_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3.tls-issuers.json"
    first = TlsWatch(path=path)
    first.observe("ex", facts("aa", "CN=R11", 60), NOW)
    first.save()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    second = TlsWatch(path=path)
    second.load()
    got = second.observe("ex", facts("cc", "CN=Corp Proxy", 365), NOW)  # the first sighting after the restart
    assert summary(got) == [("raise", TLS_ISSUER_RULE)]


def test_a_broken_file_and_missing_facts_are_harmless(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    w = TlsWatch(path=path)
    w.load()
    assert w.known == {}
    assert w.observe("ex", {"tls_host": 5}, NOW) == []
    assert w.observe("ex", {"tls_host": "h", "tls_fingerprint": "aa", "tls_not_after": float("nan")}, NOW) == []
    assert w.view("ex", NOW)[0].days_left is None  # never NaN in the snapshot's JSON
