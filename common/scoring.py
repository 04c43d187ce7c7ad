"""The statistical scorer's maths: five components, the score, the trade plan, the status, and
the calibration that turns measured outcomes into points and weights. Pure; the job
(common/trading/statistical_scorer.py) only gathers the inputs and writes the results.

Each component is 0-100 and stored beside the score:
- zone_quality: the zone's quality as analytics measured it (common/analytics/zones.py).
- bos: the latest break of structure known at the trigger. In the signal's direction:
  kind (BOS 40, CHoCH 30: a continuation is the safer read) + strength (30 x its distance
  beyond the level in ATRs, full at 1 ATR) + freshness (30, falling to 0 at the scanner's
  `max_break_age_bars`). Against the signal: 10. No break known: 25.
- confluence: the share of agreements over the higher intervals (trend, overlapping zone,
  price in their value area: three per interval); 50 when there is no higher interval.
- sentiment: 50 + half the sentiment score read in the signal's direction, times its
  confidence; 50 when there is none (missing data is neutral, never invented).
- zone_behaviour: 60 % the zone's own record, (rejections + 1) / (touches + 1), and 40 %
  its side's record in the series, (rejections + 1) / (rejections + breaks + 2).

score = sum over components of weight x points(component value). Without a calibration the
points are the component itself and the weights are DEFAULT_WEIGHTS. A calibration measures,
per component and bucket of 20 points, the realised win rate and average R of past trades
(each bucket's rate shrunk towards the overall rate when it holds few trades) and its weights
follow each component's rank correlation with R. Its points keep the thresholds' scale: 50 is
a bucket that wins as often as the measured trades overall, 100 one that always wins, 0 one
that never does (linear in between), so `score_threshold_watchlist` = 50 reads "at least
average" and `score_threshold_execute` = 70 "well above average", calibrated or not.
"""
from __future__ import annotations

import hashlib
import json
import keyword
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.intervals import INTERVAL_MS
from common.signal_status import SignalStatus

COMPONENTS = ("zone_quality", "bos", "confluence", "sentiment", "zone_behaviour")
DEFAULT_WEIGHTS = {"zone_quality": 0.25, "bos": 0.20, "confluence": 0.20, "sentiment": 0.15, "zone_behaviour": 0.20}
BUCKET_EDGES = (0.0, 20.0, 40.0, 60.0, 80.0, 100.0)
MIN_CALIBRATION_TRADES = 30
SHRINK_TRADES = 10  # a bucket's win rate counts as if it had this many trades at the overall rate


# -- components -------------------------------------------------------------------------------

def zone_quality_points(quality: float | None) -> float:
    # min/max: np.clip's value on one number, without its dispatch (a backtest scores thousands)
    return 0.0 if quality is None or _missing(quality) else min(max(float(quality), 0.0), 100.0)


def bos_points(direction: str, bos_type: str | None, bos_direction: str | None, distance_atr: float | None,
               age_bars: int | None, max_age_bars: int) -> float:
    if bos_type is None or _missing(bos_type):
        return 25.0
    if (bos_direction == "bullish") != (direction == "long"):
        return 10.0
    kind = 40.0 if bos_type == "BOS" else 30.0
    strength = 30.0 * min(1.0, 0.0 if _missing(distance_atr) else float(distance_atr))
    freshness = 30.0 * max(0.0, 1.0 - (0 if _missing(age_bars) else age_bars) / max_age_bars)
    return round(kind + strength + freshness, 4)


def confluence_points(trend_agree: int, zone_overlap: int, in_value_area: int, higher_count: int) -> float:
    if higher_count <= 0:
        return 50.0
    return round(100.0 * (trend_agree + zone_overlap + in_value_area) / (3 * higher_count), 4)


def sentiment_points(direction: str, sentiment_score: float | None, confidence: float | None) -> float:
    if _missing(sentiment_score):
        return 50.0
    aligned = sentiment_score if direction == "long" else -sentiment_score
    weight = 1.0 if _missing(confidence) else float(confidence)
    return round(float(np.clip(50.0 + 0.5 * aligned * weight, 0.0, 100.0)), 4)


def zone_behaviour_points(touches: int, rejections: int, side_rejections: int, side_breaks: int) -> float:
    own = min(1.0, (rejections + 1) / (touches + 1))
    side = (side_rejections + 1) / (side_rejections + side_breaks + 2)
    return round(100.0 * (0.6 * own + 0.4 * side), 4)


# -- score ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Calibration:
    version: str
    weights: dict[str, float]
    # component -> ((bucket_low, bucket_high, points), ...); empty: points = the component itself
    points: dict[str, tuple[tuple[float, float, float], ...]] = field(default_factory=dict)

    def points_for(self, component: str, value: float) -> float:
        buckets = self.points.get(component)
        if not buckets:
            return value
        return buckets[bucket_index(value)][2]


