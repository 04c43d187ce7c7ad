"""Scenario tables for the backtester's fills (`trade_through_bars` over `FillBars`, the paper
exchange's `paper_bar` rules): a limit never touched, touched exactly, a gap through the stop,
the stop and TP1 in one bar (the stop, unless 1m bars say TP1 came first), TP1 -> breakeven ->
TP2, commission and slippage to the cent. A long at 100, stop 98, TP1 104, TP2 108, 1 unit;
maker 0.02 %, taker 0.05 %, slippage 2 bps on the stop."""
from decimal import Decimal as D

import pandas as pd
import pytest

from common.backtest.engine import FillBars, trade_through_bars
from common.trade.lifecycle import Costs, TradeState, new_trade, trade_result
from common.trade.sizing import MarketRules

RULES = MarketRules(amount_step=D("0.001"), price_step=D("0.01"), min_amount=D("0.001"), min_notional=D("5"))
COSTS = Costs(maker_fee_pct=D("0.02"), taker_fee_pct=D("0.05"), slippage_bps=D("2"))
M15, M1 = 15 * 60_000, 60_000
TIMEOUT_BARS = 3


def bars(rows, length_ms=M15):
    """rows: (open, high, low) from t = 0, one bar each length_ms."""
    return FillBars.from_frame(pd.DataFrame(
        [{"open_time_ms": n * length_ms, "close_time_ms": (n + 1) * length_ms - 1, "open": o, "high": h, "low": l}
         for n, (o, h, l) in enumerate(rows)]))


def trade_on(fill_bars, timeout_bars=TIMEOUT_BARS):
    trade = new_trade("t", "long", D(100), D(98), D(104), D(108), D(1))
    return trade_through_bars(trade, fill_bars, 0, COSTS, RULES, D(50), True, timeout_bars)


ABOVE = (101, 101.5, 100.5)  # never reaches the limit at 100
SCENARIOS = [
    # name, 15m bars, state, exit reason, net P&L, the bar the trade ended on
    ("limit never touched: cancelled after the timeout", [ABOVE] * 5, TradeState.CANCELLED, None, None, 2),
    ("limit touched exactly, then TP1, breakeven, TP2", [(101, 101.5, 100), (101, 104, 100.5), (105, 108, 104)],
     TradeState.CLOSED, "take_profit_2", D("5.9588"), 2),
    # 2 + 4 = 6 gross; fees 0.02 % of 100 + 52 + 54 = 0.0412
    ("gap through the stop: the open, less slippage", [(101, 101.5, 99.9), (97, 97.5, 96)],
     TradeState.CLOSED, "stop_loss", D("-3.0878903"), 1),
    # exit 97 x (1 - 0.0002) = 96.9806; -3.0194 gross; fees 0.02 + 0.0484903
    ("stop and TP1 in one bar: the stop", [(101, 101.5, 99.9), (100, 105, 97)],
     TradeState.CLOSED, "stop_loss", D("-2.0885902"), 1),
    # exit 98 x (1 - 0.0002) = 97.9804; -2.0196 gross; fees 0.02 + 0.0489902
]


@pytest.mark.parametrize("name, rows, state, reason, net, ended_bar", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_fills_on_the_timeframe_bars(name, rows, state, reason, net, ended_bar):
    trade, ended_ms = trade_on(bars(rows))
    assert trade.state is state
    assert ended_ms == (ended_bar + 1) * M15 - 1
    if state is TradeState.CANCELLED:
        assert trade.fills == ()
        return
    result = trade_result(trade)
    assert (result.exit_reason, result.net_pnl) == (reason, net)
    assert result.net_pnl == result.gross_pnl - sum(f.fee for f in trade.fills)


def minutes_of(rows_15m, minute_rows_of_bar):
    """1m bars for 15m bars: each 15m bar flat at its open, except the ones given minute by minute."""
    rows = []
    for n, (o, _, _) in enumerate(rows_15m):
        rows += minute_rows_of_bar.get(n, [(o, o, o)] * 15)
    return bars(rows, M1)


def test_one_minute_bars_resolve_a_bar_that_reaches_the_stop_and_tp1():
    rows = [(101, 101.5, 99.9), (100, 105, 97)]
    on_15m, _ = trade_on(bars(rows))
    assert trade_result(on_15m).exit_reason == "stop_loss"  # without 1m bars: the stop first
    # Inside the second bar TP1 came first, then the fall to 97 took the breakeven stop.
    second = [(100, 100.5, 100)] * 4 + [(101, 105, 101)] + [(104, 104, 102)] * 5 + [(100.5, 100.5, 97)] * 5
    entry = [(101, 101.5, 101)] * 14 + [(100, 100, 99.9)]
    minutes = minutes_of(rows, {0: entry, 1: second})
    assert minutes.bar_ms == M1
    trade, ended_ms = trade_on(minutes, TIMEOUT_BARS * M15 // M1)
    result = trade_result(trade)
    assert result.exit_reason == "breakeven_stop" and result.tp1_hit
    # The breakeven stop at 100.08 covers the fees; its fill is 2 bps worse: 100.08 x 0.9998.
    assert [(f.leg, f.price) for f in trade.fills] == [("entry", D(100)), ("tp1", D(104)), ("sl", D("100.059984"))]
    assert ended_ms == M15 + 10 * M1 + M1 - 1  # the minute that fell through the breakeven stop
