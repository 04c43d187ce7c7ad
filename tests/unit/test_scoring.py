"""The scorer's maths on hand-computed cases: components, thresholds at their boundaries, the
plan and its risk/reward, expiry, and a calibration over a known set of trades."""
import numpy as np
import pandas as pd
import pytest

from common.scoring import (
    COMPONENTS, DEFAULT_CALIBRATION, MIN_CALIBRATION_TRADES, TradePlan, bos_points, calibrate,
    calibration_from_rows, confluence_points, decide_status, score_report, sentiment_points, total_score,
    trade_plan, win_rate_points, zone_behaviour_points, zone_quality_points,
)
from common.signal_status import IllegalTransition, SignalStatus, check_transition

GOOD_PLAN = TradePlan(100.0, 98.0, 104.0, 106.0, 2.0, 3.0, None)


def test_components_by_hand():
    assert zone_quality_points(73.5) == 73.5 and zone_quality_points(None) == 0.0
    # BOS 40 + strength 30 * 0.5 + freshness 30 * (1 - 5/50)
    assert bos_points("long", "BOS", "bullish", 0.5, 5, 50) == pytest.approx(40 + 15 + 27)
    assert bos_points("short", "CHOCH", "bearish", 2.0, 0, 50) == pytest.approx(30 + 30 + 30)
    assert bos_points("long", "BOS", "bearish", 1.0, 0, 50) == 10.0  # against the signal
    assert bos_points("long", None, None, None, None, 50) == 25.0  # none known
    assert confluence_points(2, 1, 0, 2) == pytest.approx(50.0)  # 3 of 6 agreements
    assert confluence_points(0, 0, 0, 0) == 50.0
    assert sentiment_points("long", 40.0, 0.5) == pytest.approx(60.0)
    assert sentiment_points("short", 40.0, 1.0) == pytest.approx(30.0)
    assert sentiment_points("long", None, None) == 50.0  # missing: neutral, not invented
    # own (1 + 1) / (2 + 1) = 2/3, side (3 + 1) / (3 + 1 + 2) = 2/3
    assert zone_behaviour_points(2, 1, 3, 1) == pytest.approx(100 * 2 / 3, abs=1e-3)


def test_default_score_is_the_weighted_sum():
    components = {"zone_quality": 80.0, "bos": 60.0, "confluence": 50.0, "sentiment": 50.0, "zone_behaviour": 70.0}
    assert total_score(components) == pytest.approx(0.25 * 80 + 0.2 * 60 + 0.2 * 50 + 0.15 * 50 + 0.2 * 70)
    assert DEFAULT_CALIBRATION.version == "default"


@pytest.mark.parametrize("score, status", [
    (49.99, SignalStatus.REJECTED), (50.0, SignalStatus.WATCHLIST), (69.99, SignalStatus.WATCHLIST),
    (70.0, SignalStatus.CONFIRMED),
])
def test_thresholds_at_their_exact_boundaries(score, status):
    assert decide_status(score, GOOD_PLAN, 0, 3, "active", False, False, 70.0, 50.0)[0] is status


def test_the_plan_from_the_zone_and_the_targets():
    plan = trade_plan("long", 101.0, 100.0, 102.0, 2.0, [103.0, 110.0, 120.0], 0.25, 2.0)
    assert (plan.sl_price, plan.tp1_price, plan.tp2_price) == (99.5, 103.0, 110.0)
    assert (plan.rr_tp1, plan.rr_tp2, plan.rejection) == (pytest.approx(2 / 1.5, abs=1e-4), 6.0, None)
    short = trade_plan("short", 101.0, 100.0, 102.0, 2.0, [95.0, 90.0], 0.5, 2.0)
    assert (short.sl_price, short.tp1_price, short.tp2_price, short.rr_tp2) == (103.0, 95.0, 90.0, 5.5)


def test_a_plan_below_min_rr_is_rejected_with_that_reason():
    plan = trade_plan("long", 101.0, 100.0, 102.0, 2.0, [102.5, 103.0], 0.25, 2.0)  # rr to TP2 = 2/1.5
    status, reason = decide_status(90.0, plan, 0, 3, "active", False, False, 70.0, 50.0)
    assert status is SignalStatus.REJECTED and reason == "risk/reward to TP2 1.33 below min_rr_ratio 2"
    one_target = trade_plan("long", 101.0, 100.0, 102.0, 2.0, [110.0], 0.25, 2.0)
    assert one_target.rejection == "no second opposing level for TP2"


@pytest.mark.parametrize("age, zone_status, hit_sl, hit_tp1, reason", [
    (4, "active", False, False, "4 bars old, more than signal_max_age_bars 3"),
    (1, "broken", False, False, "zone broken"),
    (1, "active", True, False, "entry passed: price reached the stop loss before the order"),
    (1, "active", False, True, "entry passed: price reached TP1 before the order"),
])
def test_expiry_comes_before_the_score(age, zone_status, hit_sl, hit_tp1, reason):
    assert decide_status(99.0, GOOD_PLAN, age, 3, zone_status, hit_sl, hit_tp1, 70.0, 50.0) == (
        SignalStatus.EXPIRED, reason)
    assert decide_status(99.0, GOOD_PLAN, 3, 3, "active", False, False, 70.0, 50.0)[0] is SignalStatus.CONFIRMED


