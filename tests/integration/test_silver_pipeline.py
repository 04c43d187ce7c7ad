"""Kafka -> bronze -> silver -> unified with the real broker: every message ends up in exactly
one place (silver, superseded by a later message of its key, or quarantine), and a kill -9 of
the streaming app leaves no duplicate and no missing key behind."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kafka import KafkaProducer

from common.config import load_config
from streaming.app import run_stream
from streaming.replay import replay_file
from streaming.sample_data import SAMPLE_SOURCE
from tests.sample_series import sample_days

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")
DAYS = 4  # of the sample: whole days, so every 15m, 1h and 4h bar is complete
SAMPLE_KLINES = DAYS * (1440 + 96 + 24 + 6)
FIRST_OPEN_MS = 1_786_924_800_000  # the sample's first minute


def env_for(pipeline_env, symbol, **extra):
    # A symbol of this test's own: silver and unified are keyed by symbol, not by topic.
    return {**pipeline_env, "CRYPTOBOT_EXCHANGES__ENABLED": "binance", "CRYPTOBOT_EXCHANGES__SYMBOLS": symbol,
            **{f"CRYPTOBOT_{k.upper()}": v for k, v in extra.items()}}


def send(config, topic, messages):
    producer = KafkaProducer(bootstrap_servers=config.kafka.bootstrap_servers, acks="all")
    for key, value in messages:
        producer.send(topic, key=key.encode(), value=value if isinstance(value, bytes) else json.dumps(value).encode())
    producer.flush()
    producer.close()


def test_every_message_ends_up_in_exactly_one_place(spark, pipeline_env, tmp_path):
    config = load_config(env=env_for(pipeline_env, "XRPUSDT"))
    topic = config.klines_topic("binance")
    replay_file(config, sample_days(tmp_path / "sample.csv", DAYS), exchange="binance", symbol="XRPUSDT", derive=["15m", "1h", "4h"],
                source=SAMPLE_SOURCE)
    first = {"schema_version": 1, "exchange": "binance", "symbol": "XRPUSDT", "interval": "1m",
             "open_time": FIRST_OPEN_MS, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3.0}
    send(config, topic, [
        ("XRPUSDT|1m", b"{not json"),
        ("XRPUSDT|1m", {**first, "high": 0.9}),                        # high below open and close
        ("XRPUSDT|1m", {**first, "open_time": FIRST_OPEN_MS + 1}),     # misaligned
        ("XRPUSDT|1m", {**first, "symbol": "DOGEUSDT"}),              # not configured
        ("XRPUSDT|1m", {**first, "volume": -2.0}),                     # negative volume
        ("XRPUSDT|1m", first),                                         # a correction of the first kline
    ])

    run_stream(spark, config, available_now=True, stages=3)

    bronze = spark.table("bronze.binance_klines").where(f"topic = '{topic}'")
    silver = spark.table("silver.binance_klines").where(f"kafka_topic = '{topic}'")
    quarantine = spark.table("silver.quarantine").where(f"kafka_topic = '{topic}'")
    assert bronze.count() == SAMPLE_KLINES + 6
    assert silver.count() == SAMPLE_KLINES  # one row per key
    assert sorted(r.reason for r in quarantine.collect()) == [
        "high_below_open_close", "misaligned_open_time", "negative_volume", "not_json", "unknown_symbol"]

    # Every bronze offset is in silver, in quarantine, or superseded by a later message of its key.
    placed = silver.selectExpr("kafka_offset AS offset").union(quarantine.selectExpr("kafka_offset AS offset"))
    unplaced = bronze.select("offset").subtract(placed).collect()
    assert len(unplaced) == 1  # the first kline's original message, superseded by its correction
    corrected = silver.where(f"interval = '1m' AND open_time_ms = {FIRST_OPEN_MS}").first()
    assert corrected.close == 1.5 and corrected.kafka_offset > unplaced[0].offset

    unified = spark.table("silver.unified_klines").where("exchange = 'binance' AND symbol = 'XRPUSDT'")
    assert unified.count() == SAMPLE_KLINES
    assert unified.select("interval", "open_time_ms").distinct().count() == SAMPLE_KLINES
    assert unified.where("exchange_symbol = 'XRPUSDT' AND ccxt_symbol = 'XRP/USDT:USDT'").count() == SAMPLE_KLINES
    consolidated = spark.table("silver.consolidated_klines").where("symbol = 'XRPUSDT'")
    assert consolidated.count() == SAMPLE_KLINES
    assert consolidated.where("exchange_count = 1 AND exchanges = array('binance')").count() == SAMPLE_KLINES

    again = run_stream(spark, config, available_now=True, stages=3)
    assert sum(again.rows.values()) == 0


def test_streaming_app_killed_midway_leaves_no_duplicate_and_no_missing_key(spark, pipeline_env, tmp_path):
    env = env_for(pipeline_env, "SOLUSDT", streaming__max_offsets_per_trigger="1500",
                  streaming__trigger_interval_seconds="1")
    config = load_config(env=env)
    replay_file(config, sample_days(tmp_path / "sample.csv", DAYS), exchange="binance", symbol="SOLUSDT", derive=["15m", "1h", "4h"],
                source=SAMPLE_SOURCE)

    def silver_rows():
        return spark.table("silver.binance_klines").where("symbol = 'SOLUSDT'").count()

    log = open(tmp_path / "stream.log", "w")
    app = subprocess.Popen([CRYPTOBOT, "stream", "--until", "unified"], env=env, stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and silver_rows() < 1500:
            assert app.poll() is None, (tmp_path / "stream.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        os.killpg(app.pid, signal.SIGKILL)
        app.wait(30)
    assert 0 < silver_rows() < SAMPLE_KLINES, "the kill came too late to test anything"

    restart = subprocess.run([CRYPTOBOT, "stream", "--available-now", "--until", "unified"], env=env,
                             capture_output=True, text=True, timeout=600)
    assert restart.returncode == 0, restart.stderr[-3000:]
    for table in ("silver.binance_klines", "silver.unified_klines"):
        rows = spark.table(table).where("exchange = 'binance' AND symbol = 'SOLUSDT'")
        assert rows.count() == SAMPLE_KLINES, table
        assert rows.select("interval", "open_time_ms").distinct().count() == SAMPLE_KLINES, table
    assert spark.table("silver.consolidated_klines").where("symbol = 'SOLUSDT'").count() == SAMPLE_KLINES
