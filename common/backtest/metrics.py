"""Backtest metrics, with their definitions. Pure: an equity curve and the closed trades in,
numbers out. The ratios follow empyrical's definitions on the same daily returns (the tests
hold them to empyrical, which is a test dependency only).

Returns: the equity curve resampled to UTC days (each day's last equity, carried over days
without a change), from the day of the first point to the day of the last; the daily return
is the day's change over the day before. Crypto trades every day: a year is 365 daily returns.
- CAGR (annual return): (final / initial) ^ (365 / number of daily returns) - 1.
- Sharpe: mean daily return / standard deviation of the daily returns (n - 1) x sqrt(365).
- Sortino: mean daily return x 365 / downside deviation, the downside deviation being
  sqrt(mean over ALL days of min(return, 0)^2) x sqrt(365). No losing day: infinite.
- Max drawdown: the deepest fall of the daily equity below its running peak, as a (negative)
  fraction; its duration: the longest time in days from a peak to the day equity is back at
  it (or to the end, if it never is).
- Calmar: CAGR / |max drawdown| (None without a drawdown).
Trades (net of fees):
- win rate: winners (net P&L > 0) / trades; profit factor: gross profit / gross loss (None
  without a losing trade); expectancy: mean net P&L per trade; average R; average hold time;
  the longest runs of winners and of losers; exposure: the share of the curve's time span
  with at least one position open.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

DAYS_PER_YEAR = 365
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Metrics:
    total_return_pct: float
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown_pct: float
    max_drawdown_duration_days: float
    win_rate: float | None
    profit_factor: float | None
    expectancy: float | None
    avg_r: float | None
    avg_hold_minutes: float | None
    max_consecutive_wins: int
    max_consecutive_losses: int
    trades: int
    exposure_pct: float

    def as_dict(self) -> dict:
        return asdict(self)


def daily_equity(equity: pd.Series) -> pd.Series:
    """equity: values indexed by epoch ms (any order, any spacing) -> each UTC day's last value."""
    curve = equity.sort_index()
    days = pd.to_datetime(curve.index, unit="ms", utc=True).floor("D")
    last = curve.groupby(days).last()
    return last.reindex(pd.date_range(last.index[0], last.index[-1], freq="D")).ffill()


def daily_returns(equity: pd.Series) -> pd.Series:
    return daily_equity(equity).pct_change().dropna()


def cagr(returns: pd.Series) -> float | None:
    if returns.empty:
        return None
    growth = float((1 + returns).prod())
    return growth ** (DAYS_PER_YEAR / len(returns)) - 1 if growth > 0 else -1.0


def sharpe(returns: pd.Series) -> float | None:
    if len(returns) < 2:
        return None
    deviation = returns.std(ddof=1)
    if deviation == 0 or not np.isfinite(deviation):
        return None
    return float(returns.mean() / deviation * math.sqrt(DAYS_PER_YEAR))


def sortino(returns: pd.Series) -> float | None:
    if returns.empty:
        return None
    downside = math.sqrt(float((returns.clip(upper=0) ** 2).mean())) * math.sqrt(DAYS_PER_YEAR)
    mean = float(returns.mean()) * DAYS_PER_YEAR
    if downside == 0:
        return math.inf if mean > 0 else None
    return mean / downside


def max_drawdown(returns: pd.Series) -> float:
    """As empyrical: the curve starts at 1 before the first return."""
    if returns.empty:
        return 0.0
    curve = np.concatenate(([1.0], (1 + returns).cumprod().to_numpy()))
    return float((curve / np.maximum.accumulate(curve) - 1).min())


def max_drawdown_duration_days(equity_by_day: pd.Series) -> float:
    longest, peak_day, peak = 0, None, -math.inf
    for day, value in equity_by_day.items():
        if value >= peak:
            if peak_day is not None:
                longest = max(longest, (day - peak_day).days)
            peak, peak_day = value, day
    if peak_day is not None and len(equity_by_day) and equity_by_day.iloc[-1] < peak:
        longest = max(longest, (equity_by_day.index[-1] - peak_day).days)
    return float(longest)


def calmar(returns: pd.Series) -> float | None:
    drawdown, growth = max_drawdown(returns), cagr(returns)
    return None if drawdown == 0 or growth is None else growth / abs(drawdown)


def longest_run(flags: list[bool]) -> int:
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


def exposure(trades: pd.DataFrame, start_ms: int, end_ms: int) -> float:
    """Share of [start, end] with a position open (overlapping trades counted once)."""
    if trades.empty or end_ms <= start_ms:
        return 0.0
    covered, reach = 0, start_ms
    for entry, exit_ in sorted(zip(trades.entry_time_ms, trades.exit_time_ms)):
        entry, exit_ = max(int(entry), reach), min(int(exit_), end_ms)
        if exit_ > entry:
            covered += exit_ - entry
            reach = exit_
    return covered / (end_ms - start_ms)


def compute_metrics(equity: pd.Series, trades: pd.DataFrame) -> Metrics:
    """equity: account value indexed by epoch ms, starting with the initial capital; trades:
    closed trades with net_pnl, r_multiple, entry_time_ms, exit_time_ms (ordered by exit)."""
    by_day = daily_equity(equity)
    returns = by_day.pct_change().dropna()
    net = trades["net_pnl"].astype(float) if len(trades) else pd.Series(dtype=float)
    wins, losses = net[net > 0], net[net <= 0]
    ordered = trades.sort_values("exit_time_ms", kind="stable") if len(trades) else trades
    outcomes = [float(p) > 0 for p in ordered["net_pnl"]] if len(trades) else []
    initial, final = float(equity.sort_index().iloc[0]), float(equity.sort_index().iloc[-1])
    return Metrics(
        total_return_pct=100.0 * (final / initial - 1),
        cagr=cagr(returns), sharpe=sharpe(returns), sortino=sortino(returns), calmar=calmar(returns),
        max_drawdown_pct=100.0 * max_drawdown(returns), max_drawdown_duration_days=max_drawdown_duration_days(by_day),
        win_rate=len(wins) / len(net) if len(net) else None,
        profit_factor=float(wins.sum() / -losses[losses < 0].sum()) if (losses < 0).any() else None,
        expectancy=float(net.mean()) if len(net) else None,
        avg_r=float(trades["r_multiple"].astype(float).mean()) if len(trades) else None,
        avg_hold_minutes=float(((trades.exit_time_ms - trades.entry_time_ms) / 60_000).mean()) if len(trades) else None,
        max_consecutive_wins=longest_run(outcomes), max_consecutive_losses=longest_run([not o for o in outcomes]),
        trades=len(net),
        exposure_pct=100.0 * exposure(trades, int(equity.index.min()), int(equity.index.max())) if len(trades) else 0.0)
