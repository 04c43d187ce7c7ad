"""Analytics: silver.unified_klines (and the consolidated klines) -> gold.bos_warnings and
gold.liquidity_zones; silver.unified_market -> gold.sentiment_scores.

Incremental: a micro-batch of the unified change feed names the series it touched (exchange,
symbol, interval; the consolidated series of each touched symbol and interval too). Only
those are computed, each by the pure code of common/analytics through `applyInPandas`, from
the state where the last run stopped (gold.analytics_state) and a bounded look-back of bars:
the cost follows the new bars, not the history. A series seen for the first time is computed
over its whole history, which is also what a batch run over the table does.

Exactly once: the rows are appended with Delta's idempotent (txnAppId, txnVersion) before the
state moves on, so a batch re-run after a crash writes nothing twice; and bars the state has
passed already are never analysed again, so nothing written is ever rewritten.
"""
from __future__ import annotations

import hashlib
import logging
import time

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from common.analytics.sentiment import SENTIMENT_COLUMNS, SentimentParams, sentiment_scores
from common.analytics.series import AnalyticsParams, SeriesState, analyze_series, lookback_start_ms
from common.analytics.structure import EVENT_COLUMNS
from common.analytics.zones import ZONE_COLUMNS
from common.catalog import location_of
from common.config import AppConfig
from common.intervals import INTERVAL_MS
from common.local_frames import local_frame
from streaming.silver import append_once
from streaming.triggers import with_trigger

log = logging.getLogger(__name__)

CONSOLIDATED = "consolidated"  # the exchange name of the cross-exchange series
SERIES_KEY = ["exchange", "symbol", "interval"]

# What applyInPandas returns per series: events, zone versions and the new state in one frame.
_OUTPUT_TYPES = {
    "row_kind": "string", "exchange": "string", "symbol": "string", "interval": "string",
    "event_type": "string", "direction": "string", "level": "double", "swing_time_ms": "bigint",
    "swing_confirmed_ms": "bigint", "bar_time_ms": "bigint", "bar_close": "double", "distance_atr": "double",
    "atr": "double", "known_at_ms": "bigint",
    "zone_id": "string", "zone_type": "string", "source": "string", "is_liquidity_pool": "boolean",
    "swing_count": "int", "zone_low": "double", "zone_high": "double", "poc_price": "double", "volume": "double",
    "volume_share": "double", "window_bars": "int", "window_start_ms": "bigint", "window_end_ms": "bigint",
    "window_poc": "double", "value_area_low": "double", "value_area_high": "double", "touches": "int",
    "rejections": "int", "sweeps": "int", "breaks": "int", "status": "string", "quality": "double",
    "created_ms": "bigint", "age_bars": "int", "version": "int", "touched_now": "boolean", "swept_now": "boolean",
    "last_bar_ms": "bigint", "state_json": "string",
}
OUTPUT_SCHEMA = ", ".join(f"{name} {kind}" for name, kind in _OUTPUT_TYPES.items())


def analyze_group(config: AppConfig):
    """The applyInPandas function: one series' bars (with its stored state on every row)."""
    params = {interval: AnalyticsParams.from_config(config.analytics, interval) for interval in config.exchanges.intervals}

    def run(bars: pd.DataFrame) -> pd.DataFrame:
        exchange, symbol, interval = (bars[c].iloc[0] for c in SERIES_KEY)
        state = SeriesState.from_json(bars["state_json"].iloc[0])
        events, zones, new_state = analyze_series(bars, state, params[interval], INTERVAL_MS[interval])
        parts = [events.assign(row_kind="event"), zones.assign(row_kind="zone"),
                 pd.DataFrame([{"row_kind": "state", "last_bar_ms": new_state.last_bar_ms,
                                "state_json": new_state.to_json()}])]
        out = pd.concat([p for p in parts if len(p)], ignore_index=True).reindex(columns=list(_OUTPUT_TYPES))
        out["exchange"], out["symbol"], out["interval"] = exchange, symbol, interval
        return _arrow_ready(out)

    return run


