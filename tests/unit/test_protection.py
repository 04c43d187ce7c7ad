"""The position manager's desired state: a trade rebuilt from its orders' fills, the protective
orders it needs, and the cancels and versioned replacements that get it there."""
from decimal import Decimal as D

from common.trade.orders import OrderSnapshot, client_order_id
from common.trade.lifecycle import Costs, TradeState
from common.trade.protection import TradeOrder, desired_orders, rebuild_trade, reconcile
from common.trade.sizing import MarketRules

RULES = MarketRules(amount_step=D("0.001"), price_step=D("0.01"), min_amount=D("0.001"))
COSTS = Costs(D("0.02"), D("0.05"), D(2))
SIGNAL = "sig-9"


def snap(leg, version, side, kind, amount, filled=0, average=None, status="open", price=None, stop=None, at=0):
    return TradeOrder(leg, version, OrderSnapshot(
        client_order_id(SIGNAL, leg, version), f"x-{leg}-{version}", "BTCUSDT", side, kind, D(str(amount)),
        D(str(filled)), None if average is None else D(str(average)), D(0), status, leg != "entry",
        None if price is None else D(str(price)), None if stop is None else D(str(stop)), at))


def trade(orders):
    return rebuild_trade("t", "long", D(100), D(98), D(104), D(108), D(1), orders, COSTS, RULES, D(50), True)


def test_a_filled_entry_wants_a_stop_and_two_targets():
    orders = [snap("entry", 0, "buy", "limit", 1, filled=1, average=100, status="closed", price=100)]
    t = trade(orders)
    assert t.state is TradeState.OPEN
    cancel, place = reconcile(SIGNAL, "BTCUSDT", orders, desired_orders(t))
    assert cancel == []
    assert [(r.client_order_id, r.order_type, r.amount, r.price, r.stop_price, r.reduce_only) for _, r, _ in place] == [
        (client_order_id(SIGNAL, "sl", 0), "stop_market", D(1), None, D(98), True),
        (client_order_id(SIGNAL, "tp1", 0), "limit", D("0.5"), D(104), None, True),
        (client_order_id(SIGNAL, "tp2", 0), "limit", D("0.5"), D(108), None, True)]


def test_after_tp1_the_stop_is_replaced_at_breakeven_under_a_new_version():
    orders = [snap("entry", 0, "buy", "limit", 1, filled=1, average=100, status="closed", price=100, at=1),
              snap("sl", 0, "sell", "stop_market", 1, stop=98, at=2),
              snap("tp1", 0, "sell", "limit", 0.5, filled=0.5, average=104, status="closed", price=104, at=3),
              snap("tp2", 0, "sell", "limit", 0.5, price=108, at=2)]
    t = trade(orders)
    assert (t.state, t.sl_price, t.open_amount) == (TradeState.TP1_DONE, D("100.08"), D("0.5"))
    cancel, place = reconcile(SIGNAL, "BTCUSDT", orders, desired_orders(t))
    assert [o.snapshot.client_order_id for o in cancel] == [client_order_id(SIGNAL, "sl", 0)]
    assert [(r.client_order_id, r.amount, r.stop_price) for _, r, _ in place] == [
        (client_order_id(SIGNAL, "sl", 1), D("0.5"), D("100.08"))]  # TP2 still matches: kept


def test_nothing_to_do_when_the_orders_are_as_wanted():
    orders = [snap("entry", 0, "buy", "limit", 1, filled=1, average=100, status="closed", price=100),
              snap("sl", 0, "sell", "stop_market", 1, stop=98), snap("tp1", 0, "sell", "limit", 0.5, price=104),
              snap("tp2", 0, "sell", "limit", 0.5, price=108)]
    assert reconcile(SIGNAL, "BTCUSDT", orders, desired_orders(trade(orders))) == ([], [])


def test_a_stop_fill_closes_the_trade_and_everything_left_is_cancelled():
    orders = [snap("entry", 0, "buy", "limit", 1, filled=1, average=100, status="closed", price=100, at=1),
              snap("sl", 0, "sell", "stop_market", 1, filled=1, average=97.98, status="closed", stop=98, at=5),
              snap("tp1", 0, "sell", "limit", 0.5, price=104, at=2), snap("tp2", 0, "sell", "limit", 0.5, price=108)]
    t = trade(orders)
    assert (t.state, t.exit_reason) == (TradeState.CLOSED, "stop_loss")
    cancel, place = reconcile(SIGNAL, "BTCUSDT", orders, desired_orders(t))
    assert sorted(o.leg for o in cancel) == ["tp1", "tp2"] and place == []


def test_a_partial_entry_fill_is_protected_for_what_is_filled_then_grown():
    partial = [snap("entry", 0, "buy", "limit", 1, filled=0.4, average=100, price=100)]
    t = trade(partial)
    assert (t.state, t.open_amount) == (TradeState.OPEN, D("0.4"))
    _, place = reconcile(SIGNAL, "BTCUSDT", partial, desired_orders(t))
    assert [(r.client_order_id, r.amount) for _, r, _ in place] == [
        (client_order_id(SIGNAL, "sl", 0), D("0.4")), (client_order_id(SIGNAL, "tp1", 0), D("0.2")),
        (client_order_id(SIGNAL, "tp2", 0), D("0.2"))]
    grown = [snap("entry", 0, "buy", "limit", 1, filled=1, average=100, status="closed", price=100),
             snap("sl", 0, "sell", "stop_market", 0.4, stop=98), snap("tp1", 0, "sell", "limit", 0.2, price=104),
             snap("tp2", 0, "sell", "limit", 0.2, price=108)]
    cancel, place = reconcile(SIGNAL, "BTCUSDT", grown, desired_orders(trade(grown)))
    assert sorted(o.leg for o in cancel) == ["sl", "tp1", "tp2"]
    assert [(r.client_order_id, r.amount) for _, r, _ in place] == [
        (client_order_id(SIGNAL, "sl", 1), D(1)), (client_order_id(SIGNAL, "tp1", 1), D("0.5")),
        (client_order_id(SIGNAL, "tp2", 1), D("0.5"))]


def test_an_entry_cancelled_unfilled_ends_the_trade():
    orders = [snap("entry", 0, "buy", "limit", 1, status="canceled", price=100)]
    t = trade(orders)
    assert t.state is TradeState.CANCELLED and desired_orders(t) == []
