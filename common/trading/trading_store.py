"""Reading and writing the trading tables for the execution engine and the position manager:
trading.orders (one row per client order id, written before the order is sent and again with
what the exchange answered), trading.positions_open / positions_closed, trading.daily_pnl and
the audit log. Small tables, so rows travel as Python values; every write is a MERGE on the
row's key, safe to repeat after a crash."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.audit_log import append_audit
from common.catalog import known_by, location_of, read_table
from common.config import AppConfig, ConfigError
from common.config_audit import audit_config_changes
from common.delta_conflicts import retry_on_conflict
from common.exchange.account import TradingAccount, account_of, build_gateway
from common.local_frames import local_frame
from common.scrub import scrub_secrets
from common.signal_status import check_transition
from common.trade.lifecycle import Costs
from common.trade.orders import OrderRequest, OrderSnapshot
from common.trading_config import TradingConfig, read_trading_config

ACTIVE_ORDER_STATUSES = ("new", "unknown", "open")
# The same as a condition on trading.orders, for read_orders.
ACTIVE_ORDERS = "status IN (" + ", ".join(f"'{s}'" for s in ACTIVE_ORDER_STATUSES) + ")"

# An order's record only moves forward: new -> unknown -> open -> closed | canceled | rejected,
# its filled amount never shrinks, and a final status is never changed. Two writers (the
# execution engine and the position manager as their own applications) may hold different
# snapshots of one order; the later write of the older one must not undo what is known.
STATUS_RANK = "CASE {0}.status WHEN 'new' THEN 0 WHEN 'unknown' THEN 1 WHEN 'open' THEN 2 ELSE 3 END"
ORDER_MOVES_FORWARD = (f"t.status IN ({', '.join(repr(s) for s in ACTIVE_ORDER_STATUSES)}) "
                       f"AND {STATUS_RANK.format('s')} >= {STATUS_RANK.format('t')} "
                       "AND coalesce(s.filled, 0) >= coalesce(t.filled, 0)")


def of_account(account: TradingAccount) -> str:
    """A condition on trading.orders or trading.positions_open: the rows of this account only.
    Rows written before accounts were recorded (account null) belong to their exchange and mode."""
    return (f"(exchange = '{account.exchange}' AND mode = '{account.mode}' "
            f"AND coalesce(account, '{account.account}') = '{account.account}')")


def not_of_account(account: TradingAccount) -> str:
    return f"NOT {of_account(account)}"


class AccountSwitchRefused(ConfigError):
    """Trading state is open on another account than the configured one."""


def refuse_other_accounts(spark: SparkSession, config: AppConfig, account: TradingAccount) -> None:
    """Refuse to trade while another account (an earlier mode, exchange or key) has active
    orders or open positions: they would be nobody's to manage, and nothing of theirs may reach
    this account. One read of both tables."""
    columns = ["exchange", "mode", "account"]
    orders = (read_table(spark, config, "trading.orders").where(f"{ACTIVE_ORDERS} AND {not_of_account(account)}")
              .select(*columns, F.lit("active orders").alias("what")))
    positions = (read_table(spark, config, "trading.positions_open").where(not_of_account(account))
                 .select(*columns, F.lit("open positions").alias("what")))
    found = orders.unionByName(positions).groupBy(*columns, "what").count().orderBy(*columns, "what").collect()
    if not found:
        return
    held = "; ".join(f"{r['count']} {r.what} on {r.exchange} {r.mode} account {r.account or '(unrecorded)'}"
                     for r in found)
    paper = any(r.mode == "paper" for r in found)
    raise AccountSwitchRefused(
        f"trading refused on {account.describe()}: {held}. Settle them on their own account first: switch "
        f"gold.trading_config back to it and run `cryptobot settle` (cancels the working orders and closes the "
        f"positions at market; the next position manager turn books them)"
        + (", or run `cryptobot settle --abandon-paper` to mark the paper ones abandoned (audited)" if paper else "")
        + ".")


def open_trading_account(spark: SparkSession, config: AppConfig, gateway=None, trading: TradingConfig | None = None):
    """What every trading stage does before it trades: the trading config (audited first, so a
    change is on record before it is acted on; a paper replay passes its own, fixed), the
    gateway it configures, and its account, refused while another account holds state.
    Returns (trading, gateway, account)."""
    if trading is None:
        audit_config_changes(spark, config)
        trading = read_trading_config(spark)
    gateway = gateway or build_gateway(config, trading)
    account = account_of(gateway)
    refuse_other_accounts(spark, config, account)
    return trading, gateway, account


def costs_of(trading: TradingConfig) -> Costs:
    return Costs(Decimal(str(trading.maker_fee_pct)), Decimal(str(trading.taker_fee_pct)),
                 Decimal(str(trading.slippage_bps)))


@dataclass(frozen=True)
class OrderRow:
    """A row of trading.orders: our record of one client order id."""
    client_order_id: str
    signal_id: str
    exchange: str
    symbol: str
    leg: str
    version: int
    side: str
    order_type: str
    reduce_only: bool
    price: Decimal | None
    stop_price: Decimal | None
    amount: Decimal
    filled: Decimal
    average_price: Decimal | None
    fee: Decimal
    status: str  # new | unknown | open | closed | canceled | rejected
    exchange_order_id: str | None
    mode: str
    error: str | None
    updated_ms: int
    account: str
    close_position: bool = False  # a stop that closes whatever the position is (placed with the entry)

    def request(self) -> OrderRequest:
        return OrderRequest(self.client_order_id, self.symbol, self.side, self.order_type, self.amount, self.price,
                            self.stop_price, self.reduce_only, close_position=self.close_position)

    def snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(self.client_order_id, self.exchange_order_id or "", self.symbol, self.side,
                             self.order_type, self.amount, self.filled, self.average_price, self.fee,
                             self.status if self.status in ("open", "closed", "canceled", "rejected") else "open",
                             self.reduce_only, self.price, self.stop_price, self.updated_ms, self.error,
                             close_position=self.close_position)


def intent_row(request: OrderRequest, signal_id: str, account: TradingAccount, leg: str, version: int,
               now_ms: int) -> OrderRow:
    return OrderRow(request.client_order_id, signal_id, account.exchange, request.symbol, leg, version, request.side,
                    request.order_type, request.reduce_only, request.price, request.stop_price, request.amount,
                    Decimal(0), None, Decimal(0), "new", None, account.mode, None, now_ms, account.account,
                    request.close_position)


def with_snapshot(row: OrderRow, snapshot: OrderSnapshot) -> OrderRow:
    return replace(row, amount=snapshot.amount, filled=snapshot.filled, average_price=snapshot.average_price,
                   fee=snapshot.fee, status=snapshot.status, exchange_order_id=snapshot.exchange_order_id,
                   error=snapshot.message, updated_ms=snapshot.updated_ms)


def read_orders(spark: SparkSession, config: AppConfig, where: str) -> list[OrderRow]:
    rows = read_table(spark, config, "trading.orders").where(where).collect()
    return [OrderRow(r.client_order_id, r.signal_id, r.exchange, r.symbol, r.leg, r.version, r.side, r.order_type,
                     r.reduce_only, _dec(r.price), _dec(r.stop_price), _dec(r.amount), _dec(r.filled) or Decimal(0),
                     _dec(r.average_price), _dec(r.fee) or Decimal(0), r.status, r.exchange_order_id, r.mode, r.error,
                     int(r.updated_at.replace(tzinfo=timezone.utc).timestamp() * 1000) if r.updated_at else 0,
                     r.account, bool(r.close_position))
            for r in rows]


def write_orders(spark: SparkSession, config: AppConfig, rows: list[OrderRow]) -> None:
    """Insert new orders; update a recorded one only where the row moves it forward
    (ORDER_MOVES_FORWARD): a stale snapshot changes nothing, and the next read shows the truth.
    Of several rows for one order, the last is what the exchange said last (a MERGE takes one).
    The execution engine and the position manager both write the table (at once when each is its
    own application): the MERGE runs again when it loses that race, which its conditions make
    safe (an order is inserted once, and only ever moved forward)."""
    rows = list({r.client_order_id: r for r in rows}.values())
    if not rows:
        return

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    schema = read_table(spark, config, "trading.orders").schema
    values = [{"order_id": r.client_order_id, "client_order_id": r.client_order_id, "signal_id": r.signal_id,
               "position_id": r.signal_id, "exchange": r.exchange, "symbol": r.symbol, "ccxt_symbol": None,
               "leg": r.leg, "version": r.version, "side": r.side, "order_type": r.order_type,
               "reduce_only": r.reduce_only, "price": r.price, "stop_price": r.stop_price, "amount": r.amount,
               "filled": r.filled, "average_price": r.average_price, "fee": r.fee, "fee_currency": "USDT",
               "status": r.status, "exchange_order_id": r.exchange_order_id, "mode": r.mode,
               "error": scrub_secrets(r.error),
               "created_at": now, "updated_at": utc_time(r.updated_ms), "account": r.account,
               "close_position": r.close_position} for r in rows]
    frame = local_frame(spark, values, schema)
    target = DeltaTable.forPath(spark, location_of(config, "trading.orders"))
    update = {c: f"s.{c}" for c in frame.columns if c not in ("created_at", "order_id", "client_order_id")}
    retry_on_conflict(lambda: (target.alias("t").merge(frame.alias("s"), "t.client_order_id = s.client_order_id")
                               .whenMatchedUpdate(condition=ORDER_MOVES_FORWARD, set=update)
                               .whenNotMatchedInsertAll().execute()), "trading.orders")


def audit(spark: SparkSession, config: AppConfig, events: list[dict]) -> None:
    """events: entity_type, entity_id, from_status, to_status, reason, details, actor. The event id
    is derived from the entity and its move, so a repeated run adds nothing."""
    if not events:
        return

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    rows = [(hashlib.sha256("|".join(str(e.get(k)) for k in ("entity_type", "entity_id", "from_status", "to_status",
                                                              "reason")).encode()).hexdigest(),
             e["entity_type"], e["entity_id"], e.get("from_status"), e.get("to_status"), e["reason"],
             json.dumps(e.get("details")) if e.get("details") is not None else None, e["actor"], now, now.date())
            for e in events]
    frame = local_frame(spark, rows, read_table(spark, config, "trading.audit_log").schema)
    append_audit(spark, config, frame)


def move_signals(spark: SparkSession, config: AppConfig, moves: list[tuple[str, str, str, str]], actor: str) -> None:
    """moves: (signal_id, from_status, to_status, reason): audit first, then the signal, only if
    it still has the status it was read with."""
    if not moves:
        return

    for signal_id, source, target, _ in moves:
        check_transition(signal_id, source, target)
    audit(spark, config, [{"entity_type": "signal", "entity_id": s, "from_status": a, "to_status": b, "reason": r,
                           "actor": actor} for s, a, b, r in moves])
    frame = local_frame(spark, moves, "signal_id string, from_status string, to_status string, reason string")
    target = DeltaTable.forPath(spark, location_of(config, "gold.signals_all"))
    # The signals query inserts new signals meanwhile (the jobs as their own applications): a
    # conflict runs the move again; it is conditional on the status, so a repeat changes nothing twice.
    retry_on_conflict(lambda: (target.alias("t")
                               .merge(frame.alias("s"), "t.signal_id = s.signal_id AND t.status = s.from_status")
                               .whenMatchedUpdate(set={"status": "s.to_status", "status_reason": "s.reason",
                                                       "updated_at": "current_timestamp()"}).execute()),
                      "gold.signals_all")


def latest_minute_closes(spark: SparkSession, config: AppConfig, exchange: str, symbols: list[str],
                         as_of_ms: int | None = None) -> dict[str, int]:
    """The data's clock of each market on paper: the close of its newest 1m kline (by as_of_ms)."""
    rows = (read_table(spark, config, "silver.unified_klines")
            .where((F.col("exchange") == exchange) & (F.col("interval") == "1m") & F.col("symbol").isin(symbols)
                   & known_by("close_time_ms", as_of_ms))
            .groupBy("symbol").agg(F.max("close_time_ms").alias("latest")).collect())
    return {r.symbol: int(r.latest) for r in rows}


