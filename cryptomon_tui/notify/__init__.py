"""Notifications: routing, grouping and storm control, a durable outbox, one module per channel.

The engine creates ``Notifier(config, outbox, clock, on_channel_broken, on_channel_recovered)``; with the
SQLite store the outbox is ``notify.store_outbox.StoreOutbox(store)`` (``notify.worker.notifier_for_store``).
"""

from cryptomon_tui.notify.model import Notice, NoticeKind
from cryptomon_tui.notify.notifier import Notifier
from cryptomon_tui.notify.outbox import InMemoryOutbox, OutboxRepository

__all__ = ["InMemoryOutbox", "Notice", "NoticeKind", "Notifier", "OutboxRepository"]
