"""gold.trading_config values are typed and validated when read; bad ones are refused by name."""
import pytest

from common.config import ConfigError
from common.trading_config import PARAMS, default_rows, parse_trading_config, values_from_rows


def defaults(**changes):
    values = {row["param_name"]: row["param_value"] for row in default_rows()}
    values.update(changes)
    return values


def test_defaults_are_valid_and_match_the_original_workflow():
    config = parse_trading_config(defaults())
    assert config.risk_per_trade_pct == 1.0
    assert config.score_threshold_execute == 70
    assert config.score_threshold_watchlist == 50
    assert config.min_rr_ratio == 2.0
    assert config.paper_trading and config.use_testnet and not config.is_live
    assert config.trading_symbols == ("BTCUSDT", "ETHUSDT")


def test_every_parameter_has_a_description_and_a_known_type():
    for spec in PARAMS:
        assert spec.description, spec.name
        assert spec.value_type in ("bool", "int", "float", "str", "json_list"), spec.name


@pytest.mark.parametrize("name, value, message", [
    ("risk_per_trade_pct", "-1", "risk_per_trade_pct = '-1': out of range: allowed (0, 5]"),
    ("risk_per_trade_pct", "0", "out of range"),
    ("risk_per_trade_pct", "5.5", "out of range: allowed (0, 5]"),
    ("risk_per_trade_pct", "nan", "must be a finite number"),
    ("risk_per_trade_pct", "one", "must be a number"),
    ("score_threshold_execute", "101", "score_threshold_execute = '101': out of range: allowed [0, 100]"),
    ("score_threshold_watchlist", "-5", "out of range: allowed [0, 100]"),
    ("trading_exchange", "kraken", "trading_exchange = 'kraken': unknown value; allowed: binance, bybit"),
    ("use_testnet", "yes", "must be true or false"),
    ("max_open_positions", "2.5", "must be a whole number"),
    ("trading_symbols", "BTCUSDT", "must be a JSON array"),
    ("trading_symbols", '["btc-usdt"]', "not canonical symbols"),
    ("strategies", '["smc", "martingale"]', "unknown ['martingale']"),
])
def test_out_of_range_values_are_refused(name, value, message):
    with pytest.raises(ConfigError) as err:
        parse_trading_config(defaults(**{name: value}))
    assert message in str(err.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        parse_trading_config(defaults(risk_per_trade_pct="-1", trading_exchange="kraken"))
    assert "risk_per_trade_pct" in str(err.value) and "trading_exchange" in str(err.value)


def test_watchlist_threshold_above_execute_is_refused():
    with pytest.raises(ConfigError, match="must not exceed score_threshold_execute"):
        parse_trading_config(defaults(score_threshold_watchlist="80", score_threshold_execute="70"))


def test_missing_parameter_points_to_init():
    values = defaults()
    del values["min_rr_ratio"]
    with pytest.raises(ConfigError, match=r"min_rr_ratio: missing \(run `cryptobot init`"):
        parse_trading_config(values)


def test_two_rows_of_one_parameter_are_refused_naming_it():
    rows = [(r["param_name"], r["param_value"]) for r in default_rows()]
    assert parse_trading_config(values_from_rows(rows)) == parse_trading_config(defaults())
    with pytest.raises(ConfigError) as err:
        values_from_rows([*rows, ("risk_per_trade_pct", "1.0"), ("paper_trading", "false"), ("paper_trading", "true")])
    message = str(err.value)
    assert "risk_per_trade_pct: more than one row" in message and "paper_trading: more than one row" in message


def test_a_row_of_no_known_parameter_is_refused_by_name_never_showing_its_value():
    pasted = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
    with pytest.raises(ConfigError) as err:
        parse_trading_config(defaults(binance_api_secret=pasted))
    assert "'binance_api_secret': unknown parameter" in str(err.value) and pasted not in str(err.value)


def test_values_are_trimmed_and_case_insensitive_where_it_is_safe():
    config = parse_trading_config(defaults(trading_exchange=" Bybit ", paper_trading="FALSE"))
    assert config.trading_exchange == "bybit" and config.paper_trading is False


def test_live_trading_needs_the_environment_to_name_the_exchange():
    from dataclasses import replace

    from common.exchange.account import check_live_allowed

    defaults = parse_trading_config({r["param_name"]: r["param_value"] for r in default_rows()})
    check_live_allowed(defaults, env={})  # paper: nothing to confirm
    check_live_allowed(replace(defaults, paper_trading=False), env={})  # testnet
    live = replace(defaults, paper_trading=False, use_testnet=False)
    assert live.trading_exchange == "binance"
    for confirmation, why in [(None, "CRYPTOBOT_LIVE_TRADING is not set"),
                              ("yes", "CRYPTOBOT_LIVE_TRADING=yes no longer confirms it"),
                              ("true", "CRYPTOBOT_LIVE_TRADING=true is not binance"),
                              ("bybit", "CRYPTOBOT_LIVE_TRADING=bybit is not binance")]:
        env = {} if confirmation is None else {"CRYPTOBOT_LIVE_TRADING": confirmation}
        with pytest.raises(ConfigError) as err:
            check_live_allowed(live, env=env)
        assert "live trading refused" in str(err.value) and why in str(err.value)
        assert "Set CRYPTOBOT_LIVE_TRADING=binance to trade real money on binance" in str(err.value)
    check_live_allowed(live, env={"CRYPTOBOT_LIVE_TRADING": "binance"})
    check_live_allowed(replace(live, trading_exchange="bybit"), env={"CRYPTOBOT_LIVE_TRADING": "bybit"})


def test_live_trading_refuses_another_api_base_url_before_any_call(tmp_path):
    from dataclasses import replace

    from common.config import load_config
    from common.exchange.account import ccxt_gateway

    config = load_config(env={"CRYPTOBOT_EXECUTION__API_BASE_URL": "https://proxy.invalid:8443",
                              "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path)})
    live = replace(parse_trading_config(defaults()), paper_trading=False, use_testnet=False)
    env = {"CRYPTOBOT_LIVE_TRADING": "binance", "CRYPTOBOT_BINANCE_LIVE_API_KEY": "live-key-123456",
           "CRYPTOBOT_BINANCE_LIVE_API_SECRET": "live-secret", "CRYPTOBOT_SECRETS_FILE": str(tmp_path / "none.toml")}
    with pytest.raises(ConfigError, match=r"live trading refused: \[execution\] api_base_url = "
                                          r"'https://proxy.invalid:8443' \(CRYPTOBOT_EXECUTION__API_BASE_URL\)"):
        ccxt_gateway(config, live, env=env)
    # and ccxt_gateway holds the opt-in itself, whoever calls it
    with pytest.raises(ConfigError, match="CRYPTOBOT_LIVE_TRADING=yes no longer confirms it"):
        ccxt_gateway(config, live, env={**env, "CRYPTOBOT_LIVE_TRADING": "yes"})
