"""Pieces of `cryptomon daemon` that need no subprocess: demo config, JSONL writer, argument errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cryptomon_tui.cli import build_parser
from cryptomon_tui.cli.daemon_cmd import DEMO_INTERVAL_S, JsonlWriter, demo_config, run_daemon
from cryptomon_tui.config.root import Config
from cryptomon_tui.kernel.results import Outcome, ProbeResult

URLS = {v: f"http://127.0.0.1:{9000 + i}" for i, v in
        enumerate(("binance", "binance_futures", "bybit", "okx", "deribit"))}


def test_demo_points_every_exchange_at_the_simulator_and_leaves_the_original_alone() -> None:
    config = Config.model_validate({"exchanges": {
        "binance": {}, "okx": {"interval": "10s"}, "mybot": {"url": "https://bot.example/health"}}})
    demo = demo_config(config, URLS)
    assert demo.exchanges["binance"].base_url == URLS["binance"]
    assert demo.exchanges["okx"].base_url == URLS["okx"] and demo.exchanges["okx"].interval == DEMO_INTERVAL_S
    assert demo.exchanges["mybot"].enabled is False  # the demo never leaves loopback
    assert config.exchanges["okx"].interval == 10 and config.exchanges["okx"].base_url is None


async def test_jsonl_writer_writes_every_result_as_one_line(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    writer = JsonlWriter(str(target), flush_interval_s=0.01)
    await writer.start()
    for i in range(500):
        writer.write_result(ProbeResult("okx", "time", 1_700_000_000 + i, 12.5, Outcome.OK, http_status=200))
    writer.write_result(ProbeResult("okx", "time", 1_700_000_600, None, Outcome.TIMEOUT))
    await writer.stop()
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert len(rows) == 501 and writer.lines == 501
    assert rows[0]["ts"] == "2023-11-14T22:13:20.000Z" and rows[0]["latency_ms"] == 12.5
    assert rows[-1]["outcome"] == "timeout" and rows[-1]["latency_ms"] is None


def test_bad_duration_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["daemon", "--for", "soon"])
    assert run_daemon(args) == 2
    assert "--for" in capsys.readouterr().err


def test_demo_defaults_to_flaky() -> None:
    args = build_parser().parse_args(["daemon", "--demo"])
    assert isinstance(args, argparse.Namespace) and args.demo == "flaky"
    assert build_parser().parse_args(["daemon", "--demo=outage"]).demo == "outage"
