"""Silver: bronze's raw messages parsed, validated and deduplicated into
silver.<exchange>_klines and silver.<exchange>_market; every rejected message goes to
silver.quarantine with its reason. Nothing is dropped silently.

Each micro-batch reads like the sentence "parse, validate, quarantine the bad, dedupe,
merge the good". The verbs are pure DataFrame functions, tested on hand-built rows; the
foreachBatch functions are safe to run twice on the same batch (a crash between the write
and the checkpoint): the MERGE only replaces a row with a later Kafka message of its key,
and the quarantine append is idempotent through Delta's txnAppId/txnVersion.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from functools import reduce
from typing import Callable, Iterable

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from common.catalog import table_location, table_spec
from common.config import AppConfig
from common.intervals import interval_ms_of
from streaming.triggers import with_trigger
from streaming.upsert import key_range_of, upsert

log = logging.getLogger(__name__)

KNOWN_SCHEMA_VERSIONS = (1,)
# A message from further ahead than this is not a clock skew but garbage.
MAX_FUTURE_MS = 86_400_000
# What the producers send (MARKET_METRICS of common/exchange/market_data.py, kept apart so
# that silver needs no ccxt; a unit test holds the two equal). Anything else is quarantined.
MARKET_METRICS = ("funding_rate", "open_interest", "long_short_ratio", "taker_buy_ratio")

# Field name in the message -> Spark type it must convert to. Required fields first.
KLINE_REQUIRED = {"schema_version": "int", "exchange": "string", "symbol": "string", "interval": "string",
                  "open_time": "bigint", "open": "double", "high": "double", "low": "double", "close": "double",
                  "volume": "double"}
KLINE_OPTIONAL = {"exchange_symbol": "string", "ccxt_symbol": "string", "close_time": "bigint",
                  "quote_volume": "double", "trade_count": "bigint", "source": "string", "produced_at": "bigint"}
MARKET_REQUIRED = {"schema_version": "int", "exchange": "string", "symbol": "string", "metric": "string",
                   "period": "string", "ts": "bigint", "value": "double"}
MARKET_OPTIONAL = {"exchange_symbol": "string", "ccxt_symbol": "string", "value_usd": "double",
                   "long_share": "double", "short_share": "double", "source": "string", "produced_at": "bigint"}
NUMERIC_TYPES = ("int", "bigint", "double")
_CORRUPT = "_not_json"  # from_json puts a value it cannot parse as an object here


@dataclass(frozen=True)
class Rule:
    reason: str
    failed: Column  # true where the row breaks the rule
    detail: Column


# -- parse -----------------------------------------------------------------------------------

def parse_messages(bronze: DataFrame, required: dict[str, str], optional: dict[str, str]) -> DataFrame:
    """Bronze rows + the JSON value parsed: `_json_ok` (false when the value is not JSON),
    `_json_type` (OBJECT, or what else it is), each field typed (null when missing or of the
    wrong type), and for each field whether it was present at all (`_has_<field>`).

    Every field is first read as text and then converted with try_cast, so that one bad field
    names itself instead of nulling the whole message. The message is parsed once, by
    from_json; only the rows that are not a JSON object pay for a second parse that says what
    they are instead."""
    fields = {**required, **optional}
    schema = StructType([StructField(name, StringType()) for name in fields] + [StructField(_CORRUPT, StringType())])
    parsed = bronze.withColumn("_message", F.from_json("value", schema, {
        "columnNameOfCorruptRecord": _CORRUPT, "allowNonNumericNumbers": "false"}))
    # Parsers (from_json, parse_json) read the first JSON value and ignore what follows it: text
    # after the object makes the message invalid, as a strict parser would say.
    is_object = F.col("_message").isNotNull() & F.col(f"_message.{_CORRUPT}").isNull()
    json_type = (F.when(is_object & F.rtrim("value").endswith("}"), F.lit("OBJECT"))
                 .when(is_object, F.lit(None))
                 .otherwise(F.expr("schema_of_variant(try_parse_json(value))")))
    columns = [json_type.alias("_json_type")]
    for name, spark_type in fields.items():
        text = F.col(f"_message.{name}")
        if spark_type == "double":
            # A number too large for a double comes out of the parser as the string "Infinity".
            text = F.btrim(text, F.lit('"'))
        typed = text if spark_type == "string" else text.try_cast(spark_type)
        columns += [F.col(f"_message.{name}").isNotNull().alias(f"_has_{name}"), typed.alias(f"_v_{name}")]
    return (parsed.select("*", *columns).drop("_message")
            .withColumn("_json_ok", F.col("_json_type").isNotNull()))


# -- validate --------------------------------------------------------------------------------

def _first_missing(fields: Iterable[str]) -> Column:
    missing = [F.when(~F.col(f"_has_{f}"), F.lit(f)) for f in fields]
    return F.concat_ws(", ", *missing)


def _basic_rules(required: dict[str, str], optional: dict[str, str]) -> list[Rule]:
    numeric = [f for f, t in {**required, **optional}.items() if t in NUMERIC_TYPES]
    non_numeric = [F.when(F.col(f"_has_{f}") & F.col(f"_v_{f}").isNull(), F.lit(f)) for f in numeric]
    doubles = [f for f, t in {**required, **optional}.items() if t == "double"]
    non_finite = [F.when(F.isnan(f"_v_{f}") | (F.abs(F.col(f"_v_{f}")) == float("inf")), F.lit(f))
                  for f in doubles]
    return [
        Rule("empty_message", F.col("value").isNull(), F.lit("the Kafka message has no value")),
        Rule("not_json", ~F.col("_json_ok"), F.lit("the value is not valid JSON")),
        Rule("not_an_object", ~F.col("_json_type").startswith("OBJECT"),
             F.concat(F.lit("the JSON value is a "), F.col("_json_type"))),
        Rule("missing_field", reduce(lambda a, b: a | b, [~F.col(f"_has_{f}") for f in required]),
             F.concat(F.lit("missing or null: "), _first_missing(required))),
        Rule("unknown_schema_version", ~F.col("_v_schema_version").isin(*KNOWN_SCHEMA_VERSIONS),
             F.concat(F.lit("schema_version "), F.col("_v_schema_version").cast("string"),
                      F.lit(f"; known: {', '.join(map(str, KNOWN_SCHEMA_VERSIONS))}"))),
        Rule("non_numeric", F.concat_ws(", ", *non_numeric) != "",
             F.concat(F.lit("not a number: "), F.concat_ws(", ", *non_numeric))),
        Rule("non_finite", F.concat_ws(", ", *non_finite) != "",
             F.concat(F.lit("NaN or infinite: "), F.concat_ws(", ", *non_finite))),
    ]


def kline_rules(exchange: str, symbols: Iterable[str], now_ms: int) -> list[Rule]:
    symbols = list(symbols)
    interval_ms = interval_ms_of("_v_interval")
    return _basic_rules(KLINE_REQUIRED, KLINE_OPTIONAL) + [
        Rule("unknown_exchange", F.col("_v_exchange") != exchange,
             F.concat(F.lit("exchange "), F.col("_v_exchange"), F.lit(f" in the {exchange} topic"))),
        Rule("unknown_symbol", ~F.col("_v_symbol").isin(*symbols),
             F.concat(F.lit("symbol "), F.col("_v_symbol"), F.lit(f" is not configured ({', '.join(symbols)})"))),
        Rule("unknown_interval", interval_ms.isNull(), F.concat(F.lit("interval "), F.col("_v_interval"))),
        Rule("misaligned_open_time", F.col("_v_open_time") % interval_ms != 0,
             F.concat(F.lit("open_time "), F.col("_v_open_time").cast("string"), F.lit(" is not a multiple of "),
                      F.col("_v_interval"))),
        # A bar that opens more than one interval after now cannot exist yet: trading on it would
        # trade on a clock error (or on a feed's garbage), so it is kept out of silver.
        Rule("future_open_time", F.col("_v_open_time") > now_ms + interval_ms,
             F.concat(F.lit("open_time "), F.col("_v_open_time").cast("string"),
                      F.lit(" is more than one interval ("), F.col("_v_interval"), F.lit(") ahead of now"))),
        Rule("high_below_open_close", F.col("_v_high") < F.greatest("_v_open", "_v_close"),
             F.concat(F.lit("high "), F.col("_v_high").cast("string"), F.lit(" < max(open, close)"))),
        Rule("low_above_open_close", F.col("_v_low") > F.least("_v_open", "_v_close"),
             F.concat(F.lit("low "), F.col("_v_low").cast("string"), F.lit(" > min(open, close)"))),
        Rule("negative_volume", F.col("_v_volume") < 0,
             F.concat(F.lit("volume "), F.col("_v_volume").cast("string"))),
    ]


def market_rules(exchange: str, symbols: Iterable[str], now_ms: int) -> list[Rule]:
    symbols = list(symbols)
    return _basic_rules(MARKET_REQUIRED, MARKET_OPTIONAL) + [
        Rule("unknown_exchange", F.col("_v_exchange") != exchange,
             F.concat(F.lit("exchange "), F.col("_v_exchange"), F.lit(f" in the {exchange} topic"))),
        Rule("unknown_symbol", ~F.col("_v_symbol").isin(*symbols),
             F.concat(F.lit("symbol "), F.col("_v_symbol"), F.lit(" is not configured"))),
        Rule("unknown_metric", ~F.col("_v_metric").isin(*MARKET_METRICS),
             F.concat(F.lit("metric "), F.col("_v_metric"))),
        Rule("future_timestamp", F.col("_v_ts") > now_ms + MAX_FUTURE_MS,
             F.concat(F.lit("ts "), F.col("_v_ts").cast("string"), F.lit(" is more than a day ahead"))),
        Rule("negative_value", (F.col("_v_metric") != "funding_rate") & (F.col("_v_value") < 0),
             F.concat(F.lit("value "), F.col("_v_value").cast("string"))),
        # Taker buy volume / sell volume: 0 (no taker buys in the period) has no logarithm, which
        # is how sentiment reads the ratio; a negative one is caught above as negative_value.
        Rule("non_positive_ratio", (F.col("_v_metric") == "taker_buy_ratio") & (F.col("_v_value") <= 0),
             F.concat(F.lit("taker_buy_ratio "), F.col("_v_value").cast("string"), F.lit(" is not > 0"))),
    ]


def classify(parsed: DataFrame, rules: list[Rule]) -> DataFrame:
    """Adds `quarantine_reason` and `quarantine_detail`: the first rule the row breaks, or null.
    A rule whose inputs are null (because an earlier rule failed) does not fire on its own."""
    reason, detail = F.lit(None).cast("string"), F.lit(None).cast("string")
    for rule in reversed(rules):
        failed = F.coalesce(rule.failed, F.lit(False))
        reason = F.when(failed, F.lit(rule.reason)).otherwise(reason)
        detail = F.when(failed, rule.detail).otherwise(detail)
    return parsed.withColumn("quarantine_reason", reason).withColumn("quarantine_detail", detail)


# -- quarantine ------------------------------------------------------------------------------

def to_quarantine_rows(classified: DataFrame, source_table: str, exchange: str, kind: str) -> DataFrame:
    bad = classified.where(F.col("quarantine_reason").isNotNull())
    return bad.select(
        F.sha2(F.concat_ws("|", "topic", "partition", "offset"), 256).alias("quarantine_id"),
        F.lit(source_table).alias("source_table"),
        F.lit(exchange).alias("exchange"),
        F.lit(kind).alias("kind"),
        F.col("quarantine_reason").alias("reason"),
        F.col("quarantine_detail").alias("detail"),
        F.col("key").alias("raw_key"),
        F.col("value").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        "kafka_timestamp",
        "ingested_at",
        F.current_timestamp().alias("quarantined_at"),
    ).withColumn("quarantine_date", F.to_date("quarantined_at"))


# -- the good rows ---------------------------------------------------------------------------

def _provenance_columns() -> list:
    """Where a silver row came from and when: the same columns in every silver table."""
    return [
        F.col("_v_source").alias("source"),
        F.col("_v_schema_version").alias("schema_version"),
        F.col("_v_produced_at").alias("produced_at_ms"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("ingested_at"),
        F.current_timestamp().alias("updated_at"),
    ]


def to_silver_klines(classified: DataFrame) -> DataFrame:
    good = classified.where(F.col("quarantine_reason").isNull())
    interval_ms = interval_ms_of("_v_interval")
    return good.select(
        F.col("_v_exchange").alias("exchange"),
        F.col("_v_symbol").alias("symbol"),
        F.col("_v_exchange_symbol").alias("exchange_symbol"),
        F.col("_v_ccxt_symbol").alias("ccxt_symbol"),
        F.col("_v_interval").alias("interval"),
        F.col("_v_open_time").alias("open_time_ms"),
        F.timestamp_millis("_v_open_time").alias("open_time"),
        (F.col("_v_open_time") + interval_ms - 1).alias("close_time_ms"),
        F.col("_v_open").alias("open"),
        F.col("_v_high").alias("high"),
        F.col("_v_low").alias("low"),
        F.col("_v_close").alias("close"),
        F.col("_v_volume").alias("volume"),
        F.col("_v_quote_volume").alias("quote_volume"),
        F.col("_v_trade_count").alias("trade_count"),
        *_provenance_columns(),
    )


def to_silver_market(classified: DataFrame) -> DataFrame:
    good = classified.where(F.col("quarantine_reason").isNull())
    return good.select(
        F.col("_v_exchange").alias("exchange"),
        F.col("_v_symbol").alias("symbol"),
        F.col("_v_exchange_symbol").alias("exchange_symbol"),
        F.col("_v_ccxt_symbol").alias("ccxt_symbol"),
        F.col("_v_metric").alias("metric"),
        F.col("_v_period").alias("period"),
        F.col("_v_ts").alias("ts_ms"),
        F.timestamp_millis("_v_ts").alias("ts"),
        F.col("_v_value").alias("value"),
        F.col("_v_value_usd").alias("value_usd"),
        F.col("_v_long_share").alias("long_share"),
        F.col("_v_short_share").alias("short_share"),
        *_provenance_columns(),
    )


KLINE_KEY = ("exchange", "symbol", "interval", "open_time_ms")
MARKET_KEY = ("exchange", "symbol", "metric", "period", "ts_ms")


def latest_per_key(rows: DataFrame, key: Iterable[str]) -> DataFrame:
    """One row per key: the latest Kafka message (a key always goes to one partition, so
    its offsets order its messages; the partition only breaks ties across topics)."""
    order = Window.partitionBy(*key).orderBy(F.col("kafka_offset").desc(), F.col("kafka_partition").desc())
    return rows.withColumn("_rank", F.row_number().over(order)).where("_rank = 1").drop("_rank")


def upsert_latest(spark: SparkSession, location: str, rows: DataFrame, key: Iterable[str],
                  partition_column: str, time_column: str) -> str | None:
    """Deduplicate `rows` to the latest message per key and upsert them, a row replacing the
    table's only when it is a later message of its key. Returns "append", "merge" or None
    (nothing to write)."""
    latest = latest_per_key(rows, key).persist()
    try:
        key_range = key_range_of(latest, partition_column, time_column)
        return upsert(spark, location, latest, key, key_range) if key_range else None
    finally:
        latest.unpersist()


def append_once(rows: DataFrame, location: str, app_id: str, batch_id: int) -> None:
    """Append idempotently: Delta skips a (txnAppId, txnVersion) it has committed before."""
    (rows.write.format("delta").mode("append")
     .option("txnAppId", app_id).option("txnVersion", batch_id)
     .save(location))


# -- the streaming queries -------------------------------------------------------------------

@dataclass(frozen=True)
class SilverKind:
    """What silver does with one kind of message: the fields it needs and may have, the rules
    that quarantine a bad one, the silver row it makes, and the key it is upserted by."""
    required: dict[str, str]
    optional: dict[str, str]
    rules: Callable[[str, Iterable[str], int], list[Rule]]
    to_silver: Callable[[DataFrame], DataFrame]
    key: tuple[str, ...]
    partition_column: str
    time_column: str


KINDS = {
    "klines": SilverKind(KLINE_REQUIRED, KLINE_OPTIONAL, kline_rules, to_silver_klines, KLINE_KEY, "interval",
                         "open_time_ms"),
    "market": SilverKind(MARKET_REQUIRED, MARKET_OPTIONAL, market_rules, to_silver_market, MARKET_KEY, "metric",
                         "ts_ms"),
}


@dataclass(frozen=True)
class SilverQuery:
    exchange: str
    kind: str  # klines | market
    bronze_table: str
    bronze_location: str
    silver_table: str
    silver_location: str
    quarantine_location: str
    checkpoint: str

    @property
    def name(self) -> str:
        return f"silver_{self.exchange}_{self.kind}"

    @property
    def app_id(self) -> str:
        """Names this query's idempotent writes; tied to its checkpoint, since batch ids start
        again at 0 with a new one and a reused id would make Delta skip real data."""
        digest = hashlib.sha1(self.checkpoint.encode()).hexdigest()[:12]
        return f"cryptobot-{self.name}-{digest}"


def silver_queries(config: AppConfig, exchanges: list[str] | None = None) -> list[SilverQuery]:
    quarantine = table_location(config, table_spec(config, "silver.quarantine"))
    queries = []
    for exchange in exchanges or config.exchanges.enabled:
        for kind in ("klines", "market"):
            bronze = table_spec(config, f"bronze.{exchange}_{kind}")
            silver = table_spec(config, f"silver.{exchange}_{kind}")
            queries.append(SilverQuery(exchange, kind, bronze.qualified_name, table_location(config, bronze),
                                       silver.qualified_name, table_location(config, silver), quarantine,
                                       config.lake.checkpoint_path(f"silver_{exchange}_{kind}")))
    return queries


def for_outputs(classified: DataFrame) -> DataFrame:
    """What quarantine and silver need of a classified batch, the raw message only where it
    is rejected: the batch is cached this narrow, so that it is parsed and validated once."""
    return (classified.drop(*[c for c in classified.columns if c.startswith("_has_")])
            .withColumn("value", F.when(F.col("quarantine_reason").isNotNull(), F.col("value"))))


def process_batch(spark: SparkSession, config: AppConfig, query: SilverQuery, bronze_batch: DataFrame,
                  batch_id: int, now_ms: int) -> None:
    """Parse, validate, quarantine the bad, dedupe, merge the good. An empty batch writes
    nothing (no bad row, no key range); it is not asked for first: a live batch is small, and
    each Spark action costs it a good part of a second."""
    kind = KINDS[query.kind]
    parsed = parse_messages(bronze_batch, kind.required, kind.optional)
    classified = for_outputs(classify(parsed, kind.rules(query.exchange, config.exchanges.symbols, now_ms))).persist()
    try:
        if classified.where(F.col("quarantine_reason").isNotNull()).limit(1).count():
            append_once(to_quarantine_rows(classified, query.bronze_table, query.exchange, query.kind),
                        query.quarantine_location, f"{query.app_id}-quarantine", batch_id)
        upsert_latest(spark, query.silver_location, kind.to_silver(classified), kind.key,
                      partition_column=kind.partition_column, time_column=kind.time_column)
    finally:
        classified.unpersist()


def start_silver_query(spark: SparkSession, config: AppConfig, query: SilverQuery, available_now: bool):
    def upsert_silver(batch: DataFrame, batch_id: int) -> None:
        process_batch(spark, config, query, batch, batch_id, int(time.time() * 1000))

    writer = (spark.readStream.format("delta")
              .option("maxFilesPerTrigger", 1000)
              .load(query.bronze_location)
              .writeStream.queryName(query.name)
              .option("checkpointLocation", query.checkpoint)
              .foreachBatch(upsert_silver))
    return with_trigger(writer, config, available_now).start()
