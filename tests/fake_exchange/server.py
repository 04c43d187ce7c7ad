"""A fake Binance USDⓈ-M futures / Bybit v5 (linear) / OKX v5 (SWAP) REST API on 127.0.0.1.

It answers in each exchange's real formats (envelopes, numbers as strings, row order, page limits,
error bodies), so the real ccxt client with `urls['api']` pointed at `base_url` parses real payloads.

Public market data for the three; the private trading endpoints for Binance USDⓈ-M and Bybit v5 linear:
orders (limits, post-only, markets, stop-markets: Binance's algo orders, and the stops that close the whole
position: Binance's closePosition, Bybit's qty 0 closeOnTrigger), lookups, cancels, positions (one-way mode),
the USDT wallet and the account's trades. The signatures are not checked. The test
drives the market: `trade_price` / `advance_price` move the last price and fill or trigger what rests
in the book, `fill` fills part of an order. See "Trading" below for the rules the fake applies.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
FUNDING_EVERY_MS = 8 * HOUR
# timeout: the request is served (an order is accepted) but answered only after `timeout_sleep_s`;
# http_429: refused as rate limited, not served; http_500/http_503: served, the answer replaced by a gateway
# error page; malformed: served, the JSON cut off; insufficient_margin: refused with the exchange's
# insufficient margin/balance error; not_found: answered with the exchange's "order does not exist";
# rejected: not served, refused as the exchange refuses a stop that would trigger at once (Binance -2021
# "Order would immediately trigger.", Bybit 110092/110093 "expect Rising/Falling, but trigger_price[..]..."):
# the refusal a stop loss gets when the market has already passed it.
FAULTS = ("timeout", "http_429", "http_500", "http_503", "malformed", "insufficient_margin", "not_found",
          "rejected")
TRADING_EXCHANGES = ("binance", "bybit")

Candle = tuple[int, float, float, float, float, float]  # open_time_ms, open, high, low, close, volume


@dataclass(frozen=True)
class _Contract:
    tick: str           # price tick
    lot: str            # quantity step in base units (Binance, Bybit)
    max_qty: str
    okx_ct_val: str     # OKX swaps trade in contracts of ctVal base units
    okx_lot: str        # ... and their lot/min size counts contracts
    open_interest: float  # base units, the level the fake open interest moves around


_CONTRACTS = {
    "BTC": _Contract("0.1", "0.001", "1000", "0.01", "0.01", 80_000.0),
    "ETH": _Contract("0.01", "0.001", "10000", "0.1", "0.01", 2_000_000.0),
}
_OTHER_CONTRACT = _Contract("0.001", "0.1", "1000000", "1", "1", 10_000_000.0)
_MIN_NOTIONAL = "5"

# Each exchange's interval notation -> our canonical one (the series keys use the canonical one).
_BINANCE_INTERVALS = {iv: iv for iv in ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                                        "1d", "3d", "1w")}
_BYBIT_INTERVALS = {"1": "1m", "3": "3m", "5": "5m", "15": "15m", "30": "30m", "60": "1h", "120": "2h",
                    "240": "4h", "360": "6h", "720": "12h", "D": "1d", "W": "1w"}
# OKX's 6H and longer bars are Hong Kong-aligned unless suffixed "utc" (ccxt sends the utc ones): only those served.
_OKX_BARS = {"1m": "1m", "3m": "3m", "5m": "5m", "15m": "15m", "30m": "30m", "1H": "1h", "2H": "2h", "4H": "4h",
             "6Hutc": "6h", "12Hutc": "12h", "1Dutc": "1d", "1Wutc": "1w"}
# Periods of the open interest / long-short statistics.
_BINANCE_STAT_PERIODS = {p: p for p in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")}
_BYBIT_STAT_PERIODS = {"5min": "5m", "15min": "15m", "30min": "30m", "1h": "1h", "4h": "4h", "1d": "1d"}
_OKX_STAT_PERIODS = {"5m": "5m", "15m": "15m", "30m": "30m", "1H": "1h", "2H": "2h", "4H": "4h", "1D": "1d",
                     "1Dutc": "1d"}


def interval_ms(interval: str) -> int:
    """Length of a canonical interval such as "1m", "4h", "1d"."""
    units = {"m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
    return int(interval[:-1]) * units[interval[-1]]


def _num(value: float) -> str:
    """A float as the exchanges send it: a decimal string that parses back to the same float."""
    text = repr(float(value))
    return format(value, ".10f").rstrip("0").rstrip(".") if "e" in text else text


def _fixed(value: float, places: int = 8) -> str:
    return f"{value:.{places}f}"


def _decimals(step: str) -> int:
    return len(step.split(".")[1]) if "." in step else 0


def _between(rows: list, lo: int | None = None, hi: int | None = None, key=None) -> list:
    """Rows (ascending by time) whose time is within [lo, hi]; a missing bound is open."""
    start = 0 if lo is None else bisect_left(rows, lo, key=key)
    end = len(rows) if hi is None else bisect_right(rows, hi, key=key)
    return rows[start:end]


def _open_time(row: Candle) -> int:
    return row[0]


# Deterministic statistics, all functions of the timestamp.
def _funding_rate(ts: int) -> float:
    return 0.0001 + ((ts // FUNDING_EVERY_MS) % 7 - 3) * 0.00002


def _open_interest(contract: _Contract, ts: int) -> float:
    return contract.open_interest * (1 + ((ts // (5 * MINUTE)) % 11) / 100)


def _long_short_ratio(ts: int) -> float:
    return 0.8 + ((ts // (5 * MINUTE)) % 9) * 0.05


def _taker_volumes(contract: _Contract, ts: int) -> tuple[float, float]:
    """Taker buy and sell volume (base units) of the period at `ts`: buy / sell = 0.85 .. 1.15."""
    step = ts // (5 * MINUTE)
    sell = contract.open_interest / 1000 * (1 + (step % 5) / 10)
    return sell * (0.85 + (step % 7) * 0.05), sell


class _Reply(Exception):
    """Raised by an endpoint handler to answer with an error: status and JSON body."""

    def __init__(self, status: int, body: Any):
        super().__init__(status)
        self.status, self.body = status, body


# -- Trading: the order books of Binance and Bybit ------------------------------------------------
#
# One book per exchange: orders, a one-way position per symbol, a USDT wallet, the fills. The rules:
# - a limit that crosses the last price on arrival fills at once, as taker, at the last price; a post-only one
#   that would cross is refused (Binance: -5022, not recorded) or cancelled at once (Bybit);
# - a resting limit fills as maker at its limit price when the market reaches it (`advance_price`);
# - a stop (Binance: an algo order) triggers when the market reaches its trigger and fills as taker at the
#   trigger price, or at the open of the move when that was already beyond the trigger (a gap); a stop that
#   would trigger at once is refused (Binance -2021, Bybit 110092/110093);
# - reduce-only: refused on arrival when there is no position to reduce (or the order would add to it); at
#   fill time the fill is capped to the position and the rest of the order expires (Binance EXPIRED, Bybit
#   Cancelled); open reduce-only orders are NOT cancelled when the position closes;
# - a close-position stop (Binance closePosition=true, no quantity; Bybit qty 0 with reduceOnly and
#   closeOnTrigger) has no size of its own: it is taken with no position (Bybit checks a conditional
#   closeOnTrigger order's position only when it triggers, any qty), holds no margin, and on trigger closes
#   the whole position then; with nothing to close it expires (Binance: its market order EXPIRED; Bybit
#   Cancelled, CancelByReduceOnly). In a move, a reduce-only stop with nothing to reduce waits for the
#   move's limits: an entry the move fills comes first on the way to its stop (as the price path must);
# - market orders fill at once, as taker, at the last price;
# - margin: positions and open non-reduce-only orders need notional / leverage of the equity (wallet +
#   unrealised P&L); an order beyond it is refused (Binance -2019, Bybit 110007);
# - fees: notional x maker or taker rate, taken from the wallet with the realised P&L of each fill.

ZERO = Decimal(0)
_OPEN_STATES = ("new", "partially_filled", "untriggered")
RISING, FALLING = 1, 2  # a trigger's direction, as Bybit numbers them


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _step_text(value: Decimal | None, step: str) -> str:
    """A price or quantity with the decimals of its step, e.g. 67000.1 with tick 0.1 -> "67000.1"."""
    return str((value or ZERO).quantize(Decimal(1).scaleb(-_decimals(step))))


def _is_zero(text: str | None) -> bool:
    try:
        return text not in (None, "") and _dec(text) == 0
    except ArithmeticError:
        return False


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.00000001")))


@dataclass
class _Order:
    order_id: str
    client_id: str
    symbol: str
    side: str                  # buy | sell
    type: str                  # limit | market (what executes; a stop has its trigger besides)
    amount: Decimal
    price: Decimal | None      # limit price
    trigger: Decimal | None    # a stop's trigger price (kept after it triggered)
    direction: int             # RISING / FALLING for a stop, 0 otherwise
    reduce_only: bool
    time_in_force: str         # GTC | GTX (post-only) | IOC
    created: int
    state: str                 # new partially_filled filled canceled expired untriggered triggered finished
    exchange_type: str = ""    # Binance's type name (LIMIT, MARKET, STOP_MARKET, TAKE_PROFIT_MARKET, ...)
    algo: bool = False         # Binance: a conditional order of the algo service; its fill is on actual_order_id
    actual_order_id: str = ""
    trigger_time: int = 0
    updated: int = 0
    filled: Decimal = ZERO
    cost: Decimal = ZERO       # sum of fill quantity x price
    fee: Decimal = ZERO
    last_price_on_created: Decimal = ZERO
    cancel_type: str = "UNKNOWN"       # Bybit's cancelType
    reject_reason: str = "EC_NoError"  # Bybit's rejectReason
    close_position: bool = False       # closes the whole position when it executes (amount: 0 until then)
    close_on_trigger: bool = False     # Bybit's closeOnTrigger flag, as sent

    @property
    def is_open(self) -> bool:
        return self.state in _OPEN_STATES

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


@dataclass
class _Position:
    amount: Decimal = ZERO     # signed: > 0 long
    entry: Decimal = ZERO
    realised: Decimal = ZERO   # cumulated realised P&L (fees not included)
    created: int = 0
    updated: int = 0

    def apply(self, signed_qty: Decimal, price: Decimal) -> Decimal:
        """Add a fill to the position; its realised P&L."""
        amount = self.amount
        if amount == 0 or (amount > 0) == (signed_qty > 0):  # opens or adds: the entry is the average price
            new = amount + signed_qty
            self.entry = (self.entry * abs(amount) + price * abs(signed_qty)) / abs(new)
            self.amount = new
            return ZERO
        closed = min(abs(signed_qty), abs(amount))
        realised = (price - self.entry) * closed * (1 if amount > 0 else -1)
        self.amount = amount + signed_qty
        if self.amount == 0:
            self.entry = ZERO
        elif (self.amount > 0) != (amount > 0):  # flipped: the rest opened at this price
            self.entry = price
        self.realised += realised
        return realised


@dataclass
class _Fill:
    trade_id: int
    exec_id: str
    order_id: str
    client_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_rate: Decimal
    maker: bool
    realised_pnl: Decimal
    time: int
    order_amount: Decimal
    order_price: Decimal | None
    leaves_qty: Decimal = field(default=ZERO)


class _Rejected(Exception):
    """The matching engine refuses an order; each dialect words it as its exchange does."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