def test_only_legal_transitions():
    check_transition("s", "pending", "watchlist")
    check_transition("s", "watchlist", "confirmed")
    with pytest.raises(IllegalTransition, match="rejected -> confirmed"):
        check_transition("s", "rejected", "confirmed")
    with pytest.raises(IllegalTransition):
        check_transition("s", "confirmed", "watchlist")


def known_trades():
    """40 trades: zone quality predicts the outcome (high wins), sentiment is noise against it."""
    rows = []
    for n in range(40):
        high = n % 2 == 0
        rows.append({"entry_time_ms": n * 1000, "r_multiple": 2.0 if high else -1.0,
                     "score_zone_quality": 90.0 if high else 10.0, "score_bos": 50.0,
                     "score_confluence": 50.0, "score_sentiment": 10.0 if high else 90.0,
                     "score_zone_behaviour": 50.0, "score": 70.0 if high else 30.0})
    return pd.DataFrame(rows)


def test_calibration_on_a_known_set_of_trades():
    calibration, rows = calibrate(known_trades(), "backtest")
    # Only zone quality correlates positively with R: it takes all the weight.
    assert calibration.weights == {"zone_quality": 1.0, "bos": 0.0, "confluence": 0.0, "sentiment": 0.0,
                                   "zone_behaviour": 0.0}
    quality = rows[rows.component == "zone_quality"].set_index("bucket")
    # 20 wins in 80-100: (20 + 10 * 0.5) / (20 + 10) = 83.33 %; 20 losses in 0-20: 5 / 30 = 16.67 %.
    assert quality.loc["80-100", "trades"] == 20 and quality.loc["80-100", "win_rate"] == 1.0
    assert quality.loc["80-100", "points"] == pytest.approx(83.3333, abs=1e-3)
    assert quality.loc["0-20", "points"] == pytest.approx(16.6667, abs=1e-3)
    assert quality.loc["40-60", "trades"] == 0 and quality.loc["40-60", "points"] == pytest.approx(50.0)
    assert quality.loc["80-100", "avg_r"] == 2.0
    assert set(rows.component) == set(COMPONENTS) and len(rows) == 25
    components = {"zone_quality": 95.0, "bos": 0.0, "confluence": 0.0, "sentiment": 0.0, "zone_behaviour": 0.0}
    assert total_score(components, calibration) == pytest.approx(83.33, abs=0.01)
    assert calibration_from_rows(rows) == calibration  # stored and read back: the same
    assert calibrate(known_trades(), "backtest")[0].version == calibration.version  # deterministic


def test_calibrated_points_keep_the_thresholds_scale_whatever_the_overall_win_rate():
    """A strategy that wins 25 % of the time at 3 R: a bucket at that rate is worth 50 (average),
    not 25, so the default thresholds still mean what they say."""
    trades = known_trades()
    trades["r_multiple"] = [3.0 if n % 4 == 0 else -1.0 for n in range(len(trades))]
    trades["score_zone_quality"] = 50.0  # one bucket, at the overall rate
    calibration, rows = calibrate(trades, "backtest")
    quality = rows[rows.component == "zone_quality"].set_index("bucket")
    assert quality.loc["40-60", "win_rate"] == 0.25 and quality.loc["40-60", "points"] == 50.0
    assert win_rate_points(0.125, 0.25) == 25.0 and win_rate_points(0.625, 0.25) == 75.0
    assert win_rate_points(0.0, 0.25) == 0.0 and win_rate_points(1.0, 0.25) == 100.0


def test_the_calibration_version_names_the_trades_not_their_order():
    trades = known_trades()
    trades["entry_time_ms"] = 0  # ties on time: order decided by nothing else
    first = calibrate(trades, "backtest")[0].version
    assert calibrate(trades.sample(frac=1.0, random_state=7), "backtest")[0].version == first
    changed = trades.assign(r_multiple=trades.r_multiple.where(trades.index != 3, 0.5))
    assert calibrate(changed, "backtest")[0].version != first


def test_a_plan_whose_stop_is_not_beyond_the_entry_is_rejected():
    plan = trade_plan("long", 99.0, 100.0, 102.0, 1.0, [105.0, 110.0], sl_buffer_atr=0.0, min_rr_ratio=1.5)
    assert plan.rejection == "stop loss 100 not beyond the entry 99" and plan.rr_tp1 is None


def test_no_calibration_from_too_few_trades():
    calibration, rows = calibrate(known_trades().head(MIN_CALIBRATION_TRADES - 1), "backtest")
    assert calibration is None and rows.empty


def test_report_of_win_rate_per_score_bucket():
    report = score_report(known_trades()).set_index("score_bucket")
    assert report.loc["60-80", "win_rate"] == 1.0 and report.loc["20-40", "win_rate"] == 0.0
    assert report.loc["80-100", "trades"] == 0 and np.isnan(report.loc["80-100", "avg_r"])
