"""`cryptobot backtest` over the sample in silver.unified_klines: per combination and for the
portfolio, results, trades and equity under one run id, the Delta version the klines were
read at, and the same trades as the engine run directly on the same bars; the same run from a
kline file; walk-forward's out-of-sample results; the HTML report."""
import pandas as pd
import pytest
from pyspark.sql import functions as F

from common.analytics.series import AnalyticsParams
from common.backtest.engine import backtest_series
from common.intervals import INTERVAL_MS
from common.strategies import ScanParams
from common.backtest import backtesting
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

    stored = spark.table("gold.backtest_trades").where(f"run_id = '{report.run_id}'").toPandas()
    trades = stored[stored.scope != "portfolio"]
    assert len(trades) == report.trades
    trading = settings.trading()
    direct = []
    for interval in ("15m", "1h"):
        others = {i: (b, AnalyticsParams.from_config(app_config.analytics, i)) for i, b in sample.items() if i not in ("1m", interval)}
        for strategy in ("smc", "liquidity"):
            one = backtesting.BacktestConfig({**settings.values, "strategies": [strategy]}).trading()
            direct.append(backtest_series("binance", SYMBOL, interval, INTERVAL_MS[interval], sample[interval],
                                          AnalyticsParams.from_config(app_config.analytics, interval), ScanParams.from_config(app_config.signals),
                                          one, app_config, minute_bars=sample["1m"], other_intervals=others).trades)
    expected = pd.concat([d for d in direct if len(d)], ignore_index=True)
    assert len(expected) >= 1
    assert sorted(zip(trades.entry_time_ms, trades.exit_time_ms, trades.exit_reason)) == sorted(
        zip(expected.entry_time_ms, expected.exit_time_ms, expected.exit_reason))
    assert trading.trading_symbols == (SYMBOL,)

    # One account: the combinations' orders, one position on the symbol at a time, sized on its equity.
    book = stored[stored.scope == "portfolio"].sort_values("entry_time_ms")
    portfolio = results["portfolio"]
    assert portfolio.trades == len(book) >= 1
    assert (book.entry_time_ms.iloc[1:].to_numpy() > book.exit_time_ms.iloc[:-1].to_numpy()).all()
    assert set(book.signal_id) <= set(trades.signal_id)
    assert float(portfolio.final_equity) == pytest.approx(float(10_000 + sum(book.pnl)), abs=1e-6)
    equity = spark.table("gold.backtest_equity").where(f"run_id = '{report.run_id}' AND scope = 'portfolio'")
    assert equity.orderBy("ts_ms").collect()[-1].equity == portfolio.final_equity


def test_a_kline_file_gives_the_same_trades_as_the_lake(spark, app_config, sample, tmp_path):
    settings = backtesting.BacktestConfig.load(overrides=[f"symbols={SYMBOL}", "timeframes=15m,1h"])
    lake = backtesting.run(spark, app_config, settings, progress=False)
    path = tmp_path / "minutes.csv"
    sample["1m"][["open_time_ms", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    from_file = backtesting.run(spark, app_config, settings, kline_file=str(path), progress=False)
    assert from_file.data_version is None and "sha256" in from_file.source

    def trades(run_id):
        rows = spark.table("gold.backtest_trades").where(f"run_id = '{run_id}'").toPandas()
        return sorted(zip(rows.scope, rows.signal_id, rows.entry_time_ms, rows.exit_time_ms, rows.pnl))
    assert trades(from_file.run_id) == trades(lake.run_id) != []
    config = spark.table("gold.backtest_results").where(f"run_id = '{from_file.run_id}'").first().config_json
    assert str(path) in config


def test_walk_forward_trades_only_the_test_windows_with_their_calibration(spark, app_config, sample, tmp_path):
    settings = backtesting.BacktestConfig.load(overrides=[f"symbols={SYMBOL}", "timeframes=15m,1h",
                                                          "walk_forward_train_days=5", "walk_forward_test_days=3"])
    report = backtesting.run(spark, app_config, settings, walk_forward=True, report_dir=str(tmp_path / "report"))
    first_test = report.windows[0]["test_start_ms"]
    assert [w["name"] for w in report.windows] == ["wf1", "wf2", "wf3"]  # 14 days: 5 to train, then 3 + 3 + 3
    assert all(w["calibration"] for w in report.windows)
    results = spark.table("gold.backtest_results").where(f"run_id = '{report.run_id}'").toPandas()
    assert set(results[results.scope != "portfolio"].window) == {"oos"}
    assert set(results[results.scope == "portfolio"].window) == {"oos", "wf1", "wf2", "wf3"}
    trades = spark.table("gold.backtest_trades").where(f"run_id = '{report.run_id}'").toPandas()
    assert (trades.entry_time_ms > first_test).all()  # nothing traded in the first train window
    signals = pd.concat([backtest_series("binance", SYMBOL, "15m", INTERVAL_MS["15m"], sample["15m"],
                                         AnalyticsParams.from_config(app_config.analytics, "15m"), ScanParams.from_config(app_config.signals),
                                         backtesting.BacktestConfig({**settings.values, "strategies": [s]}).trading(),
                                         app_config, minute_bars=sample["1m"]).signals for s in ("smc", "liquidity")])
    assert (signals.known_at_ms < first_test).any()  # ...though setups were found there
    page = (tmp_path / "report" / "index.html").read_text()
    assert report.run_id in page and page.count("<img") == 5
    assert all((tmp_path / "report" / name).stat().st_size > 2000 for name in (
        "equity.png", "drawdown.png", "monthly_returns.png", "r_multiples.png", "win_rate_by_score.png"))
