"""Latency (issue #9): from the moment a candle closes on the exchange's clock to the moment the
entry order of the signal it made is acknowledged, on the live path:

    fake exchange (its real REST format) -> ccxt -> the producer -> Kafka -> bronze -> silver ->
    unified -> analytics -> signals -> the scorer -> the execution engine -> the order

all of it the real code, run as `cryptobot produce` and `cryptobot stream` run it (the producer
in a thread, the stream on its processing-time triggers), in one process with the fake exchange.
Paper trading (the default): the order goes to the paper exchange, whose answer is the
acknowledgement. Its moment is the commit of the first version of trading.orders in which the
entry's row holds the exchange's answer (no longer the `new` intent the engine records before
sending), found in the table's history once the candle is done.

The exchange's clock is the bench's: it stands still between candles and, for each candle
measured, jumps to the candle's close and then runs at the wall clock's pace, so the producer's
close grace, its polling and every trigger wait count as they would live; only the idle minute
between two candles is skipped. Each candle is fed on its own: the candles before it (steps
that make no setup) go through first, and it closes once the stream has been quiet for as long
as it is live when a candle closes (a minute after the last, a position-manager turn done).

Candles that make a signal: the sample (Bitstamp BTC/USD 1m, 14 days) cut into slices, each
served as a symbol of its own (S01USDT, ...) and shifted in time (by whole hours) so that the
slices' 1m setups fall on the candles the bench steps through. Which slices and candles is
planned beforehand with the backtester's analytics and scanner (the same strategy code as the
stream); the figures are what the stream then really did. Scores and limits are opened up for
the bench (score thresholds 0, up to 100 positions) so that every setup is traded.

Two modes, one after the other on the same lake and broker: the scorer and execution engine in
the stream's driver (`[streaming] trading_jobs = "in_process"`, the default), then each as its own
`spark-submit` application (`"spark_submit"`). Printed: per mode the candles measured, p50 and
p95 (and max) of close -> order acknowledged, and the medians of its parts (close -> signal row
written, -> signal scored, -> order acknowledged).

    python bench/latency.py                       # both modes, 24 candles each
    python bench/latency.py --modes in_process --candles 20 --trigger-seconds 2
    python bench/latency.py --mode-minutes 30      # each mode stops taking candles after 30 minutes
    python bench/latency.py --modes in_process --candles 5 --spark-jobs   # and the costliest Spark jobs

Per candle it also prints when the candle's kline reached each stage (Kafka, bronze, silver,
unified, consolidated, analytics) and the signal, its score, the entry's intent and the answer.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.config import load_config  # noqa: E402

MINUTE = 60_000
HOUR = 60 * MINUTE
EXCHANGE = "binance"


# -- the plan: which slices of the sample, as which symbols, make setups on which candles ------

@dataclass
class SymbolPlan:
    symbol: str
    source_start: int  # index in the sample of the slice's first bar
    setup_steps: list[int]  # window steps whose candle close makes a confirmed 1m setup


def plan_symbols(sample: pd.DataFrame, config, *, symbols: int, warmup_bars: int,
                 window_bars: int) -> list[SymbolPlan]:
    """`symbols` slices of warmup_bars + window_bars 1m bars, spread evenly over the sample
    (starting on whole hours, which keeps the 15m buckets aligned), each scanned as the stream
    would scan it, to know which window steps make a setup."""
    from common.analytics.series import AnalyticsParams
    from common.backtest.engine import backtest_series
    from common.strategies import ScanParams
    from common.trading_config import default_rows, parse_trading_config

    values = {r["param_name"]: r["param_value"] for r in default_rows()}
    trading = parse_trading_config({**values, **TRADING_OVERRIDES, "trading_symbols": '["S01USDT"]'})
    length = warmup_bars + window_bars
    bars = sample.assign(close_time_ms=sample.open_time_ms + MINUTE - 1)
    spacing = (len(bars) - length) // max(1, symbols - 1) // 60 * 60
    plans = []
    for n in range(symbols):
        start = n * spacing
        piece = bars.iloc[start:start + length].reset_index(drop=True)
        result = backtest_series(EXCHANGE, "X", "1m", MINUTE, piece, AnalyticsParams.from_config(config.analytics, "1m"),
                                 ScanParams.from_config(config.signals), trading, config)
        window_start = int(piece.open_time_ms.iloc[warmup_bars])
        steps = [] if result.signals.empty else sorted(
            {int((k + 1 - window_start) // MINUTE) for k in result.signals.known_at_ms[
                (result.signals.status == "confirmed") & (result.signals.known_at_ms >= window_start)]})
        plans.append(SymbolPlan(f"S{n + 1:02d}USDT", start, steps))
    return plans


def symbol_series(sample: pd.DataFrame, plan: SymbolPlan, length: int, window_start_ms: int,
                  warmup_bars: int) -> dict[str, list[list[float]]]:
    """The slice re-timed so that its bar `warmup_bars` opens at window_start_ms: 1m and 15m."""
    from common.kline_files import resample_klines

    piece = sample.iloc[plan.source_start:plan.source_start + length].reset_index(drop=True)
    shift = window_start_ms - int(piece.open_time_ms.iloc[warmup_bars])
    piece = piece.assign(open_time_ms=piece.open_time_ms + shift)
    rows = {"1m": piece, "15m": resample_klines(piece, "1m", "15m")}
    return {iv: frame[["open_time_ms", "open", "high", "low", "close", "volume"]].values.tolist()
            for iv, frame in rows.items()}


TRADING_OVERRIDES = {
    "score_threshold_execute": "0", "score_threshold_watchlist": "0", "trading_intervals": '["1m"]',
    "max_open_positions": "100", "max_positions_per_symbol": "10", "max_total_exposure_pct": "12500",
    "max_leverage": "125", "risk_per_trade_pct": "0.1", "daily_loss_limit_pct": "100",
}


# -- the exchange's clock -----------------------------------------------------------------------

class SteppedClock:
    """Stands still, or runs at the wall clock's pace from a jump; remembers each running stretch
    so that the wall moment any exchange time was reached can be told afterwards."""

    def __init__(self, start_ms: int):
        self._lock = threading.Lock()
        self._frozen_at: int | None = start_ms
        self._base_ms, self._wall_at = start_ms, time.time()
        self.stretches: list[tuple[int, float]] = []  # (exchange ms, wall s) where a run began

    def __call__(self) -> int:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return self._base_ms + int((time.time() - self._wall_at) * 1000)

    def run_from(self, exchange_ms: int) -> None:
        with self._lock:
            now = self._frozen_at if self._frozen_at is not None else \
                self._base_ms + int((time.time() - self._wall_at) * 1000)
            self._base_ms, self._wall_at, self._frozen_at = max(now, exchange_ms), time.time(), None
            self.stretches.append((self._base_ms, self._wall_at))

    def freeze(self) -> None:
        with self._lock:
            if self._frozen_at is None:
                self._frozen_at = self._base_ms + int((time.time() - self._wall_at) * 1000)

    def wall_when(self, exchange_ms: int) -> float | None:
        """The wall time the clock reached exchange_ms while running (None: it jumped over it)."""
        for base_ms, wall_at in reversed(self.stretches):
            if exchange_ms >= base_ms:
                return wall_at + (exchange_ms - base_ms) / 1000
        return None


# -- one run ------------------------------------------------------------------------------------

@dataclass
class ModeResult:
    mode: str
    latencies_s: list[float] = field(default_factory=list)
    to_signal_s: list[float] = field(default_factory=list)
    to_scored_s: list[float] = field(default_factory=list)
    to_intent_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    batch_seconds: dict[str, list[float]] = field(default_factory=dict)  # query -> its batches with input
    job_seconds: dict[str, list[float]] = field(default_factory=dict)  # trading job -> its runs
    spark_jobs: list[str] = field(default_factory=list)  # --spark-jobs: the costliest Spark jobs
    hops_s: dict[str, list[float]] = field(default_factory=dict)  # stage -> its times from the close, per candle

    def lines(self) -> list[str]:
        if not self.latencies_s:
            return [f"{self.mode:<13} no candle measured ({'; '.join(self.missed) or 'no setup'})"]
        ordered = sorted(self.latencies_s)
        p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank
        lines = [f"{self.mode:<13} candles {len(ordered):3d}   p50 {statistics.median(ordered):6.1f} s   "
                 f"p95 {p95:6.1f} s   max {ordered[-1]:6.1f} s",
                 f"{'':<13} medians: close -> signal row {statistics.median(self.to_signal_s):5.1f} s, "
                 f"-> scored {statistics.median(self.to_scored_s):5.1f} s, "
                 f"-> entry's intent recorded {statistics.median(self.to_intent_s):5.1f} s, "
                 f"-> order acknowledged {statistics.median(ordered):5.1f} s"]
        if self.hops_s:
            lines.append(f"{'':<13} medians from the close, per stage: " + ", ".join(
                f"{hop} {statistics.median(times):4.1f}" for hop, times in self.hops_s.items() if times))
        if self.missed:
            lines.append(f"{'':<13} not measured: {'; '.join(self.missed)}")
        if self.spark_jobs:
            lines += [f"{'':<13} Spark jobs while measuring, by query and action (total, count, median):"]
            lines += [f"{'':<15}{line}" for line in self.spark_jobs]
        lines += [f"{'':<13} {kind} {name}: {len(times)} runs, median {statistics.median(times):5.1f} s, "
                  f"max {max(times):5.1f} s"
                  for kind, found in (("batches of", self.batch_seconds), ("job", self.job_seconds))
                  for name, times in sorted(found.items()) if times]
        return lines


class BatchTimes:
    """A StreamingQueryListener's record of every micro-batch that had input: per query, how long
    its batches took (Spark's triggerExecution), to tell which stage the latency is spent in."""

    def __init__(self, spark):
        from pyspark.sql.streaming import StreamingQueryListener

        self.seconds: dict[str, list[float]] = {}
        record = self.seconds

        class Listener(StreamingQueryListener):
            def onQueryStarted(self, event):
                pass

            def onQueryProgress(self, event):
                progress = event.progress
                if progress.numInputRows:
                    record.setdefault(progress.name, []).append(progress.durationMs.get("triggerExecution", 0) / 1000)

            def onQueryIdle(self, event):
                pass

            def onQueryTerminated(self, event):
                pass

        self.listener = Listener()
        spark.streams.addListener(self.listener)

    def take(self) -> dict[str, list[float]]:
        taken = {name: list(values) for name, values in self.seconds.items()}
        self.seconds.clear()
        return taken


def spark_jobs_report(spark, since_s: float, names_by_query_id: dict[str, str], top: int = 25) -> list[str]:
    """Where the driver's time went since a wall time: the Spark jobs that completed, grouped by
    the query that ran them (or the trading job's thread: "-") and the job's name (the Python
    line of the action, or Delta's own step), from the UI's REST API. Jobs overlap on the 2
    cores, so the totals are not a breakdown of the wall time; they say what is run most."""
    import urllib.request
    from datetime import datetime, timezone

    def parse(text: str | None) -> float | None:  # the API's times: 2026-12-07T00:01:02.123GMT
        return None if not text else datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%Z").replace(
            tzinfo=timezone.utc).timestamp()

    url = f"{spark.sparkContext.uiWebUrl}/api/v1/applications/{spark.sparkContext.applicationId}/jobs"
    with urllib.request.urlopen(url, timeout=60) as answer:
        jobs = json.load(answer)
    found: dict[tuple[str, str], list[float]] = {}
    for job in jobs:
        started, ended = parse(job.get("submissionTime")), parse(job.get("completionTime"))
        if started is None or ended is None or started < since_s:
            continue
        description = job.get("description") or ""
        query = next((name for qid, name in names_by_query_id.items() if qid in description), "-")
        found.setdefault((query, job.get("name", "?")), []).append(ended - started)
    ordered = sorted(found.items(), key=lambda item: -sum(item[1]))[:top]
    return [f"{sum(times):7.1f} s  {len(times):5d} jobs  median {statistics.median(times):5.2f} s  {query}: {name}"
            for (query, name), times in ordered]


