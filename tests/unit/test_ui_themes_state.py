"""Themes (shipped and user, broken files reported), the UI state file, and import isolation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from textual.color import Color

from cryptomon_tui.cli import main as cli_main
from cryptomon_tui.config.paths import user_themes_dir
from cryptomon_tui.ui.state import UiState
from cryptomon_tui.ui.theming import APP_VARIABLE_DEFAULTS, load_theme_file, load_themes, shipped_theme_files

SHIPPED = {"cryptomon-dark", "cryptomon-light", "cryptomon-high-contrast"}


def test_shipped_themes_parse_and_define_every_app_variable() -> None:
    files = shipped_theme_files()
    assert {f.stem for f in files} == SHIPPED
    for path in files:
        theme = load_theme_file(path)
        for name in ("primary", "secondary", "accent", "warning", "error", "success", "foreground",
                     "background", "surface", "panel"):
            value = getattr(theme, name)
            assert value is not None, f"{path.name}: {name}"
            Color.parse(value)
        assert set(APP_VARIABLE_DEFAULTS) <= set(theme.variables), path.name
        for value in theme.variables.values():
            Color.parse(value)


def test_broken_user_theme_is_reported_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    folder = user_themes_dir()
    folder.mkdir(parents=True)
    (folder / "mine.yaml").write_text("name: mine\nprimary: '#112233'\n")
    (folder / "broken.yaml").write_text("name: broken\nprimary: not-a-colour\n")
    (folder / "garbage.yaml").write_text("{ this is: [not yaml\n")
    themes, problems = load_themes()
    names = {t.name for t in themes}
    assert "mine" in names and names >= SHIPPED and "broken" not in names
    assert {Path(p.path).name for p in problems} == {"broken.yaml", "garbage.yaml"}
    assert any("primary" in p.message for p in problems)
    assert cli_main(["themes"]) == 0
    assert cli_main(["themes", "--check"]) == 1
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "garbage.yaml" in err


def test_state_file_round_trip_and_corruption(tmp_path: Path) -> None:
    assert UiState.load() == UiState()
    state = UiState(theme="cryptomon-light", on_quit="keep")
    assert state.save()
    assert UiState.load() == state
    UiState.path().write_text("{not json")
    assert UiState.load() == UiState()
    UiState.path().write_text(json.dumps({"theme": 5, "on_quit": "explode"}))
    assert UiState.load() == UiState()
    assert not UiState(theme="x").save(Path("/proc/no-such-dir/ui.json"))


@pytest.mark.slow  # a real Python process importing the engine
def test_engine_and_daemon_never_load_textual() -> None:
    code = (
        "import sys, cryptomon_tui.engine.engine, cryptomon_tui.daemon.control, cryptomon_tui.daemon.client, "
        "cryptomon_tui.cli.daemon_cmd, cryptomon_tui.cli.ui_cmd, cryptomon_tui.cli; "
        "cryptomon_tui.cli.build_parser(); "
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('textual', 'rich') or m.startswith('cryptomon_tui.ui')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