class _Book:
    """One exchange's account. Callers hold the fake's lock."""

    _DEFAULT_FEES = {"binance": ("0.0002", "0.0005"), "bybit": ("0.0002", "0.00055")}  # maker, taker (VIP 0)

    def __init__(self, fake: FakeExchange, exchange: str):
        self.fake, self.exchange = fake, exchange
        maker, taker = self._DEFAULT_FEES[exchange]
        self.maker_fee, self.taker_fee = _dec(maker), _dec(taker)
        self.balance, self.leverage = Decimal(10_000), Decimal(20)
        self.orders: dict[str, _Order] = {}   # by exchange order id, in creation order
        self.positions: dict[str, _Position] = {}
        self.fills: list[_Fill] = []
        self.prices: dict[str, Decimal] = {}  # last price per symbol
        self._ids = itertools.count(8_389_765_000 if exchange == "binance" else 1)
        self._trade_ids = itertools.count(5_000_000)

    # -- reads -------------------------------------------------------------------------------

    def next_id(self) -> str:
        n = next(self._ids)
        return str(n) if self.exchange == "binance" else str(uuid.UUID(int=n, version=4))

    def price(self, symbol: str) -> Decimal:
        """The last price: set by the test, else the last close of the symbol's series."""
        if symbol not in self.prices:
            self.prices[symbol] = _dec(self.fake.price_at(self.exchange, symbol, self.fake.now()))
        return self.prices[symbol]

    def position(self, symbol: str) -> _Position:
        return self.positions.setdefault(symbol, _Position())

    def find(self, client_id: str, conditional: bool | None = None) -> _Order | None:
        """The newest order with this client id (a Binance client id may be reused once the order is done)."""
        for order in reversed(self.orders.values()):
            if order.client_id == client_id and conditional in (None, order.trigger is not None):
                return order
        return None

    def open_orders(self, symbol: str | None = None) -> list[_Order]:
        return [o for o in self.orders.values() if o.is_open and symbol in (None, o.symbol)]

    def unrealised(self, symbol: str | None = None) -> Decimal:
        return sum(((self.price(s) - p.entry) * p.amount for s, p in self.positions.items()
                    if p.amount and symbol in (None, s)), ZERO)

    def equity(self) -> Decimal:
        return self.balance + self.unrealised()

    def position_margin(self, symbol: str | None = None) -> Decimal:
        return sum((abs(p.amount) * self.price(s) / self.leverage for s, p in self.positions.items()
                    if p.amount and symbol in (None, s)), ZERO)

    def order_margin(self, symbol: str | None = None) -> Decimal:
        return sum(((o.amount - o.filled) * (o.price or o.trigger or self.price(o.symbol)) / self.leverage
                    for o in self.open_orders(symbol) if not (o.reduce_only or o.close_position)), ZERO)

    # -- orders --------------------------------------------------------------------------------

    def place(self, order: _Order, *, refuse_crossing_post_only: bool) -> _Order:
        """Check and book a new order, and execute it at once where it crosses the last price."""
        symbol, last = order.symbol, self.price(order.symbol)
        contract = _CONTRACTS.get(symbol.removesuffix("USDT"), _OTHER_CONTRACT)
        checked_on_trigger = order.trigger is not None and (order.close_position or order.close_on_trigger)
        if (order.reduce_only or order.close_position) and not checked_on_trigger \
                and not self._reduces(order.side, self.position(symbol).amount):
            raise _Rejected("reduce_only")
        if not (order.reduce_only or order.close_position):
            notional = order.amount * (order.price or order.trigger or last)
            if notional < _dec(_MIN_NOTIONAL):
                raise _Rejected("min_notional")
            if self.position_margin() + self.order_margin() + notional / self.leverage > self.equity():
                raise _Rejected("insufficient")
        if order.trigger is not None and self._reached(order.direction, order.trigger, last, last):
            raise _Rejected("would_trigger", f"trigger_price[{_step_text(order.trigger, contract.tick)}] "
                                             f"{'<=' if order.direction == RISING else '>='} "
                                             f"current[{_step_text(last, contract.tick)}]")
        if order.type == "limit" and order.trigger is None and order.time_in_force == "GTX" \
                and self._crosses(order, last) and refuse_crossing_post_only:
            raise _Rejected("post_only")
        order.updated = order.created
        order.last_price_on_created = last
        self.orders[order.order_id] = order
        if order.trigger is None and self._sized(order):
            self._arrive(order)
        return order

    def cancel(self, order: _Order, state: str = "canceled") -> None:
        order.state, order.updated, order.cancel_type = state, self.fake.now(), "CancelByUser"

    def move(self, symbol: str, open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> None:
        """The market moves: stops trigger first, then resting limits fill (see FakeExchange.advance_price)."""
        if not low <= open_ <= high or not low <= close <= high:
            raise ValueError(f"not a candle: open {open_}, high {high}, low {low}, close {close}")
        waiting = []  # reduce-only stops with nothing to reduce yet: after the limits (see "Trading")
        for order in [o for o in self.open_orders(symbol) if o.state == "untriggered"]:
            if (order.reduce_only or order.close_position) and not self._reduces(order.side,
                                                                                 self.position(symbol).amount):
                waiting.append(order)
            elif self._reached(order.direction, order.trigger, low, high):
                self._trigger_at(order, open_)
        for order in [o for o in self.open_orders(symbol) if o.state != "untriggered" and o.type == "limit"]:
            if (order.side == "buy" and order.price >= low) or (order.side == "sell" and order.price <= high):
                self.execute(order, order.amount - order.filled, order.price, maker=True)
        for order in waiting:
            if order.is_open and self._reached(order.direction, order.trigger, low, high):
                self._trigger_at(order, open_)
        self.prices[symbol] = close

    def execute(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        """Fill `qty` of the order at `price`; a reduce-only order is capped to the position, its rest expires."""
        now, position = self.fake.now(), self.position(order.symbol)
        capped = qty
        if order.reduce_only:
            capped = min(qty, abs(position.amount)) if self._reduces(order.side, position.amount) else ZERO
        if capped > 0:
            rate = self.maker_fee if maker else self.taker_fee
            fee = (capped * price * rate).quantize(Decimal("0.00000001"))
            if not position.amount:
                position.created = now
            realised = position.apply(capped if order.side == "buy" else -capped, price)
            position.updated = now
            self.balance += realised - fee
            order.filled += capped
            order.cost += capped * price
            order.fee += fee
            order.state = "filled" if order.filled >= order.amount else "partially_filled"
            self.fills.append(_Fill(next(self._trade_ids), str(uuid.uuid4()), order.order_id, order.client_id,
                                    order.symbol, order.side, order.type, capped, price, fee, rate, maker, realised,
                                    now, order.amount, order.price, order.amount - order.filled))
        if capped < qty:  # nothing (more) to reduce
            order.state, order.cancel_type = "expired", "CancelByReduceOnly"
        order.updated = now

    # -- internals -----------------------------------------------------------------------------

    @staticmethod
    def _reduces(side: str, position_amount: Decimal) -> bool:
        return (position_amount > 0 and side == "sell") or (position_amount < 0 and side == "buy")

    @staticmethod
    def _reached(direction: int, trigger: Decimal, low: Decimal, high: Decimal) -> bool:
        return high >= trigger if direction == RISING else low <= trigger

    @staticmethod
    def _crosses(order: _Order, last: Decimal) -> bool:
        return order.price >= last if order.side == "buy" else order.price <= last

    def _arrive(self, order: _Order, market_price: Decimal | None = None) -> None:
        """A new (or just triggered) order meets the market: a market order, or a limit crossing the market price,
        fills at once as taker at that price (the fake's book has no depth); a post-only one is cancelled."""
        price = self.price(order.symbol) if market_price is None else market_price
        if order.type == "market" or self._crosses(order, price):
            if order.time_in_force == "GTX":
                order.state, order.reject_reason = "canceled", "EC_PostOnlyWillTakeLiquidity"
                return
            self.execute(order, order.amount - order.filled, price, maker=False)

    def _trigger_at(self, order: _Order, open_: Decimal) -> None:
        """Trigger a stop the move reached: at its trigger, or at the move's open when that was beyond it."""
        gapped = self._reached(order.direction, order.trigger, open_, open_)
        self._trigger(order, open_ if gapped else order.trigger)

    def _trigger(self, order: _Order, price: Decimal) -> None:
        """A stop triggers: its market (or limit) order executes at `price` (the trigger, or the gap's open)."""
        now = self.fake.now()
        order.trigger_time = order.updated = now
        if order.algo:  # Binance: the algo service places a new order, linked by actualOrderId
            # (the real client id of that order is not documented: a distinct one, so that nothing relies on it)
            child = _Order(self.next_id(), f"algo{order.order_id}", order.symbol, order.side, order.type,
                           order.amount, order.price, None, 0, order.reduce_only, "GTC", now, "new",
                           exchange_type=order.type.upper(), updated=now, last_price_on_created=price,
                           close_position=order.close_position)
            self.orders[child.order_id] = child
            order.actual_order_id, order.state = child.order_id, "triggered"
            if self._sized(child):
                self._arrive(child, price)
            if not child.is_open:
                order.state = "finished"
        else:  # Bybit: the conditional order itself becomes a live order (Untriggered -> New -> Filled)
            order.state = "new"
            if self._sized(order):
                self._arrive(order, price)

    def _sized(self, order: _Order) -> bool:
        """A close-position order about to execute takes the position's size; with nothing to close it
        expires. Returns whether there is anything to execute."""
        if not order.close_position:
            return True
        position = self.position(order.symbol).amount
        if not self._reduces(order.side, position):
            order.state, order.cancel_type, order.updated = "expired", "CancelByReduceOnly", self.fake.now()
            return False
        order.amount = order.filled + abs(position)
        return True


class FakeExchange:
    """One local HTTP server for the three exchanges (their paths don't collide).

    series: {(exchange, canonical_symbol, interval): [[open_time_ms, o, h, l, c, v], ...]} ascending, e.g.
    ("okx", "BTCUSDT", "1m"). Only closed candles (open_time + interval <= now) are served; with
    `forming_candle` on, every klines response also has the still-forming candle of the bucket containing now.
    """

    def __init__(self, series: dict[tuple[str, str, str], Iterable[Iterable[float]]], *,
                 now_ms: Callable[[], int] | None = None, symbols: Iterable[str] = ("BTCUSDT", "ETHUSDT")):
        self.symbols = tuple(symbols)  # any XXXUSDT: BTC and ETH have real tick/lot sizes, others a generic one
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.forming_candle = False
        self.timeout_sleep_s = 3.0
        self.latency_s = 0.0  # added to every answer: makes a backfill slow enough to interrupt
        self.requests: list[dict[str, Any]] = []
        self.unknown_requests: list[dict[str, Any]] = []
        self._series: dict[tuple[str, str, str], list[Candle]] = {
            key: sorted((int(c[0]), *(float(x) for x in list(c)[1:6])) for c in candles)
            for key, candles in series.items()
        }
        self._faults: list[list[Any]] = []  # [exchange, path substring, fault, times left, HTTP method or None]
        # Guards the request log, the faults and the order books (re-entrant: a locked endpoint may log).
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._apis = {api.name: api for api in (_Binance(self), _Bybit(self), _Okx(self))}
        self._books = {name: _Book(self, name) for name in TRADING_EXCHANGES}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeExchange:
        self._stopping.clear()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-exchange", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in a "timeout" fault
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> FakeExchange:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeExchange is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- test controls -------------------------------------------------------------------------

    def inject(self, exchange: str, endpoint_substring: str, fault: str, times: int = 1,
               method: str | None = None) -> None:
        """Answer the next `times` requests of `exchange` whose path contains the substring with `fault`;
        with `method` ("POST", "GET", "DELETE") only requests of that method (GET and POST /fapi/v1/order
        share their path)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        if exchange not in self._apis:
            raise ValueError(f"unknown exchange {exchange!r}")
        if method is not None and method.upper() not in ("GET", "POST", "PUT", "DELETE"):
            raise ValueError(f"unknown HTTP method {method!r}")
        with self._lock:
            self._faults.append([exchange, endpoint_substring, fault, times, method and method.upper()])

    def pending_faults(self) -> list[tuple[str, str, str, int, str | None]]:
        with self._lock:
            return [tuple(f) for f in self._faults]

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _take_fault(self, exchange: str, path: str, method: str) -> str | None:
        with self._lock:
            for entry in self._faults:
                if entry[0] == exchange and entry[1] in path and entry[4] in (None, method):
                    entry[3] -= 1
                    if entry[3] <= 0:
                        self._faults.remove(entry)
                    return entry[2]
        return None

    # -- trading controls (Binance and Bybit) ---------------------------------------------------

    def set_account(self, exchange: str, *, balance: float | str | None = None, maker_fee: float | str | None = None,
                    taker_fee: float | str | None = None, leverage: int | None = None) -> None:
        """The USDT wallet balance, the fee rates (0.0002 = 0.02 %) and the leverage margins are computed with."""
        book = self.book(exchange)
        with self._lock:
            if balance is not None:
                book.balance = _dec(balance)
            if maker_fee is not None:
                book.maker_fee = _dec(maker_fee)
            if taker_fee is not None:
                book.taker_fee = _dec(taker_fee)
            if leverage is not None:
                book.leverage = _dec(leverage)

    def trade_price(self, exchange: str, symbol: str, price: float | str) -> None:
        """The market trades at `price` (a jump from the last price: a stop it passes fills at `price`)."""
        self.advance_price(exchange, symbol, high=price, low=price, close=price, open=price)

    def advance_price(self, exchange: str, symbol: str, *, high: float | str, low: float | str, close: float | str,
                      open: float | str | None = None) -> None:  # noqa: A002 (a candle's open)
        """The market moves like a candle from `open` through [low, high] to `close`; `open` defaults to the last
        price, brought into [low, high] (a candle entirely beyond the last price is a gap: it opens at its edge).

        First the untriggered stops whose trigger is within the range trigger, and fill as takers at their trigger
        price, or at `open` when the market opened beyond it (a gap); then resting buy limits at or above `low`
        and sell limits at or below `high` fill as makers at their limit price. The last price becomes `close`.
        """
        book = self.book(exchange)
        high_, low_ = _dec(high), _dec(low)
        with self._lock:
            open_ = _dec(open) if open is not None else min(max(book.price(symbol), low_), high_)
            book.move(symbol, open_, high_, low_, _dec(close))

    def fill(self, exchange: str, client_order_id: str, amount: float | str, price: float | str | None = None) -> None:
        """Fill `amount` more of the open (non-stop) order with this client id, as maker, at `price` (default:
        its limit price): a partial fill leaves it PARTIALLY_FILLED / PartiallyFilled."""
        book = self.book(exchange)
        with self._lock:
            order = book.find(client_order_id, conditional=False)
            if order is None or order.state not in ("new", "partially_filled"):
                raise ValueError(f"{exchange}: no open order {client_order_id!r} to fill")
            amount = min(_dec(amount), order.amount - order.filled)
            book.execute(order, amount, _dec(price) if price is not None else order.price, maker=True)

    def order(self, exchange: str, client_order_id: str, conditional: bool | None = None) -> _Order | None:
        """A copy of the newest order with this client id (for assertions); `conditional` picks the stop book."""
        book = self.book(exchange)
        with self._lock:
            found = book.find(client_order_id, conditional)
            return None if found is None else replace(found)

    def position(self, exchange: str, symbol: str) -> tuple[Decimal, Decimal]:
        """(signed amount, entry price) of the one-way position."""
        book = self.book(exchange)
        with self._lock:
            pos = book.position(symbol)
            return pos.amount, pos.entry

    def wallet_balance(self, exchange: str) -> Decimal:
        """The USDT wallet: start balance + realised P&L - fees (unrealised P&L not included)."""
        book = self.book(exchange)
        with self._lock:
            return book.balance

    def fills(self, exchange: str) -> list[_Fill]:
        book = self.book(exchange)
        with self._lock:
            return list(book.fills)

    def book(self, exchange: str) -> _Book:
        if exchange not in self._books:
            raise ValueError(f"no trading on {exchange!r}; one of {TRADING_EXCHANGES}")
        return self._books[exchange]

    # -- data the endpoints serve --------------------------------------------------------------

    def now(self) -> int:
        return int(self.now_ms())

    def candles(self, exchange: str, symbol: str, interval: str) -> list[Candle]:
        """The candles the exchange has now: closed ones, plus the forming one if the flag is on."""
        rows = self._series.get((exchange, symbol, interval), [])
        duration, now = interval_ms(interval), self.now()
        served = rows[:bisect_right(rows, now - duration, key=_open_time)]
        bucket = now - now % duration
        if self.forming_candle and served and served[-1][0] < bucket:
            last_close = served[-1][4]  # flat at the last close: the fake has no trades inside the bucket
            served = served + [(bucket, last_close, last_close, last_close, last_close, 0.0)]
        return served

    def price_at(self, exchange: str, symbol: str, ts: int) -> float:
        """Last close at `ts` from the finest series of the symbol (for mark prices and notional values)."""
        keys = sorted((k for k in self._series if k[:2] == (exchange, symbol) and self._series[k]),
                      key=lambda k: interval_ms(k[2]))
        if not keys:
            return 100.0
        rows = self._series[keys[0]]
        i = bisect_right(rows, ts, key=_open_time)
        return rows[i - 1][4] if i else rows[0][1]

    def stat_times(self, exchange: str, symbol: str, step_ms: int, max_age_ms: int | None = None) -> list[int]:
        """Timestamps (multiples of step, ascending, up to now) of a statistics series: funding, OI, ratios."""
        now = self.now()
        starts = [rows[0][0] for key, rows in self._series.items() if key[:2] == (exchange, symbol) and rows]
        start = min(starts) if starts else now - 30 * DAY
        if max_age_ms is not None:
            start = max(start, now - max_age_ms)
        return list(range(-(-start // step_ms) * step_ms, now - now % step_ms + 1, step_ms))

    # -- HTTP ----------------------------------------------------------------------------------

    def _api_for(self, path: str) -> _Api | None:
        if path.startswith(("/fapi/", "/futures/data/")):
            return self._apis["binance"]
        if path.startswith("/v5/"):
            return self._apis["bybit"]
        if path.startswith("/api/v5/"):
            return self._apis["okx"]
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path, params = url.path, dict(parse_qsl(url.query, keep_blank_values=True))
        params.update(_body_params(handler))  # Binance may send a form in the body, Bybit sends JSON
        api = self._api_for(path)
        endpoint = api.route(handler.command, path) if api else None
        fault = self._take_fault(api.name, path, handler.command) if endpoint else None
        content_type = "application/json"
        try:
            if endpoint is None:
                raise api.not_found(path, handler.command) if api else _Reply(404, {"error": "Not Found"})
            if fault == "http_429":
                raise api.rate_limited()
            if fault == "insufficient_margin":
                raise api.insufficient_margin()
            if fault == "not_found":
                raise api.order_not_found(handler.command, path)
            if fault == "rejected":
                raise api.order_rejected(params)
            status, body = 200, endpoint(params)
        except _Reply as reply:
            status, body = reply.status, reply.body
        payload = json.dumps(body, separators=(",", ":")).encode()
        if fault in ("http_500", "http_503"):  # as a load balancer / gateway sends them: not JSON
            status = int(fault[-3:])
            payload = b"Internal Server Error" if status == 500 else b"Service Unavailable"
            content_type = "text/plain"
        elif fault == "malformed":
            payload = payload[:max(1, len(payload) // 2)]  # a cut-off JSON document
        record = {"exchange": api.name if api else None, "method": handler.command, "path": path,
                  "params": params, "status": status, "fault": fault}
        with self._lock:
            self.requests.append(record)
            if endpoint is None:
                self.unknown_requests.append(record)
        if self.latency_s:
            self._stopping.wait(self.latency_s)
        if fault == "timeout":
            self._stopping.wait(self.timeout_sleep_s)  # the client gives up first; stop() cuts this short
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and went away


def _body_params(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """A request body's parameters as strings: a form (Binance) or a JSON object (Bybit; true -> "true")."""
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    if not raw:
        return {}
    if "json" in (handler.headers.get("Content-Type") or ""):
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {key: _param_text(value) for key, value in data.items() if value is not None}
    return dict(parse_qsl(raw.decode(), keep_blank_values=True))


def _param_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self.server.fake._serve(self)  # type: ignore[attr-defined]

    do_POST = do_PUT = do_DELETE = do_GET  # unknown routes are answered (404) and recorded as unknown requests

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass


# -- the three exchanges --------------------------------------------------------------------------

class _Api:
    """What every exchange dialect provides: its routes, symbol ids and error bodies."""

    name = ""

    def __init__(self, fake: FakeExchange):
        self.fake = fake

    def routes(self) -> dict[str, Callable[[dict[str, str]], Any]]:
        """The public GET endpoints by path."""
        raise NotImplementedError

    def private_routes(self) -> dict[tuple[str, str], Callable[[dict[str, str]], Any]]:
        """The trading endpoints by (HTTP method, path); they run holding the fake's lock."""
        return {}

    def route(self, method: str, path: str) -> Callable[[dict[str, str]], Any] | None:
        if method == "GET" and path in self.routes():
            return self.routes()[path]
        endpoint = self.private_routes().get((method, path))
        if endpoint is None:
            return None

        def locked(params: dict[str, str]) -> Any:
            with self.fake._lock:
                return endpoint(params)
        return locked

    def market_id(self, symbol: str) -> str:
        return symbol

    def error(self, code: int | str, msg: str, status: int = 400) -> _Reply:
        raise NotImplementedError

    def invalid_symbol(self) -> _Reply:
        raise NotImplementedError

    def rate_limited(self) -> _Reply:
        raise NotImplementedError

    def not_found(self, path: str, method: str) -> _Reply:
        raise NotImplementedError

    def missing(self, name: str) -> _Reply:
        raise NotImplementedError

    def insufficient_margin(self) -> _Reply:
        return self.error(self.bad_param_code, "insufficient margin")  # only Binance and Bybit trade here

    def order_not_found(self, method: str, path: str) -> _Reply:
        return self.error(self.bad_param_code, "order does not exist")

    def order_rejected(self, params: dict[str, str]) -> _Reply:
        """The refusal of a stop that would trigger at once (the "rejected" fault)."""
        return self.error(self.bad_param_code, "order rejected")

    # helpers shared by the dialects
    def symbol(self, params: dict[str, str], name: str) -> str:
        """The canonical symbol of the market id in `params[name]`; the exchange's errors if absent or unknown."""
        if not params.get(name):
            raise self.missing(name)
        for symbol in self.fake.symbols:
            if self.market_id(symbol) == params[name]:
                return symbol
        raise self.invalid_symbol()

    def int_param(self, params: dict[str, str], name: str) -> int | None:
        if params.get(name) in (None, ""):
            return None
        try:
            return int(params[name])
        except ValueError:
            raise self.error(self.bad_param_code, f"Parameter {name} error") from None

    def limit(self, params: dict[str, str], default: int, maximum: int) -> int:
        """The page size: the exchanges cap an over-large limit at their maximum rather than failing."""
        limit = self.int_param(params, "limit")
        if limit is None:
            return default
        if limit < 1:
            raise self.error(self.bad_param_code, "Parameter limit error")
        return min(limit, maximum)

    bad_param_code: int | str = 0

    def contract(self, symbol: str) -> _Contract:
        return _CONTRACTS.get(symbol.removesuffix("USDT"), _OTHER_CONTRACT)


class _Binance(_Api):
    """USDⓈ-M futures (fapi): bare JSON bodies, ascending rows, errors as {"code": -n, "msg"} with HTTP 4xx."""

    name = "binance"
    bad_param_code = -1130

    def routes(self):
        return {
            "/fapi/v1/time": self.time,
            "/fapi/v1/exchangeInfo": self.exchange_info,
            "/fapi/v1/klines": self.klines,
            "/fapi/v1/fundingRate": self.funding_rate,
            "/futures/data/openInterestHist": self.open_interest_hist,
            "/futures/data/globalLongShortAccountRatio": self.long_short_ratio,
            "/futures/data/takerlongshortRatio": self.taker_long_short_ratio,
        }

    def error(self, code, msg, status=400):
        return _Reply(status, {"code": code, "msg": msg})

    def invalid_symbol(self):
        return self.error(-1121, "Invalid symbol.")

    def rate_limited(self):
        return self.error(-1003, "Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
                                 "Please use the websocket for live updates to avoid polling the API.", 429)

    def not_found(self, path, method):
        return self.error(-5000, f"Path {path}, Method {method} is invalid", 404)

    def missing(self, name):
        return self.error(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")

    @staticmethod
    def page(rows: list, params: dict[str, str], limit: int) -> list:
        # Binance pages forward from startTime when given, else returns the latest rows (up to endTime).
        return rows[:limit] if params.get("startTime") else rows[-limit:]

    def time(self, params):
        return {"serverTime": self.fake.now()}

    def exchange_info(self, params):
        return {
            "timezone": "UTC",
            "serverTime": self.fake.now(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [self.symbol_info(symbol) for symbol in self.fake.symbols],
        }

    def symbol_info(self, symbol: str) -> dict[str, Any]:
        c = self.contract(symbol)
        return {
            "symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": symbol.removesuffix("USDT"), "quoteAsset": "USDT",
            "marginAsset": "USDT", "pricePrecision": _decimals(c.tick), "quantityPrecision": _decimals(c.lot),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": c.tick, "maxPrice": "4529764", "tickSize": c.tick},
                {"filterType": "LOT_SIZE", "minQty": c.lot, "maxQty": c.max_qty, "stepSize": c.lot},
                {"filterType": "MARKET_LOT_SIZE", "minQty": c.lot, "maxQty": c.max_qty, "stepSize": c.lot},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": _MIN_NOTIONAL},  # fapi names it "notional"
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"},
            ],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    def klines(self, params):
        symbol = self.symbol(params, "symbol")
        interval = _BINANCE_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise self.error(-1120, "Invalid interval.")
        limit = self.limit(params, default=500, maximum=1500)
        rows = _between(self.fake.candles(self.name, symbol, interval), self.int_param(params, "startTime"),
                        self.int_param(params, "endTime"), key=_open_time)
        duration = interval_ms(interval)
        return [[t, _num(o), _num(h), _num(l), _num(c), _num(v), t + duration - 1, _fixed(v * c),
                 int(v * 10) + 1, _num(round(v / 2, 8)), _fixed(v * c / 2), "0"]
                for t, o, h, l, c, v in self.page(rows, params, limit)]

    def funding_rate(self, params):
        # Without a symbol Binance returns every symbol's history.
        symbols = [self.symbol(params, "symbol")] if params.get("symbol") else list(self.fake.symbols)
        limit = self.limit(params, default=100, maximum=1000)
        rows = sorted((ts, symbol) for symbol in symbols
                      for ts in self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS))
        rows = _between(rows, self.int_param(params, "startTime"), self.int_param(params, "endTime"),
                        key=lambda r: r[0])
        return [{"symbol": symbol, "fundingTime": ts, "fundingRate": _fixed(_funding_rate(ts)),
                 "markPrice": _fixed(self.fake.price_at(self.name, symbol, ts))}
                for ts, symbol in self.page(rows, params, limit)]

    def stat_rows(self, params) -> tuple[str, list[int]]:
        """Symbol and timestamps of an openInterestHist / long-short / taker request (only the last 30 days exist)."""
        symbol = self.symbol(params, "symbol")
        if not params.get("period"):
            raise self.missing("period")
        period = _BINANCE_STAT_PERIODS.get(params["period"])
        if period is None:
            raise self.error(-1130, "Data sent for parameter 'period' is not valid.")
        limit = self.limit(params, default=30, maximum=500)
        times = self.fake.stat_times(self.name, symbol, interval_ms(period), max_age_ms=30 * DAY)
        times = _between(times, self.int_param(params, "startTime"), self.int_param(params, "endTime"))
        return symbol, self.page(times, params, limit)

    def open_interest_hist(self, params):
        symbol, times = self.stat_rows(params)
        c = self.contract(symbol)
        return [{"symbol": symbol, "sumOpenInterest": _fixed(_open_interest(c, ts)),
                 "sumOpenInterestValue": _fixed(_open_interest(c, ts) * self.fake.price_at(self.name, symbol, ts)),
                 "timestamp": ts} for ts in times]

    def long_short_ratio(self, params):
        symbol, times = self.stat_rows(params)
        rows = []
        for ts in times:
            ratio = _long_short_ratio(ts)
            rows.append({"symbol": symbol, "longAccount": _fixed(ratio / (1 + ratio), 4),
                         "longShortRatio": _fixed(ratio, 4), "shortAccount": _fixed(1 / (1 + ratio), 4),
                         "timestamp": ts})
        return rows

    def taker_long_short_ratio(self, params):
        # Taker buy/sell volume in base units; unlike the other statistics, the rows carry no symbol.
        symbol, times = self.stat_rows(params)
        rows = []
        for ts in times:
            buy, sell = _taker_volumes(self.contract(symbol), ts)
            rows.append({"buySellRatio": _fixed(buy / sell, 4), "buyVol": _fixed(buy, 4), "sellVol": _fixed(sell, 4),
                         "timestamp": ts})
        return rows

    # -- trading (USDⓈ-M, one-way mode) ------------------------------------------------------------

    _STATES = {"new": "NEW", "partially_filled": "PARTIALLY_FILLED", "filled": "FILLED", "canceled": "CANCELED",
               "expired": "EXPIRED"}
    _ALGO_STATES = {"untriggered": "NEW", "triggered": "TRIGGERED", "finished": "FINISHED", "canceled": "CANCELED",
                    "expired": "EXPIRED"}
    # Conditional order types: what executes once triggered, and which way the trigger is crossed per side.
    _CONDITIONAL = {"STOP_MARKET": ("market", {"buy": RISING, "sell": FALLING}),
                    "TAKE_PROFIT_MARKET": ("market", {"buy": FALLING, "sell": RISING}),
                    "STOP": ("limit", {"buy": RISING, "sell": FALLING}),
                    "TAKE_PROFIT": ("limit", {"buy": FALLING, "sell": RISING})}
    _REFUSALS = {
        "duplicate": (-4116, "ClientOrderId is duplicated."),
        "insufficient": (-2019, "Margin is insufficient."),
        "reduce_only": (-2022, "ReduceOnly Order is rejected."),
        "post_only": (-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                             "The order will not be recorded in the order history"),
        "would_trigger": (-2021, "Order would immediately trigger."),
        "quantity_with_close": (-4137, "Quantity must be zero with closePosition equals true"),
        "min_notional": (-4164, f"Order's notional must be no smaller than {_MIN_NOTIONAL} (unless you choose "
                                f"reduce only)."),
    }

    def private_routes(self):
        return {
            ("POST", "/fapi/v1/order"): self.new_order,
            ("GET", "/fapi/v1/order"): self.query_order,
            ("DELETE", "/fapi/v1/order"): self.cancel_order,
            ("GET", "/fapi/v1/openOrders"): self.open_orders,
            ("POST", "/fapi/v1/algoOrder"): self.new_algo_order,
            ("GET", "/fapi/v1/algoOrder"): self.query_algo_order,
            ("DELETE", "/fapi/v1/algoOrder"): self.cancel_algo_order,
            ("GET", "/fapi/v1/openAlgoOrders"): self.open_algo_orders,
            ("GET", "/fapi/v3/positionRisk"): self.position_risk,
            ("GET", "/fapi/v1/leverageBracket"): self.leverage_bracket,
            ("GET", "/fapi/v3/account"): self.account,
            ("GET", "/fapi/v1/userTrades"): self.user_trades,
        }

    def insufficient_margin(self):
        return self.error(*self._REFUSALS["insufficient"])

    def order_not_found(self, method, path):
        return self.error(-2011, "Unknown order sent.") if method == "DELETE" else \
            self.error(-2013, "Order does not exist.")

    def order_rejected(self, params):
        return self.error(*self._REFUSALS["would_trigger"])

    @property
    def book(self) -> _Book:
        return self.fake.book(self.name)

    def refused(self, refusal: _Rejected) -> _Reply:
        return self.error(*self._REFUSALS[refusal.reason])

    def order_fields(self, params, conditional: bool, close_position: bool = False) -> tuple[str, str, Decimal, bool]:
        """symbol, side, quantity, reduceOnly of a new order, checked as Binance does; a closePosition
        order has no quantity (0) and no reduceOnly."""
        symbol = self.symbol(params, "symbol")
        side = params.get("side", "")
        if not side:
            raise self.missing("side")
        if side not in ("BUY", "SELL"):
            raise self.error(-1117, "Invalid side.")
        if params.get("positionSide", "BOTH") != "BOTH":
            raise self.error(-4061, "Order's position side does not match user's setting.")
        if close_position:
            if params.get("quantity"):
                raise self.refused(_Rejected("quantity_with_close"))
            if "reduceOnly" in params:  # whatever its value
                raise self.error(-1106, "Parameter 'reduceOnly' sent when not required.")
            return symbol, side.lower(), ZERO, False
        if not params.get("quantity"):
            raise self.missing("quantity")
        quantity = self.decimal(params, "quantity")
        if quantity <= 0 or quantity % _dec(self.contract(symbol).lot):
            raise self.error(-1111, "Precision is over the maximum defined for this asset.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        return symbol, side.lower(), quantity, reduce_only

    def decimal(self, params, name: str) -> Decimal:
        try:
            return _dec(params[name])
        except ArithmeticError:
            raise self.error(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                    f"'^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.") from None

    def price_param(self, params, name: str, symbol: str) -> Decimal:
        if not params.get(name):
            raise self.missing(name)
        price = self.decimal(params, name)
        if price <= 0 or price % _dec(self.contract(symbol).tick):
            raise self.error(-4014, "Price not increased by tick size.")
        return price

    def client_id(self, params, name: str, conditional: bool) -> str:
        client_id = params.get(name) or f"web_{uuid.uuid4().hex[:20]}"
        if len(client_id) > 36 or not all(ch.isalnum() or ch in ".:/_-" for ch in client_id):
            raise self.error(-4015, "Client order id is not valid.")
        # Binance: "a unique id among open orders" (a done order's id may be reused)
        if any(o.client_id == client_id and (o.trigger is not None) == conditional for o in self.book.open_orders()):
            raise self.refused(_Rejected("duplicate"))
        return client_id

    def new_order(self, params):
        symbol, side, quantity, reduce_only = self.order_fields(params, conditional=False)
        order_type = params.get("type", "")
        if not order_type:
            raise self.missing("type")
        if order_type in self._CONDITIONAL or order_type == "TRAILING_STOP_MARKET":
            raise self.error(-4120, "Order type not supported for this endpoint. Please use the Algo Order API "
                                    "endpoints instead.")
        if order_type not in ("LIMIT", "MARKET"):
            raise self.error(-1116, "Invalid orderType.")
        price, time_in_force = None, "GTC"
        if order_type == "LIMIT":
            price = self.price_param(params, "price", symbol)
            time_in_force = params.get("timeInForce", "")
            if not time_in_force:
                raise self.missing("timeInForce")
            if time_in_force not in ("GTC", "GTX", "IOC", "FOK", "GTD"):
                raise self.error(-1115, "Invalid timeInForce.")
        client_id = self.client_id(params, "newClientOrderId", conditional=False)
        order = _Order(self.book.next_id(), client_id, symbol, side, order_type.lower(), quantity, price, None, 0,
                       reduce_only, time_in_force, self.fake.now(), "new", exchange_type=order_type)
        try:
            self.book.place(order, refuse_crossing_post_only=True)
        except _Rejected as refusal:
            raise self.refused(refusal) from None
        return self.order_json(order, with_time=False)

    def new_algo_order(self, params):
        if params.get("algoType") != "CONDITIONAL":
            raise self.error(-1130, "Data sent for parameter 'algoType' is not valid.")
        order_type = params.get("type", "")
        close_position = params.get("closePosition", "false").lower() == "true"
        if close_position and order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise self.error(-1106, "Parameter 'closePosition' sent when not required.")
        symbol, side, quantity, reduce_only = self.order_fields(params, conditional=True,
                                                                close_position=close_position)
        if order_type not in self._CONDITIONAL:
            raise self.error(-1116, "Invalid orderType.")
        executes, directions = self._CONDITIONAL[order_type]
        trigger = self.price_param(params, "triggerPrice", symbol)
        price = self.price_param(params, "price", symbol) if executes == "limit" else None
        client_id = self.client_id(params, "clientAlgoId", conditional=True)
        order = _Order(self.book.next_id(), client_id, symbol, side, executes, quantity, price, trigger,
                       directions[side], reduce_only, params.get("timeInForce") or "GTC", self.fake.now(),
                       "untriggered", exchange_type=order_type, algo=True, close_position=close_position)
        try:
            self.book.place(order, refuse_crossing_post_only=True)
        except _Rejected as refusal:
            raise self.refused(refusal) from None
        return self.algo_json(order)

    def lookup(self, params, id_name: str, client_name: str, conditional: bool, method: str) -> _Order:
        order_id, client_id = params.get(id_name), params.get(client_name)
        if not order_id and not client_id:
            raise self.error(-1102, f"Param '{client_name}' or '{id_name}' must be sent, but both were empty/null!")
        if order_id:
            order = self.book.orders.get(order_id)
        else:
            order = self.book.find(client_id, conditional)
        if order is None or (order.trigger is not None) != conditional or \
                (params.get("symbol") and order.symbol != params["symbol"]):
            raise self.order_not_found(method, "")
        return order

    def query_order(self, params):
        self.symbol(params, "symbol")
        return self.order_json(self.lookup(params, "orderId", "origClientOrderId", False, "GET"))

    def cancel_order(self, params):
        self.symbol(params, "symbol")
        order = self.lookup(params, "orderId", "origClientOrderId", False, "DELETE")
        if not order.is_open:
            raise self.order_not_found("DELETE", "")  # a done order: -2011 "Unknown order sent."
        self.book.cancel(order)
        return self.order_json(order, with_time=False)

    def open_orders(self, params):
        symbol = self.symbol(params, "symbol") if params.get("symbol") else None
        return [self.order_json(o) for o in self.book.open_orders(symbol) if o.trigger is None]

    def query_algo_order(self, params):
        return self.algo_json(self.lookup(params, "algoId", "clientAlgoId", True, "GET"))

    def cancel_algo_order(self, params):
        order = self.lookup(params, "algoId", "clientAlgoId", True, "DELETE")
        if not order.is_open:
            raise self.order_not_found("DELETE", "")
        self.book.cancel(order)
        return {"algoId": int(order.order_id), "clientAlgoId": order.client_id, "code": "200", "msg": "success"}

    def open_algo_orders(self, params):
        symbol = self.symbol(params, "symbol") if params.get("symbol") else None
        return [self.algo_json(o) for o in self.book.open_orders(symbol) if o.trigger is not None]

    def order_json(self, o: _Order, with_time: bool = True) -> dict[str, Any]:
        c = self.contract(o.symbol)
        body = {
            "orderId": int(o.order_id), "symbol": o.symbol, "status": self._STATES[o.state],
            "clientOrderId": o.client_id, "price": _step_text(o.price, c.tick),
            "avgPrice": _step_text(o.average, "0.00001") if o.average is None else str(o.average.normalize()),
            "origQty": _step_text(o.amount, c.lot), "executedQty": _step_text(o.filled, c.lot),
            "cumQty": _step_text(o.filled, c.lot), "cumQuote": _step_text(o.cost, "0.00001"),
            "timeInForce": o.time_in_force, "type": o.exchange_type, "reduceOnly": o.reduce_only,
            "closePosition": o.close_position, "side": o.side.upper(), "positionSide": "BOTH", "stopPrice": "0",
            "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.exchange_type, "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "updateTime": o.updated,
        }
        if with_time:
            body["time"] = o.created
        return body

    def algo_json(self, o: _Order) -> dict[str, Any]:
        c = self.contract(o.symbol)
        actual = self.book.orders.get(o.actual_order_id)
        return {
            "algoId": int(o.order_id), "clientAlgoId": o.client_id, "algoType": "CONDITIONAL",
            "orderType": o.exchange_type, "symbol": o.symbol, "side": o.side.upper(), "positionSide": "BOTH",
            "timeInForce": o.time_in_force, "quantity": _step_text(o.amount, c.lot),
            "algoStatus": self._ALGO_STATES[o.state], "actualOrderId": o.actual_order_id,
            "actualPrice": str(actual.average.normalize()) if actual and actual.average else "0.00000",
            "triggerPrice": _step_text(o.trigger, c.tick), "price": _step_text(o.price, c.tick),
            "icebergQuantity": None, "tpTriggerPrice": "0.000", "tpPrice": "0.000", "slTriggerPrice": "0.000",
            "slPrice": "0.000", "tpOrderType": "", "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": "CONTRACT_PRICE", "priceMatch": "NONE", "closePosition": o.close_position,
            "priceProtect": False,
            "reduceOnly": o.reduce_only, "createTime": o.created, "updateTime": o.updated,
            "triggerTime": o.trigger_time, "goodTillDate": 0,
        }

    def position_risk(self, params):
        """v3: only the symbols with a position or open orders."""
        symbols = [self.symbol(params, "symbol")] if params.get("symbol") else list(self.fake.symbols)
        book, rows = self.book, []
        for symbol in symbols:
            pos = book.position(symbol)
            if not pos.amount and not book.open_orders(symbol):
                continue
            c, mark = self.contract(symbol), book.price(symbol)
            notional, margin = pos.amount * mark, book.position_margin(symbol)
            rows.append({
                "symbol": symbol, "positionSide": "BOTH", "positionAmt": _step_text(pos.amount, c.lot),
                "entryPrice": str(pos.entry.normalize()) if pos.amount else "0.0",
                "breakEvenPrice": str(pos.entry.normalize()) if pos.amount else "0.0",
                "markPrice": _money(mark), "unRealizedProfit": _money(book.unrealised(symbol)),
                "liquidationPrice": "0", "isolatedMargin": "0", "notional": _money(notional), "marginAsset": "USDT",
                "isolatedWallet": "0", "initialMargin": _money(margin + book.order_margin(symbol)),
                "maintMargin": _money(abs(notional) * _dec("0.004")), "positionInitialMargin": _money(margin),
                "openOrderInitialMargin": _money(book.order_margin(symbol)), "adl": 2 if pos.amount else 0,
                "bidNotional": "0", "askNotional": "0", "updateTime": pos.updated,
            })
        return rows

    def leverage_bracket(self, params):
        symbols = [self.symbol(params, "symbol")] if params.get("symbol") else list(self.fake.symbols)
        rows = [{"symbol": s, "notionalCoef": 1.0, "brackets": [
            {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0, "maintMarginRatio": 0.004,
             "cum": 0.0},
            {"bracket": 2, "initialLeverage": 100, "notionalCap": 600000, "notionalFloor": 50000,
             "maintMarginRatio": 0.005, "cum": 50.0}]} for s in symbols]
        return rows[0] if params.get("symbol") else rows  # with a symbol: one object, not a list

    def account(self, params):
        book, now = self.book, self.fake.now()
        wallet, unrealised = book.balance, book.unrealised()
        position_margin, order_margin = book.position_margin(), book.order_margin()
        available = wallet + unrealised - position_margin - order_margin
        asset = {
            "asset": "USDT", "walletBalance": _money(wallet), "unrealizedProfit": _money(unrealised),
            "marginBalance": _money(wallet + unrealised), "maintMargin": "0.00000000",
            "initialMargin": _money(position_margin + order_margin), "positionInitialMargin": _money(position_margin),
            "openOrderInitialMargin": _money(order_margin), "crossWalletBalance": _money(wallet),
            "crossUnPnl": _money(unrealised), "availableBalance": _money(available),
            "maxWithdrawAmount": _money(max(available, ZERO)), "updateTime": now,
        }
        positions = [{
            "symbol": s, "positionSide": "BOTH", "positionAmt": _step_text(p.amount, self.contract(s).lot),
            "unrealizedProfit": _money(book.unrealised(s)), "isolatedMargin": "0",
            "notional": _money(p.amount * book.price(s)), "isolatedWallet": "0",
            "initialMargin": _money(book.position_margin(s)), "maintMargin": "0", "updateTime": p.updated,
        } for s, p in book.positions.items() if p.amount]
        return {
            "totalInitialMargin": asset["initialMargin"], "totalMaintMargin": "0.00000000",
            "totalWalletBalance": asset["walletBalance"], "totalUnrealizedProfit": asset["unrealizedProfit"],
            "totalMarginBalance": asset["marginBalance"], "totalPositionInitialMargin": asset["positionInitialMargin"],
            "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
            "totalCrossWalletBalance": asset["crossWalletBalance"], "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": asset["availableBalance"], "maxWithdrawAmount": asset["maxWithdrawAmount"],
            "assets": [asset], "positions": positions,
        }

    def user_trades(self, params):
        symbol = self.symbol(params, "symbol")
        limit = self.limit(params, default=500, maximum=1000)
        start, end = self.int_param(params, "startTime"), self.int_param(params, "endTime")
        from_id = self.int_param(params, "fromId")
        c, rows = self.contract(symbol), []
        for f in self.book.fills:
            if f.symbol != symbol or params.get("orderId") not in (None, "", f.order_id):
                continue
            if (start is not None and f.time < start) or (end is not None and f.time > end) or \
                    (from_id is not None and f.trade_id < from_id):
                continue
            rows.append({
                "buyer": f.side == "buy", "commission": _money(f.fee), "commissionAsset": "USDT", "id": f.trade_id,
                "maker": f.maker, "orderId": int(f.order_id), "price": _step_text(f.price, c.tick),
                "qty": _step_text(f.qty, c.lot), "quoteQty": _money(f.qty * f.price),
                "realizedPnl": _money(f.realised_pnl), "side": f.side.upper(), "positionSide": "BOTH",
                "symbol": symbol, "time": f.time,
            })
        return rows[:limit] if from_id is not None or start is not None else rows[-limit:]


class _Bybit(_Api):
    """v5: HTTP 200 with {"retCode", "retMsg", "result", "retExtInfo", "time"}, even for errors; rows newest first."""

    name = "bybit"
    bad_param_code = 10001

    def routes(self):
        return {
            "/v5/market/time": self.time,
            "/v5/market/instruments-info": self.instruments_info,
            "/v5/market/kline": self.kline,
            "/v5/market/funding/history": self.funding_history,
            "/v5/market/open-interest": self.open_interest,
            "/v5/market/account-ratio": self.account_ratio,
        }

    def ok(self, result: dict[str, Any]) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": self.fake.now()}

    def error(self, code, msg, status=200):
        return _Reply(status, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {},
                               "time": self.fake.now()})

    def invalid_symbol(self):
        return self.error(10001, "Not supported symbols")

    def rate_limited(self):
        return self.error(10006, "Too many visits!")  # per-UID limit: HTTP 200, retCode 10006

    def not_found(self, path, method):
        return _Reply(404, {"retCode": 10404, "retMsg": f"Path {path} not found", "result": {}, "retExtInfo": {},
                            "time": self.fake.now()})

    def missing(self, name):
        return self.error(10001, f"params error: {name} is required")

    def linear_symbol(self, params, default_category: str | None = None) -> str:
        """Only the linear category is served: any other one has none of our symbols."""
        category = params.get("category") or default_category
        if not category:
            raise self.missing("category")
        if category != "linear":
            raise self.invalid_symbol()
        return self.symbol(params, "symbol")

    def newest(self, times: list[int], params, default: int, maximum: int) -> tuple[list[int], str]:
        """Newest-first page of [startTime, endTime] (its newest rows) and the cursor of the older rest."""
        limit = self.limit(params, default, maximum)
        hi = self.int_param(params, "endTime")
        if params.get("cursor"):  # our cursor: the oldest time already returned
            hi = min(x for x in (hi, self.int_param(params, "cursor") - 1) if x is not None)
        times = _between(times, self.int_param(params, "startTime"), hi)
        page = times[-limit:]
        return page[::-1], (str(page[0]) if len(times) > limit else "")

    def time(self, params):
        now = self.fake.now()
        return self.ok({"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)})

    def instruments_info(self, params):
        if not params.get("category"):
            raise self.missing("category")
        symbols = [s for s in self.fake.symbols if params.get("symbol") in (None, s)]
        if params["category"] != "linear" or params.get("status", "Trading") != "Trading":
            symbols = []
        return self.ok({"category": params["category"], "list": [self.instrument(s) for s in symbols],
                        "nextPageCursor": ""})

    def instrument(self, symbol: str) -> dict[str, Any]:
        c = self.contract(symbol)
        return {
            "symbol": symbol, "contractType": "LinearPerpetual", "status": "Trading",
            "baseCoin": symbol.removesuffix("USDT"), "quoteCoin": "USDT", "launchTime": "1585526400000",
            "deliveryTime": "0", "deliveryFeeRate": "", "priceScale": str(_decimals(c.tick)),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": c.tick, "maxPrice": "1999999.80", "tickSize": c.tick},
            "lotSizeFilter": {"maxOrderQty": c.max_qty, "minOrderQty": c.lot, "qtyStep": c.lot,
                              "postOnlyMaxOrderQty": c.max_qty, "maxMktOrderQty": c.max_qty,
                              "minNotionalValue": _MIN_NOTIONAL},
            "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": "USDT", "copyTrading": "both",
            "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375", "isPreListing": False,
            "preListingInfo": None, "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "",
        }

    def kline(self, params):
        symbol = self.linear_symbol(params, default_category="linear")
        interval = _BYBIT_INTERVALS.get(params.get("interval", ""))
        if interval is None:
            raise self.error(10001, "Invalid period!")
        limit = self.limit(params, default=200, maximum=1000)
        duration = interval_ms(interval)
        start, end = self.int_param(params, "start"), self.int_param(params, "end")
        # `start` selects the candle that contains it; with `start` the page runs forward from there.
        rows = _between(self.fake.candles(self.name, symbol, interval),
                        None if start is None else start - duration + 1, end, key=_open_time)
        rows = rows[:limit] if start is not None else rows[-limit:]
        return self.ok({"symbol": symbol, "category": "linear", "list": [
            [str(t), _num(o), _num(h), _num(l), _num(c), _num(v), _fixed(v * c)] for t, o, h, l, c, v in rows[::-1]
        ]})

    def funding_history(self, params):
        symbol = self.linear_symbol(params)
        if params.get("startTime") and not params.get("endTime"):
            raise self.error(10001, "params error: endTime is required when startTime is passed")
        times, _ = self.newest(self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS), params, 200, 200)
        return self.ok({"category": "linear", "list": [
            {"symbol": symbol, "fundingRate": _fixed(_funding_rate(ts)), "fundingRateTimestamp": str(ts)}
            for ts in times]})

    def open_interest(self, params):
        symbol = self.linear_symbol(params)
        if not params.get("intervalTime"):
            raise self.missing("intervalTime")
        period = _BYBIT_STAT_PERIODS.get(params["intervalTime"])
        if period is None:
            raise self.error(10001, "params error: intervalTime invalid")
        times = self.fake.stat_times(self.name, symbol, interval_ms(period))
        times, cursor = self.newest(times, params, 50, 200)
        c = self.contract(symbol)
        return self.ok({"symbol": symbol, "category": "linear", "nextPageCursor": cursor, "list": [
            {"openInterest": _fixed(_open_interest(c, ts)), "timestamp": str(ts)} for ts in times]})

    def account_ratio(self, params):
        symbol = self.linear_symbol(params)
        if not params.get("period"):
            raise self.missing("period")
        period = _BYBIT_STAT_PERIODS.get(params["period"])
        if period is None:
            raise self.error(10001, "params error: period invalid")
        times, cursor = self.newest(self.fake.stat_times(self.name, symbol, interval_ms(period)), params, 50, 500)
        rows = []
        for ts in times:
            buy = round(_long_short_ratio(ts) / (1 + _long_short_ratio(ts)), 4)
            rows.append({"symbol": symbol, "buyRatio": _fixed(buy, 4), "sellRatio": _fixed(1 - buy, 4),
                         "timestamp": str(ts)})
        return self.ok({"list": rows, "nextPageCursor": cursor})

    # -- trading (UTA, linear, one-way mode) -----------------------------------------------------

    _STATES = {"new": "New", "partially_filled": "PartiallyFilled", "filled": "Filled", "canceled": "Cancelled",
               "expired": "Cancelled", "untriggered": "Untriggered", "deactivated": "Deactivated"}
    _FINAL_STATES = ("filled", "canceled", "expired", "deactivated")
    _REFUSALS = {
        "duplicate": (110072, "OrderLinkedID is duplicate"),
        "insufficient": (110007, "ab not enough for new order"),
        "reduce_only": (110017, "current position is zero, cannot fix reduce-only order qty"),
        "min_notional": (110094, f"Order does not meet minimum order value {_MIN_NOTIONAL}USDT"),
    }

    def private_routes(self):
        return {
            ("POST", "/v5/order/create"): self.create_order,
            ("POST", "/v5/order/cancel"): self.cancel_order,
            ("GET", "/v5/order/realtime"): self.realtime_orders,
            ("GET", "/v5/order/history"): self.order_history,
            ("GET", "/v5/position/list"): self.position_list,
            ("GET", "/v5/account/wallet-balance"): self.wallet_balance,
            ("GET", "/v5/execution/list"): self.execution_list,
            # ccxt's load_markets asks for the coins whenever it has keys (the fetchCurrencies option is ignored)
            ("GET", "/v5/asset/coin/query-info"): self.coin_info,
        }

    def insufficient_margin(self):
        return self.error(*self._REFUSALS["insufficient"])

    def order_rejected(self, params):
        rising = params.get("triggerDirection") == str(RISING)
        last = self.book.prices.get(params.get("symbol", ""))
        tick = self.contract(params.get("symbol", "")).tick
        detail = (f"trigger_price[{params.get('triggerPrice', '')}] {'<=' if rising else '>='} "
                  f"current[{_step_text(last, tick)}]")
        return self.refused(_Rejected("would_trigger", detail))

    def order_not_found(self, method, path):
        if method == "GET":  # Bybit's lookups answer "not found" with an empty list
            return _Reply(200, self.ok({"category": "linear", "list": [], "nextPageCursor": ""}))
        return self.error(110001, "order not exists or too late to cancel")

    @property
    def book(self) -> _Book:
        return self.fake.book(self.name)

    def refused(self, refusal: _Rejected) -> _Reply:
        if refusal.reason == "would_trigger":
            rising = "<=" in refusal.detail
            return self.error(110092 if rising else 110093,
                              f"expect {'Rising' if rising else 'Falling'}, but {refusal.detail}")
        return self.error(*self._REFUSALS[refusal.reason])

    def decimal(self, params, name: str, step: str) -> Decimal:
        if not params.get(name):
            raise self.missing(name)
        try:
            value = _dec(params[name])
        except ArithmeticError:
            raise self.error(10001, f"params error: {name} invalid") from None
        if value <= 0 or value % _dec(step):
            raise self.error(10001, f"params error: {name} invalid")
        return value

    def create_order(self, params):
        symbol = self.linear_symbol(params)
        c, book = self.contract(symbol), self.book
        side, order_type = params.get("side", ""), params.get("orderType", "")
        if side not in ("Buy", "Sell"):
            raise self.error(10001, "params error: side invalid")
        if order_type not in ("Limit", "Market"):
            raise self.error(10001, "params error: orderType invalid")
        if params.get("positionIdx", "0") != "0":
            raise self.error(10001, "position idx not match position mode")
        reduce_only = params.get("reduceOnly", "false") == "true"
        close_on_trigger = params.get("closeOnTrigger", "false") == "true"
        # qty "0" with reduceOnly and closeOnTrigger: the whole position, whatever its size
        close_position = reduce_only and close_on_trigger and _is_zero(params.get("qty"))
        qty = ZERO if close_position else self.decimal(params, "qty", c.lot)
        price = self.decimal(params, "price", c.tick) if order_type == "Limit" else None
        trigger, direction = None, 0
        if params.get("triggerPrice"):
            trigger = self.decimal(params, "triggerPrice", c.tick)
            direction = int(params.get("triggerDirection") or 0)
            if direction not in (RISING, FALLING):
                raise self.error(10001, "params error: TriggerDirection invalid")
        time_in_force = params.get("timeInForce") or ("GTC" if order_type == "Limit" else "IOC")
        if time_in_force not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise self.error(10001, "params error: timeInForce invalid")
        client_id = params.get("orderLinkId") or ""
        if len(client_id) > 36:
            raise self.error(10001, "params error: orderLinkId too long")
        if client_id and book.find(client_id) is not None:  # Bybit: unique, whatever the first order's status
            raise self.error(*self._REFUSALS["duplicate"])
        order = _Order(book.next_id(), client_id, symbol, side.lower(), order_type.lower(), qty, price, trigger,
                       direction, reduce_only, "GTX" if time_in_force == "PostOnly" else time_in_force,
                       self.fake.now(), "untriggered" if trigger is not None else "new", exchange_type=order_type,
                       close_position=close_position, close_on_trigger=close_on_trigger)
        try:
            book.place(order, refuse_crossing_post_only=False)  # Bybit takes it, then cancels it
        except _Rejected as refusal:
            raise self.refused(refusal) from None
        return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def cancel_order(self, params):
        symbol = self.linear_symbol(params)
        if not params.get("orderId") and not params.get("orderLinkId"):
            raise self.error(10001, "params error: orderId or orderLinkId is required")
        order = self.book.orders.get(params["orderId"]) if params.get("orderId") else \
            self.book.find(params["orderLinkId"])
        if order is None or order.symbol != symbol or not order.is_open:
            raise self.order_not_found("POST", "")
        self.book.cancel(order, "deactivated" if order.state == "untriggered" else "canceled")
        return self.ok({"orderId": order.order_id, "orderLinkId": order.client_id})

    def selected_orders(self, params, final: bool) -> dict[str, Any]:
        """The newest-first page of orders matching a realtime/history query."""
        symbol = self.linear_symbol(params) if params.get("symbol") else None
        if symbol is None and not params.get("settleCoin") and not params.get("baseCoin"):
            raise self.error(10001, "Missing some parameters that must filled in, symbol or settleCoin or baseCoin")
        if params.get("category") != "linear":
            raise self.invalid_symbol()
        order_filter = params.get("orderFilter")  # linear: every kind of order unless filtered
        start, end = self.int_param(params, "startTime"), self.int_param(params, "endTime")
        rows = []
        for o in reversed(self.book.orders.values()):
            if (o.state in self._FINAL_STATES) != final or symbol not in (None, o.symbol):
                continue
            if params.get("baseCoin") not in (None, "", o.symbol.removesuffix("USDT")):
                continue
            if params.get("orderId") not in (None, "", o.order_id) or \
                    params.get("orderLinkId") not in (None, "", o.client_id):
                continue
            if (order_filter == "StopOrder" and o.trigger is None) or (order_filter == "Order" and o.trigger):
                continue
            if (start is not None and o.created < start) or (end is not None and o.created > end):
                continue
            rows.append(self.order_json(o))
        limit = self.limit(params, default=20, maximum=50)
        offset = self.int_param(params, "cursor") or 0
        cursor = str(offset + limit) if len(rows) > offset + limit else ""
        return self.ok({"category": "linear", "list": rows[offset:offset + limit], "nextPageCursor": cursor})

    def realtime_orders(self, params):
        """openOnly=0 (the default): the open orders only (New, PartiallyFilled, Untriggered)."""
        return self.selected_orders(params, final=params.get("openOnly", "0") != "0")

    def order_history(self, params):
        """The orders that are done: Filled, Cancelled, Deactivated."""
        return self.selected_orders(params, final=True)

    def order_json(self, o: _Order) -> dict[str, Any]:
        c = self.contract(o.symbol)
        conditional = o.trigger is not None
        remaining = o.amount - o.filled if o.is_open else ZERO
        return {
            "orderId": o.order_id, "orderLinkId": o.client_id, "blockTradeId": "", "symbol": o.symbol,
            "price": _step_text(o.price, c.tick), "qty": _step_text(o.amount, c.lot), "side": o.side.capitalize(),
            "isLeverage": "", "positionIdx": 0, "orderStatus": self._STATES[o.state], "createType": "CreateByUser",
            "cancelType": o.cancel_type if o.state in ("canceled", "expired", "deactivated") else "UNKNOWN",
            "rejectReason": o.reject_reason, "avgPrice": str(o.average.normalize()) if o.average else "0",
            "leavesQty": _step_text(remaining, c.lot), "leavesValue": _money(remaining * (o.price or ZERO)),
            "cumExecQty": _step_text(o.filled, c.lot), "cumExecValue": _money(o.cost), "cumExecFee": _money(o.fee),
            "cumFeeDetail": {"USDT": _money(o.fee)} if o.filled else {},
            "timeInForce": "PostOnly" if o.time_in_force == "GTX" else o.time_in_force,
            "orderType": o.type.capitalize(), "stopOrderType": "Stop" if conditional else "", "orderIv": "",
            "marketUnit": "", "slippageToleranceType": "UNKNOWN", "slippageTolerance": "0",
            "triggerPrice": _step_text(o.trigger, c.tick) if conditional else "",
            "takeProfit": "", "stopLoss": "", "tpslMode": "", "ocoTriggerBy": "", "tpLimitPrice": "",
            "slLimitPrice": "", "tpTriggerBy": "", "slTriggerBy": "", "triggerDirection": o.direction,
            "triggerBy": "LastPrice" if conditional else "",
            "lastPriceOnCreated": _step_text(o.last_price_on_created, c.tick), "basePrice": "",
            "reduceOnly": o.reduce_only, "closeOnTrigger": o.close_on_trigger, "placeType": "", "smpType": "None", "smpGroup": 0,
            "smpOrderId": "", "createdTime": str(o.created), "updatedTime": str(o.updated), "extraFees": "",
        }

    def position_list(self, params):
        """With a symbol its position, flat or not; with settleCoin only the open positions."""
        if params.get("category") != "linear":
            raise self.missing("category") if not params.get("category") else self.invalid_symbol()
        if params.get("symbol"):
            symbols = [self.linear_symbol(params)]
        elif params.get("settleCoin") == "USDT" or params.get("baseCoin"):
            symbols = [s for s, p in self.book.positions.items() if p.amount
                       and params.get("baseCoin") in (None, "", s.removesuffix("USDT"))]
        else:
            raise self.error(10001, "Missing some parameters that must filled in, symbol or settleCoin or baseCoin")
        book, rows = self.book, []
        for symbol in symbols:
            pos, c, mark = book.position(symbol), self.contract(symbol), book.price(symbol)
            margin = book.position_margin(symbol)
            rows.append({
                "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000", "symbol": symbol,
                "side": "" if not pos.amount else ("Buy" if pos.amount > 0 else "Sell"),
                "size": _step_text(abs(pos.amount), c.lot),
                "avgPrice": str(pos.entry.normalize()) if pos.amount else "0",
                "positionValue": _money(abs(pos.amount) * pos.entry), "tradeMode": 0, "positionStatus": "Normal",
                "autoAddMargin": 0, "adlRankIndicator": 2 if pos.amount else 0, "leverage": str(book.leverage),
                "positionBalance": _money(margin), "markPrice": _step_text(mark, c.tick), "liqPrice": "",
                "bustPrice": "", "positionMM": _money(abs(pos.amount) * mark * _dec("0.005")),
                "positionIM": _money(margin), "tpslMode": "Full", "takeProfit": "", "stopLoss": "",
                "trailingStop": "0", "sessionAvgPrice": "", "unrealisedPnl": _money(book.unrealised(symbol)),
                "curRealisedPnl": _money(pos.realised), "cumRealisedPnl": _money(pos.realised), "seq": len(book.fills),
                "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
                "createdTime": str(pos.created or self.fake.now()), "updatedTime": str(pos.updated or self.fake.now()),
            })
        return self.ok({"category": "linear", "list": rows, "nextPageCursor": ""})

    def wallet_balance(self, params):
        if params.get("accountType") != "UNIFIED":
            raise self.error(10001, "accountType only support UNIFIED.")
        book = self.book
        wallet, unrealised = book.balance, book.unrealised()
        position_im, order_im = book.position_margin(), book.order_margin()
        equity = wallet + unrealised
        coin = {
            "coin": "USDT", "equity": _money(equity), "usdValue": _money(equity), "walletBalance": _money(wallet),
            "free": "", "locked": "0", "spotHedgingQty": "0", "borrowAmount": "0.000000000000000000",
            "availableToWithdraw": "", "accruedInterest": "0", "totalOrderIM": _money(order_im),
            "totalPositionIM": _money(position_im), "totalPositionMM": _money(position_im / 4),
            "unrealisedPnl": _money(unrealised), "cumRealisedPnl": _money(sum((p.realised for p in
                                                                                book.positions.values()), ZERO)),
            "bonus": "0", "marginCollateral": True, "collateralSwitch": True, "availableToBorrow": "",
        }
        account = {
            "accountType": "UNIFIED", "totalEquity": _money(equity), "accountIMRate": "0", "accountMMRate": "0",
            "totalMarginBalance": _money(equity), "totalInitialMargin": _money(position_im + order_im),
            "totalAvailableBalance": _money(equity - position_im - order_im), "totalPerpUPL": _money(unrealised),
            "totalWalletBalance": _money(wallet), "accountLTV": "0", "totalMaintenanceMargin": _money(position_im / 4),
            "coin": [coin],
        }
        return self.ok({"list": [account]})

    def coin_info(self, params):
        coins = ["USDT"] + [s.removesuffix("USDT") for s in self.fake.symbols]
        rows = [{"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [{
            "chainType": "ETH" if coin == "USDT" else coin, "confirmation": "64", "withdrawFee": "1",
            "depositMin": "0", "withdrawMin": "2", "chain": "ETH" if coin == "USDT" else coin, "chainDeposit": "1",
            "chainWithdraw": "1", "minAccuracy": "8", "withdrawPercentageFee": "0", "contractAddress": "",
            "safeConfirmNumber": "65", "depositLimit": ""}]} for coin in dict.fromkeys(coins)
            if params.get("coin") in (None, "", coin)]
        return {**self.ok({"rows": rows}), "retMsg": ""}

    def execution_list(self, params):
        """The account's fills, newest first."""
        if params.get("category") != "linear":
            raise self.missing("category") if not params.get("category") else self.invalid_symbol()
        symbol = self.linear_symbol(params) if params.get("symbol") else None
        start, end = self.int_param(params, "startTime"), self.int_param(params, "endTime")
        rows = []
        for f in reversed(self.book.fills):
            if symbol not in (None, f.symbol) or params.get("orderId") not in (None, "", f.order_id) or \
                    params.get("orderLinkId") not in (None, "", f.client_id):
                continue
            if (start is not None and f.time < start) or (end is not None and f.time > end):
                continue
            c = self.contract(f.symbol)
            order = self.book.orders[f.order_id]
            rows.append({
                "symbol": f.symbol, "orderType": f.order_type.capitalize(), "underlyingPrice": "",
                "orderLinkId": f.client_id, "side": f.side.capitalize(), "indexPrice": "", "orderId": f.order_id,
                "stopOrderType": "Stop" if order.trigger is not None else "UNKNOWN",
                "leavesQty": _step_text(f.leaves_qty, c.lot), "execTime": str(f.time), "feeCurrency": "USDT",
                "isMaker": f.maker, "execFee": _money(f.fee), "feeRate": str(f.fee_rate), "execId": f.exec_id,
                "tradeIv": "", "blockTradeId": "", "markPrice": _step_text(f.price, c.tick),
                "execPrice": _step_text(f.price, c.tick), "markIv": "", "orderQty": _step_text(f.order_amount, c.lot),
                "orderPrice": _step_text(f.order_price, c.tick), "execValue": _money(f.qty * f.price),
                "execType": "Trade", "execQty": _step_text(f.qty, c.lot), "closedSize": "", "extraFees": "",
                "seq": f.trade_id, "execPnl": _money(f.realised_pnl),
            })
        limit = self.limit(params, default=50, maximum=100)
        return self.ok({"category": "linear", "list": rows[:limit], "nextPageCursor": ""})


class _Okx(_Api):
    """v5: {"code": "0", "msg": "", "data": [...]}, everything a string, rows newest first.

    Paging is by `after` (rows older than it) and `before` (rows newer than it), both exclusive; a page
    is always the newest `limit` rows between them.
    """

    name = "okx"
    bad_param_code = "51000"

    def routes(self):
        return {
            "/api/v5/public/time": self.time,
            "/api/v5/public/instruments": self.instruments,
            "/api/v5/market/candles": self.candles,
            "/api/v5/market/history-candles": self.history_candles,
            "/api/v5/public/funding-rate-history": self.funding_rate_history,
            "/api/v5/rubik/stat/contracts/open-interest-history": self.open_interest_history,
            "/api/v5/rubik/stat/contracts/long-short-account-ratio-contract": self.long_short_ratio,
            "/api/v5/rubik/stat/taker-volume-contract": self.taker_volume_contract,
        }

    def market_id(self, symbol):
        return f"{symbol.removesuffix('USDT')}-USDT-SWAP"

    @staticmethod
    def ok(data: list) -> dict[str, Any]:
        return {"code": "0", "msg": "", "data": data}

    def error(self, code, msg, status=200):
        return _Reply(status, {"code": str(code), "msg": msg, "data": []})

    def invalid_symbol(self):
        return self.error("51001", "Instrument ID does not exist")

    def rate_limited(self):
        return self.error("50011", "Too Many Requests", 429)

    def not_found(self, path, method):
        return _Reply(404, {"code": "404", "msg": "Not Found", "data": []})

    def missing(self, name):
        return self.error("50014", f"Parameter {name} can not be empty", 400)

    def newest(self, times: list[int], params, lower: str, upper: str, default: int, maximum: int) -> list[int]:
        """The newest `limit` of the times strictly between params[lower] and params[upper], newest first."""
        limit = self.limit(params, default, maximum)
        lo, hi = self.int_param(params, lower), self.int_param(params, upper)
        times = _between(times, None if lo is None else lo + 1, None if hi is None else hi - 1)
        return times[-limit:][::-1]

    def time(self, params):
        return self.ok([{"ts": str(self.fake.now())}])

    def instruments(self, params):
        if not params.get("instType"):
            raise self.missing("instType")
        symbols = [s for s in self.fake.symbols if params.get("instId") in (None, self.market_id(s))]
        if params["instType"] != "SWAP":
            symbols = []
        return self.ok([self.instrument(s, n) for n, s in enumerate(symbols, start=10_000)])

    def instrument(self, symbol: str, code: int) -> dict[str, Any]:
        c, base = self.contract(symbol), symbol.removesuffix("USDT")
        return {
            "alias": "", "auctionEndTime": "", "baseCcy": "", "category": "1", "contTdSwTime": "", "ctMult": "1",
            "ctType": "linear", "ctVal": c.okx_ct_val, "ctValCcy": base, "expTime": "", "futureSettlement": False,
            "instFamily": f"{base}-USDT", "instId": self.market_id(symbol), "instIdCode": code, "instType": "SWAP",
            "lever": "100", "listTime": "1573557408000", "lotSz": c.okx_lot, "maxIcebergSz": "100000000",
            "maxLmtAmt": "20000000", "maxLmtSz": "100000000", "maxMktAmt": "", "maxMktSz": "12000",
            "maxStopSz": "12000", "maxTriggerSz": "100000000", "maxTwapSz": "100000000", "minSz": c.okx_lot,
            "openType": "", "optType": "", "quoteCcy": "", "ruleType": "normal", "settleCcy": "USDT",
            "state": "live", "stk": "", "tickSz": c.tick, "uly": f"{base}-USDT",
        }

    def candles(self, params, history: bool = False):
        symbol = self.symbol(params, "instId")
        interval = _OKX_BARS.get(params.get("bar", "1m"))
        if interval is None:
            raise self.error("51000", "Parameter bar error")
        duration, now = interval_ms(interval), self.fake.now()
        rows = self.fake.candles(self.name, symbol, interval)
        if not history:  # market/candles only has the latest 1,440 bars; older ones are in history-candles
            rows = _between(rows, now - now % duration - 1439 * duration, None, key=_open_time)
        limit = self.limit(params, default=100, maximum=100 if history else 300)
        lo, hi = self.int_param(params, "before"), self.int_param(params, "after")
        rows = _between(rows, None if lo is None else lo + 1, None if hi is None else hi - 1, key=_open_time)
        ct_val = float(self.contract(symbol).okx_ct_val)
        return self.ok([
            [str(t), _num(o), _num(h), _num(l), _num(c), _num(round(v / ct_val, 8)), _num(v), _fixed(v * c),
             "0" if t + duration > now else "1"]  # confirm: 0 while the candle is still forming
            for t, o, h, l, c, v in rows[-limit:][::-1]])

    def history_candles(self, params):
        return self.candles(params, history=True)

    def funding_rate_history(self, params):
        symbol = self.symbol(params, "instId")
        times = self.fake.stat_times(self.name, symbol, FUNDING_EVERY_MS, max_age_ms=92 * DAY)  # ~3 months kept
        rows = []
        for ts in self.newest(times, params, "before", "after", 400, 400):
            rate = _fixed(_funding_rate(ts))
            rows.append({"formulaType": "noRate", "fundingRate": rate, "fundingTime": str(ts),
                         "instId": self.market_id(symbol), "instType": "SWAP", "method": "current_period",
                         "realizedRate": rate})
        return self.ok(rows)

    def stat_times(self, params) -> tuple[str, list[int]]:
        """Symbol and times of a rubik statistics request: `begin`/`end` exclusive, latest 1,440 entries kept."""
        symbol = self.symbol(params, "instId")
        period = _OKX_STAT_PERIODS.get(params.get("period", "5m"))
        if period is None:
            raise self.error("51000", "Parameter period error")
        times = self.fake.stat_times(self.name, symbol, interval_ms(period))[-1440:]
        return symbol, self.newest(times, params, "begin", "end", 100, 100)

    def open_interest_history(self, params):
        symbol, times = self.stat_times(params)
        c = self.contract(symbol)
        rows = []
        for ts in times:
            base = _open_interest(c, ts)
            rows.append([str(ts), _fixed(base / float(c.okx_ct_val), 2), _fixed(base, 4),
                         _fixed(base * self.fake.price_at(self.name, symbol, ts), 2)])
        return self.ok(rows)

    def long_short_ratio(self, params):
        _, times = self.stat_times(params)
        return self.ok([[str(ts), _fixed(_long_short_ratio(ts), 4)] for ts in times])

    def taker_volume_contract(self, params):
        """Rows [ts, sellVol, buyVol] in the `unit` asked: 0 the base currency, 1 contracts (the default), 2 USDT."""
        symbol, times = self.stat_times(params)
        c = self.contract(symbol)
        unit = params.get("unit", "1")
        if unit not in ("0", "1", "2"):
            raise self.error("51000", "Parameter unit error")
        rows = []
        for ts in times:
            buy, sell = _taker_volumes(c, ts)
            if unit == "0":
                rows.append([str(ts), _fixed(sell, 4), _fixed(buy, 4)])
            elif unit == "1":
                rows.append([str(ts), _fixed(sell / float(c.okx_ct_val), 2), _fixed(buy / float(c.okx_ct_val), 2)])
            else:
                price = self.fake.price_at(self.name, symbol, ts)
                rows.append([str(ts), _fixed(sell * price, 2), _fixed(buy * price, 2)])
        return self.ok(rows)
