"""Producers end to end: the real ccxt client against the fake exchange (Binance, Bybit and OKX
REST formats on 127.0.0.1), the real broker, and bronze. Every closed candle arrives once, the
forming one never, faults are retried, a restart leaves no gap and no duplicate."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from common.config import load_config
from streaming.app import run_stream
from common.kline_files import read_kline_file, resample_klines
from streaming.producers.run import run_producers
from streaming.sample_data import sample_path
from tests.fake_exchange import FakeExchange

CRYPTOBOT = str(Path(sys.executable).parent / "cryptobot")
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
INTERVALS = ("1m", "15m", "1h", "4h")
# The series ends on a 4h boundary at least 10 minutes ago: every candle in it has closed.
END_MS = (int(time.time() * 1000) - 10 * 60_000) // (4 * HOUR_MS) * (4 * HOUR_MS)
START_MS = END_MS - 2 * DAY_MS


def build_series():
    """The sample's last two days, moved to end at END_MS; ETH at a twentieth of BTC's price, and
    each exchange its own small offset, so that a mix-up shows."""
    minutes = read_kline_file(sample_path()).tail(2 * DAY_MS // 60_000).reset_index(drop=True)
    minutes["open_time_ms"] = minutes["open_time_ms"] - minutes["open_time_ms"].iloc[0] + START_MS
    series = {}
    for n, exchange in enumerate(("binance", "bybit", "okx")):
        for symbol, scale in (("BTCUSDT", 1.0), ("ETHUSDT", 0.05)):
            frame = minutes.copy()
            for column in ("open", "high", "low", "close"):
                frame[column] = (frame[column] * scale + n).round(2)
            for interval in INTERVALS:
                bars = frame if interval == "1m" else resample_klines(frame, "1m", interval)
                series[(exchange, symbol, interval)] = bars.values.tolist()
    return series


SERIES = build_series()


@pytest.fixture
def fake():
    with FakeExchange(SERIES) as exchange:
        yield exchange
        assert exchange.unknown_requests == []


def producer_env(pipeline_env, fake, **overrides):
    env = {**pipeline_env,
           "CRYPTOBOT_PRODUCER__API_BASE_URL": fake.base_url,
           "CRYPTOBOT_PRODUCER__RETRY_BASE_DELAY_MS": "50",
           "CRYPTOBOT_PRODUCER__RETRY_MAX_DELAY_MS": "400",
           "CRYPTOBOT_PRODUCER__REQUEST_TIMEOUT_MS": "1000",
           "CRYPTOBOT_PRODUCER__POLL_INTERVAL_SECONDS": "1"}
    env.update({f"CRYPTOBOT_{k.upper()}": v for k, v in overrides.items()})
    return env


def topic_messages(config, topic):
    """Every (key, value) in the topic, in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap_servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek_to_beginning(tp)
        messages = []
        while len(messages) < end:
            for record in consumer.poll(timeout_ms=5_000).get(tp, []):
                messages.append((record.key.decode(), json.loads(record.value)))
        return messages
    finally:
        consumer.close()


def assert_every_closed_kline_once(config, exchanges, symbols, intervals):
    for exchange in exchanges:
        messages = topic_messages(config, config.klines_topic(exchange))
        seen = Counter((key, m["open_time"]) for key, m in messages)
        assert max(seen.values()) == 1, f"{exchange}: duplicates {[k for k, n in seen.items() if n > 1][:5]}"
        for symbol in symbols:
            for interval in intervals:
                key = f"{symbol}|{interval}"
                sent = sorted((m for k, m in messages if k == key), key=lambda m: m["open_time"])
                served = SERIES[(exchange, symbol, interval)]
                assert [m["open_time"] for m in sent] == [row[0] for row in served], f"{exchange} {key}"
                assert [m["close"] for m in sent] == [row[4] for row in served], f"{exchange} {key}"


