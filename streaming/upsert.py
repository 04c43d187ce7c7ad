"""Upserts into the silver tables: insert new keys, update known ones under a condition.

Both silver (from bronze) and unified (from silver's change feed) write this way. The batch's
partition values and time span go into the MERGE condition as literals so that Delta reads
only the target files that can hold those keys; and when the target holds none of the
batch's keys, an append does the MERGE's work in one pass instead of a join: a backfill or a
replay, and live candles arriving in order, take that path. Whether it holds one is asked
cheaply: first any row in the span at all (file statistics answer most of it), then, when
there are some (other symbols' candles of the same minute, written by the batch before), a
join of the batch's keys with the table's rows in the span: a read, where a MERGE costs about
seven times an append here (bench notes in README.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

# Replace a row only with a later Kafka message of its key: re-running a batch, or replaying
# older data, then changes nothing.
LATER_MESSAGE = ("s.kafka_topic <> t.kafka_topic OR s.kafka_partition <> t.kafka_partition "
                 "OR s.kafka_offset > t.kafka_offset")


@dataclass(frozen=True)
class KeyRange:
    """The partitions and the time span a batch of rows covers."""
    partition_column: str
    partitions: tuple[str, ...]
    time_column: str
    low: int
    high: int

    def predicate(self, alias: str | None = None) -> str:
        prefix = f"{alias}." if alias else ""
        quoted = ", ".join("'" + value.replace("'", "''") + "'" for value in self.partitions)
        return (f"{prefix}{self.partition_column} IN ({quoted}) AND "
                f"{prefix}{self.time_column} BETWEEN {self.low} AND {self.high}")


def key_range_of(rows: DataFrame, partition_column: str, time_column: str) -> KeyRange | None:
    """The range `rows` cover, or None when there are none."""
    summary = rows.agg(F.count(F.lit(1)).alias("n"), F.collect_set(partition_column).alias("partitions"),
                       F.min(time_column).alias("low"), F.max(time_column).alias("high")).first()
    if not summary.n:
        return None
    return KeyRange(partition_column, tuple(sorted(str(v) for v in summary.partitions)), time_column,
                    int(summary.low), int(summary.high))


def holds_rows_in(spark: SparkSession, location: str, key_range: KeyRange) -> bool:
    """Whether the Delta table has any row in the range (file statistics skip most files)."""
    return bool(spark.read.format("delta").load(location).where(key_range.predicate()).limit(1).count())


def holds_keys_of(spark: SparkSession, location: str, rows: DataFrame, key: Iterable[str],
                  key_range: KeyRange) -> bool:
    """Whether the Delta table already has a row with one of the keys of `rows` (in the range)."""
    key = list(key)
    stored = spark.read.format("delta").load(location).where(key_range.predicate()).select(*key)
    return bool(stored.join(rows.select(*key), key, "left_semi").limit(1).count())


# How upsert wrote a batch.
APPENDED_TO_EMPTY_SPAN = "append"  # the table held no row in the batch's range
APPENDED_NEW_KEYS = "append_new_keys"  # it held rows in the range, none with a key of the batch
MERGED = "merge"


def upsert(spark: SparkSession, location: str, rows: DataFrame, key: Iterable[str], key_range: KeyRange,
           update_when: str | None = LATER_MESSAGE) -> str:
    """Insert the rows whose key is new; update a matched row where `update_when` holds
    (`s` = the new row, `t` = the table's; None = always). `rows` must hold one row per key
    and cover no more than `key_range`. Returns how it was written: APPENDED_TO_EMPTY_SPAN,
    APPENDED_NEW_KEYS or MERGED."""

    if not holds_rows_in(spark, location, key_range):
        rows.write.format("delta").mode("append").save(location)
        return APPENDED_TO_EMPTY_SPAN
    if not holds_keys_of(spark, location, rows, key, key_range):
        rows.write.format("delta").mode("append").save(location)
        return APPENDED_NEW_KEYS
    condition = " AND ".join([key_range.predicate("t")] + [f"t.{k} = s.{k}" for k in key])
    (DeltaTable.forPath(spark, location).alias("t")
     .merge(rows.alias("s"), condition)
     .whenMatchedUpdateAll(condition=update_when)
     .whenNotMatchedInsertAll()
     .execute())
    return MERGED