def extremes_since(spark: SparkSession, config: AppConfig, exchange: str,
                   windows: list[tuple[str, str, int, int]]) -> dict[str, tuple[Decimal, Decimal]]:
    """key -> (highest high, lowest low) of the exchange's 1m klines of `symbol` that opened
    after `after_ms` and closed by `until_ms`, for each (key, symbol, after_ms, until_ms): one
    read for them all. A window without a kline yet has no key."""
    if not windows:
        return {}
    klines = (read_table(spark, config, "silver.unified_klines")
              .where((F.col("exchange") == exchange) & (F.col("interval") == "1m")
                     & F.col("symbol").isin(sorted({symbol for _, symbol, _, _ in windows}))
                     & (F.col("open_time_ms") > min(after for _, _, after, _ in windows))
                     & (F.col("close_time_ms") <= max(until for _, _, _, until in windows)))
              .select("symbol", "open_time_ms", "close_time_ms", "high", "low").collect())
    extremes = {}
    for key, symbol, after_ms, until_ms in windows:
        seen = [k for k in klines if k.symbol == symbol and k.open_time_ms > after_ms and k.close_time_ms <= until_ms]
        if seen:
            extremes[key] = (max(_dec(k.high) for k in seen), min(_dec(k.low) for k in seen))
    return extremes


def wall_ms() -> int:
    """Now on the wall clock, in epoch milliseconds (the clock of testnet and live trading)."""
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(value).normalize() if isinstance(value, Decimal) else Decimal(str(value))


def utc_time(ms: int) -> datetime:
    """Epoch milliseconds as the naive UTC timestamp the lake's TIMESTAMP columns hold."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).replace(tzinfo=None)
