"""The backtest metrics against empyrical (the oracle, a test dependency only) on generated
daily return series, and the edge cases: no trades, all winners, no losing day."""
import math

import empyrical
import numpy as np
import pandas as pd
import pytest

from common.backtest.metrics import (
    DAY_MS, cagr, calmar, compute_metrics, daily_returns, max_drawdown, max_drawdown_duration_days, sharpe,
    sortino,
)

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def curve(returns, start=10_000.0, intraday=False):
    """An equity curve (epoch ms index) whose daily closes give these returns."""
    values = start * np.cumprod(np.concatenate(([1.0], 1 + np.asarray(returns))))
    times = [T0 + n * DAY_MS + (DAY_MS - 1 if intraday else 0) for n in range(len(values))]
    return pd.Series(values, index=times)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_ratios_agree_with_empyrical_on_generated_returns(seed):
    rng = np.random.default_rng(seed)
    generated = rng.normal(0.001, 0.02, size=400)
    returns = daily_returns(curve(generated))
    assert np.allclose(returns.to_numpy(), generated)
    assert sharpe(returns) == pytest.approx(empyrical.sharpe_ratio(returns, annualization=365))
    assert sortino(returns) == pytest.approx(empyrical.sortino_ratio(returns, annualization=365))
    assert cagr(returns) == pytest.approx(empyrical.annual_return(returns, annualization=365))
    assert max_drawdown(returns) == pytest.approx(empyrical.max_drawdown(returns))
    assert calmar(returns) == pytest.approx(empyrical.calmar_ratio(returns, annualization=365))


def test_several_points_a_day_count_as_the_days_last_and_quiet_days_carry_over():
    equity = pd.Series({T0: 100.0, T0 + 3_600_000: 120.0, T0 + 5_000_000: 110.0,  # day 1 closes at 110
                        T0 + 3 * DAY_MS: 121.0})  # days 2 and 3: unchanged; day 4: +10 %
    assert daily_returns(equity).round(10).tolist() == [0.0, 0.0, 0.1]


def test_no_losing_day_has_an_infinite_sortino_and_no_drawdown():
    returns = daily_returns(curve([0.01, 0.02, 0.0, 0.01]))
    assert sortino(returns) == math.inf and max_drawdown(returns) == 0.0 and calmar(returns) is None


def test_drawdown_duration_runs_from_the_peak_to_the_recovery_or_the_end():
    days = pd.date_range("2026-01-01", periods=8, freq="D", tz="UTC")
    assert max_drawdown_duration_days(pd.Series([100, 110, 100, 105, 111, 111, 90, 95], index=days)) == 3
    assert max_drawdown_duration_days(pd.Series([100, 110, 100, 105, 112, 100, 100, 100], index=days)) == 3
    assert max_drawdown_duration_days(pd.Series([100, 90, 80, 70, 60, 50, 40, 30], index=days)) == 7


def trades(pnls, rs):
    return pd.DataFrame({"net_pnl": pnls, "r_multiple": rs,
                         "entry_time_ms": [T0 + n * DAY_MS for n in range(len(pnls))],
                         "exit_time_ms": [T0 + n * DAY_MS + 12 * 3_600_000 for n in range(len(pnls))]})


def test_trade_statistics():
    closed = trades([100.0, -50.0, -25.0, 200.0, 10.0, -5.0], [2.0, -1.0, -0.5, 4.0, 0.2, -0.1])
    equity = curve([0.01, -0.005, -0.0025, 0.02, 0.001, -0.0005])
    metrics = compute_metrics(equity, closed)
    assert (metrics.trades, metrics.win_rate, metrics.max_consecutive_wins, metrics.max_consecutive_losses) == (
        6, 0.5, 2, 2)
    assert metrics.profit_factor == pytest.approx(310 / 80)
    assert metrics.expectancy == pytest.approx(230 / 6) and metrics.avg_r == pytest.approx(4.6 / 6)
    assert metrics.avg_hold_minutes == 720.0
    assert metrics.exposure_pct == pytest.approx(100.0 * 6 * 12 / (6 * 24))


def test_all_winners_have_no_profit_factor_and_no_trades_have_no_trade_statistics():
    winners = compute_metrics(curve([0.01, 0.01]), trades([10.0, 20.0], [1.0, 2.0]))
    assert (winners.win_rate, winners.profit_factor, winners.max_consecutive_losses) == (1.0, None, 0)
    idle = compute_metrics(curve([0.0, 0.0, 0.0]), trades([], []))
    assert (idle.trades, idle.win_rate, idle.expectancy, idle.exposure_pct, idle.total_return_pct) == (
        0, None, None, 0.0, 0.0)
    assert idle.sharpe is None and idle.sortino is None and idle.max_drawdown_pct == 0.0