DEFAULT_CALIBRATION = Calibration("default", DEFAULT_WEIGHTS)


def bucket_index(value: float) -> int:
    """0..4 for [0, 20), [20, 40), ..., [80, 100] (100 belongs to the last)."""
    return int(min(len(BUCKET_EDGES) - 2, max(0, math.floor(value / 20.0))))


def total_score(components: dict[str, float], calibration: Calibration = DEFAULT_CALIBRATION) -> float:
    return round(sum(calibration.weights[c] * calibration.points_for(c, components[c]) for c in COMPONENTS), 2)


# -- trade plan -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TradePlan:
    entry_price: float
    sl_price: float | None
    tp1_price: float | None
    tp2_price: float | None
    rr_tp1: float | None
    rr_tp2: float | None
    rejection: str | None  # why the plan cannot be traded, or None


def trade_plan(direction: str, entry_price: float, zone_low: float, zone_high: float, atr: float | None,
               targets: list[float], sl_buffer_atr: float, min_rr_ratio: float) -> TradePlan:
    """Entry at the zone's POC, stop beyond the zone by `sl_buffer_atr` ATRs, TP1 and TP2 at the
    next two opposing levels (`targets`, nearest first)."""
    if _missing(atr) or atr <= 0:
        return TradePlan(entry_price, None, None, None, None, None, "no ATR at the trigger bar")
    long = direction == "long"
    sl = zone_low - sl_buffer_atr * atr if long else zone_high + sl_buffer_atr * atr
    risk = entry_price - sl if long else sl - entry_price
    if risk <= 0:  # an entry at or beyond its own stop: no risk to measure a reward against
        return TradePlan(entry_price, sl, None, None, None, None,
                         f"stop loss {sl:g} not beyond the entry {entry_price:g}")
    beyond = [t for t in targets if (t > entry_price if long else t < entry_price)]
    tp1 = beyond[0] if beyond else None
    tp2 = beyond[1] if len(beyond) > 1 else None
    reward = (lambda tp: None if tp is None else round(abs(tp - entry_price) / risk, 4))
    plan = dict(entry_price=entry_price, sl_price=sl, tp1_price=tp1, tp2_price=tp2, rr_tp1=reward(tp1),
                rr_tp2=reward(tp2))
    if tp1 is None:
        return TradePlan(**plan, rejection="no opposing level beyond the entry for TP1")
    if tp2 is None:
        return TradePlan(**plan, rejection="no second opposing level for TP2")
    if plan["rr_tp2"] < min_rr_ratio:
        return TradePlan(**plan, rejection=f"risk/reward to TP2 {plan['rr_tp2']:.2f} below min_rr_ratio "
                                           f"{min_rr_ratio:g}")
    return TradePlan(**plan, rejection=None)


# -- status -----------------------------------------------------------------------------------

def decide_status(score: float, plan: TradePlan, age_bars: int, max_age_bars: int, zone_status: str | None,
                  hit_sl: bool, hit_tp1: bool, execute_threshold: float,
                  watchlist_threshold: float) -> tuple[SignalStatus, str]:
    """The status a scoring gives a pending or watchlisted signal, and why. Staleness first (a
    setup the market has left is not traded however good it was), then the plan, then the score."""
    if age_bars > max_age_bars:
        return SignalStatus.EXPIRED, f"{age_bars} bars old, more than signal_max_age_bars {max_age_bars}"
    if zone_status is not None and zone_status != "active":
        return SignalStatus.EXPIRED, f"zone {zone_status}"
    if hit_sl:
        return SignalStatus.EXPIRED, "entry passed: price reached the stop loss before the order"
    if hit_tp1:
        return SignalStatus.EXPIRED, "entry passed: price reached TP1 before the order"
    if plan.rejection:
        return SignalStatus.REJECTED, plan.rejection
    if score >= execute_threshold:
        return SignalStatus.CONFIRMED, f"score {score:.2f} >= score_threshold_execute {execute_threshold:g}"
    if score >= watchlist_threshold:
        return SignalStatus.WATCHLIST, (f"score {score:.2f} between score_threshold_watchlist "
                                        f"{watchlist_threshold:g} and score_threshold_execute {execute_threshold:g}")
    return SignalStatus.REJECTED, f"score {score:.2f} < score_threshold_watchlist {watchlist_threshold:g}"


# -- scoring a signal ------------------------------------------------------------------------

