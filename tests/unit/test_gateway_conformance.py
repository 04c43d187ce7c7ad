"""One conformance suite for the three exchange gateways the engine and the manager trade
through: the paper exchange, and ccxt on Binance USDⓈ-M and Bybit linear (the real ccxt client
against the fake exchange at its HTTP boundary). The same scenario, the same figures to the
cent: a trade from entry to stop; the stop placed with the entry that closes the whole position;
free margin; the market order that closes at once. Then what only a remote exchange can do to
us: a timeout after it took the order, a rate limit, a 5xx, insufficient margin, a refused stop,
an order it cannot find."""
from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from common.config import load_config
from common.exchange.ccxt_factory import create_ccxt_exchange
from common.exchange.ccxt_gateway import CcxtGateway
from common.trade.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest, client_order_id
from common.exchange.paper import Bar, PaperExchange
from common.exchange.retry import RetryPolicy
from common.secrets import ExchangeCredentials
from common.symbols import SymbolMap
from common.trading_config import default_rows, parse_trading_config
from tests.fake_exchange import FakeExchange

SYMBOL = "BTCUSDT"
MINUTE = 60_000
T0 = 1_786_924_800_000
CLIENT_TIMEOUT_MS = 1000
ORDER_POST = {"binance": ("/fapi/v1/order", "POST"), "bybit": ("/v5/order/create", "POST")}
ORDER_GET = {"binance": ("/fapi/v1/order", "GET"), "bybit": ("/v5/order/realtime", "GET")}
CANCEL = {"binance": ("/fapi/v1/order", "DELETE"), "bybit": ("/v5/order/cancel", "POST")}


def cid(leg: str, version: int = 0) -> str:
    return client_order_id("conformance-signal", leg, version)


class PaperVenue:
    """The paper exchange, its market moved one 1m bar at a time (at the fake's leverage)."""

    name = "paper"

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        self.gateway = self._exchange(D(10_000))
        self.next_open, self.last = T0, 60_000

    def _exchange(self, equity: D) -> PaperExchange:
        gateway = PaperExchange("binance", self.tmp_path / f"paper-{equity}.json", equity, D("0.02"), D("0.05"), D(0),
                                leverage=D(20))
        gateway.set_rules(SYMBOL, D(60_000))
        gateway.set_clock(SYMBOL, T0 - 1)
        return gateway

    def empty_account(self) -> None:
        self.gateway = self._exchange(D(0))

    def move(self, high, low, close, open=None):  # noqa: A002 (a candle's open)
        open = open or min(max(self.last, low), high)  # as the fake's: from the last price  # noqa: A001
        self.gateway.advance([Bar(SYMBOL, self.next_open, D(str(open)), D(str(high)), D(str(low)), D(str(close)))])
        self.next_open, self.last = self.next_open + MINUTE, close

    def next_bar(self):
        """A flat bar at the last price: what paper needs to fill a market order (at the open)."""
        self.move(high=self.last, low=self.last, close=self.last)


class CcxtVenue:
    """ccxt's client on the fake exchange, through our gateway."""

    def __init__(self, exchange: str, fake: FakeExchange):
        self.name = self.exchange = exchange
        self.fake = fake
        client = create_ccxt_exchange(exchange, "swap", api_base_url=fake.base_url, timeout_ms=CLIENT_TIMEOUT_MS,
                                      credentials=ExchangeCredentials(exchange, "test-key", "test-secret"))
        client.enableRateLimit = False  # ccxt's throttle only slows the tests down
        client.load_markets()
        self.gateway = CcxtGateway(client, exchange, "testnet", SymbolMap("swap"),
                                   RetryPolicy(max_attempts=3, base_delay_s=0.0), sleep=lambda seconds: None)

    def move(self, high, low, close, open=None):  # noqa: A002
        self.fake.advance_price(self.exchange, SYMBOL, high=high, low=low, close=close, open=open)

    def next_bar(self):
        pass  # a market order has filled already

    def empty_account(self) -> None:
        self.fake.set_account(self.exchange, balance=0)


