"""The ``notify:`` section (channels, routes, storm control). Filled in by the notification issue."""

from __future__ import annotations

from cryptomon_tui.config.base import Section


class NotifyConfig(Section):
    enabled: bool = True
