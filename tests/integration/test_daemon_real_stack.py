"""Acceptance (issue 6), real processes end to end: two ``cryptomon daemon`` processes in different locations
probe ONE shared ``cryptomon simulate`` (so both see the very same Binance outage), a real Prometheus with the
shipped rules scrapes both /metrics, and a real Alertmanager grouping by ``[alertname, exchange]`` (as
docs/scaling.md recommends) receives both paths: each daemon's incident through cryptomon's own
``alertmanager`` channel, and Prometheus' rule alerts.

The simulator runs with ``--no-limits``: both "locations" reach it from 127.0.0.1, so it would count their
requests against one IP's rate limits (OKX allows 1 status call per 5 s) and answer 429s no real site sees.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.daemon_harness import (
    REAL_DAEMON_COMMAND,
    REPO,
    daemon_process,
    free_port,
    real_daemon_config,
    simulator_process,
)
from tests.fakes.prom_stack import ALERTMANAGER, PROMETHEUS, alertmanager, get_json, prom_query, prometheus, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="needs the Debian packages prometheus and prometheus-alertmanager (make sysdeps installs them)",
    ),
]

# Binance answers 500 from the simulator's first second for two minutes: longer than the test, so the
# incident is still firing when Alertmanager is asked.
OUTAGE_SCENARIO = """\
name: binance-outage
description: binance answers HTTP 500 for two minutes, okx stays healthy
duration: 300s
loop: false
seed: 6
faults:
  - exchange: binance
    type: errors
    start: 0s
    duration: 120s
    status: 500
    code: -1001
    message: "Internal error; unable to process your request. Please try again."
"""
LOCATIONS = ("tokyo", "frankfurt")
RULES = REPO / "deploy" / "prometheus-rules.yml"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths must stay under 108 bytes: pytest's tmp_path is too deep."""
    path = Path(tempfile.mkdtemp(prefix="cmr-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def outage_groups(am_url: str) -> list[dict[str, Any]]:
    return [g for g in get_json(am_url + "/api/v2/alerts/groups") if g["labels"].get("exchange") == "binance"]


@pytest.mark.timeout(90)
def test_two_real_daemons_one_outage_prometheus_and_one_alertmanager_group(tmp_path: Path, short_dir: Path) -> None:
    started = time.monotonic()
    scenario = tmp_path / "outage.yaml"
    scenario.write_text(OUTAGE_SCENARIO)
    ports = {loc: free_port() for loc in LOCATIONS}
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(simulator_process(scenario, tmp_path / "simulator.log", ["--no-limits"]))
        am_url = stack.enter_context(alertmanager(tmp_path / "am", group_by=("alertname", "exchange")))
        for loc in LOCATIONS:
            config = tmp_path / f"{loc}.yaml"
            real_daemon_config(
                config,
                location=loc,
                base_urls=urls,
                exchanges=["binance", "okx"],
                socket_path=short_dir / f"{loc}.sock",
                store_path=tmp_path / f"{loc}.sqlite3",
                http_port=ports[loc],
                extra={
                    "notify": {
                        "channels": {"am": {"type": "alertmanager", "url": am_url, "refresh_interval": "5s"}},
                        "routes": [{"channels": ["am"], "group_wait": "0s", "group_interval": "1s"}],
                    },
                    "daemon": {"log": {"format": "json"}},
                },
            )
            stack.enter_context(
                daemon_process(
                    config, f"http://127.0.0.1:{ports[loc]}", command=REAL_DAEMON_COMMAND, ready_path="/readyz"
                )
            )
        prom_url = stack.enter_context(
            prometheus(tmp_path / "prom", [f"127.0.0.1:{p}" for p in ports.values()], [RULES], am_url, interval="1s")
        )

        # Prometheus has both locations' series: Binance failing from both, OKX healthy from both.
        def both_locations(exchange: str, value: str) -> list[dict[str, Any]] | None:
            result = prom_query(prom_url, f'probe_success{{exchange="{exchange}"}}')
            by_location = {r["metric"]["location"] for r in result if r["value"][1] == value}
            return result if by_location == set(LOCATIONS) else None

        failing = wait_for(lambda: both_locations("binance", "0"), 30, "binance failing from both locations")
        assert all(r["value"][1] == "0" for r in failing), failing
        healthy = wait_for(lambda: both_locations("okx", "1"), 15, "okx healthy from both locations")
        assert {r["metric"]["location"] for r in healthy} == set(LOCATIONS)
        assert {r["metric"]["job"] for r in failing} == {"cryptomon"}

        # While the circuit is open (probes skipped, not sent), every binance probe still reports failure: a
        # series that vanished instead would hide the outage from `probe_success == 0` alerts and dashboards.
        def zero_for_every_probe_while_open() -> bool:
            open_circuits = prom_query(prom_url, 'cryptomon_breaker_state{exchange="binance"} == 2')
            probes = prom_query(prom_url, 'cryptomon_probe_window_attempts{exchange="binance"}')
            zeros = prom_query(prom_url, 'probe_success{exchange="binance"} == 0')
            key = ("location", "probe")
            return len(open_circuits) == len(LOCATIONS) and len(probes) >= 2 * len(LOCATIONS) and (
                {tuple(r["metric"][k] for k in key) for r in zeros}
                == {tuple(r["metric"][k] for k in key) for r in probes}
            )

        wait_for(zero_for_every_probe_while_open, 20, "probe_success 0 for every binance probe with the circuit open")

        # Alertmanager: every group about the outage holds BOTH locations' alerts (deduplicated across locations:
        # one group per problem, not one per site), whether the alert came from a daemon's own incident
        # (``alertmanager`` channel: carries ``cryptomon_fingerprint``) or from a Prometheus rule.
        def from_channel(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [a for g in groups for a in g["alerts"] if "cryptomon_fingerprint" in a["labels"]]

        def both_paths_from_both_locations() -> list[dict[str, Any]] | None:
            groups = outage_groups(am_url)
            channel = {a["labels"]["location"] for a in from_channel(groups)}
            circuit = {a["labels"]["location"] for g in groups for a in g["alerts"]
                       if g["labels"]["alertname"] == "CryptomonCircuitOpen"}
            everywhere = all({a["labels"]["location"] for a in g["alerts"]} == set(LOCATIONS) for g in groups)
            return groups if channel == circuit == set(LOCATIONS) and everywhere else None

        groups = wait_for(both_paths_from_both_locations, 30, "both daemons' alerts (channel, rules) in Alertmanager")
        for group in groups:
            assert set(group["labels"]) == {"alertname", "exchange"}, group["labels"]
            assert {a["labels"]["location"] for a in group["alerts"]} == set(LOCATIONS), group
        # The daemons' own alerts: one per location, for the same problem, in ONE group.
        channel_alerts = from_channel(groups)
        assert sorted(a["labels"]["location"] for a in channel_alerts) == sorted(LOCATIONS)
        assert len({a["labels"]["cryptomon_fingerprint"] for a in channel_alerts}) == 1  # recognised as one problem
        assert len({a["labels"]["alertname"] for a in channel_alerts}) == 1
        channel_groups = [g for g in groups if from_channel([g])]
        assert len(channel_groups) == 1, channel_groups
        assert all(a["status"]["state"] == "active" for a in channel_alerts)
        # Nothing about the healthy exchange.
        every_alert = get_json(am_url + "/api/v2/alerts")
        assert not [a for a in every_alert if a["labels"].get("exchange") == "okx"], every_alert
    elapsed = time.monotonic() - started
    print(f"two real daemons + simulator + Prometheus + Alertmanager: {elapsed:.1f}s")
