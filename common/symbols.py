"""Canonical symbols (`BTCUSDT`) and their names elsewhere: ccxt's unified symbol
(`BTC/USDT:USDT` for a USDT-margined perpetual) and each exchange's own id, which comes
from ccxt's market data (binance `BTCUSDT`, bybit `BTCUSDT`, okx `BTC-USDT-SWAP`).

The symbol map says which market a canonical symbol is on each exchange: by the naming
convention, unless `[exchanges.symbol_map.<exchange>]` in conf/app.toml names another (an
exchange that lists PEPE only as `1000PEPE/USDT:USDT`). `check_markets` holds it against
the markets ccxt loads from the exchange.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

QUOTE = "USDT"


def ccxt_symbol(canonical: str, market_type: str = "swap") -> str:
    if not canonical.endswith(QUOTE) or len(canonical) <= len(QUOTE):
        raise ValueError(f"{canonical!r} is not a canonical USDT symbol like 'BTCUSDT'")
    base = canonical[: -len(QUOTE)]
    return f"{base}/{QUOTE}:{QUOTE}" if market_type == "swap" else f"{base}/{QUOTE}"


def canonical_symbol(unified: str) -> str:
    """'BTC/USDT:USDT' or 'BTC/USDT' -> 'BTCUSDT'."""
    pair = unified.split(":")[0]
    base, _, quote = pair.partition("/")
    if not base or not quote:
        raise ValueError(f"{unified!r} is not a ccxt symbol like 'BTC/USDT:USDT'")
    return f"{base}{quote}"


def conventional_exchange_symbol(exchange: str, canonical: str, market_type: str = "swap") -> str:
    """The exchange's id for a USDT market by its naming convention, for data that comes
    without ccxt's market list (file replays). Live producers take the id from ccxt."""
    return exchange_id_of(exchange, ccxt_symbol(canonical, market_type))


def exchange_id_of(exchange: str, unified: str) -> str:
    """The exchange's id of a ccxt symbol by the exchange's naming convention."""
    pair, _, settle = unified.partition(":")
    base, _, quote = pair.partition("/")
    if exchange == "okx":
        return f"{base}-{quote}-SWAP" if settle else f"{base}-{quote}"
    return f"{base}{quote}"


@dataclass(frozen=True)
class SymbolMap:
    market_type: str  # swap | spot
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # exchange -> canonical -> ccxt

    def ccxt_symbol(self, exchange: str, canonical: str) -> str:
        return self.overrides.get(exchange, {}).get(canonical) or ccxt_symbol(canonical, self.market_type)

    def exchange_symbol(self, exchange: str, canonical: str) -> str:
        """By convention; the producers take the id from the exchange's market list instead."""
        return exchange_id_of(exchange, self.ccxt_symbol(exchange, canonical))


@dataclass(frozen=True)
class SymbolCheck:
    exchange: str
    symbol: str  # canonical
    ccxt_symbol: str
    exchange_symbol: str | None  # the market's id, when the exchange lists it
    problem: str | None  # None = the market is listed, active and of the configured type

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_markets(symbol_map: SymbolMap, exchange: str, symbols: list[str],
                  markets: Mapping[str, Mapping]) -> list[SymbolCheck]:
    """Each configured symbol against ccxt's market list of one exchange (`load_markets()`)."""
    checks = []
    for symbol in symbols:
        unified = symbol_map.ccxt_symbol(exchange, symbol)
        market = markets.get(unified)
        problem = None
        if market is None:
            base = unified.split("/")[0]
            similar = sorted(s for s, m in markets.items() if base in str(m.get("base", "")) and
                             m.get("type") == symbol_map.market_type)[:5]
            problem = f"{exchange} lists no market {unified}" + (
                f" (similar: {', '.join(similar)}; set it in [exchanges.symbol_map.{exchange}])" if similar else "")
        elif market.get("type") != symbol_map.market_type:
            problem = f"{unified} is a {market.get('type')} market on {exchange}, not {symbol_map.market_type}"
        elif market.get("active") is False:
            problem = f"{unified} is not active on {exchange} (delisted or suspended)"
        checks.append(SymbolCheck(exchange, symbol, unified, market.get("id") if market else None, problem))
    return checks
