"""Unified and consolidated klines from silver's change feed, on hand-built change rows: a
minute's candles of two exchanges arriving in separate micro-batches make one consolidated
kline of both, however the second batch was written."""
from datetime import datetime, timezone

from pyspark.sql import functions as F

from common.catalog import KLINE_COLUMNS
from streaming.unified import upsert_unified_klines

T0 = 1_786_924_800_000  # 2026-08-17 00:00 UTC
SYMBOL = "UNIFIEDTESTUSDT"  # its own symbol: the lake is shared by the run's tests


def changes(spark, exchange: str, minutes: list[int], volume: float, close: float, offset: int):
    """Silver change-feed rows (inserts) of one exchange's 1m candles."""
    rows = []
    for n, minute in enumerate(minutes):
        open_ms = T0 + minute * 60_000
        rows.append((exchange, SYMBOL, SYMBOL, "UNIFIEDTEST/USDT:USDT", "1m", open_ms,
                     datetime.fromtimestamp(open_ms / 1000, tz=timezone.utc).replace(tzinfo=None), open_ms + 59_999,
                     close, close + 1, close - 1, close, volume, None, 5, exchange, 1, open_ms + 61_000,
                     f"klines.{exchange}", 0, offset + n, datetime(2026, 8, 17, 1), datetime(2026, 8, 17, 1)))
    frame = spark.createDataFrame(rows, KLINE_COLUMNS)
    return frame.withColumn("_change_type", F.lit("insert"))


def consolidated(spark, app_config):
    from common.catalog import read_table

    return {r.open_time_ms: (r.volume, r.close, r.exchange_count)
            for r in read_table(spark, app_config, "silver.consolidated_klines").where(F.col("symbol") == SYMBOL)
            .collect()}


def test_a_minute_of_two_exchanges_in_separate_batches_is_consolidated_from_both(spark, app_config,
                                                                                 initialized_lake):
    # Binance's candles of minutes 0 and 1 first, then Bybit's of minute 1 (beside Binance's row
    # in unified: a new key in a span the table holds rows of), then Bybit's of minute 2 alone.
    upsert_unified_klines(spark, app_config, changes(spark, "binance", [0, 1], volume=10.0, close=100.0, offset=0))
    upsert_unified_klines(spark, app_config, changes(spark, "bybit", [1], volume=30.0, close=104.0, offset=0))
    upsert_unified_klines(spark, app_config, changes(spark, "bybit", [2], volume=5.0, close=90.0, offset=1))

    assert consolidated(spark, app_config) == {
        T0: (10.0, 100.0, 1),
        T0 + 60_000: (40.0, (100.0 * 10 + 104.0 * 30) / 40, 2),  # volume-weighted across both
        T0 + 120_000: (5.0, 90.0, 1),
    }


def test_a_batch_run_again_after_a_crash_before_its_consolidated_write_writes_it(spark, app_config,
                                                                                 initialized_lake):
    # The first run appended to unified (an empty span) and died before consolidating: the re-run
    # finds its rows in unified and must still write the consolidated klines.
    from delta.tables import DeltaTable

    from common.catalog import location_of

    minute = 10
    batch = changes(spark, "binance", [minute], volume=7.0, close=120.0, offset=100)
    upsert_unified_klines(spark, app_config, batch)
    lost = DeltaTable.forPath(spark, location_of(app_config, "silver.consolidated_klines"))
    lost.delete((F.col("symbol") == SYMBOL) & (F.col("open_time_ms") == T0 + minute * 60_000))
    assert T0 + minute * 60_000 not in consolidated(spark, app_config)

    upsert_unified_klines(spark, app_config, batch)

    assert consolidated(spark, app_config)[T0 + minute * 60_000] == (7.0, 120.0, 1)
