"""Where cryptomon keeps its files (platformdirs), overridable for tests and containers.

``CRYPTOMON_HOME`` puts config, data, state and runtime under one folder, which is what the
test-suite and the container recipe use.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "cryptomon"


def _home() -> Path | None:
    value = os.environ.get("CRYPTOMON_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir(APP))


def data_dir() -> Path:
    home = _home()
    return home / "data" if home else Path(platformdirs.user_data_dir(APP))


def state_dir() -> Path:
    home = _home()
    return home / "state" if home else Path(platformdirs.user_state_dir(APP))


def runtime_dir() -> Path:
    home = _home()
    if home:
        return home / "run"
    try:
        return Path(platformdirs.user_runtime_dir(APP))
    except Exception:  # pragma: no cover - platforms without a runtime dir
        return state_dir() / "run"


def default_config_path() -> Path:
    env = os.environ.get("CRYPTOMON_CONFIG")
    return Path(env).expanduser() if env else config_dir() / "config.yaml"


def default_db_path() -> Path:
    return data_dir() / "cryptomon.sqlite3"


def user_themes_dir() -> Path:
    return config_dir() / "themes"
