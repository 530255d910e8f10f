"""The notifier's durable outbox and notification log. Every write commits before returning."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from cryptomon_tui.kernel.jsonvalue import JsonObject, finite
from cryptomon_tui.store.rows import (
    OUTBOX_COLUMNS,
    NotificationLogEntry,
    OutboxChannelStats,
    OutboxMessage,
    dumps,
    log_entry_from_row,
    outbox_from_row,
)
from cryptomon_tui.store.sql import (
    SqlRow,
    SqlValue,
    query,
    query_one,
    query_value,
    sql_int,
    sql_opt_text,
    sql_real,
    sql_text,
    transaction,
)


def enqueue(
    conn: sqlite3.Connection,
    *,
    idempotency_key: str,
    channel: str,
    incident_id: str | None,
    fingerprint: str | None,
    event: str,
    payload: JsonObject,
    now: float,
    next_attempt_at: float | None,
) -> tuple[int, bool]:
    """Returns (id, created). A key already present returns the existing row's id and False."""
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO outbox(idempotency_key, channel, incident_id, fingerprint, event, payload, state, attempts, "
            "next_attempt_at, created_at) VALUES (?,?,?,?,?,?,'pending',0,?,?) ON CONFLICT(idempotency_key) DO NOTHING",
            (
                idempotency_key,
                channel,
                incident_id,
                fingerprint,
                event,
                dumps(payload),
                now if next_attempt_at is None else next_attempt_at,
                now,
            ),
        )
        if cur.rowcount == 1:
            return int(cur.lastrowid or 0), True
        return sql_int(query_value(conn, "SELECT id FROM outbox WHERE idempotency_key = ?", (idempotency_key,))), False


def claim_due(conn: sqlite3.Connection, now: float, limit: int, channel: str | None = None) -> list[OutboxMessage]:
    """Pending rows due by ``now``, oldest first, marked 'sending' and their attempt counted."""
    with transaction(conn):
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
        params: list[SqlValue] = [now]
        if channel is not None:
            sql += " AND channel = ?"
            params.append(channel)
        sql += " ORDER BY next_attempt_at, id LIMIT ?"
        params.append(limit)
        messages = [outbox_from_row(r) for r in query(conn, sql, params)]
        conn.executemany(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
            [(now, m.id) for m in messages],
        )
    return [replace(m, state="sending", attempts=m.attempts + 1, last_attempt_at=now) for m in messages]


def mark_sent(conn: sqlite3.Connection, message_id: int, now: float) -> bool:
    with transaction(conn):
        conn.execute("UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL WHERE id = ?", (now, message_id))
    return True


def mark_failed(conn: sqlite3.Connection, message_id: int, error: str, next_attempt_at: float, dead: bool) -> bool:
    with transaction(conn):
        conn.execute(
            "UPDATE outbox SET state = ?, last_error = ?, next_attempt_at = ? WHERE id = ?",
            ("dead" if dead else "pending", error[:2000], next_attempt_at, message_id),
        )
    return True


def requeue_inflight(conn: sqlite3.Connection) -> int:
    """After a crash, 'sending' rows were maybe sent, maybe not: send again (at-least-once)."""
    with transaction(conn):
        return int(conn.execute("UPDATE outbox SET state = 'pending' WHERE state = 'sending'").rowcount)


def dead(conn: sqlite3.Connection, limit: int) -> list[OutboxMessage]:
    rows = query(
        conn,
        f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'dead' ORDER BY id DESC LIMIT ?", (limit,)
    )
    return [outbox_from_row(r) for r in rows]


def get(conn: sqlite3.Connection, message_id: int) -> OutboxMessage | None:
    row = query_one(conn, f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (message_id,))
    return outbox_from_row(row) if row else None


def pending(conn: sqlite3.Connection, limit: int) -> list[OutboxMessage]:
    rows = query(
        conn,
        f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state IN ('pending', 'sending') ORDER BY next_attempt_at, id "
        "LIMIT ?",
        (limit,),
    )
    return [outbox_from_row(r) for r in rows]


