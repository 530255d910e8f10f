"""Backtest input parsing, replay, determinism, and the store -> export -> backtest round trip."""

from __future__ import annotations

import asyncio
import json
from dataclasses import fields
from pathlib import Path

import pytest

from cryptomon_tui.backtest import (
    InputError,
    RecordWriter,
    config_for,
    parse_timestamp,
    read_input,
    replay,
)
from cryptomon_tui.cli import main
from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import Config, config_from_data
from cryptomon_tui.config.paths import default_db_path
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.results import Outcome, ProbeResult, recorded_result
from cryptomon_tui.store import Store

T0 = 1_700_000_000.0


def outage_rows(minutes_before: int = 10, outage_s: int = 120, minutes_after: int = 10) -> list[str]:
    """okx/ticker and binance/ping once a second; okx times out for ``outage_s`` seconds."""
    lines = ["ts,exchange,probe,latency_ms,outcome,http_status,error_code,rate_limit_used,clock_offset_ms"]
    total = (minutes_before + minutes_after) * 60 + outage_s
    for s in range(total):
        ts = T0 + s
        lines.append(f"{ts:.3f},binance,ping,{20 + (s * 7) % 5}.5,ok,200,,0.05,-3")
        if minutes_before * 60 <= s < minutes_before * 60 + outage_s:
            lines.append(f"{ts + 0.5:.3f},okx,ticker,,timeout,,,,")
        else:
            lines.append(f"{ts + 0.5:.3f},okx,ticker,{40 + (s * 13) % 9}.25,ok,200,,,")
    return lines


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", T0),
        ("1700000000.25", T0 + 0.25),
        ("1700000000250", T0 + 0.25),  # milliseconds
        ("1700000000250000", T0 + 0.25),  # microseconds
        ("2023-11-14T22:13:20.250Z", T0 + 0.25),
        ("2023-11-14T22:13:20.250+00:00", T0 + 0.25),
        ("2023-11-14 22:13:20.25", T0 + 0.25),  # naive = UTC
    ],
)
def test_timestamps(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


def test_csv_with_every_column_unsorted_and_optional_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.csv",
        [
            "TS, exchange ,probe,latency_ms,outcome,http_status,error_code,error_message,rate_limit_used,"
            "clock_offset_ms",
            "2023-11-14T22:13:21Z,binance,ticker,,ip_banned,418,-1003,banned until x,97%,12.5",
            "1700000000,binance,ticker,31.5,,200,,,0.4,",
            "",
            "1700000000500,okx,book,,timeout,,,,,",
        ],
    )
    parsed = read_input(path)
    assert parsed.problems == [] and parsed.format == "csv" and parsed.rows == 3
    first, second, third = parsed.results
    assert second.outcome is Outcome.OK and second.latency_ms == 31.5 and second.rate_limit_used == 0.4
    assert first == ProbeResult(
        exchange="binance",
        probe="ticker",
        started_at=T0 + 1,
        latency_ms=None,
        outcome=Outcome.IP_BANNED,
        http_status=418,
        error_code="-1003",
        error_message="banned until x",
        rate_limit_used=0.97,
        clock_offset_ms=12.5,
    )
    assert third.outcome is Outcome.TIMEOUT and third.latency_ms is None and third.started_at == T0 + 0.5


def test_recorded_result_is_the_same_object_the_constructor_builds() -> None:
    """The fast constructor sets the recording's fields by position: a reordered or added field fails here."""
    values = ("okx", "book", T0 + 0.25, 12.5, Outcome.HTTP_5XX, 502, "50001", "busy", 0.31, -4.5)
    fast, slow = recorded_result(*values), ProbeResult(*values)
    assert fast == slow
    names = [f.name for f in fields(ProbeResult)]
    assert [getattr(fast, n) for n in names] == [getattr(slow, n) for n in names]
    assert fast.extra == {} and fast.extra is not recorded_result(*values).extra


def test_csv_not_a_number_usage_is_dropped_and_infinity_rejected(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.csv",
        [
            "ts,exchange,probe,latency_ms,rate_limit_used,clock_offset_ms",
            "1700000000,binance,ping,10,nan,",
            "1700000001,binance,ping,10,0.5,NaN",
            "1700000002,binance,ping,10,inf,",
            "1700000003,binance,ping,10,,-inf",
        ],
    )
    parsed = read_input(path)
    assert [(r.rate_limit_used, r.clock_offset_ms) for r in parsed.results] == [(None, None), (0.5, None)]
    assert [p.line for p in parsed.problems] == [4, 5]
    assert all("must be finite" in p.message for p in parsed.problems)


