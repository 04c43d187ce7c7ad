"""Signal scanner: gold.liquidity_zones (and gold.bos_warnings) -> gold.signals_all.

Every setup is a zone version (a touch, a sweep), so the stream follows the append-only zone
table. A micro-batch names the (exchange, symbol, interval) series whose zones changed and
the earliest change; the scanner reads those symbols' events and zone versions of every
interval over the bounded look-back, and runs the strategies of common/strategies.py per
(exchange, symbol) with `applyInPandas`, keeping the setups triggered by the batch's rows.

A signal is inserted once, as `pending`, keyed by its deterministic signal_id (MERGE, insert
when absent): a re-run, a replay or the batch job never duplicates one, and never touches a
signal the scorer has moved on. Its creation is the first line of its audit trail.
`streaming/signal_scanner.py` (`cryptobot scan`) runs the same code over the whole tables.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.analytics.structure import EVENT_COLUMNS
from common.analytics.zones import ZONE_COLUMNS
from common.audit_log import append_audit
from common.catalog import location_of, read_table
from common.config import AppConfig
from common.delta_conflicts import retry_on_conflict
from common.intervals import INTERVAL_MS
from common.local_frames import local_frame
from common.signal_status import SignalStatus
from common.strategies import ScanParams, scan_series
from common.trading_config import read_trading_config
from streaming.analytics import CONSOLIDATED
from streaming.trading_scheduler import score_and_execute
from streaming.triggers import with_trigger

log = logging.getLogger(__name__)

_SIGNAL_TYPES = {
    "exchange": "string", "symbol": "string", "interval": "string",
    "signal_id": "string", "strategy": "string", "direction": "string", "trigger_bar_time_ms": "bigint",
    "known_at_ms": "bigint", "zone_id": "string", "bos_event_id": "string", "lineage": "string",
    "entry_price": "double", "zone_low": "double", "zone_high": "double", "atr": "double", "target_levels": "string",
    "zone_quality": "double", "zone_touches": "int", "zone_rejections": "int", "side_rejections": "int",
    "side_breaks": "int", "bos_type": "string", "bos_direction": "string", "bos_distance_atr": "double",
    "bos_age_bars": "int", "htf_trend_agree": "int", "htf_zone_overlap": "int", "htf_in_value_area": "int",
    "confluence_intervals": "string", "htf_count": "int",
}
SIGNAL_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in _SIGNAL_TYPES.items())
_ROW_COLUMNS = sorted(set(EVENT_COLUMNS) | set(ZONE_COLUMNS) | {"event_id", "is_liquidity_pool"})


def scan_group(config: AppConfig, strategies: tuple[str, ...]):
    """The applyInPandas function: one (exchange, symbol)'s events and zone versions of every
    interval, with `emit_from_ms` set on the rows of the intervals the batch touched."""
    params = ScanParams.from_config(config.signals)
    intervals = list(config.exchanges.intervals)

    def run(rows: pd.DataFrame) -> pd.DataFrame:
        exchange, symbol = rows["exchange"].iloc[0], rows["symbol"].iloc[0]
        events = {i: g for i, g in rows[rows.row_kind == "event"].groupby("interval")}
        zones = {i: g for i, g in rows[rows.row_kind == "zone"].groupby("interval")}
        found = []
        emit_from_by_interval = rows.dropna(subset=["emit_from_ms"]).groupby("interval")["emit_from_ms"].min()
        for interval, emit_from in emit_from_by_interval.items():
            signals = scan_series(exchange, symbol, interval, INTERVAL_MS[interval],
                                  events.get(interval, _empty(EVENT_COLUMNS)),
                                  zones.get(interval, _empty(ZONE_COLUMNS)), params, strategies, int(emit_from),
                                  htf_events=events, htf_zones=zones, intervals=intervals)
            if len(signals):
                found.append(signals.assign(exchange=exchange, symbol=symbol, interval=interval))
        if not found:
            return pd.DataFrame(columns=list(_SIGNAL_TYPES))
        return _typed(pd.concat(found, ignore_index=True)[list(_SIGNAL_TYPES)])

    return run


def _empty(columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=columns)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column, kind in _SIGNAL_TYPES.items():
        if kind in ("int", "bigint"):
            frame[column] = pd.Series([None if pd.isna(v) else int(v) for v in frame[column]], index=frame.index,
                                      dtype=object)
        elif kind == "string":
            frame[column] = pd.Series([None if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                                       for v in frame[column]], index=frame.index, dtype=object)
    return frame


def scan_zone_changes(spark: SparkSession, config: AppConfig, zone_changes: DataFrame) -> DataFrame:
    """The setups triggered by these zone versions (a micro-batch of gold.liquidity_zones, or the
    whole table for a full scan). Reads only the look-back the strategies need."""
    touched = (zone_changes.where(F.col("exchange") != CONSOLIDATED)
               .groupBy("exchange", "symbol", "interval").agg(F.min("known_at_ms").alias("emit_from_ms")).collect())
    touched = [r for r in touched if r.interval in config.exchanges.intervals]
    if not touched:
        return None
    lookback = config.signals.lookback_bars
    earliest = {}
    for r in touched:
        earliest[(r.exchange, r.symbol)] = min(earliest.get((r.exchange, r.symbol), r.emit_from_ms), r.emit_from_ms)
    emit = {(r.exchange, r.symbol, r.interval): r.emit_from_ms for r in touched}
    # Every interval of a touched symbol: its own rows for the setups, the others for confluence.
    bounds = [(ex, sym, iv, start - lookback * INTERVAL_MS[iv], emit.get((ex, sym, iv)))
              for (ex, sym), start in earliest.items() for iv in config.exchanges.intervals]
    wanted = local_frame(spark, bounds, "exchange string, symbol string, interval string, from_ms bigint, "
                                        "emit_from_ms bigint")
    symbols = sorted({s for _, s in earliest})
    low = min(start - lookback * max(INTERVAL_MS[i] for i in config.exchanges.intervals)
              for start in earliest.values())
    prune = F.col("symbol").isin(symbols) & (F.col("known_at_ms") >= F.lit(low))
    events = (read_table(spark, config, "gold.bos_warnings").where(prune)
              .select(F.lit("event").alias("row_kind"), "exchange", "symbol", "interval", "event_id", *EVENT_COLUMNS))
    zones = (read_table(spark, config, "gold.liquidity_zones").where(prune)
             .select(F.lit("zone").alias("row_kind"), "exchange", "symbol", "interval", *ZONE_COLUMNS))
    rows = (events.unionByName(zones, allowMissingColumns=True)
            .join(F.broadcast(wanted), ["exchange", "symbol", "interval"])
            .where(F.col("known_at_ms") >= F.col("from_ms")).drop("from_ms"))
    strategies = read_trading_config(spark).strategies
    return rows.groupBy("exchange", "symbol").applyInPandas(scan_group(config, strategies), SIGNAL_SCHEMA)


def insert_new_signals(spark: SparkSession, config: AppConfig, signals: DataFrame, after_insert=None) -> int:
    """MERGE insert-when-absent into gold.signals_all, then the audit trail's first line.

    after_insert: what to run between the two, once signals were inserted (the stream's scorer
    and execution engine): the audit line is a MERGE of its own, seconds here, that need not
    stand between a signal and its order. Its time is still the signal's creation time, and a
    crash before it is written leaves the micro-batch uncommitted: it runs again, inserts
    nothing twice and writes the line (keyed on the signal's move)."""

    signals = signals.persist()
    try:
        count = signals.count()
        if not count:
            return 0
        found_at = F.lit(datetime.now(timezone.utc))  # one moment for the row and its audit line
        rows = signals.select("*", F.lit(SignalStatus.PENDING.value).alias("status"),
                              F.lit("found by the scanner").alias("status_reason"),
                              found_at.alias("created_at"), found_at.alias("updated_at"))
        location = location_of(config, "gold.signals_all")
        target = DeltaTable.forPath(spark, location)
        columns = {c: f"s.{c}" for c in rows.columns}
        # The trading jobs write these tables too: losing a race must not stop the query.
        retry_on_conflict(lambda: (target.alias("t").merge(rows.alias("s"), "t.signal_id = s.signal_id")
                                   .whenNotMatchedInsert(values=columns).execute()), "gold.signals_all")
        if after_insert is not None:
            after_insert()
        audit = signals.select(
            F.sha2(F.concat_ws("|", "signal_id", F.lit(""), F.lit(SignalStatus.PENDING.value)), 256).alias("event_id"),
            F.lit("signal").alias("entity_type"), F.col("signal_id").alias("entity_id"),
            F.lit(None).cast("string").alias("from_status"), F.lit(SignalStatus.PENDING.value).alias("to_status"),
            F.lit("found by the scanner").alias("reason"),
            F.to_json(F.struct("strategy", "exchange", "symbol", "interval", "direction",
                               "known_at_ms")).alias("details"),
            F.lit("signal_scanner").alias("actor"), found_at.alias("event_time"),
            F.to_date(found_at).alias("event_date"))
        append_audit(spark, config, audit)  # retried as well when it loses a race
        return count
    finally:
        signals.unpersist()


def start_signals_query(spark: SparkSession, config: AppConfig, available_now: bool, after_signals=None):
    """after_signals: what to run after a batch that found signals (streaming/trading_scheduler.py);
    the scorer and the execution engine in-process by default."""

    checkpoint = config.lake.checkpoint_path("signals")
    after_signals = after_signals or (lambda: score_and_execute(spark, config))

    def scan(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        signals = scan_zone_changes(spark, config, batch)
        if signals is not None:  # None: no series of the scanned intervals changed
            count = insert_new_signals(spark, config, signals, after_insert=after_signals)
            log.info("event=signals_batch batch=%d signals=%d seconds=%.1f", batch_id, count,
                     time.monotonic() - started)

    writer = (spark.readStream.format("delta").load(location_of(config, "gold.liquidity_zones"))
              .writeStream.queryName("signals")
              .option("checkpointLocation", checkpoint)
              .foreachBatch(scan))
    return with_trigger(writer, config, available_now).start()

