"""Acceptance: two daemons in different locations, a real Prometheus scraping both with the shipped
rules, and a real Alertmanager that holds one alert group for the outage both locations see.

The daemons are ``tests.fakes.daemon_harness`` (the daemon's runner around a FakeEngine) until the
engine serves the control API; switch ``daemon_harness.DAEMON_COMMAND`` and ``OUTAGE_ARGS`` to run
``cryptomon daemon --demo outage`` instead.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.fakes.daemon_harness import REPO, daemon_process, free_port
from tests.fakes.prom_stack import ALERTMANAGER, PROMETHEUS, alertmanager, get_json, prom_query, prometheus, wait_for
from tests.integration.test_prometheus_rules import dashboard_exprs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None or ALERTMANAGER is None,
        reason="needs the Debian packages prometheus and prometheus-alertmanager (make sysdeps installs them)",
    ),
]

OUTAGE_ARGS = ["--fail", "binance"]  # real daemon: ["--demo", "outage"]
RULES = REPO / "deploy" / "prometheus-rules.yml"


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cmp-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_config(path: Path, location: str, http_port: int, socket_path: Path) -> None:
    path.write_text(
        yaml.safe_dump(
            {
                "daemon": {
                    "location": location,
                    "http": {"port": http_port},
                    "control": {"socket_path": str(socket_path)},
                    "log": {"format": "json"},
                }
            }
        )
    )


@pytest.mark.timeout(120)
def test_two_locations_scraped_and_alerts_deduplicated(tmp_path: Path, short_dir: Path) -> None:
    ports = {"tokyo": free_port(), "frankfurt": free_port()}
    configs = {}
    for loc, port in ports.items():
        configs[loc] = tmp_path / f"{loc}.yaml"
        write_config(configs[loc], loc, port, short_dir / f"{loc}.sock")
    urls = {loc: f"http://127.0.0.1:{port}" for loc, port in ports.items()}
    with (
        daemon_process(configs["tokyo"], urls["tokyo"], OUTAGE_ARGS),
        daemon_process(configs["frankfurt"], urls["frankfurt"], OUTAGE_ARGS),
        alertmanager(tmp_path / "am") as am_url,
        prometheus(tmp_path / "prom", [f"127.0.0.1:{p}" for p in ports.values()], [RULES], am_url) as prom_url,
    ):
        # Prometheus has both locations' series.
        def both_series() -> list[dict[str, object]] | None:
            result = prom_query(prom_url, 'probe_success{exchange="binance",probe="book"}')
            locations = {r["metric"]["location"] for r in result}
            return result if locations == {"tokyo", "frankfurt"} else None

        series = wait_for(both_series, 30, "both locations scraped")
        assert all(r["value"][1] == "0" for r in series)  # the outage, seen from both
        healthy = prom_query(prom_url, 'probe_success{exchange="okx",probe="book"}')
        assert {r["metric"]["location"] for r in healthy} == {"tokyo", "frankfurt"}
        assert all(r["value"][1] == "1" for r in healthy)

        # Alertmanager: one group for the outage, holding both locations' alerts.
        def outage_groups() -> list[dict[str, object]] | None:
            groups = get_json(am_url + "/api/v2/alerts/groups")
            mine = [
                g for g in groups
                if g["labels"].get("alertname") == "CryptomonConsecutiveFailures"
                and g["labels"].get("exchange") == "binance"
            ]
            seen = {a["labels"]["location"] for g in mine for a in g["alerts"]}
            return mine if seen == {"tokyo", "frankfurt"} else None

        groups = wait_for(outage_groups, 45, "alerts from both locations in Alertmanager")
        assert len(groups) == 1, groups
        assert "location" not in groups[0]["labels"]
        alerts = groups[0]["alerts"]
        assert {a["labels"]["location"] for a in alerts} == {"tokyo", "frankfurt"}
        assert all(a["labels"]["severity"] == "error" for a in alerts)
        # okx is healthy everywhere: no alert for it at all
        all_alerts = get_json(am_url + "/api/v2/alerts")
        assert not [a for a in all_alerts if a["labels"].get("exchange") == "okx"]

        # Every query of the shipped Grafana dashboard is valid PromQL and finds data.
        for expr in dashboard_exprs():
            query = expr.replace("$location", ".*").replace("$exchange", ".*")
            if "rate(" in query or "increase(" in query:
                continue  # needs history (test_prometheus_aggregate.py runs rate() and histogram_quantile)
            assert prom_query(prom_url, query), f"dashboard query returns nothing: {query}"
