"""Statistical scorer: scores the signals not yet final (pending, watchlist) and moves each to
its next status; `cryptobot score`, a spark-submit target, and run by the stream after every
batch that found signals.

For each open signal it gathers what is known when it is scored (the series' latest closed
bar, the "as of"): the zone's latest version, the latest sentiment, and the bars since the
trigger (has price already reached the stop or TP1?). The maths is common/scoring.py. The
status change is checked against the transition table and written to gold.signals_all only
where the signal still has the status it was read with, so a concurrent move (the execution
engine) is never overwritten; then each move that took effect is appended to
trading.audit_log (appended: only this run made those moves, and a move happens once). A
crash between the two leaves a move without its audit line: the status itself is never
recorded wrongly.

`--calibrate` measures outcomes (backtest trades, closed positions) per component and bucket
into gold.scorer_calibration; scoring then uses the newest calibration. `--report` prints the
realised win rate per score bucket.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from common.audit_log import append_applied_moves
from common.catalog import known_by, location_of, read_table
from common.config import AppConfig
from common.delta_conflicts import retry_on_conflict
from common.local_frames import local_frame
from common.scoring import (
    COMPONENTS, DEFAULT_CALIBRATION, Calibration, calibrate, calibration_from_rows, score_report, score_signals,
)
from common.signal_status import OPEN_FOR_SCORING, check_transition
from common.trading_config import TradingConfig, read_trading_config

log = logging.getLogger(__name__)

_UPDATE_COLUMNS = ["status", "status_reason", "sl_price", "tp1_price", "tp2_price", "rr_tp1", "rr_tp2", "score",
                   *[f"score_{c}" for c in COMPONENTS], "sentiment_score", "scored_as_of_ms", "calibration_version"]


@dataclass
class ScoringResult:
    scored: int = 0
    moves: Counter = field(default_factory=Counter)  # "pending->confirmed" -> count
    calibration_version: str = "default"

    @property
    def rows_in(self) -> int:  # for gold.job_runs: signals read, status moves made
        return self.scored

    @property
    def rows_out(self) -> int:
        return sum(self.moves.values())

    def describe(self) -> str:
        lines = [f"signals scored: {self.scored} (calibration {self.calibration_version})"]
        lines += [f"  {move}: {count}" for move, count in sorted(self.moves.items())]
        return "\n".join(lines)


def run(spark: SparkSession, config: AppConfig, as_of_ms: int | None = None, trading: TradingConfig | None = None,
        calibration: Calibration | None = None) -> ScoringResult:
    """as_of_ms: score as if now were then (a paper replay stepping through history): only the
    signals, bars and zone versions known by then are read. None = everything there is.
    trading, calibration: what to score with, when the caller has read them already (a paper
    replay holds them fixed); by default the stored ones, read afresh."""
    trading = trading if trading is not None else read_trading_config(spark)
    calibration = calibration if calibration is not None else latest_calibration(spark, config)
    signals = (read_table(spark, config, "gold.signals_all")
               .where(F.col("status").isin(*OPEN_FOR_SCORING) & known_by("known_at_ms", as_of_ms)).toPandas())
    if signals.empty:
        return ScoringResult(calibration_version=calibration.version)
    since = _bars_since_trigger(spark, config, signals, as_of_ms).toPandas()
    zones = _latest_zone_versions(spark, config, signals, as_of_ms).toPandas()
    sentiment = _sentiment(spark, config, signals).toPandas()
    scored = score_signals(signals, since, zones, sentiment, trading, calibration, config)
    result = ScoringResult(scored=len(scored), calibration_version=calibration.version)
    moved = scored[scored.status != scored.previous_status]
    for row in moved.itertuples():
        check_transition(row.signal_id, row.previous_status, row.status)
        result.moves[f"{row.previous_status}->{row.status}"] += 1
    _write(spark, config, scored, moved)
    log.info("event=signals_scored scored=%d moves=%s", result.scored, dict(result.moves))
    return result


def _bars_since_trigger(spark: SparkSession, config: AppConfig, signals: pd.DataFrame,
                        as_of_ms: int | None = None) -> DataFrame:
    """Per signal: the closed bars of its series after the trigger bar (high, low, the last close).
    The signals travel from the driver (already read): each Spark action costs a scorer step
    about half a second, whatever its size."""
    columns = ["signal_id", "exchange", "symbol", "interval", "trigger_bar_time_ms"]
    keys = local_frame(spark, signals[columns],
                       "signal_id string, exchange string, symbol string, interval string, "
                       "trigger_bar_time_ms bigint")
    klines = (read_table(spark, config, "silver.unified_klines")  # partitioned by interval: the others are skipped
              .where(F.col("interval").isin(sorted(signals.interval.unique()))
                     & F.col("exchange").isin(sorted(signals.exchange.unique()))
                     & F.col("symbol").isin(sorted(signals.symbol.unique()))
                     & (F.col("open_time_ms") > F.lit(int(signals.trigger_bar_time_ms.min())))
                     & known_by("close_time_ms", as_of_ms))
              .select("exchange", "symbol", "interval", "open_time_ms", "close_time_ms", "high", "low"))
    return (F.broadcast(keys).join(klines, ["exchange", "symbol", "interval"])
            .where(F.col("open_time_ms") > F.col("trigger_bar_time_ms"))
            .groupBy("signal_id").agg(F.count("*").alias("bars"), F.max("high").alias("max_high"),
                                      F.min("low").alias("min_low"), F.max("close_time_ms").alias("last_close_ms")))


def _latest_zone_versions(spark: SparkSession, config: AppConfig, signals: pd.DataFrame,
                          as_of_ms: int | None = None) -> DataFrame:

    zone_ids = sorted(signals.zone_id.dropna().unique())
    latest = Window.partitionBy("zone_id").orderBy(F.col("known_at_ms").desc(), F.col("version").desc())
    return (read_table(spark, config, "gold.liquidity_zones")
            .where(F.col("zone_id").isin(zone_ids) & known_by("known_at_ms", as_of_ms))
            .withColumn("n", F.row_number().over(latest)).where("n = 1")
            .select("zone_id", "status", "quality", "touches", "rejections", "breaks", "known_at_ms"))


def _sentiment(spark: SparkSession, config: AppConfig, signals: pd.DataFrame) -> DataFrame:
    earliest = int(signals.known_at_ms.min()) - 7 * 86_400_000  # the latest reading before any signal
    return (read_table(spark, config, "gold.sentiment_scores")
            .where(F.col("symbol").isin(sorted(signals.symbol.unique())) & (F.col("known_at_ms") >= earliest))
            .select("exchange", "symbol", "known_at_ms", "sentiment_score", "confidence"))


def _write(spark: SparkSession, config: AppConfig, scored: pd.DataFrame, moved: pd.DataFrame) -> None:

    updates = local_frame(spark, scored, _updates_schema())
    target = DeltaTable.forPath(spark, location_of(config, "gold.signals_all"))
    values = {c: f"s.{c}" for c in _UPDATE_COLUMNS}
    # Conditional on the status it was read with, so a run again after losing a race with the
    # signals query (the scorer as its own application) moves nothing twice.
    condition = "t.signal_id = s.signal_id AND t.status = s.previous_status"
    merged = retry_on_conflict(
        lambda: (target.alias("t").merge(updates.alias("s"), condition)
                 .whenMatchedUpdate(set={**values, "scored_at": "current_timestamp()",
                                         "updated_at": "current_timestamp()"})
                 .execute().first()), "gold.signals_all")
    if moved.empty:
        return
    applied = moved
    if merged is None or merged.num_updated_rows != len(scored):
        # Not every row matched: a signal moved meanwhile by someone else kept its status, and
        # only the moves that took effect are audited.
        mark = ["signal_id", "status", "scored_as_of_ms", "calibration_version"]
        stored = (read_table(spark, config, "gold.signals_all").where(F.col("signal_id").isin(list(moved.signal_id)))
                  .select(*mark).toPandas())
        applied = moved.merge(stored, on=mark)
    if applied.empty:
        return
    audit = local_frame(spark, applied, "signal_id string, previous_status string, status string, "
                                         "status_reason string, score double")
    append_applied_moves(spark, config, audit.select(
        F.sha2(F.concat_ws("|", "signal_id", "previous_status", "status"), 256).alias("event_id"),
        F.lit("signal").alias("entity_type"), F.col("signal_id").alias("entity_id"),
        F.col("previous_status").alias("from_status"), F.col("status").alias("to_status"),
        F.col("status_reason").alias("reason"), F.to_json(F.struct("score")).alias("details"),
        F.lit("statistical_scorer").alias("actor"), F.current_timestamp().alias("event_time"),
        F.current_date().alias("event_date")))


def _updates_schema() -> str:
    types = {"signal_id": "string", "previous_status": "string", "status": "string", "status_reason": "string",
             "calibration_version": "string", "scored_as_of_ms": "bigint"}
    names = ["signal_id", "previous_status", *_UPDATE_COLUMNS]
    return ", ".join(f"{n} {types.get(n, 'double')}" for n in names)


# -- calibration ------------------------------------------------------------------------------

def latest_calibration(spark: SparkSession, config: AppConfig) -> Calibration:
    rows = read_table(spark, config, "gold.scorer_calibration").toPandas()  # small: one read, not two
    if rows.empty:
        return DEFAULT_CALIBRATION
    newest = rows.sort_values("created_at").calibration_version.iloc[-1]
    return calibration_from_rows(rows[rows.calibration_version == newest])


def measured_trades(spark: SparkSession, config: AppConfig) -> pd.DataFrame:
    """Closed trades with the components of the score they were taken with: closed positions
    (joined to their signals) and backtest trades. A setup counts once: its real outcome when it
    was traded, else its trade in the newest backtest run that took it."""

    components = [f"score_{c}" for c in COMPONENTS]
    signals = read_table(spark, config, "gold.signals_all").select("signal_id", "score", *components)
    closed = (read_table(spark, config, "trading.positions_closed").join(signals, "signal_id")
              .select("signal_id", (F.unix_timestamp("opened_at") * 1000).cast("bigint").alias("entry_time_ms"),
                      "score", F.col("r_multiple").cast("double").alias("r_multiple"), *components,
                      F.lit("positions").alias("source")))
    runs = (read_table(spark, config, "gold.backtest_results").groupBy("run_id")
            .agg(F.max("run_timestamp").alias("run_at")))
    newest_run = Window.partitionBy(F.coalesce("signal_id", "trade_id")).orderBy(
        F.col("run_at").desc_nulls_last(), F.col("run_id").desc())
    backtest = (read_table(spark, config, "gold.backtest_trades").join(runs, "run_id", "left")
                .withColumn("n", F.row_number().over(newest_run)).where("n = 1")
                .join(closed.select("signal_id"), "signal_id", "left_anti")
                .select("signal_id", "entry_time_ms", "score", F.col("r_multiple").cast("double").alias("r_multiple"),
                        *components, F.lit("backtest").alias("source")))
    return backtest.unionByName(closed).drop("signal_id").toPandas()


def run_calibration(spark: SparkSession, config: AppConfig) -> str:
    # Only trades with an outcome and every component can be measured (a position opened
    # before its signal was scored has none).
    trades = measured_trades(spark, config).dropna(subset=["r_multiple", *[f"score_{c}" for c in COMPONENTS]])
    sources = "+".join(sorted(trades.source.unique())) if len(trades) else "none"
    calibration, rows = calibrate(trades, sources)
    if calibration is None:
        return (f"not calibrated: {len(trades)} measured trades, at least 30 needed; "
                f"the documented default weights stay in use")
    table = read_table(spark, config, "gold.scorer_calibration")
    if table.where(F.col("calibration_version") == calibration.version).limit(1).count():
        return f"calibration {calibration.version} is already stored (same trades)"
    rows["created_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    local_frame(spark, rows, table.schema).write.format("delta").mode("append").save(
        location_of(config, "gold.scorer_calibration"))
    weights = ", ".join(f"{c} {w:.2f}" for c, w in calibration.weights.items())
    return f"calibration {calibration.version} from {len(trades)} trades ({sources}): weights {weights}"


def report(spark: SparkSession, config: AppConfig) -> str:
    trades = measured_trades(spark, config)
    if trades.empty:
        return "no measured trades yet (run a backtest, or wait for closed positions)"
    return "realised outcome per score bucket:\n" + score_report(trades).to_string(index=False)
