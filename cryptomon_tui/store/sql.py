"""Transaction helper and the narrowing of SQLite values, shared by the repository modules."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from cryptomon_tui.kernel.jsonvalue import JsonValue, finite, integer


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` .. ``COMMIT``: takes the write lock up front so a batch never half-applies."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise
    else:
        conn.execute("COMMIT")


# --- what SQLite hands back (no converters are registered: these five types are all it returns) ---------

SqlValue = None | int | float | str | bytes
SqlRow = tuple[SqlValue, ...]


def sql_text(value: SqlValue, default: str = "") -> str:
    """A TEXT column; anything else (a row damaged by hand or by an old bug) reads as ``default``."""
    return value if isinstance(value, str) else default


def sql_opt_text(value: SqlValue) -> str | None:
    return value if isinstance(value, str) else None


def sql_real(value: SqlValue, default: float = 0.0) -> float:
    """A REAL column as a finite float (NaN, inf, text and blobs read as ``default``)."""
    number = finite(value)
    return default if number is None else number


def sql_opt_real(value: SqlValue) -> float | None:
    return finite(value)


def sql_int(value: SqlValue, default: int = 0) -> int:
    number = integer(value)
    return default if number is None else number


def sql_json(value: SqlValue) -> JsonValue:
    """A JSON column, parsed; unparseable or absent text reads as None (callers narrow the result)."""
    if not isinstance(value, str):
        return None
    try:
        parsed: JsonValue = json.loads(value)
    except (ValueError, RecursionError):
        return None
    return parsed


# --- typed reads: where a row leaves sqlite3 (untyped in its stubs) and gets its type ----------------------

SqlParams = Sequence[SqlValue]


def query(conn: sqlite3.Connection, sql: str, params: SqlParams = ()) -> list[SqlRow]:
    rows: list[SqlRow] = conn.execute(sql, params).fetchall()
    return rows


def iter_query(conn: sqlite3.Connection, sql: str, params: SqlParams = ()) -> Iterator[SqlRow]:
    """Rows as the cursor yields them (a long chart range is not held twice)."""
    rows: Iterator[SqlRow] = conn.execute(sql, params)
    return rows


def query_one(conn: sqlite3.Connection, sql: str, params: SqlParams = ()) -> SqlRow | None:
    row: SqlRow | None = conn.execute(sql, params).fetchone()
    return row


def query_value(conn: sqlite3.Connection, sql: str, params: SqlParams = ()) -> SqlValue:
    """The first column of the first row (None when there is no row)."""
    row = query_one(conn, sql, params)
    return None if row is None else row[0]