@pytest.fixture
def fake():
    with FakeExchange({}, symbols=(SYMBOL,)) as server:
        server.timeout_sleep_s = CLIENT_TIMEOUT_MS / 1000 + 0.3  # just past the client's patience
        for exchange in ("binance", "bybit"):
            server.set_account(exchange, balance=10_000, maker_fee="0.0002", taker_fee="0.0005", leverage=20)
            server.trade_price(exchange, SYMBOL, 60_000)
        yield server
        assert server.unknown_requests == [], "the gateway called endpoints the fake does not serve"
        assert server.pending_faults() == [], "an injected fault was never triggered"


@pytest.fixture(params=["paper", "binance", "bybit"])
def venue(request, tmp_path, fake):
    return PaperVenue(tmp_path) if request.param == "paper" else CcxtVenue(request.param, fake)


@pytest.fixture(params=["binance", "bybit"])
def remote(request, fake):
    return CcxtVenue(request.param, fake)


def limit(leg: str, side: str, amount: str, price: int, version: int = 0, reduce_only: bool = False):
    return OrderRequest(cid(leg, version), SYMBOL, side, "limit", D(amount), D(price), reduce_only=reduce_only)


def stop(side: str, amount: str, trigger: int, version: int = 0):
    return OrderRequest(cid("sl", version), SYMBOL, side, "stop_market", D(amount), stop_price=D(trigger),
                        reduce_only=True)


def close_position_stop(side: str, trigger: int, version: int = 0):
    """The stop the engine places with the entry (its amount is the entry's, and is not sent)."""
    return OrderRequest(cid("sl", version), SYMBOL, side, "stop_market", D("0.01"), stop_price=D(trigger),
                        reduce_only=True, close_position=True)


def test_a_trade_from_entry_to_tp1_then_a_gap_through_the_breakeven_stop(venue):
    gateway = venue.gateway
    placed = gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert (placed.client_order_id, placed.status, placed.filled, placed.amount, placed.price) == (
        cid("entry"), "open", 0, D("0.01"), D(59_000))
    assert gateway.find_order(SYMBOL, cid("entry")).status == "open"
    assert [o.client_order_id for o in gateway.open_orders(SYMBOL)] == [cid("entry")]

    venue.move(high=59_500, low=58_900, close=59_200)  # reaches the limit: filled at 59 000, maker
    entry = gateway.find_order(SYMBOL, cid("entry"))
    assert (entry.status, entry.filled, entry.average_price, entry.fee) == ("closed", D("0.01"), D(59_000),
                                                                            D("0.118"))
    assert gateway.position_amount(SYMBOL) == D("0.01")

    gateway.place_order(stop("sell", "0.01", 58_000))
    gateway.place_order(limit("tp1", "sell", "0.005", 61_000, reduce_only=True))
    gateway.place_order(limit("tp2", "sell", "0.005", 62_000, reduce_only=True))
    resting = {o.client_order_id: (o.order_type, o.reduce_only, o.stop_price or o.price)
               for o in gateway.open_orders(SYMBOL)}
    assert resting == {cid("sl"): ("stop_market", True, D(58_000)), cid("tp1"): ("limit", True, D(61_000)),
                       cid("tp2"): ("limit", True, D(62_000))}

    venue.move(high=61_500, low=59_100, close=61_200)  # TP1
    assert gateway.find_order(SYMBOL, cid("tp1")).status == "closed"
    assert gateway.position_amount(SYMBOL) == D("0.005")
    assert gateway.cancel_order(SYMBOL, cid("sl")).status == "canceled"  # replaced at breakeven
    gateway.place_order(stop("sell", "0.005", 59_000, version=1))

    venue.move(open=58_500, high=58_600, low=58_000, close=58_200)  # gaps through it: filled at the open
    sl = gateway.find_order(SYMBOL, cid("sl", 1))
    assert (sl.status, sl.filled, sl.average_price) == ("closed", D("0.005"), D(58_500))
    assert sl.fee == D("0.14625")  # taker: 0.005 x 58 500 x 0.05 %
    assert gateway.position_amount(SYMBOL) == 0
    assert gateway.cancel_order(SYMBOL, cid("tp2")).status == "canceled"
    assert gateway.open_orders(SYMBOL) == []
    # +10 at TP1, -2.5 at the stop; fees 0.118 + 0.061 + 0.14625
    assert gateway.equity() == D("10007.17475")


