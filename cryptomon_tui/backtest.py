"""Replay recorded probe results through detection on a simulated clock (``cryptomon backtest``).

Input format (also what ``cryptomon export`` writes, so history round-trips):
  CSV with a header row naming the columns, or JSONL (one object per line). Columns:
  ``ts, exchange, probe, latency_ms`` required; ``outcome`` (default ok), ``http_status``,
  ``error_code``, ``error_message``, ``rate_limit_used`` (0..1, or "85%"), ``clock_offset_ms``
  optional. ``ts`` is ISO-8601 (naive = UTC) or epoch seconds / milliseconds / microseconds
  (told apart by magnitude). ``latency_ms`` may be empty only for a failed probe (a timeout
  has none). Format: ``.csv`` / ``.jsonl`` / ``.ndjson`` by extension (``.gz`` allowed), else
  sniffed from the first character (``{`` = JSONL).

Decisions:
  * Order: rows are sorted by ``ts`` (stable, so ties keep file order). Exported files and most
    recordings are nearly sorted; sorting everything keeps replays exact whatever the order,
    at the cost of holding the parsed rows in memory (~250 bytes per row).
  * Malformed rows (bad timestamp, unknown outcome, non-numeric latency, ok without latency ...)
    are skipped, counted and reported with their line number on stderr (the first 20); the
    replay goes on. ``--strict`` turns any malformed row into exit 2. A missing required column
    or an unreadable file is always exit 2.
  * Exchanges the config does not know are added to an in-memory copy of it as generic targets
    (with a dummy URL that is never contacted). The user's store is never opened.
  * Time: a FakeClock follows the rows' timestamps. Before recording each row the pipeline runs
    every evaluation tick (``detection.evaluate_every`` grid) the clock has crossed, exactly as
    the live engine does, so ``for`` durations and recoveries play out; after a long gap in the
    data the pipeline catches up a bounded number of ticks and jumps. The replay ends at the
    last row.
  * Same input, same config -> byte-identical events: no wall clock, and incident ids come from
    a seeded generator (``id_seed=0``).
  * Stream verdicts: JSONL records with ``"kind": "stream"`` (what ``cryptomon daemon
    --probes-jsonl`` writes once per detection tick per WebSocket stream: ``ts`` plus the
    StreamStats fields) replay through the same pipeline, so stream incidents come out of a
    backtest exactly as they did live. CSV holds probe results only.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import Config
from cryptomon_tui.config.exchanges import ExchangeConfig
from cryptomon_tui.incidents.model import EventType, IncidentEvent
from cryptomon_tui.kernel.jsonvalue import JsonValue
from cryptomon_tui.kernel.results import Outcome, ProbeResult, recorded_result
from cryptomon_tui.kernel.streams import StreamStats
from cryptomon_tui.kernel.units import iso_utc, parse_iso_utc

REQUIRED_COLUMNS = ("ts", "exchange", "probe", "latency_ms")
OPTIONAL_COLUMNS = ("outcome", "http_status", "error_code", "error_message", "rate_limit_used", "clock_offset_ms")
EXPORT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
GENERIC_URL = "http://backtest.invalid/"
MAX_REPORTED_PROBLEMS = 20


class InputError(Exception):
    """The input cannot be replayed at all (exit 2)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class ParsedInput:
    results: list[ProbeResult]
    problems: list[RowProblem] = field(default_factory=list)
    streams: list[tuple[float, StreamStats]] = field(default_factory=list)  # (ts, verdict) records
    format: str = "csv"
    rows: int = 0


@dataclass(slots=True)
class BacktestSummary:
    results: int = 0
    skipped: int = 0
    events: int = 0
    incidents_opened: int = 0
    reopened: int = 0
    resolved: int = 0
    ticks: int = 0
    first_ts: float | None = None
    last_ts: float | None = None
    elapsed_s: float = 0.0
    added_exchanges: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.results / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def render(self) -> str:
        span = ""
        if self.first_ts is not None and self.last_ts is not None:
            span = f" covering {iso_utc(self.first_ts)} .. {iso_utc(self.last_ts)}"
        lines = [
            f"backtest: {self.results} results{span}",
            f"  incidents opened: {self.incidents_opened}, reopened: {self.reopened}, resolved: {self.resolved}, "
            f"events: {self.events}",
            f"  replayed in {self.elapsed_s:.3f} s ({self.rate:,.0f} results/s)",
        ]
        if self.skipped:
            lines.append(f"  skipped {self.skipped} malformed rows")
        if self.added_exchanges:
            lines.append(f"  not in the config, replayed as generic targets: {', '.join(self.added_exchanges)}")
        return "\n".join(lines)


