"""`cryptobot monitor`: the state of the bot at a glance, read from the lake (and Kafka's end
offsets for the lag). Signals by status with their scores; open positions with their orders,
the market's last price and the unrealised P&L; closed positions; daily P&L and the equity the
books give; and the pipeline's health: consumer lag per topic (Kafka's end offset less the
offset the stream's checkpoint committed), freshness of each stream (time since its last closed
candle), quarantine counts and the last run of every job (gold.job_runs).

`collect(spark, config)` returns the sections as plain rows; `render` prints them as tables or
JSON. It only reads, so it can run beside the stream at any time.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from common.catalog import read_table
from common.config import AppConfig
from common.sql_query import format_result, jsonable
from streaming.bronze import bronze_queries

log = logging.getLogger(__name__)
RECENT_ROWS = 10


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[tuple] = field(default_factory=list)
    note: str | None = None  # why it is empty or partial (e.g. Kafka unreachable)


def collect(spark: SparkSession, config: AppConfig, now_ms: int | None = None) -> list[Section]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return [signals_by_status(spark, config), recent_signals(spark, config), *open_positions(spark, config),
            closed_positions(spark, config), daily_pnl(spark, config), kafka_lag(spark, config),
            freshness(spark, config, now_ms), quarantine_counts(spark, config), last_job_runs(spark, config)]


def signals_by_status(spark, config) -> Section:
    rows = (read_table(spark, config, "gold.signals_all").groupBy("status")
            .agg(F.count("*").alias("signals"), F.round(F.avg("score"), 2).alias("avg_score"),
                 F.round(F.max("score"), 2).alias("max_score"), F.max("updated_at").alias("last_update"))
            .orderBy("status").collect())
    return Section("Signals by status", ["status", "signals", "avg_score", "max_score", "last_update"],
                   [tuple(r) for r in rows])


def recent_signals(spark, config) -> Section:
    columns = ["signal_id", "symbol", "interval", "strategy", "direction", "status", "score", "entry_price",
               "sl_price", "tp1_price", "updated_at"]
    rows = (read_table(spark, config, "gold.signals_all").where(F.col("status") != "pending")
            .orderBy(F.col("updated_at").desc(), "signal_id").select(*columns).limit(RECENT_ROWS).collect())
    return Section(f"Latest scored signals (up to {RECENT_ROWS})", columns, [tuple(r) for r in rows])


def open_positions(spark, config) -> list[Section]:
    positions = read_table(spark, config, "trading.positions_open").collect()
    prices = last_prices(spark, config, {(p.exchange, p.symbol) for p in positions})
    rows = []
    for p in positions:
        price = prices.get((p.exchange, p.symbol))
        rows.append((p.position_id, p.exchange, p.symbol, p.direction, p.status, p.entry_price,
                     p.remaining_quantity, p.sl_price, p.tp1_price, p.tp2_price, price,
                     unrealised_pnl(p.direction, p.entry_price, p.remaining_quantity, price), p.mode, p.opened_at))
    position_section = Section(
        "Open positions", ["position_id", "exchange", "symbol", "direction", "status", "entry_price", "remaining",
                           "sl_price", "tp1_price", "tp2_price", "last_price", "unrealised_pnl", "mode", "opened_at"],
        rows)
    order_columns = ["signal_id", "symbol", "leg", "version", "side", "order_type", "price", "stop_price", "amount",
                     "filled", "status", "mode", "updated_at"]
    orders = (read_table(spark, config, "trading.orders").where(F.col("status").isin("new", "open", "unknown"))
              .orderBy("signal_id", "leg", "version").select(*order_columns).collect())
    return [position_section, Section("Working orders (new, open, unknown)", order_columns, [tuple(r) for r in orders])]


def unrealised_pnl(direction: str, entry: Decimal, quantity: Decimal, price: Decimal | None) -> Decimal | None:
    """What closing the rest at `price` would make, before fees."""
    if price is None:
        return None
    move = price - entry if direction == "long" else entry - price
    return move * quantity


def last_prices(spark, config, markets: set[tuple[str, str]]) -> dict[tuple[str, str], Decimal]:
    """The close of each market's newest 1m kline."""
    if not markets:
        return {}
    rows = (read_table(spark, config, "silver.unified_klines")
            .where((F.col("interval") == "1m") & F.col("symbol").isin(sorted({s for _, s in markets})))
            .groupBy("exchange", "symbol").agg(F.max_by("close", "open_time_ms").alias("close")).collect())
    return {(r.exchange, r.symbol): Decimal(str(r.close)) for r in rows if (r.exchange, r.symbol) in markets}


def closed_positions(spark, config) -> Section:
    columns = ["signal_id", "exchange", "symbol", "direction", "entry_price", "exit_price", "quantity", "net_pnl",
               "r_multiple", "exit_reason", "mode", "closed_at"]
    rows = (read_table(spark, config, "trading.positions_closed").orderBy(F.col("closed_at").desc())
            .select(*columns).limit(RECENT_ROWS).collect())
    return Section(f"Closed positions (latest {RECENT_ROWS})", columns, [tuple(r) for r in rows])


