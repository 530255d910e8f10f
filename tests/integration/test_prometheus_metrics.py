"""/metrics, /healthz, /readyz over real HTTP against a FakeEngine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.config import config_from_data
from cryptomon_tui.daemon.http import HttpServer
from cryptomon_tui.kernel.severity import Severity
from cryptomon_tui.kernel.units import iso_utc
from tests.fakes.fake_engine import FakeEngine
from tests.fakes.prom_stack import PROMTOOL


@pytest.fixture
async def http() -> AsyncIterator[tuple[HttpServer, FakeEngine]]:
    clock = FakeClock()
    engine = FakeEngine(clock, location="tokyo")
    config = config_from_data({"daemon": {"location": "tokyo", "http": {"port": 0}}})
    server = HttpServer(engine, config, clock)
    await server.start()
    try:
        yield server, engine
    finally:
        await server.stop()


async def get(server: HttpServer, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(server.url + path) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


async def test_metrics_parse_with_blackbox_names_and_labels(http: tuple[HttpServer, FakeEngine]) -> None:
    server, engine = http
    engine.open_incident(severity=Severity.CRITICAL, exchange="okx")
    engine.set_exchange("okx", breaker={"state": "open", "next_trial_at": None}, rate_limit_used=0.85,
                        ban_until=iso_utc(engine.clock.now() + 120))
    engine.set_probe("okx", "book", consecutive_failures=4)
    status, ctype, text = await get(server, "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    fams = families(text)
    for name in (
        "probe_success", "probe_duration_seconds", "probe_http_duration_seconds", "probe_http_status_code",
        "cryptomon_clock_offset_seconds", "cryptomon_rate_limit_used_ratio", "cryptomon_breaker_state",
        "cryptomon_probe_error_ratio", "cryptomon_probe_duration_seconds", "cryptomon_open_incidents",
        "cryptomon_probes", "cryptomon_incidents_opened", "cryptomon_notifications",
        "cryptomon_notify_queue", "cryptomon_notify_dead_letters", "cryptomon_llm_spend_usd_month",
        "cryptomon_exchange_status", "cryptomon_ban_remaining_seconds", "cryptomon_probe_consecutive_failures",
    ):
        assert name in fams, name
    for fam in fams.values():
        for sample in fam.samples:
            assert sample.labels.get("location") == "tokyo", sample
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted({**labels, "location": "tokyo"}.items())))]

    assert value("probe_success", exchange="binance", probe="book") == 1.0
    assert value("probe_duration_seconds", exchange="binance", probe="book") == pytest.approx(0.042)
    assert value("probe_http_duration_seconds", exchange="binance", probe="book", phase="tls") == pytest.approx(0.012)
    assert value("probe_http_duration_seconds", exchange="binance", probe="book", phase="processing") == 0.02
    assert value("probe_http_status_code", exchange="okx", probe="ping") == 200
    assert not [s for f in fams.values() for s in f.samples if "quantile" in s.labels and f.type != "summary"]
    assert fams["cryptomon_probes"].type == "counter"
    assert value("cryptomon_probes_total", exchange="okx", probe="ping", outcome="ok") == 100
    assert fams["cryptomon_probe_duration_seconds"].type == "histogram"
    buckets = {s.labels["le"]: s.value for s in fams["cryptomon_probe_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["exchange"] == "okx" and s.labels["probe"] == "ping"}
    assert buckets["0.03"] == 0 and buckets["0.05"] == 100 and buckets["+Inf"] == 100  # 42 ms each
    assert "0.001" in buckets and "10.0" in buckets  # resolves 1 ms .. 10 s
    assert value("cryptomon_probe_duration_seconds_sum", exchange="okx", probe="ping") == pytest.approx(4.2)
    assert value("cryptomon_incidents_opened_total", rule="error_rate", severity="critical") == 1
    assert value("cryptomon_notifications_total", channel="ops-discord", result="failed") == 1
    assert value("cryptomon_breaker_state", exchange="okx") == 2.0
    assert value("cryptomon_rate_limit_used_ratio", exchange="okx") == 0.85
    assert value("cryptomon_ban_remaining_seconds", exchange="okx") == pytest.approx(120)
    assert value("cryptomon_clock_offset_seconds", exchange="binance") == pytest.approx(0.0015)
    assert value("cryptomon_open_incidents", severity="critical", exchange="okx") == 1
    assert value("cryptomon_open_incidents", severity="error", exchange="binance") == 0
    assert value("cryptomon_probe_consecutive_failures", exchange="okx", probe="book") == 4
    assert value("cryptomon_exchange_status", exchange="okx", status="ok") == 1
    assert value("cryptomon_notify_queue", channel="ops-discord") == 0
    # process metrics carry the location too
    assert any(name.startswith("process_") for name in fams)

    engine.fail_exchange("binance")
    fams = families((await get(server, "/metrics"))[2])
    by = {(s.labels["exchange"], s.labels["probe"]): s.value for s in fams["probe_success"].samples}
    assert by[("binance", "book")] == 0.0 and by[("okx", "book")] == 1.0
    codes = {(s.labels["exchange"], s.labels["probe"]): s.value for s in fams["probe_http_status_code"].samples}
    assert codes[("binance", "ping")] == 503
    status = {(s.labels["exchange"], s.labels["status"]): s.value for s in fams["cryptomon_exchange_status"].samples}
    assert status[("binance", "down")] == 1.0 and status[("binance", "ok")] == 0.0
    # counters keep what the earlier scrape counted and add the failures (never a window)
    totals = {(s.labels["probe"], s.labels["outcome"]): s.value for s in fams["cryptomon_probes"].samples
              if s.labels["exchange"] == "binance"}
    assert totals[("book", "ok")] == 100 and totals[("book", "http_5xx")] == 20
    engine.fail_exchange("binance")
    fams = families((await get(server, "/metrics"))[2])
    again = {(s.labels["probe"], s.labels["outcome"]): s.value for s in fams["cryptomon_probes"].samples
             if s.labels["exchange"] == "binance"}
    assert again[("book", "ok")] == 100 and again[("book", "http_5xx")] == 40


@pytest.mark.skipif(PROMTOOL is None, reason="needs promtool (Debian package prometheus; make sysdeps installs it)")
async def test_promtool_finds_no_problem_in_live_metrics(http: tuple[HttpServer, FakeEngine]) -> None:
    server, engine = http
    engine.open_incident()
    engine.fail_exchange("okx")
    _, _, text = await get(server, "/metrics")
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics", stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(text.encode())
    assert proc.returncode == 0 and out.decode().strip() == "", out.decode()


async def test_metrics_read_the_snapshot_at_scrape_time_only(http: tuple[HttpServer, FakeEngine]) -> None:
    server, engine = http
    before = engine.snapshot_builds
    engine.changed()
    engine.changed()
    assert engine.snapshot_builds == before  # nothing happens between scrapes
    await get(server, "/metrics")
    assert engine.snapshot_builds == before + 1


async def test_healthz_and_readyz(http: tuple[HttpServer, FakeEngine]) -> None:
    server, engine = http
    status, _, body = await get(server, "/healthz")
    assert status == 200 and '"status":"ok"' in body
    status, _, body = await get(server, "/readyz")
    assert status == 200 and '"ready"' in body
    engine.health_state["store_writable"] = False
    status, _, body = await get(server, "/readyz")
    assert status == 503 and "store_writable" in body
    engine.health_state["loop"] = False
    assert (await get(server, "/healthz"))[0] == 503
    status, ctype, body = await get(server, "/api/v1/snapshot")
    assert status == 200 and ctype.startswith("application/json") and '"location":"tokyo"' in body


async def test_port_in_use_is_a_clear_error(http: tuple[HttpServer, FakeEngine]) -> None:
    server, engine = http
    from cryptomon_tui.daemon.http import HttpServerError

    config = config_from_data({"daemon": {"http": {"port": server.port}}})
    other = HttpServer(engine, config, engine.clock)
    with pytest.raises(HttpServerError, match=f"127.0.0.1:{server.port}"):
        await other.start()