def job_seconds(spark, since_s: float) -> dict[str, list[float]]:
    """The trading jobs' run times (gold.job_runs) since a wall time."""
    from pyspark.sql import functions as F

    rows = (spark.table("gold.job_runs").where(F.unix_micros("started_at") >= int(since_s * 1e6))
            .select("job", "duration_s").collect())
    found: dict[str, list[float]] = {}
    for row in rows:
        found.setdefault(row.job, []).append(row.duration_s)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def quiet(spark, settle_s: float = 3.0, timeout_s: float = 600.0) -> bool:
    """Until no streaming query has data waiting or a batch running, for settle_s in a row."""
    deadline, calm_since = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        busy = any(q.status.get("isDataAvailable") or q.status.get("isTriggerActive") for q in spark.streams.active)
        if busy:
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= settle_s:
            return True
        time.sleep(0.5)
    return False


# Live, a candle closes a minute after the one before: that one went through in well under the
# minute, and a position-manager turn then due started once the stream had been quiet for 3 s
# and ended (some 8 s). The bench skips the idle rest of the minute, not that.
SETTLE_AFTER_QUIET_S = 12.0


def settle_like_live(spark, clock: SteppedClock, previous_close_ms: int) -> None:
    """Before a measured candle closes: the candles since the last one measured (the steps in
    between make no setup) go through first, as they would have in the minutes before, rather
    than with it; then the stream is left as quiet as a live one is when the next candle closes."""
    if clock() < previous_close_ms:
        clock.run_from(previous_close_ms)
        time.sleep(8.0)  # the producer's close grace and poll, then the stages
    quiet(spark, settle_s=3.0)
    clock.freeze()
    time.sleep(SETTLE_AFTER_QUIET_S)
    quiet(spark, settle_s=2.0)


