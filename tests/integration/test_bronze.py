"""Kafka -> bronze: every message once, raw, whatever happens to the stream; replays from
the sample series and from the Kafka log."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from common.config import load_config
from streaming.app import run_stream
from streaming.replay import replay_file, replay_topic_to_bronze
from streaming.sample_data import SAMPLE_ROWS, SAMPLE_SOURCE, sample_path

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")


def bronze_rows(spark, table, topic):
    return spark.table(table).where(f"topic = '{topic}'")


def end_offset(config, topic):
    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap_servers)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def test_sample_replay_then_stream_fills_bronze_with_every_kline_once(spark, pipeline_env):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance"}
    config = load_config(env=env)
    report = replay_file(config, sample_path(), exchange="binance", symbol="BTCUSDT", derive=["15m", "1h", "4h"],
                         source=SAMPLE_SOURCE)
    expected = {"BTCUSDT|1m": SAMPLE_ROWS, "BTCUSDT|15m": SAMPLE_ROWS // 15, "BTCUSDT|1h": SAMPLE_ROWS // 60,
                "BTCUSDT|4h": SAMPLE_ROWS // 240}
    assert report.sent == expected

    again = replay_file(config, sample_path(), exchange="binance", symbol="BTCUSDT", derive=["15m", "1h", "4h"],
                        source=SAMPLE_SOURCE)
    assert again.sent == {} and again.skipped == expected  # resumed: nothing sent twice

    run_stream(spark, config, available_now=True, stages=1)
    topic = config.klines_topic("binance")
    rows = bronze_rows(spark, "bronze.binance_klines", topic)
    counts = {r.key: r.n for r in rows.groupBy("key").count().withColumnRenamed("count", "n").collect()}
    assert counts == expected
    assert rows.select("offset").distinct().count() == sum(expected.values())
    first = json.loads(rows.orderBy("offset").first().value)
    assert first["source"] == SAMPLE_SOURCE and first["exchange"] == "binance" and first["symbol"] == "BTCUSDT"

    second = run_stream(spark, config, available_now=True, stages=1)
    assert sum(second.rows.values()) == 0
    assert bronze_rows(spark, "bronze.binance_klines", topic).count() == sum(expected.values())


def test_malformed_messages_still_land_in_bronze_raw(spark, pipeline_env):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "bybit"}
    config = load_config(env=env)
    topic = config.klines_topic("bybit")
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    raw = [b"not json at all", b'{"schema_version": 1}', b"\xff\xfe"]
    for value in raw:
        producer.send(topic, key=b"BTCUSDT|1m", value=value)
    producer.send(topic, key=None, value=b"{}")  # no key at all
    producer.flush()
    producer.close()

    run_stream(spark, config, available_now=True, stages=1)
    rows = bronze_rows(spark, "bronze.bybit_klines", topic).orderBy("offset").collect()
    assert [r.offset for r in rows] == [0, 1, 2, 3]
    assert rows[0].value == "not json at all" and rows[1].value == '{"schema_version": 1}'
    assert rows[3].key is None and rows[3].value == "{}"
    assert all(r.kafka_timestamp is not None and r.ingested_at is not None for r in rows)


def test_bronze_stream_killed_with_sigkill_neither_loses_nor_duplicates(spark, pipeline_env, tmp_path):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "okx", "CRYPTOBOT_STREAMING__MAX_OFFSETS_PER_TRIGGER": "1000",
           "CRYPTOBOT_STREAMING__TRIGGER_INTERVAL_SECONDS": "1"}
    config = load_config(env=env)
    topic = config.klines_topic("okx")
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    total = 5_000
    for i in range(total):
        producer.send(topic, key=b"BTCUSDT|1m", value=json.dumps({"n": i}).encode())
    producer.flush()
    producer.close()

    log = open(tmp_path / "stream.log", "w")
    stream = subprocess.Popen([CRYPTOBOT, "stream", "--until", "bronze"], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = bronze_rows(spark, "bronze.okx_klines", topic).count() if _has_rows(spark) else 0
            if done >= 1_000:  # a batch is in, the next under way: kill it in the middle of the work
                break
            assert stream.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
            time.sleep(0.5)
        os.killpg(stream.pid, signal.SIGKILL)
        stream.wait(30)
    finally:
        if stream.poll() is None:
            os.killpg(stream.pid, signal.SIGKILL)
    killed_at = bronze_rows(spark, "bronze.okx_klines", topic).count()
    assert 0 < killed_at < total, f"the kill came too late to test anything ({killed_at} rows)"

    restart = subprocess.run([CRYPTOBOT, "stream", "--available-now", "--until", "bronze"], env=env,
                             capture_output=True, text=True, timeout=300)
    (tmp_path / "restart.log").write_text(restart.stderr)
    assert restart.returncode == 0, restart.stderr[-3000:]
    rows = bronze_rows(spark, "bronze.okx_klines", topic)
    assert rows.count() == total
    assert rows.select("offset").distinct().count() == total
    assert sorted(json.loads(r.value)["n"] for r in rows.select("value").collect()) == list(range(total))


def _has_rows(spark):
    spark.catalog.refreshTable("bronze.okx_klines")
    return True


def test_a_topic_can_be_rebuilt_from_the_log_into_a_fresh_table(spark, pipeline_env):
    env = {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance"}
    config = load_config(env=env)
    topic = config.market_topic("binance")
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    for i in range(50):
        producer.send(topic, key=b"BTCUSDT|funding_rate", value=json.dumps({"ts": i}).encode())
    producer.flush()
    producer.close()
    tag = "t" + str(abs(hash(topic)) % 10**8)

    table, rows = replay_topic_to_bronze(spark, config, exchange="binance", kind="market", tag=tag,
                                         starting_offsets=json.dumps({topic: {"0": 20}}))
    assert table == f"bronze.binance_market__{tag}" and rows == 30
    fresh = spark.table(table)
    assert fresh.count() == 30 and fresh.agg({"offset": "min"}).first()[0] == 20
    assert end_offset(config, topic) == 50


def test_a_scaled_time_replay_paces_klines_by_their_close_times(pipeline_env, tmp_path):
    config = load_config(env={**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "bybit"})
    path = tmp_path / "hour.csv"
    first_s = 1_786_924_800
    path.write_text("timestamp,open,high,low,close,volume\n" + "".join(
        f"{first_s + 60 * i},1,2,0.5,1.5,3\n" for i in range(60)))
    clock_ms = [1_000_000]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock_ms[0] += int(seconds * 1000)

    report = replay_file(config, path, exchange="bybit", symbol="BTCUSDT", derive=["15m"], speed=60,
                         clock=lambda: clock_ms[0], sleep=sleep)
    assert report.sent == {"BTCUSDT|1m": 60, "BTCUSDT|15m": 4}
    # An hour of klines at 60x: the last one is due 59 minutes / 60 = 59 s after the first.
    assert sum(slept) == pytest.approx(59.0, abs=0.01)
    assert len(slept) == 59  # one wait per minute of market time; the 15m bars ride with their minute
    sent = [m["open_time"] for _, m in _topic_values(config, config.klines_topic("bybit"))]
    assert len(sent) == 64


def _topic_values(config, topic):
    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap_servers, enable_auto_commit=False,
                             consumer_timeout_ms=5_000, auto_offset_reset="earliest")
    consumer.subscribe([topic])
    try:
        return [(r.key, json.loads(r.value)) for r in consumer]
    finally:
        consumer.close()
