"""``cryptomon doctor``'s verdicts from what the exchanges answered (the daemon's snapshot facts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptomon_tui.cli.doctor_cmd import (
    FAIL,
    PASS,
    WARN,
    DaemonAnswer,
    check_config_file,
    check_llm_budget,
    daemon_checks,
)
from cryptomon_tui.config import config_from_data
from cryptomon_tui.kernel.snapshot import Snapshot

CREDS = {"api_key": "key-0123456789abcdef", "api_secret": "secret-0123456789abcdef"}


def config(**exchanges: Any) -> Any:
    data = {"exchanges": {name: {"credentials": CREDS} for name in exchanges}}
    return config_from_data(data, None)


def answer(wire: dict[str, Any], health: dict[str, Any] | None = None) -> DaemonAnswer:
    """The daemon's snapshot reply as doctor reads it (typed, from the wire shape) and its health reply."""
    return DaemonAnswer(Snapshot.from_wire(wire), health or {})


def snap(**facts: dict[str, Any]) -> DaemonAnswer:
    return answer({"exchanges": {name: {"clock_offset_ms": 12.0, "probes": {"account": {"facts": f}}}
                                 for name, f in facts.items()}})


def verdicts(checks: list[Any]) -> dict[str, str]:
    return {c.name: c.verdict for c in checks}


def test_read_only_and_ip_binding_from_the_exchanges_answers() -> None:
    cfg = config(binance=1, bybit=1, okx=1)
    got = verdicts(daemon_checks(cfg, snap(
        binance={"read_only": True, "write_permissions": [], "ip_restricted": True},
        bybit={"read_only": False, "ips": ["*"]},
        okx={"read_only": True, "permissions": ["read_only"]},
    ), "unix socket x"))
    assert got["read-only key (binance)"] == PASS and got["IP whitelist (binance)"] == PASS
    assert got["read-only key (bybit)"] == FAIL and got["IP whitelist (bybit)"] == WARN
    assert got["read-only key (okx)"] == PASS and got["IP whitelist (okx)"] == WARN  # OKX does not say
    assert got["daemon reachable"] == PASS


def test_no_answer_yet_and_no_daemon() -> None:
    cfg = config(binance=1)
    assert verdicts(daemon_checks(cfg, snap(binance={}), "x"))["read-only key (binance)"] == WARN
    assert verdicts(daemon_checks(cfg, None, "no daemon"))["daemon reachable"] == FAIL


def test_clock_offset_verdicts() -> None:
    cfg = config()
    far = answer({"exchanges": {"binance": {"clock_offset_ms": -2500.0}}})
    assert verdicts(daemon_checks(cfg, far, "x"))["clock sync"] == FAIL


def test_literal_secret_in_a_world_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("exchanges:\n  binance:\n    credentials:\n      api_key: LITERALKEY0123456789\n"
                    "      api_secret: LITERALSECRET0123456789\n")
    cfg = config_from_data({"exchanges": {"binance": {"credentials": {"api_key": "LITERALKEY0123456789",
                                                                      "api_secret": "LITERALSECRET0123456789"}}}},
                           path)
    path.chmod(0o644)
    got = verdicts(check_config_file(cfg, path))
    assert got == {"config permissions": FAIL, "secrets via environment": FAIL}
    path.chmod(0o600)
    got = verdicts(check_config_file(cfg, path))
    assert got == {"config permissions": PASS, "secrets via environment": WARN}


def test_llm_without_budget_fails() -> None:
    cfg = config_from_data({"analysis": {"llm": {"base_url": "http://127.0.0.1:9/v1"}, "monthly_budget_usd": None}},
                           None)
    assert check_llm_budget(cfg).verdict == FAIL
    assert check_llm_budget(config_from_data({}, None)).verdict == PASS


def test_a_failing_store_is_a_failure_with_its_reason() -> None:
    failing = answer({"exchanges": {}}, {"store_writable": False,
                                         "detail": {"store_reason": "writes to /x fail: disk_full: full"}})
    checks = {c.name: c for c in daemon_checks(config(), failing, "x")}
    assert checks["store writable"].verdict == FAIL and "disk_full" in checks["store writable"].detail
    ok = answer({"exchanges": {}}, {"store_writable": True})
    assert verdicts(daemon_checks(config(), ok, "x"))["store writable"] == PASS


def test_write_permissions_are_named_as_the_exchange_listed_them() -> None:
    got = {c.name: c for c in daemon_checks(config(bybit=1), snap(bybit={"read_only": False,
                                                                         "permissions": ["Spot", "Wallet"]}), "x")}
    assert got["read-only key (bybit)"].detail == "the key has write permissions: ['Spot', 'Wallet']"
