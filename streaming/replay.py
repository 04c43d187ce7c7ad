"""Replays: klines from a file (or the sample series) into klines.<exchange>, as the live
producers would send them, and a Kafka topic back into a fresh bronze table.

A file replay labels every message with the exchange and symbol it is replayed as, and
keeps its true origin in `source`. Messages go out in the order they became known (by close
time, so a 1h kline follows its last 1m kline), at full speed or scaled in time. Like the
producers, it resumes: klines already in the topic for that key are not sent again.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import pandas as pd

from common.config import AppConfig
from common.exchange.market_data import Kline, wall_clock_ms
from common.intervals import INTERVAL_MS
from common.kline_files import read_kline_file, resample_klines
from common.symbols import SymbolMap
from streaming.producers.kafka_writer import create_kafka_producer, send_confirmed
from streaming.producers.messages import encode, kline_key, kline_message
from streaming.producers.resume import last_sent_times

log = logging.getLogger(__name__)

BATCH_SIZE = 2_000


@dataclass
class ReplayReport:
    topic: str
    sent: dict[str, int] = field(default_factory=dict)  # key -> messages
    skipped: dict[str, int] = field(default_factory=dict)  # key -> already in Kafka

    def describe(self) -> str:
        lines = [f"replayed into {self.topic}: {sum(self.sent.values())} sent, "
                 f"{sum(self.skipped.values())} already there"]
        lines += [f"  {key}: {self.sent.get(key, 0)} sent, {self.skipped.get(key, 0)} already there"
                  for key in sorted(set(self.sent) | set(self.skipped))]
        return "\n".join(lines)


def replay_messages(klines: pd.DataFrame, source_interval: str, derive: list[str], *, exchange: str, symbol: str,
                    source: str, symbol_map: SymbolMap = SymbolMap("swap")) -> list[tuple[int, str, dict]]:
    """(close_time_ms, key, message) for the klines and each derived interval, in close-time order."""
    unified, exchange_symbol = symbol_map.ccxt_symbol(exchange, symbol), symbol_map.exchange_symbol(exchange, symbol)
    frames = {source_interval: klines}
    frames.update({interval: resample_klines(klines, source_interval, interval) for interval in derive})
    messages = []
    for interval, frame in frames.items():
        interval_ms, key = INTERVAL_MS[interval], kline_key(symbol, interval)
        for row in frame.itertuples(index=False):
            kline = Kline(int(row.open_time_ms), float(row.open), float(row.high), float(row.low), float(row.close),
                          float(row.volume))
            message = kline_message(exchange=exchange, symbol=symbol, exchange_symbol=exchange_symbol,
                                    ccxt_symbol=unified, interval=interval, kline=kline, source=source,
                                    produced_at_ms=0)
            messages.append((kline.open_time_ms + interval_ms, key, message))
    # Known at close; at equal close times the shorter interval first, as an exchange closes it first.
    messages.sort(key=lambda m: (m[0], INTERVAL_MS[m[2]["interval"]]))
    return messages


def replay_file(config: AppConfig, path: str | Path, *, exchange: str, symbol: str, interval: str = "1m",
                derive: list[str] | None = None, source: str | None = None, speed: float | None = None,
                clock: Callable[[], int] = wall_clock_ms, sleep: Callable[[float], None] = time.sleep) -> ReplayReport:
    """Send a kline file to klines.<exchange>; `speed` 60 = one hour of klines per minute."""
    if exchange not in config.exchanges.enabled:
        raise ValueError(f"exchange {exchange!r} is not enabled in the config ({', '.join(config.exchanges.enabled)})")
    derive = [d for d in (derive or []) if d != interval]
    messages = replay_messages(read_kline_file(path), interval, derive, exchange=exchange, symbol=symbol,
                               source=source or f"file:{Path(path).name}", symbol_map=config.exchanges.symbol_map)
    topic = config.klines_topic(exchange)
    keys = {key for _, key, _ in messages}
    already = last_sent_times(config, topic, keys, "open_time")
    report = ReplayReport(topic)
    pending = []
    for close_ms, key, message in messages:
        if message["open_time"] <= already.get(key, -1):
            report.skipped[key] = report.skipped.get(key, 0) + 1
        else:
            pending.append((close_ms, key, message))
    producer = create_kafka_producer(config, "cryptobot-replay")
    try:
        started_ms, first_close_ms = clock(), pending[0][0] if pending else 0

        def due_ms(item) -> float:  # scaled time: the replay clock runs `speed` times faster
            return started_ms + (item[0] - first_close_ms) / speed

        position = 0
        while position < len(pending):
            end = min(position + BATCH_SIZE, len(pending))
            if speed:
                wait_ms = due_ms(pending[position]) - clock()
                if wait_ms > 0:
                    sleep(wait_ms / 1000)
                now_ms = clock()
                end = next((i for i in range(position + 1, end) if due_ms(pending[i]) > now_ms), end)
            batch = pending[position:end]
            records = []
            for _, key, message in batch:
                message["produced_at"] = clock()
                records.append((key, encode(message)))
            send_confirmed(producer, topic, records)
            for _, key, _ in batch:
                report.sent[key] = report.sent.get(key, 0) + 1
            position = end
    finally:
        producer.close(timeout=30)
    log.info("event=replay_done topic=%s sent=%d skipped=%d", topic, sum(report.sent.values()),
             sum(report.skipped.values()))
    return report


def replay_topic_to_bronze(spark, config: AppConfig, *, exchange: str, kind: str, tag: str,
                           starting_offsets: str = "earliest", starting_timestamp_ms: int | None = None
                           ) -> tuple[str, int]:
    """Rebuild a bronze table from the Kafka log into a fresh table with a fresh checkpoint:
    bronze.<exchange>_<kind>__<tag>. Returns its name and the number of messages read."""
    # In here: the file and sample replays only produce to Kafka, and must not load pyspark.
    from common.catalog import create_table_sql, table_spec
    from streaming.bronze import bronze_queries, start_bronze_query

    if not re.fullmatch(r"[a-z0-9_]+", tag):
        raise ValueError(f"tag {tag!r}: use lower-case letters, digits and _")
    live = next(q for q in bronze_queries(config, [exchange]) if q.kind == kind)
    spec = replace(table_spec(config, live.table), name=f"{exchange}_{kind}__{tag}")
    fresh = replace(live, table=spec.qualified_name,
                    location=config.lake.table_path("bronze", spec.name),
                    checkpoint=config.lake.checkpoint_path(f"replay/{tag}/bronze_{exchange}_{kind}"))
    spark.sql(create_table_sql(config, spec))
    query = start_bronze_query(spark, config, fresh, available_now=True, starting_offsets=starting_offsets,
                               starting_timestamp_ms=starting_timestamp_ms)
    query.awaitTermination()
    if query.exception() is not None:
        raise RuntimeError(f"replay of {live.topic} failed: {query.exception()}")
    rows = sum(p.get("numInputRows", 0) for p in query.recentProgress)
    log.info("event=kafka_replay_done topic=%s table=%s rows=%d", live.topic, fresh.table, rows)
    return fresh.table, rows
