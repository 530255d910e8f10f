"""Config loading: defaults, env interpolation, and errors that name file and key (exit 2, no traceback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cryptomon_tui.config import ConfigError, config_from_data, load_config


def test_no_file_watches_all_four_exchanges() -> None:
    config, source = load_config()
    assert source is None
    kinds = {ex.kind for ex in config.enabled_exchanges().values()}
    assert kinds == {"binance_spot", "binance_futures", "bybit", "okx", "deribit"}


def test_env_interpolation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BKEY", "k-123")
    monkeypatch.setenv("BSEC", "s-456")
    cfg = config_from_data(
        {"exchanges": {"binance": {"credentials": {"api_key": "${BKEY}", "api_secret": "${BSEC}"}}}}
    )
    creds = cfg.exchanges["binance"].credentials
    assert creds is not None
    assert creds.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(cfg)


def test_generic_target_and_units() -> None:
    cfg = config_from_data(
        {"exchanges": {"mybot": {"url": "http://127.0.0.1:9/health", "interval": "500ms", "latency_limit": "2s"}}}
    )
    ex = cfg.exchanges["mybot"]
    assert ex.kind == "generic"
    assert ex.interval == 0.5
    assert ex.latency_limit == 2.0


BAD_CONFIGS = {
    "wrong_type": ("exchanges:\n  binance:\n    interval: fast\n", "exchanges.binance.interval"),
    "unknown_key": ("exchanges:\n  binance:\n    intervall: 5s\n", "exchanges.binance.intervall"),
    "unknown_exchange": ("exchanges:\n  kraken:\n    interval: 5s\n", "exchanges.kraken"),
    "missing_env": (
        "exchanges:\n  binance:\n    credentials:\n      api_key: ${NOPE_NOT_SET_X}\n      api_secret: x\n",
        "exchanges.binance.credentials.api_key",
    ),
    "malformed_yaml": ("exchanges:\n  binance: [unclosed\n", "malformed YAML"),
    "too_fast": ("exchanges:\n  okx:\n    interval: 10ms\n", "exchanges.okx.interval"),
    "top_level_unknown": ("exchangez: {}\n", "exchangez"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_errors_name_file_and_key(case: str, tmp_path: Path) -> None:
    text, key = BAD_CONFIGS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    rendered = info.value.render()
    assert str(path) in rendered
    assert key in rendered


@pytest.mark.slow  # a real `cryptomon config` process per case
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_config_check_cli_exits_2_without_traceback(case: str, tmp_path: Path) -> None:
    text, key = BAD_CONFIGS[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon_tui.cli", "config", "check", str(path)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(path) in proc.stderr and key in proc.stderr


@pytest.mark.slow  # a real `cryptomon config` process per case
def test_config_check_ok(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("exchanges:\n  binance:\n    interval: 2s\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon_tui.cli", "config", "check", str(path)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("OK")


@pytest.mark.slow  # a real `cryptomon config` process per case
def test_config_show_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "exchanges:\n  okx:\n    credentials:\n      api_key: VERYSECRETKEY\n      api_secret: TOPSECRET\n"
        "      passphrase: PASSPHRASE1\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cryptomon_tui.cli", "config", "show", "--config", str(path)],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    for secret in ("VERYSECRETKEY", "TOPSECRET", "PASSPHRASE1"):
        assert secret not in proc.stdout
    assert "**" in proc.stdout
