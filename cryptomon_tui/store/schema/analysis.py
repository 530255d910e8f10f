"""Stored analyses and the LLM cost ledger."""

COMPONENT = "analysis"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE analyses (
            id INTEGER PRIMARY KEY,
            incident_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            source TEXT NOT NULL,
            model TEXT,
            result TEXT NOT NULL,
            cost_usd TEXT
        );
        CREATE INDEX analyses_incident ON analyses(incident_id, created_at);

        CREATE TABLE llm_usage (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            model TEXT NOT NULL,
            provider TEXT,
            tokens_in INTEGER NOT NULL,
            tokens_out INTEGER NOT NULL,
            cost_usd TEXT NOT NULL,
            incident_id TEXT,
            purpose TEXT
        );
        CREATE INDEX llm_usage_ts ON llm_usage(ts);
        """,
    ),
]
