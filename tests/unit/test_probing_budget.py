"""The monitor's own budget: intervals stretched for endpoint limits and the budget share."""

from __future__ import annotations

import pytest

from cryptomon_tui.config.root import Config
from cryptomon_tui.probing.budget import plan_schedule
from tests.fakes.probing_fakes import fake_adapter_factory


def cfg(exchanges: dict, **probing: object) -> Config:
    return Config.model_validate({"exchanges": exchanges, "probing": probing})


def by_probe(plan: list) -> dict:
    return {(p.exchange, p.probe): p for p in plan}


def test_okx_status_is_stretched_to_its_endpoint_limit() -> None:
    plan = by_probe(plan_schedule(cfg({"okx": {"interval": "1s", "probes": ["status", "ticker"]}}, budget_share=1.0)))
    status = plan[("okx", "status")]
    assert status.interval_s == 5.1 and status.stretched  # 2 % under the endpoint's own limit
    assert status.min_gap_s > 5
    assert status.explain() == (
        "exchanges.okx.status runs every 5.1s, not 1s: OKX allows 1 call per 5s on /api/v5/system/status "
        "(we stay 2% under it)"
    )
    assert not plan[("okx", "ticker")].stretched and plan[("okx", "ticker")].interval_s == 1


def test_defaults_stay_inside_every_exchange_budget() -> None:
    from cryptomon_tui.exchanges.registry import create_adapter

    config = Config()
    plan = plan_schedule(config)
    assert {p.exchange for p in plan} == {"binance", "binance_futures", "bybit", "okx", "deribit"}
    for name, ex in config.enabled_exchanges().items():
        limit = create_adapter(name, ex).rate_limit
        used = sum(p.weight / p.interval_s for p in plan if p.exchange == name)
        assert used <= limit.per_second * 0.02 + 1e-9, name
    for item in plan:
        assert item.interval_s >= 5
        if item.stretched:
            assert "budget share" in item.explain() or "allows" in item.explain()


def test_budget_share_stretches_the_probes_of_an_exchange_to_one_common_interval() -> None:
    # Binance spot: 6000 weight/min = 100/s; 2 % = 2 weight/s. time(1)+ticker(2)+book(5) at 1 s = 8/s -> x4.
    plan = by_probe(plan_schedule(cfg({"binance": {"interval": "1s", "probes": ["time", "ticker", "book"]}})))
    for probe in ("time", "ticker", "book"):
        item = plan[("binance", probe)]
        assert item.stretched and item.interval_s == pytest.approx(4.0), item
        assert "2% budget share" in item.reason and "6000 weight per 1m" in item.reason
    used = sum(p.weight / p.interval_s for p in plan.values())
    assert used <= 2.0 + 1e-9


def test_per_exchange_share_overrides_the_global_one() -> None:
    plan = plan_schedule(cfg({"binance": {"interval": "1s", "probes": ["time", "ticker", "book"],
                                          "budget_share": 0.5}}))
    assert not any(p.stretched for p in plan)


def test_floors_and_budget_combine() -> None:
    # fake: 100 weight/s, share 1 % = 1/s. status has a 5 s floor, book an endpoint limit of 1 per 2 s.
    plan = by_probe(plan_schedule(cfg({"fx": {"kind": "bybit", "interval": "500ms",
                                              "probes": ["ping", "status", "book"]}}, budget_share=0.01),
                                  fake_adapter_factory))
    ping, status, book = plan[("fx", "ping")], plan[("fx", "status")], plan[("fx", "book")]
    assert status.interval_s >= 5 and book.interval_s >= 2 and book.min_gap_s >= 2
    assert sum(p.weight / p.interval_s for p in (ping, status, book)) <= 1.0 + 1e-9
    # water-filling: 1/T + 1/5.1 + 1/T = 1 -> T = 2.49 s; status stays at its own floor (5 s + 2 %)
    assert ping.interval_s == pytest.approx(2.5) and book.interval_s == pytest.approx(2.5)
    assert status.interval_s == 5.1 and "allows 1 call per 5s" in status.reason


def test_okx_at_1s_keeps_status_at_its_endpoint_limit_while_the_rest_share_the_budget() -> None:
    plan = by_probe(plan_schedule(cfg({"okx": {"interval": "1s"}})))
    # 70 requests per 2 s, 2 % = 0.7/s: 2/T + 1/5.1 = 0.7 -> T = 3.97 s
    assert plan[("okx", "time")].interval_s == pytest.approx(4.0)
    assert plan[("okx", "ticker")].interval_s == pytest.approx(4.0)
    assert plan[("okx", "status")].interval_s == 5.1
    assert "OKX allows 1 call per 5s on /api/v5/system/status" in plan[("okx", "status")].explain()


def test_unknown_probe_names_the_exchange_probe_and_valid_names() -> None:
    with pytest.raises(ValueError) as err:
        plan_schedule(cfg({"bybit": {"probes": ["time", "tickr"]}}))
    text = str(err.value)
    assert "exchanges.bybit.probes" in text and "'tickr'" in text and "ticker" in text and "status" in text


def test_account_probe_needs_credentials() -> None:
    with pytest.raises(ValueError, match=r"exchanges\.okx.*account.*credentials"):
        plan_schedule(cfg({"okx": {"probes": ["account"]}}))
    plan = plan_schedule(cfg({"okx": {"probes": ["account"], "credentials": {
        "api_key": "k", "api_secret": "s", "passphrase": "p"}}}))
    assert [p.probe for p in plan] == ["account"]


def test_disabled_exchanges_are_not_planned() -> None:
    plan = plan_schedule(cfg({"okx": {"enabled": False}, "bybit": {}}))
    assert {p.exchange for p in plan} == {"bybit"}
