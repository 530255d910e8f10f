"""Analyses and the LLM usage ledger. Money is stored as Decimal text, never float."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from cryptomon_tui.kernel.jsonvalue import JsonObject
from cryptomon_tui.store.rows import AnalysisRecord, LlmUsageRecord, analysis_from_row, dumps, usage_from_row
from cryptomon_tui.store.sql import SqlRow, SqlValue, query, query_one, transaction


def put_analysis(
    conn: sqlite3.Connection,
    *,
    incident_id: str,
    created_at: float,
    source: str,
    model: str | None,
    result: JsonObject,
    cost_usd: Decimal | None,
) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO analyses(incident_id, created_at, source, model, result, cost_usd) VALUES (?,?,?,?,?,?)",
            (incident_id, created_at, source, model, dumps(result), None if cost_usd is None else str(cost_usd)),
        )
        return int(cur.lastrowid or 0)


def latest_analysis(conn: sqlite3.Connection, incident_id: str, source: str | None = None) -> AnalysisRecord | None:
    sql = "SELECT id, incident_id, created_at, source, model, result, cost_usd FROM analyses WHERE incident_id = ?"
    params: list[SqlValue] = [incident_id]
    if source is not None:
        sql += " AND source = ?"
        params.append(source)
    row = query_one(conn, sql + " ORDER BY created_at DESC, id DESC LIMIT 1", params)
    return analysis_from_row(row) if row else None


def analyses_for(conn: sqlite3.Connection, incident_id: str) -> list[AnalysisRecord]:
    rows = query(
        conn,
        "SELECT id, incident_id, created_at, source, model, result, cost_usd FROM analyses WHERE incident_id = ? "
        "ORDER BY created_at, id",
        (incident_id,),
    )
    return [analysis_from_row(r) for r in rows]


def add_usage(
    conn: sqlite3.Connection,
    *,
    ts: float,
    model: str,
    provider: str | None,
    tokens_in: int,
    tokens_out: int,
    cost_usd: Decimal,
    incident_id: str | None,
    purpose: str | None,
) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO llm_usage(ts, model, provider, tokens_in, tokens_out, cost_usd, incident_id, purpose) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (ts, model, provider, int(tokens_in), int(tokens_out), str(cost_usd), incident_id, purpose),
        )
        return int(cur.lastrowid or 0)


def usage_between(conn: sqlite3.Connection, since: float, until: float) -> list[LlmUsageRecord]:
    rows: list[SqlRow] = query(
        conn,
        "SELECT id, ts, model, provider, tokens_in, tokens_out, cost_usd, incident_id, purpose FROM llm_usage "
        "WHERE ts >= ? AND ts < ? ORDER BY ts, id",
        (since, until),
    )
    return [u for r in rows if (u := usage_from_row(r)) is not None]
