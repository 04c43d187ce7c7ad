"""Analytics cost per micro-batch against the size of the stored history.

For 20 series (1m klines, random walks), it stores a history in silver.unified_klines, the
analytics state as the stream would have left it, then times the analytics of one micro-batch
of new bars (the stream's own `process_klines_batch` over the change feed), once with a small
history and once with a large one. The cost should follow the new bars, not the history.

    python bench/analytics_incremental.py                      # 10,000 vs 1,000,000 stored bars
    python bench/analytics_incremental.py --large 200000       # a quicker look
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.analytics.series import AnalyticsParams, analyze_series  # noqa: E402
from common.config import load_config  # noqa: E402
from common.intervals import INTERVAL_MS  # noqa: E402
from common.spark_session import build_spark_session  # noqa: E402
from common import init_tables  # noqa: E402
from streaming.analytics import process_klines_batch  # noqa: E402

SERIES = 20
NEW_BARS = 5  # per series, in the timed micro-batch
START_MS = 1_704_067_200_000  # 2024-01-01


def random_bars(symbol_index: int, first: int, count: int) -> pd.DataFrame:
    rng = np.random.default_rng(symbol_index * 1_000_003 + first)
    closes = 100.0 * (symbol_index + 1) * np.exp(np.cumsum(rng.normal(0, 0.002, count)) + 0.0001 * first)
    opens = np.concatenate(([closes[0]], closes[:-1]))
    spread = np.abs(rng.normal(0, 0.001, count)) * closes
    open_ms = START_MS + (first + np.arange(count)) * 60_000
    return pd.DataFrame({"open_time_ms": open_ms, "close_time_ms": open_ms + 59_999, "open": opens,
                         "high": np.maximum(opens, closes) + spread, "low": np.minimum(opens, closes) - spread,
                         "close": closes, "volume": rng.gamma(2.0, 5.0, count)})


def unified_rows(symbol: str, bars: pd.DataFrame) -> pd.DataFrame:
    rows = bars.assign(exchange="binance", symbol=symbol, exchange_symbol=symbol, ccxt_symbol=symbol, interval="1m",
                       source="bench", schema_version=1, kafka_topic="bench", kafka_partition=0,
                       kafka_offset=bars.open_time_ms)
    rows["open_time"] = pd.to_datetime(rows.open_time_ms, unit="ms")
    return rows


def append_unified(spark, config, frames: list[pd.DataFrame]) -> None:
    from pyspark.sql import functions as F

    location = config.lake.table_path("silver", "unified_klines")
    table = spark.read.format("delta").load(location)
    frame = pd.concat(frames, ignore_index=True)
    rows = spark.createDataFrame(frame)
    columns = [F.col(f.name).cast(f.dataType).alias(f.name) if f.name in frame else
               (F.current_timestamp() if f.dataType.typeName() == "timestamp" else F.lit(None).cast(f.dataType))
               .alias(f.name) for f in table.schema.fields]
    rows.select(*columns).write.format("delta").mode("append").save(location)


def seed_states(spark, config, histories: dict[str, pd.DataFrame]) -> None:
    """The state the stream would have stored after the history (computed over its tail)."""
    params = AnalyticsParams.from_config(config.analytics, "1m")
    rows = []
    for symbol, bars in histories.items():
        tail = bars.tail(params.lookback_bars + 2_000)
        _, _, state = analyze_series(tail, None, params, INTERVAL_MS["1m"])
        rows.append(("binance", symbol, "1m", state.last_bar_ms, state.to_json()))
    frame = spark.createDataFrame(rows, "exchange string, symbol string, interval string, last_bar_ms bigint, "
                                        "state_json string")
    from pyspark.sql import functions as F

    frame.withColumn("updated_at", F.current_timestamp()).write.format("delta").mode("append").save(
        config.lake.table_path("gold", "analytics_state"))


def timed_batch(spark, config, symbols: list[str], first_new: int, batch_id: int) -> float:
    location = config.lake.table_path("silver", "unified_klines")
    from delta.tables import DeltaTable

    version = DeltaTable.forPath(spark, location).history(1).first().version
    append_unified(spark, config, [unified_rows(s, random_bars(i, first_new, NEW_BARS)) for i, s in enumerate(symbols)])
    changes = (spark.read.format("delta").option("readChangeFeed", "true")
               .option("startingVersion", version + 1).load(location))
    started = time.perf_counter()
    process_klines_batch(spark, config, changes, batch_id, "bench-analytics")
    return time.perf_counter() - started


def measure(history_total: int) -> float:
    per_series = history_total // SERIES
    symbols = [f"S{i:02d}USDT" for i in range(SERIES)]
    with tempfile.TemporaryDirectory(prefix="cryptobot-bench-analytics-") as base:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")},
               "CRYPTOBOT_PATHS__DATA_DIR": f"{base}/data", "CRYPTOBOT_LAKE__ROOT": f"{base}/lake",
               "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": f"{base}/checkpoints",
               "CRYPTOBOT_EXCHANGES__SYMBOLS": ",".join(symbols), "CRYPTOBOT_EXCHANGES__INTERVALS": "1m"}
        config = load_config(env=env)
        spark = build_spark_session(config, "bench-analytics", register=False)
        init_tables.run(spark, config)
        histories = {s: random_bars(i, 0, per_series) for i, s in enumerate(symbols)}
        chunk = max(1, 2_000_000 // per_series)  # rows per Spark write, to bound the driver's memory
        names = list(histories)
        for start in range(0, len(names), chunk):
            append_unified(spark, config, [unified_rows(s, histories[s]) for s in names[start:start + chunk]])
        seed_states(spark, config, histories)
        timed_batch(spark, config, symbols, per_series, 0)  # warm-up: the JVM, Python workers, caches
        seconds = [timed_batch(spark, config, symbols, per_series + NEW_BARS * n, n) for n in (1, 2, 3)]
        spark.stop()
    print(f"stored history {history_total:>10,d} bars ({per_series:,d} per series): micro-batch of "
          f"{NEW_BARS * SERIES} new bars in {np.median(seconds):6.2f} s (median of {', '.join(f'{s:.2f}' for s in seconds)})",
          flush=True)
    return float(np.median(seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    small, large = measure(args.small), measure(args.large)
    print(f"large / small history cost ratio {large / small:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
