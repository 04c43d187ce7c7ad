"""Orders as the trading stages and every exchange adapter know them: legs, types, statuses,
the client order id derived from the signal and the leg (so a restart or a replay finds an
order it already placed instead of placing it again), the request and the exchange's snapshot,
and the two ways a send can fail. Domain core: imports nothing of ours but the trade maths.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

LEGS = ("entry", "sl", "tp1", "tp2", "close")  # close: a market exit of what is left
ORDER_TYPES = ("limit", "stop_market", "market")
OPEN, CLOSED, CANCELED, REJECTED = "open", "closed", "canceled", "rejected"  # ccxt's order statuses


def client_order_id(signal_id: str, leg: str, version: int = 0) -> str:
    """At most 36 characters of [A-Za-z0-9-] (Binance's and Bybit's limit), the same every
    time for the same signal, leg and version (a replacement gets the next version)."""
    if leg not in LEGS:
        raise ValueError(f"unknown leg {leg!r}; one of {LEGS}")
    digest = hashlib.sha256(signal_id.encode()).hexdigest()[:24]
    return f"cb-{digest}-{leg}-{version}"


@dataclass(frozen=True)
class OrderRequest:
    """An order to place. `market` fills at once on an exchange (at the next bar's open on paper);
    with `reduce_only` it never opens or grows a position: the emergency close.

    `close_position` (stop_market only): a stop that, when triggered, closes whatever position the
    symbol has then (its side is the exit side); it may be placed before the position exists, and
    triggered with no position it closes nothing (the exchanges expire it, paper keeps it waiting).
    Its `amount` is not sent: its snapshot reports 0 until it triggers, then the size it closed."""
    client_order_id: str
    symbol: str  # canonical (BTCUSDT)
    side: str  # buy | sell
    order_type: str  # limit | stop_market | market
    amount: Decimal
    price: Decimal | None = None  # limit
    stop_price: Decimal | None = None  # stop_market
    reduce_only: bool = False
    post_only: bool = False
    close_position: bool = False  # stop_market only: closes whatever position there is, placeable before one

    def __post_init__(self):
        if self.order_type not in ORDER_TYPES:
            raise ValueError(f"unknown order type {self.order_type!r}; one of {ORDER_TYPES}")
        if self.close_position and self.order_type != "stop_market":
            raise ValueError(f"close_position is for stop_market orders, not {self.order_type!r}")


@dataclass(frozen=True)
class OrderSnapshot:
    """An order as the exchange reports it."""
    client_order_id: str
    exchange_order_id: str
    symbol: str
    side: str
    order_type: str
    amount: Decimal
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal
    status: str  # open | closed | canceled | rejected
    reduce_only: bool
    price: Decimal | None
    stop_price: Decimal | None
    updated_ms: int
    message: str | None = None  # the exchange's words on a rejection or a cancel
    close_position: bool = False  # a stop closing whatever the position is (reduce_only is True with it)


class OrderRejected(Exception):
    """The exchange refused the order: final, not retried; the message is the exchange's."""


class OrderOutcomeUnknown(Exception):
    """The order was sent but no answer came back: it may or may not exist."""
