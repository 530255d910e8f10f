"""SQLite storage: the only package that writes SQL. See ``store.store`` for the write path."""

from cryptomon_tui.store.db import StoreUnavailable
from cryptomon_tui.store.repo_data import PruneReport
from cryptomon_tui.store.rows import (
    AnalysisRecord,
    CommandRecord,
    LlmUsageRecord,
    NotificationLogEntry,
    OutboxChannelStats,
    OutboxMessage,
    RollupRow,
    StoredState,
)
from cryptomon_tui.store.store import Store

__all__ = [
    "AnalysisRecord",
    "CommandRecord",
    "LlmUsageRecord",
    "NotificationLogEntry",
    "OutboxChannelStats",
    "OutboxMessage",
    "PruneReport",
    "RollupRow",
    "Store",
    "StoreUnavailable",
    "StoredState",
]
