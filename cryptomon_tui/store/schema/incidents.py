"""Incidents with their timelines, silences and maintenance windows."""

COMPONENT = "incidents"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE incidents (
            id TEXT PRIMARY KEY,
            fingerprint TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            exchange TEXT,
            probe TEXT,
            state TEXT NOT NULL,
            summary TEXT NOT NULL,
            started_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            resolved_at REAL,
            acknowledged_by TEXT,
            acknowledged_at REAL,
            ack_note TEXT,
            silenced_by TEXT,
            silenced_until REAL,
            in_maintenance INTEGER NOT NULL DEFAULT 0,
            flapping INTEGER NOT NULL DEFAULT 0,
            reopen_count INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            ban_until REAL,
            labels TEXT NOT NULL DEFAULT '{}',
            peak TEXT NOT NULL DEFAULT '{}',
            counts TEXT NOT NULL DEFAULT '{}',
            evidence TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX incidents_state ON incidents(state);
        CREATE INDEX incidents_started ON incidents(started_at);
        CREATE INDEX incidents_fingerprint ON incidents(fingerprint);

        CREATE TABLE incident_timeline (
            incident_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            text TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (incident_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE silences (
            id TEXT PRIMARY KEY,
            matchers TEXT NOT NULL,
            starts_at REAL NOT NULL,
            ends_at REAL,
            created_by TEXT NOT NULL,
            comment TEXT NOT NULL,
            created_at REAL NOT NULL,
            expired_at REAL
        );

        CREATE TABLE maintenance_windows (
            id TEXT PRIMARY KEY,
            exchange TEXT,
            starts_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            comment TEXT NOT NULL DEFAULT '',
            recurrence TEXT
        );
        """,
    ),
    (
        2,
        """
        ALTER TABLE maintenance_windows ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
        ALTER TABLE maintenance_windows ADD COLUMN created_by TEXT;
        """,
    ),
]
