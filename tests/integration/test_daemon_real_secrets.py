"""Acceptance (issue 6) against the real ``cryptomon daemon``: the TCP control API refuses a missing or wrong
token, and no endpoint returns a configured secret.

The daemon holds every kind of secret (exchange keys, a webhook URL whose path is the credential, an HMAC
key, auth headers, a Telegram bot token, an Alertmanager password, an LLM API key, the control token), and
every outside service it talks to is a hostile echo server that answers 400 with the request's path and
headers in the body, so the secrets come back into the daemon's error messages. Then every control frame
(snapshot, events, each command's reply and error), every HTTP endpoint, the --probes/--events JSONL files
and the daemon's log at debug level are grepped for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import AuthFailed, DaemonClient
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from tests.fakes.daemon_harness import free_port, real_daemon
from tests.fakes.prom_stack import get_json

pytestmark = pytest.mark.slow

BINANCE_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
BINANCE_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
OKX_KEY = "okx-key-5f0c1e2d-77aa-4b1b"
OKX_SECRET = "okx-secret-9D3C2B1A0F9E8D7C"
OKX_PASSPHRASE = "okx-passphrase-771xq"
WEBHOOK_PATH_TOKEN = "whk-path-token-8Hq2LmN4pR6sT"
WEBHOOK_HMAC = "whk-hmac-key-Zx81Yw72Vu63"
WEBHOOK_BEARER = "whk-bearer-Ab12Cd34Ef56Gh78"
TELEGRAM_TOKEN = "123456789:AAH-telegram-bot-token-xyz987"
AM_PASSWORD = "am-basic-password-Qp0Wo9Ei8"
LLM_KEY = "sk-llm-key-from-env-4e5f6a7b8c9d"
CONTROL_TOKEN = "ctl-token-0123456789abcdef-real"
SECRETS = (
    BINANCE_KEY, BINANCE_SECRET, OKX_KEY, OKX_SECRET, OKX_PASSPHRASE, WEBHOOK_PATH_TOKEN, WEBHOOK_HMAC,
    WEBHOOK_BEARER, TELEGRAM_TOKEN, AM_PASSWORD, LLM_KEY, CONTROL_TOKEN,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmx-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class EchoAll(BaseHTTPRequestHandler):
    """A hostile service: 400 with everything it was sent (path, headers, body) in the answer."""

    seen: list[str] = []

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        EchoAll.seen.append(self.path)
        text = json.dumps(
            {"error": {"message": f"rejected {self.command} {self.path} headers={dict(self.headers)} body={body}",
                       "type": "invalid_request_error"}}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = _echo

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def echo_server() -> Iterator[str]:
    EchoAll.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoAll)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def secret_config(echo: str, control_port: int) -> dict[str, Any]:
    return {
        "exchanges": {
            "binance": {"probes": ["time", "ticker", "account"],
                        "credentials": {"api_key": BINANCE_KEY, "api_secret": BINANCE_SECRET}},
            "okx": {"probes": ["time", "ticker", "account"],
                    "credentials": {"api_key": OKX_KEY, "api_secret": OKX_SECRET, "passphrase": OKX_PASSPHRASE}},
        },
        "notify": {
            "channels": {
                "hook": {"type": "webhook", "url": f"{echo}/hook/{WEBHOOK_PATH_TOKEN}", "secret": WEBHOOK_HMAC,
                         "headers": {"Authorization": f"Bearer {WEBHOOK_BEARER}"}},
                "tg": {"type": "telegram", "token": TELEGRAM_TOKEN, "chat_id": 42, "api_url": echo},
                "am": {"type": "alertmanager", "url": echo, "username": "cm", "password": AM_PASSWORD},
            },
            "routes": [{"channels": ["hook", "tg", "am"], "group_wait": "0s", "group_interval": "1s"}],
            "backoff_base": "200ms",
            "backoff_cap": "1s",
        },
        "analysis": {
            "llm": {"base_url": f"{echo}/v1", "api_key": "${CRYPTOMON_TEST_LLM_KEY}", "timeout": "3s",
                    "max_retries": 0},
            "auto_analyze": {"enabled": True, "min_severity": "warning"},
        },
        "daemon": {"control": {"transport": "tcp", "host": "127.0.0.1", "port": control_port,
                               "token": CONTROL_TOKEN}},
    }


def http_body(url: str) -> bytes:
    """The body of any answer, error statuses included (a 404 page is a response to grep too)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return f"{exc.code} ".encode() + exc.read()


