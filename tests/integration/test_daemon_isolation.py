"""Issue 13 item 5, against daemon processes: other local users and hostile local clients.

- the runtime folder must be the daemon user's own with mode 0700 (``cryptomon daemon`` refuses otherwise);
- clients check who serves the socket (SO_PEERCRED) before saying anything to it;
- TCP control: idle connections cannot exhaust the daemon's fds, the client limit holds under a
  concurrent rush, wrong tokens are logged at a bounded rate, the version is not told before auth;
- HTTP: the Host header is checked (DNS rebinding), /api/v1/snapshot can require a bearer token.

Every test runs the real ``cryptomon daemon`` process (or the real ``cryptomon status`` against an impostor).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cryptomon_tui import __version__
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from tests.fakes.daemon_harness import CRYPTOMON, REAL_DAEMON_COMMAND, REPO, daemon_process, free_port

pytestmark = pytest.mark.slow

TOKEN = "tok-" + "s3cr3t" * 4
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="impersonating another user needs root (setuid)")


def _until(predicate: object, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {within_s:g}s")


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- the runtime folder ---------------------------------------------------------------------------


def _start_daemon_cli(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRYPTOMON, "daemon", "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=30,
        env={**os.environ, **env}, stdin=subprocess.DEVNULL,
    )


def _minimal_config(path: Path, socket_path: Path, store: Path) -> None:
    path.write_text(yaml.safe_dump({
        "exchanges": {"binance": {"base_url": "http://127.0.0.1:9", "interval": "5s"}},
        "storage": {"path": str(store)},
        "daemon": {"http": {"port": free_port()}, "control": {"socket_path": str(socket_path)}},
    }))


@needs_root
def test_daemon_refuses_a_runtime_folder_owned_by_another_user(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir(mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    config = short_tmp / "c.yaml"
    _minimal_config(config, run / "d.sock", short_tmp / "s.sqlite3")
    done = _start_daemon_cli(config, {})
    assert done.returncode == 1, done.stderr
    assert f"owned by uid {NOBODY}" in done.stderr and "impersonate" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (run / "d.sock").exists()


def test_daemon_refuses_a_runtime_folder_others_can_enter(short_tmp: Path) -> None:
    run = short_tmp / "run"
    run.mkdir()
    run.chmod(0o755)
    config = short_tmp / "c.yaml"
    _minimal_config(config, run / "d.sock", short_tmp / "s.sqlite3")
    done = _start_daemon_cli(config, {})
    assert done.returncode == 1, done.stderr
    assert "mode 0755" in done.stderr and "chmod 700" in done.stderr


_FAKE_DAEMON = """
import json, os, socket, sys
path, log = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(8)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    data = b""
    try:  # a client that hangs up first (it checked who we are and left) must not end the impostor
        conn.sendall(json.dumps({"type": "welcome", "protocol": PROTOCOL, "server": "cryptomon/evil",
                                 "location": "evil", "pid": 1}).encode() + b"\\n")
        conn.settimeout(2.0)
        data = conn.recv(65536)
    except OSError:
        pass
    with open(log, "ab") as f:
        f.write(data)
    conn.close()
