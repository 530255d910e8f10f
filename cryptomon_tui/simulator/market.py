"""Prices that move a little (a random walk per asset) so simulated data looks live.

The walk is lazy: a price moves only when asked, by an amount scaled to the time since it was
last asked, so an idle simulator costs nothing.
"""

from __future__ import annotations

import math
import random
import zlib

# Rough USD levels; only the order of magnitude matters.
_BASE_USD: dict[str, float] = {
    "BTC": 65000.0,
    "ETH": 3400.0,
    "BNB": 580.0,
    "SOL": 150.0,
    "XRP": 0.52,
    "LTC": 80.0,
    "DOGE": 0.15,
    "ADA": 0.45,
    "TRX": 0.12,
    "USDT": 1.0,
    "USDC": 1.0,
    "FDUSD": 1.0,
    "BUSD": 1.0,
    "USD": 1.0,
}
_STABLE = frozenset({"USDT", "USDC", "FDUSD", "BUSD", "USD"})
_QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "USD", "BTC", "ETH", "BNB")
_VOL_PER_SQRT_S = 0.0004  # ~0.04 % per sqrt(second): visible ticks, no wild swings


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTCUSDT' -> (BTC, USDT); 'BTC-USDT-SWAP' -> (BTC, USDT); 'BTC-PERPETUAL' -> (BTC, USD)."""
    s = symbol.upper()
    if "-" in s or "_" in s:
        parts = s.replace("_", "-").split("-")
        base = parts[0]
        if len(parts) >= 2 and parts[1] in _BASE_USD:
            return base, parts[1]
        return base, "USD"
    for quote in _QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)], quote
    return s, "USD"


def _usd_level(asset: str) -> float:
    level = _BASE_USD.get(asset)
    if level is None:
        level = 1.0 + zlib.crc32(asset.encode()) % 997
    return level


class Market:
    """Shared mid prices per asset (so BTC moves together on every simulated exchange)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._usd: dict[str, float] = {}
        self._at: dict[str, float] = {}

    def _asset_usd(self, asset: str, now: float) -> float:
        if asset in _STABLE:
            return 1.0
        price = self._usd.get(asset)
        if price is None:
            price = _usd_level(asset)
        else:
            dt = now - self._at[asset]
            if dt <= 0.0:
                return price
            price *= math.exp(_VOL_PER_SQRT_S * math.sqrt(min(dt, 3600.0)) * self._rng.gauss(0.0, 1.0))
        self._usd[asset] = price
        self._at[asset] = now
        return price

    def mid(self, symbol: str, now: float) -> float:
        base, quote = split_symbol(symbol)
        return self._asset_usd(base, now) / self._asset_usd(quote, now)

    def quote(self, symbol: str, now: float, tick: float | None = None) -> tuple[float, float, float, float]:
        """(bid, bid_qty, ask, ask_qty) around the current mid, one tick apart."""
        mid = self.mid(symbol, now)
        if tick is None:
            tick = tick_for(mid)
        bid = math.floor(mid / tick) * tick
        ask = bid + tick
        bid_qty = round(self._rng.uniform(0.05, 8.0), 4)
        ask_qty = round(self._rng.uniform(0.05, 8.0), 4)
        return bid, bid_qty, ask, ask_qty


def tick_for(price: float) -> float:
    if price >= 1000:
        return 0.1
    if price >= 10:
        return 0.01
    if price >= 0.1:
        return 0.0001
    return 0.00000001


def decimals_for(tick: float) -> int:
    return max(0, -math.floor(math.log10(tick) + 1e-9))
