"""Silver transforms on hand-built bronze rows: every quarantine reason, dedupe in a batch and
across batches, late and out-of-order klines, corrections, and idempotent re-runs."""
import json
from datetime import datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import functions as F

from common.catalog import KAFKA_RAW_COLUMNS, KLINE_COLUMNS
from streaming.silver import (
    KLINE_KEY, KLINE_OPTIONAL, KLINE_REQUIRED, MARKET_OPTIONAL, MARKET_REQUIRED, classify, kline_rules,
    latest_per_key, market_rules, parse_messages, to_quarantine_rows, to_silver_klines, to_silver_market,
    upsert_latest,
)

T0 = 1_786_924_800_000  # 2026-08-17 00:00 UTC
NOW = T0 + 86_400_000
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def kline(**changes):
    message = {"schema_version": 1, "exchange": "binance", "symbol": "BTCUSDT", "exchange_symbol": "BTCUSDT",
               "ccxt_symbol": "BTC/USDT:USDT", "interval": "1m", "open_time": T0, "close_time": T0 + 59_999,
               "open": 100.0, "high": 110.0, "low": 95.0, "close": 105.0, "volume": 12.5, "quote_volume": None,
               "trade_count": 7, "source": "binance", "produced_at": T0 + 61_000}
    message.update(changes)
    return message


def bronze_rows(spark, values, start_offset=0, topic="klines.binance"):
    """Bronze rows with the given values (dicts are JSON-encoded, strings kept raw)."""
    rows = []
    for i, value in enumerate(values):
        raw = json.dumps(value) if isinstance(value, (dict, list)) else value
        rows.append(("BTCUSDT|1m", raw, topic, 0, start_offset + i, datetime(2026, 8, 17, 0, 2),
                     datetime(2026, 8, 17, 0, 2, 1), datetime(2026, 8, 17).date()))
    return spark.createDataFrame(rows, KAFKA_RAW_COLUMNS)


def reasons(spark, values):
    parsed = parse_messages(bronze_rows(spark, values), KLINE_REQUIRED, KLINE_OPTIONAL)
    rows = classify(parsed, kline_rules("binance", SYMBOLS, NOW)).orderBy("offset").collect()
    return [(r.quarantine_reason, r.quarantine_detail) for r in rows]


