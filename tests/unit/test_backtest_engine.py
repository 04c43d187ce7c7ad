"""The backtest of one series on the sample: the live analytics, strategies, scorer, sizing
and paper fill model called over history. The books balance to the cent, nothing is traded
before it was known, and cutting the history short changes nothing that happened before the cut
(the prefix-replay test of the setups' confluence across timeframes, among the rest)."""
from decimal import Decimal

import pandas as pd
import pytest

from common.analytics.series import AnalyticsParams
from common.backtest.engine import backtest_series
from common.config import load_config
from common.intervals import INTERVAL_MS
from common.strategies import ScanParams
from common.trading_config import default_rows, parse_trading_config
from tests.sample_series import sample_series


@pytest.fixture(scope="module")
def sample():
    return sample_series()


@pytest.fixture(scope="module")
def setting():
    config = load_config()
    trading = parse_trading_config({r["param_name"]: r["param_value"] for r in default_rows()})
    return config, trading


def run(sample, setting, interval="15m", until_ms=None):
    config, trading = setting
    cut = (lambda frame: frame) if until_ms is None else (lambda frame: frame[frame.close_time_ms <= until_ms])
    others = {i: (cut(b), AnalyticsParams.from_config(config.analytics, i)) for i, b in sample.items() if i not in ("1m", interval)}
    return backtest_series("binance", "BTCUSDT", interval, INTERVAL_MS[interval], cut(sample[interval]),
                           AnalyticsParams.from_config(config.analytics, interval), ScanParams.from_config(config.signals), trading, config,
                           minute_bars=cut(sample["1m"]), other_intervals=others)


def test_the_books_balance_and_nothing_is_traded_before_it_was_known(sample, setting):
    result = run(sample, setting)
    assert {"confirmed", "watchlist", "rejected"} <= set(result.signals.status)
    assert len(result.trades) >= 1
    trades = result.trades
    known = result.signals.set_index("signal_id").known_at_ms
    assert (trades.entry_time_ms > trades.signal_id.map(known)).all()  # filled after the setup's close
    assert (trades.exit_time_ms >= trades.entry_time_ms).all()
    assert all(t.net_pnl == t.pnl - t.fees for t in trades.itertuples())
    final = Decimal(str(result.equity.iloc[-1]))
    assert abs(final - (Decimal(10_000) + sum(trades.net_pnl, Decimal(0)))) < Decimal("0.000001")


def test_a_shorter_history_changes_nothing_before_its_end(sample, setting):
    full = run(sample, setting)
    cut_ms = int(sample["15m"].close_time_ms.iloc[len(sample["15m"]) * 2 // 3])
    short = run(sample, setting, until_ms=cut_ms)
    before = full.signals[full.signals.known_at_ms <= cut_ms].reset_index(drop=True)
    # The setups, their confluence across timeframes (the other intervals cut too) and their scores.
    columns = ["signal_id", "status", "score", "htf_trend_agree", "htf_zone_overlap", "htf_in_value_area", "htf_count"]
    assert before.htf_count.gt(0).any() and before.htf_trend_agree.gt(0).any()
    pd.testing.assert_frame_equal(short.signals[columns].reset_index(drop=True), before[columns])
    done = full.trades[full.trades.exit_time_ms <= cut_ms].reset_index(drop=True)
    pd.testing.assert_frame_equal(short.trades[short.trades.exit_time_ms <= cut_ms].reset_index(drop=True), done)
