"""What orders a trade should have on the exchange, given what its orders have done so far.

The position manager rebuilds each trade from its orders as the exchange reports them (the
exchange is the truth), asks `desired_orders` what should be resting now, and `reconcile`
turns the difference into cancels and placements: a stop for the whole open amount (at
breakeven after TP1), TP1 and TP2 for their shares of the filled amount. A resting order that
no longer matches (the amount grew with a partial fill, the stop moved) is cancelled and
replaced under the next version of its client id, so no two live orders ever share an id.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.trade.orders import CLOSED, OPEN, OrderRequest, OrderSnapshot, client_order_id
from common.trade.lifecycle import (
    Costs, Trade, TradeState, apply_entry_fill, apply_exit_fill, cancel_entry, new_trade,
)
from common.trade.sizing import MarketRules


@dataclass(frozen=True)
class TradeOrder:
    """An order of the trade: its leg and version, and the exchange's view of it."""
    leg: str
    version: int
    snapshot: OrderSnapshot


@dataclass(frozen=True)
class WantedOrder:
    leg: str
    side: str
    order_type: str
    amount: Decimal
    price: Decimal | None
    stop_price: Decimal | None


def rebuild_trade(trade_id: str, direction: str, entry: Decimal, sl: Decimal, tp1: Decimal, tp2: Decimal,
                  amount: Decimal, orders: list[TradeOrder], costs: Costs, rules: MarketRules, tp1_close_pct: Decimal,
                  move_sl_to_breakeven: bool) -> Trade:
    """The trade as its orders' fills make it: the entry's fills, then the exits in the order
    they happened."""
    trade = new_trade(trade_id, direction, entry, sl, tp1, tp2, amount)
    entries = [o.snapshot for o in orders if o.leg == "entry" and o.snapshot.filled > 0]
    for snapshot in entries:
        trade = apply_entry_fill(trade, snapshot.average_price, snapshot.filled, snapshot.fee, snapshot.updated_ms,
                                 rules, tp1_close_pct)
    finished = [o.snapshot for o in orders if o.leg == "entry" and o.snapshot.status != OPEN]
    if finished and trade.filled < trade.amount:  # the rest of the entry was cancelled or rejected
        trade = cancel_entry(trade, finished[-1].message or f"entry {finished[-1].status}", finished[-1].updated_ms)
    exits = sorted((o for o in orders if o.leg != "entry" and o.snapshot.filled > 0),
                   key=lambda o: (o.snapshot.updated_ms, o.leg))
    for order in exits:
        s = order.snapshot
        trade = apply_exit_fill(trade, order.leg, s.average_price, s.filled, s.fee, s.updated_ms, costs, rules,
                                move_sl_to_breakeven)
    return trade


def desired_orders(trade: Trade) -> list[WantedOrder]:
    """The protective orders an open trade needs now (none before the entry fills or after it
    is closed)."""
    if trade.state not in (TradeState.OPEN, TradeState.TP1_DONE) or trade.open_amount <= 0:
        return []
    wanted = [WantedOrder("sl", trade.exit_side, "stop_market", trade.open_amount, None, trade.sl_price)]
    if trade.state == TradeState.OPEN:
        wanted.append(WantedOrder("tp1", trade.exit_side, "limit", trade.tp1_amount, trade.tp1_price, None))
        if trade.tp2_amount > 0:
            wanted.append(WantedOrder("tp2", trade.exit_side, "limit", trade.open_amount - trade.tp1_amount,
                                      trade.tp2_price, None))
    else:
        wanted.append(WantedOrder("tp2", trade.exit_side, "limit", trade.open_amount, trade.tp2_price, None))
    return [w for w in wanted if w.amount > 0]


def reconcile(signal_id: str, symbol: str, orders: list[TradeOrder],
              wanted: list[WantedOrder]) -> tuple[list[TradeOrder], list[tuple[TradeOrder | None, OrderRequest, int]]]:
    """(orders to cancel, orders to place with their version). A resting exit order that does
    not match what is wanted is cancelled and replaced by the next version; a leg whose order
    has filled is not placed again."""
    by_leg = {w.leg: w for w in wanted}
    cancel, place = [], []
    for leg in ("sl", "tp1", "tp2"):
        history = sorted((o for o in orders if o.leg == leg), key=lambda o: o.version)
        resting = [o for o in history if o.snapshot.status == OPEN]
        want = by_leg.get(leg)
        matching = [o for o in resting if want is not None and _matches(o.snapshot, want)]
        cancel.extend(o for o in resting if o not in matching[:1])
        if want is None or matching or any(o.snapshot.status == CLOSED for o in history if leg != "sl"):
            continue
        version = history[-1].version + 1 if history else 0
        request = OrderRequest(client_order_id(signal_id, leg, version), symbol, want.side, want.order_type,
                               want.amount, want.price, want.stop_price, reduce_only=True)
        place.append((history[-1] if history else None, request, version))
    return cancel, place


def _matches(snapshot: OrderSnapshot, want: WantedOrder) -> bool:
    if snapshot.close_position:  # the stop placed with the entry: it closes whatever the position is
        return want.order_type == "stop_market" and snapshot.side == want.side and snapshot.stop_price == want.stop_price
    return (snapshot.order_type == want.order_type and snapshot.side == want.side
            and snapshot.amount - snapshot.filled == want.amount
            and snapshot.price == want.price and snapshot.stop_price == want.stop_price)
