"""Migrations: per component, numbered, idempotent, refusing a newer schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cryptomon_tui.store.schema import Component, components, current_versions, migrate


def _conn(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_every_component_migrates_once_and_is_recorded(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "db")
    first = migrate(conn)
    assert {"core", "incidents", "outbox", "analysis"} <= set(first)
    assert all(n >= 1 for n in first.values())
    versions = current_versions(conn)
    assert versions == {c.name: c.latest for c in components()}
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {
        "probe_results", "rollups_1m", "commands", "incidents", "incident_timeline", "silences",
        "maintenance_windows", "outbox", "notification_log", "analyses", "llm_usage", "schema_versions",
    } <= tables  # fmt: skip
    # idempotent: nothing applied twice, nothing broken
    assert set(migrate(conn).values()) == {0}
    assert current_versions(conn) == versions


def test_a_component_advances_on_its_own(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "db")
    migrate(conn)
    before = current_versions(conn)
    extra = Component("plugin", ((1, "CREATE TABLE plugin_a (x INTEGER);"),))
    assert migrate(conn, only=[extra]) == {"plugin": 1}
    grown = Component("plugin", ((1, "CREATE TABLE plugin_a (x INTEGER);"), (2, "ALTER TABLE plugin_a ADD y TEXT;")))
    assert migrate(conn, only=[grown]) == {"plugin": 1}
    after = current_versions(conn)
    assert after["plugin"] == 2
    assert {k: v for k, v in after.items() if k != "plugin"} == before
    conn.execute("INSERT INTO plugin_a(x, y) VALUES (1, 'ok')")


def test_a_failing_step_leaves_the_previous_version(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "db")
    bad = Component("bad", ((1, "CREATE TABLE t1 (x);"), (2, "CREATE TABLE t2 (x); SELECT * FROM missing_table;")))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, only=[bad])
    assert current_versions(conn)["bad"] == 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "t1" in tables and "t2" not in tables  # step 2 rolled back as a whole


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = _conn(tmp_path / "db")
    migrate(conn)
    conn.execute("UPDATE schema_versions SET version = 99 WHERE component = 'core'")
    with pytest.raises(sqlite3.DatabaseError, match="newer than this cryptomon"):
        migrate(conn)
