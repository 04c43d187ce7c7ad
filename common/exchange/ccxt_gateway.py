"""The exchange gateway over ccxt: Binance USDⓈ-M futures and Bybit linear perpetuals, on
their testnets (ccxt's sandbox mode) unless live trading is switched on explicitly.

Orders are found by their client order id (`newClientOrderId` / `clientAlgoId` on Binance,
`orderLinkId` on Bybit), so nothing here keeps state: the exchange is the truth. What is
safe to retry is retried with backoff (lookups, cancels, reads, and an order the exchange
refused with a rate limit: it was not taken); an order send whose answer is lost (a timeout,
a 5xx, a dropped connection) raises `OrderOutcomeUnknown` and is never re-sent blind: the
caller records it `unknown` and a lookup by its client id settles it. Every other refusal is
final: `OrderRejected` with the exchange's own words.

The stop loss is a reduce-only stop-market (on Binance an algo order, whose fill is on the
order it triggers: `actualOrderId`); the targets are reduce-only limits; the emergency close is
a reduce-only market order. The stop placed with the entry closes the whole position whatever
its size, and may stand before there is one: on Binance a STOP_MARKET with `closePosition=true`
(no quantity, no reduceOnly: Binance refuses either beside it); on Bybit a conditional market
order with qty 0, reduceOnly and closeOnTrigger, which closes the position up to the symbol's
maximum (Bybit checks a conditional order's position when it triggers, and cancels one that
finds nothing to close).
"""
from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any, Callable

import ccxt

from common.trade.orders import CANCELED, OrderOutcomeUnknown, OrderRejected, OrderRequest, OrderSnapshot
from common.exchange.retry import RetryPolicy, call_with_retry
from common.symbols import SymbolMap, canonical_symbol
from common.trade.sizing import MarketRules

log = logging.getLogger(__name__)
ZERO = Decimal(0)
TRADABLE = ("binance", "bybit")
# Refusals that say the order was not taken: safe to send again after a pause.
_NOT_TAKEN = (ccxt.RateLimitExceeded, ccxt.DDoSProtection)


