"""Where each stream stopped: the newest time per key already in a Kafka topic.

The topic is the truth, not a local state file: whatever a crash left half-done, what is
in Kafka was sent and what is not was not. The tail of each partition is read backwards in
growing windows until every wanted key is found or the partition's start is reached.
"""
from __future__ import annotations

import json
import logging

from kafka import KafkaConsumer, TopicPartition

from common.config import AppConfig

log = logging.getLogger(__name__)


def last_sent_times(config: AppConfig, topic: str, wanted_keys: set[str], time_field: str,
                    first_window: int = 5_000) -> dict[str, int]:
    """{key: newest `time_field` value} for the wanted keys found in `topic`."""
    consumer = KafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers, group_id=None, enable_auto_commit=False,
        client_id="cryptobot-resume", consumer_timeout_ms=10_000,
    )
    newest: dict[str, int] = {}
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        for partition in sorted(partitions):
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            begin = consumer.beginning_offsets([tp])[tp]
            end = consumer.end_offsets([tp])[tp]
            window, scanned_from = first_window, end
            while scanned_from > begin and not wanted_keys <= newest.keys():
                start = max(begin, scanned_from - window)
                _scan(consumer, tp, start, scanned_from, time_field, newest)
                scanned_from, window = start, window * 4
    finally:
        consumer.close()
    found = {k: v for k, v in newest.items() if k in wanted_keys}
    log.info("event=resume_scanned topic=%s keys_found=%d keys_wanted=%d", topic, len(found), len(wanted_keys))
    return found


def _scan(consumer: KafkaConsumer, tp: TopicPartition, start: int, stop: int, time_field: str,
          newest: dict[str, int]) -> None:
    consumer.seek(tp, start)
    position = start
    while position < stop:
        batch = consumer.poll(timeout_ms=5_000, max_records=5_000).get(tp, [])
        if not batch:
            raise RuntimeError(f"could not read {tp.topic}[{tp.partition}] offsets {position}..{stop}")
        for record in batch:
            position = record.offset + 1
            if record.offset >= stop:
                break
            if record.key is None:
                continue
            try:
                value = json.loads(record.value)[time_field]
                key = record.key.decode()
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue  # not ours to judge here: silver quarantines malformed messages
            if isinstance(value, int) and value > newest.get(key, -1):
                newest[key] = value
