"""Parity: the same sample klines, replayed through the live pipeline (Kafka, the stream's
analytics and signals, then the scorer, the execution engine and the position manager on the
paper exchange as of each moment) and run through the backtester, close the same trades:
the same signals, entry and exit prices, quantities, net P&L and exit reasons."""
import pytest

from common.config import load_config
from common.trading import paper_replay
from streaming.app import run_stream
from common.kline_files import read_kline_file
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE, sample_path

SYMBOL = "PARUSDT"  # this test's own: the lake is shared
DAYS_REPLAYED, DAYS_TRADED = 10, 1  # the sample's 15m smc trade: known and closed on its 10th day


@pytest.fixture
def trading_on_this_symbol(spark, initialized_lake):
    def set_param(name, value):
        spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")

    before = {r.param_name: r.param_value for r in spark.table("gold.trading_config").collect()}
    set_param("trading_symbols", f'["{SYMBOL}"]')
    set_param("trading_intervals", '["15m"]')
    yield
    for name in ("trading_symbols", "trading_intervals"):
        set_param(name, before[name])


@pytest.mark.timeout(1200)  # ten days of the sample through the stream, then a day traded: 6-8 minutes here
def test_paper_trading_and_the_backtest_close_the_same_trades(spark, pipeline_env, trading_on_this_symbol, tmp_path):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance", "CRYPTOBOT_EXCHANGES__SYMBOLS": SYMBOL,
           "CRYPTOBOT_EXCHANGES__INTERVALS": "1m,15m,1h,4h", "CRYPTOBOT_STREAMING__TRADING_JOBS": "off",
           "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path / "data")}
    config = load_config(env=env)
    part = tmp_path / "sample_part.csv"
    read_kline_file(sample_path()).head(DAYS_REPLAYED * 1440).to_csv(part, index=False)
    replay_file(config, part, exchange="binance", symbol=SYMBOL, derive=["15m", "1h", "4h"], source=SAMPLE_SOURCE)
    run_stream(spark, config, available_now=True)

    replayed = paper_replay.run(spark, config, step_minutes=15, days=DAYS_TRADED)
    assert replayed.reconciled, replayed.describe()
    assert replayed.positions_closed >= 1, replayed.describe()

    run_id, differences = paper_replay.compare_with_backtest(spark, config, replayed.traded_from_ms)
    assert differences == []
    portfolio = spark.table("gold.backtest_trades").where(f"run_id = '{run_id}' AND scope = 'portfolio'")
    assert portfolio.count() == replayed.positions_closed
