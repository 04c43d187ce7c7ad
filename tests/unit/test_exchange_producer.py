"""The producer's market streams through the real ccxt client on the fake exchange, with Kafka
replaced by a recorder that acknowledges every record: the taker buy/sell ratio goes out on
market.<exchange> as a market message where the exchange has one (Binance, OKX; not Bybit), each
point once, and resumes where Kafka says the stream stopped. Silver knows every metric a producer
can send. No Spark or Kafka."""
from __future__ import annotations

import json
from contextlib import contextmanager

import pytest
from kafka.errors import KafkaTimeoutError

from common.config import load_config
from common.exchange import market_data as market_data_module
from common.exchange.ccxt_factory import create_ccxt_exchange
from common.exchange.market_data import MarketDataClient
from common.exchange.retry import RetryPolicy
from streaming.producers import exchange_producer
from streaming.producers.exchange_producer import ExchangeProducer
from tests.fake_exchange import FakeExchange
from tests.fake_exchange.server import HOUR, MINUTE

HOUR_START = 1_717_200_000_000  # 2024-06-01T00:00:00Z
NOW = HOUR_START + 20_000
MARKET_IDS = {"binance": "BTCUSDT", "bybit": "BTCUSDT", "okx": "BTC-USDT-SWAP"}
TAKER_KEY = "BTCUSDT|taker_buy_ratio"


class _Acknowledged:
    def get(self, timeout=None):
        return None


class RecordingKafka:
    """What the producer sends, as (topic, key, decoded value); every record acknowledged at once.
    flushed: how many records had been sent at each flush."""

    def __init__(self):
        self.sent: list[tuple[str, str, dict]] = []
        self.flushed: list[int] = []

    def send(self, topic, key, value):
        self.sent.append((topic, key.decode(), json.loads(value)))
        return _Acknowledged()

    def flush(self, timeout=None):
        self.flushed.append(len(self.sent))


class _Refused:
    def get(self, timeout=None):
        raise KafkaTimeoutError("the broker did not acknowledge")


class RefusingKafka(RecordingKafka):
    """A broker that takes nothing: every send fails."""

    def send(self, topic, key, value):
        super().send(topic, key, value)
        return _Refused()


@pytest.fixture(scope="module")
def fake():
    with FakeExchange({}, now_ms=lambda: NOW, symbols=("BTCUSDT",)) as server:
        yield server
        assert server.unknown_requests == [], "the producer called endpoints the fake does not serve"


@pytest.fixture(scope="module")
def config(app_env):
    return load_config(env={**app_env, "CRYPTOBOT_EXCHANGES__SYMBOLS": "BTCUSDT",
                            "CRYPTOBOT_EXCHANGES__INTERVALS": "1h"})


def producer(exchange: str, config, fake: FakeExchange, kafka: RecordingKafka) -> ExchangeProducer:
    client = create_ccxt_exchange(exchange, "swap", api_base_url=fake.base_url, timeout_ms=1000)
    client.enableRateLimit = False  # ccxt's throttle only slows the tests down
    market_data = MarketDataClient(exchange, client, RetryPolicy(max_attempts=3, base_delay_s=0.0),
                                   config.producer.close_grace_ms, clock=lambda: NOW)
    return ExchangeProducer(exchange, config, market_data, kafka, clock=lambda: NOW)


def resume_at(last_ts_by_key: dict[str, int]):
    """Stands in for the Kafka scan: the newest time per key already in the topic."""
    return lambda config, topic, wanted_keys, time_field: {k: v for k, v in last_ts_by_key.items()
                                                          if k in wanted_keys}


def taker_messages(kafka: RecordingKafka, config, exchange: str) -> list[tuple[str, dict]]:
    return [(key, message) for topic, key, message in kafka.sent
            if topic == config.market_topic(exchange) and message["metric"] == "taker_buy_ratio"]


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_taker_buy_ratio_goes_out_as_market_messages_each_point_once(config, fake, monkeypatch, exchange):
    monkeypatch.setattr(exchange_producer, "last_sent_times", resume_at({}))
    kafka = RecordingKafka()
    stream_producer = producer(exchange, config, fake, kafka)
    stream_producer.prepare()
    (stream,) = [s for s in stream_producer.streams if s.key == TAKER_KEY]
    assert stream.stopped_reason is None

    stream_producer.poll_once()
    messages = taker_messages(kafka, config, exchange)
    # Nothing in Kafka, no --since: initial_lookback_bars periods of the market period back.
    first_ms = HOUR_START - config.producer.initial_lookback_bars * HOUR
    hours = list(range(first_ms, HOUR_START + 1, HOUR))
    assert [m["ts"] for _, m in messages] == hours
    assert {key for key, _ in messages} == {TAKER_KEY}
    ratio = 0.85 + 0.05 * (first_ms // (5 * MINUTE) % 7)  # the fake's taker buy volume / sell volume
    assert messages[0][1] == {
        "schema_version": 1, "exchange": exchange, "symbol": "BTCUSDT", "exchange_symbol": MARKET_IDS[exchange],
        "ccxt_symbol": "BTC/USDT:USDT", "metric": "taker_buy_ratio", "period": "1h", "ts": first_ms,
        "value": pytest.approx(ratio, abs=1e-4), "value_usd": None, "long_share": None, "short_share": None,
        "source": exchange, "produced_at": NOW}
    assert stream.next_time_ms == HOUR_START + 1 and stream.sent == len(hours)

    # Polled again before the next period can exist: no request, nothing sent twice.
    requests_before = len(fake.requests)
    stream_producer.poll_once()
    assert taker_messages(kafka, config, exchange) == messages
    assert not [r for r in fake.requests[requests_before:] if "taker" in r["path"]]


@pytest.mark.parametrize("exchange", ["binance", "okx"])
def test_taker_buy_ratio_resumes_after_the_last_point_in_kafka(config, fake, monkeypatch, exchange):
    monkeypatch.setattr(exchange_producer, "last_sent_times", resume_at({TAKER_KEY: HOUR_START - 3 * HOUR}))
    kafka = RecordingKafka()
    stream_producer = producer(exchange, config, fake, kafka)
    stream_producer.prepare()
    stream_producer.poll_once()
    sent = [m["ts"] for _, m in taker_messages(kafka, config, exchange)]
    assert sent == [HOUR_START - 2 * HOUR, HOUR_START - HOUR, HOUR_START]


def test_bybit_has_no_taker_buy_ratio_stream(config, fake, monkeypatch):
    monkeypatch.setattr(exchange_producer, "last_sent_times", resume_at({}))
    kafka = RecordingKafka()
    stream_producer = producer("bybit", config, fake, kafka)
    stream_producer.prepare()
    assert {s.name for s in stream_producer.streams if s.kind == "market"} == {
        "funding_rate", "open_interest", "long_short_ratio"}
    requests_before = len(fake.requests)
    stream_producer.poll_once()
    assert taker_messages(kafka, config, "bybit") == []
    assert not [r for r in fake.requests[requests_before:] if "taker" in r["path"]]


KLINES_FROM_MS = HOUR_START - 30 * MINUTE  # --since of the kline tests: 30 closed 1m candles a symbol


@contextmanager
def prepared_kline_producer(app_env, monkeypatch, kafka, symbols=("BTCUSDT", "ETHUSDT")):
    """A binance producer of two symbols' 1m klines on the fake exchange, nothing in Kafka yet."""
    monkeypatch.setattr(exchange_producer, "last_sent_times", resume_at({}))
    series = {("binance", symbol, "1m"): [[KLINES_FROM_MS + n * MINUTE, 100.0 + n, 101.0 + n, 99.0 + n, 100.5 + n, 10.0]
                                          for n in range(30)] for symbol in symbols}
    config = load_config(env={**app_env, "CRYPTOBOT_EXCHANGES__SYMBOLS": ",".join(symbols),
                              "CRYPTOBOT_EXCHANGES__INTERVALS": "1m", "CRYPTOBOT_PRODUCER__MARKET_DATA": "false"})
    with FakeExchange(series, now_ms=lambda: NOW, symbols=symbols) as server:
        stream_producer = producer("binance", config, server, kafka)
        stream_producer.since_ms = KLINES_FROM_MS
        stream_producer.prepare()
        yield stream_producer


def test_a_rounds_klines_of_every_stream_go_out_in_one_flush(monkeypatch, app_env):
    """A candle's symbols reach Kafka at one moment, not one HTTP fetch after another (they would
    straddle the stream's trigger and cost every stage a second micro-batch)."""
    kafka = RecordingKafka()
    with prepared_kline_producer(app_env, monkeypatch, kafka) as stream_producer:
        sent = stream_producer.poll_once()
    assert sent == 60 and len(kafka.sent) == 60
    assert kafka.flushed == [60]
    assert {key for _, key, _ in kafka.sent} == {"BTCUSDT|1m", "ETHUSDT|1m"}
    assert all(s.next_time_ms == HOUR_START and s.sent == 30 for s in stream_producer.streams)


def test_a_backfill_goes_out_as_the_outbox_fills_not_at_the_rounds_end(monkeypatch, app_env):
    monkeypatch.setattr(exchange_producer, "OUTBOX_LIMIT", 20)
    kafka = RecordingKafka()
    with prepared_kline_producer(app_env, monkeypatch, kafka) as stream_producer:
        assert stream_producer.poll_once() == 60
    assert kafka.flushed == [30, 60]  # each stream's 30 candles once they passed the limit


def test_a_stream_cursor_stays_until_kafka_acknowledges(monkeypatch, app_env):
    with prepared_kline_producer(app_env, monkeypatch, RefusingKafka()) as stream_producer:
        with pytest.raises(KafkaTimeoutError):
            stream_producer.poll_once()
    # Nothing counts as sent: the next round (or a restart) fetches the same candles again.
    assert all(s.next_time_ms == KLINES_FROM_MS and s.sent == 0 for s in stream_producer.streams)


def test_silver_knows_every_metric_a_producer_can_send():
    # silver keeps its own list (no ccxt in the Spark jobs); a metric missing there is quarantined.
    from streaming import silver

    assert silver.MARKET_METRICS == market_data_module.MARKET_METRICS
