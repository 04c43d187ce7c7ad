"""Execution engine: places the limit entry of each `confirmed` signal; `cryptobot execute`, a
spark-submit target, and run by the stream after the scorer.

For each confirmed signal of the trading exchange, symbols, intervals and strategies (oldest
first), under the risk guards of gold.trading_config (kill switch, max open positions, one
position per symbol, the daily loss limit): size = equity x risk% / |entry - stop|, capped by
leverage and total exposure and rounded to the market; then the entry, exactly once:
1. a row of trading.orders for its client order id exists already -> done before, skip;
2. the exchange knows the client order id (a crash after sending, before recording) ->
   record what it says;
3. otherwise record the intent (`new`), send, and record the answer: `open`, `rejected` with
   the exchange's message, or `unknown` when the answer was lost (the position manager settles
   it by a lookup, never by a blind resend).
A run records all its intents in one write before it sends any, and all the answers in one
write after: the same safety as one signal at a time, for two MERGEs however many signals.
The signal becomes `executed` (or `expired` / `cancelled` with the reason). The stop and the
targets are the position manager's, once the entry fills.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from common.catalog import read_table
from common.config import INTERVAL_MS, AppConfig
from common.exchange.account import build_gateway
from common.exchange.gateway import OrderOutcomeUnknown, OrderRejected, OrderRequest, client_order_id
from common.trade.sizing import position_size, round_price, round_stop
from common.trading_config import TradingConfig, read_trading_config
from jobs.trading_store import (
    ACTIVE_ORDER_STATUSES, ACTIVE_ORDERS, OrderRow, intent_row, latest_minute_closes, move_signals,
    read_orders, with_snapshot, write_orders,
)

log = logging.getLogger(__name__)
ACTOR = "execution_engine"


@dataclass
class ExecutionResult:
    placed: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> signals
    halted: str | None = None

    @property
    def rows_in(self) -> int:  # for gold.job_runs: confirmed signals looked at, entries placed
        return self.placed + sum(self.skipped.values())

    @property
    def rows_out(self) -> int:
        return self.placed

    def describe(self) -> str:
        lines = [f"entries placed: {self.placed}"] + ([f"halted: {self.halted}"] if self.halted else [])
        return "\n".join(lines + [f"  {reason}: {n}" for reason, n in sorted(self.skipped.items())])


def run(spark: SparkSession, config: AppConfig, gateway=None, as_of_ms: int | None = None,
        trading: TradingConfig | None = None) -> ExecutionResult:
    """as_of_ms (paper only): trade as if now were then, on the klines known by then."""
    trading = trading if trading is not None else read_trading_config(spark)  # a paper replay holds one fixed
    gateway = gateway or build_gateway(config, trading)
    result = ExecutionResult()
    if not trading.trading_enabled:
        result.halted = "trading_enabled = false (kill switch)"
        return result
    signals = (read_table(spark, config, "gold.signals_all")
               .where((F.col("status") == "confirmed") & (F.col("exchange") == trading.trading_exchange)
                      & F.col("symbol").isin(list(trading.trading_symbols))
                      & F.col("interval").isin(list(trading.trading_intervals))
                      & F.col("strategy").isin(list(trading.strategies)))
               .orderBy("known_at_ms", "signal_id").collect())
    if not signals:
        return result
    clocks = _clocks(spark, config, gateway, sorted({s.symbol for s in signals}), as_of_ms)
    if not clocks:
        result.halted = (f"paper trading needs 1m klines of {gateway.name} in silver.unified_klines for the "
                         f"signals' symbols (none found): add 1m to [exchanges] intervals")
        return result
    equity = gateway.equity()
    # The limits are the account's: paper positions take no room on the testnet's, nor the other way round.
    open_positions = (read_table(spark, config, "trading.positions_open")
                      .where((F.col("exchange") == gateway.name) & (F.col("mode") == gateway.mode)).collect())
    # One read of trading.orders: the active entries (for the limits) and the signals' own entries.
    own_ids = {client_order_id(s.signal_id, "entry", 0) for s in signals}
    orders = read_orders(spark, config, f"(leg = 'entry' AND {ACTIVE_ORDERS}) OR client_order_id IN ("
                         + ", ".join(f"'{cid}'" for cid in sorted(own_ids)) + ")")
    pending_entries = [o for o in orders if o.leg == "entry" and o.status in ACTIVE_ORDER_STATUSES and o.filled == 0]
    own_entry = {o.signal_id for o in pending_entries}  # sent (or meant to be) by an earlier run, in any mode
    account_entries = [o for o in pending_entries if (o.exchange, o.mode) == (gateway.name, gateway.mode)]
    busy = Counter(p.symbol for p in open_positions) + Counter(o.symbol for o in account_entries)
    open_notional = sum((Decimal(p.remaining_quantity) * Decimal(p.entry_price) for p in open_positions), Decimal(0))
    loss_today = _realised_today(spark, config, gateway.mode, max(clocks.values()))
    if loss_today <= -equity * Decimal(str(trading.daily_loss_limit_pct)) / 100:
        result.halted = (f"daily loss limit: {loss_today:.2f} realised today, limit "
                         f"{trading.daily_loss_limit_pct}% of equity {equity:.2f}")
        return result
    recorded = {o.client_order_id: o for o in orders if o.client_order_id in own_ids}
    moves, entries = [], []
    for signal in signals:
        now_ms = clocks.get(signal.symbol)
        if now_ms is None:
            result.skipped["no 1m klines of the symbol to trade it on paper"] += 1
            continue
        if signal.signal_id in own_entry:  # settle it first: an order may exist, whatever the signal's age
            entries.append(_plan_entry(gateway, trading, signal, recorded, equity, open_notional, now_ms, new=False))
            continue
        age_bars = (now_ms - signal.known_at_ms) // INTERVAL_MS[signal.interval]
        if age_bars > trading.signal_max_age_bars:
            moves.append((signal.signal_id, "confirmed", "expired",
                          f"{age_bars} bars old at execution, more than signal_max_age_bars "
                          f"{trading.signal_max_age_bars}"))
            continue
        if sum(busy.values()) >= trading.max_open_positions:
            result.skipped["max_open_positions reached"] += 1
            continue
        if busy[signal.symbol] >= trading.max_positions_per_symbol:
            result.skipped["a position or entry on the symbol already"] += 1
            continue
        entry = _plan_entry(gateway, trading, signal, recorded, equity, open_notional, now_ms, new=True)
        entries.append(entry)
        if not entry.outcome.startswith("cancelled:"):
            busy[signal.symbol] += 1
    # Every intent on record before the exchange can have any of them (one write), then the
    # sends, then their answers (one write): a run that dies between leaves each order findable
    # by its client id, and a MERGE costs seconds here, whatever its size.
    write_orders(spark, config, [e.record for e in entries if e.record is not None])
    write_orders(spark, config, [_send_entry(gateway, e) for e in entries if e.send is not None])
    for entry in entries:
        moves.append((entry.signal.signal_id, "confirmed", *_signal_move(entry.outcome)))
        result.placed += entry.new and entry.outcome == "entry order sent"
    move_signals(spark, config, moves, ACTOR)
    log.info("event=execution placed=%d skipped=%s moves=%d", result.placed, dict(result.skipped), len(moves))
    return result


def _signal_move(outcome: str) -> tuple[str, str]:
    """(the signal's new status, the reason) from what was done with its entry."""
    if outcome.startswith("cancelled:"):
        return "cancelled", outcome.removeprefix("cancelled: ")
    return "executed", outcome


@dataclass
class _Entry:
    """One signal's entry in a run: what to record before any send, what to send, what happened
    (prefixed 'cancelled:' when it cannot be placed; set by the send when there is one)."""
    signal: Row
    outcome: str
    new: bool  # a signal this run took on (not one an earlier run had sent or meant to)
    record: OrderRow | None = None
    send: OrderRow | None = None


def _plan_entry(gateway, trading, signal, recorded: dict[str, OrderRow], equity: Decimal, open_notional: Decimal,
                now_ms: int, new: bool) -> _Entry:
    """What placing the signal's entry once takes, from our record and the exchange's."""
    cid = client_order_id(signal.signal_id, "entry", 0)
    ours = recorded.get(cid)
    if ours is not None and ours.status not in ("new", "unknown"):
        return _Entry(signal, "entry order recorded before", new)
    # Our record is missing or unsettled: the exchange says whether it has the order.
    existing = gateway.find_order(signal.symbol, cid)
    direction = signal.direction
    side = "buy" if direction == "long" else "sell"
    if existing is not None:  # sent by a run that died before recording the answer
        row = ours or intent_row(OrderRequest(cid, signal.symbol, side, "limit", existing.amount, existing.price),
                                 signal.signal_id, gateway.name, "entry", 0, gateway.mode, now_ms)
        return _Entry(signal, "entry order found on the exchange and recorded", new,
                      record=with_snapshot(row, existing))
    if ours is not None:  # the intent was recorded but the order never reached the exchange: send it now
        return _Entry(signal, "entry order to send", new, send=ours)
    if hasattr(gateway, "set_rules"):  # paper: the market's steps from its price
        gateway.set_rules(signal.symbol, Decimal(str(signal.entry_price)))
    rules = gateway.market_rules(signal.symbol)
    entry = round_price(Decimal(str(signal.entry_price)), rules)
    stop = round_stop(Decimal(str(signal.sl_price)), direction, rules)
    size = position_size(equity, Decimal(str(trading.risk_per_trade_pct)), entry, stop, rules,
                         Decimal(str(trading.max_leverage)), Decimal(str(trading.max_total_exposure_pct)),
                         open_notional)
    if size.refusal:
        return _Entry(signal, f"cancelled: {size.refusal}", new)
    row = intent_row(OrderRequest(cid, signal.symbol, side, "limit", size.amount, entry), signal.signal_id,
                     gateway.name, "entry", 0, gateway.mode, now_ms)
    return _Entry(signal, "entry order to send", new, record=row, send=row)


def _send_entry(gateway, entry: _Entry) -> OrderRow:
    """Send the entry; returns the row recording the exchange's answer."""
    from dataclasses import replace

    row = entry.send
    try:
        answer = with_snapshot(row, gateway.place_order(row.request()))
    except OrderOutcomeUnknown as error:
        entry.outcome = "entry order sent, answer lost: unknown until a lookup settles it"
        return replace(row, status="unknown", error=str(error))
    except OrderRejected as error:
        entry.outcome = f"cancelled: entry rejected by the exchange: {error}"
        return replace(row, status="rejected", error=str(error))
    entry.outcome = "entry order sent"
    return answer


def _clocks(spark, config, gateway, symbols: list[str], as_of_ms: int | None = None) -> dict[str, int]:
    """Now, per symbol: on paper the close of its newest 1m kline (the data's clock), else the wall."""
    if gateway.mode != "paper":
        return dict.fromkeys(symbols, int(datetime.now(timezone.utc).timestamp() * 1000))
    clocks = latest_minute_closes(spark, config, gateway.name, symbols, as_of_ms)
    for symbol, now_ms in clocks.items():
        gateway.set_clock(symbol, now_ms)
    return clocks


def _realised_today(spark, config, mode: str, now_ms: int) -> Decimal:
    day = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).date()
    row = (read_table(spark, config, "trading.positions_closed")
           .where((F.col("close_date") == F.lit(day)) & (F.col("mode") == mode))
           .agg(F.sum("net_pnl")).first())
    return Decimal(0) if row[0] is None else Decimal(row[0])


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("execution_engine", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
