"""The analytics stage in the streaming app: a replay of the sample fills gold.bos_warnings,
gold.liquidity_zones and gold.analytics_state, and computing it in two micro-batches (half the
sample, then the rest) writes exactly the rows one batch run over the whole series writes; the
signals stage finds and scores the setups a batch scan finds."""
import json

import pandas as pd
from pyspark.sql import functions as F

from common.analytics.series import AnalyticsParams, analyze_series
from common.config import load_config
from common.intervals import INTERVAL_MS
from streaming.app import run_stream
from common.kline_files import read_kline_file
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE, sample_path
from streaming.signals import scan_zone_changes

SYMBOL = "DOTUSDT"  # this test's own: the lake is shared
EVENT_KEY = ["bar_time_ms", "event_type", "direction", "swing_time_ms"]


def test_stream_in_two_batches_equals_one_batch_run(spark, pipeline_env, tmp_path):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance", "CRYPTOBOT_EXCHANGES__SYMBOLS": SYMBOL,
           "CRYPTOBOT_EXCHANGES__INTERVALS": "15m,1h"}
    config = load_config(env=env)
    minutes = read_kline_file(sample_path())
    first_half = tmp_path / "first_half.csv"
    minutes.head(len(minutes) // 2).to_csv(first_half, index=False)

    for path in (first_half, sample_path()):
        replay_file(config, path, exchange="binance", symbol=SYMBOL, derive=["15m", "1h"], source=SAMPLE_SOURCE)
        run_stream(spark, config, available_now=True)

    for exchange, interval in (("binance", "15m"), ("consolidated", "1h")):
        where = f"exchange = '{exchange}' AND symbol = '{SYMBOL}' AND interval = '{interval}'"
        table = "silver.unified_klines" if exchange != "consolidated" else "silver.consolidated_klines"
        bars = spark.table(table).where(where.replace(f"exchange = '{exchange}' AND ", "") if exchange ==
                                        "consolidated" else where).toPandas()
        events, zones, state = analyze_series(bars, None, AnalyticsParams.from_config(config.analytics, interval), INTERVAL_MS[interval])
        assert len(events) > 10 and len(zones) > 10  # the sample has structure on both

        streamed_events = spark.table("gold.bos_warnings").where(where).toPandas()
        assert streamed_events.event_id.is_unique
        assert set(events.event_type) == set(streamed_events.event_type)
        pd.testing.assert_frame_equal(
            streamed_events[events.columns].sort_values(EVENT_KEY).reset_index(drop=True),
            events.sort_values(EVENT_KEY).reset_index(drop=True), check_dtype=False)

        streamed_zones = spark.table("gold.liquidity_zones").where(where).toPandas()
        streamed_zones["zone_id"] = streamed_zones.zone_id.str.split(":", n=3).str[3]
        zone_key = ["known_at_ms", "zone_id", "status", "touches", "swing_count"]
        pd.testing.assert_frame_equal(
            streamed_zones[zones.columns].sort_values(zone_key).reset_index(drop=True),
            zones.sort_values(zone_key).reset_index(drop=True), check_dtype=False)

        stored = spark.table("gold.analytics_state").where(where).collect()
        assert len(stored) == 1 and stored[0].last_bar_ms == state.last_bar_ms
        assert stored[0].state_json == state.to_json()

    # The signals stage found setups in both batches and scored each after its batch; a batch
    # scan over the whole tables finds exactly the same ones.
    found = spark.table("gold.signals_all").where(f"symbol = '{SYMBOL}'").toPandas()
    assert len(found) > 5 and found.signal_id.is_unique
    assert set(found.strategy) == {"smc", "liquidity"}
    assert "pending" not in set(found.status) and len(set(found.status)) >= 2
    assert found.score.notna().all() and found.score_zone_quality.notna().all()
    assert all(json.loads(lineage)["zone_id"] == zone_id for lineage, zone_id in zip(found.lineage, found.zone_id))
    zones = spark.table("gold.liquidity_zones").where(f"symbol = '{SYMBOL}'")
    batch_ids = {r.signal_id for r in scan_zone_changes(spark, config, zones).collect()}
    assert batch_ids == set(found.signal_id)
    moves = spark.table("trading.audit_log").where(F.col("entity_id").isin(list(found.signal_id)))
    assert moves.where("to_status = 'pending'").count() == len(found)
    assert moves.where("from_status = 'pending'").count() == len(found)

    # Nothing new: a third run analyses nothing and writes nothing.
    before = spark.table("gold.bos_warnings").where(f"symbol = '{SYMBOL}'").count()
    run_stream(spark, config, available_now=True)
    assert spark.table("gold.bos_warnings").where(f"symbol = '{SYMBOL}'").count() == before
    assert spark.table("gold.signals_all").where(f"symbol = '{SYMBOL}'").count() == len(found)


def test_sentiment_scores_from_market_data_and_closes(spark, pipeline_env):
    from kafka import KafkaProducer

    from common.exchange.market_data import Kline, MarketPoint
    from streaming.producers.messages import encode, kline_message, market_message

    symbol, hour, start = "LTCUSDT", 3_600_000, 1_786_924_800_000
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "bybit", "CRYPTOBOT_EXCHANGES__SYMBOLS": symbol,
           "CRYPTOBOT_EXCHANGES__INTERVALS": "1h"}
    config = load_config(env=env)
    names = {"exchange": "bybit", "symbol": symbol, "exchange_symbol": symbol, "ccxt_symbol": "LTC/USDT:USDT"}

    def send(hours):
        producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
        for h in hours:
            t = start + h * hour
            price = 100 + h
            producer.send(config.klines_topic("bybit"), key=f"{symbol}|1h".encode(), value=encode(kline_message(
                **names, interval="1h", kline=Kline(t, price - 1, price + 1, price - 2, price, 10.0), source="test",
                produced_at_ms=t + hour)))
            # Sent by hand: Bybit's producer has no taker ratio, but silver onwards takes it from any exchange.
            for metric, value in (("open_interest", 1000.0 + 10 * h), ("long_short_ratio", 1.5),
                                  ("taker_buy_ratio", 1.1)):
                producer.send(config.market_topic("bybit"), key=f"{symbol}|{metric}".encode(), value=encode(
                    market_message(**names, point=MarketPoint(metric, "1h", t, value), source="test",
                                   produced_at_ms=t + hour)))
        producer.flush()
        producer.close()

    send(range(8))
    run_stream(spark, config, available_now=True)
    scores = spark.table("gold.sentiment_scores").where(f"symbol = '{symbol}'").orderBy("ts_ms").toPandas()
    assert list(scores.ts_ms) == [start + h * hour for h in range(8)]
    assert (scores.interval == "1h").all() and (scores.known_at_ms == scores.ts_ms + hour).all()
    # Long/short and taker ratios (0.25 + 0.15 of the weight) until four hours of open interest and price exist.
    assert list(scores.confidence.round(2)) == [0.40] * 4 + [0.70] * 4
    assert (scores.taker_buy_ratio == 1.1).all()  # through silver and unified to gold
    # 1.5 long per short, read contrarian, outweighs takers buying 1.1 per sell: -34.8
    assert (scores.label.iloc[:4] == "bearish").all()

    send(range(8, 10))
    run_stream(spark, config, available_now=True)
    again = spark.table("gold.sentiment_scores").where(f"symbol = '{symbol}'").orderBy("ts_ms").toPandas()
    assert len(again) == 10 and again.ts_ms.is_unique  # only the new hours were added
    pd.testing.assert_frame_equal(again.iloc[:8].drop(columns="created_at"), scores.drop(columns="created_at"))
