"""`cryptobot demo`'s paper replay on hand-written history: a pending signal is scored as of the
time it became known (not as of the end of the data, where it would be long expired),
confirmed, its entry placed and filled, TP1 and TP2 taken as the clock steps on, and the
books reconcile with the paper exchange to the cent."""
from decimal import Decimal as D

import pytest

from common.config import load_config
from common.trading import paper_replay
from tests.spark.rows import append

SYMBOL, SIGNAL = "REPUSDT", "replay-signal-1"
H, M = 3_600_000, 60_000
T0 = 1_787_356_800_000  # 2026-08-22 00:00 UTC: a day of its own in the shared lake


def minute(n, low, high):
    open_ms = T0 + n * M
    return {"exchange": "binance", "symbol": SYMBOL, "exchange_symbol": SYMBOL, "interval": "1m",
            "open_time_ms": open_ms, "close_time_ms": open_ms + M - 1, "open": (low + high) / 2, "high": high,
            "low": low, "close": (low + high) / 2, "volume": 1.0, "schema_version": 1, "kafka_partition": 0,
            "kafka_offset": n}


@pytest.fixture
def config(spark, app_env, initialized_lake, tmp_path):
    spark.sql(f"""UPDATE gold.trading_config SET param_value = '["{SYMBOL}"]' WHERE param_name = 'trading_symbols'""")
    yield load_config(env={**app_env, "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path / "data")})
    spark.sql("""UPDATE gold.trading_config SET param_value = '["BTCUSDT", "ETHUSDT"]'
                 WHERE param_name = 'trading_symbols'""")


def test_a_signal_traded_as_of_its_own_time_and_the_books_reconcile(spark, config, tmp_path):
    known_at = T0 + 60 * M - 1  # the close of the 1h bar 00:00-01:00
    append(spark, "gold.liquidity_zones", [{
        "zone_id": "replay-zone", "exchange": "binance", "symbol": SYMBOL, "interval": "1h", "zone_type": "demand",
        "zone_low": 99.0, "zone_high": 101.0, "poc_price": 100.0, "touches": 1, "rejections": 1, "sweeps": 0,
        "breaks": 0, "status": "active", "quality": 95.0, "atr": 1.0, "known_at_ms": known_at, "version": 1}])
    # Strong on every component: zone 95, a fresh 1-ATR BOS, full confluence, a clean zone.
    append(spark, "gold.signals_all", [{
        "signal_id": SIGNAL, "strategy": "smc", "exchange": "binance", "symbol": SYMBOL, "interval": "1h",
        "direction": "long", "status": "pending", "trigger_bar_time_ms": T0, "known_at_ms": known_at,
        "zone_id": "replay-zone", "entry_price": 100.0, "zone_low": 99.0, "zone_high": 101.0, "atr": 1.0,
        "target_levels": "[104.0, 108.0]", "zone_quality": 95.0, "zone_touches": 1, "zone_rejections": 1,
        "side_rejections": 1, "side_breaks": 0, "bos_type": "BOS", "bos_direction": "bullish",
        "bos_distance_atr": 1.0, "bos_age_bars": 0, "htf_trend_agree": 1, "htf_zone_overlap": 1,
        "htf_in_value_area": 1, "htf_count": 1}])
    bars = [minute(n, 100.5, 101.5) for n in range(0, 61)]  # up to the signal: above the entry
    bars += [minute(61, 99.8, 100.6)]  # fills the entry at 100
    bars += [minute(n, 100.2, 101.0) for n in range(62, 90)]
    bars += [minute(90, 101.0, 104.3)]  # TP1
    bars += [minute(n, 103.0, 104.0) for n in range(91, 150)]
    bars += [minute(150, 104.0, 108.5)]  # TP2
    bars += [minute(n, 105.0, 106.0) for n in range(151, 200)]
    append(spark, "silver.unified_klines", bars)

    report = paper_replay.run(spark, config, step_minutes=15)

    assert report.reconciled, report.describe()
    signal = spark.table("gold.signals_all").where(f"signal_id = '{SIGNAL}'").first()
    assert (signal.status, signal.scored_as_of_ms) == ("executed", known_at)  # scored then, not at the end
    closed = spark.table("trading.positions_closed").where(f"signal_id = '{SIGNAL}'").first()
    assert (closed.exit_reason, closed.entry_price, closed.quantity) == ("take_profit_2", D(100), D(80))
    # 40 x 4 + 40 x 8 = 480; maker fees 0.02 % of 8 000 + 4 160 + 4 320 = 3.296
    assert (closed.realized_pnl, closed.fees, closed.net_pnl) == (D(480), D("3.296"), D("476.704"))
    assert report.equity == D(10_000) + closed.net_pnl
    assert report.entries_placed == 1 and report.positions_closed == 1

    # What was traded, as a backtest's report: the trade's row and the charts.
    index = paper_replay.write_trading_report(spark, config, str(tmp_path / "report"))
    page = index.read_text()
    assert "<h1>Paper trading</h1>" in page and SYMBOL in page and "take_profit_2" in page
    assert all((index.parent / chart).stat().st_size > 0 for chart in ("equity.png", "drawdown.png"))
