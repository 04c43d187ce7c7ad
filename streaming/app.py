"""`cryptobot stream`: the streaming app, one Spark driver running the pipeline's queries
(for now the bronze queries: every exchange's klines and market topics into bronze).

`available_now` processes everything Kafka holds and returns (replays, tests, cron);
otherwise the queries run on the configured trigger until SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field

from common.config import AppConfig
from streaming.bronze import bronze_queries, start_bronze_query

log = logging.getLogger(__name__)


@dataclass
class StreamReport:
    rows: dict[str, int] = field(default_factory=dict)  # query name -> input rows processed

    def describe(self) -> str:
        return "\n".join([f"rows processed: {sum(self.rows.values())}"] +
                         [f"  {name}: {count}" for name, count in sorted(self.rows.items())])


def run_stream(spark, config: AppConfig, available_now: bool = False, stop: threading.Event | None = None,
               exchanges: list[str] | None = None) -> StreamReport:
    queries = [start_bronze_query(spark, config, q, available_now) for q in bronze_queries(config, exchanges)]
    log.info("event=stream_started queries=%s available_now=%s", ",".join(q.name for q in queries), available_now)
    report = StreamReport()
    try:
        if available_now:
            for query in queries:
                query.awaitTermination()
        else:
            stop = stop or _stop_on_signals()
            while not stop.is_set() and all(q.isActive for q in queries):
                stop.wait(1.0)
    finally:
        for query in queries:
            report.rows[query.name] = sum(p.get("numInputRows", 0) for p in query.recentProgress)
            if query.isActive:
                query.stop()
    failed = [q for q in queries if q.exception() is not None]
    if failed:
        raise RuntimeError("; ".join(f"{q.name}: {q.exception()}" for q in failed))
    return report


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info("event=stop_requested signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
