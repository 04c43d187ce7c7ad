"""The paper exchange: orders live from the next whole bar, stops before limits in a bar,
reduce-only orders that never open a position, fees and slippage into the wallet to the
cent, state that survives a restart, and bars matched once."""
from decimal import Decimal as D

import pytest

from common.trade.orders import OrderRejected, OrderRequest, client_order_id
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


def close_position_stop(side, stop):
    return OrderRequest(client_order_id("sig-1", "sl"), "BTCUSDT", side, "stop_market", D(1), stop_price=D(str(stop)),
                        reduce_only=True, close_position=True)


def test_a_close_position_stop_waits_for_a_position_then_closes_all_of_it(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(close_position_stop("sell", 98))
    paper.advance([bar(0, 99, 99, 97)])  # through it with no position: not triggered, it waits
    stop = paper.find_order("BTCUSDT", client_order_id("sig-1", "sl"))
    assert (stop.status, stop.amount, stop.filled, stop.reduce_only, stop.close_position) == ("open", 0, 0, True, True)
    paper.place_order(order("entry", "buy", "limit", 3, price=100))
    paper.advance([bar(1, 101, 101, 99.5)])  # filled: 3 long, whatever the stop was placed with
    paper.advance([bar(2, 99.5, 99.8, 97.5)])  # the stop: all 3 at 98 less 2 bps
    stop = paper.find_order("BTCUSDT", client_order_id("sig-1", "sl"))
    assert (stop.status, stop.amount, stop.filled, stop.average_price) == ("closed", 3, 3, D("97.9804"))
    assert paper.position_amount("BTCUSDT") == 0


@pytest.mark.parametrize("bar_open, fill", [
    (101, D("97.9804")),   # the entry fills at 100 on the way down: stopped out at 98 on the same bar
    (97, D("96.9806")),    # the bar opens below the stop: the entry fills at 97, and so does the stop
])
def test_an_entry_and_its_close_position_stop_on_one_bar_stop_out_on_it(tmp_path, bar_open, fill):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "buy", "limit", 1, price=100))
    paper.place_order(close_position_stop("sell", 98))
    paper.advance([bar(0, bar_open, 101, 96)])
    stop = paper.find_order("BTCUSDT", client_order_id("sig-1", "sl"))
    assert (stop.status, stop.filled, stop.average_price) == ("closed", 1, fill)
    assert paper.position_amount("BTCUSDT") == 0


def test_a_short_close_position_stop_buys_back_the_whole_short(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "sell", "limit", 2, price=100))
    paper.place_order(close_position_stop("buy", 103))
    paper.advance([bar(0, 99, 100.5, 98.5)])  # sold at 100
    paper.advance([bar(1, 101, 104, 100.5)])  # bought back at 103 plus 2 bps
    stop = paper.find_order("BTCUSDT", client_order_id("sig-1", "sl"))
    assert (stop.status, stop.filled, stop.average_price) == ("closed", 2, D("103.0206"))
    assert paper.position_amount("BTCUSDT") == 0


def test_a_reduce_only_market_order_fills_at_the_next_bars_open_capped_at_the_position(tmp_path):
    paper = exchange(tmp_path)
    paper.place_order(order("entry", "buy", "limit", 1, price=100))
    paper.advance([bar(0, 100, 100, 100)])
    paper.set_clock("BTCUSDT", T0 + M + 30_000)  # mid-bar: the next bar's open
    paper.place_order(order("close", "sell", "market", 2, reduce_only=True))
    paper.advance([bar(1, 99, 99.5, 98.5)])
    assert paper.advance([bar(2, 95, 95, 95)]) == 1
    close = paper.find_order("BTCUSDT", client_order_id("sig-1", "close"))
    # 1 of 2 (the position), at 95 less 2 bps, taker; the rest cancelled
    assert (close.status, close.filled, close.average_price, close.fee) == ("canceled", 1, D("94.981"),
                                                                            D("0.0474905"))
    assert paper.position_amount("BTCUSDT") == 0


def test_free_margin_is_the_wallet_less_positions_and_resting_entries_at_the_leverage(tmp_path):
    paper = PaperExchange("binance", tmp_path / "paper.json", D(1_000), D(0), D(0), D(0), leverage=D(5))
    paper.set_rules("BTCUSDT", D(100))
    paper.set_clock("BTCUSDT", T0 - 1)
    paper.place_order(order("entry", "buy", "limit", 2, price=100))
    paper.place_order(close_position_stop("sell", 98))
    paper.place_order(order("tp1", "sell", "limit", 1, price=110, reduce_only=True))
    assert paper.free_margin() == D(1_000) - D(40)  # 200 notional at 5x; exits hold nothing
    paper.advance([bar(0, 100, 100, 100)])
    assert paper.free_margin() == D(1_000) - D(40)  # the position holds it now
    assert PaperExchange("binance", tmp_path / "empty.json", D(0), D(0), D(0), D(0)).free_margin() == 0
