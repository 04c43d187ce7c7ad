"""Canonical symbols (`BTCUSDT`) and their names elsewhere: ccxt's unified symbol
(`BTC/USDT:USDT` for a USDT-margined perpetual) and each exchange's own id, which comes
from ccxt's market data (binance `BTCUSDT`, bybit `BTCUSDT`, okx `BTC-USDT-SWAP`)."""
from __future__ import annotations

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
    base = canonical[: -len(QUOTE)]
    if exchange == "okx":
        return f"{base}-{QUOTE}-SWAP" if market_type == "swap" else f"{base}-{QUOTE}"
    return canonical
