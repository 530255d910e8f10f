"""The shipped systemd unit and container recipe say what docs/operations.md says they do."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "cryptomon.service"
CONTAINERFILE = REPO / "deploy" / "Containerfile"


def test_systemd_unit_runs_the_daemon_hardened_and_reloads_with_sighup() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service = parser["Service"]
    assert " daemon --config " in service["ExecStart"]
    assert "HUP" in service["ExecReload"]
    assert service["User"] == "cryptomon"
    assert "Environment=CRYPTOMON_HOME=/var/lib/cryptomon" in UNIT.read_text()  # repeated keys: last wins here
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert parser["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_finds_nothing_but_the_missing_binary(tmp_path: Path) -> None:
    unit = tmp_path / "cryptomon.service"
    unit.write_text(UNIT.read_text())
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=30)
    problems = [
        line for line in (out.stdout + out.stderr).splitlines()
        if line.strip() and "/opt/cryptomon/bin/cryptomon" not in line and "Failed to" not in line
    ]
    assert not problems, problems


def test_containerfile_runs_unprivileged_with_a_healthcheck() -> None:
    text = CONTAINERFILE.read_text()
    assert "USER cryptomon" in text
    assert "/healthz" in text and "HEALTHCHECK" in text
    assert 'ENTRYPOINT ["cryptomon", "daemon"]' in text
    assert "CRYPTOMON_HOME=/data" in text
    for copied in ("pyproject.toml", "cryptomon_tui", "themes"):
        assert (REPO / copied).exists(), copied
