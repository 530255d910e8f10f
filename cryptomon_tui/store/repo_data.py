"""Raw probe results and 1-minute rollups: batched writes, chart queries, export, retention."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from cryptomon_tui.kernel.results import ProbeResult
from cryptomon_tui.store.rows import (
    RESULT_COLUMNS,
    ROLLUP_COLUMNS,
    RollupRow,
    merge_rollups,
    result_from_row,
    rollup_from_row,
)
from cryptomon_tui.store.sql import SqlRow, SqlValue, iter_query, query, query_value, sql_int, sql_real, transaction

INSERT_RESULT = f"INSERT INTO probe_results({RESULT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
UPSERT_ROLLUP = f"INSERT OR REPLACE INTO rollups_1m({ROLLUP_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


def rollups(conn: sqlite3.Connection, exchange: str, probe: str | None, since: float, until: float) -> list[RollupRow]:
    lo, hi = int(since // 60 * 60), int(until)
    if probe is not None:
        cur = iter_query(
            conn,
            f"SELECT {ROLLUP_COLUMNS} FROM rollups_1m WHERE exchange = ? AND probe = ? AND minute >= ? AND minute <= ? "
            "ORDER BY minute",
            (exchange, probe, lo, hi),
        )
        return [rollup_from_row(r) for r in cur]
    cur = iter_query(
        conn,
        f"SELECT {ROLLUP_COLUMNS} FROM rollups_1m WHERE exchange = ? AND minute >= ? AND minute <= ? "
        "ORDER BY minute, probe",
        (exchange, lo, hi),
    )
    out: list[RollupRow] = []
    group: list[RollupRow] = []
    for row in cur:
        item = rollup_from_row(row)
        if group and group[0].minute != item.minute:
            out.append(merge_rollups(exchange, group[0].minute, group))
            group = []
        group.append(item)
    if group:
        out.append(merge_rollups(exchange, group[0].minute, group))
    return out


def results_page(
    conn: sqlite3.Connection,
    since: float,
    until: float,
    after: tuple[float, int] | None,
    limit: int,
    exchange: str | None = None,
) -> tuple[list[ProbeResult], tuple[float, int] | None]:
    """One page of results ordered by (ts, id); pass the returned cursor to get the next page."""
    where = ["ts >= ?", "ts < ?"]
    params: list[SqlValue] = [since, until]
    if after is not None:
        where.append("(ts > ? OR (ts = ? AND id > ?))")
        params += [after[0], after[0], after[1]]
    if exchange is not None:
        where.append("exchange = ?")
        params.append(exchange)
    rows: list[SqlRow] = query(
        conn,
        f"SELECT {RESULT_COLUMNS}, id FROM probe_results WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?",
        (*params, limit),
    )
    if not rows:
        return [], None
    last = rows[-1]
    return [result_from_row(r[:-1]) for r in rows], (sql_real(last[0]), sql_int(last[-1]))


def count_results(conn: sqlite3.Connection) -> int:
    return sql_int(query_value(conn, "SELECT count(*) FROM probe_results"))


# --- retention and the size bound ---------------------------------------------------------------

CHUNK = 20_000


@dataclass(slots=True)
class PruneReport:
    results: int = 0
    rollups: int = 0
    incidents: int = 0
    other: int = 0
    size_bytes_before: int = 0
    size_bytes_after: int = 0
    size_pruned_results: int = 0
    size_pruned_rollups: int = 0


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes the live pages take (free pages excluded): what the size bound limits."""
    page_size = sql_int(query_value(conn, "PRAGMA page_size"))
    pages = sql_int(query_value(conn, "PRAGMA page_count"))
    free = sql_int(query_value(conn, "PRAGMA freelist_count"))
    return (pages - free) * page_size


def _delete_chunked(conn: sqlite3.Connection, sql: str, params: Sequence[SqlValue]) -> int:
    total = 0
    while True:
        with transaction(conn):
            n = conn.execute(sql, (*params, CHUNK)).rowcount
        total += max(n, 0)
        if n < CHUNK:
            return total


