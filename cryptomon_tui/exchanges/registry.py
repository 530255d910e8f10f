"""Adapter registry: config kind -> adapter class, and construction from a config section."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptomon_tui.exchanges.base import ExchangeAdapter
from cryptomon_tui.exchanges.binance import BinanceFuturesAdapter, BinanceSpotAdapter
from cryptomon_tui.exchanges.bybit import BybitAdapter
from cryptomon_tui.exchanges.deribit import DeribitAdapter
from cryptomon_tui.exchanges.generic import GenericAdapter
from cryptomon_tui.exchanges.okx import OkxAdapter

if TYPE_CHECKING:
    from cryptomon_tui.config.exchanges import ExchangeConfig

ADAPTERS: dict[str, type[ExchangeAdapter]] = {
    BinanceSpotAdapter.kind: BinanceSpotAdapter,
    BinanceFuturesAdapter.kind: BinanceFuturesAdapter,
    BybitAdapter.kind: BybitAdapter,
    OkxAdapter.kind: OkxAdapter,
    DeribitAdapter.kind: DeribitAdapter,
    GenericAdapter.kind: GenericAdapter,
}


def adapter_class(kind: str) -> type[ExchangeAdapter]:
    """The class for a config ``kind``; KeyError names the known kinds."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise KeyError(f"unknown exchange kind {kind!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def create_adapter(name: str, cfg: ExchangeConfig) -> ExchangeAdapter:
    """Build the adapter for one configured exchange (``cfg.kind`` is resolved by the config).

    Raises ValueError for settings the adapter cannot use (a bad symbol scheme, a generic
    condition that does not parse), so ``config check`` can report them.
    """
    kind = cfg.kind
    if kind is None:
        from cryptomon_tui.config.exchanges import KIND_ALIASES

        kind = KIND_ALIASES.get(name.lower(), "generic" if cfg.url else None)  # type: ignore[assignment]
        if kind is None:
            raise ValueError(f"exchange {name!r} has no kind")
    cls = adapter_class(kind)
    if issubclass(cls, GenericAdapter):
        return cls.from_config(name, cfg)
    return cls(symbol=cfg.symbol, name=name)
