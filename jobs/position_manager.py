"""Position manager: keeps every trade's orders and positions in step with the exchange;
`cryptobot manage`, a spark-submit target, and run by the stream on its cadence.

Each run:
1. paper only: the paper exchange matches its open orders against the 1m klines it has not
   seen yet (the data's clock);
2. reconciles every order not yet final with the exchange by its client order id: what the
   exchange says is recorded, and a difference from our record goes to the audit log; an
   order recorded as `new` or `unknown` that the exchange does not know was never placed, and
   is sent now under the same id (never a second order);
3. rebuilds each trade from its orders' fills (common/trade/protection.py): an entry still
   waiting is cancelled after `entry_timeout_bars` bars or once price reached the stop or TP1
   first; an open trade gets the stop and targets it needs (the stop to breakeven after TP1,
   by cancel-and-replace under a new client id version); a closed one has its remaining
   orders cancelled;
4. writes trading.positions_open, trading.positions_closed (entry, exits, P&L, fees, R, hold
   time, exit reason) and trading.daily_pnl.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.catalog import known_by, location_of, read_table
from common.config import INTERVAL_MS, AppConfig
from common.exchange.gateway import OrderOutcomeUnknown, OrderRejected
from common.exchange.paper import Bar
from common.local_frames import local_frame
from common.trade.lifecycle import TradeState, trade_result
from common.trade.protection import TradeOrder, desired_orders, rebuild_trade, reconcile
from common.trade.sizing import round_price, round_stop
from common.trading_config import TradingConfig, read_trading_config
from jobs.trading_store import (
    ACTIVE_ORDER_STATUSES, ACTIVE_ORDERS, OrderRow, _ts, audit, build_gateway, costs_of, intent_row,
    read_orders, with_snapshot, write_orders,
)

log = logging.getLogger(__name__)
ACTOR = "position_manager"


@dataclass
class ManagerResult:
    actions: Counter = field(default_factory=Counter)

    @property
    def rows_out(self) -> int:  # for gold.job_runs: orders placed, cancelled, positions closed, ...
        return sum(self.actions.values())

    def describe(self) -> str:
        return "\n".join(["position manager:"] + [f"  {a}: {n}" for a, n in sorted(self.actions.items())])


def run(spark: SparkSession, config: AppConfig, gateway=None, as_of_ms: int | None = None,
        trading: TradingConfig | None = None) -> ManagerResult:
    """as_of_ms (paper only): the paper exchange matches the 1m klines up to then, no further."""
    trading = trading if trading is not None else read_trading_config(spark)  # a paper replay holds one fixed
    gateway = gateway or build_gateway(config, trading)
    result = ManagerResult()
    active = read_orders(spark, config, ACTIVE_ORDERS)
    open_positions = read_table(spark, config, "trading.positions_open").collect()
    signal_ids = sorted({o.signal_id for o in active} | {p.signal_id for p in open_positions})
    if not signal_ids:
        _check_against_exchange(spark, config, gateway, trading, result)
        return result
    orders = read_orders(spark, config, "signal_id IN (" + ",".join(f"'{s}'" for s in signal_ids) + ")")
    symbols = sorted({o.symbol for o in orders})
    clocks = (_advance_paper(spark, config, gateway, orders, as_of_ms) if gateway.mode == "paper"
              else dict.fromkeys(symbols, _wall_ms()))
    orders = _refresh(spark, config, gateway, orders, result)
    signals = {r.signal_id: r for r in read_table(spark, config, "gold.signals_all")
               .where(F.col("signal_id").isin(signal_ids)).collect()}
    for signal_id in signal_ids:
        rows = [o for o in orders if o.signal_id == signal_id]
        if not rows or signal_id not in signals:
            continue
        try:  # one market's trouble must not leave every other position unprotected
            _manage(spark, config, gateway, trading, signals[signal_id], rows, clocks[rows[0].symbol], result)
        except Exception:
            log.exception("event=position_manage_failed signal_id=%s symbol=%s", signal_id, rows[0].symbol)
            result.actions["positions that failed (see the log)"] += 1
    _check_against_exchange(spark, config, gateway, trading, result)
    log.info("event=positions_managed signals=%d actions=%s", len(signal_ids), dict(result.actions))
    return result


def _check_against_exchange(spark, config, gateway, trading, result: ManagerResult) -> None:
    """What the exchange holds against what we track, per symbol: the position's size, and any
    open order of ours (a `cb-` client id) we do not know as active. A difference is logged and
    recorded in the audit log (once per difference), never "fixed" blind: a person decides."""
    positions = (read_table(spark, config, "trading.positions_open")
                 .where((F.col("exchange") == gateway.name) & (F.col("mode") == gateway.mode)).collect())
    ours = {o.client_order_id for o in read_orders(spark, config, ACTIVE_ORDERS)}
    expected: dict[str, Decimal] = {}
    for p in positions:
        signed = _d(p.remaining_quantity) if p.direction == "long" else -_d(p.remaining_quantity)
        expected[p.symbol] = expected.get(p.symbol, Decimal(0)) + signed
    events = []
    for symbol in sorted(set(expected) | set(trading.trading_symbols)):
        try:
            held, orders = gateway.position_amount(symbol), gateway.open_orders(symbol)
        except Exception:  # noqa: BLE001 - a market the exchange cannot serve: logged, the others checked
            log.exception("event=exchange_check_failed symbol=%s", symbol)
            continue
        want = expected.get(symbol, Decimal(0))
        if held != want:
            events.append({"entity_type": "position", "entity_id": f"{gateway.name}:{symbol}", "from_status": None,
                           "to_status": "mismatch", "actor": ACTOR,
                           "reason": f"the exchange holds {held.normalize():f}, "
                                     f"our open positions {want.normalize():f}"})
            log.warning("event=position_mismatch exchange=%s symbol=%s exchange_amount=%s tracked_amount=%s",
                         gateway.name, symbol, held, want)
        for order in orders:
            if order.client_order_id.startswith("cb-") and order.client_order_id not in ours:
                events.append({"entity_type": "order", "entity_id": order.client_order_id, "from_status": None,
                               "to_status": "untracked", "reason": "open on the exchange, not active in "
                               "trading.orders", "actor": ACTOR})
                log.warning("event=untracked_order client_order_id=%s symbol=%s", order.client_order_id, symbol)
    audit(spark, config, events)
    result.actions["differences with the exchange"] += len(events)


def _advance_paper(spark, config, gateway, orders: list[OrderRow],
                   as_of_ms: int | None = None) -> dict[str, int]:
    """Feed the paper exchange the 1m klines after what it has matched; returns each symbol's
    now (the close of its newest 1m kline)."""
    symbols = sorted({o.symbol for o in orders})
    starts = [gateway.processed_to_ms.get(s, min(o.updated_ms for o in orders if o.symbol == s) - 60_000)
              for s in symbols]
    klines = (read_table(spark, config, "silver.unified_klines")
              .where((F.col("exchange") == gateway.name) & (F.col("interval") == "1m") & F.col("symbol").isin(symbols)
                     & (F.col("open_time_ms") > min(starts))
                     & known_by("close_time_ms", as_of_ms))
              .select("symbol", "open_time_ms", "open", "high", "low", "close").orderBy("open_time_ms").collect())
    gateway.advance(Bar(k.symbol, k.open_time_ms, _d(k.open), _d(k.high), _d(k.low), _d(k.close)) for k in klines)
    return {symbol: gateway.now_ms(symbol) for symbol in symbols}


def _refresh(spark, config, gateway, orders: list[OrderRow], result: ManagerResult) -> list[OrderRow]:
    """Our record of every order not yet final, replaced by what the exchange says."""
    refreshed, changed, events = [], [], []
    for row in orders:
        if row.status not in ACTIVE_ORDER_STATUSES:
            refreshed.append(row)
            continue
        snapshot = gateway.find_order(row.symbol, row.client_order_id)
        if snapshot is None and row.status in ("new", "unknown"):
            new = _send(gateway, row)  # it never reached the exchange: sending it now is the first time
            result.actions["sent after a lookup found nothing"] += 1
        elif snapshot is None:
            new = replace(row, status="canceled", error="not found on the exchange")
        else:
            new = with_snapshot(row, snapshot)
        if (new.status, new.filled) != (row.status, row.filled):
            changed.append(new)
            events.append({"entity_type": "order", "entity_id": row.client_order_id, "from_status": row.status,
                           "to_status": new.status, "reason": new.error or f"exchange reports {new.status}",
                           "details": {"filled": str(new.filled)}, "actor": ACTOR})
        refreshed.append(new)
    audit(spark, config, events)
    write_orders(spark, config, changed)
    result.actions["orders updated from the exchange"] += len(changed)
    return refreshed


def _send(gateway, row: OrderRow) -> OrderRow:
    try:
        return with_snapshot(row, gateway.place_order(row.request()))
    except OrderOutcomeUnknown as error:
        return replace(row, status="unknown", error=str(error))
    except OrderRejected as error:
        return replace(row, status="rejected", error=str(error))


def _manage(spark, config, gateway, trading, signal, rows: list[OrderRow], now_ms: int, result: ManagerResult):
    entry = next((r for r in rows if r.leg == "entry"), None)
    if entry is None:
        return
    rules = gateway.market_rules(signal.symbol)
    direction = signal.direction
    trade = rebuild_trade(
        signal.signal_id, direction, entry.price, round_stop(_d(signal.sl_price), direction, rules),
        round_price(_d(signal.tp1_price), rules), round_price(_d(signal.tp2_price), rules), entry.amount,
        [TradeOrder(r.leg, r.version, r.snapshot()) for r in rows], costs_of(trading), rules,
        Decimal(str(trading.tp1_close_pct)), trading.move_sl_to_breakeven)
    written: list[OrderRow] = []
    if trade.state == TradeState.WAITING_ENTRY:
        reason = _entry_void(spark, config, gateway, signal, trade, entry, trading, now_ms)
        if reason and entry.status == "open":
            written.append(with_snapshot(replace(entry, error=reason), gateway.cancel_order(entry.symbol,
                                                                                             entry.client_order_id)))
            written[-1] = replace(written[-1], error=reason)
            audit(spark, config, [{"entity_type": "order", "entity_id": entry.client_order_id, "from_status": "open",
                                   "to_status": "canceled", "reason": reason, "actor": ACTOR}])
            result.actions["entries cancelled"] += 1
        write_orders(spark, config, written)
        return
    to_cancel, to_place = reconcile(signal.signal_id, signal.symbol, [TradeOrder(r.leg, r.version, r.snapshot())
                                                                      for r in rows], desired_orders(trade))
    by_id = {r.client_order_id: r for r in rows}
    for order in to_cancel:
        row = by_id[order.snapshot.client_order_id]
        written.append(with_snapshot(row, gateway.cancel_order(row.symbol, row.client_order_id)))
        result.actions["orders cancelled"] += 1
    for _, request, version in to_place:
        row = intent_row(request, signal.signal_id, gateway.name, _leg(request.client_order_id), version,
                         gateway.mode, now_ms)
        write_orders(spark, config, [row])  # the intent first
        written.append(_send(gateway, row))
        result.actions[f"{row.leg} orders placed"] += 1
    write_orders(spark, config, written)
    if trade.state == TradeState.CLOSED:
        _close_position(spark, config, gateway, signal, trade, result)
    elif trade.state in (TradeState.OPEN, TradeState.TP1_DONE):
        _store_open_position(spark, config, gateway, signal, trade)


def _leg(client_id: str) -> str:
    return client_id.split("-")[2]


def _entry_void(spark, config, gateway, signal, trade, entry: OrderRow, trading, now_ms: int) -> str | None:
    """Why a waiting entry should go: too many bars, or price reached the stop or TP1 first."""
    interval_ms = INTERVAL_MS[signal.interval]
    waited = (now_ms - signal.known_at_ms) // interval_ms
    if waited >= trading.entry_timeout_bars:
        return f"entry not filled after {waited} bars (entry_timeout_bars {trading.entry_timeout_bars})"
    extremes = (read_table(spark, config, "silver.unified_klines")
                .where((F.col("exchange") == gateway.name) & (F.col("symbol") == signal.symbol)
                       & (F.col("interval") == "1m") & (F.col("open_time_ms") > signal.known_at_ms)
                       & (F.col("close_time_ms") <= now_ms))
                .agg(F.max("high"), F.min("low")).first())
    if extremes[0] is None:
        return None
    high, low = _d(extremes[0]), _d(extremes[1])
    long = trade.direction == "long"
    if (high >= trade.tp1_price) if long else (low <= trade.tp1_price):
        return "entry void: price reached TP1 first"
    if (low <= trade.sl_price) if long else (high >= trade.sl_price):
        return "entry void: price reached the stop loss first"
    return None


def _store_open_position(spark, config, gateway, signal, trade) -> None:
    from delta.tables import DeltaTable

    fees = sum((f.fee for f in trade.fills), Decimal(0))
    realised = sum((((f.price - trade.entry_average) if trade.direction == "long" else (trade.entry_average - f.price))
                    * f.amount for f in trade.fills if f.leg != "entry"), Decimal(0))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    row = {"position_id": signal.signal_id, "signal_id": signal.signal_id, "strategy": signal.strategy,
           "exchange": gateway.name, "symbol": signal.symbol, "interval": signal.interval,
           "direction": trade.direction, "status": trade.state.value, "entry_price": trade.entry_average,
           "quantity": trade.filled, "remaining_quantity": trade.open_amount, "sl_price": trade.sl_price,
           "tp1_price": trade.tp1_price, "tp2_price": trade.tp2_price,
           "tp1_hit": trade.state == TradeState.TP1_DONE, "sl_at_breakeven": trade.sl_price != trade.initial_sl,
           "realized_pnl": realised, "fees": fees, "mode": gateway.mode, "opened_at": _ts(trade.opened_ms),
           "updated_at": now}
    schema = read_table(spark, config, "trading.positions_open").schema
    frame = local_frame(spark, [tuple(row[f.name] for f in schema)], schema)
    (DeltaTable.forPath(spark, location_of(config, "trading.positions_open")).alias("t")
     .merge(frame.alias("s"), "t.position_id = s.position_id")
     .whenMatchedUpdate(set={c: f"s.{c}" for c in row if c not in ("position_id", "opened_at")})
     .whenNotMatchedInsertAll().execute())


def _close_position(spark, config, gateway, signal, trade, result: ManagerResult) -> None:
    """positions_closed once (keyed by position id), out of positions_open, the day's P&L again."""
    from delta.tables import DeltaTable

    figures = trade_result(trade)
    closed_at = _ts(trade.closed_ms)
    row = {"position_id": signal.signal_id, "signal_id": signal.signal_id, "strategy": signal.strategy,
           "exchange": gateway.name, "symbol": signal.symbol, "interval": signal.interval,
           "direction": trade.direction, "entry_price": figures.entry_average, "exit_price": figures.exit_average,
           "quantity": figures.amount, "realized_pnl": figures.gross_pnl, "fees": figures.fees,
           "net_pnl": figures.net_pnl, "r_multiple": figures.r_multiple, "exit_reason": figures.exit_reason,
           "mode": gateway.mode, "opened_at": _ts(trade.opened_ms), "closed_at": closed_at,
           "hold_minutes": (trade.closed_ms - trade.opened_ms) / 60_000, "close_date": closed_at.date()}
    schema = read_table(spark, config, "trading.positions_closed").schema
    frame = local_frame(spark, [tuple(row[f.name] for f in schema)], schema)
    (DeltaTable.forPath(spark, location_of(config, "trading.positions_closed")).alias("t")
     .merge(frame.alias("s"), "t.position_id = s.position_id").whenNotMatchedInsertAll().execute())
    DeltaTable.forPath(spark, location_of(config, "trading.positions_open")).delete(
        F.col("position_id") == signal.signal_id)
    audit(spark, config, [{"entity_type": "position", "entity_id": signal.signal_id, "from_status": "open",
                           "to_status": "closed", "reason": figures.exit_reason,
                           "details": {"net_pnl": str(figures.net_pnl)}, "actor": ACTOR}])
    _store_daily_pnl(spark, config, gateway, closed_at.date())
    result.actions[f"positions closed ({figures.exit_reason})"] += 1