def daily_pnl(spark, config) -> Section:
    columns = ["pnl_date", "exchange", "mode", "trades", "wins", "losses", "net_pnl", "equity_end"]
    rows = (read_table(spark, config, "trading.daily_pnl").orderBy(F.col("pnl_date").desc(), "exchange", "mode")
            .select(*columns).limit(RECENT_ROWS).collect())
    totals = (read_table(spark, config, "trading.positions_closed").groupBy("exchange", "mode")
              .agg(F.sum("net_pnl").alias("net")).collect())
    note = "; ".join(f"{t.exchange} {t.mode}: net P&L of all closed positions {_money(t.net)}" for t in totals)
    return Section(f"Daily P&L and equity (latest {RECENT_ROWS} days)", columns, [tuple(r) for r in rows],
                   note or None)


def kafka_lag(spark, config) -> Section:
    """Per topic partition: the end offset, the offset the bronze query committed, the difference."""

    columns = ["topic", "partition", "end_offset", "committed_offset", "lag"]
    committed = {q.topic: committed_offsets(spark, q.checkpoint) for q in bronze_queries(config)}
    try:
        ends = end_offsets(config, list(committed))
    except Exception as err:  # noqa: BLE001 - the monitor reports an unreachable broker, it does not fail
        return Section("Kafka consumer lag", columns, note=f"Kafka not reachable at {config.kafka.bootstrap_servers}:"
                                                           f" {type(err).__name__}: {str(err)[:200]}")
    rows = []
    for (topic, partition), end in sorted(ends.items()):
        done = committed[topic].get(partition)
        rows.append((topic, partition, end, done, None if done is None else end - done))
    return Section("Kafka consumer lag", columns, rows)


def end_offsets(config: AppConfig, topics: list[str]) -> dict[tuple[str, int], int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=config.kafka.bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="cryptobot-monitor", request_timeout_ms=5_000)
    try:
        found = consumer.topics()
        partitions = [TopicPartition(t, p) for t in topics if t in found
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        return {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def committed_offsets(spark, checkpoint: str) -> dict[int, int]:
    """{partition: next offset} of a Kafka streaming query's last committed batch (its checkpoint's
    offsets/<batch> file for the newest commits/<batch>), on any Hadoop file system."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    commits = jvm.org.apache.hadoop.fs.Path(f"{checkpoint}/commits")
    fs = commits.getFileSystem(hadoop_conf)
    if not fs.exists(commits):
        return {}
    batches = [int(s.getPath().getName()) for s in fs.listStatus(commits) if s.getPath().getName().isdigit()]
    if not batches:
        return {}
    lines = [r.value for r in spark.read.text(f"{checkpoint}/offsets/{max(batches)}").collect()]
    offsets: dict[int, int] = {}
    for line in lines[2:]:  # "v1", the batch's metadata, then one line per source
        for per_partition in json.loads(line).values():
            offsets.update({int(p): int(o) for p, o in per_partition.items()})
    return offsets


def freshness(spark, config, now_ms: int) -> Section:
    """Minutes since each stream's newest closed candle: (now - its close time)."""
    rows = (read_table(spark, config, "silver.unified_klines").groupBy("exchange", "symbol", "interval")
            .agg(F.max("close_time_ms").alias("last_close_ms"), F.count("*").alias("klines"))
            .orderBy("exchange", "symbol", "interval").collect())
    return Section("Freshness of each stream", ["exchange", "symbol", "interval", "klines", "last_close_utc",
                                                "minutes_ago"],
                   [(r.exchange, r.symbol, r.interval, r.klines, _utc(r.last_close_ms),
                     round((now_ms - r.last_close_ms) / 60_000, 1)) for r in rows])


def quarantine_counts(spark, config) -> Section:
    rows = (read_table(spark, config, "silver.quarantine").groupBy("source_table", "reason")
            .agg(F.count("*").alias("rows"), F.max("quarantined_at").alias("last_at"))
            .orderBy(F.col("rows").desc(), "source_table", "reason").collect())
    return Section("Quarantine by table and reason", ["source_table", "reason", "rows", "last_at"],
                   [tuple(r) for r in rows])


def last_job_runs(spark, config) -> Section:
    columns = ["job", "status", "started_at", "duration_s", "rows_in", "rows_out", "error", "runs"]
    runs = read_table(spark, config, "gold.job_runs")
    newest = Window.partitionBy("job").orderBy(F.col("started_at").desc(), F.col("run_id"))
    rows = (runs.withColumn("n", F.row_number().over(newest))
            .join(runs.groupBy("job").agg(F.count("*").alias("runs")), "job")
            .where("n = 1").orderBy("job").select(*columns).collect())
    return Section("Last run of every job", columns, [tuple(r) for r in rows])


def render(sections: list[Section], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps({s.title: {"rows": [dict(zip(s.columns, map(jsonable, row))) for row in s.rows],
                                     **({"note": s.note} if s.note else {})} for s in sections}, indent=2)
    parts = []
    for s in sections:
        body = format_result(s.columns, s.rows, "table") if s.rows else "(none)"
        parts.append(f"== {s.title} ==\n{body}" + (f"\n{s.note}" if s.note else ""))
    return "\n\n".join(parts)


def _utc(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def _money(value) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f") if value is not None else "-"


def run(spark: SparkSession, config: AppConfig) -> list[Section]:
    return collect(spark, config)
