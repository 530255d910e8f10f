"""Acceptance (issue 11): what Prometheus users do across locations works on the daemons' real /metrics.

Two real ``cryptomon daemon`` processes ("tokyo", "frankfurt") probe one shared simulator where OKX
answers with a spread of latencies and Binance fails a fifth of the requests; a real Prometheus scrapes
both. ``histogram_quantile`` over the summed histogram gives the p99 of BOTH locations' probes, and
``rate()`` of the probe counter gives the error ratio over both. Each daemon writes every result it
measured (``--probes-jsonl``), so the test knows the true values and compares.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cryptomon_tui.metrics.totals import DURATION_BUCKETS_S
from tests.fakes.daemon_harness import (
    REAL_DAEMON_COMMAND,
    daemon_process,
    free_port,
    real_daemon_config,
    simulator_process,
)
from tests.fakes.prom_stack import PROMETHEUS, PROMTOOL, prom_query, prometheus, wait_for
from tests.integration.test_prometheus_rules import dashboard_exprs

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="needs the Debian package prometheus (make sysdeps installs it)"),
]

SCENARIO = """\
name: spread-and-errors
description: okx latency spread over several buckets; binance fails one request in five
duration: 600s
loop: false
seed: 11
faults:
  - exchange: okx
    type: latency
    start: 0s
    ms: lognormal(30, 0.6)
  - exchange: binance
    type: errors
    start: 0s
    rate: 0.2
    status: 500
    code: -1001
    message: "Internal error; unable to process your request. Please try again."
"""
LOCATIONS = ("tokyo", "frankfurt")
BOUNDS = (0.0, *DURATION_BUCKETS_S, math.inf)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cma-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def read_results(paths: list[Path]) -> list[dict[str, object]]:
    """Probe results from --probes-jsonl (its ``kind: stream`` records are stream verdicts, not probes)."""
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if row.get("kind") != "stream":
                    out.append(row)
    return out


def bucket_of(seconds: float) -> int:
    """Index i with BOUNDS[i] < seconds <= BOUNDS[i + 1]."""
    return next(i for i in range(len(BOUNDS) - 1) if seconds <= BOUNDS[i + 1])


def scalar(prom_url: str, query: str, at: float) -> float:
    result = prom_query(prom_url, query, at)
    assert len(result) == 1, (query, result)
    return float(result[0]["value"][1])


@pytest.mark.timeout(120)
def test_p99_and_error_ratio_across_two_daemons(tmp_path: Path, short_dir: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    ports = {loc: free_port() for loc in LOCATIONS}
    jsonl = {loc: tmp_path / f"{loc}.probes.jsonl" for loc in LOCATIONS}
    with contextlib.ExitStack() as stack:
        urls = stack.enter_context(simulator_process(scenario, tmp_path / "simulator.log", ["--no-limits"]))
        for loc in LOCATIONS:
            config = tmp_path / f"{loc}.yaml"
            real_daemon_config(
                config, location=loc, base_urls=urls, exchanges=["binance", "okx"], interval="200ms",
                socket_path=short_dir / f"{loc}.sock", store_path=tmp_path / f"{loc}.sqlite3", http_port=ports[loc],
                extra={"probing": {"breaker": {"failure_threshold": 50}}},
            )
            stack.enter_context(daemon_process(
                config, f"http://127.0.0.1:{ports[loc]}", ["--probes-jsonl", str(jsonl[loc])],
                command=REAL_DAEMON_COMMAND, ready_path="/readyz",
            ))
        prom_url = stack.enter_context(prometheus(tmp_path / "prom", [f"127.0.0.1:{p}" for p in ports.values()]))

        # A live /metrics passes promtool's linter (no quantile label on a gauge, counters end in _total, ...).
        if PROMTOOL is not None:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports['tokyo']}/metrics", timeout=5) as r:
                text = r.read()
            lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=30)
            assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint

        def enough() -> bool:
            counts = prom_query(prom_url, 'sum by (location) (cryptomon_probe_duration_seconds_count{exchange="okx"})')
            return len(counts) == 2 and all(float(r["value"][1]) >= 150 for r in counts)

        wait_for(enough, 60, "150 successful okx probes scraped from each location")
        at = time.time()  # every query below reads the same moment
        buckets = 'rate(cryptomon_probe_duration_seconds_bucket{exchange="okx"}[5m])'
        p99_q = f"histogram_quantile(0.99, sum by (le) ({buckets}))"
        err_q = (
            'sum(rate(cryptomon_probes_total{exchange="binance",outcome!~"ok|skipped_open_circuit"}[5m]))'
            ' / sum(rate(cryptomon_probes_total{exchange="binance",outcome!="skipped_open_circuit"}[5m]))'
        )
        p99 = scalar(prom_url, p99_q, at)
        per_location = prom_query(prom_url, f"histogram_quantile(0.99, sum by (le, location) ({buckets}))", at)
        err = scalar(prom_url, err_q, at)
        scraped = scalar(prom_url, 'sum(cryptomon_probe_duration_seconds_count{exchange="okx"})', at)
        # every dashboard query (rate(), increase(), histogram_quantile() included) is valid on real series
        for expr in dashboard_exprs():
            query = expr.replace("$location", ".*").replace("$exchange", ".*")
            result = prom_query(prom_url, query, at)
            if "cryptomon_probe" in query:
                assert result, f"dashboard query returns nothing: {query}"

    results = read_results(list(jsonl.values()))
    okx = sorted(float(r["latency_ms"]) / 1000 for r in results  # type: ignore[arg-type]
                 if r["exchange"] == "okx" and r["outcome"] == "ok" and r["latency_ms"] is not None)
    assert len(okx) >= scraped >= 300
    true_p99 = okx[max(0, math.ceil(0.99 * len(okx)) - 1)]
    # The histogram knows the bucket of the true p99, give or take the results measured after the scrape.
    assert abs(bucket_of(p99) - bucket_of(true_p99)) <= 1, (p99, true_p99)
    assert BOUNDS[bucket_of(true_p99) - 1] <= p99 <= BOUNDS[bucket_of(true_p99) + 2], (p99, true_p99)
    assert {r["metric"]["location"] for r in per_location} == set(LOCATIONS)  # and still per location

    binance = [r for r in results if r["exchange"] == "binance" and r["outcome"] != "skipped_open_circuit"]
    true_err = sum(r["outcome"] != "ok" for r in binance) / len(binance)
    assert 0.1 < true_err < 0.3, true_err  # the scenario's one in five
    assert err == pytest.approx(true_err, abs=0.05), (err, true_err)
    print(f"p99 over both locations: prometheus {p99 * 1000:.1f} ms, true {true_p99 * 1000:.1f} ms "
          f"({len(okx)} results); binance error ratio: prometheus {err:.3f}, true {true_err:.3f}")
