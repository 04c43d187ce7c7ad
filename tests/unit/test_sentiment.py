"""Sentiment: each component by hand, missing inputs lowering the confidence, nothing invented."""
import math

import numpy as np
import pandas as pd
import pytest

from common.analytics.sentiment import SentimentParams, sentiment_scores

H = 3_600_000
PARAMS = SentimentParams(period_ms=H, funding_window=30, change_window=4)


def market(rows):
    return pd.DataFrame(rows, columns=["ts_ms", "metric", "value"])


def closes(prices, start=0):
    return pd.DataFrame({"close_time_ms": [start + (i + 1) * H - 1 for i in range(len(prices))], "close": prices})


def test_long_short_ratio_alone_is_contrarian_with_its_confidence():
    scores = sentiment_scores(market([(0, "long_short_ratio", 2.0)]), closes([]), PARAMS)
    row = scores.iloc[0]
    assert row.sentiment_score == pytest.approx(-100 * math.tanh(2 * math.log(2.0)), abs=1e-3)
    assert row.confidence == 0.25 and row.label == "bearish" and row.known_at_ms == H
    assert np.isnan(row.funding_zscore) and np.isnan(row.taker_buy_ratio)


def test_taker_buy_ratio_is_buying_pressure_and_adds_its_weight_to_the_confidence():
    alone = sentiment_scores(market([(0, "taker_buy_ratio", 0.5)]), closes([]), PARAMS).iloc[0]
    assert alone.sentiment_score == pytest.approx(100 * math.tanh(2 * math.log(0.5)), abs=1e-3)  # sellers: -88
    assert alone.confidence == 0.15 and alone.label == "bearish" and alone.taker_buy_ratio == 0.5

    without = sentiment_scores(market([(0, "long_short_ratio", 2.0)]), closes([]), PARAMS).iloc[0]
    with_taker = sentiment_scores(market([(0, "long_short_ratio", 2.0), (0, "taker_buy_ratio", 1.5)]), closes([]),
                                  PARAMS).iloc[0]
    long_short, taker = -math.tanh(2 * math.log(2.0)), math.tanh(2 * math.log(1.5))
    assert with_taker.confidence == 0.40 and without.confidence == 0.25
    assert with_taker.sentiment_score == pytest.approx(100 * (0.25 * long_short + 0.15 * taker) / 0.40, abs=1e-3)
    assert with_taker.sentiment_score > without.sentiment_score  # takers buying soften the crowded longs


def test_a_taker_buy_ratio_that_is_not_positive_is_no_input():
    rows = [(0, "long_short_ratio", 2.0), (0, "taker_buy_ratio", 0.0)]
    row = sentiment_scores(market(rows), closes([]), PARAMS).iloc[0]
    assert row.confidence == 0.25
    assert row.sentiment_score == pytest.approx(-100 * math.tanh(2 * math.log(2.0)), abs=1e-3)


def test_rising_price_with_rising_open_interest_is_bullish():
    rows = [(t * H, "open_interest", 1000 + 10 * t) for t in range(6)]
    prices = [100, 100.5, 101, 101.5, 102, 102.5, 103]
    scores = sentiment_scores(market(rows), closes(prices), PARAMS)
    last = scores.iloc[-1]  # ts 5h, known at 6h: price 102.5 (close at 6h-1) vs 100.5 (at 2h-1): +1.99 %
    assert last.open_interest_change_pct == pytest.approx((1050 / 1010 - 1) * 100)
    assert last.price_change_pct == pytest.approx((102.5 / 100.5 - 1) * 100)
    assert last.sentiment_score == pytest.approx(100.0) and last.confidence == 0.30
    # Before four periods of history, no change can be measured: no row is invented.
    assert len(scores) == 2


def test_funding_far_above_its_history_is_bearish_and_all_inputs_give_full_confidence_but_taker():
    rows = [(t * 8 * H, "funding_rate", 0.0001 * (1 + (t % 2))) for t in range(10)]
    rows.append((10 * 8 * H, "funding_rate", 0.001))
    scores = sentiment_scores(market(rows), closes([]), PARAMS)
    last = scores.iloc[-1]
    assert last.funding_zscore > 2 and last.sentiment_score < -75 and last.confidence == 0.30
    history = [0.0001 * (1 + (t % 2)) for t in range(10)] + [0.001]
    assert last.funding_zscore == pytest.approx((0.001 - np.mean(history)) / np.std(history))


def test_rows_never_use_later_data():
    rows = [(t * H, "open_interest", 1000 + 10 * t) for t in range(10)] + [(t * H, "long_short_ratio", 1.2)
                                                                         for t in range(10)]
    prices = list(np.linspace(100, 110, 12))
    whole = sentiment_scores(market(rows), closes(prices), PARAMS)
    for end in range(3, 10):
        prefix = sentiment_scores(market([r for r in rows if r[0] < end * H]),
                                  closes([p for i, p in enumerate(prices) if (i + 1) * H - 1 <= end * H]), PARAMS)
        pd.testing.assert_frame_equal(prefix, whole.iloc[:len(prefix)].reset_index(drop=True))


def test_no_market_data_no_rows():
    assert sentiment_scores(market([]), closes([100]), PARAMS).empty
