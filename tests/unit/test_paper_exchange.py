"""The paper exchange: orders live from the next whole bar, stops before limits in a bar,
reduce-only orders that never open a position, fees and slippage into the wallet to the
cent, state that survives a restart, and bars matched once."""
from decimal import Decimal as D

import pytest

from common.exchange.gateway import OrderRejected, OrderRequest, client_order_id
from common.exchange.paper import Bar, PaperExchange, paper_market_rules

T0 = 1_786_924_800_000
M = 60_000


def exchange(tmp_path):
    paper = PaperExchange("binance", tmp_path / "paper.json", D(10_000), D("0.02"), D("0.05"), D(2))
    paper.set_rules("BTCUSDT", D(100))
    return paper


def bar(minute, o, h, l, c=None):
    return Bar("BTCUSDT", T0 + minute * M, D(str(o)), D(str(h)), D(str(l)), D(str(c if c is not None else o)))


def order(leg, side, kind, amount, price=None, stop=None, reduce_only=False):
    return OrderRequest(client_order_id("sig-1", leg), "BTCUSDT", side, kind, D(str(amount)),
                        None if price is None else D(str(price)), None if stop is None else D(str(stop)), reduce_only)


def test_market_rules_follow_the_price():
    rules = paper_market_rules(D(100))
    assert (rules.price_step, rules.amount_step, rules.min_notional) == (D("0.01"), D("0.01"), D(5))
    assert paper_market_rules(D("0.1234")).price_step == D("0.00001")
    assert paper_market_rules(D(60_000)).amount_step == D("0.0001")


def test_entry_then_stop_and_target_in_one_bar_takes_the_stop(tmp_path):
    paper = exchange(tmp_path)
    paper.set_clock("BTCUSDT", T0 + 30_000)  # mid-bar: the order is live from the next bar
    paper.place_order(order("entry", "buy", "limit", 1, price=100))
    assert paper.advance([bar(0, 101, 101, 99)]) == 0
    assert paper.advance([bar(1, 101, 101.5, 99.5)]) == 1
    entry = paper.find_order("BTCUSDT", client_order_id("sig-1", "entry"))
    assert (entry.status, entry.average_price, entry.fee) == ("closed", D(100), D("0.02"))
    assert paper.position_amount("BTCUSDT") == 1

    paper.place_order(order("sl", "sell", "stop_market", 1, stop=98, reduce_only=True))
    paper.place_order(order("tp1", "sell", "limit", 0.5, price=104, reduce_only=True))
    paper.advance([bar(2, 100, 105, 97)])
    stop = paper.find_order("BTCUSDT", client_order_id("sig-1", "sl"))
    assert (stop.status, stop.average_price) == ("closed", D("97.9804"))  # 98 less 2 bps
    target = paper.find_order("BTCUSDT", client_order_id("sig-1", "tp1"))
    assert (target.status, target.filled) == ("canceled", 0)  # nothing left to reduce
    assert paper.position_amount("BTCUSDT") == 0
    # 10 000 - 0.02 (entry fee) - 2.0196 (loss) - 97.9804 x 0.05 % (stop fee)
    assert paper.equity() == D("9997.9114098")


def test_a_gap_through_the_stop_fills_at_the_open(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "buy", "limit", 1, price=100))
    paper.advance([bar(0, 100, 100, 100)])
    paper.place_order(order("sl", "sell", "stop_market", 1, stop=98, reduce_only=True))
    paper.advance([bar(1, 97, 97.5, 96)])
    assert paper.find_order("BTCUSDT", client_order_id("sig-1", "sl")).average_price == D("96.9806")


