"""The fake exchange's trading endpoints (Binance USDⓈ-M and Bybit v5 linear), driven by the real ccxt client
built by our factory with keys: orders by client id, fills driven by the test's price moves, positions, the
wallet and fees, and the errors ccxt raises for refusals and injected faults. No Spark or Kafka; a few seconds.

The helpers `find` and `cancel` are the ccxt calls that work on each exchange (the gateway needs the same)."""
from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from common.exchange.ccxt_factory import create_ccxt_exchange
from common.secrets import ExchangeCredentials
from tests.fake_exchange import FakeExchange

SYMBOL = "BTC/USDT:USDT"
MARKET = "BTCUSDT"
EXCHANGES = ("binance", "bybit")
ORDER_PATHS = {"binance": "/fapi/v1/order", "bybit": "/v5/order/create"}
CANCEL_PATHS = {"binance": "/fapi/v1/order", "bybit": "/v5/order/cancel"}
CANCEL_METHODS = {"binance": "DELETE", "bybit": "POST"}
# Short, so that a "timeout" fault costs about a second; the fake answers anything else in milliseconds.
CLIENT_TIMEOUT_MS = 1000
MAKER, TAKER = Decimal("0.0002"), Decimal("0.0005")


@pytest.fixture(params=EXCHANGES)
def exchange(request):
    return request.param


