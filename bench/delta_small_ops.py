"""The floor of the live stream's steps: one small Delta read, append and MERGE, as a micro-batch
of a candle's 12 symbols makes them, with Spark's Java code generation on (Spark's default) and
off (conf/spark-defaults.conf: `spark.sql.codegen.wholeStage false`, `spark.sql.codegen.factoryMode
NO_CODEGEN`). Rows this small cost nothing to evaluate; generating and compiling the code for
each new plan (and for Delta's own log projections) is what a step paid.

    python bench/delta_small_ops.py            # 25 rounds each way
    python bench/delta_small_ops.py --rounds 10

Prints, per setting, the median seconds of each operation over the rounds after the first three.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCHEMA = ("symbol string, interval string, open_time_ms bigint, open double, high double, low double, "
          "close double, volume double")
MINUTE = 60_000
SYMBOLS = 12
SETTINGS = {
    "codegen on (Spark's default)": {"spark.sql.codegen.wholeStage": "true",
                                     "spark.sql.codegen.factoryMode": "FALLBACK"},
    "codegen off (this project)": {"spark.sql.codegen.wholeStage": "false",
                                   "spark.sql.codegen.factoryMode": "NO_CODEGEN"},
}


def klines(minutes: int, first_minute: int) -> list[tuple]:
    return [(f"S{s:02d}USDT", "1m", (first_minute + m) * MINUTE, 1.0 + m, 2.0 + m, 0.5, 1.5, 10.0)
            for m in range(minutes) for s in range(SYMBOLS)]


def one_round(spark, location: str, minute: int) -> dict[str, float]:
    """What a silver or unified batch does with one minute's candles: is the span known, the
    batch's bounds, an append, a MERGE on the key."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    start_ms = minute * MINUTE
    batch = spark.createDataFrame(klines(1, minute), SCHEMA)
    timings = {}
    started = time.perf_counter()
    (spark.read.format("delta").load(location)
     .where(f"interval IN ('1m') AND open_time_ms BETWEEN {start_ms} AND {start_ms + MINUTE}").limit(1).count())
    timings["read (any row in a span)"] = time.perf_counter() - started
    started = time.perf_counter()
    batch.agg(F.min("open_time_ms"), F.max("open_time_ms"), F.collect_set("interval")).first()
    timings["batch bounds (agg)"] = time.perf_counter() - started
    started = time.perf_counter()
    batch.write.format("delta").mode("append").save(location)
    timings["append 12 rows"] = time.perf_counter() - started
    started = time.perf_counter()
    (DeltaTable.forPath(spark, location).alias("t")
     .merge(batch.alias("s"), f"t.interval = '1m' AND t.open_time_ms BETWEEN {start_ms} AND {start_ms} "
                              "AND t.symbol = s.symbol AND t.open_time_ms = s.open_time_ms")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    timings["MERGE 12 rows"] = time.perf_counter() - started
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()

    from common.config import load_config
    from common.spark_session import build_spark_session

    with tempfile.TemporaryDirectory(prefix="cryptobot-small-ops-") as base:
        config = load_config(env={"CRYPTOBOT_LAKE__ROOT": f"{base}/lake"})
        spark = build_spark_session(config, "cryptobot-small-ops-bench", register=False)
        try:
            results = {}
            for n, (name, conf) in enumerate(SETTINGS.items()):
                for key, value in conf.items():
                    spark.conf.set(key, value)
                location = f"{base}/lake/klines_{n}"
                # A table with some history: 700 minutes, then 30 commits of one minute each.
                (spark.createDataFrame(klines(700, 0), SCHEMA).write.format("delta").partitionBy("interval")
                 .save(location))
                for minute in range(700, 730):
                    spark.createDataFrame(klines(1, minute), SCHEMA).write.format("delta").mode("append").save(location)
                rounds = [one_round(spark, location, 800 + r) for r in range(args.rounds)]
                results[name] = {op: statistics.median(r[op] for r in rounds[3:]) for op in rounds[0]}
        finally:
            spark.stop()
    print(f"median seconds over {args.rounds - 3} rounds (after 3 warm-up rounds), local[2]")
    operations = list(next(iter(results.values())))
    print(f"{'':<30}" + "".join(f"{op:>26}" for op in operations))
    for name, medians in results.items():
        print(f"{name:<30}" + "".join(f"{medians[op]:>26.3f}" for op in operations))


if __name__ == "__main__":
    main()
