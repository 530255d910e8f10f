"""Notifier channel health that must outlive the process (a broken channel stays broken after a restart,
and ``cryptomon notify status`` shows it without a running daemon). Owned by the notify package."""

COMPONENT = "notify"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE notify_channel_state (
            channel TEXT PRIMARY KEY,
            broken INTEGER NOT NULL DEFAULT 0,
            reason TEXT,
            updated_at REAL NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
]
