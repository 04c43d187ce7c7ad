"""The paper exchange: an `ExchangeGateway` that keeps its orders, positions and wallet in a
JSON file and fills orders against 1m klines, on the data's clock, one per market (a replay
trades as a live run would). The default: nothing reaches a real exchange until the user opts in.

Matching, one 1m bar at a time, for the orders live before the bar opened:
- market orders first: filled at the bar's open, less `slippage_bps`, taker fee;
- then stop-market orders (pessimistic: when a bar reaches a stop and a limit, the stop is
  taken first): triggered when the bar reaches the stop, filled at the stop or at the open if
  the bar gaps through it, less `slippage_bps`, taker fee;
- then limit orders: filled when the bar reaches the limit, at the limit or at a better open,
  maker fee;
- a reduce-only order never opens or grows a position: it fills at most the position left,
  and is cancelled when nothing is left to reduce;
- a close-position stop (placed with its entry, before there is a position) closes the whole
  position when it triggers; with no position it is not triggered and waits. After the bar's
  limits it is looked at again: an entry that filled on the bar and whose bar also reached
  the stop is stopped out on that bar, at the stop or at the entry's fill if worse (as the
  backtest's paper_bar does on an entry's bar).
The wallet gains realised P&L and pays fees; equity is the wallet (open positions are not
marked to market).

One book, however many clients: the execution engine and the position manager may run at the
same time (in the stream's driver, or as their own applications), each with its own
PaperExchange on the same file. Like a real exchange's, every operation is one at a time (an
exclusive lock beside the file, across threads and processes) on the newest state (read again
when another client changed it), so neither loses what the other did.

Like any exchange simulator it can fail on purpose: with CRYPTOBOT_PAPER_FAULT=kill_after_accept
the process is killed (SIGKILL) right after an order is accepted and stored, before the caller
hears of it: the crash the execution engine must survive without placing the order twice.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Iterable

from common.trade.orders import CANCELED, CLOSED, OPEN, OrderRejected, OrderRequest, OrderSnapshot
from common.trade.sizing import ZERO, MarketRules, fee, slipped

MINUTE_MS = 60_000
FAULT_ENV = "CRYPTOBOT_PAPER_FAULT"


def paper_market_rules(reference_price: Decimal) -> MarketRules:
    """Steps for a market on paper, from its price: 5 significant digits of price, amounts in
    steps worth about 1 to 10 USDT, at least 5 USDT of notional (as the real exchanges ask)."""
    magnitude = math.floor(math.log10(float(reference_price)))
    price_step = Decimal(1).scaleb(magnitude - 4)
    amount_step = Decimal(1).scaleb(-magnitude)
    return MarketRules(amount_step=amount_step, price_step=price_step, min_amount=amount_step,
                       min_notional=Decimal(5))


@dataclass(frozen=True)
class Bar:
    symbol: str
    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass
class _Position:
    amount: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry_price: Decimal = ZERO


class PaperExchange:
    mode = "paper"
    account = "paper"

    def __init__(self, name: str, state_path: Path, initial_equity: Decimal, maker_fee_pct: Decimal,
                 taker_fee_pct: Decimal, slippage_bps: Decimal, rules: dict[str, MarketRules] | None = None,
                 leverage: Decimal = Decimal(1)):
        self.name = name
        self.state_path = Path(state_path)
        self.maker_fee_pct, self.taker_fee_pct, self.slippage_bps = maker_fee_pct, taker_fee_pct, slippage_bps
        self.rules = dict(rules or {})
        self.leverage = leverage  # margin held = notional / leverage
        self.clock_ms: dict[str, int] = {}  # symbol -> the close of its newest bar seen
        self.wallet = initial_equity
        self.orders: dict[str, OrderSnapshot] = {}
        self.live_from_ms: dict[str, int] = {}  # client id -> first bar open the order can fill in
        self.positions: dict[str, _Position] = {}
        self.processed_to_ms: dict[str, int] = {}  # symbol -> last bar open time matched
        self._loaded_version = None  # the state file's (inode, mtime) as last read or written
        self._depth = 0  # how deep inside _exclusive this client is
        with self._exclusive():
            pass

    # -- the gateway ---------------------------------------------------------------------------

    def market_rules(self, symbol: str) -> MarketRules:
        with self._exclusive():
            if symbol not in self.rules:
                raise OrderRejected(f"paper exchange: no market rules for {symbol} (no price seen yet)")
            return self.rules[symbol]

    def find_order(self, symbol: str, client_order_id: str) -> OrderSnapshot | None:
        with self._exclusive():
            return self.orders.get(client_order_id)

    def place_order(self, request: OrderRequest) -> OrderSnapshot:
        with self._exclusive():
            if request.client_order_id in self.orders:  # sent before: the one order, never a second
                return self.orders[request.client_order_id]
            rules = self.market_rules(request.symbol)
            if request.amount < rules.min_amount and not request.close_position:
                raise OrderRejected(f"amount {request.amount} below the minimum {rules.min_amount}")
            order = OrderSnapshot(
                client_order_id=request.client_order_id, exchange_order_id=f"paper-{len(self.orders) + 1}",
                symbol=request.symbol, side=request.side, order_type=request.order_type,
                # a close-position stop has no size of its own (as on the exchanges): 0 until it triggers
                amount=ZERO if request.close_position else request.amount, filled=ZERO, average_price=None,
                fee=ZERO, status=OPEN, reduce_only=request.reduce_only or request.close_position,
                price=request.price, stop_price=request.stop_price, updated_ms=self.now_ms(request.symbol),
                close_position=request.close_position)
            self.orders[order.client_order_id] = order
            # Live from the first whole bar after it was placed: the bar in progress is already past.
            self.live_from_ms[order.client_order_id] = -(-self.now_ms(request.symbol) // MINUTE_MS) * MINUTE_MS
            self._save()
            if os.environ.get(FAULT_ENV) == "kill_after_accept":
                os.kill(os.getpid(), signal.SIGKILL)
            return order

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderSnapshot:
        with self._exclusive():
            order = self.orders.get(client_order_id)
            if order is None:
                raise OrderRejected(f"order {client_order_id} not found")
            if order.status == OPEN:
                order = replace(order, status=CANCELED, updated_ms=self.now_ms(symbol), message="cancelled by the user")
                self.orders[client_order_id] = order
                self._save()
            return order

    def open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        with self._exclusive():
            return [o for o in self.orders.values() if o.status == OPEN and (symbol is None or o.symbol == symbol)]

    def position_amount(self, symbol: str) -> Decimal:
        with self._exclusive():
            return self.positions.get(symbol, _Position()).amount

    def equity(self) -> Decimal:
        with self._exclusive():
            return self.wallet

    def free_margin(self) -> Decimal:
        """The wallet less the margin open positions and resting entries hold (notional / leverage)."""
        with self._exclusive():
            held = sum((abs(p.amount) * p.entry_price for p in self.positions.values()), ZERO)
            resting = sum(((o.amount - o.filled) * (o.price or ZERO) for o in self.orders.values()
                           if o.status == OPEN and not o.reduce_only and o.order_type == "limit"), ZERO)
            return self.wallet - (held + resting) / self.leverage

    # -- the market ----------------------------------------------------------------------------

    def now_ms(self, symbol: str) -> int:
        with self._exclusive():
            return self.clock_ms.get(symbol, 0)

    def set_clock(self, symbol: str, now_ms: int) -> None:
        with self._exclusive():
            if self._move_clock(symbol, now_ms):
                self._save()

    def _move_clock(self, symbol: str, now_ms: int) -> bool:
        """A symbol's clock only moves forward; returns whether it moved (in memory, not saved)."""
        if now_ms <= self.clock_ms.get(symbol, 0):
            return False
        self.clock_ms[symbol] = now_ms
        return True

    def matched_to_ms(self, symbol: str) -> int | None:
        """The open time of the last bar of `symbol` matched, if any."""
        with self._exclusive():
            return self.processed_to_ms.get(symbol)

    def set_rules(self, symbol: str, reference_price: Decimal) -> None:
        with self._exclusive():
            if symbol not in self.rules:
                self.rules[symbol] = paper_market_rules(reference_price)
                self._save()

    def advance(self, bars: Iterable[Bar]) -> int:
        """Match the open orders against these 1m bars (those already matched are skipped);
        returns how many fills happened."""
        with self._exclusive():
            fills = 0
            for bar in sorted(bars, key=lambda b: (b.open_time_ms, b.symbol)):
                if bar.open_time_ms <= self.processed_to_ms.get(bar.symbol, -1):
                    continue
                fills += self._match_bar(bar)
                self.processed_to_ms[bar.symbol] = bar.open_time_ms
                self._move_clock(bar.symbol, bar.open_time_ms + MINUTE_MS - 1)  # saved once, after the last bar
            self._save()
            return fills

    def _match_bar(self, bar: Bar) -> int:
        live = [o for o in self.orders.values() if o.status == OPEN and o.symbol == bar.symbol
                and self.live_from_ms[o.client_order_id] <= bar.open_time_ms]
        stops = [o for o in live if o.order_type == "stop_market"]
        limits = [o for o in live if o.order_type == "limit"]
        fills = 0
        for order in [o for o in live if o.order_type == "market"]:  # at the bar's open
            fills += self._fill(order, slipped(bar.open, order.side, self.slippage_bps), self.taker_fee_pct, bar)
        fills += self._trigger_stops(stops, bar)
        for order in limits:
            buy = order.side == "buy"
            if buy and bar.low <= order.price:
                fills += self._fill(order, min(bar.open, order.price), self.maker_fee_pct, bar)
            elif not buy and bar.high >= order.price:
                fills += self._fill(order, max(bar.open, order.price), self.maker_fee_pct, bar)
        # A stop placed with its entry and left waiting for a position: the entry this bar
        # filled may have fallen through it on the same bar (pessimistic, as the backtest).
        waiting = [self.orders[o.client_order_id] for o in stops if o.close_position]
        return fills + self._trigger_stops([o for o in waiting if o.status == OPEN], bar)

    def _trigger_stops(self, stops: list[OrderSnapshot], bar: Bar) -> int:
        fills = 0
        for order in stops:
            if order.close_position and self._reducible(order) == 0:
                continue  # nothing to close yet: it waits for its entry's fill
            sell = order.side == "sell"
            gap = bar.open <= order.stop_price if sell else bar.open >= order.stop_price
            if gap or (bar.low <= order.stop_price if sell else bar.high >= order.stop_price):
                trigger = bar.open if gap else order.stop_price
                fills += self._fill(order, slipped(trigger, order.side, self.slippage_bps), self.taker_fee_pct, bar)
        return fills

    def _reducible(self, order: OrderSnapshot) -> Decimal:
        position = self.positions.get(order.symbol, _Position())
        return max(ZERO, position.amount if order.side == "sell" else -position.amount)

    def _fill(self, order: OrderSnapshot, price: Decimal, fee_pct: Decimal, bar: Bar) -> int:
        position = self.positions.setdefault(order.symbol, _Position())
        wanted = order.amount - order.filled
        if order.close_position:  # the whole position, whatever its size
            wanted = self._reducible(order)
        amount = wanted
        if order.reduce_only:
            # It may only close the position on its other side, and no more of it than is left.
            reducible = max(ZERO, position.amount if order.side == "sell" else -position.amount)
            if reducible == 0:
                self.orders[order.client_order_id] = replace(
                    order, status=CANCELED, updated_ms=bar.open_time_ms,
                    message="reduce-only order cancelled: no position left to reduce")
                return 0
            amount = min(wanted, reducible)
        paid = fee(price, amount, fee_pct)
        self._book(position, amount if order.side == "buy" else -amount, price)
        self.wallet -= paid
        filled = order.filled + amount
        status, message = (CLOSED, None) if amount == wanted else (
            CANCELED, "reduce-only order: filled what was left of the position, the rest cancelled")
        self.orders[order.client_order_id] = replace(
            order, filled=filled, amount=filled if order.close_position else order.amount,
            average_price=((order.average_price or ZERO) * order.filled + price * amount) / filled,
            fee=order.fee + paid, status=status, message=message, updated_ms=bar.open_time_ms)
        return 1

    def _book(self, position: _Position, signed: Decimal, price: Decimal) -> None:
        """Add a fill to the position; a reducing fill realises P&L into the wallet."""
        if position.amount == 0 or (position.amount > 0) == (signed > 0):
            total = position.amount + signed
            position.entry_price = (position.entry_price * abs(position.amount) + price * abs(signed)) / abs(total)
            position.amount = total
            return
        closing = min(abs(signed), abs(position.amount))
        direction = 1 if position.amount > 0 else -1
        self.wallet += (price - position.entry_price) * closing * direction
        position.amount += signed
        if position.amount == 0:
            position.entry_price = ZERO
        elif (position.amount > 0) != (direction > 0):  # flipped through zero
            position.entry_price = price

    # -- persistence ---------------------------------------------------------------------------

    @contextmanager
    def _exclusive(self):
        """Hold the book's lock (reentrant for this client) with the newest state loaded."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.state_path.with_name(self.state_path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            self._depth = 1
            try:
                if self._file_version() != self._loaded_version:
                    self._load()
                yield
            finally:
                self._depth = 0

    def _file_version(self):
        try:
            stat = self.state_path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def _save(self) -> None:
        state = {
            "clock_ms": self.clock_ms, "wallet": str(self.wallet),
            "rules": {s: {k: str(v) for k, v in asdict(r).items()} for s, r in self.rules.items()},
            "orders": {cid: _plain(asdict(o)) for cid, o in self.orders.items()},
            "live_from_ms": self.live_from_ms,
            "positions": {s: {"amount": str(p.amount), "entry_price": str(p.entry_price)}
                          for s, p in self.positions.items()},
            "processed_to_ms": self.processed_to_ms,
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.state_path.parent, prefix=".paper-", suffix=".json")
        with os.fdopen(handle, "w") as out:
            json.dump(state, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.state_path)  # atomic: a crash leaves the old or the new state
        self._loaded_version = self._file_version()

    def _load(self) -> None:
        version = self._file_version()
        if version is None:
            return
        state = json.loads(self.state_path.read_text())
        self._loaded_version = version
        self.clock_ms = {k: int(v) for k, v in state["clock_ms"].items()}
        self.wallet = Decimal(state["wallet"])
        self.rules = {s: MarketRules(**{k: Decimal(v) for k, v in r.items()}) for s, r in state["rules"].items()}
        self.orders = {cid: OrderSnapshot(**_typed(o)) for cid, o in state["orders"].items()}
        self.live_from_ms = {k: int(v) for k, v in state["live_from_ms"].items()}
        self.positions = {s: _Position(Decimal(p["amount"]), Decimal(p["entry_price"]))
                          for s, p in state["positions"].items()}
        self.processed_to_ms = {k: int(v) for k, v in state["processed_to_ms"].items()}


_DECIMAL_FIELDS = ("amount", "filled", "average_price", "fee", "price", "stop_price")


def _plain(order: dict) -> dict:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in order.items()}


def _typed(order: dict) -> dict:
    return {k: (Decimal(v) if k in _DECIMAL_FIELDS and v is not None else v) for k, v in order.items()}
