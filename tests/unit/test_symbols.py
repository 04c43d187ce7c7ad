"""The symbol map: naming conventions, overrides from config, and the check against ccxt's markets."""
import pytest

from common.config import PROJECT_ROOT, ConfigError, load_config
from common.symbols import SymbolMap, check_markets, conventional_exchange_symbol


def config_with(tmp_path, extra: str):
    path = tmp_path / "app.toml"
    path.write_text((PROJECT_ROOT / "conf" / "app.toml").read_text().replace(
        "[streaming]", extra + "\n[streaming]", 1))
    return load_config(path, env={})


def test_conventions_per_exchange():
    symbols = SymbolMap("swap")
    assert [symbols.exchange_symbol(ex, "BTCUSDT") for ex in ("binance", "bybit", "okx")] == [
        "BTCUSDT", "BTCUSDT", "BTC-USDT-SWAP"]
    assert symbols.ccxt_symbol("okx", "BTCUSDT") == "BTC/USDT:USDT"
    assert SymbolMap("spot").exchange_symbol("okx", "ETHUSDT") == "ETH-USDT"
    assert conventional_exchange_symbol("okx", "ETHUSDT") == "ETH-USDT-SWAP"


def test_an_override_from_config_names_another_market_on_one_exchange(tmp_path):
    config = config_with(tmp_path, '[exchanges.symbol_map.binance]\nETHUSDT = "1000ETH/USDT:USDT"\n')
    symbols = config.exchanges.symbol_map
    assert symbols.ccxt_symbol("binance", "ETHUSDT") == "1000ETH/USDT:USDT"
    assert symbols.exchange_symbol("binance", "ETHUSDT") == "1000ETHUSDT"
    assert symbols.ccxt_symbol("bybit", "ETHUSDT") == "ETH/USDT:USDT"  # the others keep the convention


@pytest.mark.parametrize("table, message", [
    ('[exchanges.symbol_map.kraken]\nBTCUSDT = "BTC/USDT:USDT"', "[exchanges.symbol_map.kraken]: unknown exchange"),
    ('[exchanges.symbol_map.okx]\nDOGEUSDT = "DOGE/USDT:USDT"', "DOGEUSDT: not one of [exchanges] symbols"),
    ('[exchanges.symbol_map.okx]\nBTCUSDT = "BTC/USDT"', "expected a ccxt swap symbol like 'BASE/USDT:USDT'"),
    ('[exchanges.symbol_map.okx]\nBTCUSDT = 5', "expected a ccxt swap symbol"),
])
def test_a_bad_override_is_refused_naming_it(tmp_path, table, message):
    with pytest.raises(ConfigError) as err:
        config_with(tmp_path, table)
    assert message in str(err.value)


MARKETS = {  # the shape of ccxt's exchange.markets
    "BTC/USDT:USDT": {"id": "BTCUSDT", "base": "BTC", "type": "swap", "active": True},
    "BTC/USDT": {"id": "BTCUSDT", "base": "BTC", "type": "spot", "active": True},
    "1000PEPE/USDT:USDT": {"id": "1000PEPEUSDT", "base": "1000PEPE", "type": "swap", "active": True},
    "LUNA/USDT:USDT": {"id": "LUNAUSDT", "base": "LUNA", "type": "swap", "active": False},
    "SOL/USDT": {"id": "SOLUSDT", "base": "SOL", "type": "spot", "active": True},
}


def test_check_markets_names_each_problem():
    checks = check_markets(SymbolMap("swap"), "binance", ["BTCUSDT", "PEPEUSDT", "LUNAUSDT", "SOLUSDT"], MARKETS)
    assert [(c.symbol, c.exchange_symbol, c.problem) for c in checks] == [
        ("BTCUSDT", "BTCUSDT", None),
        ("PEPEUSDT", None, "binance lists no market PEPE/USDT:USDT (similar: 1000PEPE/USDT:USDT; "
                           "set it in [exchanges.symbol_map.binance])"),
        ("LUNAUSDT", "LUNAUSDT", "LUNA/USDT:USDT is not active on binance (delisted or suspended)"),
        ("SOLUSDT", None, "binance lists no market SOL/USDT:USDT"),
    ]


def test_a_mapped_symbol_passes_the_check():
    symbols = SymbolMap("swap", {"binance": {"PEPEUSDT": "1000PEPE/USDT:USDT"}})
    [check] = check_markets(symbols, "binance", ["PEPEUSDT"], MARKETS)
    assert check.ok and check.exchange_symbol == "1000PEPEUSDT"
    [spot] = check_markets(SymbolMap("spot"), "binance", ["BTCUSDT"], MARKETS)
    assert spot.ok and spot.ccxt_symbol == "BTC/USDT"