def _arrow_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of a frame whose rows come from different kinds leave gaps (NaN) in integer,
    text and boolean columns: make them Python values and None, which Arrow takes as typed."""
    for column, kind in _OUTPUT_TYPES.items():
        if kind == "double":
            frame[column] = frame[column].astype(float)
        else:
            cast = int if kind in ("int", "bigint") else bool if kind == "boolean" else str
            frame[column] = pd.Series([None if pd.isna(v) else cast(v) for v in frame[column]], index=frame.index,
                                      dtype=object)
    return frame


def series_bars(spark: SparkSession, config: AppConfig, touched: list[tuple], states: dict) -> DataFrame:
    """The bars each touched series needs: after its state's last bar, plus the look-back (the
    last `lookback_bars` bars it analysed, however much time they span)."""
    bounds = []
    for exchange, symbol, interval in touched:
        state_json = states.get((exchange, symbol, interval), (None, None))[1]
        from_ms = lookback_start_ms(state_json, AnalyticsParams.from_config(config.analytics, interval), INTERVAL_MS[interval])
        bounds.append((exchange, symbol, interval, -1 if from_ms is None else from_ms, state_json))
    wanted = local_frame(spark, bounds, "exchange string, symbol string, interval string, from_ms bigint, "
                                        "state_json string")
    intervals = sorted({b[2] for b in bounds})
    low = min(b[3] for b in bounds)
    prune = F.col("interval").isin(intervals) & (F.col("open_time_ms") >= F.lit(low))
    bar_columns = ["symbol", "interval", "open_time_ms", "close_time_ms", "open", "high", "low", "close", "volume"]
    unified = (spark.read.format("delta").load(location_of(config, "silver.unified_klines")).where(prune)
               .select("exchange", *bar_columns))
    consolidated = (spark.read.format("delta").load(location_of(config, "silver.consolidated_klines")).where(prune)
                    .select(F.lit(CONSOLIDATED).alias("exchange"), *bar_columns))
    return (unified.unionByName(consolidated).join(F.broadcast(wanted), SERIES_KEY)
            .where(F.col("open_time_ms") >= F.col("from_ms")).drop("from_ms"))


def process_klines_batch(spark: SparkSession, config: AppConfig, changes: DataFrame, batch_id: int,
                         app_id: str) -> int:
    """Analyse the series a batch of unified klines touched; returns how many."""
    touched_rows = (changes.where(F.col("_change_type").isin("insert", "update_postimage"))
                    .select("exchange", "symbol", "interval").distinct().collect())
    touched = sorted({tuple(r) for r in touched_rows} | {(CONSOLIDATED, r.symbol, r.interval) for r in touched_rows})
    touched = [t for t in touched if t[2] in config.exchanges.intervals]
    if not touched:
        return 0
    state_location = location_of(config, "gold.analytics_state")
    states = {(r.exchange, r.symbol, r.interval): (r.last_bar_ms, r.state_json)
              for r in spark.read.format("delta").load(state_location)
              .where(F.col("symbol").isin(sorted({t[1] for t in touched}))).collect()}
    output = (series_bars(spark, config, touched, states)
              .groupBy(*SERIES_KEY).applyInPandas(analyze_group(config), OUTPUT_SCHEMA)
              .withColumn("created_at", F.current_timestamp())
              .persist())
    try:
        events = output.where("row_kind = 'event'")
        append_once(events.select(_event_id().alias("event_id"), *SERIES_KEY, *EVENT_COLUMNS, "created_at"),
                    location_of(config, "gold.bos_warnings"), f"{app_id}-events", batch_id)
        zones = output.where("row_kind = 'zone'")
        zone_columns = [c for c in ZONE_COLUMNS if c != "zone_id"]
        append_once(zones.select(_zone_id().alias("zone_id"), *SERIES_KEY, *zone_columns, "created_at",
                                 F.col("created_at").alias("updated_at")),
                    location_of(config, "gold.liquidity_zones"), f"{app_id}-zones", batch_id)
        _store_states(spark, state_location, output.where("row_kind = 'state'"))
    finally:
        output.unpersist()
    return len(touched)


def _event_id():
    return F.sha2(F.concat_ws("|", *SERIES_KEY, "event_type", "direction", "swing_time_ms", "bar_time_ms"), 256)


def _zone_id():
    """Unique across series: the series plus the zone's own id (its side, source and origin bar)."""
    return F.concat_ws(":", *SERIES_KEY, "zone_id")


