"""Sanity checks over the data layers: what they check, and how a run is recorded.

The two jobs of the original workflow are thin entries over `run_checks`:
`jobs/sanity_check_bronze_to_silver.py` (reconciliation) and
`jobs/sanity_check_unified_silver.py` (duplicates, OHLC invariants, gaps, freshness).
`cryptobot sanity` runs both, prints a report, appends one row per check to
gold.sanity_results, and exits non-zero when a check fails, so a scheduler can alert.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from common.config import AppConfig
from common.intervals import INTERVAL_MS, interval_ms_of
from common.local_frames import local_frame

PASS, WARN, FAIL = "pass", "warn", "fail"
# Bronze rows younger than this may not have reached silver yet: pending, not missing.
PENDING_GRACE_MS = 5 * 60_000
MAX_GAPS_LISTED = 10


@dataclass(frozen=True)
class CheckResult:
    check_name: str
    table_name: str
    status: str
    observed: float | None = None
    expected: float | None = None
    detail: str = ""
    exchange: str | None = None
    symbol: str | None = None
    interval: str | None = None


# -- bronze -> silver ------------------------------------------------------------------------

def reconcile_bronze_to_silver(spark: SparkSession, config: AppConfig, now_ms: int | None = None,
                               symbols: list[str] | None = None) -> list[CheckResult]:
    """Every bronze kline message is in silver, superseded there by a later message of its key,
    or in quarantine. Counted per exchange, symbol and interval (only `symbols`, if given)."""
    now_ms = now_ms or int(time.time() * 1000)
    quarantine = spark.table("silver.quarantine").select(
        F.col("kafka_topic").alias("topic"), F.col("kafka_partition").alias("partition"),
        F.col("kafka_offset").alias("offset"))
    results = []
    for exchange in config.exchanges.enabled:
        bronze = spark.table(f"bronze.{exchange}_klines").where(
            F.col("ingested_at") < F.timestamp_millis(F.lit(now_ms - PENDING_GRACE_MS)))
        if symbols:
            bronze = bronze.where(F.split("key", r"\|")[0].isin(*symbols))
        silver = spark.table(f"silver.{exchange}_klines")
        placed = silver.select(F.col("kafka_topic").alias("topic"), F.col("kafka_partition").alias("partition"),
                               F.col("kafka_offset").alias("offset")).unionByName(quarantine)
        unplaced = bronze.join(placed, ["topic", "partition", "offset"], "left_anti").select(
            "topic", "partition", "offset", "key",
            F.try_variant_get(F.try_parse_json("value"), "$.open_time", "bigint").alias("open_time_ms"))
        keys = F.split(F.col("key"), r"\|")
        unplaced = unplaced.withColumn("symbol", keys[0]).withColumn("interval", keys[1])
        # Superseded: silver holds the key from a later message.
        superseded = unplaced.alias("u").join(
            silver.alias("s"),
            (F.col("u.symbol") == F.col("s.symbol")) & (F.col("u.interval") == F.col("s.interval"))
            & (F.col("u.open_time_ms") == F.col("s.open_time_ms"))
            & ((F.col("s.kafka_topic") != F.col("u.topic")) | (F.col("s.kafka_offset") > F.col("u.offset"))),
            "left_semi")
        missing = unplaced.join(superseded.select("topic", "partition", "offset"), ["topic", "partition", "offset"],
                                "left_anti")
        counts = {(r.symbol, r.interval): r.n for r in bronze.select(F.split("key", r"\|")[0].alias("symbol"),
                                                                      F.split("key", r"\|")[1].alias("interval"))
                  .groupBy("symbol", "interval").agg(F.count("*").alias("n")).collect()}
        lost = {(r.symbol, r.interval): (r.n, r.example) for r in missing.groupBy("symbol", "interval").agg(
            F.count("*").alias("n"), F.min("offset").alias("example")).collect()}
        for (symbol, interval), n in sorted(counts.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            missing_n, example = lost.get((symbol, interval), (0, None))
            results.append(CheckResult(
                "bronze_to_silver_reconciliation", f"silver.{exchange}_klines", FAIL if missing_n else PASS,
                observed=missing_n, expected=0,
                detail=(f"{n} bronze messages; {missing_n} neither in silver nor in quarantine "
                        f"(first at offset {example})" if missing_n else
                        f"{n} bronze messages all in silver, superseded, or quarantined"),
                exchange=exchange, symbol=symbol, interval=interval))
        for (symbol, interval), (missing_n, example) in lost.items():
            if (symbol, interval) not in counts:  # a key bronze could not even attribute
                results.append(CheckResult("bronze_to_silver_reconciliation", f"silver.{exchange}_klines", FAIL,
                                           missing_n, 0, f"unattributable messages (first at offset {example})",
                                           exchange, symbol, interval))
    return results


# -- unified ---------------------------------------------------------------------------------

def find_gaps(klines: DataFrame) -> DataFrame:
    """Missing candles per (exchange, symbol, interval): each gap's first and last missing open
    time and how many bars are missing. Gaps are reported, never filled."""
    window = Window.partitionBy("exchange", "symbol", "interval").orderBy("open_time_ms")
    step = interval_ms_of("interval")
    return (klines.select("exchange", "symbol", "interval", "open_time_ms")
            .withColumn("previous_ms", F.lag("open_time_ms").over(window))
            .where(F.col("open_time_ms") - F.col("previous_ms") > step)
            .select("exchange", "symbol", "interval",
                    (F.col("previous_ms") + step).alias("gap_from_ms"),
                    (F.col("open_time_ms") - step).alias("gap_to_ms"),
                    ((F.col("open_time_ms") - F.col("previous_ms")) / step - 1).cast("long").alias("missing_bars")))


def check_unified(spark: SparkSession, config: AppConfig, now_ms: int | None = None,
                  max_staleness_minutes: float | None = None, symbols: list[str] | None = None) -> list[CheckResult]:
    now_ms = now_ms or int(time.time() * 1000)
    table = "silver.unified_klines"
    klines = spark.table(table)
    if symbols:
        klines = klines.where(F.col("symbol").isin(*symbols))
    stats = klines.groupBy("exchange", "symbol", "interval").agg(
        F.count("*").alias("rows"),
        F.countDistinct("open_time_ms").alias("keys"),
        F.sum(F.when((F.col("high") < F.greatest("open", "close")) | (F.col("low") > F.least("open", "close"))
                     | (F.col("volume") < 0) | (F.col("low") > F.col("high")), 1).otherwise(0)).alias("broken"),
        F.max("open_time_ms").alias("last_open_ms"),
    ).collect()
    gaps: dict[tuple, list] = {}
    for gap in find_gaps(klines).orderBy("gap_from_ms").collect():
        gaps.setdefault((gap.exchange, gap.symbol, gap.interval), []).append(gap)
    results = []
    for s in sorted(stats, key=lambda r: (r.exchange, r.symbol, INTERVAL_MS.get(r.interval, 0))):
        scope = {"exchange": s.exchange, "symbol": s.symbol, "interval": s.interval}
        duplicates = s.rows - s.keys
        results.append(CheckResult("no_duplicate_keys", table, FAIL if duplicates else PASS, duplicates, 0,
                                   f"{s.rows} rows, {s.keys} distinct open times", **scope))
        results.append(CheckResult("ohlc_invariants", table, FAIL if s.broken else PASS, s.broken, 0,
                                   "high >= max(open, close), low <= min(open, close), volume >= 0", **scope))
        stream_gaps = gaps.get((s.exchange, s.symbol, s.interval), [])
        missing_bars = sum(g.missing_bars for g in stream_gaps)
        listed = "; ".join(f"{_utc(g.gap_from_ms)} .. {_utc(g.gap_to_ms)} ({g.missing_bars} bars)"
                           for g in stream_gaps[:MAX_GAPS_LISTED])
        more = f"; and {len(stream_gaps) - MAX_GAPS_LISTED} more" if len(stream_gaps) > MAX_GAPS_LISTED else ""
        results.append(CheckResult("no_gaps", table, FAIL if stream_gaps else PASS, missing_bars, 0,
                                   f"{len(stream_gaps)} gaps: {listed}{more}" if stream_gaps else "no gap", **scope))
        interval_ms = INTERVAL_MS.get(s.interval, 0)
        staleness_min = (now_ms - (s.last_open_ms + interval_ms)) / 60_000
        stale = max_staleness_minutes is not None and staleness_min > max_staleness_minutes
        results.append(CheckResult(
            "freshness", table, FAIL if stale else PASS, round(staleness_min, 1), max_staleness_minutes,
            f"last closed candle {_utc(s.last_open_ms)}, {staleness_min:.0f} min ago", **scope))
    if not stats:
        results.append(CheckResult("has_data", table, WARN, 0, None, "silver.unified_klines is empty"))
    return results


def _utc(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ms / 1000))


# -- recording and reporting -------------------------------------------------------------------

def record_results(spark: SparkSession, results: list[CheckResult]) -> str:
    """Append one row per result to gold.sanity_results; returns the run id."""
    run_id = uuid.uuid4().hex
    rows = [(run_id, r.check_name, r.table_name, r.exchange, r.symbol, r.interval, r.status,
             None if r.observed is None else float(r.observed), None if r.expected is None else float(r.expected),
             r.detail) for r in results]
    schema = ("run_id string, check_name string, table_name string, exchange string, symbol string, "
              "interval string, status string, observed double, expected double, detail string")
    (local_frame(spark, rows, schema)
     .withColumn("checked_at", F.current_timestamp())
     .withColumn("check_date", F.to_date("checked_at"))
     .write.format("delta").mode("append").saveAsTable("gold.sanity_results"))
    return run_id


def format_report(results: list[CheckResult]) -> str:
    lines = []
    for r in results:
        scope = " ".join(x for x in (r.exchange, r.symbol, r.interval) if x)
        lines.append(f"{r.status.upper():<4}  {r.check_name:<32} {scope:<24} {r.detail}")
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    lines.append(f"{len(results)} checks: {len(results) - failed - warned} passed, {failed} failed, {warned} warnings")
    return "\n".join(lines)


def run_checks(spark: SparkSession, config: AppConfig, checks) -> list:
    """checks(spark, config) -> results, recorded in gold.sanity_results: a sanity job's run."""
    results = checks(spark, config)
    record_results(spark, results)
    return results
