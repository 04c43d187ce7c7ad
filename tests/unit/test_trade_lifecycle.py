"""Scenario tables for a trade's life on the paper exchange, hand-computed to the cent:
entry -> TP1 -> breakeven -> TP2, entry -> SL, entry -> TP1 -> breakeven stop, SL and TP1 in
one candle (stop first), a partial entry fill, a gap through the stop, entry expiry and a void
setup; and the sizing, rounding, breakeven and fee maths they rest on."""
from decimal import Decimal as D

import pytest

from common.trade.lifecycle import (
    Costs, IllegalTradeTransition, TradeState, apply_entry_fill, apply_exit_fill, cancel_entry, new_trade, paper_bar,
    trade_result,
)
from common.trade.sizing import MarketRules, breakeven_stop, position_size, round_stop, split_exits

RULES = MarketRules(amount_step=D("0.001"), price_step=D("0.01"), min_amount=D("0.001"), min_notional=D("5"))
COSTS = Costs(maker_fee_pct=D("0.02"), taker_fee_pct=D("0.05"), slippage_bps=D("2"))


def long_trade():
    return new_trade("t", "long", D(100), D(98), D(104), D(108), D(1))


def short_trade():
    return new_trade("t", "short", D(100), D(102), D(96), D(92), D(1))


def run(trade, bars, timeout=12):
    """bars: (open, high, low); returns the trade after each, the last one last."""
    for n, (o, h, l) in enumerate(bars):
        trade = paper_bar(trade, D(str(o)), D(str(h)), D(str(l)), n * 60_000, COSTS, RULES, D(50), True, timeout)
    return trade


ENTRY_BAR = (101, 101.5, 99.8)  # reaches the long's limit at 100 from above
SCENARIOS = [
    # name, bars, exit reason, net P&L, R, exit average
    ("entry, TP1, breakeven, TP2", [ENTRY_BAR, (101, 104.5, 100.5), (105, 108.2, 104)],
     "take_profit_2", D("5.9588"), 2.9794, D(106)),
    ("entry, stop loss", [ENTRY_BAR, (99.5, 99.6, 97.9)],
     "stop_loss", D("-2.0885902"), -1.0442951, D("97.9804")),
    ("entry, TP1, breakeven stop", [ENTRY_BAR, (101, 104.5, 100.5), (101, 101.2, 100.0)],
     "breakeven_stop", D("1.974577004"), 0.987288502, D("102.029992")),
    ("stop and TP1 in one candle: the stop", [ENTRY_BAR, (100, 105, 97)],
     "stop_loss", D("-2.0885902"), -1.0442951, D("97.9804")),
    ("gap through the stop: filled at the open", [ENTRY_BAR, (97, 97.5, 96)],
     "stop_loss", D("-3.0878903"), -1.54394515, D("96.9806")),
    ("stopped on the entry's own bar", [(100.5, 101, 97.5)],
     "stop_loss", D("-2.0885902"), -1.0442951, D("97.9804")),
]


