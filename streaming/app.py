"""`cryptobot stream`: the streaming app, one Spark driver running the pipeline's queries:
Kafka -> bronze (raw), bronze -> silver (validated, quarantined, deduplicated),
silver -> unified and consolidated, unified -> analytics (structure, zones, sentiment),
zones -> signals. Each query has its own checkpoint. After a batch that found signals the
scorer and then the execution engine run, and the position manager on its cadence, in this
driver or as their own applications (streaming/trading_scheduler.py).

`available_now` drains everything available stage by stage (bronze, silver, unified,
analytics, signals) and returns: for replays, tests, cron. Otherwise every query runs on the
configured trigger until SIGTERM or Ctrl-C.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field

from common.config import AppConfig
from streaming.analytics import start_analytics_query
from streaming.bronze import bronze_queries, start_bronze_query
from streaming.signals import start_signals_query
from streaming.silver import silver_queries, start_silver_query
from streaming.trading_scheduler import TradingJobs
from streaming.unified import start_unified_query

log = logging.getLogger(__name__)


@dataclass
class StreamReport:
    rows: dict[str, int] = field(default_factory=dict)  # query name -> input rows processed
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage -> wall time (available-now)

    @property
    def rows_in(self) -> int:  # for gold.job_runs
        return sum(self.rows.values())

    def describe(self) -> str:
        return "\n".join([f"rows processed: {sum(self.rows.values())}"] +
                         [f"  {name}: {count}" for name, count in self.rows.items()])


STAGE_NAMES = ("bronze", "silver", "unified", "analytics", "signals")


def pipeline_stages(spark, config: AppConfig, available_now: bool, exchanges: list[str] | None = None,
                    trading_jobs: TradingJobs | None = None):
    """Functions starting each stage's queries, in data-flow order."""
    after_signals = trading_jobs.after_signals if trading_jobs else None
    return [
        lambda: [start_bronze_query(spark, config, q, available_now) for q in bronze_queries(config, exchanges)],
        lambda: [start_silver_query(spark, config, q, available_now) for q in silver_queries(config, exchanges)],
        lambda: [start_unified_query(spark, config, kind, available_now) for kind in ("klines", "market")],
        lambda: [start_analytics_query(spark, config, kind, available_now) for kind in ("klines", "market")],
        lambda: [start_signals_query(spark, config, available_now, after_signals)],
    ]


def run_stream(spark, config: AppConfig, available_now: bool = False, stop: threading.Event | None = None,
               exchanges: list[str] | None = None, stages: int | None = None, first_stage: int = 0) -> StreamReport:
    """Run the pipeline's stages STAGE_NAMES[first_stage:stages] (stages=1: bronze only;
    first_stage=3: from analytics on). Each stage keeps its own checkpoint, so a scheduler can
    run any of them on its own cadence."""
    trading_jobs = TradingJobs(spark, config)
    names = STAGE_NAMES[first_stage:stages]
    starters = pipeline_stages(spark, config, available_now, exchanges, trading_jobs)[first_stage:stages]
    report = StreamReport()
    if available_now:
        for stage, start in zip(names, starters):
            started = time.monotonic()
            _drain(start(), report)
            report.stage_seconds[stage] = round(time.monotonic() - started, 1)
            log.info("event=stage_drained stage=%s seconds=%.1f", stage, report.stage_seconds[stage])
        trading_jobs.wait()
        return report
    queries = [q for start in starters for q in start()]
    log.info("event=stream_started queries=%s", ",".join(q.name for q in queries))
    stop = stop or _stop_on_signals()
    trading = "signals" in names  # the position manager's cadence goes with the stage that finds signals
    quiet = QuietClock(queries)
    try:
        while not stop.is_set() and all(q.isActive for q in queries):
            if trading:
                trading_jobs.manage_positions(quiet.seconds())  # when due (streaming/trading_scheduler.py)
            stop.wait(1.0)
    finally:
        for query in queries:
            stop_between_batches(query)
        trading_jobs.wait(timeout_s=300)  # a submitted job finishes what it started
    _collect(queries, report)
    return report


class QuietClock:
    """How long every query has had no data waiting or in a running batch (Spark sets a query's
    isDataAvailable when a trigger finds data, and clears it at the first trigger that finds
    none), as seen by the calls to seconds()."""

    def __init__(self, queries):
        self.queries, self._quiet_since = queries, None

    def seconds(self) -> float:
        if any(q.status.get("isDataAvailable") for q in self.queries):
            self._quiet_since = None
            return 0.0
        now = time.monotonic()
        self._quiet_since = self._quiet_since or now
        return now - self._quiet_since


def stop_between_batches(query, timeout_s: float = 300.0) -> None:
    """Stop a query once its running micro-batch (if any) has committed: a SIGTERM lets the
    batch finish rather than interrupting it mid-write (that would be safe, since every batch is
    idempotent, but it would be redone on the next start)."""
    deadline = time.monotonic() + timeout_s
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.2)
    if query.isActive:
        query.stop()


def _drain(queries, report: StreamReport) -> None:
    try:
        for query in queries:
            query.awaitTermination()
    finally:
        for query in queries:
            if query.isActive:
                query.stop()
    _collect(queries, report)


def _collect(queries, report: StreamReport) -> None:
    for query in queries:
        report.rows[query.name] = sum(p.get("numInputRows", 0) for p in query.recentProgress)
    failed = [q for q in queries if q.exception() is not None]
    if failed:
        raise RuntimeError("; ".join(f"{q.name}: {q.exception()}" for q in failed))


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum, _frame):
        log.info("event=stop_requested signal=%s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop
