"""deploy/prometheus-rules.yml: valid for promtool, fires like the built-in defaults, and only uses
metric names the daemon really exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cryptomon_tui.clock import FakeClock
from cryptomon_tui.daemon.metrics import build_registry
from tests.fakes.daemon_harness import REPO
from tests.fakes.fake_engine import FakeEngine
from tests.fakes.prom_stack import PROMTOOL

RULES = REPO / "deploy" / "prometheus-rules.yml"
PROBES = "cryptomon_probes_total"
DURATION = "cryptomon_probe_duration_seconds"
RUNBOOK = "https://github.com/cryptomon/cryptomon/blob/main/docs/operations.md#alerts"
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus (make sysdeps installs it)"
)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    out = subprocess.run([str(PROMTOOL), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_rule_has_a_severity_and_summary() -> None:
    data = yaml.safe_load(RULES.read_text())
    rules = [r for g in data["groups"] for r in g["rules"]]
    assert len(rules) >= 10
    for rule in rules:
        assert rule["labels"]["severity"] in ("info", "warning", "error", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_rules_use_only_exported_metric_names() -> None:
    from prometheus_client import generate_latest

    clock = FakeClock()
    engine = FakeEngine(clock)
    engine.analysis["budget_usd_month"] = 5.0
    registry = build_registry(engine, lambda: "x", clock.now, lambda: {"event_loop_lag_max_seconds": 0.0})
    text_out = generate_latest(registry).decode()
    fams = list(text_string_to_metric_families(text_out))
    exported = {s.name for f in fams for s in f.samples} | {f.name for f in fams if f.type == "histogram"}
    text = RULES.read_text()
    used = set(re.findall(r"\b((?:cryptomon|probe)_[a-z_]+)\b", text)) | {"up"}
    missing = {m for m in used if m not in exported and m != "up" and not m.startswith("probe_http_")}
    assert not missing, f"rules use metrics the daemon does not export: {missing}"


def series(metric: str, values: str, **labels: str) -> dict[str, str]:
    inst = {"tokyo": "a", "frankfurt": "b"}[labels["location"]]
    body = ",".join(f'{k}="{v}"' for k, v in {**labels, "job": "cryptomon", "instance": inst}.items())
    return {"series": f"{metric}{{{body}}}", "values": values}


@needs_promtool
def test_rules_fire_like_the_defaults(tmp_path: Path) -> None:
    """promtool unit test: series from two locations -> which alerts fire, with which labels."""
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [
                    # binance book failing from both locations: 50 % and 40 % of the attempts (counters)
                    series(PROBES, "0+30x20", exchange="binance", probe="book", outcome="ok", location="tokyo"),
                    series(PROBES, "0+30x20", exchange="binance", probe="book", outcome="http_5xx", location="tokyo"),
                    series(PROBES, "0+36x20", exchange="binance", probe="book", outcome="ok", location="frankfurt"),
                    series(PROBES, "0+24x20", exchange="binance", probe="book", outcome="http_5xx",
                           location="frankfurt"),
                    # okx: errors only in tokyo, and too few attempts to count
                    series(PROBES, "0+1x20", exchange="okx", probe="book", outcome="http_5xx", location="tokyo"),
                    # binance ping from tokyo: every successful probe between 2 s and 3 s (histogram)
                    series(f"{DURATION}_bucket", "0x20", exchange="binance", probe="ping", le="2.0", location="tokyo"),
                    series(f"{DURATION}_bucket", "0+20x20", exchange="binance", probe="ping", le="3.0",
                           location="tokyo"),
                    series(f"{DURATION}_bucket", "0+20x20", exchange="binance", probe="ping", le="+Inf",
                           location="tokyo"),
                    series(f"{DURATION}_count", "0+20x20", exchange="binance", probe="ping", location="tokyo"),
                    # tokyo's clock is 1.2 s ahead of bybit (offset negative), error bound 0.1 s
                    series("cryptomon_clock_offset_seconds", "-1.2x10", exchange="bybit", location="tokyo"),
                    series("cryptomon_clock_error_seconds", "0.1x10", exchange="bybit", location="tokyo"),
                    series("cryptomon_rate_limit_used_ratio", "0.5 0.85 0.5x8", exchange="bybit", location="tokyo"),
                    # deribit ping from frankfurt: 3 timeouts per 15 s among 100 successes (under 5 % errors)
                    series(PROBES, "0+3x20", exchange="deribit", probe="ping", outcome="timeout",
                           location="frankfurt"),
                    series(PROBES, "0+100x20", exchange="deribit", probe="ping", outcome="ok", location="frankfurt"),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "1m",
                        "alertname": "CryptomonErrorRateHigh",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "error", "exchange": "binance", "probe": "book",
                                            "location": loc, "job": "cryptomon", "instance": inst},
                             "exp_annotations": {
                                 "summary": f"binance book: {pct} errors over 5m (seen from {loc})",
                                 "runbook_url": RUNBOOK}}
                            for loc, inst, pct in (("tokyo", "a", "50%"), ("frankfurt", "b", "40%"))
                        ],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "CryptomonExchangeFailingEverywhere",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "critical", "exchange": "binance", "probe": "book"},
                             "exp_annotations": {
                                 "summary": "binance book failing from every location (40% errors at best)"}}
                        ],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "CryptomonClockOffset",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "error", "exchange": "bybit", "location": "tokyo",
                                            "job": "cryptomon", "instance": "a"},
                             "exp_annotations": {"summary": "tokyo: clock off against bybit by 1.1s: signed requests "
                                                            "will be rejected (-1021 / 10002); check chrony/NTP"}}
                        ],
                    },
                    {
                        "eval_time": "30s",
                        "alertname": "CryptomonRateLimitUsageHigh",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "exchange": "bybit", "location": "tokyo",
                                            "job": "cryptomon", "instance": "a"},
                             "exp_annotations": {"summary": "bybit: 85% of the request limit in use from tokyo "
                                                            "(bots on this IP share it)"}}
                        ],
                    },
                    {"eval_time": "2m", "alertname": "CryptomonRateLimitUsageHigh", "exp_alerts": []},
                    {
                        "eval_time": "1m",
                        "alertname": "CryptomonTimeouts",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "error", "exchange": "deribit", "probe": "ping",
                                            "location": "frankfurt", "job": "cryptomon", "instance": "b"},
                             "exp_annotations": {"summary": "deribit ping: 12 timeouts in 5m (from frankfurt)"}}
                        ],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "CryptomonLatencyP99High",
                        "exp_alerts": [
                            {"exp_labels": {"severity": "warning", "exchange": "binance", "probe": "ping",
                                            "location": "tokyo", "job": "cryptomon", "instance": "a"},
                             "exp_annotations": {"summary": "binance ping: p99 2.99s (from tokyo)"}}
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "rules_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False, width=1000))
    out = subprocess.run([str(PROMTOOL), "test", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"


def dashboard_exprs() -> list[str]:
    import json

    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p.get("targets", [])]


def test_dashboard_uses_only_exported_metric_names() -> None:
    from prometheus_client import generate_latest

    clock = FakeClock()
    engine = FakeEngine(clock)
    engine.open_incident()
    registry = build_registry(engine, lambda: "x", clock.now, lambda: {"event_loop_lag_max_seconds": 0.0})
    exported = {s.name for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    used = {m for e in exprs for m in re.findall(r"\b((?:cryptomon|probe|process)_[a-z_]+)\b", e)}
    assert used and not (used - exported), f"dashboard queries metrics the daemon does not export: {used - exported}"
