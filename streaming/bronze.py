"""Bronze: every Kafka message of klines.<exchange> and market.<exchange>, raw, in
bronze.<exchange>_klines and bronze.<exchange>_market.

One streaming query per topic, Kafka source to Delta's own sink, each with its own
checkpoint: the sink commits the batch id with the data, so a restart (even after kill -9)
neither loses nor duplicates a message. Bronze never rejects: a malformed message lands
here as it came, and silver decides what is valid.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.catalog import delta_table_exists, table_location, table_spec
from common.config import AppConfig
from streaming.triggers import with_trigger

KINDS = ("klines", "market")


@dataclass(frozen=True)
class BronzeQuery:
    exchange: str
    kind: str  # klines | market
    topic: str
    table: str  # qualified name
    location: str
    checkpoint: str

    @property
    def name(self) -> str:
        return f"bronze_{self.exchange}_{self.kind}"


def bronze_queries(config: AppConfig, exchanges: list[str] | None = None) -> list[BronzeQuery]:
    queries = []
    for exchange in exchanges or config.exchanges.enabled:
        for kind in KINDS:
            spec = table_spec(config, f"bronze.{exchange}_{kind}")
            topic = config.klines_topic(exchange) if kind == "klines" else config.market_topic(exchange)
            queries.append(BronzeQuery(exchange, kind, topic, spec.qualified_name, table_location(config, spec),
                                       config.lake.checkpoint_path(f"bronze_{exchange}_{kind}")))
    return queries


def to_bronze_rows(kafka_rows: DataFrame) -> DataFrame:
    """Kafka source rows -> bronze rows: the raw key and value, where they came from, when."""
    return kafka_rows.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))


def read_topic(spark: SparkSession, config: AppConfig, topic: str, starting_offsets: str = "earliest",
               starting_timestamp_ms: int | None = None) -> DataFrame:
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", config.kafka.bootstrap_servers)
              .option("subscribe", topic)
              .option("maxOffsetsPerTrigger", config.streaming.max_offsets_per_trigger))
    if starting_timestamp_ms is not None:
        reader = reader.option("startingTimestamp", str(starting_timestamp_ms))
    else:
        reader = reader.option("startingOffsets", starting_offsets)
    return reader.load()


def start_bronze_query(spark: SparkSession, config: AppConfig, query: BronzeQuery, available_now: bool,
                       starting_offsets: str = "earliest", starting_timestamp_ms: int | None = None):
    if not delta_table_exists(spark, query.location):
        raise RuntimeError(f"{query.table} does not exist at {query.location}: run `cryptobot init` first")
    writer = (to_bronze_rows(read_topic(spark, config, query.topic, starting_offsets, starting_timestamp_ms))
              .writeStream.format("delta")
              .queryName(query.name)
              .option("checkpointLocation", query.checkpoint)
              .outputMode("append"))
    return with_trigger(writer, config, available_now).start(query.location)
