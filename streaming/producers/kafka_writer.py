"""Sends records to Kafka and confirms them: the producers' and replays' only way to Kafka.

kafka-python with acks=all and idempotence on: a broker-side retry never duplicates a
record. A batch counts as sent only once every record of it is acknowledged, and the
producers advance their cursors only then.
"""
from __future__ import annotations

from typing import Iterable

from kafka import KafkaProducer

from common.config import AppConfig


def create_kafka_producer(config: AppConfig, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_block_ms=30_000,
        request_timeout_ms=30_000,
    )


def send_confirmed(producer: KafkaProducer, topic: str, records: Iterable[tuple[str, bytes]],
                   timeout_s: float = 60.0) -> int:
    """Send (key, value) records and wait until the broker acknowledged all; raise otherwise."""
    futures = [producer.send(topic, key=key.encode(), value=value) for key, value in records]
    producer.flush(timeout=timeout_s)
    for future in futures:
        future.get(timeout=timeout_s)  # re-raises the send's error, if it had one
    return len(futures)
