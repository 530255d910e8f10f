"""Offline verdicts for situations built from ProbeResults the way the probing layer records them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptomon_tui.analysis.context import WindowStats, build_context
from cryptomon_tui.analysis.model import AnalysisSeverity
from cryptomon_tui.analysis.offline import OfflineAnalyzer
from cryptomon_tui.config import Config
from cryptomon_tui.kernel.results import Outcome
from cryptomon_tui.kernel.severity import Severity
from tests.fakes import analysis_scenarios as sc


def analyse(s: sc.Scenario, config: Config | None = None):  # type: ignore[no-untyped-def]
    ctx = build_context(s.incident, s.stats, s.results, s.others, config or Config(), now=s.now)
    return OfflineAnalyzer().analyze_sync(ctx)


def test_all_exchanges_dns_connect_at_once_is_the_users_network() -> None:
    a = analyse(sc.local_dns_outage())
    assert a.category == "local_network"
    assert "DNS" in a.root_cause and "not the exchanges" in a.root_cause
    assert a.severity is AnalysisSeverity.CRITICAL
    assert "resolv" in a.recommended_action
    assert a.confidence >= 0.9
    assert any("began within" in e for e in a.evidence)


def test_one_exchange_dns_failing_is_not_blamed_on_the_users_network() -> None:
    s = sc.local_dns_outage()
    # only binance fails; the others keep answering
    results = [r for r in s.results if r.exchange == "binance" or r.ok]
    results += sc.all_healthy(sc.T0 + 300, sc.T0 + 345, skip=("binance",))
    s2 = sc.Scenario("one", sc.incident("exchange_down", "binance", sc.T0 + 310), results, now=s.now)
    a = analyse(s2)
    assert a.category == "exchange_unreachable"
    assert "binance" in a.root_cause and "do" in a.root_cause


def test_binance_429_then_418_is_an_ip_ban_until_the_time_in_the_message() -> None:
    s = sc.binance_ip_ban()
    a = analyse(s)
    assert a.category == "ip_banned"
    assert a.severity is AnalysisSeverity.CRITICAL
    assert "2023-11-14 22:28:20 UTC" in a.root_cause  # 1700000900000 ms from the 418 message
    assert "6,000" in a.root_cause and "429" in a.root_cause
    assert "split bots across IPs" in a.recommended_action and "reduce polling" in a.recommended_action
    assert "22:28:20" in a.estimated_recovery and "in 11m" in a.estimated_recovery


def test_ban_time_is_read_from_the_message_when_the_result_lacks_ban_until() -> None:
    s = sc.binance_ip_ban()
    stripped = [
        sc.ProbeResult(
            r.exchange, r.probe, r.started_at, r.latency_ms, r.outcome, r.http_status, r.error_code, r.error_message
        )
        for r in s.results
    ]
    inc = s.incident.with_changes(ban_until=None)
    a = analyse(sc.Scenario("ban", inc, stripped, now=s.now))
    assert a.category == "ip_banned"
    assert "22:28:20" in a.root_cause


def test_futures_ban_cites_the_futures_limit() -> None:
    s = sc.binance_ip_ban()
    res = [
        sc.ProbeResult(
            "binance_futures",
            r.probe,
            r.started_at,
            r.latency_ms,
            r.outcome,
            r.http_status,
            r.error_code,
            r.error_message,
            ban_until=r.ban_until,
        )
        for r in s.results
        if r.exchange == "binance"
    ]
    inc = sc.incident("ip_banned", "binance_futures", sc.T0 + 210, Severity.CRITICAL)
    a = analyse(sc.Scenario("fban", inc, res, now=s.now))
    assert a.category == "ip_banned" and "2,400" in a.root_cause


@pytest.mark.parametrize("kind,code", [("binance", "-1021"), ("bybit", "10002")])
def test_timestamp_errors_with_growing_offset_mean_the_host_clock_drifts(kind: str, code: str) -> None:
    a = analyse(sc.clock_drift(kind))
    assert a.category == "clock_skew"
    assert "clock drifts" in a.root_cause and code in a.root_cause
    assert "ahead of" in a.root_cause  # offset is negative: exchange time - local < 0
    assert "chrony" in a.recommended_action and "timedatectl" in a.recommended_action
    assert any("ms/min" in e for e in a.evidence)
    assert a.confidence >= 0.9


def test_clock_offset_alone_over_the_limit_is_flagged_without_errors() -> None:
    s = sc.clock_drift("binance")
    res = [r for r in s.results if r.ok]
    a = analyse(sc.Scenario("c", sc.incident("clock_offset", "binance", sc.T0 + 500), res, now=s.now))
    assert a.category == "clock_skew"
    assert a.confidence < 0.9


def test_okx_50001_is_maintenance_on_the_exchange_side() -> None:
    a = analyse(sc.okx_maintenance())
    assert a.category == "maintenance"
    assert "okx" in a.root_cause and "exchange side" in a.root_cause


def test_status_endpoint_maintenance_gives_the_announced_end() -> None:
    a = analyse(sc.okx_maintenance(via_status=True))
    assert a.category == "maintenance"
    assert "planned maintenance until 2023-11-14 23:13:20 UTC" in a.root_cause
    assert "in 57m" in a.estimated_recovery
    assert a.severity is AnalysisSeverity.MEDIUM


def test_maintenance_until_from_window_stats_counts_too() -> None:
    s = sc.okx_maintenance()
    stats = {"okx": {"maintenance_until": int(sc.MAINT_END * 1000)}}  # ms are accepted
    a = analyse(sc.Scenario("m", s.incident, s.results, stats=stats, now=s.now))
    assert "until 2023-11-14 23:13:20 UTC" in a.root_cause


def test_p99_up_tenfold_without_errors_on_one_exchange_is_exchange_degradation() -> None:
    a = analyse(sc.bybit_slow())
    assert a.category == "exchange_degraded"
    assert "10x" in a.root_cause and "bybit" in a.root_cause
    assert a.severity is AnalysisSeverity.MEDIUM


def test_latency_baseline_is_derived_from_results_when_metrics_have_none() -> None:
    s = sc.bybit_slow()
    a = analyse(sc.Scenario("slow", s.incident.with_changes(peak={}), s.results, now=s.now))
    assert a.category == "exchange_degraded"


def test_every_exchange_slow_is_local_congestion() -> None:
    res = []
    for ex in sc.EXCHANGES:
        res += sc.healthy(ex, sc.T0, sc.T0 + 300, latency_ms=50)
        res += sc.healthy(ex, sc.T0 + 300, sc.T0 + 600, latency_ms=900)
    a = analyse(sc.Scenario("slow", sc.incident("latency_p99", "bybit", sc.T0 + 330), res, now=sc.T0 + 600))
    assert a.category == "local_latency"


def test_5xx_on_one_endpoint_only_blames_that_endpoint() -> None:
    a = analyse(sc.okx_endpoint_5xx())
    assert a.category == "endpoint_5xx"
    assert "book endpoint" in a.root_cause
    assert any("other okx endpoints answer normally" in e for e in a.evidence)


def test_5xx_on_every_endpoint_is_an_exchange_outage() -> None:
    s = sc.okx_endpoint_5xx()
    res = [r for r in s.results if r.exchange != "okx" or not r.ok]
    res += [sc.result("okx", "ticker", sc.T0 + 200 + j, Outcome.HTTP_5XX, http_status=500) for j in range(3)]
    a = analyse(sc.Scenario("x", s.incident, res, now=s.now))
    assert a.category == "exchange_5xx"


def test_auth_errors_point_at_the_key_setup() -> None:
    a = analyse(sc.bybit_auth())
    assert a.category == "auth"
    assert "10010" in a.root_cause
    assert "whitelist" in a.recommended_action
    assert "not recover by itself" in a.estimated_recovery


def test_okx_demo_key_on_live_is_named() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 100)
    res.append(
        sc.result(
            "okx",
            "account",
            sc.T0 + 90,
            Outcome.AUTH,
            http_status=401,
            error_code="50101",
            error_message="APIKey does not match current environment.",
        )
    )
    a = analyse(sc.Scenario("k", sc.incident("auth_failed", "okx", sc.T0 + 90), res, now=sc.T0 + 100))
    assert a.category == "auth" and "environment" in a.recommended_action


def test_rate_limit_usage_climbing_warns_before_errors() -> None:
    a = analyse(sc.binance_usage_climbing())
    assert a.category == "rate_limit_climbing"
    assert a.severity is AnalysisSeverity.MEDIUM
    assert "429" in a.root_cause


def test_429s_without_a_ban_are_rate_limiting() -> None:
    s = sc.binance_ip_ban()
    res = [r for r in s.results if r.outcome is not Outcome.IP_BANNED]
    inc = sc.incident("rate_limited", "binance", sc.T0 + 200)
    a = analyse(sc.Scenario("rl", inc, res, now=sc.T0 + 210))
    assert a.category == "rate_limited"
    assert "Retry-After" in a.estimated_recovery and "20s" in a.estimated_recovery


def test_timeouts_on_one_exchange_only() -> None:
    a = analyse(sc.deribit_timeouts())
    assert a.category == "exchange_unreachable"
    assert "Only deribit times out" in a.root_cause
    assert "mtr" in a.recommended_action


def test_html_instead_of_json_is_a_proxy_page() -> None:
    a = analyse(sc.binance_proxy_page())
    assert a.category == "proxy_page"


def test_unexpected_json_shape_is_an_api_change() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 100)
    res += [
        sc.result(
            "bybit",
            "ticker",
            sc.T0 + 60 + j,
            Outcome.BAD_PAYLOAD,
            http_status=200,
            error_message="missing field result.list[0].bid1Price",
        )
        for j in range(5)
    ]
    a = analyse(sc.Scenario("api", sc.incident("bad_payload", "bybit", sc.T0 + 60), res, now=sc.T0 + 100))
    assert a.category == "api_changed"


def test_open_circuit_is_mentioned_with_the_failure_that_opened_it() -> None:
    a = analyse(sc.circuit_open())
    assert a.category == "exchange_unreachable"
    assert any("circuit open" in e for e in a.evidence)


def test_open_circuit_alone_still_explains_itself() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 100, skip=("okx",))
    res += [sc.result("okx", "ticker", sc.T0 + 50 + j, Outcome.SKIPPED_OPEN_CIRCUIT) for j in range(5)]
    a = analyse(sc.Scenario("c", sc.incident("exchange_down", "okx", sc.T0 + 50), res, now=sc.T0 + 100))
    assert a.category == "circuit_open"


def test_no_evidence_gives_an_honest_low_confidence_answer() -> None:
    a = analyse(sc.Scenario("none", sc.incident("mystery", "okx", sc.T0), [], now=sc.T0 + 10))
    assert a.category == "unclassified" and a.confidence <= 0.3
    assert a.source == "offline"


def test_window_stats_are_read_defensively() -> None:
    stats = WindowStats.from_dict(
        {
            "attempts": "12",
            "error_rate": None,
            "p99_ms": "bad",
            "counts": {Outcome.TIMEOUT: 3, "ok": "9"},
            "rate_limit_peak": 87,  # a percentage
            "clock_offset_history": [[1_700_000_000_000, -5], {"ts": 1_700_000_060, "offset_ms": -20}, 7, "x"],
            "ban_until": 1_700_000_900_000,
            "probes": {"ticker": {"p99_ms": 10}, "bad": 3},
            "unknown_key": object(),
        }
    )
    assert stats.attempts == 12 and stats.error_rate is None and stats.p99_ms is None
    assert stats.counts == {"timeout": 3, "ok": 9}
    assert stats.rate_limit_peak == pytest.approx(0.87)
    assert stats.clock_offset_history == [(1_700_000_000.0, -5.0), (1_700_000_060.0, -20.0), (None, 7.0)]
    assert stats.ban_until == 1_700_000_900.0
    assert list(stats.probes) == ["ticker"]
    assert WindowStats.from_dict(None) == WindowStats()


def test_metrics_stats_win_over_derived_but_gaps_are_filled() -> None:
    s = sc.bybit_slow()
    ctx = build_context(s.incident, {"bybit": {"p99_ms": 999.0}}, s.results, [], Config(), now=s.now)
    st = ctx.stats_for("bybit")
    assert st.p99_ms == 999.0
    assert st.attempts and st.attempts > 0  # from the results
    assert "ticker" in st.probes


def test_sporadic_resets_are_intermittent_not_an_outage() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 120)
    res += [
        sc.result("deribit", "ticker", sc.T0 + 30 + j * 20, Outcome.RESET, error_message="Connection reset by peer")
        for j in range(4)
    ]
    a = analyse(sc.Scenario("r", sc.incident("error_rate", "deribit", sc.T0 + 50), res, now=sc.T0 + 120))
    assert a.category == "intermittent_network"
    assert "deribit's ticker endpoint" in a.root_cause and "intermittently" in a.root_cause


def test_cdn_403_page_is_a_proxy_or_waf_page() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 60)
    res += [
        sc.result(
            "okx",
            "ticker",
            sc.T0 + 30 + j,
            Outcome.HTTP_4XX,
            http_status=403,
            error_message="<html><head><title>403 Forbidden</title></head><body>cloudfront</body></html>",
        )
        for j in range(4)
    ]
    a = analyse(sc.Scenario("w", sc.incident("error_rate", "okx", sc.T0 + 30), res, now=sc.T0 + 60))
    assert a.category == "proxy_page"


def test_plain_404_names_the_config() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 60)
    res += [sc.result("bybit", "book", sc.T0 + 30 + j, Outcome.HTTP_4XX, http_status=404) for j in range(4)]
    a = analyse(sc.Scenario("n", sc.incident("error_rate", "bybit", sc.T0 + 30), res, now=sc.T0 + 60))
    assert a.category == "http_4xx" and "path does not exist" in a.root_cause


def test_envelope_errors_without_a_code_are_exchange_side() -> None:
    res = sc.all_healthy(sc.T0, sc.T0 + 60)
    res += [
        sc.result(
            "bybit", "ticker", sc.T0 + 30 + j, Outcome.EXCHANGE_ERROR, http_status=200, error_message="Server error."
        )
        for j in range(4)
    ]
    a = analyse(sc.Scenario("e", sc.incident("error_rate", "bybit", sc.T0 + 30), res, now=sc.T0 + 60))
    assert a.category == "exchange_error" and "exchange side" in a.root_cause


def test_ip_ban_action_states_a_sub_second_probe_interval() -> None:
    """The demo probes every 250 ms: the action said "this monitor probes every 0ms" (rounded)."""
    from cryptomon_tui.config import config_from_data

    config = config_from_data({"exchanges": {"binance": {"kind": "binance_spot", "interval": "250ms"}}})
    a = analyse(sc.binance_ip_ban(), config)
    assert "probes every 250ms" in a.recommended_action


_STAT_KEYS = ("attempts", "error_rate", "p50_ms", "p99_ms", "timeouts", "consecutive_failures", "counts",
              "rate_limit_peak", "clock_offset_ms", "clock_offset_history", "ban_until", "maintenance_until",
              "last_error_code", "baseline_p99_ms", "probes")
_hostile_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400), st.floats(),
    st.sampled_from(["inf", "-inf", "nan", "1e999", "NaN", "12", "1.5e3", "", "x"]), st.text(max_size=8),
)
_hostile_json = st.recursive(
    _hostile_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from([*_STAT_KEYS, "ok", "ts", "offset_ms"]), inner,
                                                     max_size=6)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(_STAT_KEYS), _hostile_json, max_size=10))
@settings(max_examples=150, deadline=None)
def test_window_stats_read_any_json_without_raising_and_keep_numbers_finite(data: dict[str, object]) -> None:
    """The metrics figures an analysis reads are narrowed by the kernel's helpers: whatever a stats dict holds
    ("inf" once became float inf and then OverflowError in int(); "nan" a ValueError), reading it never
    raises and every number that comes out is finite."""
    stats = WindowStats.from_dict(data)
    for s in (stats, *stats.probes.values()):
        numbers = [s.attempts, s.error_rate, s.p50_ms, s.p99_ms, s.timeouts, s.consecutive_failures,
                   s.rate_limit_peak, s.clock_offset_ms, s.ban_until, s.maintenance_until, s.baseline_p99_ms,
                   *s.counts.values(), *(o for _, o in s.clock_offset_history)]
        assert all(math.isfinite(n) for n in numbers if n is not None)
    assert isinstance(stats.to_brief(), dict)
