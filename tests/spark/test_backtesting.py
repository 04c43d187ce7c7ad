"""`cryptobot backtest` over the sample in silver.unified_klines: per combination and for the
portfolio, results, trades and equity under one run id, the Delta version the klines were
read at, and the same trades as the engine run directly on the same bars."""
import pandas as pd
import pytest
from pyspark.sql import functions as F

from common.backtest.engine import backtest_series
from common.config import INTERVAL_MS
from jobs import backtesting
from tests.sample_series import sample_series

SYMBOL = "BTSUSDT"  # this test's own: the lake is shared


@pytest.fixture(scope="module")
def sample(spark, initialized_lake):
    series = sample_series()
    frames = [bars.assign(interval=interval) for interval, bars in series.items()]
    rows = pd.concat(frames, ignore_index=True)[["interval", "open_time_ms", "close_time_ms", "open", "high", "low",
                                                 "close", "volume"]]
    schema = spark.table("silver.unified_klines").schema
    (spark.createDataFrame(rows)
     .withColumn("exchange", F.lit("binance")).withColumn("symbol", F.lit(SYMBOL))
     .withColumn("exchange_symbol", F.lit(SYMBOL)).withColumn("schema_version", F.lit(1))
     .withColumn("kafka_partition", F.lit(0)).withColumn("kafka_offset", F.lit(0).cast("long"))
     .select(*[F.col(f.name).cast(f.dataType) if f.name in rows.columns or f.name in (
         "exchange", "symbol", "exchange_symbol", "schema_version", "kafka_partition", "kafka_offset")
         else (F.current_timestamp() if f.dataType.typeName() == "timestamp" else F.lit(None)).cast(f.dataType)
         .alias(f.name) for f in schema])
     .write.insertInto("silver.unified_klines"))
    return series


def test_a_backtest_run_stores_results_trades_and_equity_and_matches_the_engine(spark, app_config, sample):
    settings = backtesting.BacktestConfig.load(overrides=[f"symbols={SYMBOL}", "timeframes=15m,1h",
                                                          "strategies=smc,liquidity"])
    report = backtesting.run(spark, app_config, settings)
    results = {r.scope: r for r in spark.table("gold.backtest_results").where(f"run_id = '{report.run_id}'").collect()}
    assert set(results) == {f"{SYMBOL}|{i}|{s}" for i in ("15m", "1h") for s in ("smc", "liquidity")} | {"portfolio"}
    versions = {r.data_version for r in results.values()}
    assert versions == {report.data_version}  # the klines' Delta version, for an exact repeat

    trades = spark.table("gold.backtest_trades").where(f"run_id = '{report.run_id}'").toPandas()
    assert len(trades) == report.trades == results["portfolio"].trades
    trading = settings.trading()
    direct = []
    for interval in ("15m", "1h"):
        others = {i: (b, app_config.analytics.params(i)) for i, b in sample.items() if i not in ("1m", interval)}
        for strategy in ("smc", "liquidity"):
            one = backtesting.BacktestConfig({**settings.values, "strategies": [strategy]}).trading()
            direct.append(backtest_series("binance", SYMBOL, interval, INTERVAL_MS[interval], sample[interval],
                                          app_config.analytics.params(interval), app_config.signals.scan_params(),
                                          one, app_config, minute_bars=sample["1m"], other_intervals=others).trades)
    expected = pd.concat([d for d in direct if len(d)], ignore_index=True)
    assert sorted(zip(trades.entry_time_ms, trades.exit_time_ms, trades.exit_reason)) == sorted(
        zip(expected.entry_time_ms, expected.exit_time_ms, expected.exit_reason))
    assert trading.trading_symbols == (SYMBOL,)

    portfolio = results["portfolio"]
    assert float(portfolio.final_equity) == pytest.approx(10_000 + float(expected.net_pnl.astype(float).sum()))
    equity = spark.table("gold.backtest_equity").where(f"run_id = '{report.run_id}' AND scope = 'portfolio'")
    assert equity.orderBy("ts_ms").collect()[-1].equity == portfolio.final_equity
