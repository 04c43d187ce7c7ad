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
The signal becomes `executed` (or `expired` / `cancelled` with the reason). The trade's stop
goes with the entry (a stop that closes the position, placeable before it exists), so a fill
is never without one; the targets are the position manager's, once the entry fills.
Everything is scoped to the account of the gateway (exchange, mode, account) and refused
while another account holds active orders or positions; the kill switch and the daily loss
halt cancel the resting entries; each signal is planned on its own (one failure cancels that
signal only); no entry on stale or holed 1m data (testnet, live); sizing on free margin.
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal

from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from common.catalog import read_table
from common.config import AppConfig
from common.intervals import INTERVAL_MS
from common.trade.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest, client_order_id
from common.trade.lifecycle import entry_passed
from common.trade.risk import notional_at_work, stale_data
from common.trade.sizing import position_size, round_price, round_stop
from common.trading_config import TradingConfig
from common.trading.trading_store import (
    ACTIVE_ORDER_STATUSES, ACTIVE_ORDERS, OrderRow, audit, extremes_since, intent_row, latest_minute_closes,
    move_signals, of_account, open_trading_account, read_orders, wall_ms, with_snapshot, write_orders,
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
    trading, gateway, account = open_trading_account(spark, config, gateway, trading)
    result = ExecutionResult()
    signals = (read_table(spark, config, "gold.signals_all")
               .where((F.col("status") == "confirmed") & (F.col("exchange") == trading.trading_exchange)
                      & F.col("symbol").isin(list(trading.trading_symbols))
                      & F.col("interval").isin(list(trading.trading_intervals))
                      & F.col("strategy").isin(list(trading.strategies)))
               .orderBy("known_at_ms", "signal_id").collect())
    # One read of trading.orders: this account's resting entries (for the limits and the halts)
    # and every row of the signals' own entries, whatever account they are on.
    own_ids = {client_order_id(s.signal_id, leg, 0) for s in signals for leg in ("entry", "sl")}
    orders = read_orders(spark, config, f"({of_account(account)} AND leg = 'entry' AND {ACTIVE_ORDERS})"
                         + (" OR client_order_id IN (" + ", ".join(f"'{cid}'" for cid in sorted(own_ids)) + ")"
                            if own_ids else ""))
    resting = [o for o in orders if o.leg == "entry" and o.status in ACTIVE_ORDER_STATUSES and _on_account(o, account)]
    if not trading.trading_enabled:
        return _halt(spark, config, gateway, account, resting, result, "trading_enabled = false (kill switch)",
                     as_of_ms)
    if not signals and not resting:
        return result
    clocks = _clocks(spark, config, gateway, sorted({s.symbol for s in signals} | {o.symbol for o in resting}),
                     as_of_ms)
    if not clocks:
        result.halted = (f"paper trading needs 1m klines of {gateway.name} in silver.unified_klines for the "
                         f"signals' symbols (none found): add 1m to [exchanges] intervals")
        return result
    equity = gateway.equity()
    loss_today = _realised_today(spark, config, account, max(clocks.values()))
    if loss_today < 0 and loss_today <= -equity * Decimal(str(trading.daily_loss_limit_pct)) / 100:
        return _halt(spark, config, gateway, account, resting, result,
                     f"daily loss limit: {loss_today:.2f} realised today, limit {trading.daily_loss_limit_pct}% "
                     f"of equity {equity:.2f}", as_of_ms, stable_reason=f"daily loss limit "
                     f"{trading.daily_loss_limit_pct}% reached")
    if not signals:
        return result
    free_margin = gateway.free_margin()
    if not free_margin.is_finite() or free_margin <= 0:
        result.halted = (f"no free margin: {gateway.name} reports {free_margin} USDT free on the {account.mode} "
                         f"account, nothing can be sized")
        return result
    open_positions = (read_table(spark, config, "trading.positions_open").where(of_account(account)).collect())
    data_problems = _data_problems(spark, config, gateway, trading, sorted({s.symbol for s in signals}), clocks)
    # A signal can wait confirmed for hours (one trade per symbol): the market may have left it.
    extremes = extremes_since(spark, config, gateway.name, [(s.signal_id, s.symbol, s.known_at_ms, clocks[s.symbol])
                                                            for s in signals if s.symbol in clocks])
    books = _Books(
        busy=Counter(p.symbol for p in open_positions) + Counter(o.symbol for o in resting if o.filled == 0),
        notional=notional_at_work([(Decimal(p.remaining_quantity), Decimal(p.entry_price)) for p in open_positions],
                                  [(o.amount - o.filled, o.price or Decimal(0)) for o in resting if o.filled == 0]),
        free_margin=free_margin, equity=equity)
    recorded = {o.client_order_id: o for o in orders if o.client_order_id in own_ids}
    moves, entries = [], []
    for signal in signals:
        try:
            outcome = _plan_signal(gateway, account, trading, signal, recorded, books, clocks, data_problems,
                                   extremes.get(signal.signal_id))
        except Exception as error:  # noqa: BLE001 - one signal's trouble must not keep the others from trading
            log.exception("event=signal_failed signal_id=%s symbol=%s", signal.signal_id, signal.symbol)
            moves.append((signal.signal_id, "confirmed", "cancelled",
                          f"failed: {type(error).__name__}: {error}"))
            result.skipped["failed (see the log)"] += 1
            continue
        if isinstance(outcome, _Entry):
            entries.append(outcome)
        elif isinstance(outcome, tuple):
            moves.append((signal.signal_id, "confirmed", *outcome))
        else:
            result.skipped[outcome] += 1
    # Every intent on record before the exchange can have any of them (one write), then the
    # sends, then their answers (one write): a run that dies between leaves each order findable
    # by its client id, and a MERGE costs seconds here, whatever its size.
    write_orders(spark, config, [row for e in entries for row in e.records])
    write_orders(spark, config, [row for e in entries if e.send for row in _send_entry(gateway, e)])
    for entry in entries:
        if entry.outcome is not None:
            moves.append((entry.signal.signal_id, "confirmed", *_signal_move(entry.outcome)))
        else:
            result.skipped["entry not sent (see the log); the next run looks it up"] += 1
        result.placed += entry.outcome == "entry order sent"
    move_signals(spark, config, moves, ACTOR)
    log.info("event=execution account=%s placed=%d skipped=%s moves=%d", account.describe(), result.placed,
             dict(result.skipped), len(moves))
    return result


@dataclass
class _Books:
    """What the run's guards count, kept up to date as it plans: signals per symbol with a
    position or a resting entry, the notional they hold, and the account's money."""
    busy: Counter
    notional: Decimal
    free_margin: Decimal
    equity: Decimal


def _signal_move(outcome: str) -> tuple[str, str]:
    """(the signal's new status, the reason) from what was done with its entry."""
    for status in ("cancelled", "expired"):
        if outcome.startswith(f"{status}:"):
            return status, outcome.removeprefix(f"{status}: ")
    return "executed", outcome


@dataclass
class _Entry:
    """One signal's entry in a run: what to record before any send, what to send (the entry,
    then its stop), what happened (prefixed 'cancelled:' when it cannot be placed; set by the
    send when there is one; None when the send failed unexpectedly and the intent stays)."""
    signal: Row
    outcome: str | None
    records: list[OrderRow] = field(default_factory=list)
    send: list[OrderRow] = field(default_factory=list)


def _plan_signal(gateway, account, trading, signal, recorded: dict[str, OrderRow], books: _Books,
                 clocks: dict[str, int], data_problems: dict[str, str],
                 extremes: tuple[Decimal, Decimal] | None = None):
    """What to do with one confirmed signal: an _Entry, a (status, reason) move of the signal,
    or the reason it is skipped this run (a str). extremes: the market's (high, low) since the
    signal was known."""
    now_ms = clocks.get(signal.symbol)
    if now_ms is None:
        return "no 1m klines of the symbol to trade it on paper"
    ours = recorded.get(client_order_id(signal.signal_id, "entry", 0))
    if ours is not None and not _on_account(ours, account):
        return ("cancelled", f"its entry is recorded on another account ({ours.exchange} {ours.mode} "
                             f"{ours.account}): never sent to {account.describe()}")
    if ours is not None and ours.status not in ("new", "unknown"):
        return _Entry(signal, "entry order recorded before")
    # Our record is missing or unsettled: the exchange says whether it has the order.
    existing = gateway.find_order(signal.symbol, ours.client_order_id if ours else
                                  client_order_id(signal.signal_id, "entry", 0))
    if existing is not None:  # sent by a run that died before recording the answer
        row = ours or intent_row(OrderRequest(existing.client_order_id, signal.symbol, existing.side, "limit",
                                              existing.amount, existing.price),
                                 signal.signal_id, account, "entry", 0, now_ms)
        books.busy[signal.symbol] += 1
        stop = recorded.get(client_order_id(signal.signal_id, "sl", 0))
        unsent_stop = ([stop] if stop is not None and stop.status == "new"
                       and gateway.find_order(signal.symbol, stop.client_order_id) is None else [])
        return _Entry(signal, "entry order found on the exchange and recorded", records=[with_snapshot(row, existing)],
                      send=unsent_stop)  # and its stop, if the run died before sending it
    # Not on the exchange: a new entry, or an intent that a run recorded and never sent. Either
    # way it goes through every guard now, as if it were new.
    unsent = [o for o in (ours, recorded.get(client_order_id(signal.signal_id, "sl", 0)))
              if o is not None and o.status in ("new", "unknown")]
    refusal = _guards(trading, signal, books, now_ms, data_problems, extremes)
    if refusal is not None:
        if not unsent or isinstance(refusal, str):
            return refusal
        status, reason = refusal  # the signal goes, and its unsent intents with it
        return _Entry(signal, f"{status}: {reason}",
                      records=[replace(o, status="canceled", error=f"never sent: {reason}") for o in unsent])
    if unsent:
        rows, records = unsent, []
    else:
        planned = _size_entry(gateway, account, trading, signal, books, now_ms)
        if isinstance(planned, str):
            return ("cancelled", planned)
        rows = records = planned
    books.busy[signal.symbol] += 1
    books.notional += rows[0].amount * rows[0].price
    return _Entry(signal, "entry order to send", records=records, send=rows)


def _on_account(order: OrderRow, account) -> bool:
    return (order.exchange, order.mode, order.account or account.account) == (
        account.exchange, account.mode, account.account)


def _guards(trading, signal, books: _Books, now_ms: int, data_problems: dict[str, str],
            extremes: tuple[Decimal, Decimal] | None = None):
    """None when a new entry may go; else a (status, reason) move of the signal or a str reason
    to skip it for this run."""
    age_bars = (now_ms - signal.known_at_ms) // INTERVAL_MS[signal.interval]
    if age_bars > trading.signal_max_age_bars:
        return ("expired", f"{age_bars} bars old at execution, more than signal_max_age_bars "
                           f"{trading.signal_max_age_bars}")
    # As the scorer and the position manager judge a waiting entry: a stop the market has
    # reached would be refused (or trigger at once), a TP1 reached means the move is gone.
    if extremes is not None and _plan_in_order(signal):  # else the sizing refuses the plan, and says why
        passed = entry_passed(signal.direction, Decimal(str(signal.sl_price)), Decimal(str(signal.tp1_price)),
                              *extremes)
        if passed is not None:
            return ("expired", f"entry passed: {passed} before the order")
    if signal.symbol in data_problems:
        return data_problems[signal.symbol]
    if sum(books.busy.values()) >= trading.max_open_positions:
        return "max_open_positions reached"
    if books.busy[signal.symbol] >= trading.max_positions_per_symbol:
        return "a position or entry on the symbol already"
    return None


def _plan_in_order(signal) -> bool:
    """The stop, the entry and TP1 finite and in that order along the trade's direction."""
    levels = [signal.sl_price, signal.entry_price, signal.tp1_price]
    if any(level is None or not math.isfinite(level) for level in levels):
        return False
    return levels == sorted(levels) if signal.direction == "long" else levels == sorted(levels, reverse=True)


def _size_entry(gateway, account, trading, signal, books: _Books, now_ms: int) -> list[OrderRow] | str:
    """The entry's intent (and its stop's), sized on the free margin within the caps, or why not."""
    prices = {name: Decimal(str(getattr(signal, name))) for name in ("entry_price", "sl_price")}
    bad = [f"{name} {value}" for name, value in prices.items() if not value.is_finite() or value <= 0]
    if bad:
        return f"invalid plan: {', '.join(bad)} is not a finite positive price"
    if hasattr(gateway, "set_rules"):  # paper: the market's steps from its price
        gateway.set_rules(signal.symbol, prices["entry_price"])
    rules = gateway.market_rules(signal.symbol)
    entry = round_price(prices["entry_price"], rules)
    stop = round_stop(prices["sl_price"], signal.direction, rules)
    size = position_size(books.free_margin, Decimal(str(trading.risk_per_trade_pct)), entry, stop, rules,
                         Decimal(str(trading.max_leverage)), Decimal(str(trading.max_total_exposure_pct)),
                         books.notional, direction=signal.direction, exposure_equity=books.equity)
    if size.refusal:
        return size.refusal
    entry_side, exit_side = ("buy", "sell") if signal.direction == "long" else ("sell", "buy")
    rows = [intent_row(OrderRequest(client_order_id(signal.signal_id, "entry", 0), signal.symbol, entry_side, "limit",
                                    size.amount, entry), signal.signal_id, account, "entry", 0, now_ms)]
    # The trade's stop goes right after its entry, so that a fill is never without one: a stop
    # that closes the symbol's whole position, placeable before there is one. Only with one
    # trade per symbol (closing the position is closing the trade); with more, the position
    # manager places an amount-sized stop once it sees the fill.
    if trading.max_positions_per_symbol == 1:
        rows.append(intent_row(OrderRequest(client_order_id(signal.signal_id, "sl", 0), signal.symbol, exit_side,
                                            "stop_market", size.amount, None, stop, reduce_only=True,
                                            close_position=True), signal.signal_id, account, "sl", 0, now_ms))
    return rows


def _send_entry(gateway, entry: _Entry) -> list[OrderRow]:
    """Send the entry, then its stop (only the stop when the entry is on the exchange already);
    returns the rows recording the exchange's answers."""
    entry_row, stops = (entry.send[0], entry.send[1:]) if entry.send[0].leg == "entry" else (None, entry.send)
    answers = []
    if entry_row is not None:
        try:
            answers.append(with_snapshot(entry_row, gateway.place_order(entry_row.request())))
            entry.outcome = "entry order sent"
        except OrderOutcomeUnknown as error:
            entry.outcome = "entry order sent, answer lost: unknown until a lookup settles it"
            answers.append(replace(entry_row, status="unknown", error=str(error)))
        except OrderRejected as error:
            entry.outcome = f"cancelled: entry rejected by the exchange: {error}"
            return [replace(entry_row, status="rejected", error=str(error))] + [
                replace(stop, status="canceled", error="not sent: its entry was rejected") for stop in stops]
        except Exception:  # noqa: BLE001 - the intent stays `new`: the next run looks it up before anything
            log.exception("event=entry_send_failed client_order_id=%s", entry_row.client_order_id)
            entry.outcome = None
            return []
    for stop in stops:  # harmless without a position: it closes whatever is there when it triggers
        try:
            answers.append(with_snapshot(stop, gateway.place_order(stop.request())))
        except OrderOutcomeUnknown as error:
            answers.append(replace(stop, status="unknown", error=str(error)))
        except OrderRejected as error:  # the position manager retries it once, then closes at market
            log.warning("event=stop_rejected client_order_id=%s error=%s", stop.client_order_id, error)
            answers.append(replace(stop, status="rejected", error=str(error)))
        except Exception:  # noqa: BLE001 - stays `new`: the manager looks it up and places it
            log.exception("event=stop_send_failed client_order_id=%s", stop.client_order_id)
    return answers


def _halt(spark, config, gateway, account, resting: list[OrderRow], result: ExecutionResult, reason: str,
          as_of_ms: int | None, stable_reason: str | None = None) -> ExecutionResult:
    """No new entry: and the resting entries are cancelled (what is filled of them stays and is
    protected: the protective orders of open positions are not touched). Audited with the reason."""
    result.halted = reason
    now_ms = as_of_ms if as_of_ms is not None else wall_ms()
    answers, events = [], []
    for order in resting:
        try:
            found = gateway.find_order(order.symbol, order.client_order_id)
            if found is None:
                row = replace(order, status="canceled", error=f"not on the exchange: {reason}")
            elif found.status == "open":
                row = replace(with_snapshot(order, gateway.cancel_order(order.symbol, order.client_order_id)),
                              error=reason)
            else:
                row = with_snapshot(order, found)
        except Exception:  # noqa: BLE001 - logged; the next run tries again
            log.exception("event=halt_cancel_failed client_order_id=%s", order.client_order_id)
            continue
        answers.append(row)
        events.append({"entity_type": "order", "entity_id": order.client_order_id, "from_status": order.status,
                       "to_status": row.status, "reason": reason, "actor": ACTOR})
        result.skipped["resting entries cancelled by the halt"] += row.status == "canceled"
    day = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).date()
    events.append({"entity_type": "trading", "entity_id": f"{account.exchange}:{account.mode}:{account.account}:{day}",
                   "from_status": None, "to_status": "halted", "reason": stable_reason or reason,
                   "details": {"reason": reason, "entries_cancelled": len(answers)}, "actor": ACTOR})
    write_orders(spark, config, answers)
    audit(spark, config, events)
    log.warning("event=execution_halted account=%s reason=%s entries_cancelled=%d", account.describe(), reason,
                len(answers))
    return result


