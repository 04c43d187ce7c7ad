"""`cryptobot symbols`: the symbol map (which market each configured symbol is on each
exchange) and, with --check, the map held against the markets ccxt loads from each exchange.
Exit status 1 when a configured market is missing or inactive, so a deployment can gate on it.
"""
from __future__ import annotations

from common.config import AppConfig
from common.symbols import SymbolCheck, check_markets


def check_exchange(config: AppConfig, exchange: str) -> list[SymbolCheck]:
    from streaming.producers.run import build_market_data_client

    market_data = build_market_data_client(exchange, config)
    market_data.load_markets()
    return check_markets(config.exchanges.symbol_map, exchange, list(config.exchanges.symbols),
                         market_data.markets())


def run(config: AppConfig, check: bool) -> int:
    symbol_map = config.exchanges.symbol_map
    rows = [("exchange", "symbol", "ccxt symbol", "exchange id", "status")]
    failed = False
    for exchange in config.exchanges.enabled:
        checks, unchecked = None, "not checked"
        if check:
            try:
                checks = {c.symbol: c for c in check_exchange(config, exchange)}
            except Exception as error:  # noqa: BLE001 - an unreachable exchange is reported, not fatal
                unchecked = f"not checked: markets could not be loaded ({type(error).__name__}: {error})"[:160]
        for symbol in config.exchanges.symbols:
            result = checks.get(symbol) if checks else None
            if result is None:
                rows.append((exchange, symbol, symbol_map.ccxt_symbol(exchange, symbol),
                             symbol_map.exchange_symbol(exchange, symbol), unchecked))
                continue
            failed |= not result.ok
            rows.append((exchange, symbol, result.ccxt_symbol, result.exchange_symbol or "-",
                         "ok" if result.ok else f"FAILED: {result.problem}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 1 if failed else 0
