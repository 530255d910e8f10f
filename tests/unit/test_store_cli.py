"""The store-backed CLI: incidents, ack, silence(s), unsilence, maintenance, export, and the command queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from cryptomon_tui.cli import main
from cryptomon_tui.clock import RealClock
from cryptomon_tui.config.paths import default_db_path
from cryptomon_tui.config.storage import StorageConfig
from cryptomon_tui.incidents.model import IncidentState
from cryptomon_tui.store import Store
from tests.unit.store_helpers import event, make_incident, result

T = TypeVar("T")


def on_store(work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        store = Store(StorageConfig(), RealClock())
        assert await store.open(background=False)
        try:
            value = await work(store)
            await store.flush()
            return value
        finally:
            await store.close()

    return asyncio.run(run())


def seed_incidents() -> float:
    now = RealClock().now()

    async def work(store: Store) -> None:
        store.on_event(event(make_incident(1, at=now - 600)))
        store.on_event(event(make_incident(2, exchange="okx", rule="p99_latency", at=now - 300)))
        store.on_event(event(make_incident(3, state=IncidentState.RESOLVED, at=now - 30 * 86400)))

    on_store(work)
    return now


def test_incidents_lists_open_and_recent(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["incidents"]) == 0
    assert "no incidents" in capsys.readouterr().out
    seed_incidents()
    assert main(["incidents"]) == 0
    out = capsys.readouterr().out
    assert "inc-0001" in out and "inc-0002" in out and "inc-0003" not in out  # resolved 30 days ago
    assert main(["incidents", "--since", "60d"]) == 0
    assert "inc-0003" in capsys.readouterr().out
    assert main(["incidents", "--open", "--json", "--since", "60d"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == ["inc-0002", "inc-0001"]
    assert data[1]["timeline"][0]["kind"] == "opened" and data[1]["counts"] == {"http_5xx": 12, "timeout": 3}
    assert main(["incidents", "--since", "soon"]) == 2


def test_ack_updates_the_store_and_queues_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    seed_incidents()
    assert main(["ack", "inc-0001", "--note", "on it", "--by", "alice"]) == 0
    assert "acknowledged inc-0001" in capsys.readouterr().out

    async def check(store: Store) -> None:
        inc = await store.incident("inc-0001")
        assert inc is not None
        assert inc.state is IncidentState.ACKNOWLEDGED
        assert (inc.acknowledged_by, inc.ack_note) == ("alice", "on it")
        assert inc.timeline[-1].kind == "acknowledged" and "alice" in inc.timeline[-1].text
        commands = await store.poll_commands()
        assert [(c.kind, c.payload["incident_id"], c.payload["by"]) for c in commands] == [("ack", "inc-0001", "alice")]
        # the daemon applies it and marks it done: it is not handed out again
        assert await store.mark_command_done(commands[0].id, "ok")
        assert await store.poll_commands() == []
        done = await store.command(commands[0].id)
        assert done is not None and done.done_at is not None and done.result == "ok"

    on_store(check)


def test_ack_defaults_to_the_os_user_and_accepts_a_prefix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_incidents()
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    assert main(["ack", "inc-0002"]) == 0
    assert on_store(lambda s: s.incident("inc-0002")).acknowledged_by == "carol"  # type: ignore[union-attr]
    assert main(["ack", "inc-000"]) == 1  # ambiguous prefix
    assert "no incident" in capsys.readouterr().err
    assert main(["ack", "inc-0003"]) == 1
    assert "already resolved" in capsys.readouterr().err
    assert main(["ack", "nope"]) == 1


def test_silence_needs_a_matcher_and_a_comment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["silence", "--for", "1h", "--comment", "x"]) == 2
    assert "at least one matcher" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["silence", "--exchange", "okx", "--for", "1h"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["silence", "--exchange", "okx", "--comment", "x"])  # neither --for nor --until-resolved
    assert main(["silence", "--exchange", "okx", "--for", "soon", "--comment", "x"]) == 2
    assert main(["silence", "--match", "rule=~(", "--for", "1h", "--comment", "x"]) == 2
    assert not default_db_path().exists() or on_store(lambda s: s.silences(include_expired=True)) == []


def test_silence_list_and_unsilence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["silence", "--exchange", "okx", "--rule", "p99_latency", "--for", "2h", "--comment", "upgrade",
                 "--by", "bob"]) == 0  # fmt: skip
    first = capsys.readouterr().out.split(":")[0]
    assert main(["silence", "--incident", "inc-0001", "--until-resolved", "--comment", "known"]) == 0
    second = capsys.readouterr().out.split(":")[0]
    assert main(["silences", "--json"]) == 0
    data = {d["id"]: d for d in json.loads(capsys.readouterr().out)}
    assert set(data) == {first, second}
    assert data[first]["matchers"] == [
        {"name": "exchange", "value": "okx", "is_regex": False, "is_equal": True},
        {"name": "rule", "value": "p99_latency", "is_regex": False, "is_equal": True},
    ]
    assert data[first]["created_by"] == "bob" and data[first]["comment"] == "upgrade"
    assert data[second]["ends_at"] is None and data[second]["matchers"][0]["name"] == "id"
    assert main(["silences"]) == 0
    table = capsys.readouterr().out
    assert "exchange=okx,rule=p99_latency" in table and "when resolved" in table

    assert main(["unsilence", first]) == 0
    assert main(["unsilence", first]) == 1  # already ended
    assert "already expired" in capsys.readouterr().err
    assert main(["silences", "--json"]) == 0
    assert [d["id"] for d in json.loads(capsys.readouterr().out)] == [second]
    assert main(["silences", "--all", "--json"]) == 0
    states = {d["id"]: d["state"] for d in json.loads(capsys.readouterr().out)}
    assert states == {first: "expired", second: "active"}

    commands = on_store(lambda s: s.poll_commands())
    assert [c.kind for c in commands] == ["silence", "silence", "unsilence"]
    assert commands[0].payload["silence"]["id"] == first
    assert commands[2].payload == {"silence_id": first, "by": commands[2].payload["by"]}


def test_maintenance_add_list_remove(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["maintenance", "add", "--exchange", "okx", "--start", "2030-01-01T09:00Z", "--for", "2h",
                 "--comment", "upgrade"]) == 0  # fmt: skip
    window_id = capsys.readouterr().out.split(":")[0]
    assert main(["maintenance", "add", "--start", "2030-01-01T10:00Z", "--end", "2030-01-01T09:00Z"]) == 2
    assert main(["maintenance", "add", "--exchange", "binance", "--start", "2030-01-07T02:00Z", "--for", "30m",
                 "--recurrence", "weekly", "--timezone", "Europe/Berlin"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["maintenance", "list", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [(w["exchange"], w["starts_at"], w["ends_at"], w["recurrence"]) for w in items] == [
        ("okx", "2030-01-01T09:00:00.000Z", "2030-01-01T11:00:00.000Z", None),
        ("binance", "2030-01-07T02:00:00.000Z", "2030-01-07T02:30:00.000Z", "weekly"),
    ]
    assert main(["maintenance", "remove", window_id]) == 0
    assert main(["maintenance", "remove", window_id]) == 1
    assert main(["maintenance", "list"]) == 0
    assert "okx" not in capsys.readouterr().out
    kinds = [c.kind for c in on_store(lambda s: s.poll_commands())]
    assert kinds == ["maintenance_add", "maintenance_add", "maintenance_remove"]


def test_export_writes_the_backtest_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptomon_tui.backtest import read_input

    now = RealClock().now()
    rows = [result(i, at=now - 3600) for i in range(5)] + [result(0, at=now - 3 * 86400)]

    async def seed(store: Store) -> Any:
        for r in rows:
            store.on_result(r)

    on_store(seed)
    for fmt in ("csv", "jsonl"):
        target = tmp_path / f"out.{fmt}"
        assert main(["export", "--since", "24h", "--output", str(target)]) == 0
        assert "exported 5 results" in capsys.readouterr().err
        parsed = read_input(target)
        assert parsed.problems == [] and parsed.format == fmt
        assert [(r.exchange, r.probe, r.latency_ms, r.outcome, r.http_status) for r in parsed.results] == [
            (r.exchange, r.probe, r.latency_ms, r.outcome, r.http_status) for r in rows[:5]
        ]
        assert [r.started_at for r in parsed.results] == pytest.approx([r.started_at for r in rows[:5]], abs=1e-6)
    assert main(["export", "--since", "7d", "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6 and json.loads(lines[0])["exchange"] == "binance"


def test_cli_reports_an_unusable_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = tmp_path / "config.yaml"
    config.write_text(f"storage:\n  path: {blocker / 'db.sqlite3'}\n")
    assert main(["incidents", "--config", str(config)]) == 1
    assert "cannot open the store" in capsys.readouterr().err