INVALID_KLINES = [
    ("not json {", "not_json", "the value is not valid JSON"),
    ('[1, 2]', "not_an_object", "the JSON value is a ARRAY<BIGINT>"),
    (kline(open=None), "missing_field", "missing or null: open"),
    ({k: v for k, v in kline().items() if k not in ("high", "volume")}, "missing_field",
     "missing or null: high, volume"),
    (kline(schema_version=2), "unknown_schema_version", "schema_version 2; known: 1"),
    (kline(close="abc"), "non_numeric", "not a number: close"),
    (kline(volume="NaN"), "non_finite", "NaN or infinite: volume"),
    (json.dumps(kline()).replace('"high": 110.0', '"high": 1e400'), "non_finite", "NaN or infinite: high"),
    (json.dumps(kline(high=float("inf"))), "not_json", "the value is not valid JSON"),  # Python's 'Infinity'
    (json.dumps(kline()) + " and then some", "not_json", "the value is not valid JSON"),

    (kline(exchange="okx"), "unknown_exchange", "exchange okx in the binance topic"),
    (kline(symbol="DOGEUSDT"), "unknown_symbol", "symbol DOGEUSDT is not configured (BTCUSDT, ETHUSDT)"),
    (kline(interval="7m"), "unknown_interval", "interval 7m"),
    (kline(open_time=T0 + 30_000), "misaligned_open_time", f"open_time {T0 + 30_000} is not a multiple of 1m"),
    (kline(open_time=NOW // 60_000 * 60_000 + 180_000), "future_open_time",  # 2-3 minutes ahead, of a 1m bar
     f"open_time {NOW // 60_000 * 60_000 + 180_000} is more than one interval (1m) ahead of now"),
    (kline(high=104.0), "high_below_open_close", "high 104.0 < max(open, close)"),
    (kline(low=101.0), "low_above_open_close", "low 101.0 > min(open, close)"),
    (kline(volume=-1), "negative_volume", "volume -1.0"),
]


def test_every_invalid_kline_gets_its_own_reason(spark):
    # One DataFrame for the whole table of cases: one Spark job instead of one per case.
    got = reasons(spark, [value for value, _, _ in INVALID_KLINES])
    for (value, reason, detail), result in zip(INVALID_KLINES, got):
        assert result == (reason, detail), value


def test_valid_klines_pass_including_numbers_sent_as_strings(spark):
    assert reasons(spark, [kline(), kline(open="100.0", open_time=T0 + 60_000)]) == [(None, None), (None, None)]


def test_an_empty_message_is_quarantined(spark):
    rows = bronze_rows(spark, ["x"]).withColumn("value", F.lit(None).cast("string"))
    classified = classify(parse_messages(rows, KLINE_REQUIRED, KLINE_OPTIONAL), kline_rules("binance", SYMBOLS, NOW))
    assert classified.first().quarantine_reason == "empty_message"


def test_quarantine_rows_keep_the_raw_message_and_its_kafka_coordinates(spark):
    parsed = parse_messages(bronze_rows(spark, [kline(), "garbage"], start_offset=40), KLINE_REQUIRED, KLINE_OPTIONAL)
    quarantine = to_quarantine_rows(classify(parsed, kline_rules("binance", SYMBOLS, NOW)),
                                    "bronze.binance_klines", "binance", "klines").collect()
    assert len(quarantine) == 1
    row = quarantine[0]
    assert (row.raw_value, row.reason, row.kafka_topic, row.kafka_partition, row.kafka_offset) == (
        "garbage", "not_json", "klines.binance", 0, 41)
    assert row.source_table == "bronze.binance_klines" and row.raw_key == "BTCUSDT|1m"


def test_market_rules(spark):
    good = {"schema_version": 1, "exchange": "bybit", "symbol": "BTCUSDT", "metric": "funding_rate", "period": "8h",
            "ts": T0, "value": -0.0001}
    taker = {**good, "metric": "taker_buy_ratio", "period": "1h", "value": 1.25}
    rows = bronze_rows(spark, [good, {**good, "metric": "fear"}, {**good, "metric": "open_interest", "value": -5},
                               taker, {**taker, "value": 0.0}, {**taker, "value": -1.0},
                               json.dumps(taker).replace('"value": 1.25', '"value": 1e400')],
                       topic="market.bybit")
    parsed = parse_messages(rows, MARKET_REQUIRED, MARKET_OPTIONAL)
    classified = classify(parsed, market_rules("bybit", SYMBOLS, NOW))
    result = [r.quarantine_reason for r in classified.orderBy("offset").collect()]
    assert result == [None, "unknown_metric", "negative_value",
                      None, "non_positive_ratio", "negative_value", "non_finite"]
    (kept,) = to_silver_market(classified).where("metric = 'taker_buy_ratio'").collect()
    assert (kept.symbol, kept.period, kept.ts_ms, kept.value) == ("BTCUSDT", "1h", T0, 1.25)


def silver_of(spark, values, start_offset=0):
    parsed = parse_messages(bronze_rows(spark, values, start_offset), KLINE_REQUIRED, KLINE_OPTIONAL)
    return to_silver_klines(classify(parsed, kline_rules("binance", SYMBOLS, NOW)))


def test_the_latest_message_of_a_key_wins_within_a_batch(spark):
    rows = latest_per_key(silver_of(spark, [kline(close=101.0), kline(close=102.0), kline(close=103.0)]), KLINE_KEY)
    expected = spark.createDataFrame([("BTCUSDT", T0, 103.0, 2)], "symbol string, open_time_ms long, close double, "
                                                                   "kafka_offset long")
    assert_df_equality(rows.select("symbol", "open_time_ms", "close", "kafka_offset"), expected,
                       ignore_nullable=True)


@pytest.fixture
def silver_table(spark, tmp_path):
    location = str(tmp_path / "silver_klines")
    spark.sql(f"CREATE TABLE delta.`{location}` ({KLINE_COLUMNS}) USING DELTA PARTITIONED BY (interval)")
    return location


def table_closes(spark, location):
    return {(r.interval, r.open_time_ms): r.close for r in spark.read.format("delta").load(location).collect()}


def test_merge_across_batches_corrects_late_and_out_of_order_klines(spark, silver_table):
    def merge(values, start_offset):
        return upsert_latest(spark, silver_table, silver_of(spark, values, start_offset), KLINE_KEY,
                             partition_column="interval", time_column="open_time_ms")

    # Out of order, into an empty table: nothing can match, so it is appended.
    assert merge([kline(open_time=T0 + 120_000), kline(open_time=T0)], start_offset=0) == "append"
    assert merge([kline(open_time=T0 + 60_000, close=100.0),                    # late: fills the hole
                  kline(open_time=T0, close=99.0, low=90.0)], start_offset=2) == "merge"  # a correction of T0
    assert table_closes(spark, silver_table) == {("1m", T0): 99.0, ("1m", T0 + 60_000): 100.0,
                                                 ("1m", T0 + 120_000): 105.0}

    before = spark.sql(f"DESCRIBE HISTORY delta.`{silver_table}`").count()
    merge([kline(open_time=T0, close=99.0, low=90.0)], start_offset=3)  # the same batch again (a re-run)
    merge([kline(open_time=T0, close=50.0, low=40.0)], start_offset=1)  # an older message of the key, replayed
    assert table_closes(spark, silver_table)[("1m", T0)] == 99.0
    assert spark.read.format("delta").load(silver_table).count() == 3
    assert spark.sql(f"DESCRIBE HISTORY delta.`{silver_table}`").count() >= before


def test_only_keys_the_table_holds_force_a_merge(spark, silver_table):
    def upsert(values, start_offset):
        return upsert_latest(spark, silver_table, silver_of(spark, values, start_offset), KLINE_KEY,
                             partition_column="interval", time_column="open_time_ms")

    assert upsert([kline(interval="15m")], start_offset=0) == "append"
    # Same open time, another interval (partition): nothing of the table is in range.
    assert upsert([kline(), kline(open_time=T0 + 60_000)], start_offset=1) == "append"
    # Another symbol's candle of a stored minute (it came a batch later): no key matches, an append.
    assert upsert([kline(symbol="ETHUSDT", open_time=T0 + 60_000)], start_offset=3) == "append_new_keys"
    # A stored key among new ones: a MERGE, which updates it (a later message) and inserts the rest.
    assert upsert([kline(symbol="ETHUSDT", open_time=T0 + 60_000, close=101.0),
                   kline(symbol="ETHUSDT", open_time=T0 + 120_000, close_time=T0 + 179_999)], start_offset=4) == "merge"
    stored = {(r.symbol, r.interval, r.open_time_ms): r.close
              for r in spark.read.format("delta").load(silver_table).collect()}
    assert set(stored) == {("BTCUSDT", "15m", T0), ("BTCUSDT", "1m", T0), ("BTCUSDT", "1m", T0 + 60_000),
                           ("ETHUSDT", "1m", T0 + 60_000), ("ETHUSDT", "1m", T0 + 120_000)}
    assert stored[("ETHUSDT", "1m", T0 + 60_000)] == 101.0
