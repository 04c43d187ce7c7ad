"""`cryptobot produce`: every enabled exchange's producer in one process, a thread each.

One ccxt client per exchange (so one rate budget per exchange) and one shared Kafka
producer. `once` does a single poll round (backfilling whatever is missing) and returns.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from common.config import AppConfig
from common.exchange.ccxt_factory import create_ccxt_exchange
from common.exchange.market_data import MarketDataClient
from common.exchange.retry import RetryPolicy
from streaming.producers.exchange_producer import ExchangeProducer
from streaming.producers.kafka_writer import create_kafka_producer

log = logging.getLogger(__name__)


@dataclass
class ProduceReport:
    sent: dict[str, int] = field(default_factory=dict)  # "exchange stream" -> messages sent
    stopped: dict[str, str] = field(default_factory=dict)  # "exchange stream" -> reason
    failed_exchanges: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.stopped and not self.failed_exchanges

    def describe(self) -> str:
        lines = [f"messages sent: {sum(self.sent.values())}"]
        lines += [f"  {name}: {count}" for name, count in sorted(self.sent.items()) if count]
        lines += [f"stream stopped {name}: {reason}" for name, reason in sorted(self.stopped.items())]
        lines += [f"exchange failed {name}: {reason}" for name, reason in sorted(self.failed_exchanges.items())]
        return "\n".join(lines)


def retry_policy(config: AppConfig) -> RetryPolicy:
    p = config.producer
    return RetryPolicy(p.retry_max_attempts, p.retry_base_delay_ms / 1000, p.retry_max_delay_ms / 1000)


def build_market_data_client(exchange: str, config: AppConfig) -> MarketDataClient:
    client = create_ccxt_exchange(exchange, config.exchanges.market_type, api_base_url=config.producer.api_base_url,
                                  sandbox=config.producer.sandbox, timeout_ms=config.producer.request_timeout_ms)
    return MarketDataClient(exchange, client, retry_policy(config), config.producer.close_grace_ms)


def build_exchange_producer(exchange: str, config: AppConfig, kafka, since_ms: int | None) -> ExchangeProducer:
    return ExchangeProducer(exchange, config, build_market_data_client(exchange, config), kafka, since_ms=since_ms)


def run_producers(config: AppConfig, once: bool = False, since_ms: int | None = None,
                  stop: threading.Event | None = None) -> ProduceReport:
    stop = stop or threading.Event()
    report = ProduceReport()
    kafka = create_kafka_producer(config, "cryptobot-producer")
    producers = {ex: build_exchange_producer(ex, config, kafka, since_ms) for ex in config.exchanges.enabled}

    def run_one(exchange: str, producer: ExchangeProducer) -> None:
        try:
            producer.prepare()
            producer.run(stop, once)
        except Exception as error:  # noqa: BLE001 - one exchange down must not stop the others
            report.failed_exchanges[exchange] = f"{type(error).__name__}: {error}"
            log.exception("event=exchange_producer_failed exchange=%s", exchange)

    threads = [threading.Thread(target=run_one, args=(ex, p), name=f"producer-{ex}", daemon=True)
               for ex, p in producers.items()]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(timeout=0.5)
    finally:
        stop.set()
        kafka.close(timeout=30)
    for exchange, producer in producers.items():
        for stream in producer.streams:
            name = f"{exchange} {stream.label}"
            report.sent[name] = stream.sent
            if stream.stopped_reason:
                report.stopped[name] = stream.stopped_reason
    return report