# --- reading ---------------------------------------------------------------------------------


def parse_timestamp(raw: str | float) -> float:
    """ISO-8601, or epoch seconds / ms / µs (a number above 1e11 is ms, above 1e14 µs)."""
    if isinstance(raw, bool):
        raise ValueError(f"ts {raw!r} is not a time")
    if isinstance(raw, int | float):
        number = float(raw)
        value = repr(raw)
    else:
        value = raw.strip()
        if not value:
            raise ValueError("empty ts")
        try:
            number = float(value)
        except ValueError:
            try:
                return parse_iso_utc(value)
            except ValueError:
                raise ValueError(f"ts {value!r} is neither ISO-8601 nor epoch seconds/milliseconds") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"ts {value!r} is out of range")
    if number >= 1e14:
        return number / 1e6
    if number >= 1e11:
        return number / 1e3
    return number


def _opt_float(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        if not text or text.lower() in ("null", "none", "nan"):
            return None
        percent = text.endswith("%")
        try:
            number = float(text.rstrip("%"))
        except ValueError:
            raise ValueError(f"{name} must be a number, got {text!r}") from None
        if percent:
            number /= 100.0
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite")
    return number


def _opt_int(name: str, value: object) -> int | None:
    number = _opt_float(name, value)
    if number is None:
        return None
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return int(number)


def _opt_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


_OUTCOMES = {o.value: o for o in Outcome}


def _record_ts(values: Mapping[str, object]) -> float:
    ts_raw = values.get("ts")
    if ts_raw is None:
        raise ValueError("ts is missing")
    return parse_timestamp(ts_raw if isinstance(ts_raw, int | float) else str(ts_raw))


def make_result(values: Mapping[str, object]) -> ProbeResult:
    """One record -> ProbeResult; ValueError with a readable reason when malformed."""
    started = _record_ts(values)
    exchange = _opt_text(values.get("exchange"))
    probe = _opt_text(values.get("probe"))
    if not exchange:
        raise ValueError("exchange is empty")
    if not probe:
        raise ValueError("probe is empty")
    outcome_text = (_opt_text(values.get("outcome")) or "ok").lower()
    outcome = _OUTCOMES.get(outcome_text)
    if outcome is None:
        raise ValueError(f"unknown outcome {outcome_text!r} (one of {', '.join(_OUTCOMES)})")
    latency = _opt_float("latency_ms", values.get("latency_ms"))
    if latency is None and outcome is Outcome.OK:
        raise ValueError("latency_ms is empty on an ok row (only failed probes, e.g. timeouts, may omit it)")
    if latency is not None and latency < 0:
        raise ValueError(f"latency_ms is negative ({latency})")
    return recorded_result(
        exchange,
        probe,
        started,
        latency,
        outcome,
        _opt_int("http_status", values.get("http_status")),
        _opt_text(values.get("error_code")),
        _opt_text(values.get("error_message")),
        _opt_float("rate_limit_used", values.get("rate_limit_used")),
        _opt_float("clock_offset_ms", values.get("clock_offset_ms")),
    )


_STREAM_NUMBERS = ("msgs_per_s", "silence_s", "stale_after_s", "gap_p50_ms", "gap_p99_ms", "gap_max_ms", "lag_ms",
                   "lag_error_ms", "connect_ms", "subscribe_ms", "first_message_ms")
_STREAM_COUNTS = ("messages", "seq_gaps", "missed", "reconnects", "recent_reconnects", "heartbeat_misses",
                  "planned_reconnects")


def make_stream_record(values: Mapping[str, object]) -> tuple[float, StreamStats]:
    """One ``kind: stream`` record -> (ts, StreamStats); numbers finite and bounded, text capped."""
    ts = _record_ts(values)
    data: dict[str, object] = {"exchange": _opt_text(values.get("exchange")), "stream": _opt_text(values.get("stream"))}
    if not data["exchange"] or not data["stream"]:
        raise ValueError("exchange and stream are required")
    for name in _STREAM_NUMBERS:
        number = _opt_float(name, values.get(name))
        if number is not None and abs(number) > 1e12:
            raise ValueError(f"{name} out of range")
        data[name] = number
    for name in _STREAM_COUNTS:
        data[name] = max(0, _opt_int(name, values.get(name)) or 0)
    for name in ("msgs_per_s", "silence_s", "stale_after_s"):
        data[name] = data[name] or 0.0
    code = _opt_int("last_close_code", values.get("last_close_code"))
    data.update(
        outcome=str(values.get("outcome") or "ok"),
        detail=_opt_text(values.get("detail")) or "",
        connected=values.get("connected") is True,
        subscribed=values.get("subscribed") is True,
        last_close_code=code,
        last_close_reason=_opt_text(values.get("last_close_reason")),
    )
    return ts, StreamStats.from_wire(data)


def _open_text(path: str | Path) -> IO[str]:
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    p = Path(path)
    if p.suffix == ".gz":
        return gzip.open(p, "rt", encoding="utf-8-sig", newline="")
    return p.open("r", encoding="utf-8-sig", newline="")


def detect_format(path: str | Path, first_line: str) -> str:
    name = str(path).lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".csv", ".tsv")):
        return "csv"
    return "jsonl" if first_line.lstrip().startswith("{") else "csv"


