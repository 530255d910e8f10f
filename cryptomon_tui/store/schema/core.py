"""Raw probe results, 1-minute rollups and the CLI -> daemon command queue."""

COMPONENT = "core"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE probe_results (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            exchange TEXT NOT NULL,
            probe TEXT NOT NULL,
            outcome TEXT NOT NULL,
            latency_ms REAL,
            http_status INTEGER,
            error_code TEXT,
            error_message TEXT,
            rate_limit_used REAL,
            clock_offset_ms REAL,
            extra TEXT
        );
        CREATE INDEX probe_results_ts ON probe_results(ts);
        CREATE INDEX probe_results_exchange_ts ON probe_results(exchange, ts);

        CREATE TABLE rollups_1m (
            exchange TEXT NOT NULL,
            probe TEXT NOT NULL,
            minute INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            timeouts INTEGER NOT NULL,
            outcomes TEXT NOT NULL,
            p50_ms REAL,
            p95_ms REAL,
            p99_ms REAL,
            min_ms REAL,
            max_ms REAL,
            mean_ms REAL,
            peak_usage REAL,
            clock_offset_ms REAL,
            PRIMARY KEY (exchange, probe, minute)
        ) WITHOUT ROWID;
        CREATE INDEX rollups_1m_minute ON rollups_1m(minute);

        CREATE TABLE commands (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            done_at REAL,
            result TEXT
        );
        CREATE INDEX commands_pending ON commands(done_at, id);
        """,
    ),
]
