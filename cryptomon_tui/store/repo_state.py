"""Incidents, timelines, silences, maintenance windows and the CLI -> daemon command queue."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from cryptomon_tui.incidents.model import Incident, MaintenanceWindow, Silence, TimelineEntry
from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.store.rows import (
    INCIDENT_COLUMNS,
    SILENCE_COLUMNS,
    WINDOW_COLUMNS,
    CommandRecord,
    StoredState,
    command_from_row,
    dumps,
    incident_from_row,
    incident_to_row,
    silence_from_row,
    silence_to_row,
    timeline_from_row,
    timeline_to_rows,
    window_from_row,
    window_to_row,
)
from cryptomon_tui.store.sql import SqlRow, SqlValue, query, query_one, query_value, sql_int, transaction

_INCIDENT_PLACEHOLDERS = ",".join("?" * len(INCIDENT_COLUMNS.split(",")))
UPSERT_INCIDENT = f"INSERT OR REPLACE INTO incidents({INCIDENT_COLUMNS}) VALUES ({_INCIDENT_PLACEHOLDERS})"
UPSERT_SILENCE = f"INSERT OR REPLACE INTO silences({SILENCE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
UPSERT_WINDOW = f"INSERT OR REPLACE INTO maintenance_windows({WINDOW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"


def write_incidents(conn: sqlite3.Connection, incidents: Iterable[Incident]) -> None:
    """Upsert incidents with their whole timeline (call inside a transaction)."""
    for incident in incidents:
        conn.execute(UPSERT_INCIDENT, incident_to_row(incident))
        rows = timeline_to_rows(incident)
        stored: SqlRow | None = query_one(
            conn,
            "SELECT seq, ts, kind, text, data FROM incident_timeline WHERE incident_id = ? ORDER BY seq DESC LIMIT 1",
            (incident.id,),
        )
        start = 0
        if stored is not None:
            last = sql_int(stored[0], -1)
            # a timeline that only grew: append the new tail instead of rewriting the whole history
            if 0 <= last < len(rows) and tuple(rows[last][2:]) == tuple(stored[1:]):
                start = last + 1
            else:
                conn.execute("DELETE FROM incident_timeline WHERE incident_id = ?", (incident.id,))
        conn.executemany(
            "INSERT INTO incident_timeline(incident_id, seq, ts, kind, text, data) VALUES (?,?,?,?,?,?)",
            rows[start:],
        )


def _timelines(conn: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[TimelineEntry, ...]]:
    out: dict[str, list[TimelineEntry]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows: list[SqlRow] = query(
            conn,
            f"SELECT incident_id, ts, kind, text, data FROM incident_timeline WHERE incident_id IN ({marks}) "
            "ORDER BY incident_id, seq",
            chunk,
        )
        for row in rows:
            entries = out.get(row[0]) if isinstance(row[0], str) else None
            if entries is not None:
                entries.append(timeline_from_row(row[1:]))
    return {k: tuple(v) for k, v in out.items()}


def _with_timelines(conn: sqlite3.Connection, rows: list[SqlRow], timelines: bool) -> list[Incident]:
    """Rows without a usable id are left out (see ``incident_from_row``)."""
    if not timelines:
        return [i for r in rows if (i := incident_from_row(r)) is not None]
    lines = _timelines(conn, [r[0] for r in rows if isinstance(r[0], str)])
    return [
        i for r in rows if (i := incident_from_row(r, lines.get(r[0], ()) if isinstance(r[0], str) else ())) is not None
    ]


def incidents(
    conn: sqlite3.Connection,
    *,
    open_only: bool = False,
    since: float | None = None,
    limit: int | None = None,
    timelines: bool = False,
) -> list[Incident]:
    """Newest first. ``since`` keeps incidents still open or active (updated) after that time."""
    where: list[str] = []
    params: list[SqlValue] = []
    if open_only:
        where.append("state != 'resolved'")
    if since is not None:
        where.append("(resolved_at IS NULL OR resolved_at >= ? OR updated_at >= ?)")
        params += [since, since]
    sql = f"SELECT {INCIDENT_COLUMNS} FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return _with_timelines(conn, query(conn, sql, params), timelines)


def find_incident_id(conn: sqlite3.Connection, ident: str) -> str | None:
    """Exact id, else a unique id prefix (so people can type the first few characters)."""
    row = query_one(conn, "SELECT id FROM incidents WHERE id = ?", (ident,))
    if row:
        return str(row[0])
    escaped = ident.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = query(conn, "SELECT id FROM incidents WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (escaped + "%",))
    return str(rows[0][0]) if len(rows) == 1 else None


def incident(conn: sqlite3.Connection, incident_id: str) -> Incident | None:
    real = find_incident_id(conn, incident_id)
    if real is None:
        return None
    row = query_one(conn, f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (real,))
    found = _with_timelines(conn, [row], True) if row else []
    return found[0] if found else None


def silences(conn: sqlite3.Connection, now: float, include_expired: bool = False) -> list[Silence]:
    rows = query(conn, f"SELECT {SILENCE_COLUMNS} FROM silences ORDER BY created_at, id")
    items = [s for r in rows if (s := silence_from_row(r)) is not None]
    if include_expired:
        return items
    return [s for s in items if _silence_live(s, now)]


def _silence_live(s: Silence, now: float) -> bool:
    """Active now, or scheduled to start later (both must survive a restart)."""
    if s.expired_at is not None and s.expired_at <= now:
        return False
    return s.ends_at is None or now < s.ends_at


def windows(conn: sqlite3.Connection, now: float | None = None) -> list[MaintenanceWindow]:
    rows = query(conn, f"SELECT {WINDOW_COLUMNS} FROM maintenance_windows ORDER BY starts_at, id")
    items = [w for r in rows if (w := window_from_row(r)) is not None]
    if now is None:
        return items
    return [w for w in items if w.recurrence or w.ends_at > now]


def load_state(conn: sqlite3.Connection, now: float, recently_resolved_within: float) -> StoredState:
    # one read transaction: a consistent snapshot even while the writer commits
    conn.execute("BEGIN")
    try:
        open_rows = query(
            conn,
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state != 'resolved' ORDER BY started_at, id"
        )
        recent_rows = query(
            conn,
            f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE state = 'resolved' AND resolved_at >= ? "
            "ORDER BY started_at, id",
            (now - recently_resolved_within,),
        )
        state = StoredState(
            open_incidents=_with_timelines(conn, open_rows, True),
            silences=silences(conn, now),
            maintenance_windows=windows(conn, now),
            recently_resolved=_with_timelines(conn, recent_rows, True),
        )
    finally:
        conn.execute("COMMIT")
    return state


# --- the command queue --------------------------------------------------------------------------


def enqueue_command(conn: sqlite3.Connection, now: float, kind: str, payload: JsonObject) -> int:
    cur = conn.execute("INSERT INTO commands(ts, kind, payload) VALUES (?, ?, ?)", (now, kind, dumps(payload)))
    return int(cur.lastrowid or 0)


def pending_commands(conn: sqlite3.Connection, limit: int) -> list[CommandRecord]:
    rows = query(
        conn,
        "SELECT id, ts, kind, payload FROM commands WHERE done_at IS NULL ORDER BY id LIMIT ?", (limit,)
    )
    return [command_from_row(r) for r in rows]


def others_version(conn: sqlite3.Connection) -> int:
    """``PRAGMA data_version``: changes when another connection committed; this connection's commits leave it."""
    return sql_int(query_value(conn, "PRAGMA data_version"))