def hop_times(spark, config, symbol: str, close_ms: int, closed_wall: float) -> dict[str, float | None]:
    """Wall times (s from the close) at which the candle reached each stage: Kafka (the first
    record's timestamp) and bronze (its batch's ingested_at), over the records ingested since the
    close (the candle's round: the candles before it went through first); then the 1m kline of
    `symbol` in silver, unified and consolidated (each write's current_timestamp(), taken as its
    batch writes; a MERGE that rewrote the row later shows its last write), and analytics (the
    series' state, read before the next candle)."""
    from pyspark.sql import functions as F

    from common.catalog import location_of

    open_ms = close_ms - MINUTE

    def seconds(us) -> float | None:
        return None if us is None else us / 1e6 - closed_wall

    def first(table: str, where, column: str) -> float | None:
        row = (spark.read.format("delta").load(location_of(config, table)).where(where)
               .agg(F.min(F.unix_micros(column)).alias("us")).first())
        return seconds(row.us)

    ingested = (spark.read.format("delta").load(location_of(config, f"bronze.{EXCHANGE}_klines"))
                .where(F.unix_micros("ingested_at") >= int(closed_wall * 1e6))
                .agg(F.min(F.unix_micros("kafka_timestamp")).alias("kafka"),
                     F.min(F.unix_micros("ingested_at")).alias("bronze")).first())
    kline = (F.col("symbol") == symbol) & (F.col("interval") == "1m") & (F.col("open_time_ms") == open_ms)
    return {
        "kafka": seconds(ingested.kafka),
        "bronze": seconds(ingested.bronze),
        "silver": first(f"silver.{EXCHANGE}_klines", kline, "updated_at"),
        "unified": first("silver.unified_klines", kline, "updated_at"),
        "consolidated": first("silver.consolidated_klines", kline, "updated_at"),
        "analytics": first("gold.analytics_state", (F.col("exchange") == EXCHANGE) & (F.col("symbol") == symbol)
                           & (F.col("interval") == "1m") & (F.col("last_bar_ms") >= open_ms), "updated_at"),
    }


