"""Numbered schema migrations, one module per component, tracked in ``schema_versions``.

Each module in this package defines ``COMPONENT`` (a name) and ``MIGRATIONS``, a list of
``(version, sql)`` steps numbered 1, 2, 3 ... Adding a component's tables is adding a module
here (or appending a step to its own module): nobody edits a shared list, and a component's
version advances independently of the others. Steps run in one transaction each, so a crash
between steps leaves the database at a consistent, recorded version. Never edit a released
step: append a new one.
"""

from __future__ import annotations

import importlib
import pkgutil
import sqlite3
from dataclasses import dataclass

from cryptomon_tui.store.sql import query, query_value, sql_int, sql_text

Migration = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    migrations: tuple[Migration, ...]

    @property
    def latest(self) -> int:
        return max((v for v, _ in self.migrations), default=0)


def components() -> list[Component]:
    """Every component module in this package, in a stable (name) order."""
    found: list[Component] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        name: object = getattr(module, "COMPONENT", None)
        steps: object = getattr(module, "MIGRATIONS", None)
        if not isinstance(name, str) or not isinstance(steps, list):
            continue
        migrations = tuple(_migration(name, step) for step in steps)
        versions = [v for v, _ in migrations]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"schema component {name!r}: migrations must be numbered 1..N in order, got {versions}")
        found.append(Component(name, migrations))
    return found


def _migration(component: str, step: object) -> Migration:
    if isinstance(step, tuple) and len(step) == 2:
        version, sql = step
        if isinstance(version, int) and isinstance(sql, str):
            return version, sql
    raise ValueError(f"schema component {component!r}: a migration must be a (version, sql) pair, got {step!r}"[:300])


_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_versions (
    component TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    applied_at REAL NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS REAL))
)
"""


def current_versions(conn: sqlite3.Connection) -> dict[str, int]:
    conn.execute(_VERSIONS_TABLE)
    rows = query(conn, "SELECT component, version FROM schema_versions")
    return {sql_text(c): sql_int(v) for c, v in rows}


def migrate(conn: sqlite3.Connection, only: list[Component] | None = None) -> dict[str, int]:
    """Bring every component to its latest version; returns {component: steps applied}.

    Idempotent: a second call applies nothing. ``conn`` must be in autocommit mode
    (``isolation_level=None``) so that each step is its own explicit transaction.
    """
    applied: dict[str, int] = {}
    have = current_versions(conn)
    for comp in only if only is not None else components():
        done = have.get(comp.name, 0)
        if done > comp.latest:
            raise sqlite3.DatabaseError(
                f"database schema for {comp.name!r} is version {done}, newer than this cryptomon knows "
                f"({comp.latest}); upgrade cryptomon or use another storage.path"
            )
        count = 0
        for version, sql in comp.migrations:
            if version <= done:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                # re-check inside the write lock: another process may have migrated meanwhile
                stored = query_value(conn, "SELECT version FROM schema_versions WHERE component = ?", (comp.name,))
                if stored is not None and sql_int(stored) >= version:
                    conn.execute("COMMIT")
                    continue
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_versions(component, version) VALUES (?, ?) "
                    "ON CONFLICT(component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                    (comp.name, version),
                )
                conn.execute("COMMIT")
                count += 1
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        applied[comp.name] = count
    return applied


def _statements(sql: str) -> list[str]:
    """Split a step into statements (sqlite3.execute runs one at a time; executescript would commit).

    Splits at each ``;`` that ends a complete statement, so semicolons inside strings or
    triggers stay where they are.
    """
    out: list[str] = []
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \n\t;"):
        out.append(buf.strip().rstrip(";"))
    return out