def mark_command_done(conn: sqlite3.Connection, command_id: int, now: float, result: str) -> bool:
    with transaction(conn):
        conn.execute("UPDATE commands SET done_at = ?, result = ? WHERE id = ?", (now, result, command_id))
    return True


def command(conn: sqlite3.Connection, command_id: int) -> CommandRecord | None:
    row = query_one(
        conn,
        "SELECT id, ts, kind, payload, done_at, result FROM commands WHERE id = ?", (command_id,)
    )
    return None if row is None else command_from_row(row)


# --- changes made by a command without a daemon (decided by the incident manager, see engine/offline.py) ----


def record_change(
    conn: sqlite3.Connection,
    now: float,
    kind: str,
    payload: JsonObject,
    incidents: Iterable[Incident],
    silences: Iterable[Silence],
    windows: Iterable[MaintenanceWindow],
    removed_windows: Iterable[str],
) -> int:
    """One transaction: the state a command produced, and the command queued for the next daemon start."""
    with transaction(conn):
        write_incidents(conn, list(incidents))
        for s in silences:
            conn.execute(UPSERT_SILENCE, silence_to_row(s))
        for w in windows:
            conn.execute(UPSERT_WINDOW, window_to_row(w))
        for window_id in removed_windows:
            conn.execute("DELETE FROM maintenance_windows WHERE id = ?", (window_id,))
        return enqueue_command(conn, now, kind, payload)


def exact_times(shape: JsonObject, item: Silence | MaintenanceWindow) -> JsonObject:
    """The object's dict with epoch-second floats instead of millisecond ISO text (no precision lost)."""
    shape["starts_at"] = item.starts_at
    shape["ends_at"] = item.ends_at
    if isinstance(item, Silence):
        shape["created_at"] = item.created_at
        shape["expired_at"] = item.expired_at
    return shape


def put_silence(conn: sqlite3.Connection, silence: Silence) -> bool:
    with transaction(conn):
        conn.execute(UPSERT_SILENCE, silence_to_row(silence))
    return True


def put_window(conn: sqlite3.Connection, window: MaintenanceWindow) -> bool:
    with transaction(conn):
        conn.execute(UPSERT_WINDOW, window_to_row(window))
    return True


def delete_window(conn: sqlite3.Connection, window_id: str) -> bool:
    with transaction(conn):
        n = conn.execute("DELETE FROM maintenance_windows WHERE id = ?", (window_id,)).rowcount
    return bool(n)
