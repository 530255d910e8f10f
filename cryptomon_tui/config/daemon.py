"""The ``daemon:`` and ``ui:`` sections (control API, metrics, logging, themes, keys)."""

from __future__ import annotations

from cryptomon_tui.config.base import Section


class DaemonConfig(Section):
    location: str = "local"


class UiConfig(Section):
    theme: str = "cryptomon-dark"
