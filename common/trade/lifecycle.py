"""One trade from its limit entry to its last exit, as a value that changes only through fills
and cancels. The position manager feeds it the exchange's fills; the paper exchange and the
backtester feed it the fills `paper_bar` derives from klines. Same code, same results.

waiting_entry -> open (entry filled, partly or fully) | cancelled (never filled)
open -> tp1_done (TP1 filled, stop moved to breakeven) | closed (stop or the last exit)
tp1_done -> closed

Paper fills from one bar (open, high, low, close), pessimistic where the bar's path is unknown:
- entry: a resting limit fills when the bar reaches it, at the limit or at the open when the
  bar opens beyond it (a gap fills at the better price);
- on the entry's own bar only the stop is checked (the bar may have fallen after the fill);
- later bars: the stop first (when a bar reaches both the stop and a target, the stop is
  taken), at the stop or at the open when the bar gaps through it, minus slippage; then TP1,
  then TP2, each at its limit or a better open. The breakeven stop is live from the next bar.
- an entry not filled after `entry_timeout_bars` bars, or whose TP1 is reached first, is
  cancelled (the setup is void).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import Enum

from common.trade.sizing import (
    LONG, ZERO, MarketRules, breakeven_stop, fee, gross_pnl, r_multiple, slipped, split_exits,
)


class TradeState(str, Enum):
    WAITING_ENTRY = "waiting_entry"
    OPEN = "open"
    TP1_DONE = "tp1_done"
    CLOSED = "closed"
    CANCELLED = "cancelled"


ALLOWED = {
    TradeState.WAITING_ENTRY: {TradeState.OPEN, TradeState.CANCELLED},
    TradeState.OPEN: {TradeState.TP1_DONE, TradeState.CLOSED},
    TradeState.TP1_DONE: {TradeState.CLOSED},
}


class IllegalTradeTransition(ValueError):
    pass


@dataclass(frozen=True)
class Fill:
    leg: str  # entry | sl | tp1 | tp2 | close
    side: str  # buy | sell
    price: Decimal
    amount: Decimal
    fee: Decimal
    time_ms: int


@dataclass(frozen=True)
class Costs:
    maker_fee_pct: Decimal
    taker_fee_pct: Decimal
    slippage_bps: Decimal


@dataclass(frozen=True)
class Trade:
    trade_id: str
    direction: str
    entry_price: Decimal  # the limit
    initial_sl: Decimal
    sl_price: Decimal  # the live stop (breakeven after TP1)
    tp1_price: Decimal
    tp2_price: Decimal
    amount: Decimal  # ordered
    state: TradeState = TradeState.WAITING_ENTRY
    filled: Decimal = ZERO  # entry filled so far
    entry_cost: Decimal = ZERO  # sum of price x amount of the entry fills
    exited: Decimal = ZERO
    tp1_amount: Decimal = ZERO
    tp2_amount: Decimal = ZERO
    bars_waiting: int = 0
    fills: tuple[Fill, ...] = ()
    exit_reason: str | None = None
    opened_ms: int | None = None
    closed_ms: int | None = None

    @property
    def entry_average(self) -> Decimal | None:
        return self.entry_cost / self.filled if self.filled > 0 else None

    @property
    def open_amount(self) -> Decimal:
        return self.filled - self.exited

    @property
    def entry_side(self) -> str:
        return "buy" if self.direction == LONG else "sell"

    @property
    def exit_side(self) -> str:
        return "sell" if self.direction == LONG else "buy"


def _move(trade: Trade, target: TradeState, **changes) -> Trade:
    if target != trade.state and target not in ALLOWED.get(trade.state, set()):
        raise IllegalTradeTransition(f"trade {trade.trade_id}: {trade.state.value} -> {target.value}")
    return replace(trade, state=target, **changes)


def new_trade(trade_id: str, direction: str, entry: Decimal, sl: Decimal, tp1: Decimal, tp2: Decimal,
              amount: Decimal) -> Trade:
    return Trade(trade_id, direction, entry, sl, sl, tp1, tp2, amount)


def apply_entry_fill(trade: Trade, price: Decimal, amount: Decimal, fee_paid: Decimal, time_ms: int,
                     rules: MarketRules, tp1_close_pct: Decimal) -> Trade:
    """An entry fill (all or part of the order): the exits are sized from what is filled."""
    if trade.filled + amount > trade.amount:
        raise ValueError(f"trade {trade.trade_id}: entry fills {trade.filled + amount} exceed the order {trade.amount}")
    filled = trade.filled + amount
    tp1_amount, tp2_amount = split_exits(filled, tp1_close_pct, rules)
    return _move(trade, TradeState.OPEN, filled=filled, entry_cost=trade.entry_cost + price * amount,
                 tp1_amount=tp1_amount, tp2_amount=tp2_amount, opened_ms=trade.opened_ms or time_ms,
                 fills=trade.fills + (Fill("entry", trade.entry_side, price, amount, fee_paid, time_ms),))


def cancel_entry(trade: Trade, reason: str, time_ms: int) -> Trade:
    """The rest of the entry order is cancelled: a trade with nothing filled is over; a partly
    filled one goes on with what it has."""
    if trade.state != TradeState.WAITING_ENTRY and trade.filled == trade.amount:
        return trade
    if trade.filled == 0:
        return _move(trade, TradeState.CANCELLED, exit_reason=reason, closed_ms=time_ms)
    return replace(trade, amount=trade.filled)


def apply_exit_fill(trade: Trade, leg: str, price: Decimal, amount: Decimal, fee_paid: Decimal, time_ms: int,
                    costs: Costs, rules: MarketRules, move_sl_to_breakeven: bool) -> Trade:
    """An exit fill of leg sl, tp1 or tp2; TP1 moves the stop to breakeven (after fees)."""
    if amount > trade.open_amount:
        raise ValueError(f"trade {trade.trade_id}: exit {amount} exceeds the open amount {trade.open_amount}")
    exited = trade.exited + amount
    fills = trade.fills + (Fill(leg, trade.exit_side, price, amount, fee_paid, time_ms),)
    if exited == trade.filled:
        reason = {"sl": "breakeven_stop" if trade.state == TradeState.TP1_DONE and trade.sl_price != trade.initial_sl
                  else "stop_loss", "tp1": "take_profit_1", "tp2": "take_profit_2", "close": "market_close"}[leg]
        return _move(trade, TradeState.CLOSED, exited=exited, fills=fills, exit_reason=reason, closed_ms=time_ms)
    if leg == "tp1":
        stop = trade.sl_price
        if move_sl_to_breakeven:
            stop = breakeven_stop(trade.entry_average, trade.direction, costs.maker_fee_pct, costs.taker_fee_pct,
                                  rules)
        return _move(trade, TradeState.TP1_DONE, exited=exited, fills=fills, sl_price=stop)
    return replace(trade, exited=exited, fills=fills)


def entry_passed(direction: str, sl_price: Decimal, tp1_price: Decimal, high: Decimal, low: Decimal) -> str | None:
    """Why an entry not yet filled should not be (or stay) placed, given the market's extremes
    since its signal: the price reached TP1 (the move is gone) or the stop (the setup failed)."""
    long = direction == LONG
    if (high >= tp1_price) if long else (low <= tp1_price):
        return "price reached TP1"
    if (low <= sl_price) if long else (high >= sl_price):
        return "price reached the stop loss"
    return None


def paper_bar(trade: Trade, bar_open: Decimal, bar_high: Decimal, bar_low: Decimal, time_ms: int, costs: Costs,
              rules: MarketRules, tp1_close_pct: Decimal, move_sl_to_breakeven: bool,
              entry_timeout_bars: int) -> Trade:
    """The trade after one more bar on the paper exchange (see the module's rules)."""
    long = trade.direction == LONG
    if trade.state == TradeState.WAITING_ENTRY:
        reaches_entry = bar_low <= trade.entry_price if long else bar_high >= trade.entry_price
        if not reaches_entry:
            if (bar_high >= trade.tp1_price) if long else (bar_low <= trade.tp1_price):
                return cancel_entry(trade, "entry void: price reached TP1 first", time_ms)
            waited = replace(trade, bars_waiting=trade.bars_waiting + 1)
            if waited.bars_waiting >= entry_timeout_bars:
                return cancel_entry(waited, "entry timeout", time_ms)
            return waited
        price = min(bar_open, trade.entry_price) if long else max(bar_open, trade.entry_price)
        amount = trade.amount - trade.filled
        trade = apply_entry_fill(trade, price, amount, fee(price, amount, costs.maker_fee_pct), time_ms, rules,
                                 tp1_close_pct)
        # The entry's own bar: only the stop (it may have gone on falling after the fill).
        if (bar_low <= trade.sl_price) if long else (bar_high >= trade.sl_price):
            return _stop_out(trade, min(price, trade.sl_price) if long else max(price, trade.sl_price), time_ms, costs,
                             rules)
        return trade
    if trade.state not in (TradeState.OPEN, TradeState.TP1_DONE):
        return trade
    gap_through_stop = bar_open <= trade.sl_price if long else bar_open >= trade.sl_price
    if gap_through_stop or ((bar_low <= trade.sl_price) if long else (bar_high >= trade.sl_price)):
        return _stop_out(trade, bar_open if gap_through_stop else trade.sl_price, time_ms, costs, rules)
    reaches = (lambda level: bar_high >= level) if long else (lambda level: bar_low <= level)
    better = (lambda level: max(bar_open, level)) if long else (lambda level: min(bar_open, level))
    if trade.state == TradeState.OPEN and reaches(trade.tp1_price):
        price = better(trade.tp1_price)
        amount = trade.tp1_amount
        trade = apply_exit_fill(trade, "tp1", price, amount, fee(price, amount, costs.maker_fee_pct), time_ms, costs,
                                rules, move_sl_to_breakeven)
    if trade.state == TradeState.TP1_DONE and reaches(trade.tp2_price):
        price, amount = better(trade.tp2_price), trade.open_amount
        trade = apply_exit_fill(trade, "tp2", price, amount, fee(price, amount, costs.maker_fee_pct), time_ms, costs,
                                rules, move_sl_to_breakeven)
    return trade


def _stop_out(trade: Trade, trigger_price: Decimal, time_ms: int, costs: Costs, rules: MarketRules) -> Trade:
    price = slipped(trigger_price, trade.exit_side, costs.slippage_bps)
    amount = trade.open_amount
    return apply_exit_fill(trade, "sl", price, amount, fee(price, amount, costs.taker_fee_pct), time_ms, costs,
                           rules, False)


@dataclass(frozen=True)
class TradeResult:
    entry_average: Decimal
    exit_average: Decimal
    amount: Decimal
    gross_pnl: Decimal
    fees: Decimal
    net_pnl: Decimal
    r_multiple: float | None
    exit_reason: str
    tp1_hit: bool


def trade_result(trade: Trade) -> TradeResult:
    """A closed trade's figures: P&L per exit leg against the average entry, all fees."""
    if trade.state != TradeState.CLOSED:
        raise ValueError(f"trade {trade.trade_id} is {trade.state.value}, not closed")
    entry = trade.entry_average
    exits = [f for f in trade.fills if f.leg != "entry"]
    gross = sum((gross_pnl(trade.direction, entry, f.price, f.amount) for f in exits), ZERO)
    fees = sum((f.fee for f in trade.fills), ZERO)
    exit_average = sum((f.price * f.amount for f in exits), ZERO) / trade.filled
    initial_risk = abs(entry - trade.initial_sl) * trade.filled
    net = gross - fees
    return TradeResult(entry, exit_average, trade.filled, gross, fees, net, r_multiple(net, initial_risk),
                       trade.exit_reason, any(f.leg == "tp1" for f in exits))