""".replace("PROTOCOL", str(PROTOCOL_VERSION))


@needs_root
def test_status_refuses_a_socket_served_by_another_user(short_tmp: Path) -> None:
    """The attack from the issue: another user owns the runtime folder and serves a fake socket there."""
    short_tmp.chmod(0o711)
    home = short_tmp / "home"
    home.mkdir()
    home.chmod(0o711)  # the other user can reach ``run`` inside (as with /tmp)
    run = home / "run"
    run.mkdir(mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    heard = short_tmp / "heard.bin"
    heard.touch()
    os.chown(heard, NOBODY, NOBODY)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one the other user may run
    fake = subprocess.Popen(
        [python, "-c", _FAKE_DAEMON, str(run / "cryptomon.sock"), str(heard)],
        user=NOBODY, group=NOBODY, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd="/",
    )
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == b"listening"
        env = {**os.environ, "CRYPTOMON_HOME": str(home)}
        env.pop("CRYPTOMON_CONFIG", None)
        done = subprocess.run([*CRYPTOMON, "status"], cwd=REPO, capture_output=True, text=True, timeout=30,
                              env=env, stdin=subprocess.DEVNULL)
        assert done.returncode != 0
        out = done.stdout + done.stderr
        assert f"uid {NOBODY}" in out and "impersonat" in out, out
        assert "OK" not in done.stdout
    finally:
        fake.kill()
        fake.wait(5)
    assert heard.read_bytes() == b"", "the client must not send anything (a hello, a token) to an impostor"


# -- TCP control ----------------------------------------------------------------------------------


@pytest.fixture
def tcp_daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str, Path]]:
    http_port, control_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        # nothing listens on port 9: probes fail fast on loopback, which is all this test needs
        "exchanges": {"binance": {"base_url": "http://127.0.0.1:9", "interval": "5s"}},
        "storage": {"path": str(tmp_path / "iso.sqlite3")},
        "daemon": {
            "location": "iso",
            "http": {"port": http_port, "allowed_hosts": ["monitor.internal"], "snapshot_token": TOKEN + "-http"},
            "control": {"transport": "tcp", "port": control_port, "token": TOKEN, "max_clients": 4,
                        "max_pending_handshakes": 16},
        },
    }))
    url = f"http://127.0.0.1:{http_port}"
    with daemon_process(config, url, command=REAL_DAEMON_COMMAND) as proc:
        yield proc, control_port, url, config.with_suffix(".log")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _closed(sock: socket.socket) -> bool:
    """True once the daemon closed ``sock`` (a goodbye frame before the EOF is read and dropped)."""
    poller = select.poll()  # not select.select: the test holds ~1,000 sockets, past FD_SETSIZE in a full run
    poller.register(sock, select.POLLIN)
    while True:
        if not poller.poll(0):
            return False
        try:
            if sock.recv(65536) == b"":
                return True
        except OSError:
            return True


def _hello(port: int, token: str | None, protocol: int = PROTOCOL_VERSION) -> dict[str, object]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(json.dumps({"type": "hello", "protocol": protocol, "client": "t", "token": token}).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    return dict(json.loads(buf.split(b"\n", 1)[0]))


def test_idle_connections_cannot_exhaust_fds(tcp_daemon: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    proc, port, _url, log_path = tcp_daemon
    baseline = _fds(proc.pid)
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(1000)]
    try:
        # The daemon drops the oldest pending handshakes beyond 16: 984 see EOF, 16 wait for the timeout.
        _until(lambda: sum(_closed(s) for s in idle) >= 1000 - 16, 30, "oldest idle connections dropped")
        assert _fds(proc.pid) <= baseline + 16 + 8
        # A real client still gets in while the rest are idle.
        assert _hello(port, TOKEN)["type"] == "welcome"
        # ... and the handshake timeout ends the remaining idle ones.
        _until(lambda: all(_closed(s) for s in idle), 20, "handshake timeout")
        dropped = [line for line in log_path.read_text().splitlines() if "had not said hello" in line]
        assert 1 <= len(dropped) <= 2, dropped  # 984 drops, one log line (then one a minute at most)
    finally:
        for s in idle:
            s.close()


def test_client_limit_holds_under_a_concurrent_rush(
    tcp_daemon: tuple[subprocess.Popen[bytes], int, str, Path],
) -> None:
    _proc, port, _url, _log = tcp_daemon
    hello = json.dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "client": "rush", "token": TOKEN}).encode()
    conns = [socket.create_connection(("127.0.0.1", port), timeout=15) for _ in range(200)]
    try:
        for s in conns:  # all hellos are in before the daemon answers the first
            s.sendall(hello + b"\n")
        answers = []
        for s in conns:
            buf = b""
            try:
                while b"\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            except ConnectionResetError:  # dropped as one of too many pending handshakes
                buf = b""
            answers.append(json.loads(buf.split(b"\n", 1)[0]).get("message", "welcome") if buf else "closed")
        assert answers.count("welcome") == 4, {a: answers.count(a) for a in set(answers)}
    finally:
        for s in conns:
            s.close()


def test_auth_failures_are_not_told_the_version_and_logged_at_a_bounded_rate(
    tcp_daemon: tuple[subprocess.Popen[bytes], int, str, Path],
) -> None:
    _proc, port, _url, log_path = tcp_daemon
    for i in range(60):
        answer = _hello(port, f"wrong-token-{i:04d}", protocol=PROTOCOL_VERSION + 7)
        assert answer["type"] == "error" and answer["code"] == "auth_failed", answer
        assert __version__ not in json.dumps(answer)
    answer = _hello(port, None, protocol=PROTOCOL_VERSION + 7)
    assert answer["code"] == "auth_failed" and __version__ not in json.dumps(answer)
    # Authenticated, the version mismatch is explained (with the version).
    assert _hello(port, TOKEN, protocol=PROTOCOL_VERSION + 7)["code"] == "version_mismatch"
    _until(lambda: "refused" in log_path.read_text(), 5, "the first refusal logged")
    lines = [line for line in log_path.read_text().splitlines() if "without a valid token" in line]
    assert 1 <= len(lines) <= 2, lines


# -- HTTP -----------------------------------------------------------------------------------------


def _get(url: str, headers: dict[str, str]) -> int:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_http_checks_host_and_snapshot_token(tcp_daemon: tuple[subprocess.Popen[bytes], int, str, Path]) -> None:
    _proc, _port, url, _log = tcp_daemon
    port = url.rsplit(":", 1)[1]
    # DNS rebinding: a page on attacker.example resolved to 127.0.0.1 sends its own name.
    for host in ("attacker.example", f"attacker.example:{port}", "127.0.0.1.nip.io", "localhost.evil"):
        assert _get(url + "/metrics", {"Host": host}) == 421, host
        assert _get(url + "/api/v1/snapshot", {"Host": host, "Authorization": f"Bearer {TOKEN}-http"}) == 421
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "monitor.internal", "LOCALHOST",
                 f"10.1.2.3:{port}"):  # an IP literal cannot come from a rebinding page (a container scraped by IP)
        assert _get(url + "/metrics", {"Host": host}) == 200, host
    assert _get(url + "/api/v1/snapshot", {}) == 401
    assert _get(url + "/api/v1/snapshot", {"Authorization": "Bearer nope"}) == 401
    assert _get(url + "/api/v1/snapshot", {"Authorization": f"Bearer {TOKEN}-http"}) == 200