def entry_orders(spark, signal_ids: list[str]) -> dict[str, tuple[str, float]]:
    """signal id -> (its entry's client order id, wall time (s) its intent was recorded)."""
    from pyspark.sql import functions as F

    if not signal_ids:
        return {}
    rows = (spark.table("trading.orders").where((F.col("leg") == "entry") & F.col("signal_id").isin(signal_ids))
            .select("signal_id", "client_order_id", F.unix_micros("created_at").alias("us")).collect())
    return {r.signal_id: (r.client_order_id, r.us / 1e6) for r in rows}


def acknowledged_s(spark, client_order_id: str) -> float | None:
    """Wall time (s) of the commit that first recorded the exchange's answer to the order: the
    first version of trading.orders in which its row is no longer `new` (a binary search of the
    table's history: once answered, a row never goes back to `new`)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    location = spark.sql("DESCRIBE DETAIL trading.orders").first().location
    commits = sorted((r.version, r.ms) for r in DeltaTable.forPath(spark, location).history()
                     .select("version", F.unix_millis("timestamp").alias("ms")).collect())

    def answered(version: int) -> bool:
        rows = (spark.read.format("delta").option("versionAsOf", version).load(location)
                .where(F.col("client_order_id") == client_order_id).select("status").collect())
        return bool(rows) and rows[0].status not in ("new", "unknown")

    low, high = 0, len(commits) - 1
    if not answered(commits[high][0]):
        return None
    while low < high:
        middle = (low + high) // 2
        if answered(commits[middle][0]):
            high = middle
        else:
            low = middle + 1
    return commits[low][1] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", default="in_process,spark_submit")
    parser.add_argument("--candles", type=int, default=24, help="candles with a setup to measure per mode")
    parser.add_argument("--symbols", type=int, default=12, help="sample slices served as symbols")
    parser.add_argument("--window-bars", type=int, default=150, help="1m candles the steps are taken from")
    parser.add_argument("--warmup-bars", type=int, default=600)
    parser.add_argument("--trigger-seconds", type=int, default=2)
    parser.add_argument("--poll-seconds", type=int, default=1)
    parser.add_argument("--timeout-seconds", type=float, default=240.0, help="longest wait for one candle")
    parser.add_argument("--spark-jobs", action="store_true",
                        help="print the Spark jobs that took the most time while measuring, by query and action")
    parser.add_argument("--mode-minutes", type=float, default=None,
                        help="no new candle in a mode after this many minutes of measuring (the figures so far)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    from common.kline_files import read_kline_file
    from streaming.sample_data import sample_path

    with tempfile.TemporaryDirectory(prefix="cryptobot-latency-") as base:
        env = {
            "CRYPTOBOT_PATHS__DATA_DIR": f"{base}/data", "CRYPTOBOT_LAKE__ROOT": f"{base}/lake",
            "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": f"{base}/checkpoints",
            "CRYPTOBOT_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
            "CRYPTOBOT_KAFKA__CONTROLLER_PORT": str(free_port()),
            "CRYPTOBOT_SPARK__SHUFFLE_PARTITIONS": "2",
            "CRYPTOBOT_EXCHANGES__ENABLED": EXCHANGE, "CRYPTOBOT_EXCHANGES__INTERVALS": "1m,15m",
            "CRYPTOBOT_PRODUCER__MARKET_DATA": "false",
            "CRYPTOBOT_PRODUCER__POLL_INTERVAL_SECONDS": str(args.poll_seconds),
            "CRYPTOBOT_STREAMING__TRIGGER_INTERVAL_SECONDS": str(args.trigger_seconds),
            "CRYPTOBOT_STREAMING__POSITION_MANAGER_INTERVAL_SECONDS": "60",
        }
        config = load_config(env=env)
        sample = read_kline_file(sample_path())
        window_bars = args.window_bars
        started = time.perf_counter()
        plans = plan_symbols(sample, config, symbols=args.symbols, warmup_bars=args.warmup_bars,
                             window_bars=window_bars)
        steps = sorted({s for p in plans for s in p.setup_steps})
        needed = args.candles * len(modes)
        print(f"plan: {len(plans)} sample slices as symbols, {len(steps)} candles with a setup "
              f"({time.perf_counter() - started:.0f} s)", flush=True)
        if len(steps) < needed:
            print(f"warning: {len(steps)} candles with a setup, fewer than the {needed} asked", flush=True)
        symbols = [p.symbol for p in plans]
        env["CRYPTOBOT_EXCHANGES__SYMBOLS"] = ",".join(symbols)
        os.environ.update(env)  # the spark-submit jobs read the same configuration
        config = load_config()
        results = run_bench(config, sample, plans, steps, modes, args, window_bars)
    print()
    print(f"close -> entry order acknowledged, paper trading, {len(symbols)} symbols, 1m setups, triggers "
          f"every {args.trigger_seconds:g} s, producer polling every {args.poll_seconds:g} s "
          f"(close grace {config.producer.close_grace_ms} ms)")
    for result in results:
        for line in result.lines():
            print(line)


def run_bench(config, sample, plans, steps, modes, args, window_bars) -> list[ModeResult]:
    from jobs.kafka_broker import LocalKafkaBroker, ensure_topics
    from common.spark_session import build_spark_session
    from common import init_tables
    from streaming.producers.exchange_producer import ExchangeProducer
    from streaming.producers.kafka_writer import create_kafka_producer
    from streaming.producers.run import build_market_data_client
    from tests.fake_exchange import FakeExchange

    window_start_ms = (int(time.time() * 1000) // HOUR - 24 * 30) * HOUR  # a month ago, on the hour
    length = args.warmup_bars + window_bars
    series = {}
    for plan in plans:
        for interval, rows in symbol_series(sample, plan, length, window_start_ms, args.warmup_bars).items():
            series[(EXCHANGE, plan.symbol, interval)] = rows
    clock = SteppedClock(window_start_ms + config.producer.close_grace_ms + 1_000)
    broker = LocalKafkaBroker(config)
    broker.start()
    spark = None
    stop_producer = threading.Event()
    try:
        with FakeExchange(series, now_ms=clock, symbols=[p.symbol for p in plans]) as fake:
            os.environ["CRYPTOBOT_PRODUCER__API_BASE_URL"] = fake.base_url
            config = load_config()
            ensure_topics(config)
            # --spark-jobs reads the UI's record of every job: keep all of a run's.
            profile = {"spark.ui.retainedJobs": "50000", "spark.ui.retainedStages": "50000"} if args.spark_jobs else {}
            spark = build_spark_session(config, "cryptobot-latency-bench", extra_conf=profile, register=False)
            init_tables.run(spark, config)
            for name, value in {**TRADING_OVERRIDES,
                                "trading_symbols": json.dumps([p.symbol for p in plans])}.items():
                spark.sql(f"UPDATE gold.trading_config SET param_value = '{value}' WHERE param_name = '{name}'")
            market = build_market_data_client(EXCHANGE, config)
            market.clock = clock
            producer = ExchangeProducer(EXCHANGE, config, market, create_kafka_producer(config, "latency-bench"),
                                        since_ms=window_start_ms - args.warmup_bars * MINUTE, clock=clock)
            producer.prepare()
            threading.Thread(target=producer.run, args=(stop_producer, False), daemon=True,
                             name="producer").start()
            results, remaining, batches = [], list(steps), BatchTimes(spark)
            for mode in modes:
                results.append(run_mode(spark, config, mode, clock, remaining, args, window_start_ms, batches))
            return results
    finally:
        stop_producer.set()
        if spark is not None:
            spark.stop()
        broker.stop()


def run_mode(spark, config, mode, clock, remaining: list[int], args, window_start_ms,
             batches: BatchTimes) -> ModeResult:
    """Start the stream with this mode's trading jobs; let it catch up; then the candles, one at a
    time, until args.candles were measured."""
    from dataclasses import replace

    from pyspark.sql import functions as F

    from streaming.app import run_stream

    result = ModeResult(mode)
    mode_config = replace(config, streaming=replace(config.streaming, trading_jobs=mode))
    stop = threading.Event()
    failure: list[BaseException] = []

    def stream():
        try:
            run_stream(spark, mode_config, stop=stop)
        except BaseException as error:  # noqa: BLE001 - reported below
            failure.append(error)

    thread = threading.Thread(target=stream, name=f"stream-{mode}", daemon=True)
    thread.start()
    print(f"{mode}: catching up (the warm-up history, or what the last mode left)", flush=True)
    time.sleep(10)
    quiet(spark, settle_s=max(5.0, 3 * args.trigger_seconds))
    seen: set[str] = {r.signal_id for r in spark.table("gold.signals_all").select("signal_id").collect()}
    batches.take()  # from here on: the candles' batches only
    query_names = {str(q.id): q.name for q in spark.streams.active}
    measuring_since = time.time()
    try:
        while remaining and len(result.latencies_s) < args.candles and not failure:
            if args.mode_minutes is not None and time.time() - measuring_since > 60 * args.mode_minutes:
                result.missed.append(f"the mode's {args.mode_minutes:g} minutes ran out")
                break
            step = remaining.pop(0)
            close_ms = window_start_ms + step * MINUTE
            if clock() >= close_ms:  # the clock ran past it during an earlier wait
                continue
            settle_like_live(spark, clock, close_ms - MINUTE)
            clock.run_from(close_ms)
            deadline = time.monotonic() + args.timeout_seconds
            measured = None  # (the first signal with an entry, the wall time of the candle's close)
            # The times measured come from the tables, not from the bench's reads, which a live
            # system does not have: they wait until the stream has gone quiet (asking costs no
            # Spark job), so as not to compete with the candle for the 2 cores.
            time.sleep(10.0)
            quiet(spark, settle_s=2.0, timeout_s=max(0.0, deadline - time.monotonic()))
            while time.monotonic() < deadline and not measured:
                fresh = (spark.table("gold.signals_all")
                         .where((F.col("interval") == "1m") & (F.col("known_at_ms") == close_ms - 1))
                         .select("signal_id", "symbol", "status", F.unix_micros("created_at").alias("created_us"),
                                 F.unix_micros("scored_at").alias("scored_us")).collect())
                fresh = [r for r in fresh if r.signal_id not in seen]
                entries = entry_orders(spark, [r.signal_id for r in fresh])
                if entries:
                    first = min((r for r in fresh if r.signal_id in entries), key=lambda r: entries[r.signal_id][1])
                    closed_wall = clock.wall_when(close_ms)
                    measured = (first, closed_wall)
                elif fresh and all(r.status in ("expired", "rejected", "cancelled") for r in fresh):
                    result.missed.append(f"step {step}: {', '.join(sorted({r.status for r in fresh}))}")
                    break
                elif not fresh and clock() > close_ms + 20_000 and quiet(spark, settle_s=6.0, timeout_s=8.0):
                    break  # the candle went through every stage and made no signal: no need to wait on
                else:
                    time.sleep(5.0)  # the trading jobs are still at it (spark_submit: outside the queries)
            if not measured and not fresh:
                result.missed.append(f"step {step}: no signal")
            clock.freeze()
            quiet(spark, settle_s=max(3.0, 2 * args.trigger_seconds))
            if measured:
                first, closed_wall = measured
                client_id, intent_s = entries[first.signal_id]
                acknowledged = acknowledged_s(spark, client_id)
                if acknowledged is None:
                    result.missed.append(f"step {step}: the entry's answer never recorded")
                else:
                    result.latencies_s.append(acknowledged - closed_wall)
                    result.to_signal_s.append(first.created_us / 1e6 - closed_wall)
                    result.to_scored_s.append((first.scored_us or first.created_us) / 1e6 - closed_wall)
                    result.to_intent_s.append(intent_s - closed_wall)
                    hops = hop_times(spark, config, first.symbol, close_ms, closed_wall)
                    for hop, seconds in hops.items():
                        if seconds is not None:
                            result.hops_s.setdefault(hop, []).append(seconds)
                    hops.update({"signal": result.to_signal_s[-1], "scored": result.to_scored_s[-1],
                                 "intent": result.to_intent_s[-1], "ack": result.latencies_s[-1]})
                    print(f"  {mode} candle {len(result.latencies_s):2d} (step {step}, {first.symbol}): "
                          f"{result.latencies_s[-1]:5.1f} s; " + ", ".join(
                              f"{hop} {'?' if t is None else f'{t:.1f}'}" for hop, t in hops.items()), flush=True)
            seen |= {r.signal_id for r in spark.table("gold.signals_all").select("signal_id").collect()}
    finally:
        result.batch_seconds = batches.take()
        stop.set()
        thread.join(timeout=600)
    result.job_seconds = job_seconds(spark, measuring_since)
    if args.spark_jobs:
        result.spark_jobs = spark_jobs_report(spark, measuring_since, query_names)
    if failure:
        raise RuntimeError(f"the stream failed in mode {mode}") from failure[0]
    return result


if __name__ == "__main__":
    main()