def test_jsonl_by_extension_and_by_content(tmp_path: Path) -> None:
    records = [
        {"ts": T0, "exchange": "bybit", "probe": "time", "latency_ms": 12},
        {"ts": "2023-11-14T22:13:21Z", "exchange": "bybit", "probe": "time", "latency_ms": None,
         "outcome": "timeout"},
    ]  # fmt: skip
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    for name in ("in.jsonl", "recording.txt"):
        (tmp_path / name).write_text(text)
        parsed = read_input(tmp_path / name)
        assert parsed.format == "jsonl" and parsed.problems == []
        assert [(r.started_at, r.outcome) for r in parsed.results] == [(T0, Outcome.OK), (T0 + 1, Outcome.TIMEOUT)]


def test_malformed_rows_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.csv",
        [
            "ts,exchange,probe,latency_ms,outcome",
            "1700000000,binance,ping,10,ok",
            "yesterday,binance,ping,10,ok",
            "1700000001,binance,ping,fast,ok",
            "1700000002,binance,ping,,ok",
            "1700000003,binance,ping,10,exploded",
            "1700000004,binance,ping,10",
            "1700000005,,ping,10,ok",
            "1700000006,binance,ping,-5,ok",
            "1700000007,binance,ping,11,ok",
        ],
    )
    parsed = read_input(path)
    assert len(parsed.results) == 2
    assert [p.line for p in parsed.problems] == [3, 4, 5, 6, 7, 8, 9]
    messages = [p.message for p in parsed.problems]
    assert "neither ISO-8601" in messages[0]
    assert "latency_ms must be a number" in messages[1]
    assert "only failed probes" in messages[2]
    assert "unknown outcome 'exploded'" in messages[3]
    assert "expected 5 fields" in messages[4]
    assert "exchange is empty" in messages[5]
    assert "negative" in messages[6]


def test_unreadable_inputs_raise(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="missing required column"):
        read_input(write(tmp_path / "a.csv", ["ts,exchange,latency_ms", "1,binance,3"]))
    with pytest.raises(InputError, match="empty"):
        read_input(write(tmp_path / "b.csv", []))
    with pytest.raises(InputError, match="cannot read"):
        read_input(tmp_path / "missing.csv")
    with pytest.raises(InputError, match="missing required field"):
        read_input(write(tmp_path / "c.jsonl", ['{"ts": 1, "exchange": "x"}']))


# --- replay -------------------------------------------------------------------------------------


class RecordingPipeline:
    """Stands in for DetectionPipeline: records what it saw and when."""

    def __init__(self, config: Config, clock: FakeClock) -> None:
        self.config = config
        self.clock = clock
        self.seen: list[tuple[float, float, str]] = []

    def on_result(self, result: ProbeResult) -> list[IncidentEvent]:
        self.seen.append((self.clock.now(), result.started_at, result.exchange))
        return []

    def tick(self, now: float) -> list[IncidentEvent]:
        return []


def test_replay_sorts_sets_the_clock_and_adds_unknown_exchanges() -> None:
    made: list[RecordingPipeline] = []

    def factory(config: Config, clock: FakeClock) -> RecordingPipeline:
        made.append(RecordingPipeline(config, clock))
        return made[-1]

    rows = [
        ProbeResult("my-lab", "health", T0 + 2, 5.0, Outcome.OK),
        ProbeResult("binance", "ping", T0, 5.0, Outcome.OK),
        ProbeResult("binance", "ping", T0 + 1, 5.0, Outcome.OK),
        ProbeResult("okx", "ping", T0 + 1, 5.0, Outcome.OK),
    ]
    config = config_from_data({})
    summary = replay(rows, config, lambda e: None, factory)
    seen = made[0].seen
    assert [(clock, ts) for clock, ts, _ in seen] == [(T0, T0), (T0 + 1, T0 + 1), (T0 + 1, T0 + 1), (T0 + 2, T0 + 2)]
    assert [ex for _, _, ex in seen] == ["binance", "binance", "okx", "my-lab"]  # ties keep input order
    assert summary.added_exchanges == ["my-lab"] and summary.results == 4
    assert made[0].config.exchanges["my-lab"].kind == "generic"
    assert "my-lab" not in config.exchanges  # the caller's config is not changed


def test_disabled_exchange_in_the_config_is_replayed() -> None:
    config = config_from_data({"exchanges": {"okx": {"enabled": False}}})
    copy, added = config_for(config, [ProbeResult("okx", "ping", T0, 1.0, Outcome.OK)])
    assert copy.exchanges["okx"].enabled and not config.exchanges["okx"].enabled and added == []


def test_outage_replay_through_the_real_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("cryptomon_tui.engine.pipeline")
    parsed = read_input(write(tmp_path / "in.csv", outage_rows()))
    events: list[IncidentEvent] = []
    summary = replay(parsed.results, config_from_data({}), events.append)
    opened = [e for e in events if e.event is EventType.OPENED]
    resolved = [e for e in events if e.event is EventType.RESOLVED]
    assert len(opened) == 1 and opened[0].incident.exchange == "okx"
    assert [e.incident.id for e in resolved] == [opened[0].incident.id]
    assert T0 + 600 <= opened[0].ts <= T0 + 600 + 10  # detected within a few seconds of the first timeout
    assert resolved[0].ts > T0 + 720
    assert summary.incidents_opened == 1 and summary.resolved == 1 and summary.events == len(events)


