"""The portfolio: every combination's entry orders replayed on one account, with the execution
engine's rules. Each combination is first backtested on its own (its own capital, its own
position per symbol); the portfolio then takes their orders in the order they were placed and
applies what the live engine applies across them all:
- at most `max_open_positions` positions or pending entries at once, and
  `max_positions_per_symbol` on one symbol (a 15m and a 1h setup on BTC compete for it);
- no new entry once the day's realised loss reaches `daily_loss_limit_pct` of equity;
- each entry sized on the account's equity at the time (initial capital plus the realised net
  P&L of the trades closed before it), capped by leverage and the open notional
  (`position_size`, as live).
An order taken is filled exactly as in its combination (same prices and times: the bars do not
depend on the size); its amounts and fees are recomputed for the new size through the same
lifecycle functions (`apply_entry_fill`, `apply_exit_fill`), so TP1's share is rounded to the
market's amount step as live. A position still open, or an entry never filled, holds its slot
until it ended but moves no money.

What this cannot know: an order a combination skipped because its own earlier trade was open
would have been placed on an account where that earlier trade was refused; such orders are
not invented.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from common.exchange.paper import paper_market_rules
from common.trade.lifecycle import (
    Costs, Trade, TradeResult, TradeState, apply_entry_fill, apply_exit_fill, new_trade, trade_result,
)
from common.trade.sizing import ZERO, fee, position_size
from common.trading_config import TradingConfig

DAY_MS = 86_400_000


@dataclass
class Portfolio:
    trades: pd.DataFrame  # the taken closed trades: signal_id, amount and the figures of trade_result
    equity: pd.Series  # by epoch ms: the initial capital, then after each closed trade
    skipped: Counter = field(default_factory=Counter)  # why orders were not taken


def replay_fills(attempt, amount: Decimal, costs: Costs, tp1_close_pct: Decimal, move_sl_to_breakeven: bool) -> Trade:
    """The attempt's fills (same legs, prices and times) for an order of `amount`."""
    rules = paper_market_rules(Decimal(attempt.reference_price))
    trade = new_trade(attempt.signal_id, attempt.direction, Decimal(attempt.entry_price), Decimal(attempt.sl_price),
                      Decimal(attempt.tp1_price), Decimal(attempt.tp2_price), amount)
    for leg, price_text, time_ms in json.loads(attempt.fills):
        price = Decimal(price_text)
        if leg == "entry":
            trade = apply_entry_fill(trade, price, amount, fee(price, amount, costs.maker_fee_pct), time_ms, rules,
                                     tp1_close_pct)
            continue
        leg_amount = trade.tp1_amount if leg == "tp1" else trade.open_amount
        fee_pct = costs.taker_fee_pct if leg == "sl" else costs.maker_fee_pct
        trade = apply_exit_fill(trade, leg, price, leg_amount, fee(price, leg_amount, fee_pct), time_ms, costs, rules,
                                move_sl_to_breakeven)
    return trade


def run_portfolio(attempts: pd.DataFrame, trading: TradingConfig, capital: Decimal) -> Portfolio:
    """attempts: the combinations' ATTEMPT_COLUMNS rows with a `symbol` column."""
    costs = Costs(Decimal(str(trading.maker_fee_pct)), Decimal(str(trading.taker_fee_pct)),
                  Decimal(str(trading.slippage_bps)))
    tp1_close_pct = Decimal(str(trading.tp1_close_pct))
    equity, start = capital, int(attempts.placed_ms.min()) if len(attempts) else 0
    curve = {start: float(capital)}
    realised_by_day: Counter = Counter()
    holding: list[tuple[int, str, Trade | None, TradeResult | None]] = []  # (ended_ms, symbol, trade, result)
    taken, skipped = [], Counter()
    ordered = attempts.sort_values(["placed_ms", "signal_id"], kind="stable") if len(attempts) else attempts
    for attempt in ordered.itertuples(index=False):
        now = int(attempt.placed_ms)
        # Settle what ended before this order (at the same instant it still holds its slot, as in a combination).
        for ended_ms, _, _, result in sorted(h for h in holding if h[0] < now and h[3] is not None):
            equity += result.net_pnl
            realised_by_day[ended_ms // DAY_MS] += result.net_pnl
            curve[ended_ms] = float(equity)
        holding = [h for h in holding if h[0] >= now]
        if len(holding) >= trading.max_open_positions:
            skipped["max_open_positions reached"] += 1
            continue
        if sum(1 for h in holding if h[1] == attempt.symbol) >= trading.max_positions_per_symbol:
            skipped["a position or entry on the symbol already"] += 1
            continue
        if realised_by_day[now // DAY_MS] <= -equity * Decimal(str(trading.daily_loss_limit_pct)) / 100:
            skipped["daily loss limit"] += 1
            continue
        size = position_size(equity, Decimal(str(trading.risk_per_trade_pct)), Decimal(attempt.entry_price),
                             Decimal(attempt.sl_price), paper_market_rules(Decimal(attempt.reference_price)),
                             Decimal(str(trading.max_leverage)), Decimal(str(trading.max_total_exposure_pct)),
                             _open_notional(holding, now))
        if size.refusal:
            skipped[f"size refused: {size.refusal}"] += 1
            continue
        trade = replay_fills(attempt, size.amount, costs, tp1_close_pct, trading.move_sl_to_breakeven)
        result = trade_result(trade) if trade.state == TradeState.CLOSED else None
        holding.append((int(attempt.ended_ms), attempt.symbol, trade, result))
        if result is not None:
            taken.append({"signal_id": attempt.signal_id, "symbol": attempt.symbol, "entry_time_ms": trade.opened_ms,
                          "exit_time_ms": trade.closed_ms, "quantity": result.amount,
                          "entry_price": result.entry_average, "exit_price": result.exit_average,
                          "exit_reason": result.exit_reason, "tp1_hit": result.tp1_hit, "fees": result.fees,
                          "pnl": result.gross_pnl, "net_pnl": result.net_pnl, "r_multiple": result.r_multiple})
    for ended_ms, _, _, result in sorted(h for h in holding if h[3] is not None):
        equity += result.net_pnl
        curve[ended_ms] = float(equity)
    return Portfolio(pd.DataFrame(taken), pd.Series(curve).sort_index(), skipped)


def _open_notional(holding, now_ms: int) -> Decimal:
    """Entry price x amount still open at now_ms of the filled positions (pending entries hold none, as live)."""
    total = ZERO
    for _, _, trade, _ in holding:
        if trade is None:
            continue
        filled = sum((f.amount for f in trade.fills if f.leg == "entry" and f.time_ms <= now_ms), ZERO)
        exited = sum((f.amount for f in trade.fills if f.leg != "entry" and f.time_ms <= now_ms), ZERO)
        if filled > exited:
            total += (filled - exited) * trade.entry_average
    return total
