"""Unified: every exchange's silver klines and market data in one schema, with the canonical
symbol beside the exchange's own id and ccxt's symbol; and consolidated klines, one per
(symbol, interval, open time) across exchanges.

One streaming query reads the change feed of every exchange's silver table (so it sees
MERGE updates, not just appends) and is the only writer of the unified and consolidated
tables: concurrent writers to one Delta table conflict.
"""
from __future__ import annotations

import logging
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from common.catalog import KLINE_COLUMNS, MARKET_COLUMNS, table_location, table_spec
from common.config import AppConfig
from common.symbols import SymbolMap
from streaming.silver import KLINE_KEY, MARKET_KEY, latest_per_key, upsert_latest
from streaming.triggers import with_trigger
from streaming.upsert import APPENDED_TO_EMPTY_SPAN, key_range_of, upsert

log = logging.getLogger(__name__)

CONSOLIDATED_KEY = ("symbol", "interval", "open_time_ms")


def _columns(ddl: str) -> list[str]:
    return StructType.fromDDL(ddl).fieldNames()


def changed_rows(changes: DataFrame, columns: list[str]) -> DataFrame:
    """The rows as they are now, from a Delta change feed: inserts and updates' new images."""
    return changes.where(F.col("_change_type").isin("insert", "update_postimage")).select(*columns)


def with_symbol_names(rows: DataFrame, symbol_map: SymbolMap, exchanges: list[str], symbols: list[str]) -> DataFrame:
    """Fill the exchange's id and ccxt's symbol where a message did not carry them (a file
    replay), from the symbol map."""
    ids = F.create_map(*[F.lit(x) for ex in exchanges for s in symbols
                         for x in (f"{ex}|{s}", symbol_map.exchange_symbol(ex, s))])
    unified = F.create_map(*[F.lit(x) for ex in exchanges for s in symbols
                             for x in (f"{ex}|{s}", symbol_map.ccxt_symbol(ex, s))])
    exchange_and_symbol = F.concat_ws("|", "exchange", "symbol")
    return (rows
            .withColumn("exchange_symbol", F.coalesce("exchange_symbol", F.element_at(ids, exchange_and_symbol)))
            .withColumn("ccxt_symbol", F.coalesce("ccxt_symbol", F.element_at(unified, exchange_and_symbol))))


def consolidate(klines: DataFrame) -> DataFrame:
    """One kline per (symbol, interval, open_time) across exchanges: summed volume, prices
    weighted by each exchange's volume (a plain mean where no exchange traded)."""
    total = F.sum("volume")

    def weighted(column: str):
        return F.when(total > 0, F.sum(F.col(column) * F.col("volume")) / total).otherwise(F.avg(column))

    typical = (F.col("high") + F.col("low") + F.col("close")) / 3
    return (klines.groupBy(*CONSOLIDATED_KEY).agg(
        F.min("open_time").alias("open_time"),
        F.min("close_time_ms").alias("close_time_ms"),
        weighted("open").alias("open"),
        weighted("high").alias("high"),
        weighted("low").alias("low"),
        weighted("close").alias("close"),
        F.when(total > 0, F.sum(typical * F.col("volume")) / total).alias("vwap"),
        total.alias("volume"),
        F.sum("quote_volume").alias("quote_volume"),
        F.sum("trade_count").alias("trade_count"),
        F.countDistinct("exchange").cast("int").alias("exchange_count"),
        F.array_sort(F.collect_set("exchange")).alias("exchanges"),
    ).withColumn("updated_at", F.current_timestamp()))


def upsert_unified_klines(spark: SparkSession, config: AppConfig, changes: DataFrame) -> None:
    unified_location = table_location(config, table_spec(config, "silver.unified_klines"))
    consolidated_location = table_location(config, table_spec(config, "silver.consolidated_klines"))
    columns = _columns(KLINE_COLUMNS)
    rows = with_symbol_names(changed_rows(changes, columns), config.exchanges.symbol_map,
                             list(config.exchanges.enabled), list(config.exchanges.symbols))
    rows = latest_per_key(rows, KLINE_KEY).withColumn("updated_at", F.current_timestamp()).persist()
    try:
        key_range = key_range_of(rows, "interval", "open_time_ms")
        if key_range is None:
            return
        written = upsert(spark, unified_location, rows, KLINE_KEY, key_range)
        # The consolidated kline of every key this batch touched, from all its exchanges.
        if written == APPENDED_TO_EMPTY_SPAN:
            # Unified held nothing in the batch's range, so the batch has every exchange's row of
            # those keys; and consolidated, made from unified's rows only, holds nothing there
            # either: an append, without asking (a re-run finds unified's rows and merges below).
            consolidate(rows).write.format("delta").mode("append").save(consolidated_location)
            return
        # Otherwise the keys' rows are read back (the range lets Delta skip most files): new
        # keys of this exchange may sit beside another exchange's rows of the same minute.
        touched = rows.select(*CONSOLIDATED_KEY).distinct()
        sources = (spark.read.format("delta").load(unified_location).where(key_range.predicate())
                   .join(touched, list(CONSOLIDATED_KEY)))
        # Recomputing a key is idempotent: the new row always replaces the old.
        upsert(spark, consolidated_location, consolidate(sources), CONSOLIDATED_KEY, key_range, update_when=None)
    finally:
        rows.unpersist()


def upsert_unified_market(spark: SparkSession, config: AppConfig, changes: DataFrame) -> None:
    location = table_location(config, table_spec(config, "silver.unified_market"))
    rows = with_symbol_names(changed_rows(changes, _columns(MARKET_COLUMNS)), config.exchanges.symbol_map,
                             list(config.exchanges.enabled), list(config.exchanges.symbols))
    upsert_latest(spark, location, rows.withColumn("updated_at", F.current_timestamp()), MARKET_KEY,
                  partition_column="metric", time_column="ts_ms")


def start_unified_query(spark: SparkSession, config: AppConfig, kind: str, available_now: bool):
    """kind 'klines' or 'market': one query over the change feeds of every exchange's silver table."""
    feeds = [spark.readStream.format("delta").option("readChangeFeed", "true")
             .load(table_location(config, table_spec(config, f"silver.{exchange}_{kind}")))
             for exchange in config.exchanges.enabled]
    changes = reduce(DataFrame.unionByName, feeds)
    upsert = upsert_unified_klines if kind == "klines" else upsert_unified_market

    def upsert_batch(batch: DataFrame, batch_id: int) -> None:
        # Not asked whether it is empty (an action): an empty batch has no key range and writes nothing.
        batch = batch.persist()  # read the change feed once, however many steps use it
        try:
            upsert(spark, config, batch)
        finally:
            batch.unpersist()

    writer = (changes.writeStream.queryName(f"unified_{kind}")
              .option("checkpointLocation", config.lake.checkpoint_path(f"unified_{kind}"))
              .foreachBatch(upsert_batch))
    return with_trigger(writer, config, available_now).start()