@pytest.fixture
def fake(exchange):
    # A fresh server (and order book) per test; prices come from trade_price, not from a series.
    with FakeExchange({}, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")) as server:
        server.timeout_sleep_s = CLIENT_TIMEOUT_MS / 1000 + 0.3  # just past the client's patience
        server.set_account(exchange, balance=10_000, maker_fee=MAKER, taker_fee=TAKER, leverage=20)
        server.trade_price(exchange, MARKET, 60_000)
        yield server
        assert server.unknown_requests == [], "ccxt called endpoints the fake does not serve"
        assert server.pending_faults() == [], "an injected fault was never triggered"


@pytest.fixture
def client(fake, exchange):
    client = create_ccxt_exchange(exchange, "swap", api_base_url=fake.base_url, timeout_ms=CLIENT_TIMEOUT_MS,
                                  credentials=ExchangeCredentials(exchange, "test-key", "test-secret"))
    client.enableRateLimit = False  # ccxt's throttle (up to 250 ms a call) only slows these tests down
    client.load_markets()
    return client


def limit(client, side: str, amount: float, price: float, cid: str, **params) -> dict:
    # postOnly without timeInForce: on Binance a timeInForce param overrides the GTX that postOnly sets
    time_in_force = {} if params.get("postOnly") else {"timeInForce": "GTC"}
    return client.create_order(SYMBOL, "limit", side, amount, price, {"clientOrderId": cid, **time_in_force,
                                                                      **params})


def stop_market(client, side: str, amount: float, trigger: float, cid: str) -> dict:
    # ccxt sends it to Binance's algo service (POST /fapi/v1/algoOrder, STOP_MARKET) and to Bybit as a
    # conditional market order (triggerDirection 2 for a sell, reduceOnly)
    return client.create_order(SYMBOL, "market", side, amount, None, {"clientOrderId": cid, "stopLossPrice": trigger,
                                                                      "reduceOnly": True})


def find(client, exchange: str, cid: str, trigger: bool = False) -> dict:
    """The order with this client id. Binance keeps stops in a book of their own (trigger=True); Bybit has no
    lookup by client id alone: the open orders, then the done ones."""
    if exchange == "binance":
        return client.fetch_order(None, SYMBOL, {"clientOrderId": cid, **({"trigger": True} if trigger else {})})
    for fetch in (client.fetch_open_orders, client.fetch_canceled_and_closed_orders):
        found = fetch(SYMBOL, None, None, {"orderLinkId": cid})
        if found:
            return found[0]
    raise ccxt.OrderNotFound(cid)


def cancel(client, exchange: str, cid: str, trigger: bool = False) -> dict:
    if exchange == "binance":
        return client.cancel_order(None, SYMBOL, {"clientOrderId": cid, **({"trigger": True} if trigger else {})})
    # Bybit: ccxt forwards params as they are, and Bybit wants orderLinkId (clientOrderId would be ignored)
    return client.cancel_order(None, SYMBOL, {"orderLinkId": cid})


def order_fee(client, exchange: str, order: dict) -> Decimal:
    """Binance reports fees only on the trades (userTrades); Bybit on the order (cumFeeDetail)."""
    if exchange == "binance":
        trades = client.fetch_my_trades(SYMBOL, None, None, {"orderId": order["id"]})
        return sum((Decimal(str(t["fee"]["cost"])) for t in trades), Decimal(0))
    return Decimal(str(order["fee"]["cost"]))


def position_amount(client) -> float:
    positions = [p for p in client.fetch_positions([SYMBOL]) if p["contracts"]]
    return sum(p["contracts"] * (1 if p["side"] == "long" else -1) for p in positions)


def test_limit_entry_placed_found_filled_by_a_price_move(fake, client, exchange):
    placed = limit(client, "buy", 0.01, 59_000, "cb-a-entry-0")
    posted = fake.requests[-1]
    assert (posted["method"], posted["path"]) == ("POST", ORDER_PATHS[exchange])
    # the body was parsed: a form for Binance, JSON for Bybit
    assert posted["params"]["newClientOrderId" if exchange == "binance" else "orderLinkId"] == "cb-a-entry-0"

    order = find(client, exchange, "cb-a-entry-0")
    assert (order["id"], order["clientOrderId"], order["status"]) == (placed["id"], "cb-a-entry-0", "open")
    assert (order["side"], order["type"], order["amount"], order["price"], order["filled"]) == \
        ("buy", "limit", 0.01, 59_000, 0)

    fake.trade_price(exchange, MARKET, 59_500)  # not low enough
    assert find(client, exchange, "cb-a-entry-0")["filled"] == 0
    fake.trade_price(exchange, MARKET, 58_900)  # through the limit: filled as maker at the limit price
    order = find(client, exchange, "cb-a-entry-0")
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, 59_000)
    assert order_fee(client, exchange, order) == Decimal("0.118")  # 590 USDT x 0.02 %

    (position,) = client.fetch_positions([SYMBOL])
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 0.01, 59_000)
    assert position["unrealizedPnl"] == -1.0  # (58,900 - 59,000) x 0.01
    assert fake.wallet_balance(exchange) == Decimal("9999.882")
    balance = client.fetch_balance()
    # Binance's total is the margin balance (wallet + unrealised P&L); Bybit's is the wallet balance, the equity
    # being in the raw totalEquity
    if exchange == "binance":
        assert balance["total"]["USDT"] == 9998.882
    else:
        assert balance["total"]["USDT"] == 9999.882
        assert balance["info"]["result"]["list"][0]["totalEquity"] == "9998.88200000"


def test_reduce_only_stop_and_take_profit_then_a_gap_fills_the_stop_at_the_worse_price(fake, client, exchange):
    entry = limit(client, "buy", 0.01, 60_100, "cb-b-entry-0")  # crosses the last price: taker, at 60,000
    entry = find(client, exchange, "cb-b-entry-0")
    assert (entry["status"], entry["average"]) == ("closed", 60_000)
    assert order_fee(client, exchange, entry) == Decimal("0.3")

    stop_market(client, "sell", 0.01, 59_000, "cb-b-sl-0")
    limit(client, "sell", 0.01, 62_000, "cb-b-tp1-0", reduceOnly=True)
    stop = find(client, exchange, "cb-b-sl-0", trigger=True)
    assert (stop["status"], stop["type"], stop["triggerPrice"], stop["reduceOnly"]) == ("open", "market", 59_000, True)
    take_profit = find(client, exchange, "cb-b-tp1-0")
    assert (take_profit["status"], take_profit["price"], take_profit["reduceOnly"]) == ("open", 62_000, True)

    # The open orders: the stops are asked for apart (Binance: openAlgoOrders; Bybit: orderFilter=StopOrder).
    # Bybit's unfiltered list holds the stops too: ask with orderFilter=Order for the limits alone.
    limits_only = {"orderFilter": "Order"} if exchange == "bybit" else {}
    assert [o["clientOrderId"] for o in client.fetch_open_orders(SYMBOL, None, None, limits_only)] == ["cb-b-tp1-0"]
    assert [o["clientOrderId"] for o in client.fetch_open_orders(SYMBOL, None, None, {"trigger": True})] == \
        ["cb-b-sl-0"]

    fake.trade_price(exchange, MARKET, 58_000)  # gaps through the trigger: filled at 58,000, not 59,000
    assert position_amount(client) == 0
    stop = find(client, exchange, "cb-b-sl-0", trigger=True)
    assert stop["status"] == "closed"
    if exchange == "binance":  # the algo order placed a market order: the fill is there
        assert stop["info"]["algoStatus"] == "FINISHED"
        stop = client.fetch_order(stop["info"]["actualOrderId"], SYMBOL)
        assert stop["status"] == "closed"
    assert (stop["filled"], stop["average"]) == (0.01, 58_000)
    assert order_fee(client, exchange, stop) == Decimal("0.29")  # taker: 580 x 0.05 %
    assert fake.wallet_balance(exchange) == Decimal("10000") - Decimal("0.3") - 20 - Decimal("0.29")

    # the take profit is still there (the fake never cancels it for the client): cancelled by its client id
    assert find(client, exchange, "cb-b-tp1-0")["status"] == "open"
    cancel(client, exchange, "cb-b-tp1-0")
    assert find(client, exchange, "cb-b-tp1-0")["status"] == "canceled"


@pytest.mark.parametrize("high, low, close, fill_price", [
    (60_050, 58_500, 58_800, 59_000),  # opens at the last price, 60,000, and trades down through the trigger
    (58_700, 58_000, 58_200, 58_700),  # wholly below 60,000: a gap, the candle opens at its high
])
def test_a_stop_fills_at_its_trigger_or_at_the_open_of_a_gap(fake, client, exchange, high, low, close, fill_price):
    limit(client, "buy", 0.01, 60_000, "cb-c-entry-0")
    stop_market(client, "sell", 0.01, 59_000, "cb-c-sl-0")
    fake.advance_price(exchange, MARKET, high=high, low=low, close=close)
    assert fake.position(exchange, MARKET) == (0, 0)
    (stop_fill,) = [f for f in fake.fills(exchange) if f.side == "sell"]
    assert (stop_fill.price, stop_fill.maker) == (fill_price, False)


def test_cancel_by_client_id_and_again(fake, client, exchange):
    limit(client, "sell", 0.01, 61_000, "cb-d-entry-0")
    cancelled = cancel(client, exchange, "cb-d-entry-0")
    if exchange == "binance":
        assert cancelled["status"] == "canceled"  # Bybit answers only the ids
    assert find(client, exchange, "cb-d-entry-0")["status"] == "canceled"
    assert client.fetch_open_orders(SYMBOL) == []
    with pytest.raises(ccxt.OrderNotFound):  # Binance -2011 "Unknown order sent.", Bybit 110001
        cancel(client, exchange, "cb-d-entry-0")


def test_stop_cancelled_by_client_id(fake, client, exchange):
    limit(client, "buy", 0.01, 60_000, "cb-e-entry-0")
    stop_market(client, "sell", 0.01, 59_000, "cb-e-sl-0")
    cancel(client, exchange, "cb-e-sl-0", trigger=True)
    stop = find(client, exchange, "cb-e-sl-0", trigger=True)
    assert stop["status"] == "canceled"
    assert stop["info"]["algoStatus" if exchange == "binance" else "orderStatus"] == \
        {"binance": "CANCELED", "bybit": "Deactivated"}[exchange]


def test_duplicate_client_id_is_refused(fake, client, exchange):
    limit(client, "buy", 0.01, 59_000, "cb-f-entry-0")
    with pytest.raises(ccxt.InvalidOrder) as refused:
        limit(client, "buy", 0.01, 59_000, "cb-f-entry-0")
    # ccxt maps neither -4116 nor 110072 to DuplicateOrderId: the code is only in the message
    assert not isinstance(refused.value, ccxt.DuplicateOrderId)
    assert {"binance": "-4116", "bybit": "110072"}[exchange] in str(refused.value)
    assert len(client.fetch_open_orders(SYMBOL)) == 1


def test_partial_fill_is_open_with_filled_below_amount(fake, client, exchange):
    limit(client, "buy", 0.02, 59_000, "cb-g-entry-0")
    fake.fill(exchange, "cb-g-entry-0", 0.005)
    order = find(client, exchange, "cb-g-entry-0")
    assert (order["status"], order["filled"], order["remaining"], order["amount"]) == ("open", 0.005, 0.015, 0.02)
    assert order["info"]["status" if exchange == "binance" else "orderStatus"] == \
        {"binance": "PARTIALLY_FILLED", "bybit": "PartiallyFilled"}[exchange]
    assert position_amount(client) == 0.005

    fake.fill(exchange, "cb-g-entry-0", 0.015, price=58_990)  # the rest, at a better price
    order = find(client, exchange, "cb-g-entry-0")
    assert (order["status"], order["filled"]) == ("closed", 0.02)
    assert order["average"] == pytest.approx(58_992.5)


@pytest.mark.parametrize("how", ["balance", "fault"])
def test_insufficient_margin_raises_insufficient_funds(fake, client, exchange, how):
    if how == "balance":
        fake.set_account(exchange, balance=100)  # 0.1 BTC at 59,000 needs 295 USDT at 20x
    else:
        fake.inject(exchange, ORDER_PATHS[exchange], "insufficient_margin", method="POST")
    # Binance -2019 is mapped for fapi URLs only: the factory names the rebased URL's Binance host
    with pytest.raises(ccxt.InsufficientFunds):
        limit(client, "buy", 0.1, 59_000, "cb-h-entry-0")
    assert fake.order(exchange, "cb-h-entry-0") is None


@pytest.mark.parametrize("case", ["reduce_only_without_position", "stop_already_triggered", "post_only_crossing"])
def test_refusals(fake, client, exchange, case):
    if case == "reduce_only_without_position":
        with pytest.raises(ccxt.InvalidOrder):  # Binance -2022, Bybit 110017
            limit(client, "sell", 0.01, 61_000, "cb-i-tp1-0", reduceOnly=True)
    elif case == "stop_already_triggered":
        limit(client, "buy", 0.01, 60_000, "cb-i-entry-0")
        with pytest.raises({"binance": ccxt.OrderImmediatelyFillable, "bybit": ccxt.InvalidOrder}[exchange]):
            stop_market(client, "sell", 0.01, 60_500, "cb-i-sl-0")  # -2021, 110093 "expect Falling, ..."
    else:
        if exchange == "binance":  # -5022: refused, and not recorded
            with pytest.raises(ccxt.OrderNotFillable):
                limit(client, "buy", 0.01, 60_100, "cb-i-entry-0", postOnly=True)
            assert fake.order(exchange, "cb-i-entry-0") is None
        else:  # Bybit takes it and cancels it at once
            limit(client, "buy", 0.01, 60_100, "cb-i-entry-0", postOnly=True)
            order = find(client, exchange, "cb-i-entry-0")
            assert (order["status"], order["info"]["rejectReason"]) == ("canceled", "EC_PostOnlyWillTakeLiquidity")


def test_rate_limited_order_is_not_taken(fake, client, exchange):
    fake.inject(exchange, ORDER_PATHS[exchange], "http_429", method="POST")
    # Binance: HTTP 429 -> DDoSProtection; Bybit: HTTP 200 retCode 10006 -> RateLimitExceeded
    with pytest.raises({"binance": ccxt.DDoSProtection, "bybit": ccxt.RateLimitExceeded}[exchange]):
        limit(client, "buy", 0.01, 59_000, "cb-j-entry-0")
    assert fake.order(exchange, "cb-j-entry-0") is None
    limit(client, "buy", 0.01, 59_000, "cb-j-entry-0")  # the send again goes through
    assert find(client, exchange, "cb-j-entry-0")["status"] == "open"


def test_timeout_after_accepting_then_found_by_client_id(fake, client, exchange):
    fake.inject(exchange, ORDER_PATHS[exchange], "timeout", method="POST")
    with pytest.raises(ccxt.RequestTimeout):
        limit(client, "buy", 0.01, 59_000, "cb-k-entry-0")
    order = find(client, exchange, "cb-k-entry-0")  # the exchange took it before the answer was lost
    assert (order["status"], order["amount"]) == ("open", 0.01)


def test_not_found_fault(fake, client, exchange):
    limit(client, "buy", 0.01, 59_000, "cb-l-entry-0")
    fake.inject(exchange, CANCEL_PATHS[exchange], "not_found", method=CANCEL_METHODS[exchange])
    with pytest.raises(ccxt.OrderNotFound):
        cancel(client, exchange, "cb-l-entry-0")
    assert find(client, exchange, "cb-l-entry-0")["status"] == "open"  # the fault did not cancel it
    if exchange == "binance":
        fake.inject(exchange, "/fapi/v1/order", "not_found", method="GET")
        with pytest.raises(ccxt.OrderNotFound):  # -2013 "Order does not exist."
            find(client, exchange, "cb-l-entry-0")
    else:  # Bybit's lookups say "not found" with an empty list
        fake.inject(exchange, "/v5/order/realtime", "not_found")
        assert client.fetch_open_orders(SYMBOL, None, None, {"orderLinkId": "cb-l-entry-0"}) == []


def test_added_symbol_has_precision_and_limits(fake, client, exchange):
    market = client.market("SOL/USDT:USDT")  # not BTC/ETH: the generic contract (tick 0.001, lot 0.1)
    assert (market["precision"]["price"], market["precision"]["amount"]) == (0.001, 0.1)
    assert (market["limits"]["amount"]["min"], market["limits"]["cost"]["min"]) == (0.1, 5)
    fake.trade_price(exchange, "SOLUSDT", 150)
    client.create_order("SOL/USDT:USDT", "limit", "buy", 1, 149.5, {"clientOrderId": "cb-m-entry-0"})
    assert fake.order(exchange, "cb-m-entry-0").price == Decimal("149.500")


# -- the stop that closes the whole position, placed with the entry ------------------------------------------

def close_position_stop(client, exchange: str, side: str, trigger: float, cid: str, **extra) -> dict:
    """Binance: STOP_MARKET closePosition=true, no quantity (ccxt sends none with it) and no reduceOnly; Bybit:
    a conditional market order with qty 0, reduceOnly and closeOnTrigger (ccxt leaves a zero amount out: the qty
    goes as a raw parameter)."""
    if exchange == "binance":
        params = {"closePosition": True}
    else:
        params = {"reduceOnly": True, "closeOnTrigger": True, "qty": "0"}
    amount = None if exchange == "binance" else 0
    return client.create_order(SYMBOL, "market", side, amount, None, {"clientOrderId": cid, "stopLossPrice": trigger,
                                                                      **params, **extra})


def test_a_close_position_stop_is_taken_without_a_position_and_closes_the_whole_one_it_finds(fake, client,
                                                                                           exchange):
    close_position_stop(client, exchange, "sell", 59_000, "cb-n-sl-0")
    sent = fake.requests[-1]["params"]
    if exchange == "binance":
        assert fake.requests[-1]["path"] == "/fapi/v1/algoOrder"
        assert (sent["type"], sent["closePosition"], sent["clientAlgoId"]) == ("STOP_MARKET", "true", "cb-n-sl-0")
        assert "quantity" not in sent and "reduceOnly" not in sent
    else:
        assert (sent["qty"], sent["reduceOnly"], sent["closeOnTrigger"], sent["orderLinkId"]) == (
            "0", "true", "true", "cb-n-sl-0")
    stop = find(client, exchange, "cb-n-sl-0", trigger=True)
    # no size of its own: Binance's quantity is 0 (ccxt omits a zero: None), Bybit's qty 0
    assert (stop["status"], stop["amount"], stop["triggerPrice"]) == ("open", None if exchange == "binance" else 0,
                                                                      59_000)
    assert stop["info"]["closePosition" if exchange == "binance" else "closeOnTrigger"] is True
    assert fake.book(exchange).order_margin() == 0  # it holds no margin

    limit(client, "buy", 0.01, 59_500, "cb-n-entry-0")
    limit(client, "buy", 0.02, 59_200, "cb-n-entry-1")
    fake.trade_price(exchange, MARKET, 59_100)  # both entries fill: 0.03 long
    assert position_amount(client) == pytest.approx(0.03)
    fake.trade_price(exchange, MARKET, 58_800)  # a gap through the stop: all of it closed, at 58 800
    assert fake.position(exchange, MARKET) == (0, 0)
    (closing,) = [f for f in fake.fills(exchange) if f.side == "sell"]
    assert (closing.qty, closing.price, closing.maker) == (Decimal("0.03"), 58_800, False)
    stop = find(client, exchange, "cb-n-sl-0", trigger=True)
    if exchange == "binance":  # the algo order placed a market order of the position's size
        assert stop["info"]["algoStatus"] == "FINISHED"
        stop = client.fetch_order(stop["info"]["actualOrderId"], SYMBOL)
    assert (stop["status"], stop["amount"], stop["filled"], stop["average"]) == ("closed", 0.03, 0.03, 58_800)


def test_a_close_position_stop_triggered_with_no_position_expires(fake, client, exchange):
    close_position_stop(client, exchange, "sell", 59_000, "cb-o-sl-0")
    fake.trade_price(exchange, MARKET, 58_000)
    assert fake.position(exchange, MARKET) == (0, 0) and fake.fills(exchange) == []
    stop = find(client, exchange, "cb-o-sl-0", trigger=True)
    if exchange == "binance":
        assert stop["info"]["algoStatus"] == "FINISHED"
        stop = client.fetch_order(stop["info"]["actualOrderId"], SYMBOL)
        assert (stop["info"]["status"], stop["status"]) == ("EXPIRED", "expired")
    else:
        assert (stop["info"]["orderStatus"], stop["info"]["cancelType"]) == ("Cancelled", "CancelByReduceOnly")


def test_an_entry_the_move_fills_comes_before_the_close_position_stop_it_falls_through(fake, client, exchange):
    limit(client, "buy", 0.01, 59_000, "cb-p-entry-0")
    close_position_stop(client, exchange, "sell", 58_000, "cb-p-sl-0")
    fake.advance_price(exchange, MARKET, high=60_000, low=57_900, close=58_100)  # 60 000 -> 59 000 -> 58 000
    assert fake.position(exchange, MARKET) == (0, 0)
    assert [(f.side, f.price) for f in fake.fills(exchange)] == [("buy", 59_000), ("sell", 58_000)]


