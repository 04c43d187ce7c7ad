"""The one interface the execution engine and the position manager trade through, whatever is
behind it: the paper exchange (the default), or ccxt on Binance USDⓈ-M futures or Bybit linear
(testnet unless live trading is switched on explicitly).

Orders are known by a client order id derived from the signal and the leg, so a restart or a
replay finds an order it already placed instead of placing it again: before placing, the
engine looks the id up; a send whose answer is lost raises `OrderOutcomeUnknown` and the
order stays `unknown` until a lookup settles it, never a blind resend.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from common.trade.orders import OrderRequest, OrderSnapshot
from common.trade.sizing import MarketRules


class ExchangeGateway(Protocol):
    name: str
    mode: str  # paper | testnet | live

    def market_rules(self, symbol: str) -> MarketRules: ...

    def find_order(self, symbol: str, client_order_id: str) -> OrderSnapshot | None: ...

    def place_order(self, request: OrderRequest) -> OrderSnapshot: ...

    def cancel_order(self, symbol: str, client_order_id: str) -> OrderSnapshot: ...

    def open_orders(self, symbol: str | None = None) -> list[OrderSnapshot]: ...

    def position_amount(self, symbol: str) -> Decimal: ...

    def equity(self) -> Decimal: ...

    def free_margin(self) -> Decimal:
        """The USDT that new orders can use now (0 when the exchange reports none): Binance's
        availableBalance, Bybit's totalAvailableBalance, on paper the wallet less the margin of
        open positions and resting orders that are not reduce-only."""
        ...