def prune(
    conn: sqlite3.Connection,
    now: float,
    raw_retention: float,
    rollup_retention: float,
    max_bytes: int,
    incident_retention: float,
    command_retention: float = 86400.0,
) -> PruneReport:
    report = PruneReport(size_bytes_before=used_bytes(conn))
    report.results = _delete_chunked(
        conn,
        "DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results WHERE ts < ? LIMIT ?)",
        (now - raw_retention,),
    )
    report.rollups = _delete_chunked(
        conn,
        "DELETE FROM rollups_1m WHERE (exchange, probe, minute) IN "
        "(SELECT exchange, probe, minute FROM rollups_1m WHERE minute < ? LIMIT ?)",
        (int(now - rollup_retention),),
    )
    with transaction(conn):
        cutoff = now - incident_retention
        expired = "SELECT id FROM incidents WHERE resolved_at IS NOT NULL AND resolved_at < ?"
        old = [r[0] for r in query(conn, expired, (cutoff,))]
        for incident_id in old:
            conn.execute("DELETE FROM incident_timeline WHERE incident_id = ?", (incident_id,))
            conn.execute("DELETE FROM incidents WHERE id = ?", (incident_id,))
            conn.execute("DELETE FROM notification_log WHERE incident_id = ?", (incident_id,))
        report.incidents = len(old)
        other = conn.execute("DELETE FROM analyses WHERE created_at < ?", (cutoff,)).rowcount
        other += conn.execute(
            "DELETE FROM silences WHERE coalesce(expired_at, ends_at) < ?",
            (cutoff,),
        ).rowcount
        other += conn.execute(
            "DELETE FROM maintenance_windows WHERE recurrence IS NULL AND ends_at < ?", (cutoff,)
        ).rowcount
        other += conn.execute(
            "DELETE FROM outbox WHERE state = 'sent' AND sent_at < ?", (now - min(incident_retention, 7 * 86400),)
        ).rowcount
        other += conn.execute(
            "DELETE FROM commands WHERE done_at IS NOT NULL AND done_at < ?", (now - command_retention,)
        ).rowcount
        # a command no daemon picked up for a long time is stale: the CLI already applied it to the store
        other += conn.execute(
            "UPDATE commands SET done_at = ?, result = 'expired: no daemon applied it' "
            "WHERE done_at IS NULL AND ts < ?",
            (now, now - 7 * command_retention),
        ).rowcount
        other += conn.execute("DELETE FROM llm_usage WHERE ts < ?", (now - 400 * 86400,)).rowcount
        report.other = other
    _enforce_size(conn, max_bytes, report)
    conn.execute("PRAGMA incremental_vacuum")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    report.size_bytes_after = used_bytes(conn)
    return report


def _step(rows: int, used: int, max_bytes: int) -> int:
    """Rows to drop next: the share of the file over the bound, plus a little, at least one."""
    excess = (used - max_bytes) / used if used else 1.0
    return max(1, min(rows, math.ceil(rows * (excess * 1.1 + 0.005))))


def _enforce_size(conn: sqlite3.Connection, max_bytes: int, report: PruneReport) -> None:
    """Oldest raw results go first, then oldest rollups, until the live pages fit the bound."""
    for _ in range(100):
        used = used_bytes(conn)
        if used <= max_bytes:
            return
        n_results = count_results(conn)
        if n_results:
            with transaction(conn):
                deleted = conn.execute(
                    "DELETE FROM probe_results WHERE id IN (SELECT id FROM probe_results ORDER BY ts LIMIT ?)",
                    (_step(n_results, used, max_bytes),),
                ).rowcount
            report.size_pruned_results += deleted
            continue
        n_rollups = sql_int(query_value(conn, "SELECT count(*) FROM rollups_1m"))
        if not n_rollups:
            return  # only incidents, outbox and ledger are left: they are never dropped for size
        with transaction(conn):
            deleted = conn.execute(
                "DELETE FROM rollups_1m WHERE (exchange, probe, minute) IN "
                "(SELECT exchange, probe, minute FROM rollups_1m ORDER BY minute LIMIT ?)",
                (_step(n_rollups, used, max_bytes),),
            ).rowcount
        report.size_pruned_rollups += deleted
