"""Analyses and the LLM usage ledger. Money is stored as Decimal text, never float."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal
from typing import Any

from cryptomon_tui.store.rows import AnalysisRecord, LlmUsageRecord, dumps
from cryptomon_tui.store.sql import transaction


def put_analysis(
    conn: sqlite3.Connection,
    *,
    incident_id: str,
    created_at: float,
    source: str,
    model: str | None,
    result: dict[str, Any],
    cost_usd: Decimal | None,
) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO analyses(incident_id, created_at, source, model, result, cost_usd) VALUES (?,?,?,?,?,?)",
            (incident_id, created_at, source, model, dumps(result), None if cost_usd is None else str(cost_usd)),
        )
        return int(cur.lastrowid or 0)


def _analysis(row: tuple[Any, ...]) -> AnalysisRecord:
    return AnalysisRecord(
        id=int(row[0]),
        incident_id=row[1],
        created_at=float(row[2]),
        source=row[3],
        model=row[4],
        result=json.loads(row[5]),
        cost_usd=None if row[6] is None else Decimal(row[6]),
    )


def latest_analysis(conn: sqlite3.Connection, incident_id: str, source: str | None = None) -> AnalysisRecord | None:
    sql = "SELECT id, incident_id, created_at, source, model, result, cost_usd FROM analyses WHERE incident_id = ?"
    params: list[Any] = [incident_id]
    if source is not None:
        sql += " AND source = ?"
        params.append(source)
    row = conn.execute(sql + " ORDER BY created_at DESC, id DESC LIMIT 1", params).fetchone()
    return _analysis(row) if row else None


def analyses_for(conn: sqlite3.Connection, incident_id: str) -> list[AnalysisRecord]:
    rows = conn.execute(
        "SELECT id, incident_id, created_at, source, model, result, cost_usd FROM analyses WHERE incident_id = ? "
        "ORDER BY created_at, id",
        (incident_id,),
    ).fetchall()
    return [_analysis(r) for r in rows]


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
    rows = conn.execute(
        "SELECT id, ts, model, provider, tokens_in, tokens_out, cost_usd, incident_id, purpose FROM llm_usage "
        "WHERE ts >= ? AND ts < ? ORDER BY ts, id",
        (since, until),
    ).fetchall()
    return [
        LlmUsageRecord(
            id=int(r[0]),
            ts=float(r[1]),
            model=r[2],
            provider=r[3],
            tokens_in=int(r[4]),
            tokens_out=int(r[5]),
            cost_usd=Decimal(r[6]),
            incident_id=r[7],
            purpose=r[8],
        )
        for r in rows
    ]