class CcxtGateway:
    def __init__(self, client: ccxt.Exchange, exchange: str, mode: str, symbol_map: SymbolMap,
                 retry: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep,
                 account: str = "default"):
        if exchange not in TRADABLE:
            raise ValueError(f"trading through ccxt supports {', '.join(TRADABLE)}, not {exchange!r}")
        self.client, self.name, self.mode = client, exchange, mode
        self.account = account  # which account of the exchange: a fingerprint of the API key
        self.symbol_map, self.retry, self.sleep = symbol_map, retry, sleep
        if exchange == "binance":  # all symbols' open orders is a heavy call ccxt warns about: we mean it
            client.options.setdefault("fetchOpenOrders", {})["warnWithoutSymbol"] = False

    # -- reads ---------------------------------------------------------------------------------

    def market_rules(self, symbol: str) -> MarketRules:
        market = self.client.market(self._ccxt_symbol(symbol))
        precision, limits = market["precision"], market["limits"]
        return MarketRules(amount_step=self._step(precision["amount"]), price_step=self._step(precision["price"]),
                           min_amount=_decimal(limits["amount"].get("min")) or ZERO,
                           min_notional=_decimal((limits.get("cost") or {}).get("min")) or ZERO)

    def find_order(self, symbol: str, client_order_id: str) -> OrderSnapshot | None:
        order = self._call(f"find {client_order_id}", lambda: self._fetch_by_client_id(symbol, client_order_id))
        return None if order is None else self._snapshot(symbol, order)

    def open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]:
        ccxt_symbol = None if symbol is None else self._ccxt_symbol(symbol)
        # Resting limits, then the stop orders: a book of their own on Binance; on Bybit the
        # unfiltered list holds both, so the first call asks for plain orders only.
        books = ({"type": "swap"}, {"type": "swap", "trigger": True}) if self.name == "binance" else (
            {"orderFilter": "Order"}, {"trigger": True})
        orders = []
        for params in books:
            orders += self._call("open orders", lambda p=params: self.client.fetch_open_orders(ccxt_symbol, None,
                                                                                              None, dict(p)))
        return [self._snapshot(symbol or canonical_symbol(o["symbol"]), o) for o in orders]

    def position_amount(self, symbol: str) -> Decimal:
        """Signed: positive long, negative short, 0 flat (one-way mode)."""
        positions = self._call("positions", lambda: self.client.fetch_positions([self._ccxt_symbol(symbol)]))
        amount = ZERO
        for position in positions:
            contracts = _decimal(position.get("contracts")) or ZERO
            size = contracts * (_decimal(position.get("contractSize")) or Decimal(1))
            amount += size if position.get("side") == "long" else -size
        return amount

    def equity(self) -> Decimal:
        """The account's USDT equity: wallet plus unrealised P&L (Binance's margin balance, Bybit's
        totalEquity; ccxt's total is the bare wallet on Bybit)."""
        balance = self._call("balance", self.client.fetch_balance)
        if self.name == "bybit":
            accounts = ((balance.get("info") or {}).get("result") or {}).get("list") or []
            if accounts and accounts[0].get("totalEquity") not in (None, ""):
                return Decimal(str(accounts[0]["totalEquity"]))
        return _decimal(balance.get("total", {}).get("USDT")) or ZERO

    def free_margin(self) -> Decimal:
        """The USDT new orders can use now, 0 when the exchange reports none. Binance: the USDT
        asset's availableBalance (ccxt's free). Bybit's unified account: totalAvailableBalance,
        the margin balance (wallet and unrealised P&L) less the initial margin of positions and
        orders, in USD across the collateral coins; not ccxt's free, which is the USDT wallet less
        initial margin and so leaves an unrealised loss out."""
        balance = self._call("balance", self.client.fetch_balance)
        if self.name == "bybit":
            accounts = ((balance.get("info") or {}).get("result") or {}).get("list") or []
            return (_decimal(accounts[0].get("totalAvailableBalance")) if accounts else None) or ZERO
        return _decimal((balance.get("free") or {}).get("USDT")) or ZERO

    # -- writes --------------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> OrderSnapshot:
        symbol = self._ccxt_symbol(request.symbol)
        params: dict[str, Any] = {"clientOrderId": request.client_order_id}
        amount: float | None = float(request.amount)
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.order_type == "stop_market":
            order_type, price = "market", None
            params["stopLossPrice"] = float(request.stop_price)
            if request.close_position and self.name == "binance":
                # No quantity (ccxt sends none with closePosition) and no reduceOnly: Binance
                # refuses either beside closePosition (-4137, -1106); it reduces only anyway.
                params["closePosition"] = True
                params.pop("reduceOnly", None)
                amount = None
            elif request.close_position:  # Bybit: qty 0 with both flags closes the whole position
                # (ccxt leaves out a zero amount: the qty goes as a raw parameter)
                params.update(reduceOnly=True, closeOnTrigger=True, qty="0")
                amount = 0.0
        elif request.order_type == "market":
            order_type, price = "market", None
        elif request.order_type == "limit":
            order_type, price = "limit", float(request.price)
            if request.post_only:
                params["postOnly"] = True
            else:
                params["timeInForce"] = "GTC"
        else:
            raise ValueError(f"unsupported order type {request.order_type!r}")
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                self.client.create_order(symbol, order_type, request.side, amount, price, params)
                break
            except _NOT_TAKEN as error:
                if attempt == self.retry.max_attempts:
                    raise OrderOutcomeUnknown(f"{self.name}: rate limited {attempt} times: {error}") from error
                self.sleep(self.retry.delay_s(attempt))
            except (ccxt.NetworkError, ccxt.BadResponse, ccxt.NullResponse) as error:
                raise OrderOutcomeUnknown(f"{self.name}: no answer to the order {request.client_order_id}: "
                                          f"{type(error).__name__}: {error}") from error
            except ccxt.InvalidOrder as error:
                # A duplicate client id is one of these: then the order is there, and it is the one.
                existing = self.find_order(request.symbol, request.client_order_id)
                if existing is not None:
                    return existing
                raise OrderRejected(f"{self.name}: {error}") from error
            except ccxt.BaseError as error:
                raise OrderRejected(f"{self.name}: {error}") from error
        found = self.find_order(request.symbol, request.client_order_id)
        if found is None:
            raise OrderOutcomeUnknown(f"{self.name}: the order {request.client_order_id} was accepted but a lookup "
                                      f"does not find it yet")
        return found

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderSnapshot:
        # Bybit reads the client id only as orderLinkId on a cancel; it finds stops without a flag.
        params = ({"orderLinkId": client_order_id} if self.name == "bybit"
                  else {"clientOrderId": client_order_id, **self._trigger_params(client_order_id)})
        try:
            self._call(f"cancel {client_order_id}",
                       lambda: self.client.cancel_order(None, self._ccxt_symbol(symbol), params))
        except ccxt.InvalidOrder:
            pass  # not found, or final meanwhile (filled, cancelled): the lookup below says which
        found = self.find_order(symbol, client_order_id)
        if found is None:
            raise OrderRejected(f"{self.name}: cannot cancel {client_order_id}: the exchange does not know it")
        return found

    # -- the two dialects ----------------------------------------------------------------------

    def _fetch_by_client_id(self, symbol: str, client_order_id: str) -> dict | None:
        ccxt_symbol = self._ccxt_symbol(symbol)
        trigger = self._trigger_params(client_order_id)
        if self.name == "binance":
            try:
                order = self.client.fetch_order(None, ccxt_symbol, {"clientOrderId": client_order_id, **trigger})
            except ccxt.OrderNotFound:
                return None
            actual = (order.get("info") or {}).get("actualOrderId")
            if trigger and actual and str(actual) not in ("0", ""):
                # A triggered algo order: its fill is on the market order it placed.
                filled = self.client.fetch_order(str(actual), ccxt_symbol)
                order = {**order, "filled": filled.get("filled"), "average": filled.get("average"),
                         "status": filled.get("status"), "fee": filled.get("fee"), "fill_order_id": str(actual)}
                if _is_true((order.get("info") or {}).get("closePosition")):
                    order["amount"] = filled.get("amount")  # it had none: the position it closed is its size
            return order
        # Bybit: a client id is looked up among the open orders (stops too), then the final ones.
        params = {"orderLinkId": client_order_id}
        for fetch in (self.client.fetch_open_orders, self.client.fetch_canceled_and_closed_orders):
            orders = [o for o in fetch(ccxt_symbol, None, None, dict(params))
                      if o.get("clientOrderId") == client_order_id]
            if orders:
                return orders[0]
        return None

    def _snapshot(self, symbol: str, order: dict) -> OrderSnapshot:
        filled = _decimal(order.get("filled")) or ZERO
        fee = _fee(order)
        if fee is None and filled > 0 and self.name == "binance":
            fee = self._binance_fees(symbol, order.get("fill_order_id") or order["id"])
        status = order.get("status") or "open"
        status = {"expired": CANCELED, "canceling": "open"}.get(status, status)
        trigger = _decimal(order.get("triggerPrice") or order.get("stopPrice"))
        info = order.get("info") or {}
        # Binance says closePosition; on Bybit our only closeOnTrigger orders are the close-position stops.
        close_position = trigger is not None and _is_true(info.get("closePosition") or info.get("closeOnTrigger"))
        return OrderSnapshot(
            client_order_id=order.get("clientOrderId") or "", exchange_order_id=str(order.get("id") or ""),
            symbol=symbol, side=order.get("side") or "", order_type="stop_market" if trigger else (order.get("type")
                                                                                                  or "limit"),
            amount=_decimal(order.get("amount")) or ZERO, filled=filled, average_price=_decimal(order.get("average")),
            fee=fee or ZERO, status=status, reduce_only=bool(order.get("reduceOnly")) or close_position,
            price=None if trigger else _decimal(order.get("price")), stop_price=trigger,
            updated_ms=int(order.get("lastUpdateTimestamp") or order.get("timestamp") or 0),
            close_position=close_position,
            message=(info.get("rejectReason") or info.get("msg")) if status in (CANCELED, "rejected") else None)

    def _binance_fees(self, symbol: str, order_id: str) -> Decimal:
        """Binance reports an order's fees only on its trades."""
        trades = self._call("order trades", lambda: self.client.fetch_my_trades(
            self._ccxt_symbol(symbol), None, None, {"orderId": order_id}))
        return sum((_decimal((t.get("fee") or {}).get("cost")) or ZERO for t in trades
                    if str(t.get("order")) == str(order_id)), ZERO)

    # -- helpers -------------------------------------------------------------------------------

    def _call(self, what: str, action: Callable[[], Any]) -> Any:
        return call_with_retry(action, self.retry, f"{self.name} {what}", sleep=self.sleep)

    def _ccxt_symbol(self, symbol: str) -> str:
        return self.symbol_map.ccxt_symbol(self.name, symbol)

    def _step(self, precision) -> Decimal:
        """ccxt gives a step (TICK_SIZE mode, both exchanges here) or a number of decimals."""
        if self.client.precisionMode == ccxt.TICK_SIZE:
            return Decimal(str(precision))
        return Decimal(1).scaleb(-int(precision))

    @staticmethod
    def _trigger_params(client_order_id: str) -> dict:
        """Stop orders live in a book of their own: the leg in the client id says which book."""
        return {"trigger": True} if client_order_id.split("-")[2:3] == ["sl"] else {}


def _decimal(value) -> Decimal | None:
    if value is None or value == "":
        return None
    return Decimal(str(value))


def _is_true(value) -> bool:
    return value is True or str(value).lower() == "true"


def _fee(order: dict) -> Decimal | None:
    fees = [f for f in (order.get("fees") or []) if f and f.get("cost") is not None]
    if fees:
        return sum((Decimal(str(f["cost"])) for f in fees), ZERO)
    fee = order.get("fee")
    return None if not fee or fee.get("cost") is None else Decimal(str(fee["cost"]))
