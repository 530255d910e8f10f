"""Acceptance (issue 13 item 8): ``cryptomon doctor`` on the demo and on a deliberately bad setup.

The demo: ``cryptomon daemon --demo`` running, a user-only config with its secret from the environment, a
webhook channel to a local receiver (the test message must arrive), an LLM with a budget: exit 0, no FAIL.
The bad setup: a world-readable config with a literal API key, no channels, an LLM without a budget and no
daemon: exit 1 with those verdicts, each with its fix.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml

from cryptomon_tui.daemon.address import DaemonAddress
from cryptomon_tui.daemon.client import DaemonError, probe_daemon
from tests.fakes.daemon_harness import CRYPTOMON, REPO, stop_process
from tests.fakes.webhook_sink import WebhookSink

pytestmark = pytest.mark.slow


@pytest.fixture
def home() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmdr-", dir="/tmp"))  # short: the demo socket lives under it
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    s = WebhookSink()
    await s.start()
    yield s
    await s.stop()


def verdicts(out: str) -> dict[str, str]:
    found = {}
    for line in out.splitlines():
        head, _, rest = line.partition("  ")
        if head.strip() in ("PASS", "WARN", "FAIL") and ":" in rest:
            found[rest.split(":", 1)[0].strip()] = head.strip()
    return found


async def doctor(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *CRYPTOMON, "doctor", *args, cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


@pytest.mark.timeout(120)
async def test_doctor_passes_on_the_demo(home: Path, sink: WebhookSink) -> None:
    config = home / "config.yaml"
    config.write_text(yaml.safe_dump({
        "exchanges": {"binance": {}, "okx": {}},
        "notify": {"channels": {"hook": {"type": "webhook", "url": "${HOOK_URL}",
                                         "secret": "${HOOK_SECRET}"}}},
        "analysis": {"llm": {"base_url": "http://127.0.0.1:9/v1", "api_key": "${LLM_KEY}"},
                     "monthly_budget_usd": "3.00"},
    }))
    config.chmod(0o600)
    env = {**os.environ, "CRYPTOMON_HOME": str(home), "HOOK_SECRET": "hook-secret-0123456789",
           "HOOK_URL": sink.url("webhook", "/in"),
           "LLM_KEY": "sk-doctor-0123456789abcdef"}
    daemon = subprocess.Popen(  # noqa: ASYNC220 - started once, stopped by stop_process
        [*CRYPTOMON, "daemon", "--demo", "--config", str(config)], cwd=REPO, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        address = DaemonAddress(socket_path=home / "run" / "cryptomon-demo.sock")
        deadline = time.monotonic() + 30
        while True:
            try:
                await asyncio.to_thread(probe_daemon, address)
                break
            except DaemonError:
                assert daemon.poll() is None and time.monotonic() < deadline, "the demo daemon did not start"
                await asyncio.sleep(0.1)
        code, out = await doctor("--demo", "--config", str(config), env=env)
        # the bare demo (no config file, no channel): warnings only
        bare_code, bare_out = await doctor("--demo", env={**env, "CRYPTOMON_CONFIG": str(home / "none.yaml")})
    finally:
        stop_process(daemon)
    got = verdicts(out)
    assert code == 0, out
    assert "FAIL" not in got.values(), out
    for name in ("config permissions", "secrets via environment", "daemon reachable", "read-only API keys",
                 "channel hook", "LLM budget", "store disk space"):
        assert got.get(name) == "PASS", (name, out)
    assert "clock sync" in got
    bare = verdicts(bare_out)
    assert bare_code == 0, bare_out
    assert bare["notification channels"] == "WARN" and bare["daemon reachable"] == "PASS", bare_out
    tests = [r.json() for r in sink.of("webhook")]
    assert [t["kind"] for t in tests] == ["test"], tests
    assert "\x1b" not in out


@pytest.mark.timeout(60)
async def test_doctor_fails_a_bad_setup_with_fixes(home: Path) -> None:
    config = home / "config.yaml"
    config.write_text(yaml.safe_dump({
        "exchanges": {"binance": {"credentials": {"api_key": "LITERALKEY0123456789abcdef",
                                                  "api_secret": "LITERALSECRET0123456789abcdef"}}},
        "analysis": {"llm": {"base_url": "http://127.0.0.1:9/v1"}, "monthly_budget_usd": None},
        "daemon": {"location": "bad\x1b[31m"},  # hostile text in the config must not reach the terminal raw
    }))
    config.chmod(0o644)
    env = {**os.environ, "CRYPTOMON_HOME": str(home)}
    code, out = await doctor("--config", str(config), env=env)
    got = verdicts(out)
    assert code == 1, out
    assert got["config permissions"] == "FAIL" and "chmod 600" in out
    assert got["secrets via environment"] == "FAIL" and "${ENV_VAR}" in out
    assert got["notification channels"] == "FAIL"
    assert got["LLM budget"] == "FAIL" and "monthly_budget_usd" in out
    assert got["daemon reachable"] == "FAIL"
    assert "LITERALKEY" not in out and "LITERALSECRET" not in out
    assert "\x1b" not in out
    assert sys.executable  # the same interpreter ran the CLI