def _store_states(spark: SparkSession, location: str, states: DataFrame) -> None:
    rows = states.select(*SERIES_KEY, "last_bar_ms", "state_json", F.col("created_at").alias("updated_at"))
    condition = " AND ".join(f"t.{k} = s.{k}" for k in SERIES_KEY)
    (DeltaTable.forPath(spark, location).alias("t").merge(rows.alias("s"), condition)
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


# -- sentiment --------------------------------------------------------------------------------

SENTIMENT_OUTPUT = ("exchange string, symbol string, interval string, ts_ms bigint, funding_rate double, "
                    "funding_zscore double, open_interest double, open_interest_change_pct double, "
                    "price_change_pct double, long_short_ratio double, taker_buy_ratio double, "
                    "sentiment_score double, confidence double, label string, known_at_ms bigint")


def sentiment_group(params: SentimentParams, interval: str):
    def run(rows: pd.DataFrame) -> pd.DataFrame:
        exchange, symbol = rows["exchange"].iloc[0], rows["symbol"].iloc[0]
        after_ms = rows["after_ms"].iloc[0]
        market = rows.loc[rows.row_kind == "market", ["ts_ms", "metric", "value"]]
        closes = rows.loc[rows.row_kind == "close", ["ts_ms", "value"]].rename(
            columns={"ts_ms": "close_time_ms", "value": "close"})
        scores = sentiment_scores(market, closes, params)
        scores = scores[scores.ts_ms > after_ms] if pd.notna(after_ms) else scores
        return scores.assign(exchange=exchange, symbol=symbol, interval=interval)[
            ["exchange", "symbol", "interval", *SENTIMENT_COLUMNS]]

    return run


def sentiment_interval(config: AppConfig) -> str:
    """The market data's period, or the configured interval closest above it, for the closes."""
    period = config.producer.market_period
    candidates = sorted(config.exchanges.intervals, key=lambda i: (INTERVAL_MS[i] < INTERVAL_MS[period],
                                                                    abs(INTERVAL_MS[i] - INTERVAL_MS[period])))
    return candidates[0]


def process_market_batch(spark: SparkSession, config: AppConfig, changes: DataFrame, batch_id: int,
                         app_id: str) -> int:
    touched = [tuple(r) for r in changes.where(F.col("_change_type").isin("insert", "update_postimage"))
               .select("exchange", "symbol").distinct().collect()]
    if not touched:
        return 0
    interval = config.producer.market_period
    params = SentimentParams(period_ms=INTERVAL_MS[interval], funding_window=config.analytics.funding_window,
                             change_window=config.analytics.change_window)
    scores_location = location_of(config, "gold.sentiment_scores")
    symbols = sorted({t[1] for t in touched})
    last = {(r.exchange, r.symbol): r.last_ts for r in spark.read.format("delta").load(scores_location)
            .where(F.col("symbol").isin(symbols) & (F.col("interval") == interval))
            .groupBy("exchange", "symbol").agg(F.max("ts_ms").alias("last_ts")).collect()}
    bounds = [(ex, sym, last.get((ex, sym)), (last[(ex, sym)] - params.lookback_ms) if (ex, sym) in last else -1)
              for ex, sym in touched]
    wanted = local_frame(spark, bounds, "exchange string, symbol string, after_ms bigint, from_ms bigint")
    low = min(b[3] for b in bounds)
    market = (spark.read.format("delta").load(location_of(config, "silver.unified_market"))
              .where(F.col("symbol").isin(symbols) & (F.col("ts_ms") >= low))
              .select("exchange", "symbol", F.lit("market").alias("row_kind"), "ts_ms", "metric", "value"))
    closes = (spark.read.format("delta").load(location_of(config, "silver.unified_klines"))
              .where(F.col("symbol").isin(symbols) & (F.col("interval") == sentiment_interval(config))
                     & (F.col("open_time_ms") >= low))
              .select("exchange", "symbol", F.lit("close").alias("row_kind"), F.col("close_time_ms").alias("ts_ms"),
                      F.lit(None).cast("string").alias("metric"), F.col("close").alias("value")))
    rows = (market.unionByName(closes).join(F.broadcast(wanted), ["exchange", "symbol"])
            .where(F.col("ts_ms") >= F.col("from_ms")))
    scores = (rows.groupBy("exchange", "symbol").applyInPandas(sentiment_group(params, interval), SENTIMENT_OUTPUT)
              .withColumn("created_at", F.current_timestamp()))
    append_once(scores, scores_location, f"{app_id}-sentiment", batch_id)
    return len(touched)


# -- the streaming queries -------------------------------------------------------------------------


def start_analytics_query(spark: SparkSession, config: AppConfig, kind: str, available_now: bool):
    """kind 'klines' (structure and zones) or 'market' (sentiment), over unified's change feed."""
    source = "silver.unified_klines" if kind == "klines" else "silver.unified_market"
    checkpoint = config.lake.checkpoint_path(f"analytics_{kind}")
    app_id = f"cryptobot-analytics-{kind}-{hashlib.sha1(checkpoint.encode()).hexdigest()[:12]}"
    process = process_klines_batch if kind == "klines" else process_market_batch

    def analyse(batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        series = process(spark, config, batch, batch_id, app_id)
        if series:
            log.info("event=analytics_batch kind=%s batch=%d series=%d seconds=%.1f", kind, batch_id, series,
                     time.monotonic() - started)

    writer = (spark.readStream.format("delta").option("readChangeFeed", "true").load(location_of(config, source))
              .writeStream.queryName(f"analytics_{kind}")
              .option("checkpointLocation", checkpoint)
              .foreachBatch(analyse))
    return with_trigger(writer, config, available_now).start()