@pytest.mark.parametrize("name, bars, reason, net, r, exit_average", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_long_lifecycle(name, bars, reason, net, r, exit_average):
    trade = run(long_trade(), bars)
    assert trade.state is TradeState.CLOSED
    result = trade_result(trade)
    assert (result.exit_reason, result.net_pnl, result.exit_average) == (reason, net, exit_average)
    assert result.r_multiple == pytest.approx(r)
    assert result.net_pnl == result.gross_pnl - sum(f.fee for f in trade.fills)  # to the last decimal


def test_tp1_moves_the_stop_to_breakeven_after_fees():
    trade = run(long_trade(), [ENTRY_BAR, (101, 104.5, 100.5)])
    assert trade.state is TradeState.TP1_DONE and trade.open_amount == D("0.5")
    assert trade.sl_price == D("100.08")  # 100 x 1.0002 / 0.9995 = 100.07003..., up to the tick


def test_short_lifecycle_mirrors_the_long():
    trade = run(short_trade(), [(99, 100.3, 98.8), (98, 98.5, 95.5), (95, 95.2, 91)])
    result = trade_result(trade)
    assert (result.exit_reason, result.gross_pnl) == ("take_profit_2", D(6))
    assert [f.side for f in trade.fills] == ["sell", "buy", "buy"]
    assert breakeven_stop(D(100), "short", D("0.02"), D("0.05"), RULES) == D("99.93")


def test_partial_entry_fill_sizes_the_exits_from_the_filled_amount():
    trade = apply_entry_fill(long_trade(), D(100), D("0.4"), D("0.008"), 0, RULES, D(50))
    assert (trade.state, trade.tp1_amount, trade.tp2_amount) == (TradeState.OPEN, D("0.2"), D("0.2"))
    trade = cancel_entry(trade, "entry timeout", 60_000)  # the rest of the entry order
    assert trade.state is TradeState.OPEN and trade.amount == D("0.4")
    trade = run(trade, [(101, 104.5, 100.5), (105, 108.2, 104)])
    result = trade_result(trade)
    assert (result.amount, result.gross_pnl, result.exit_reason) == (D("0.4"), D("2.4"), "take_profit_2")


def test_an_entry_not_filled_in_time_is_cancelled():
    trade = run(long_trade(), [(101, 102, 100.5)] * 3, timeout=3)
    assert (trade.state, trade.exit_reason, trade.fills) == (TradeState.CANCELLED, "entry timeout", ())
    assert run(long_trade(), [(101, 102, 100.5)] * 2, timeout=3).state is TradeState.WAITING_ENTRY


def test_an_entry_whose_tp1_is_reached_first_is_void():
    trade = run(long_trade(), [(101, 104.2, 100.5)])
    assert (trade.state, trade.exit_reason) == (TradeState.CANCELLED, "entry void: price reached TP1 first")


def test_fills_cannot_exceed_what_was_ordered_or_is_open():
    with pytest.raises(ValueError, match="exceed the order"):
        apply_entry_fill(long_trade(), D(100), D("1.5"), D(0), 0, RULES, D(50))
    opened = apply_entry_fill(long_trade(), D(100), D(1), D(0), 0, RULES, D(50))
    with pytest.raises(ValueError, match="exceeds the open amount"):
        apply_exit_fill(opened, "tp2", D(108), D(2), D(0), 0, COSTS, RULES, True)
    closed = apply_exit_fill(opened, "sl", D(98), D(1), D(0), 0, COSTS, RULES, True)
    with pytest.raises(IllegalTradeTransition):
        apply_entry_fill(replace_amount(closed), D(100), D("0.5"), D(0), 0, RULES, D(50))


def replace_amount(trade):
    from dataclasses import replace

    return replace(trade, amount=D(2))


def test_position_size_from_risk_with_its_caps_and_minimums():
    sized = position_size(D(10_000), D(1), D(100), D(98), RULES, D(3), D(300))
    assert (sized.amount, sized.notional, sized.risk_amount, sized.capped_by) == (D(50), D(5000), D(100), None)
    tight = position_size(D(10_000), D(1), D(100), D("99.9"), RULES, D(3), D(200))
    assert (tight.amount, tight.capped_by) == (D(200), "exposure")  # 1000 by risk; 300 by leverage; 200 by exposure
    busy = position_size(D(10_000), D(1), D(100), D(98), RULES, D(3), D(300), open_notional=D(29_000))
    assert (busy.amount, busy.capped_by) == (D(10), "exposure")
    tiny = position_size(D(1), D(1), D(100), D(98), RULES, D(3), D(300))
    assert tiny.amount == 0 and tiny.refusal == "notional 0.500 below the market's minimum 5"
    assert position_size(D(10_000), D(1), D(100), D(100), RULES, D(3), D(300)).refusal.startswith("the stop is at")


def test_rounding_never_tightens_a_stop_and_never_splits_below_the_minimum():
    assert round_stop(D("97.996"), "long", RULES) == D("97.99")
    assert round_stop(D("102.001"), "short", RULES) == D("102.01")
    assert split_exits(D("0.003"), D(50), RULES) == (D("0.001"), D("0.002"))
    assert split_exits(D("0.001"), D(50), RULES) == (D("0.001"), D(0))  # too small to split: all at TP1


def test_sizing_refuses_non_finite_prices_and_a_stop_on_the_wrong_side():
    assert "not a finite" in position_size(D(10_000), D(1), D("NaN"), D(98), RULES, D(3), D(300)).refusal
    assert "not a finite" in position_size(D(10_000), D(1), D(100), D("Infinity"), RULES, D(3), D(300)).refusal
    assert "not a finite" in position_size(D(0), D(1), D(100), D(98), RULES, D(3), D(300)).refusal
    wrong_long = position_size(D(10_000), D(1), D(100), D(102), RULES, D(3), D(300), direction="long")
    assert wrong_long.amount == 0 and "wrong side" in wrong_long.refusal
    wrong_short = position_size(D(10_000), D(1), D(100), D(98), RULES, D(3), D(300), direction="short")
    assert wrong_short.amount == 0 and "wrong side" in wrong_short.refusal
    assert position_size(D(10_000), D(1), D(100), D(102), RULES, D(3), D(300), direction="short").amount == D(50)


def test_exposure_is_counted_against_total_equity_and_named_when_it_is_used_up():
    # risk and leverage from the free margin (5 000), the exposure cap from the equity (10 000)
    sized = position_size(D(5_000), D(1), D(100), D(98), RULES, D(3), D(300), exposure_equity=D(10_000))
    assert (sized.amount, sized.capped_by) == (D(25), None)
    full = position_size(D(5_000), D(1), D(100), D(98), RULES, D(3), D(300), open_notional=D(30_000),
                         exposure_equity=D(10_000))
    assert full.amount == 0 and full.refusal.startswith("max_total_exposure_pct reached")


def test_an_entry_is_passed_once_the_market_reached_its_tp1_or_its_stop():
    from common.trade.lifecycle import entry_passed

    long_plan, short_plan = ("long", D(98), D(104)), ("short", D(102), D(96))
    assert entry_passed(*long_plan, D(103.9), D(98.1)) is None
    assert entry_passed(*long_plan, D(104), D(99)) == "price reached TP1"
    assert entry_passed(*long_plan, D(101), D(98)) == "price reached the stop loss"
    assert entry_passed(*short_plan, D(101.9), D(96.1)) is None
    assert entry_passed(*short_plan, D(101), D(96)) == "price reached TP1"
    assert entry_passed(*short_plan, D(102), D(99)) == "price reached the stop loss"