def test_a_client_id_is_one_order_however_often_it_is_sent(venue):
    first = venue.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    again = venue.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert again.exchange_order_id == first.exchange_order_id
    assert len(venue.gateway.open_orders(SYMBOL)) == 1


def test_an_unknown_client_id_is_not_found_and_cannot_be_cancelled(venue):
    assert venue.gateway.find_order(SYMBOL, cid("entry")) is None
    with pytest.raises(OrderRejected):
        venue.gateway.cancel_order(SYMBOL, cid("entry"))


@pytest.mark.parametrize("bars", ["entry then stop", "one bar"])
def test_a_close_position_stop_placed_before_the_entry_fills_closes_the_whole_position(venue, bars):
    gateway = venue.gateway
    gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    placed = gateway.place_order(close_position_stop("sell", 58_000))
    assert (placed.status, placed.order_type, placed.close_position, placed.reduce_only, placed.stop_price,
            placed.amount, placed.filled) == ("open", "stop_market", True, True, D(58_000), 0, 0)
    assert {o.client_order_id: o.close_position for o in gateway.open_orders(SYMBOL)} == {
        cid("entry"): False, cid("sl"): True}

    if bars == "entry then stop":
        venue.move(high=59_500, low=58_900, close=59_200)  # the entry fills at 59 000
        assert gateway.position_amount(SYMBOL) == D("0.01")
        assert gateway.find_order(SYMBOL, cid("sl")).status == "open"
        venue.move(high=59_300, low=57_900, close=58_100)  # through the stop
    else:  # the entry's bar falls on through the stop: stopped out on it
        venue.move(high=59_500, low=57_900, close=58_100)
    assert gateway.position_amount(SYMBOL) == 0
    sl = gateway.find_order(SYMBOL, cid("sl"))
    assert (sl.status, sl.close_position, sl.amount, sl.filled, sl.average_price) == (
        "closed", True, D("0.01"), D("0.01"), D(58_000))
    assert sl.fee == D("0.29")  # taker: 580 x 0.05 %
    assert gateway.open_orders(SYMBOL) == []
    assert gateway.equity() == D(10_000) - D("0.118") - 10 - D("0.29")


def test_a_close_position_stop_triggered_with_no_position_opens_none(venue):
    gateway = venue.gateway
    gateway.place_order(close_position_stop("sell", 58_000))
    venue.move(high=60_000, low=57_500, close=57_800)  # through it, with nothing to close
    assert gateway.position_amount(SYMBOL) == 0
    sl = gateway.find_order(SYMBOL, cid("sl"))
    # an exchange triggers it and expires it; paper does not trigger it: it waits for a position
    assert (sl.status, sl.filled) == ("open" if venue.name == "paper" else "canceled", 0)
    assert gateway.equity() == D(10_000)


def test_free_margin_falls_by_the_margin_of_a_resting_entry_and_of_an_open_position(venue):
    gateway = venue.gateway
    assert gateway.free_margin() == D(10_000)
    gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    gateway.place_order(close_position_stop("sell", 58_000))  # a stop holds no margin
    assert gateway.free_margin() == D(10_000) - D("29.5")  # 590 notional at 20x
    venue.move(high=59_500, low=58_900, close=59_000)  # filled: the position holds it now, less the fee
    assert gateway.free_margin() == D(10_000) - D("0.118") - D("29.5")


def test_free_margin_is_zero_on_an_empty_account(venue):
    venue.empty_account()
    assert venue.gateway.free_margin() == 0


