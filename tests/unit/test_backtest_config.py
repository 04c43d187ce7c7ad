"""The backtest's configuration: overrides, their checks, and the walk-forward windows."""
import pytest

from common.config import ConfigError
from common.backtest.backtesting import BacktestConfig, Window, walk_forward_windows

DAY = 86_400_000


def test_walk_forward_windows_roll_by_the_test_span_and_stop_at_the_data():
    windows = walk_forward_windows(0, 10 * DAY - 1, train_days=4, test_days=3)
    assert windows == [Window("wf1", 0, 4 * DAY, 7 * DAY), Window("wf2", 3 * DAY, 7 * DAY, 10 * DAY)]
    # Test windows follow each other without a gap or an overlap: every bar is tested once.
    assert all(a.test_end_ms == b.test_start_ms for a, b in zip(windows, windows[1:]))


def test_walk_forward_needs_more_data_than_one_train_window():
    with pytest.raises(ConfigError, match="not more than one train window"):
        walk_forward_windows(0, 3 * DAY, train_days=4, test_days=1)
    with pytest.raises(ConfigError, match="must be positive"):
        walk_forward_windows(0, 30 * DAY, train_days=0, test_days=1)


def test_overrides_are_typed_and_checked_with_the_trading_rules():
    config = BacktestConfig.load(overrides=["symbols=BTCUSDT, ETHUSDT", "risk_per_trade_pct=0.5",
                                            "walk_forward_test_days=7"])
    assert config.values["symbols"] == ["BTCUSDT", "ETHUSDT"] and config.values["walk_forward_test_days"] == 7
    assert config.trading().risk_per_trade_pct == 0.5
    with pytest.raises(ConfigError, match="unknown keys"):
        BacktestConfig.load(overrides=["risk_per_trade=1"])
    with pytest.raises(ConfigError):
        BacktestConfig.load(overrides=["score_threshold_watchlist=90", "score_threshold_execute=80"])
