"""Issue 13, against the real ``cryptomon daemon`` process: hostile time values from exchanges, the control
API and the CLI never break the snapshot, /metrics or ``status``, and bans are honoured within a bounded pause.

Each exchange here is a Binance adapter pointed at ``tests.fakes.hostile_server`` with one hostile answer
(``/m/<mode>/...``); ``canary`` is a healthy generic target on the same server whose probes must stay on
schedule throughout.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonClient, DaemonError
from cryptomon_tui.kernel.units import MAX_EXCHANGE_WAIT_S, parse_iso_utc
from tests.fakes.daemon_harness import CRYPTOMON, REAL_DAEMON_COMMAND, daemon_process, free_port
from tests.fakes.hostile_server import HostileServer

pytestmark = pytest.mark.slow

MODES = {
    "ra": "retry_after:1e12",  # made every snapshot fail: "year 33715 is out of range"
    "b16": "ban_until:1234567890123456",  # ValueError, logged as internal error, the ban ignored
    "b2286": "ban_until:9999999999999",  # paused 260 years
    "bpast": "ban_past",  # incident resolved while probing stayed paused
}


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _write_config(path: Path, server_url: str, port: int, socket_path: Path, store: Path) -> None:
    exchanges: dict[str, Any] = {
        name: {"kind": "binance_spot", "base_url": f"{server_url}/m/{mode}", "interval": "200ms", "timeout": "1s",
               "budget_share": 0.5, "probes": ["time"]}
        for name, mode in MODES.items()
    }
    exchanges["canary"] = {"url": f"{server_url}/ok", "interval": "1s", "timeout": "1s"}
    path.write_text(yaml.safe_dump({
        "exchanges": exchanges,
        "storage": {"path": str(store)},
        "daemon": {"http": {"port": port}, "control": {"socket_path": str(socket_path)}},
    }))


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[HostileServer, Path, Path, str, Path]]:
    sock_dir = Path(tempfile.mkdtemp(prefix="cmh-", dir="/tmp"))
    server = HostileServer()
    with server.running():
        port = free_port()
        config = tmp_path / "hostile.yaml"
        _write_config(config, server.url, port, sock_dir / "d.sock", tmp_path / "store.sqlite3")
        yield server, config, sock_dir / "d.sock", f"http://127.0.0.1:{port}", tmp_path / "probes.jsonl"
    shutil.rmtree(sock_dir, ignore_errors=True)


def _status(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CRYPTOMON, "status", "--config", str(config)], capture_output=True, text=True,
                          timeout=30, env={**os.environ})


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_hostile_times_from_exchanges_leave_every_face_working(
    setup: tuple[HostileServer, Path, Path, str, Path],
) -> None:
    server, config, _sock, url, probes = setup
    with daemon_process(config, url, ["--probes-jsonl", str(probes)], command=REAL_DAEMON_COMMAND,
                        ready_path="/readyz"):
        assert _wait(lambda: all(server.by_mode.get(m) for m in MODES.values()), 10)

        def incident_for(name: str) -> dict[str, Any] | None:
            code, body = _get(url + "/api/v1/snapshot")
            assert code == 200, body[:300]
            snap = json.loads(body)
            return next((i for i in snap["incidents"] if i["exchange"] == name and i["state"] != "resolved"), None)

        # An incident opens for the far-future Retry-After and says the exchange asked for longer.
        assert _wait(lambda: incident_for("ra") is not None, 15), "no incident for Retry-After: 1e12"
        ra_incident = incident_for("ra") or {}
        assert "capped" in str(ra_incident.get("last_error")) + str(ra_incident.get("summary")), ra_incident
        code, body = _get(url + "/api/v1/snapshot")
        assert code == 200
        snap = json.loads(body)
        now = time.time()
        exchanges = snap["exchanges"]
        for name in ("ra", "b2286"):
            until = parse_iso_utc(exchanges[name]["backoff"]["paused_until"])
            assert now < until <= now + MAX_EXCHANGE_WAIT_S + 5, (name, exchanges[name]["backoff"])
            assert "capped" in (exchanges[name]["last_error_message"] or ""), exchanges[name]
        # The 16-digit ban: honoured (our own 10-minute ban backoff), not an internal error.
        assert exchanges["b16"]["backoff"]["paused"] is True
        assert exchanges["b16"]["last_error_code"] != "cryptomon_internal"
        assert server.by_mode[MODES["b16"]] == 1
        # A ban that already ended: probing goes on (and says so again while the exchange still answers 418).
        assert _wait(lambda: server.by_mode.get("ban_past", 0) >= 2, 10)
        assert exchanges["canary"]["status"] == "ok"

        code, text = _get(url + "/metrics")
        assert code == 200 and b"cryptomon_exchange_status" in text
        result = _status(config)
        assert result.returncode in (0, 1), result.stderr  # 1 = problems shown; 4 was "snapshot failed"
        assert "Traceback" not in result.stderr
        code, body = _get(url + "/healthz")
        assert code == 200, body

    # Classified and logged once per exchange and kind of value; never an internal error, never a traceback.
    log = config.with_suffix(".log").read_text(errors="replace")
    assert log.count("b16 sent an unusable time value") == 1, log[-3000:]
    assert "Traceback" not in log and "internal error" not in log and "cryptomon_internal" not in log
    # The healthy target's probes kept their 1 s schedule throughout.
    rows = [json.loads(line) for line in probes.read_text().splitlines() if line]
    rows = [r for r in rows if r.get("kind") != "stream"]  # probe results only (stream verdicts ride along)
    times = [r["ts"] for r in rows if r["exchange"] == "canary"]
    stamps = sorted(parse_iso_utc(t) if isinstance(t, str) else float(t) for t in times)
    assert len(stamps) >= 3
    assert max(b - a for a, b in itertools.pairwise(stamps)) < 2.5


async def test_control_api_silence_with_a_huge_duration_is_refused_and_not_saved(
    setup: tuple[HostileServer, Path, Path, str, Path],
) -> None:
    _server, config, sock, url, _probes = setup
    address = DaemonAddress(socket_path=sock)
    for _ in range(2):  # the second start is the restart that once kept the breakage
        with daemon_process(config, url, command=REAL_DAEMON_COMMAND, ready_path="/readyz"):
            async with DaemonClient(address) as client:
                for bad in (1e308, 1e12, 91 * 86400.0):
                    with pytest.raises(DaemonError) as info:
                        await client.silence([{"name": "exchange", "value": "ra"}], bad, "hostile")
                    assert "internal" not in str(info.value).lower()
                snap = await client.request("snapshot")
                assert snap["silences"] == []
            code, _ = _get(url + "/api/v1/snapshot")
            assert code == 200


@pytest.mark.parametrize("value", ["inf", "nan", "1e12", "1e300", "-5m", "0"])
def test_cli_silence_for_hostile_lengths_exits_2(value: str, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"storage": {"path": str(tmp_path / "s.sqlite3")},
                                      "daemon": {"control": {"socket_path": str(tmp_path / "none.sock")}}}))
    result = subprocess.run(
        [*CRYPTOMON, "silence", "--exchange", "binance", f"--for={value}", "--comment", "x", "--config", str(config)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "--for" in result.stderr


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("exchanges:\n  binance:\n    interval: .inf\n", "exchanges.binance.interval"),
        ("exchanges:\n  binance:\n    interval: inf\n", "exchanges.binance.interval"),
        ("exchanges:\n  binance:\n    interval: '1e400'\n", "exchanges.binance.interval"),
        ("exchanges:\n  binance:\n    interval: nan\n", "exchanges.binance.interval"),
        ("exchanges:\n  binance:\n    interval: .nan\n", "exchanges.binance.interval"),
        ("exchanges:\n  binance:\n    interval: 1e9\n", "exchanges.binance.interval"),
        ("detection:\n  evaluate_every: 0\n", "detection.evaluate_every"),
        ("daemon:\n  reload:\n    interval: 0\n", "daemon.reload.interval"),
        ("exchanges:\n  binance:\n    credentials:\n      api_key: ''\n      api_secret: x\n",
         "exchanges.binance.credentials.api_key"),
        ("probing:\n  budget_share: .nan\n", "probing.budget_share"),
    ],
)
def test_daemon_and_config_check_refuse_infinite_and_nan_values(yaml_text: str, key: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    for command in ([*CRYPTOMON, "config", "check"], [*REAL_DAEMON_COMMAND]):
        result = subprocess.run([*command, "--config", str(config)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert key in result.stderr and str(config) in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_daemon_for_nan_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    result = subprocess.run([*REAL_DAEMON_COMMAND, "--config", str(config), "--for", "nan"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "--for" in result.stderr and "Traceback" not in result.stderr


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.parametrize("bomb", ["lol", "deep", "dup"])
def test_a_reload_with_a_yaml_bomb_keeps_the_running_config(bomb: str, tmp_path: Path) -> None:
    from tests.unit.test_config_hostile import LOL

    sock_dir = Path(tempfile.mkdtemp(prefix="cmb-", dir="/tmp"))
    port = free_port()
    config = tmp_path / "c.yaml"
    good = {"exchanges": {"canary": {"url": "http://127.0.0.1:9/ok", "interval": "1s"}},
            "storage": {"path": str(tmp_path / "s.sqlite3")},
            "daemon": {"location": "before", "http": {"port": port},
                       "control": {"socket_path": str(sock_dir / "d.sock")}, "reload": {"interval": "200ms"}}}
    config.write_text(yaml.safe_dump(good))
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    try:
        with daemon_process(config, url, command=REAL_DAEMON_COMMAND, ready_path="/readyz", log_path=log) as proc:
            text = {"lol": LOL, "deep": "x: " + "[" * 20_000 + "]" * 20_000 + "\n",
                    "dup": yaml.safe_dump(good).replace("location: before", "location: before\n  location: after")}
            config.write_text(text[bomb])
            assert _wait(lambda: "refused" in log.read_text(errors="replace"), 15), log.read_text()[-2000:]
            assert proc.poll() is None
            assert _rss_mb(proc.pid) < 400
            code, body = _get(url + "/api/v1/snapshot")
            assert code == 200 and json.loads(body)["location"] == "before"
            assert "Traceback" not in log.read_text(errors="replace")
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def test_the_daemon_warns_at_start_about_a_readable_file_with_a_token(tmp_path: Path) -> None:
    sock_dir = Path(tempfile.mkdtemp(prefix="cmw-", dir="/tmp"))
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "exchanges": {"bot": {"url": "http://127.0.0.1:9/health?token=literal-token-123",
                              "headers": {"X-Custom-Auth": "literal-header-456"}}},
        "storage": {"path": str(tmp_path / "s.sqlite3")},
        "daemon": {"http": {"port": port}, "control": {"socket_path": str(sock_dir / "d.sock")}},
    }))
    os.chmod(config, 0o644)
    log = tmp_path / "daemon.log"
    try:
        with daemon_process(config, f"http://127.0.0.1:{port}", command=REAL_DAEMON_COMMAND, ready_path="/readyz",
                            log_path=log):
            pass
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
    text = log.read_text(errors="replace")
    assert "readable by other users" in text and "exchanges.bot.headers.X-Custom-Auth" in text, text[-2000:]
    assert "literal-header-456" not in text and "literal-token-123" not in text
    shown = subprocess.run([*CRYPTOMON, "config", "show", "--config", str(config)], capture_output=True, text=True,
                           timeout=30)
    assert shown.returncode == 0
    assert "literal-header-456" not in shown.stdout and "literal-token-123" not in shown.stdout