class RawControl:
    """The wire protocol by hand, keeping every byte the daemon sent."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.raw = b""
        self.ids = iter(range(1, 1_000_000))
        self.pushes: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, port: int, token: str | None) -> tuple[RawControl, dict[str, Any]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=64 << 20)
        hello: dict[str, Any] = {"type": "hello", "protocol": PROTOCOL_VERSION, "client": "grep"}
        if token is not None:
            hello["token"] = token
        writer.write(json.dumps(hello).encode() + b"\n")
        await writer.drain()
        self = cls(reader, writer)
        first = await asyncio.wait_for(reader.readline(), 5)
        self.raw += first
        return self, json.loads(first)

    async def call(self, method: str, params: dict[str, Any] | None = None, wait_s: float = 20.0) -> dict[str, Any]:
        rid = next(self.ids)
        frame = {"type": "request", "id": rid, "method": method, "params": params or {}}
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()
        async with asyncio.timeout(wait_s):
            while True:
                line = await self.reader.readline()
                assert line, f"the daemon closed the connection during {method}"
                self.raw += line
                msg = json.loads(line)
                if msg.get("type") == "response" and msg.get("id") == rid:
                    return dict(msg)
                self.pushes.append(msg)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def test_tcp_token_required_and_no_endpoint_returns_a_secret(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOMON_TEST_LLM_KEY", LLM_KEY)  # a secret from the environment, as documented
    control_port = free_port()
    with echo_server() as echo, real_daemon(
        tmp_path, short_dir, extra=secret_config(echo, control_port), extra_args=["--log-level", "debug"]
    ) as daemon:
        # -- the token --
        for token in (None, "", "wrong-token-0123456789abcdef", CONTROL_TOKEN[:-1]):
            conn, first = await RawControl.connect(control_port, token)
            assert first["type"] == "error" and first["code"] == "auth_failed", first
            assert await asyncio.wait_for(conn.reader.read(), 5) == b""  # and hung up
            await conn.close()
        for token in (None, "wrong-token-0123456789abcdef"):
            client = DaemonClient(DaemonAddress(host="127.0.0.1", port=control_port, token=token), reconnect=False)
            with pytest.raises(AuthFailed):
                await client.connect()
            await client.close()

        # -- every command, reply and error, with the right token --
        conn, welcome = await RawControl.connect(control_port, CONTROL_TOKEN)
        assert welcome["type"] == "welcome"
        await conn.call("subscribe", {"snapshot_hz": 4, "events": True})

        async def binance_incident() -> dict[str, Any] | None:
            snap = (await conn.call("snapshot"))["result"]
            return next((i for i in snap["incidents"] if i["exchange"] == "binance" and i["state"] == "firing"), None)

        deadline = time.monotonic() + 20
        while (incident := await binance_incident()) is None:
            assert time.monotonic() < deadline, "no binance incident"
            await asyncio.sleep(0.2)

        replies: dict[str, dict[str, Any]] = {}
        for name, method, params in [
            ("ping", "ping", {}),
            ("health", "health", {}),
            ("summary", "summary", {}),
            ("reload", "reload", {}),
            ("ack", "ack", {"incident_id": incident["id"], "note": f"key {BINANCE_KEY} looked wrong"}),
            ("analyze", "analyze", {"incident_id": incident["id"], "force": True}),
            ("analyze_offline", "analyze", {"incident_id": incident["id"], "offline": True}),
            ("silence", "silence", {"matchers": [{"name": "exchange", "value": "okx"}],
                                    "comment": f"secret {BINANCE_SECRET}", "duration_s": 60}),
            ("unsilence_missing", "unsilence", {"silence_id": f"sil-{OKX_PASSPHRASE}"}),
            ("pause", "pause", {"exchange": "okx"}),
            ("resume", "resume", {"exchange": "okx"}),
            ("ack_missing", "ack", {"incident_id": f"no-such-{CONTROL_TOKEN}"}),
            ("pause_missing", "pause", {"exchange": TELEGRAM_TOKEN}),
            ("nonsense", "nonsense", {}),
        ]:
            replies[name] = await conn.call(method, params)
        assert replies["ping"]["ok"] and replies["ack"]["ok"] and replies["silence"]["ok"]
        assert replies["analyze"]["ok"], replies["analyze"]
        assert not replies["ack_missing"]["ok"] and not replies["nonsense"]["ok"]
        assert not replies["unsilence_missing"]["ok"] and not replies["pause_missing"]["ok"]
        silence_id = replies["silence"]["result"]["silence"]["id"]
        replies["unsilence"] = await conn.call("unsilence", {"silence_id": silence_id})
        assert replies["unsilence"]["ok"]

        # The hostile services got the secrets (so they echoed them back) before we look.
        def everyone_called() -> bool:
            paths = " ".join(EchoAll.seen)
            return all(p in paths for p in ("/hook/", "/bot", "/api/v2/alerts", "/v1/chat/completions"))

        deadline = time.monotonic() + 20
        while not everyone_called():
            assert time.monotonic() < deadline, f"not every outside service was called: {EchoAll.seen}"
            await asyncio.sleep(0.1)

        async def channel_errors_seen() -> bool:
            notify = (await conn.call("snapshot"))["result"]["notify"]
            return sum(1 for ch in notify if ch.get("last_error")) >= 3

        deadline = time.monotonic() + 20
        while not await channel_errors_seen():
            assert time.monotonic() < deadline, "the channels' errors never reached the snapshot"
            await asyncio.sleep(0.2)
        snapshot_reply = await conn.call("snapshot")
        await conn.call("health")
        events = [p for p in conn.pushes if p.get("type") == "event"]
        await conn.close()
        assert {"opened", "acknowledged"} <= {e["data"]["event"] for e in events}, events
        assert any(ch.get("last_error") for ch in snapshot_reply["result"]["notify"])
        assert "***" in conn.raw.decode()  # the secrets were there and were masked

        # -- HTTP --
        bodies = b""
        for path in ("/", "/metrics", "/healthz", "/readyz", "/api/v1/snapshot", "/nope"):
            bodies += await asyncio.to_thread(http_body, daemon.http_url + path)
        assert b"probe_success" in bodies
        assert get_json(daemon.http_url + "/api/v1/snapshot")["location"] == "lab"

        # -- the shutdown command's reply, then the log of the whole run --
        conn, _ = await RawControl.connect(control_port, CONTROL_TOKEN)
        bye = await conn.call("shutdown")
        assert bye["ok"] is True
        with contextlib.suppress(Exception):
            conn.raw += await asyncio.wait_for(conn.reader.read(), 10)
        await conn.close()
        rc = await asyncio.to_thread(daemon.proc.wait, 20)  # it stops by itself
        assert rc == 0

    everything = {
        "control frames": conn.raw.decode() + json.dumps(replies) + json.dumps(snapshot_reply),
        "http": bodies.decode(errors="replace"),
        "log": daemon.log_path.read_text(errors="replace"),
        "probes.jsonl": daemon.probes_path.read_text(),
        "events.jsonl": daemon.events_path.read_text(),
    }
    assert "DEBUG" in everything["log"] and "rejected" in everything["log"] + everything["control frames"]
    for where, text in everything.items():
        for secret in SECRETS:
            assert secret not in text, f"{where} contains a configured secret ({secret[:6]}...)"
    # the webhook URL is masked as a whole; its credential path must not leak through a shortened form either
    for where, text in everything.items():
        assert f"/hook/{WEBHOOK_PATH_TOKEN[:12]}" not in text, where