def score_signals(signals: pd.DataFrame, since: pd.DataFrame, zones: pd.DataFrame, sentiment: pd.DataFrame,
                  trading, calibration: Calibration, config) -> pd.DataFrame:
    """One row per signal: its new status, reason, plan, components and score, as of the last
    bar in `since` (or the signal's own time). signals: gold.signals_all rows; since: per
    signal_id the bars after the trigger (bars, max_high, min_low, last_close_ms); zones: the
    latest known version of each signal's zone; sentiment: gold.sentiment_scores rows. The
    scorer job and the backtester both call it."""
    since = _rows_by(since, "signal_id")
    zones = _rows_by(zones, "zone_id")
    max_break_age = config.signals.max_break_age_bars
    rows = []
    for s in signals.itertuples(index=False):
        interval_ms = INTERVAL_MS[s.interval]
        after = since(s.signal_id)
        as_of = int(after.last_close_ms) if after is not None else int(s.known_at_ms)
        zone = zones(s.zone_id)
        touches = int(zone.touches) if zone is not None else int(s.zone_touches)
        rejections = int(zone.rejections) if zone is not None else int(s.zone_rejections)
        mood = _sentiment_as_of(sentiment, s.exchange, s.symbol, as_of)
        components = {
            "zone_quality": zone_quality_points(float(zone.quality) if zone is not None else s.zone_quality),
            "bos": bos_points(s.direction, _text(s.bos_type), _text(s.bos_direction), s.bos_distance_atr,
                              None if pd.isna(s.bos_age_bars) else int(s.bos_age_bars), max_break_age),
            "confluence": confluence_points(int(s.htf_trend_agree), int(s.htf_zone_overlap),
                                            int(s.htf_in_value_area), int(s.htf_count)),
            "sentiment": sentiment_points(s.direction, mood[0], mood[1]),
            "zone_behaviour": zone_behaviour_points(touches, rejections, int(s.side_rejections),
                                                    int(s.side_breaks)),
        }
        score = total_score(components, calibration)
        plan = trade_plan(s.direction, float(s.entry_price), float(s.zone_low), float(s.zone_high),
                          None if pd.isna(s.atr) else float(s.atr), json.loads(s.target_levels or "[]"),
                          trading.sl_buffer_atr, trading.min_rr_ratio)
        long = s.direction == "long"
        hit_sl = after is not None and plan.sl_price is not None and (
            after.min_low <= plan.sl_price if long else after.max_high >= plan.sl_price)
        hit_tp1 = after is not None and plan.tp1_price is not None and (
            after.max_high >= plan.tp1_price if long else after.min_low <= plan.tp1_price)
        status, reason = decide_status(score, plan, (as_of - int(s.known_at_ms)) // interval_ms,
                                       trading.signal_max_age_bars, None if zone is None else zone.status,
                                       bool(hit_sl), bool(hit_tp1), trading.score_threshold_execute,
                                       trading.score_threshold_watchlist)
        rows.append({"signal_id": s.signal_id, "previous_status": s.status, "status": status.value,
                     "status_reason": reason, "sl_price": plan.sl_price, "tp1_price": plan.tp1_price,
                     "tp2_price": plan.tp2_price, "rr_tp1": plan.rr_tp1, "rr_tp2": plan.rr_tp2, "score": score,
                     **{f"score_{c}": float(v) for c, v in components.items()}, "sentiment_score": mood[0],
                     "scored_as_of_ms": as_of, "calibration_version": calibration.version})
    return pd.DataFrame(rows)


def _rows_by(frame: pd.DataFrame, key: str):
    """A lookup of the frame's row by its `key` column (None when absent), as `.loc` on that
    index reads it; with unique keys a dict of the rows' named tuples (`.loc` per signal costs
    tens of microseconds, a backtest asks thousands of times)."""
    if not len(frame):
        return lambda value: None
    plain_names = all(isinstance(c, str) and c.isidentifier() and not keyword.iskeyword(c) and not c.startswith("_")
                      for c in frame.columns)  # named tuples keep them as they are
    if plain_names and frame[key].notna().all() and frame[key].is_unique:
        rows = dict(zip(frame[key], frame.itertuples(index=False)))
        return rows.get
    indexed = frame.set_index(key)
    return lambda value: indexed.loc[value] if value in indexed.index else None


def _text(value) -> str | None:
    return None if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _sentiment_as_of(sentiment: pd.DataFrame, exchange: str, symbol: str, as_of_ms: int):
    if sentiment.empty:
        return None, None
    known = sentiment[(sentiment.exchange == exchange) & (sentiment.symbol == symbol)
                      & (sentiment.known_at_ms <= as_of_ms)]
    if known.empty:
        return None, None
    latest = known.sort_values("known_at_ms").iloc[-1]
    return float(latest.sentiment_score), None if pd.isna(latest.confidence) else float(latest.confidence)