def test_state_survives_a_restart_and_bars_match_once(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "buy", "limit", 2, price=100))
    paper.advance([bar(0, 101, 101, 99.9)])
    again = exchange(tmp_path)  # a new process reading the same file
    assert again.find_order("BTCUSDT", client_order_id("sig-1", "entry")).filled == 2
    assert (again.position_amount("BTCUSDT"), again.equity()) == (D(2), D("9999.96"))
    assert again.advance([bar(0, 101, 101, 99.9)]) == 0  # already matched
    resent = again.place_order(order("entry", "buy", "limit", 2, price=100))  # the same client id again
    assert (resent.filled, len(again.orders)) == (2, 1)  # the one order, as it is: never a second


def test_reduce_only_never_opens_a_position(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("tp1", "sell", "limit", 1, price=104, reduce_only=True))
    paper.advance([bar(0, 104, 105, 103)])
    assert paper.position_amount("BTCUSDT") == 0
    assert paper.find_order("BTCUSDT", client_order_id("sig-1", "tp1")).status == "canceled"


def test_short_round_trip_books_the_profit(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "sell", "limit", 1, price=100))
    paper.advance([bar(0, 99, 100.5, 98.5)])  # sells at 100
    paper.place_order(order("tp2", "buy", "limit", 1, price=92, reduce_only=True))
    paper.advance([bar(1, 95, 95.5, 91)])  # buys back at 92
    # + 8 profit - 0.02 - 0.0184 fees
    assert (paper.position_amount("BTCUSDT"), paper.equity()) == (0, D("10007.9616"))


def test_orders_below_the_minimum_and_unknown_markets_are_refused(tmp_path):
    paper = exchange(tmp_path)
    with pytest.raises(OrderRejected, match="below the minimum"):
        paper.place_order(order("entry", "buy", "limit", 0.001, price=100))
    with pytest.raises(OrderRejected, match="no market rules for ETHUSDT"):
        paper.place_order(OrderRequest("x", "ETHUSDT", "buy", "limit", D(1), D(1)))


def test_client_order_ids_are_stable_short_and_per_leg():
    first = client_order_id("a" * 64, "entry")
    assert first == client_order_id("a" * 64, "entry") and len(first) <= 36
    assert client_order_id("a" * 64, "sl", 1) != client_order_id("a" * 64, "sl", 0)
    with pytest.raises(ValueError):
        client_order_id("s", "exit")


def test_two_clients_of_one_book_see_each_others_orders(tmp_path):
    """The execution engine and the position manager each hold a PaperExchange on the same
    file: what one places, the other finds, fills and cancels, and neither's save undoes the
    other's (the book is read again when another client changed it)."""
    engine, manager = exchange(tmp_path), exchange(tmp_path)  # both made before any order
    engine.set_clock("BTCUSDT", T0 - 1)
    engine.place_order(order("entry", "buy", "limit", 1, price=100))
    assert manager.advance([bar(0, 100.5, 101, 99.5)]) == 1  # the manager's client fills the engine's order
    assert engine.find_order("BTCUSDT", client_order_id("sig-1", "entry")).status == "closed"
    manager.place_order(order("sl", "sell", "stop_market", 1, stop=98, reduce_only=True))
    engine.place_order(OrderRequest(client_order_id("sig-2", "entry"), "BTCUSDT", "buy", "limit", D(1), D(90)))
    again = exchange(tmp_path)
    assert {o.client_order_id for o in again.open_orders("BTCUSDT")} == {
        client_order_id("sig-1", "sl"), client_order_id("sig-2", "entry")}
    assert again.position_amount("BTCUSDT") == 1


def test_clients_in_threads_at_once_lose_no_order(tmp_path):
    import threading

    exchange(tmp_path)  # the market's rules on file

    def place(prefix):
        client = PaperExchange("binance", tmp_path / "paper.json", D(10_000), D("0.02"), D("0.05"), D(2))
        for n in range(40):
            client.place_order(OrderRequest(client_order_id(f"{prefix}-{n}", "entry"), "BTCUSDT", "buy", "limit",
                                            D(1), D(90)))

    threads = [threading.Thread(target=place, args=(p,)) for p in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(exchange(tmp_path).open_orders("BTCUSDT")) == 120