def test_cli_twice_gives_identical_bytes_and_never_touches_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cryptomon_tui.engine.pipeline")
    source = write(tmp_path / "in.csv", outage_rows())
    outputs = []
    for n in range(2):
        target = tmp_path / f"events{n}.jsonl"
        assert main(["backtest", "--input", str(source), "--events-jsonl", str(target)]) == 0
        outputs.append(target.read_bytes())
        err = capsys.readouterr().err
        assert "incidents opened: 1" in err and "results/s" in err
    assert outputs[0] == outputs[1] and outputs[0]
    lines = [json.loads(line) for line in outputs[0].decode().splitlines()]
    assert lines[0]["event"] == "opened" and lines[-1]["event"] == "resolved"
    assert set(lines[0]) >= {"ts", "event", "incident"}
    assert lines[0]["incident"]["exchange"] == "okx" and lines[0]["ts"].startswith("2023-11-14T22:")
    # stdout by default
    assert main(["backtest", "--input", str(source), "-q"]) == 0
    assert capsys.readouterr().out.encode() == outputs[0]
    assert not default_db_path().exists()


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_column = write(tmp_path / "a.csv", ["ts,exchange,probe", "1700000000,binance,ping"])
    assert main(["backtest", "--input", str(missing_column)]) == 2
    assert "missing required column(s) latency_ms" in capsys.readouterr().err
    assert main(["backtest", "--input", str(tmp_path / "nope.csv")]) == 2
    bad_row = write(tmp_path / "b.csv", ["ts,exchange,probe,latency_ms", "1700000000,binance,ping,1", "x,y,z,1"])
    assert main(["backtest", "--input", str(bad_row), "--strict", "-q"]) == 2
    assert "line 3" in capsys.readouterr().err
    pytest.importorskip("cryptomon_tui.engine.pipeline")
    assert main(["backtest", "--input", str(bad_row)]) == 0
    err = capsys.readouterr().err
    assert "line 3: ts 'x'" in err and "skipped 1 malformed rows" in err


def test_store_export_backtest_round_trip(tmp_path: Path) -> None:
    """Results recorded in the store, exported, and replayed give the same events as the original."""
    pytest.importorskip("cryptomon_tui.engine.pipeline")
    original = read_input(write(tmp_path / "in.csv", outage_rows(minutes_before=6, minutes_after=6))).results
    expected: list[IncidentEvent] = []
    replay(original, config_from_data({}), expected.append)

    async def record() -> None:
        store = Store(StorageConfig(path=tmp_path / "db.sqlite3", raw_retention=10 * 86400), FakeClock(T0 + 3600))
        assert await store.open(background=False)
        for r in original:
            store.on_result(r)
        await store.close()

    asyncio.run(record())
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'db.sqlite3'}\n  raw_retention: 10d\n")
    exported = tmp_path / "export.csv"
    assert main(["export", "--config", str(config), "--since", "3650d", "--output", str(exported)]) == 0
    round_tripped = read_input(exported)
    assert round_tripped.problems == [] and len(round_tripped.results) == len(original)
    got: list[IncidentEvent] = []
    replay(round_tripped.results, config_from_data({}), got.append)
    assert [json.dumps(e.to_json_dict()) for e in got] == [json.dumps(e.to_json_dict()) for e in expected]
    assert any(e.event is EventType.OPENED for e in got)


def test_record_writer_formats_are_read_back_exactly(tmp_path: Path) -> None:
    import io

    rows = [
        ProbeResult("okx", "book", T0 + 0.123456, 12.345, Outcome.OK, 200, None, None, 0.5, -1.5),
        ProbeResult("okx", "book", T0 + 1, None, Outcome.HTTP_5XX, 503, "50001", 'Service, "busy"', None, None),
    ]
    for fmt in ("csv", "jsonl"):
        buf = io.StringIO()
        writer = RecordWriter(buf, fmt)
        writer.write(rows)
        path = tmp_path / f"x.{fmt}"
        path.write_text(buf.getvalue())
        back = read_input(path).results
        assert [(r.exchange, r.latency_ms, r.outcome, r.http_status, r.error_code, r.error_message,
                 r.rate_limit_used, r.clock_offset_ms) for r in back] == [
            (r.exchange, r.latency_ms, r.outcome, r.http_status, r.error_code, r.error_message,
             r.rate_limit_used, r.clock_offset_ms) for r in rows
        ]  # fmt: skip
        assert [r.started_at for r in back] == pytest.approx([r.started_at for r in rows], abs=1e-6)
