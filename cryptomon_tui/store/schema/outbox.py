"""The notifier's durable outbox and the log of which channel was told an incident fired."""

COMPONENT = "outbox"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            idempotency_key TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            incident_id TEXT,
            fingerprint TEXT,
            event TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            last_error TEXT,
            last_attempt_at REAL,
            created_at REAL NOT NULL,
            sent_at REAL
        );
        CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
        CREATE INDEX outbox_channel ON outbox(channel, state);

        CREATE TABLE notification_log (
            incident_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            fingerprint TEXT,
            fired_notified INTEGER NOT NULL DEFAULT 0,
            fired_at REAL,
            resolved_notified INTEGER NOT NULL DEFAULT 0,
            resolved_at REAL,
            PRIMARY KEY (incident_id, channel)
        ) WITHOUT ROWID;
        """,
    ),
    (
        2,
        """
        CREATE INDEX IF NOT EXISTS outbox_incident_order ON outbox(incident_id, channel, id);
        """,
    ),
    (
        3,
        # a row also waits for an earlier incident's rows of its fingerprint (repo_notify._IN_ORDER): found
        # through this index instead of scanning every queued row of the channel for each candidate
        """
        CREATE INDEX IF NOT EXISTS outbox_fingerprint_order ON outbox(channel, fingerprint, id);
        """,
    ),
]