def read_input(path: str | Path) -> ParsedInput:
    """Parse a whole recording; raises InputError when it cannot be replayed at all."""
    try:
        handle = _open_text(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        try:
            lines = iter(handle)
            first = next(lines, "")
            while first is not None and first.strip() == "" and first != "":
                first = next(lines, "")
            fmt = detect_format(path, first)
            stream = _chain(first, lines)
            parsed = _read_jsonl(stream) if fmt == "jsonl" else _read_csv(stream)
        except UnicodeDecodeError as exc:
            raise InputError(f"{path} is not UTF-8 text ({exc.reason})") from None
        except (OSError, EOFError) as exc:
            raise InputError(f"cannot read {path}: {exc}") from None
    parsed.format = fmt
    return parsed


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    if first:
        yield first
    yield from rest


def _read_csv(lines: Iterable[str]) -> ParsedInput:
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        raise InputError("the input is empty (a CSV needs a header row naming its columns)")
    names = [h.strip().lower() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(missing)} in the CSV header {header!r} "
            f"(required: {', '.join(REQUIRED_COLUMNS)})"
        )
    index = {name: names.index(name) for name in EXPORT_COLUMNS if name in names}
    out = ParsedInput(results=[])
    width = len(names)
    fast = _fast_csv_parser(index)
    append = out.results.append
    rows = 0
    for row in reader:
        if len(row) != width:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            rows += 1
            out.problems.append(RowProblem(reader.line_num, f"expected {width} fields, found {len(row)}"))
            continue
        rows += 1
        try:
            append(fast(row))
        except (ValueError, KeyError, IndexError):
            try:  # the careful path says what exactly is wrong
                append(make_result({name: row[i] for name, i in index.items()}))
            except ValueError as exc:
                out.problems.append(RowProblem(reader.line_num, str(exc)))
    out.rows = rows
    return out


def _fast_csv_parser(index: dict[str, int]) -> Callable[[list[str]], ProbeResult]:
    """The common, well-formed row without per-field bookkeeping (~2x faster than ``make_result``).

    Raises on anything unusual; the caller then re-parses the row with ``make_result``.
    """
    i_ts, i_ex, i_probe, i_lat = (index[c] for c in REQUIRED_COLUMNS)
    i_out, i_status, i_code, i_msg, i_usage, i_off = (index.get(c, -1) for c in OPTIONAL_COLUMNS)
    ok = Outcome.OK
    outcomes = _OUTCOMES
    inf = math.inf
    # names already checked, one string object each: later lookups by (exchange, probe) hash them once
    names: dict[str, str] = {}

    def parse(row: list[str]) -> ProbeResult:
        started = float(row[i_ts])  # ISO text raises here and takes the careful path
        if not 1e8 < started < 1e11:
            raise ValueError
        exchange, probe = names.get(row[i_ex]), names.get(row[i_probe])
        if exchange is None or probe is None:
            exchange, probe = row[i_ex], row[i_probe]
            if not exchange or not probe or exchange != exchange.strip() or probe != probe.strip():
                raise ValueError
            exchange, probe = names.setdefault(exchange, exchange), names.setdefault(probe, probe)
        outcome = outcomes[row[i_out] or "ok"] if i_out >= 0 else ok
        lat = row[i_lat]
        latency = float(lat) if lat else None
        if latency is None:
            if outcome is ok:
                raise ValueError
        elif not 0 <= latency < math.inf:
            raise ValueError
        status = row[i_status] if i_status >= 0 else ""
        usage_text = row[i_usage] if i_usage >= 0 else ""
        offset_text = row[i_off] if i_off >= 0 else ""
        usage = float(usage_text) if usage_text else None
        offset = float(offset_text) if offset_text else None
        if (usage is not None and not -inf < usage < inf) or (offset is not None and not -inf < offset < inf):
            raise ValueError  # nan / inf: the careful path drops "nan" and rejects infinities
        return recorded_result(
            exchange,
            probe,
            started,
            latency,
            outcome,
            int(status) if status else None,
            (row[i_code] or None) if i_code >= 0 else None,
            (row[i_msg] or None) if i_msg >= 0 else None,
            usage,
            offset,
        )

    return parse