# -- calibration ------------------------------------------------------------------------------

def calibrate(trades: pd.DataFrame, source: str) -> tuple[Calibration | None, pd.DataFrame]:
    """trades: one row per closed trade with `score_<component>` for each component, `r_multiple`
    and `entry_time_ms`. Returns the calibration (None below MIN_CALIBRATION_TRADES) and its
    rows for gold.scorer_calibration (per component and bucket)."""
    trades = trades.dropna(subset=["r_multiple", *[f"score_{c}" for c in COMPONENTS]])
    if len(trades) < MIN_CALIBRATION_TRADES:
        return None, pd.DataFrame()
    wins = trades["r_multiple"] > 0
    overall = float(wins.mean())
    correlations = {c: _rank_correlation(trades[f"score_{c}"], trades["r_multiple"]) for c in COMPONENTS}
    positive = {c: max(0.0, v) for c, v in correlations.items()}
    total = sum(positive.values())
    weights = {c: round(v / total, 6) for c, v in positive.items()} if total > 0 else dict(DEFAULT_WEIGHTS)
    measured = ["entry_time_ms", "r_multiple", *[f"score_{c}" for c in COMPONENTS]]
    # The version names the set of trades, whatever order they were read in.
    digest = hashlib.sha256(pd.util.hash_pandas_object(
        trades[measured].sort_values(measured, kind="mergesort").reset_index(drop=True),
        index=False).values.tobytes()).hexdigest()[:16]
    version = f"cal-{digest}"
    points: dict[str, tuple] = {}
    rows = []
    for component in COMPONENTS:
        buckets = trades[f"score_{component}"].map(bucket_index)
        component_points = []
        for index in range(len(BUCKET_EDGES) - 1):
            low, high = BUCKET_EDGES[index], BUCKET_EDGES[index + 1]
            in_bucket = buckets == index
            count = int(in_bucket.sum())
            win_rate = float(wins[in_bucket].mean()) if count else None
            avg_r = float(trades.loc[in_bucket, "r_multiple"].mean()) if count else None
            shrunk = (float(wins[in_bucket].sum()) + SHRINK_TRADES * overall) / (count + SHRINK_TRADES)
            bucket_points = round(win_rate_points(shrunk, overall), 4)
            component_points.append((low, high, bucket_points))
            rows.append({"calibration_version": version, "component": component, "bucket": f"{low:g}-{high:g}",
                         "bucket_low": low, "bucket_high": high, "trades": count, "win_rate": win_rate,
                         "avg_r": avg_r, "points": bucket_points, "weight": weights[component],
                         "data_start_ms": int(trades.entry_time_ms.min()),
                         "data_end_ms": int(trades.entry_time_ms.max()), "source": source})
        points[component] = tuple(component_points)
    return Calibration(version, weights, points), pd.DataFrame(rows)


def win_rate_points(win_rate: float, overall: float) -> float:
    """0-100 with 50 at the overall win rate: 0 at never winning, 100 at always."""
    if win_rate >= overall:
        return 50.0 if overall >= 1.0 else 50.0 + 50.0 * (win_rate - overall) / (1.0 - overall)
    return 50.0 * win_rate / overall


def calibration_from_rows(rows: pd.DataFrame) -> Calibration:
    """A stored calibration (the rows of one version) back into a Calibration."""
    weights = rows.groupby("component")["weight"].first().to_dict()
    points = {c: tuple((r.bucket_low, r.bucket_high, r.points) for r in group.sort_values("bucket_low").itertuples())
              for c, group in rows.groupby("component")}
    return Calibration(str(rows["calibration_version"].iloc[0]), {c: float(weights[c]) for c in COMPONENTS}, points)


def score_report(trades: pd.DataFrame) -> pd.DataFrame:
    """Realised win rate and average R per bucket of the total score: does a higher score win more?"""
    scored = trades.dropna(subset=["score", "r_multiple"])
    buckets = scored["score"].map(bucket_index)
    rows = []
    for index in range(len(BUCKET_EDGES) - 1):
        chosen = scored[buckets == index]
        rows.append({"score_bucket": f"{BUCKET_EDGES[index]:g}-{BUCKET_EDGES[index + 1]:g}", "trades": len(chosen),
                     "win_rate": float((chosen.r_multiple > 0).mean()) if len(chosen) else None,
                     "avg_r": float(chosen.r_multiple.mean()) if len(chosen) else None})
    return pd.DataFrame(rows)


def _rank_correlation(x: pd.Series, y: pd.Series) -> float:
    if x.nunique() < 2 or y.nunique() < 2:
        return 0.0
    value = x.rank().corr(y.rank())
    return 0.0 if _missing(value) else float(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA
