"""No control-API frame and no HTTP response ever carries a configured secret, even one the engine leaked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import yaml

from cryptomon_tui.clock import RealClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonClient
from cryptomon_tui.daemon.protocol import PROTOCOL_VERSION
from cryptomon_tui.daemon.runner import DaemonRunner
from tests.fakes.fake_engine import FakeEngine

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
PASSPHRASE = "okx-passphrase-771"
TOKEN = "ctl-token-0123456789abcdef"
SECRETS = (API_KEY, API_SECRET, PASSPHRASE, TOKEN)


async def test_no_endpoint_or_command_returns_a_secret() -> None:
    config = config_from_data(
        {
            "exchanges": {
                "binance": {"credentials": {"api_key": API_KEY, "api_secret": API_SECRET}},
                "okx": {"credentials": {"api_key": "okx-key-123456", "api_secret": "okx-secret-123456",
                                        "passphrase": PASSPHRASE}},
            },
            "daemon": {"location": "tokyo", "control": {"transport": "tcp", "port": 0, "token": TOKEN},
                       "http": {"port": 0}},
        }
    )
    clock = RealClock()
    engine = FakeEngine(clock, location="tokyo")
    # An engine bug that copies secrets into its state must still not leak.
    incident = engine.open_incident(summary=f"401 for key {API_KEY}")
    engine.set_probe("binance", "book", last={**engine.exchanges["binance"]["probes"]["book"]["last"],
                                              "error_message": f"bad signature for secret {API_SECRET}"})
    engine.notify[0]["last_error"] = f"webhook said passphrase {PASSPHRASE} wrong"
    runner = DaemonRunner(engine, config, clock, handle_stop_signals=False)
    await runner.start()
    try:
        address = runner.control.address
        reader, writer = await asyncio.open_connection(address.host, address.port)
        frames = [
            {"type": "hello", "protocol": PROTOCOL_VERSION, "client": "grep", "token": TOKEN},
            {"type": "request", "id": 1, "method": "subscribe", "params": {"snapshot_hz": 4, "events": True}},
        ]
        calls = [
            ("ping", {}), ("snapshot", {}), ("health", {}), ("summary", {}), ("reload", {}),
            ("ack", {"incident_id": incident.id, "note": f"see {API_KEY}"}),
            ("analyze", {"incident_id": incident.id}),
            ("silence", {"matchers": [{"name": "exchange", "value": "binance"}], "comment": f"key {API_SECRET}"}),
            ("unsilence", {"silence_id": "sil-nope"}),
            ("pause", {"exchange": "okx"}), ("resume", {"exchange": "okx"}),
            ("ack", {"incident_id": f"no-such-{TOKEN}"}),  # the error echoes the id: must be masked
            ("nonsense", {}),
        ]
        frames += [{"type": "request", "id": i + 2, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        for f in frames:
            writer.write(json.dumps(f).encode() + b"\n")
        await writer.drain()
        raw = b""
        ids: set[int] = set()
        while len(ids) < len(calls) + 1:
            line = await asyncio.wait_for(reader.readline(), 3.0)
            raw += line
            msg = json.loads(line)
            if msg["type"] == "response":
                ids.add(msg["id"])
        engine.open_incident(summary=f"second {API_SECRET}")  # an event after subscribing
        raw += await asyncio.wait_for(reader.readline(), 3.0)
        writer.close()
        assert b'"type":"event"' in raw and b'"type":"response"' in raw
        assert b"***" in raw  # the leaks were there and were masked

        assert runner.http is not None
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/metrics", "/healthz", "/readyz", "/api/v1/snapshot", "/nope"):
                async with session.get(runner.http.url + path) as resp:
                    raw += await resp.read()
        text = raw.decode()
        for secret in SECRETS:
            assert secret not in text
    finally:
        await runner.stop()


async def test_a_secret_added_by_a_control_api_reload_is_masked_too(tmp_path: Path) -> None:
    """`reload` over the control API goes through the daemon's reload, not the engine's alone: a credential the
    new file adds is masked in the frames from then on (it leaked while only file changes and SIGHUP did that)."""
    new_secret = "Zq8rT3vL0pW6nY2kD9sF4hJ7gB1cX5mA"
    path = tmp_path / "config.yaml"
    base = {"daemon": {"location": "tokyo", "reload": {"watch": False},
                       "control": {"transport": "tcp", "port": 0, "token": TOKEN}, "http": {"enabled": False}},
            "exchanges": {"binance": {}}}
    path.write_text(yaml.safe_dump(base))
    clock = RealClock()
    engine = FakeEngine(clock, location="tokyo")
    runner = DaemonRunner(engine, config_from_data(base), clock, config_path=path, handle_stop_signals=False)
    await runner.start()
    try:
        address = runner.control.address
        async with DaemonClient(DaemonAddress(host=address.host, port=address.port, token=TOKEN),
                                reconnect=False) as client:
            base["exchanges"] = {"binance": {"credentials": {"api_key": new_secret, "api_secret": API_SECRET}}}
            path.write_text(yaml.safe_dump(base))
            reply = await client.request("reload")
            assert isinstance(reply, dict) and reply["ok"] is True
            engine.notify[0]["last_error"] = f"401 for key {new_secret}"  # an engine that leaks the new key
            engine.changed()
            raw = json.dumps(await client.request("snapshot"))
        assert "401 for key" in raw and new_secret not in raw
    finally:
        await runner.stop()