def _store_daily_pnl(spark, config, gateway, day) -> None:
    from delta.tables import DeltaTable

    day_rows = (read_table(spark, config, "trading.positions_closed")
                .where((F.col("close_date") == F.lit(day)) & (F.col("exchange") == gateway.name)
                       & (F.col("mode") == gateway.mode)).collect())
    net = sum((Decimal(r.net_pnl) for r in day_rows), Decimal(0))
    equity_end = gateway.equity()
    row = {"pnl_date": day, "exchange": gateway.name, "mode": gateway.mode, "trades": len(day_rows),
           "wins": sum(1 for r in day_rows if r.net_pnl > 0), "losses": sum(1 for r in day_rows if r.net_pnl <= 0),
           "realized_pnl": sum((Decimal(r.realized_pnl) for r in day_rows), Decimal(0)),
           "fees": sum((Decimal(r.fees) for r in day_rows), Decimal(0)), "net_pnl": net,
           "equity_start": equity_end - net, "equity_end": equity_end,
           "updated_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    schema = read_table(spark, config, "trading.daily_pnl").schema
    frame = local_frame(spark, [tuple(row[f.name] for f in schema)], schema)
    (DeltaTable.forPath(spark, location_of(config, "trading.daily_pnl")).alias("t")
     .merge(frame.alias("s"), "t.pnl_date = s.pnl_date AND t.exchange = s.exchange AND t.mode = s.mode")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def _d(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _wall_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("position_manager", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