def test_a_reduce_only_market_order_closes_the_position_at_once(venue):
    gateway = venue.gateway
    gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    venue.move(high=59_500, low=58_900, close=59_000)
    close = OrderRequest(cid("close"), SYMBOL, "sell", "market", D("0.01"), reduce_only=True)
    placed = gateway.place_order(close)
    assert (placed.order_type, placed.reduce_only) == ("market", True)
    venue.next_bar()  # paper: it fills at the next bar's open
    closed = gateway.find_order(SYMBOL, cid("close"))
    assert (closed.status, closed.filled, closed.average_price, closed.fee) == ("closed", D("0.01"), D(59_000),
                                                                               D("0.295"))
    assert gateway.position_amount(SYMBOL) == 0
    assert gateway.equity() == D(10_000) - D("0.118") - D("0.295")


# -- what only a remote exchange does -------------------------------------------------------------

def test_market_rules_come_from_ccxts_market_data(remote):
    rules = remote.gateway.market_rules(SYMBOL)
    assert (rules.amount_step, rules.price_step, rules.min_notional) == (D("0.001"), D("0.1"), D(5))


def test_an_order_taken_whose_answer_is_lost_is_unknown_then_found_never_resent(remote):
    path, method = ORDER_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, "timeout", method=method)
    with pytest.raises(OrderOutcomeUnknown):
        remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    found = remote.gateway.find_order(SYMBOL, cid("entry"))
    assert (found.status, found.amount) == ("open", D("0.01"))
    posts = [r for r in remote.fake.requests if r["path"] == path and r["method"] == method]
    assert len(posts) == 1  # sent once: the lookup settled it


@pytest.mark.parametrize("fault", ["http_500", "http_503"])
def test_a_failed_answer_to_an_order_is_unknown_not_rejected(remote, fault):
    path, method = ORDER_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, fault, method=method)
    with pytest.raises(OrderOutcomeUnknown):
        remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert remote.gateway.find_order(SYMBOL, cid("entry")).status == "open"  # the fake took it


def test_a_garbled_answer_to_an_order_is_settled_by_the_lookup_that_follows_every_send(remote):
    path, method = ORDER_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, "malformed", method=method)
    placed = remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert (placed.client_order_id, placed.status) == (cid("entry"), "open")
    assert len(remote.gateway.open_orders(SYMBOL)) == 1


def test_a_rate_limited_order_was_not_taken_and_is_sent_again(remote):
    path, method = ORDER_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, "http_429", method=method)
    placed = remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert placed.status == "open" and len(remote.gateway.open_orders(SYMBOL)) == 1


def test_insufficient_margin_is_a_final_rejection_with_the_exchanges_words(remote):
    path, method = ORDER_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, "insufficient_margin", method=method)
    with pytest.raises(OrderRejected) as rejected:
        remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    assert ("Margin is insufficient" if remote.exchange == "binance" else "110007") in str(rejected.value)
    assert remote.gateway.find_order(SYMBOL, cid("entry")) is None


STOP_POST = {"binance": ("/fapi/v1/algoOrder", "POST"), "bybit": ("/v5/order/create", "POST")}


def test_a_stop_the_exchange_rejects_is_a_final_rejection_with_its_words(remote):
    path, method = STOP_POST[remote.exchange]
    remote.fake.inject(remote.exchange, path, "rejected", method=method)
    with pytest.raises(OrderRejected) as rejected:
        remote.gateway.place_order(close_position_stop("sell", 58_000))
    assert ("Order would immediately trigger" if remote.exchange == "binance" else "110093") in str(rejected.value)
    assert remote.gateway.find_order(SYMBOL, cid("sl")) is None
    posts = [r for r in remote.fake.requests if r["path"] == path and r["method"] == method]
    assert len(posts) == 1  # final: not sent again


def test_lookups_ride_out_temporary_errors(remote):
    remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    path, method = ORDER_GET[remote.exchange]
    remote.fake.inject(remote.exchange, path, "http_503", method=method)
    assert remote.gateway.find_order(SYMBOL, cid("entry")).status == "open"


def test_a_cancel_the_exchange_cannot_match_is_settled_by_a_lookup(remote):
    remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    remote.move(high=59_500, low=58_900, close=59_200)  # filled meanwhile
    path, method = CANCEL[remote.exchange]
    remote.fake.inject(remote.exchange, path, "not_found", method=method)
    assert remote.gateway.cancel_order(SYMBOL, cid("entry")).status == "closed"


def test_a_partial_fill_is_reported_as_it_is(remote):
    remote.gateway.place_order(limit("entry", "buy", "0.01", 59_000))
    remote.fake.fill(remote.exchange, cid("entry"), "0.004")
    entry = remote.gateway.find_order(SYMBOL, cid("entry"))
    assert (entry.status, entry.filled, entry.average_price) == ("open", D("0.004"), D(59_000))
    assert remote.gateway.position_amount(SYMBOL) == D("0.004")


def test_the_trading_jobs_build_the_testnet_gateway_from_config_and_keys(fake, tmp_path):
    from dataclasses import replace

    from common.config import ConfigError
    from common.exchange.account import build_gateway, key_fingerprint

    config = load_config(env={"CRYPTOBOT_EXECUTION__API_BASE_URL": fake.base_url,
                              "CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path)})
    values = {row["param_name"]: row["param_value"] for row in default_rows()}
    trading = parse_trading_config({**values, "paper_trading": "false", "trading_exchange": "bybit"})
    testnet_keys = {"CRYPTOBOT_BYBIT_TESTNET_API_KEY": "test-key", "CRYPTOBOT_BYBIT_TESTNET_API_SECRET": "test-secret"}
    live_keys = {"CRYPTOBOT_BYBIT_LIVE_API_KEY": "live-key", "CRYPTOBOT_BYBIT_LIVE_API_SECRET": "live-secret"}

    def environment(patch, **variables):
        for name in (*testnet_keys, *live_keys, "CRYPTOBOT_BYBIT_API_KEY", "CRYPTOBOT_BYBIT_API_SECRET"):
            patch.delenv(name, raising=False)
        for name, value in {"CRYPTOBOT_SECRETS_FILE": str(tmp_path / "none.toml"), **variables}.items():
            patch.setenv(name, value)

    with pytest.MonkeyPatch.context() as patch:
        environment(patch, **testnet_keys, **live_keys)
        gateway = build_gateway(config, trading)
    assert (gateway.name, gateway.mode, gateway.equity()) == ("bybit", "testnet", D(10_000))
    assert gateway.account == key_fingerprint("test-key")  # the testnet's key, not the live one
    with pytest.MonkeyPatch.context() as patch:
        environment(patch, **live_keys)  # live keys only: never used for the testnet
        with pytest.raises(ConfigError, match="needs bybit testnet API keys: set CRYPTOBOT_BYBIT_TESTNET_API_KEY"):
            build_gateway(config, trading)
    with pytest.MonkeyPatch.context() as patch:
        environment(patch, **testnet_keys, CRYPTOBOT_LIVE_TRADING="bybit")  # testnet keys never sign live orders
        with pytest.raises(ConfigError, match="needs bybit live API keys: set CRYPTOBOT_BYBIT_LIVE_API_KEY"):
            build_gateway(load_config(env={"CRYPTOBOT_PATHS__DATA_DIR": str(tmp_path)}),
                          replace(trading, use_testnet=False))
    with pytest.MonkeyPatch.context() as patch:
        environment(patch, CRYPTOBOT_BYBIT_API_KEY="old-key", CRYPTOBOT_BYBIT_API_SECRET="old-secret")
        with pytest.raises(ConfigError, match="CRYPTOBOT_BYBIT_API_KEY.* no longer read"):
            build_gateway(config, trading)
