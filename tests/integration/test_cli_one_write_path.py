"""Acceptance (issue 11 item 5): one write path per command.

With a daemon running, ``cryptomon ack`` goes over the control API: the CLI process never opens SQLite
(a ``sys.addaudithook`` in the CLI process records every ``sqlite3.connect``), prints the daemon's answer,
and the daemon is the one that stores the ack. With no daemon, the CLI stores the ack decided by the
incident manager, and the next daemon start announces it (an ``acknowledged`` event for the channels).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.processes import stop
from tests.integration.test_acceptance_restart import (
    Setup,
    closed_port,
    read_events,
    snapshot,
    start_daemon,
    wait_event,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A daemon config watching one generic target whose port is closed (its incident stays open)."""
    short = Path(tempfile.mkdtemp(prefix="cmw-", dir="/tmp"))  # unix socket paths are short
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "exchanges": {"target": {"kind": "generic", "url": f"http://127.0.0.1:{closed_port()}/health",
                                 "interval": "250ms", "timeout": "1s"}},
        "storage": {"path": str(tmp_path / "cryptomon.sqlite3"), "flush_interval": "200ms"},
        "notify": {"enabled": False},
        "daemon": {"http": {"enabled": False}, "control": {"socket_path": str(short / "d.sock")}},
    }))
    home = tmp_path / "home"
    home.mkdir()
    yield Setup(config, home, short / "d.sock", tmp_path)
    shutil.rmtree(short, ignore_errors=True)

# The CLI, with an audit hook that writes every sqlite3.connect of this process to a file.
AUDITED_CLI = (
    "import sys\n"
    "marker = sys.argv.pop(1)\n"
    "def hook(event, args):\n"
    "    if event == 'sqlite3.connect':\n"
    "        with open(marker, 'a') as f:\n"
    "            f.write(repr(args) + '\\n')\n"
    "sys.addaudithook(hook)\n"
    "from cryptomon_tui.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


async def audited_cli(s: Setup, marker: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", AUDITED_CLI, str(marker), *args, "--config", str(s.config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=s.env(),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode()


def stored(db: Path, incident_id: str) -> tuple[str, str | None, int]:
    """(state, acknowledged_by, queued commands) as the SQLite file says (read by the test, not the CLI)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        state, by = conn.execute("SELECT state, acknowledged_by FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        queued = conn.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
    return state, by, int(queued)


@pytest.mark.timeout(90)
async def test_ack_goes_through_the_running_daemon_and_offline_acks_are_announced(setup: Setup) -> None:
    s = setup
    db = s.dir / "cryptomon.sqlite3"
    marker = s.dir / "sqlite-connects.txt"
    events1 = s.dir / "events1.jsonl"
    daemon = await start_daemon(s, events1)
    try:
        opened = await wait_event(events1, lambda e: e["event"] == "opened", 20, "opened incident")
        ident = opened["incident"]["id"]
        await snapshot(s)
        code, out = await audited_cli(s, marker, "ack", ident[:8], "--note", "mine", "--by", "alice")
        assert code == 0, out
        assert out.strip() == f"acknowledged {ident} ({opened['incident']['rule']} on target) as alice", out
        assert not marker.exists(), f"the CLI opened SQLite: {marker.read_text()}"
        ack = await wait_event(events1, lambda e: e["event"] == "acknowledged", 5, "acknowledged event")
        assert ack["actor"] == "alice"

        async def daemon_stored() -> tuple[str, str | None, int]:
            for _ in range(100):  # the daemon's store flushes every 200 ms
                row = await asyncio.to_thread(stored, db, ident)
                if row[0] == "acknowledged":
                    return row
                await asyncio.sleep(0.05)
            return row

        assert await daemon_stored() == ("acknowledged", "alice", 0)  # stored by the daemon; nothing queued

        # maintenance and silences take the same path: the daemon decides and answers
        code, out = await audited_cli(s, marker, "maintenance", "add", "--exchange", "target", "--start", "now",
                                      "--for", "1h", "--comment", "planned", "--by", "alice")
        assert code == 0 and ": target " in out, out
        window_id = out.split(":", 1)[0].strip()
        assert window_id in [w["id"] for w in (await snapshot(s))["maintenance"]]
        code, out = await audited_cli(s, marker, "maintenance", "remove", window_id)
        assert code == 0 and out.strip() == f"{window_id}: removed", out
        assert not marker.exists()

        # an unknown id: the daemon's refusal, printed by the CLI
        code, out = await audited_cli(s, marker, "ack", "I-NOPE", "--by", "alice")
        assert code == 1 and "unknown incident" in out, out
        assert not marker.exists()
    finally:
        await stop(daemon)

    # No daemon: a silence goes to the store, decided by the incident manager, and waits for the next start.
    code, out = await audited_cli(s, marker, "silence", "--exchange", "target", "--for", "1h", "--comment", "known",
                                  "--by", "bob")
    assert code == 0, out
    assert marker.exists()  # offline, the CLI writes the store itself (through the incident manager)
    silence_id = out.split(":", 1)[0].strip()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        kinds = [k for (k,) in conn.execute("SELECT kind FROM commands WHERE done_at IS NULL")]
    assert kinds == ["silence"]

    events2 = s.dir / "events2.jsonl"
    daemon = await start_daemon(s, events2)
    try:
        snap = await snapshot(s)
        assert silence_id in [x["id"] for x in snap["silences"]]
        live = next(i for i in snap["incidents"] if i["id"] == ident)
        assert live["silenced_by"] == silence_id and live["acknowledged_by"] == "alice"
    finally:
        await stop(daemon)
    assert not [e for e in read_events(events2) if e["event"] == "acknowledged"]  # nothing to announce twice


@pytest.mark.timeout(90)
async def test_an_ack_made_while_the_daemon_is_down_is_announced_when_it_starts(setup: Setup) -> None:
    s = setup
    marker = s.dir / "sqlite-connects.txt"
    events1 = s.dir / "events1.jsonl"
    daemon = await start_daemon(s, events1)
    try:
        opened = await wait_event(events1, lambda e: e["event"] == "opened", 20, "opened incident")
        ident = opened["incident"]["id"]
    finally:
        await stop(daemon)
    code, out = await audited_cli(s, marker, "ack", ident, "--note", "overnight", "--by", "carol")
    assert code == 0 and "no daemon running" in out, out
    assert stored(s.dir / "cryptomon.sqlite3", ident)[:2] == ("acknowledged", "carol")

    events2 = s.dir / "events2.jsonl"
    daemon = await start_daemon(s, events2)
    try:
        ack = await wait_event(events2, lambda e: e["event"] == "acknowledged", 20, "announced ack")
        assert ack["incident"]["id"] == ident and ack["actor"] == "carol"
        await snapshot(s)
    finally:
        await stop(daemon)
    assert len([e for e in read_events(events2) if e["event"] == "acknowledged"]) == 1
    assert stored(s.dir / "cryptomon.sqlite3", ident)[2] == 1  # the command stays, marked done