def _read_jsonl(lines: Iterable[str]) -> ParsedInput:
    out = ParsedInput(results=[])
    seen_columns: set[str] = set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        out.rows += 1
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            out.problems.append(RowProblem(number, f"not JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            out.problems.append(RowProblem(number, "not a JSON object"))
            continue
        if obj.get("kind") == "stream":
            try:
                out.streams.append(make_stream_record(obj))
            except (ValueError, TypeError) as exc:
                out.problems.append(RowProblem(number, f"stream record: {exc}"))
            continue
        seen_columns.update(obj)
        try:
            out.results.append(make_result(obj))
        except ValueError as exc:
            out.problems.append(RowProblem(number, str(exc)))
    if out.rows and not out.results and not out.streams:
        missing = [c for c in REQUIRED_COLUMNS if c not in seen_columns]
        if missing:
            raise InputError(f"missing required field(s) {', '.join(missing)} in every JSONL record")
    return out


# --- writing (the export format) ---------------------------------------------------------------


def _num(value: JsonValue) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    text = repr(round(float(value), 6))
    return text[:-2] if text.endswith(".0") else text


def iso_utc_us(epoch_seconds: float) -> str:
    """ISO-8601 UTC with microseconds: an export keeps the recorded instant, not just its millisecond."""
    moment = _dt.datetime.fromtimestamp(epoch_seconds, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def result_record(r: ProbeResult) -> dict[str, JsonValue]:
    """The export/backtest record of one result."""
    return {
        "ts": iso_utc_us(r.started_at),
        "exchange": r.exchange,
        "probe": r.probe,
        "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 3),
        "outcome": r.outcome.value,
        "http_status": r.http_status,
        "error_code": r.error_code,
        "error_message": r.error_message,
        "rate_limit_used": None if r.rate_limit_used is None else round(r.rate_limit_used, 6),
        "clock_offset_ms": None if r.clock_offset_ms is None else round(r.clock_offset_ms, 3),
    }


class RecordWriter:
    """Writes results as CSV (with header) or JSONL, in exactly the format ``read_input`` takes."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
        self._out = out
        self._fmt = fmt
        self.count = 0
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(EXPORT_COLUMNS)

    def write(self, results: Iterable[ProbeResult]) -> None:
        for r in results:
            rec = result_record(r)
            if self._csv is not None:
                self._csv.writerow(
                    [
                        rec["ts"],
                        rec["exchange"],
                        rec["probe"],
                        _num(rec["latency_ms"]),
                        rec["outcome"],
                        "" if rec["http_status"] is None else rec["http_status"],
                        rec["error_code"] or "",
                        rec["error_message"] or "",
                        _num(rec["rate_limit_used"]),
                        _num(rec["clock_offset_ms"]),
                    ]
                )
            else:
                self._out.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
            self.count += 1


# --- replay --------------------------------------------------------------------------------------


class Pipeline(Protocol):
    """What the replay needs from ``engine.pipeline.DetectionPipeline``."""

    def on_result(self, result: ProbeResult) -> list[IncidentEvent]: ...

    def tick(self, now: float) -> list[IncidentEvent]: ...

    def record_stream(self, stats: StreamStats) -> None: ...


PipelineFactory = Callable[[Config, FakeClock], Pipeline]


def default_pipeline_factory() -> PipelineFactory:
    """The real detection pipeline (imported late: the backtest module loads without it)."""
    try:
        from cryptomon_tui.engine.pipeline import DetectionPipeline
    except ModuleNotFoundError as exc:
        raise InputError(f"the detection pipeline is not available in this build ({exc.name})") from None

    def make(config: Config, clock: FakeClock) -> Pipeline:
        canaries = {name for name, ex in config.exchanges.items() if ex.enabled and getattr(ex, "canary", False)}
        return DetectionPipeline(config, clock, canaries=canaries or None, id_seed=0, rollups=False)

    return make


def config_for(config: Config, results: Sequence[ProbeResult]) -> tuple[Config, list[str]]:
    """A copy of ``config`` that knows every exchange in the input (unknown ones as generic targets)."""
    copy = config.model_copy(deep=True)
    added: list[str] = []
    for name in sorted({r.exchange for r in results}):
        existing = copy.exchanges.get(name)
        if existing is None:
            copy.exchanges[name] = ExchangeConfig(kind="generic", url=GENERIC_URL + name)
            added.append(name)
        elif not existing.enabled:
            existing.enabled = True
    return copy, added


def replay(
    results: list[ProbeResult],
    config: Config,
    emit: Callable[[IncidentEvent], None],
    pipeline_factory: PipelineFactory | None = None,
    streams: list[tuple[float, StreamStats]] | None = None,
) -> BacktestSummary:
    """Feed ``results`` (sorted here) through a fresh pipeline on a FakeClock; events go to ``emit``.

    ``streams``: recorded stream verdicts, replayed in time order between the results."""
    if streams:
        return _replay_with_streams(results, streams, config, emit, pipeline_factory)
    summary = BacktestSummary(results=len(results))
    if not results:
        return summary
    started = time.perf_counter()
    ordered = sorted(results, key=_ts)  # stable: ties keep file order
    run_config, summary.added_exchanges = config_for(config, ordered)
    factory = pipeline_factory or default_pipeline_factory()
    clock = FakeClock(ordered[0].started_at)
    pipeline = factory(run_config, clock)
    opened = EventType.OPENED
    reopened = EventType.REOPENED
    resolved = EventType.RESOLVED
    set_time = clock.set
    on_result = pipeline.on_result
    for r in ordered:
        set_time(r.started_at)
        events = on_result(r)
        if events:
            for ev in events:
                summary.events += 1
                if ev.event is opened:
                    summary.incidents_opened += 1
                elif ev.event is reopened:
                    summary.reopened += 1
                elif ev.event is resolved:
                    summary.resolved += 1
                emit(ev)
    summary.first_ts = ordered[0].started_at
    summary.last_ts = ordered[-1].started_at
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _ts(r: ProbeResult) -> float:
    return r.started_at


def _replay_with_streams(
    results: list[ProbeResult],
    streams: list[tuple[float, StreamStats]],
    config: Config,
    emit: Callable[[IncidentEvent], None],
    pipeline_factory: PipelineFactory | None,
) -> BacktestSummary:
    """The replay loop with stream records merged in by time (kept apart: the plain loop is the fast path)."""
    summary = BacktestSummary(results=len(results) + len(streams))
    started = time.perf_counter()
    ordered = sorted(results, key=_ts)
    ordered_streams = sorted(streams, key=lambda item: item[0])
    run_config, summary.added_exchanges = config_for(config, ordered)
    for name in sorted({s.exchange for _, s in ordered_streams} - set(run_config.exchanges)):
        run_config.exchanges[name] = ExchangeConfig(kind="generic", url=GENERIC_URL + name)
        summary.added_exchanges.append(name)
    first = min([*(r.started_at for r in ordered[:1]), ordered_streams[0][0]])
    last = max([*(r.started_at for r in ordered[-1:]), ordered_streams[-1][0]])
    clock = FakeClock(first)
    pipeline = (pipeline_factory or default_pipeline_factory())(run_config, clock)

    def count(events: list[IncidentEvent]) -> None:
        for ev in events:
            summary.events += 1
            if ev.event is EventType.OPENED:
                summary.incidents_opened += 1
            elif ev.event is EventType.REOPENED:
                summary.reopened += 1
            elif ev.event is EventType.RESOLVED:
                summary.resolved += 1
            emit(ev)

    i = j = 0
    while i < len(ordered) or j < len(ordered_streams):
        if j >= len(ordered_streams) or (i < len(ordered) and ordered[i].started_at <= ordered_streams[j][0]):
            clock.set(ordered[i].started_at)
            count(pipeline.on_result(ordered[i]))
            i += 1
        else:
            ts, stats = ordered_streams[j]
            clock.set(ts)
            pipeline.record_stream(stats)
            count(pipeline.tick(ts))
            j += 1
    summary.first_ts, summary.last_ts = first, last
    summary.elapsed_s = time.perf_counter() - started
    return summary


def event_line(event: IncidentEvent) -> str:
    return json.dumps(event.to_json_dict(), ensure_ascii=False, separators=(",", ":")) + "\n"