def _clocks(spark, config, gateway, symbols: list[str], as_of_ms: int | None = None) -> dict[str, int]:
    """Now, per symbol: on paper the close of its newest 1m kline (the data's clock), else the wall."""
    if gateway.mode != "paper":
        return dict.fromkeys(symbols, wall_ms())
    clocks = latest_minute_closes(spark, config, gateway.name, symbols, as_of_ms)
    for symbol, now_ms in clocks.items():
        gateway.set_clock(symbol, now_ms)
    return clocks


def _data_problems(spark, config, gateway, trading, symbols: list[str], clocks: dict[str, int]) -> dict[str, str]:
    """symbol -> why its 1m data is no ground for a new entry (testnet and live; on paper the
    clock is the newest kline itself). One read for every symbol of the run."""
    if gateway.mode == "paper" or not symbols:
        return {}
    now_ms = max(clocks.values())
    window_ms = trading.data_gap_window_minutes * 60_000
    rows = (read_table(spark, config, "silver.unified_klines")
            .where((F.col("exchange") == gateway.name) & (F.col("interval") == "1m") & F.col("symbol").isin(symbols)
                   & (F.col("open_time_ms") >= now_ms - window_ms - 60_000) & (F.col("close_time_ms") < now_ms))
            .select("symbol", "open_time_ms").collect())
    opens: dict[str, list[int]] = {s: [] for s in symbols}
    for r in rows:
        opens[r.symbol].append(r.open_time_ms)
    problems = {s: stale_data(times, clocks[s], trading.data_max_age_seconds * 1000, window_ms)
                for s, times in opens.items()}
    return {s: p for s, p in problems.items() if p is not None}


def _realised_today(spark, config, account, now_ms: int) -> Decimal:
    day = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).date()
    row = (read_table(spark, config, "trading.positions_closed")
           .where((F.col("close_date") == F.lit(day))).where(of_account(account))
           .agg(F.sum("net_pnl")).first())
    return Decimal(0) if row[0] is None else Decimal(row[0])
