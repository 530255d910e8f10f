"""Outbox operations the notifier needs beyond ``repo_outbox``: batched enqueue (one commit for a storm),
batched state changes, releasing claimed-but-unattempted rows, withdrawing a superseded firing, the next
due time per channel, and persisted channel health. Owned by the notify package; same conventions as
the other repository modules (plain functions on a connection, one transaction each)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace

from cryptomon_tui.kernel.jsonvalue import JsonObject, as_object
from cryptomon_tui.store.rows import OUTBOX_COLUMNS, NewOutboxMessage, OutboxMessage, outbox_from_row
from cryptomon_tui.store.sql import (
    SqlRow,
    SqlValue,
    query,
    query_one,
    query_value,
    sql_int,
    sql_json,
    sql_opt_real,
    sql_opt_text,
    sql_text,
    transaction,
)

FIRED_EVENTS = ("firing", "reopened", "reminder")
OPENING_EVENTS = ("firing", "reopened")

# A row waits for every earlier row of its (incident, channel) still queued or in flight, and for an
# earlier firing that became a dead letter: per channel and incident, messages go in the order written,
# so a resolve never overtakes its firing (after a backoff, a 429 pause or a broken spell). It also waits
# for an earlier incident's rows of the same fingerprint still queued or in flight (the same problem back
# as a new incident): receivers that key alerts by fingerprint (PagerDuty's dedup_key, Alertmanager's
# labels) would otherwise close the new alert with the old incident's late resolve. An earlier incident
# parked behind a dead firing (until `notify resend`) does not hold the new one back.
_IN_ORDER = (
    "(o.incident_id IS NULL OR (NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id "
    "AND p.channel = o.channel AND p.id < o.id AND (p.state IN ('pending', 'sending') "
    "OR (p.state = 'dead' AND p.event IN ('firing', 'reopened')))) "
    "AND (o.fingerprint IS NULL OR NOT EXISTS (SELECT 1 FROM outbox q WHERE q.channel = o.channel "
    "AND q.state IN ('pending', 'sending') AND q.fingerprint = o.fingerprint AND q.id < o.id "
    "AND q.incident_id IS NOT NULL AND q.incident_id != o.incident_id "
    "AND NOT EXISTS (SELECT 1 FROM outbox d WHERE d.incident_id = q.incident_id AND d.channel = q.channel "
    "AND d.state = 'dead' AND d.event IN ('firing', 'reopened'))))))"
)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def enqueue_many(conn: sqlite3.Connection, rows: Sequence[NewOutboxMessage], now: float) -> list[int]:
    """Insert rows (the outbox columns a writer chooses) and update the notification log, in ONE transaction.

    A firing row marks its (incident, channel) as told-it-fired; a resolved row marks it told-it-resolved.
    An idempotency key already present keeps its existing row.
    """
    ids: list[int] = []
    with transaction(conn):
        for r in rows:
            cur = conn.execute(
                "INSERT INTO outbox(idempotency_key, channel, incident_id, fingerprint, event, payload, state, "
                "attempts, next_attempt_at, created_at) VALUES (?,?,?,?,?,?,'pending',0,?,?) "
                "ON CONFLICT(idempotency_key) DO NOTHING",
                (
                    r["idempotency_key"],
                    r["channel"],
                    r["incident_id"],
                    r["fingerprint"],
                    r["event"],
                    json.dumps(r["payload"], separators=(",", ":"), ensure_ascii=False),
                    r["next_attempt_at"],
                    now,
                ),
            )
            if cur.rowcount == 1:
                ids.append(int(cur.lastrowid or 0))
            else:
                existing = query_value(conn, "SELECT id FROM outbox WHERE idempotency_key = ?", (r["idempotency_key"],))
                ids.append(sql_int(existing))
            if not r["incident_id"]:
                continue
            if r["event"] in FIRED_EVENTS:
                conn.execute(
                    "INSERT INTO notification_log(incident_id, channel, fingerprint, fired_notified, fired_at) "
                    "VALUES (?,?,?,1,?) ON CONFLICT(incident_id, channel) DO UPDATE SET fired_notified = 1, "
                    "fired_at = coalesce(notification_log.fired_at, excluded.fired_at), resolved_notified = 0, "
                    "resolved_at = NULL",
                    (r["incident_id"], r["channel"], r["fingerprint"], now),
                )
            elif r["event"] == "resolved":
                conn.execute(
                    "UPDATE notification_log SET resolved_notified = 1, resolved_at = ? "
                    "WHERE incident_id = ? AND channel = ?",
                    (now, r["incident_id"], r["channel"]),
                )
    return ids


def claim_due(conn: sqlite3.Connection, channel: str, now: float, limit: int) -> list[OutboxMessage]:
    """Due rows of ``channel`` whose earlier rows (same incident) are done, oldest first, committed as
    ``sending`` with the attempt counted BEFORE any byte goes out (the in-flight mark a restart sees)."""
    with transaction(conn):
        cols = ", ".join(f"o.{c.strip()}" for c in OUTBOX_COLUMNS.split(","))
        rows = query(
            conn,
            f"SELECT {cols} FROM outbox o WHERE o.channel = ? AND o.state = 'pending' AND o.next_attempt_at <= ? "
            f"AND {_IN_ORDER} ORDER BY o.next_attempt_at, o.id LIMIT ?",
            (channel, now, limit),
        )
        conn.executemany(
            "UPDATE outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
            [(now, sql_int(r[0])) for r in rows],
        )
    return [
        replace(m, state="sending", attempts=m.attempts + 1, last_attempt_at=now)
        for m in (outbox_from_row(r) for r in rows)
    ]


def mark_sent_many(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> int:
    with transaction(conn):
        cur = conn.execute(
            f"UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL WHERE id IN ({_marks(len(ids))})",
            (now, *ids),
        )
    return int(cur.rowcount)


def mark_failed_many(
    conn: sqlite3.Connection, ids: Sequence[int], error: str, next_attempt_at: float, dead: bool
) -> int:
    with transaction(conn):
        cur = conn.execute(
            f"UPDATE outbox SET state = ?, last_error = ?, next_attempt_at = ? WHERE id IN ({_marks(len(ids))})",
            ("dead" if dead else "pending", error[:2000], next_attempt_at, *ids),
        )
    return int(cur.rowcount)


def release(conn: sqlite3.Connection, ids: Sequence[int], next_attempt_at: float, error: str | None) -> int:
    """Claimed rows that were not really attempted (channel paused or broken): the attempt is given back."""
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = max(attempts - 1, 0), next_attempt_at = ?, "
            f"last_error = coalesce(?, last_error) WHERE id IN ({_marks(len(ids))}) AND state = 'sending'",
            (next_attempt_at, None if error is None else error[:2000], *ids),
        )
    return int(cur.rowcount)


def cancel_pending(conn: sqlite3.Connection, incident_id: str, channel: str, now: float) -> int:
    """Withdraw a firing that was never due: the incident resolved inside group_wait (``due`` in the
    payload is still ahead of ``now``). Rows written after it for the same incident and channel (an ack)
    go with it; nothing that was due is touched, whatever happened to the channel meanwhile.

    Afterwards the notification log says what the channel really heard: nothing (entry removed, so no
    resolve and no "reopened" later), or an earlier incarnation that it was already told resolved."""
    marks = _marks(len(OPENING_EVENTS))
    with transaction(conn):
        first = query_value(
            conn,
            "SELECT min(id) FROM outbox WHERE incident_id = ? AND channel = ? AND state = 'pending' "
            f"AND attempts = 0 AND event IN ({marks}) "
            "AND coalesce(json_extract(payload, '$.due'), next_attempt_at) > ?",
            (incident_id, channel, *OPENING_EVENTS, now),
        )
        if first is None:
            return 0
        n = int(
            conn.execute(
                "DELETE FROM outbox WHERE incident_id = ? AND channel = ? AND id >= ? AND state = 'pending' "
                "AND attempts = 0",
                (incident_id, channel, first),
            ).rowcount
        )
        last = query_one(
            conn,
            "SELECT event FROM outbox WHERE incident_id = ? AND channel = ? "
            f"AND event IN ({_marks(len(FIRED_EVENTS) + 1)}) ORDER BY id DESC LIMIT 1",
            (incident_id, channel, *FIRED_EVENTS, "resolved"),
        )
        if last is None:
            conn.execute("DELETE FROM notification_log WHERE incident_id = ? AND channel = ?", (incident_id, channel))
        elif last[0] == "resolved":
            conn.execute(
                "UPDATE notification_log SET resolved_notified = 1, resolved_at = coalesce(resolved_at, ?) "
                "WHERE incident_id = ? AND channel = ?",
                (now, incident_id, channel),
            )
    return n


def attach_analysis(conn: sqlite3.Connection, incident_id: str, text: str) -> list[str]:
    """Put the verdict into firing rows not yet attempted (it rides along); returns those channels."""
    marks = _marks(len(OPENING_EVENTS))
    with transaction(conn):
        rows = query(
            conn,
            "SELECT id, channel FROM outbox WHERE incident_id = ? AND state = 'pending' AND attempts = 0 "
            f"AND event IN ({marks})",
            (incident_id, *OPENING_EVENTS),
        )
        conn.executemany(
            "UPDATE outbox SET payload = json_set(payload, '$.notice.analysis', ?) WHERE id = ?",
            [(text, sql_int(r[0])) for r in rows],
        )
    return sorted({str(r[1]) for r in rows})


def fired_channels(conn: sqlite3.Connection, incident_id: str) -> list[str]:
    """Channels that heard (or have queued, due) a firing of the incident at some point."""
    rows = query(
        conn,
        "SELECT channel FROM notification_log WHERE incident_id = ? AND fired_notified = 1", (incident_id,)
    )
    return [str(r[0]) for r in rows]


def next_due(conn: sqlite3.Connection, channel: str) -> float | None:
    """When the next row of ``channel`` may go (rows waiting for an earlier one of their incident aside)."""
    return sql_opt_real(
        query_value(
            conn,
            f"SELECT min(o.next_attempt_at) FROM outbox o WHERE o.channel = ? AND o.state = 'pending' AND {_IN_ORDER}",
            (channel,),
        )
    )


def notified_channels(conn: sqlite3.Connection, incident_id: str) -> list[str]:
    rows = query(
        conn,
        "SELECT channel FROM notification_log WHERE incident_id = ? AND fired_notified = 1 AND resolved_notified = 0",
        (incident_id,),
    )
    return [str(r[0]) for r in rows]


def open_firing(conn: sqlite3.Connection, channel: str) -> list[JsonObject]:
    """The latest firing payload of every incident ``channel`` was told about and not yet told resolved."""
    marks = _marks(len(FIRED_EVENTS))
    rows: list[SqlRow] = query(
        conn,
        "SELECT o.payload FROM outbox o JOIN notification_log l ON l.incident_id = o.incident_id "
        "AND l.channel = o.channel WHERE o.channel = ? AND l.fired_notified = 1 AND l.resolved_notified = 0 "
        f"AND o.id = (SELECT max(id) FROM outbox o2 WHERE o2.incident_id = o.incident_id AND o2.channel = o.channel "
        f"AND o2.event IN ({marks})) ORDER BY o.id",
        (channel, *FIRED_EVENTS),
    )
    return [payload for r in rows if (payload := as_object(sql_json(r[0]))) is not None]


def dead_for(conn: sqlite3.Connection, channel: str | None, limit: int) -> list[OutboxMessage]:
    sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE state = 'dead'"
    params: list[SqlValue] = []
    if channel is not None:
        sql += " AND channel = ?"
        params.append(channel)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    return [outbox_from_row(r) for r in query(conn, sql, params)]


def resend_ids(conn: sqlite3.Connection, ids: Sequence[int], now: float) -> int:
    with transaction(conn):
        cur = conn.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ? "
            f"WHERE id IN ({_marks(len(ids))}) AND state IN ('dead', 'pending')",
            (now, *ids),
        )
    return int(cur.rowcount)


def set_channel_state(conn: sqlite3.Connection, channel: str, broken: bool, reason: str | None, now: float) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO notify_channel_state(channel, broken, reason, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(channel) DO UPDATE SET broken = excluded.broken, reason = excluded.reason, "
            "updated_at = excluded.updated_at",
            (channel, int(broken), reason, now),
        )


def channel_states(conn: sqlite3.Connection) -> dict[str, tuple[bool, str | None]]:
    rows = query(conn, "SELECT channel, broken, reason FROM notify_channel_state")
    return {sql_text(c): (bool(sql_int(b)), sql_opt_text(r)) for c, b, r in rows}
