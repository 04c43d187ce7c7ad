"""The Kafka contract: keys and JSON values of klines.<exchange> and market.<exchange>.

Bronze keeps these values raw; silver parses them with an explicit schema for each
schema_version. Change a field's meaning only with a new schema_version.
"""
from __future__ import annotations

import json
from typing import Any

from common.intervals import INTERVAL_MS
from common.exchange.market_data import Kline, MarketPoint

SCHEMA_VERSION = 1


def kline_key(symbol: str, interval: str) -> str:
    return f"{symbol}|{interval}"


def market_key(symbol: str, metric: str) -> str:
    return f"{symbol}|{metric}"


def kline_message(*, exchange: str, symbol: str, exchange_symbol: str, ccxt_symbol: str, interval: str,
                  kline: Kline, source: str, produced_at_ms: int, quote_volume: float | None = None,
                  trade_count: int | None = None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "exchange": exchange,
        "symbol": symbol,
        "exchange_symbol": exchange_symbol,
        "ccxt_symbol": ccxt_symbol,
        "interval": interval,
        "open_time": kline.open_time_ms,
        "close_time": kline.open_time_ms + INTERVAL_MS[interval] - 1,
        "open": kline.open,
        "high": kline.high,
        "low": kline.low,
        "close": kline.close,
        "volume": kline.volume,
        "quote_volume": quote_volume,
        "trade_count": trade_count,
        "source": source,
        "produced_at": produced_at_ms,
    }


def market_message(*, exchange: str, symbol: str, exchange_symbol: str, ccxt_symbol: str, point: MarketPoint,
                   source: str, produced_at_ms: int) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "exchange": exchange,
        "symbol": symbol,
        "exchange_symbol": exchange_symbol,
        "ccxt_symbol": ccxt_symbol,
        "metric": point.metric,
        "period": point.period,
        "ts": point.ts_ms,
        "value": point.value,
        "value_usd": point.value_usd,
        "long_share": point.long_share,
        "short_share": point.short_share,
        "source": source,
        "produced_at": produced_at_ms,
    }


def encode(message: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON, and a NaN price must fail here, not in silver.
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
