"""Scenario schema, validation errors, built-ins and the outage timing contract."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.simulator import (
    EXCHANGES,
    FAULT_TYPES,
    Scenario,
    ScenarioError,
    Simulator,
    builtin_scenarios,
    load_scenario,
    make_fault,
    scenario_from_data,
)
from cryptomon_tui.simulator.scenario import (
    ClockSkewFault,
    DriftFault,
    ErrorsFault,
    MaintenanceFault,
    WeightClimbFault,
    parse_latency,
)

BUILTINS = ("calm", "flaky", "outage", "rate-limit-storm", "maintenance", "clock-drift")


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- built-ins


def test_every_builtin_ships_and_loads() -> None:
    assert set(BUILTINS) <= set(builtin_scenarios())
    for name in BUILTINS:
        scenario = load_scenario(name)
        assert scenario.name == name
        assert scenario.faults, name
        # Demo scenarios loop within about a minute so `cryptomon demo` shows incidents quickly.
        assert scenario.loop and scenario.duration is not None and scenario.duration <= 60, name
        for fault in scenario.faults:
            assert fault.start < scenario.duration, (name, fault)
            assert fault.end_s <= scenario.duration or fault.end_s == float("inf"), (name, fault)
        assert Simulator.load_scenario(name) == scenario


def test_outage_timing_contract() -> None:
    """`cryptomon daemon --demo=outage --for 20s` with ~250 ms probes must see every fault and its recovery."""
    scenario = load_scenario("outage")
    truth = scenario.expected()
    by_exchange = {item.exchange: item for item in truth}
    assert set(by_exchange) == set(EXCHANGES), "one fault per exchange"
    assert len(truth) == len(EXCHANGES)
    expected = {
        "binance": ("errors", Outcome.HTTP_5XX),
        "bybit": ("hang", Outcome.TIMEOUT),
        "okx": ("refuse", Outcome.CONNECT),
        "deribit": ("maintenance", Outcome.MAINTENANCE),
        "binance_futures": ("reset", Outcome.RESET),
    }
    for exchange, (kind, outcome) in expected.items():
        item = by_exchange[exchange]
        assert (item.type, item.outcome) == (kind, outcome), exchange
        assert item.probes is None, "every probe of the exchange sees the fault"
        assert item.start >= 2.0, "leave a healthy baseline first"
        assert item.end - item.start >= 5.0, "long enough for 250 ms probes and for-durations"
        assert item.end <= 13.5, "recovered well before 20 s"
    assert len({item.type for item in truth}) == len(truth), "distinct fault classes"
    # Never all exchanges at once: that would read as our own network being down.
    for step in range(200):
        t = step / 10
        assert sum(item.active_at(t) for item in truth) < len(EXCHANGES), t


def test_ground_truth_unrolls_loops_and_clips_to_cycle() -> None:
    scenario = scenario_from_data(
        {
            "duration": "10s",
            "loop": True,
            "faults": [{"exchange": "okx", "type": "hang", "start": "8s", "duration": "5s"}],
        }
    )
    truth = scenario.expected(horizon=25)
    assert [(t.start, t.end) for t in truth] == [(8, 10), (18, 20)]
    assert all(t.outcome is Outcome.TIMEOUT for t in truth)


def test_all_expands_to_supported_exchanges_only() -> None:
    ban = make_fault({"type": "ban", "exchange": "all", "duration": 5})
    assert ban.exchanges() == ("binance", "binance_futures", "bybit")
    truth = Scenario(faults=(ban,)).expected()  # type: ignore[arg-type]
    assert {t.exchange for t in truth} == {"binance", "binance_futures", "bybit"}
    assert {t.outcome for t in truth} == {Outcome.IP_BANNED}


@pytest.mark.parametrize(
    ("fault", "exchange", "outcome"),
    [
        ({"type": "errors", "status": 503}, "binance", Outcome.HTTP_5XX),
        ({"type": "errors", "code": 10016}, "bybit", Outcome.EXCHANGE_ERROR),
        ({"type": "errors", "code": 10006}, "bybit", Outcome.RATE_LIMITED),
        ({"type": "errors", "code": -1021}, "binance", Outcome.CLOCK_SKEW),
        ({"type": "errors", "code": "50001"}, "okx", Outcome.MAINTENANCE),
        ({"type": "errors", "code": 13009}, "deribit", Outcome.AUTH),
        ({"type": "errors", "status": 418, "code": -1003}, "binance", Outcome.IP_BANNED),
        ({"type": "errors", "status": 400, "code": -1121}, "binance", Outcome.HTTP_4XX),
        ({"type": "rate_limit"}, "okx", Outcome.RATE_LIMITED),
        ({"type": "hang"}, "okx", Outcome.TIMEOUT),
        ({"type": "refuse"}, "okx", Outcome.CONNECT),
        ({"type": "reset"}, "okx", Outcome.RESET),
        ({"type": "malformed"}, "okx", Outcome.BAD_PAYLOAD),
        ({"type": "html", "status": 200}, "okx", Outcome.BAD_PAYLOAD),
        ({"type": "html", "status": 502}, "okx", Outcome.HTTP_5XX),
        ({"type": "huge_body"}, "okx", Outcome.BAD_PAYLOAD),
        ({"type": "maintenance"}, "deribit", Outcome.MAINTENANCE),
        ({"type": "clock_skew", "offset_ms": 5000}, "okx", Outcome.OK),
        ({"type": "latency", "ms": 200}, "okx", Outcome.OK),
        ({"type": "errors", "status": 500, "expect": "exchange_error"}, "okx", Outcome.EXCHANGE_ERROR),
    ],
)
def test_expected_outcome_per_fault(fault: dict[str, object], exchange: str, outcome: Outcome) -> None:
    assert make_fault({"exchange": exchange, **fault}).expected_outcome(exchange) is outcome


def test_bybit_maintenance_only_shows_on_status() -> None:
    fault = make_fault({"type": "maintenance", "exchange": "all", "duration": 5})
    assert isinstance(fault, MaintenanceFault)
    assert fault.affected_probes("bybit") == frozenset({"status"})
    assert fault.affected_probes("okx") is None
    truth = {t.exchange: t for t in Scenario(faults=(fault,)).expected()}  # type: ignore[arg-type]
    assert truth["bybit"].outcome_for("ticker") is None
    assert truth["bybit"].outcome_for("status") is Outcome.MAINTENANCE


# ---------------------------------------------------------------- values


def test_latency_forms() -> None:
    rng = random.Random(1)
    assert parse_latency(50).sample(rng) == 50
    assert parse_latency("12.5").sample(rng) == 12.5
    normal = parse_latency("normal(80, 20)")
    samples = [normal.sample(rng) for _ in range(2000)]
    assert 75 < sum(samples) / len(samples) < 85 and min(samples) >= 0
    uniform = parse_latency("uniform(10, 20)")
    assert all(10 <= uniform.sample(rng) <= 20 for _ in range(200))
    lognormal = parse_latency("lognormal(100, 0.5)")
    values = sorted(lognormal.sample(rng) for _ in range(2001))
    assert 85 < values[1000] < 115  # the median parameter is the median
    for bad in ("fast", "normal(1)", "uniform(5, 1)", "-3", "lognormal(0, 1)", True):
        with pytest.raises(ValueError):
            parse_latency(bad)


def test_non_finite_latencies_are_refused() -> None:
    """A .nan/.inf (or 1e999) latency in a scenario is no latency a fault can add: refused like any bad value."""
    for bad in (float("nan"), float("inf"), "nan", "inf", "1e999", "normal(1e999, 1)", "uniform(0, 1e999)"):
        with pytest.raises(ValueError):
            parse_latency(bad)


@pytest.mark.parametrize(
    ("fault", "key", "words"),
    [
        ({"type": "hang", "exchange": "okx", "probes": 5}, "faults.0.probes", "probe name"),
        ({"type": "hang", "exchange": "okx", "probes": {"ticker": 1}}, "faults.0.probes", "probe name"),
        ({"type": "hang", "exchange": "okx", "paths": 5}, "faults.0.paths", "path pattern"),
        ({"type": "latency", "exchange": "okx", "ms": float("inf")}, "faults.0.ms", "finite"),
    ],
)
def test_hostile_filters_are_scenario_errors_not_type_errors(fault: dict[str, object], key: str, words: str) -> None:
    """``probes: 5`` / ``paths: 5`` escaped validation as a TypeError ('int' object is not iterable)."""
    with pytest.raises(ScenarioError) as info:
        scenario_from_data({"faults": [fault]}, "x.yaml")
    problem = info.value.problems[0]
    assert problem.key == key and words in problem.message, info.value.render()


def test_linear_faults_interpolate() -> None:
    drift = make_fault({"type": "drift", "exchange": "okx", "start": 10, "duration": 10, "to_ms": 200})
    assert isinstance(drift, DriftFault)
    assert [drift.added_ms(t) for t in (0, 5, 10, 99)] == [0, 100, 200, 200]
    climb = make_fault(
        {"type": "weight_climb", "exchange": "binance", "duration": 4, "usage_from": 0.2, "usage_to": 1.0}
    )
    assert isinstance(climb, WeightClimbFault)
    assert climb.usage(2) == pytest.approx(0.6)
    skew = make_fault({"type": "clock_skew", "exchange": "okx", "duration": 10, "offset_ms": 0, "to_ms": -1000})
    assert isinstance(skew, ClockSkewFault)
    assert skew.skew_ms(5) == -500


def test_fault_types_are_all_registered() -> None:
    assert set(FAULT_TYPES) == {
        "latency", "drift", "errors", "rate_limit", "ban", "weight_climb", "hang", "refuse", "reset",
        "malformed", "html", "clock_skew", "maintenance", "huge_body", "wrong_types",
        "ws_stall", "ws_drip", "ws_burst", "ws_seq_gap", "ws_lag", "ws_heartbeat", "ws_disconnect",
        "ws_shutdown", "ws_malformed", "ws_huge",
    }  # fmt: skip


# ---------------------------------------------------------------- validation errors


def test_file_scenario_loads_with_its_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "faults:\n  - {exchange: okx, type: reset, start: 1s, end: 2s}\n", "mine.yaml")
    scenario = load_scenario(str(path))
    assert scenario.name == "mine"
    fault = scenario.faults[0]
    assert (fault.start, fault.end_s, fault.exchanges()) == (1, 2, ("okx",))


@pytest.mark.parametrize(
    ("text", "key", "line", "words"),
    [
        (
            "faults:\n  - exchange: okx\n    type: errors\n    status: 500\n    colour: red\n",
            "faults.0.colour",
            5,
            "unknown key",
        ),
        (
            "faults:\n  - exchange: okx\n    type: errors\n    rate: 2\n    status: 500\n",
            "faults.0.rate",
            4,
            "less than or equal to 1",
        ),
        ("faults:\n  - exchange: okx\n    type: explode\n", "faults.0", 2, "unknown fault type"),
        ("faults:\n  - exchange: kraken\n    type: hang\n", "faults.0.exchange", 2, "unknown exchange"),
        ("faults:\n  - exchange: okx\n    type: hang\n    start: soon\n", "faults.0.start", 4, "not a duration"),
        (
            "faults:\n  - exchange: okx\n    type: hang\n    duration: 2s\n    end: 5s\n",
            "faults.0",
            2,
            "either duration or end",
        ),
        ("faults:\n  - exchange: okx\n    type: ban\n", "faults.0", 2, "does not apply to okx"),
        ("faults:\n  - exchange: okx\n    type: errors\n", "faults.0", 2, "status and/or code"),
        ("faults:\n  - exchange: okx\n    type: refuse\n    probes: [ticker]\n", "faults.0", 2, "whole port"),
        ("faults:\n  - exchange: okx\n    type: latency\n    ms: fast\n", "faults.0.ms", 4, "not a latency"),
        ("faults:\n  - exchange: okx\n    type: hang\n    probes: [pong]\n", "faults.0.probes", 4, "unknown probe"),
        ("loop: true\nfaults: []\n", "", None, "needs a duration"),
        (
            "faults:\n  - type: hang\n    exchange: okx\n    duration: 1s\n    rate: 0.5\n    start: 0\n"
            "  - {exchange: okx, type: clock_skew, offset_ms: 1, rate: 0.5}\n",
            "faults.1",
            7,
            "has no rate",
        ),
    ],
)
def test_validation_errors_name_file_key_and_line(
    tmp_path: Path, text: str, key: str, line: int | None, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    rendered = info.value.render()
    assert str(path) in rendered
    problem = info.value.problems[0]
    assert problem.key == key, rendered
    assert words in problem.message, rendered
    if line is not None:
        assert problem.line == line, rendered


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "faults:\n  - {exchange: okx, type: hang, typo: 1}\n  - {exchange: nope, type: hang}\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert [p.key for p in info.value.problems] == ["faults.0.typo", "faults.1.exchange"]


def test_malformed_yaml_missing_file_and_unknown_builtin(tmp_path: Path) -> None:
    path = write(tmp_path, "faults: [\n  - {")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert "malformed YAML" in info.value.render() and info.value.problems[0].line is not None
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError) as info2:
        load_scenario("nonesuch")
    assert "outage" in info2.value.render()  # lists what exists
    with pytest.raises(ScenarioError, match="mapping"):
        scenario_from_data(["a", "list"], "x.yaml")


def test_errors_fault_code_forms() -> None:
    okx = make_fault({"type": "errors", "exchange": "okx", "code": "51008_1000"})
    assert isinstance(okx, ErrorsFault)
    with pytest.raises(ValueError):
        make_fault({"type": "errors", "exchange": "okx", "code": "oops"})


def test_acceptable_outcomes_stay_defensible() -> None:
    bybit_internal = make_fault({"type": "errors", "exchange": "bybit", "code": 10016})
    assert bybit_internal.acceptable_outcomes("bybit") == {Outcome.EXCHANGE_ERROR, Outcome.HTTP_5XX}
    bad_symbol = make_fault({"type": "errors", "exchange": "binance", "status": 400, "code": -1121})
    assert bad_symbol.acceptable_outcomes("binance") == {Outcome.HTTP_4XX, Outcome.EXCHANGE_ERROR}
    html = make_fault({"type": "html", "exchange": "bybit", "status": 403})
    assert Outcome.IP_BANNED in html.acceptable_outcomes("bybit")
    assert Outcome.IP_BANNED in html.acceptable_outcomes("binance")  # a WAF block
    assert Outcome.IP_BANNED not in html.acceptable_outcomes("okx")