@pytest.mark.parametrize("exchange", ["binance"])
@pytest.mark.parametrize("extra, code", [({"quantity": "0.01"}, "-4137"), ({"reduceOnly": True}, "-1106")])
def test_binance_refuses_a_quantity_or_reduce_only_beside_close_position(fake, client, exchange, extra, code):
    with pytest.raises(ccxt.BaseError) as refused:
        close_position_stop(client, exchange, "sell", 59_000, "cb-q-sl-0", **extra)
    assert code in str(refused.value)
    assert fake.order(exchange, "cb-q-sl-0") is None


def test_a_close_position_stop_that_would_trigger_at_once_is_refused(fake, client, exchange):
    with pytest.raises({"binance": ccxt.OrderImmediatelyFillable, "bybit": ccxt.InvalidOrder}[exchange]) as refused:
        close_position_stop(client, exchange, "sell", 60_500, "cb-r-sl-0")
    assert {"binance": "-2021", "bybit": "110093"}[exchange] in str(refused.value)


def test_the_rejected_fault_refuses_a_stop_as_the_exchange_does(fake, client, exchange):
    path = {"binance": "/fapi/v1/algoOrder", "bybit": "/v5/order/create"}[exchange]
    fake.inject(exchange, path, "rejected", method="POST")
    with pytest.raises({"binance": ccxt.OrderImmediatelyFillable, "bybit": ccxt.InvalidOrder}[exchange]) as refused:
        close_position_stop(client, exchange, "sell", 59_000, "cb-s-sl-0")  # fine, but refused
    assert {"binance": "Order would immediately trigger.",
            "bybit": "expect Falling, but trigger_price[59000] >= current[60000.0]"}[exchange] in str(refused.value)
    assert fake.order(exchange, "cb-s-sl-0") is None
    close_position_stop(client, exchange, "sell", 59_000, "cb-s-sl-0")  # once only
    assert find(client, exchange, "cb-s-sl-0", trigger=True)["status"] == "open"


def test_a_reduce_only_market_order_fills_at_once_at_the_last_price_as_taker(fake, client, exchange):
    limit(client, "buy", 0.01, 60_000, "cb-t-entry-0")  # at the last price: taker
    fake.trade_price(exchange, MARKET, 60_400)
    client.create_order(SYMBOL, "market", "sell", 0.01, None, {"clientOrderId": "cb-t-close-0", "reduceOnly": True})
    order = find(client, exchange, "cb-t-close-0")
    assert (order["status"], order["filled"], order["average"]) == ("closed", 0.01, 60_400)
    assert order_fee(client, exchange, order) == Decimal("0.302")  # 604 x 0.05 %
    assert fake.position(exchange, MARKET) == (0, 0)
    with pytest.raises(ccxt.InvalidOrder):  # nothing left to reduce: refused on arrival (-2022, 110017)
        client.create_order(SYMBOL, "market", "sell", 0.01, None, {"clientOrderId": "cb-t-close-1",
                                                                   "reduceOnly": True})


def test_the_free_balance_is_what_orders_can_use(fake, client, exchange):
    limit(client, "buy", 0.02, 59_000, "cb-u-entry-0")  # rests: 1 180 notional, 59 at 20x
    free = Decimal(str(client.fetch_balance()["free"]["USDT"]))
    if exchange == "binance":  # availableBalance
        assert free == Decimal(10_000) - 59
    else:  # ccxt's free on the unified account is the wallet less IM; totalAvailableBalance is the one to read
        assert free == Decimal(10_000) - 59
    fake.trade_price(exchange, MARKET, 58_000)  # filled at 59 000, 20 USDT under water at 58 000
    balance = client.fetch_balance()
    if exchange == "binance":
        assert Decimal(str(balance["free"]["USDT"])) == Decimal(10_000) - Decimal("0.236") - 20 - 58
    else:
        account = balance["info"]["result"]["list"][0]
        assert Decimal(account["totalAvailableBalance"]) == Decimal(10_000) - Decimal("0.236") - 20 - 58
        assert Decimal(str(balance["free"]["USDT"])) == Decimal(10_000) - Decimal("0.236") - 58  # no loss in it
