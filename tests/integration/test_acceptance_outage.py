"""Acceptance (issues 3 and 5): the simulator's outage scenario through the real ``cryptomon daemon --demo``.

One real daemon process runs ``--demo=outage --for 25s --events-jsonl FILE`` with five notification
channels (generic webhook, Slack-, Discord- and WeCom-like on the local HTTP sink, e-mail to a real
aiosmtpd server). Its events are scored against the simulator's ground truth with the benchmark's
scoring (bench/bench_detect.py), and every channel must have received exactly one firing and one
resolved message per incident.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.bench_detect import ScenarioScore, plan_targets, score_events
from cryptomon_tui.config import config_from_data
from cryptomon_tui.kernel.units import parse_iso_utc
from cryptomon_tui.simulator import load_scenario
from tests.fakes.smtp_server import SmtpServer
from tests.fakes.webhook_sink import WebhookSink
from tests.integration.processes import reap

# one worker runs both tests under `make test` (xdist): they share the module's 26 s daemon run
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("acceptance_outage")]

RUN_FOR_S = 25
HTTP_CHANNELS = {"hook": "webhook", "slack": "slack", "discord": "discord", "wecom": "wecom"}
CHANNELS = [*HTTP_CHANNELS, "mail"]
INCIDENT_ID = re.compile(r"I\\?-([0-9A-F]{6})")  # Discord escapes the hyphen
STATUS = re.compile(r"\b(STILL FIRING|FIRING|RESOLVED|REOPENED|ACKNOWLEDGED|DIGEST)\b")


@dataclass
class OutageRun:
    returncode: int
    stderr: str
    events: list[dict[str, Any]]
    t0: float
    messages: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # channel -> [(status, incident id)]
    outbox: list[tuple[str, str, str, str]] = field(default_factory=list)  # (channel, kind, incident, state)


def _message_of(text: str) -> tuple[str, str]:
    status = STATUS.search(text)
    ident = INCIDENT_ID.search(text)
    return (status.group(1) if status else "?", f"I-{ident.group(1)}" if ident else "?")


async def _run_daemon(home: Path) -> OutageRun:
    sink = WebhookSink()
    await sink.start()
    smtp = SmtpServer()
    smtp_port = smtp.start()
    try:
        channels: dict[str, Any] = {
            name: {"type": service, "url": sink.url(service, f"/{name}/T0K3N"), "rate_limit": "50/s"}
            for name, service in HTTP_CHANNELS.items()
        }
        channels["hook"]["secret"] = "acceptance-secret"
        channels["mail"] = {"type": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
                            "sender": "cryptomon@example.test", "to": ["ops@example.test"], "rate_limit": "50/s"}
        config = {
            "notify": {
                "channels": channels,
                "routes": [{"channels": CHANNELS, "group_wait": 0, "group_interval": 0}],
                "digest_threshold": 100,
                "backoff_base": "100ms",
                "backoff_cap": "500ms",
            }
        }
        cfg = home / "config.yaml"
        cfg.write_text(yaml.safe_dump(config))
        events_path = home / "events.jsonl"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cryptomon_tui", "daemon", "--config", str(cfg), "--demo=outage",
            "--for", f"{RUN_FOR_S}s", "--events-jsonl", str(events_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, "CRYPTOMON_HOME": str(home), "PYTHONUNBUFFERED": "1"},
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), RUN_FOR_S + 40)
        finally:
            await reap(proc)
        stderr = err.decode(errors="replace")
        zero = re.search(r"time zero (\S+Z)", stderr)
        run = OutageRun(proc.returncode or 0, stderr, [], parse_iso_utc(zero.group(1)) if zero else 0.0)
        for name, service in HTTP_CHANNELS.items():
            run.messages[name] = [_message_of(r.body.decode(errors="replace"))
                                  for r in sink.of(service) if r.path.startswith(f"/{service}/{name}/")]
        run.messages["mail"] = [_message_of(f"{m.message['Subject']}\n{_plain(m.message)}") for m in smtp.received]
        return run
    finally:
        smtp.stop()
        await sink.stop()


def _plain(message: Any) -> str:
    body = message.get_body(("plain",))
    return "" if body is None else str(body.get_content())


@pytest.fixture(scope="module")
def outage_run(tmp_path_factory: pytest.TempPathFactory) -> OutageRun:
    home = tmp_path_factory.mktemp("outage")
    run = asyncio.run(_run_daemon(home))
    events_path = home / "events.jsonl"
    if events_path.exists():
        run.events = [json.loads(line) for line in events_path.read_text().splitlines()]
    dbs = list(home.rglob("cryptomon-demo.sqlite3"))
    if dbs:
        with sqlite3.connect(dbs[0]) as conn:
            run.outbox = conn.execute("SELECT channel, event, incident_id, state FROM outbox").fetchall()
    return run


def _score(run: OutageRun) -> ScenarioScore:
    scenario = load_scenario("outage")
    horizon = float(RUN_FOR_S)
    config = config_from_data({})
    # the daemon's own exchange tolerances are irrelevant here: the outage scenario has no clock faults
    targets = plan_targets(scenario, scenario.expected(horizon), config)
    return score_events("outage", run.events, targets, run.t0, config=config)


def _describe(run: OutageRun) -> str:
    lines = [f"{e['ts']} {e['event']} {e['incident']['id']} {e['incident']['rule']} {e['incident']['exchange']}"
             for e in run.events]
    return "\n".join(lines) + "\n--- daemon stderr (tail) ---\n" + run.stderr[-3000:]


@pytest.mark.timeout(120)
def test_outage_opens_one_incident_per_fault_with_a_sensible_rule_and_resolves_each(outage_run: OutageRun) -> None:
    run = outage_run
    assert run.returncode == 0, _describe(run)
    assert run.t0 > 0, "the daemon did not log the simulator's time zero"
    score = _score(run)
    faults = score.must
    assert len(faults) == 5  # one per exchange, each a different failure class
    assert score.problems() == [], _describe(run)
    for target in faults:
        fault = target.fault
        # exactly one opened per fault, on the fault's exchange, with a rule that fits the fault type
        assert len(target.incidents) == 1, (fault, _describe(run))
        assert target.how == "opened" and target.reopens == 0, (fault, _describe(run))
        assert target.rule in target.rules, (fault, target.rule, _describe(run))
        # and resolved once the fault was over
        assert target.resolved_after_s is not None, (fault, "never resolved", _describe(run))
        assert target.resolved_after_s >= 0, (fault, "resolved before the fault ended", _describe(run))
    opened = [e for e in run.events if e["event"] == "opened"]
    assert len(opened) == len(faults), _describe(run)  # no other incidents
    assert not [e for e in run.events if e["event"] in ("reopened", "flapping")], _describe(run)
    by_id = Counter(e["incident"]["id"] for e in run.events if e["event"] == "resolved")
    assert sorted(by_id.values()) == [1] * len(faults), _describe(run)
    # the scenario's maintenance fault must be read as maintenance, never as a generic failure
    rules = {t.fault.type: t.rule for t in faults}
    assert rules["maintenance"] == "maintenance", rules


@pytest.mark.timeout(120)
def test_outage_sends_exactly_one_firing_and_one_resolved_message_per_channel(outage_run: OutageRun) -> None:
    run = outage_run
    assert run.returncode == 0, _describe(run)
    incidents = {e["incident"]["id"] for e in run.events if e["event"] == "opened"}
    resolved = {e["incident"]["id"] for e in run.events if e["event"] == "resolved"}
    assert incidents, _describe(run)
    # one firing per incident, and one resolved per incident that resolved (whether every incident resolves
    # is the detection test's business; a channel must never hear of a resolution that did not happen)
    expected = Counter({("FIRING", ident): 1 for ident in incidents})
    expected.update({("RESOLVED", ident): 1 for ident in resolved})
    for channel in CHANNELS:
        got = Counter(run.messages[channel])
        assert got == expected, (channel, sorted(got.items()), sorted(run.outbox))
    # the durable outbox agrees: every message sent, none left queued or dead
    states = Counter(state for *_, state in run.outbox)
    assert states == Counter({"sent": (len(incidents) + len(resolved)) * len(CHANNELS)}), states