def test_backfill_sends_every_closed_kline_once_and_bronze_receives_them(spark, pipeline_env, fake):
    fake.forming_candle = True
    env = producer_env(pipeline_env, fake)
    config = load_config(env=env)

    report = run_producers(config, once=True, since_ms=START_MS)
    assert report.ok, report.describe()
    assert_every_closed_kline_once(config, ("binance", "bybit", "okx"), ("BTCUSDT", "ETHUSDT"), INTERVALS)

    okx_btc = next(m for k, m in topic_messages(config, config.klines_topic("okx")) if k == "BTCUSDT|1h")
    assert (okx_btc["schema_version"], okx_btc["exchange_symbol"], okx_btc["ccxt_symbol"], okx_btc["source"]) == (
        1, "BTC-USDT-SWAP", "BTC/USDT:USDT", "okx")
    assert okx_btc["quote_volume"] > 0  # from the raw response: ccxt's unified OHLCV drops it
    binance_btc = next(m for k, m in topic_messages(config, config.klines_topic("binance")) if k == "BTCUSDT|1m")
    assert binance_btc["trade_count"] >= 1 and binance_btc["quote_volume"] > 0
    for exchange in ("binance", "bybit", "okx"):
        assert all(m["open_time"] < END_MS for _, m in topic_messages(config, config.klines_topic(exchange))), \
            "the forming candle was sent"
        market = topic_messages(config, config.market_topic(exchange))
        metrics = {m["metric"] for _, m in market}
        assert "funding_rate" in metrics and "open_interest" in metrics, exchange
        # Bybit publishes no taker buy/sell volume history.
        assert ("taker_buy_ratio" in metrics) == (exchange != "bybit"), exchange
        assert len({(k, m["ts"]) for k, m in market}) == len(market), f"{exchange}: duplicate market points"

    # The exchanges' page limits were respected.
    limits = {"/fapi/v1/klines": 1000, "/v5/market/kline": 1000, "/api/v5/market/candles": 300,
              "/api/v5/market/history-candles": 100}
    kline_requests = [r for r in fake.requests if r["path"] in limits]
    assert kline_requests and all(int(r["params"]["limit"]) <= limits[r["path"]] for r in kline_requests)
    assert any(r["path"] == "/api/v5/market/history-candles" for r in kline_requests)

    # Restarted, the producer resumes from Kafka: nothing new to send, nothing sent twice.
    again = run_producers(config, once=True, since_ms=START_MS)
    assert sum(again.sent.values()) == 0, again.describe()

    run_stream(spark, config, available_now=True, stages=1)
    for exchange in ("binance", "bybit", "okx"):
        topic = config.klines_topic(exchange)
        in_kafka = len(topic_messages(config, topic))
        bronze = spark.table(f"bronze.{exchange}_klines").where(f"topic = '{topic}'")
        assert bronze.count() == in_kafka == sum(len(SERIES[(exchange, s, i)])
                                                  for s in ("BTCUSDT", "ETHUSDT") for i in INTERVALS)


@pytest.mark.parametrize("fault", ["timeout", "http_429", "http_500", "http_503", "malformed"])
def test_injected_faults_are_retried_and_the_data_still_arrives_complete(pipeline_env, fake, fault):
    env = producer_env(pipeline_env, fake, exchanges__symbols="BTCUSDT", exchanges__intervals="1m,1h",
                       producer__market_data="false")
    config = load_config(env=env)
    fake.timeout_sleep_s = 2.0
    for exchange, path in (("binance", "klines"), ("bybit", "kline"), ("okx", "candles")):
        fake.inject(exchange, path, fault, times=2)
        fake.inject(exchange, "instruments" if exchange != "binance" else "exchangeInfo", fault, times=1)

    report = run_producers(config, once=True, since_ms=END_MS - 6 * HOUR_MS)
    assert report.ok, report.describe()
    assert fake.pending_faults() == []  # every fault was served, and got over
    for exchange in ("binance", "bybit", "okx"):
        messages = topic_messages(config, config.klines_topic(exchange))
        opens = Counter((k, m["open_time"]) for k, m in messages)
        assert max(opens.values()) == 1
        for interval, step in (("1m", 60_000), ("1h", HOUR_MS)):
            expected = [r[0] for r in SERIES[(exchange, "BTCUSDT", interval)] if r[0] >= END_MS - 6 * HOUR_MS]
            assert sorted(m["open_time"] for k, m in messages if k == f"BTCUSDT|{interval}") == expected


def test_an_unlisted_symbol_stops_its_streams_while_the_others_go_on(pipeline_env, fake):
    env = producer_env(pipeline_env, fake, exchanges__enabled="bybit", exchanges__symbols="BTCUSDT,DOGEUSDT",
                       exchanges__intervals="1h", producer__market_data="false")
    config = load_config(env=env)
    report = run_producers(config, once=True, since_ms=START_MS)
    assert not report.ok
    assert report.stopped == {"bybit DOGEUSDT|1h": "bybit lists no market DOGE/USDT:USDT"}
    assert report.sent["bybit BTCUSDT|1h"] == len(SERIES[("bybit", "BTCUSDT", "1h")])


def test_a_producer_killed_midway_resumes_without_gap_or_duplicate(pipeline_env, fake, tmp_path):
    env = producer_env(pipeline_env, fake, exchanges__enabled="okx", exchanges__symbols="BTCUSDT",
                       exchanges__intervals="1m", producer__market_data="false")
    config = load_config(env=env)
    topic = config.klines_topic("okx")
    expected = len(SERIES[("okx", "BTCUSDT", "1m")])
    fake.latency_s = 0.2  # ~30 pages of OKX history: several seconds to interrupt

    since = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(START_MS / 1000))
    log = open(tmp_path / "produce.log", "w")
    producer = subprocess.Popen([CRYPTOBOT, "produce", "--since", since], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(topic_messages(config, topic)) < 300:
            assert producer.poll() is None, (tmp_path / "produce.log").read_text()[-2000:]
            time.sleep(0.2)
    finally:
        os.killpg(producer.pid, signal.SIGKILL)
        producer.wait(30)
    killed_at = len(topic_messages(config, topic))
    assert 0 < killed_at < expected, f"the kill came too late to test anything ({killed_at} of {expected})"

    fake.latency_s = 0.0
    again = subprocess.run([CRYPTOBOT, "produce", "--once", "--since", since], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_every_closed_kline_once(config, ("okx",), ("BTCUSDT",), ("1m",))