def resend(conn: sqlite3.Connection, now: float, message_id: int | None, all_dead: bool) -> int:
    """Dead letters back to pending with a fresh attempt budget."""
    with transaction(conn):
        if all_dead:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? WHERE state = 'dead'", (now,)
            )
        elif message_id is not None:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? "
                "WHERE id = ? AND state IN ('dead', 'pending')",
                (now, message_id),
            )
        else:
            return 0
        return int(cur.rowcount)


def stats(conn: sqlite3.Connection) -> dict[str, OutboxChannelStats]:
    out: dict[str, OutboxChannelStats] = {}

    def of(channel: str) -> OutboxChannelStats:
        return out.setdefault(channel, OutboxChannelStats(channel))

    counts: list[SqlRow] = query(
        conn,
        "SELECT channel, state, count(*), sum(max(attempts - 1, 0)), max(sent_at) FROM outbox GROUP BY channel, state"
    )
    for channel, state, n, extra_attempts, last_sent in counts:
        s = of(sql_text(channel))
        count = sql_int(n)
        s = replace(s, failed_attempts=s.failed_attempts + sql_int(extra_attempts))
        if state == "pending":
            s = replace(s, pending=count)
        elif state == "sending":
            s = replace(s, sending=count)
        elif state == "sent":
            s = replace(s, sent=count)
        elif state == "dead":
            s = replace(s, dead=count)
        if last_sent is not None:
            s = replace(s, last_sent_at=max(sql_real(last_sent), s.last_sent_at or 0.0))
        out[s.channel] = s
    errors: list[SqlRow] = query(
        conn,
        "SELECT channel, last_error, max(last_attempt_at) FROM outbox WHERE last_error IS NOT NULL GROUP BY channel"
    )
    for channel, error, at in errors:
        s = of(sql_text(channel))
        out[s.channel] = replace(s, last_error=sql_opt_text(error), last_error_at=finite(at))
    return dict(sorted(out.items()))


# --- notification log ---------------------------------------------------------------------------


def log_fired(conn: sqlite3.Connection, incident_id: str, channel: str, fingerprint: str | None, now: float) -> bool:
    with transaction(conn):
        conn.execute(
            "INSERT INTO notification_log(incident_id, channel, fingerprint, fired_notified, fired_at) "
            "VALUES (?,?,?,1,?) ON CONFLICT(incident_id, channel) DO UPDATE SET fired_notified = 1, "
            "fired_at = coalesce(notification_log.fired_at, excluded.fired_at), resolved_notified = 0, "
            "resolved_at = NULL",
            (incident_id, channel, fingerprint, now),
        )
    return True


def log_resolved(conn: sqlite3.Connection, incident_id: str, channel: str, now: float) -> bool:
    with transaction(conn):
        conn.execute(
            "INSERT INTO notification_log(incident_id, channel, resolved_notified, resolved_at) VALUES (?,?,1,?) "
            "ON CONFLICT(incident_id, channel) DO UPDATE SET resolved_notified = 1, resolved_at = excluded.resolved_at",
            (incident_id, channel, now),
        )
    return True


def log_entries(conn: sqlite3.Connection, incident_id: str) -> list[NotificationLogEntry]:
    rows = query(
        conn,
        "SELECT incident_id, channel, fingerprint, fired_notified, fired_at, resolved_notified, resolved_at "
        "FROM notification_log WHERE incident_id = ? ORDER BY channel",
        (incident_id,),
    )
    return [log_entry_from_row(r) for r in rows]


def fired_unresolved(conn: sqlite3.Connection) -> list[NotificationLogEntry]:
    """Channels told an incident fired and not yet told it resolved (what a restart must finish)."""
    rows = query(
        conn,
        "SELECT incident_id, channel, fingerprint, fired_notified, fired_at, resolved_notified, resolved_at "
        "FROM notification_log WHERE fired_notified = 1 AND resolved_notified = 0 ORDER BY incident_id, channel"
    )
    return [log_entry_from_row(r) for r in rows]
