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

from delta.tables import DeltaTable
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from common.catalog import known_by, location_of, read_table
from common.config import AppConfig
from common.exchange.account import account_of
from common.exchange.paper import Bar
from common.intervals import INTERVAL_MS
from common.local_frames import local_frame, stored_values
from common.trade.lifecycle import Trade, TradeState, entry_passed, trade_result
from common.trade.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest, client_order_id
from common.trade.protection import TradeOrder, desired_orders, rebuild_trade, reconcile
from common.trade.sizing import round_price, round_stop
from common.trading.trading_store import (
    ACTIVE_ORDER_STATUSES, ACTIVE_ORDERS, OrderRow, audit, costs_of, extremes_since, intent_row, of_account,
    open_trading_account, read_orders, utc_time, wall_ms, with_snapshot, write_orders,
)
from common.trading_config import TradingConfig

log = logging.getLogger(__name__)
ACTOR = "position_manager"
# An entry intent the exchange does not know is left this long to the execution engine (which
# may be sending it right now) before the manager settles it; the manager never sends one.
ENTRY_SEND_GRACE_MS = 60_000


@dataclass
class ManagerResult:
    actions: Counter = field(default_factory=Counter)

    @property
    def rows_out(self) -> int:  # for gold.job_runs: orders placed, cancelled, positions closed, ...
        return sum(self.actions.values())

    def describe(self) -> str:
        return "\n".join(["position manager:"] + [f"  {a}: {n}" for a, n in sorted(self.actions.items())])


def run(spark: SparkSession, config: AppConfig, gateway=None, as_of_ms: int | None = None,
        trading: TradingConfig | None = None, settle: bool = False) -> ManagerResult:
    """as_of_ms (paper only): the paper exchange matches the 1m klines up to then, no further.

    A turn costs the same few reads and writes however many trades it looks after: every
    trade is rebuilt and decided first, then the turn records what the exchange said of the
    orders, what it cancelled and the orders it is about to place (all in one write), places
    them, records the answers (one write) and writes the positions that changed."""
    trading, gateway, account = open_trading_account(spark, config, gateway, trading)
    result = ManagerResult()
    active = read_orders(spark, config, f"{ACTIVE_ORDERS} AND {of_account(account)}")
    stored_positions = {p.position_id: p for p in read_table(spark, config, "trading.positions_open")
                        .where(of_account(account)).collect()}
    signal_ids = sorted({o.signal_id for o in active} | {p.signal_id for p in stored_positions.values()}
                        | _filled_without_position(spark, config, account, stored_positions))
    if not signal_ids:
        _check_against_exchange(spark, config, gateway, trading, result)
        return result
    orders = read_orders(spark, config, "signal_id IN (" + ",".join(f"'{s}'" for s in signal_ids) + ") AND "
                         + of_account(account))
    symbols = sorted({o.symbol for o in orders})
    clocks = (_advance_paper(spark, config, gateway, orders, as_of_ms) if gateway.mode == "paper"
              else dict.fromkeys(symbols, wall_ms()))
    events: list[dict] = []
    signals = {r.signal_id: r for r in read_table(spark, config, "gold.signals_all")
               .where(F.col("signal_id").isin(signal_ids)).collect()}
    orders, refreshed = _refresh(gateway, trading, orders, signals, clocks, events, result)
    steps = []
    for signal_id in signal_ids:
        rows = [o for o in orders if o.signal_id == signal_id]
        if not rows or signal_id not in signals:
            continue
        step = _Step(signals[signal_id], rows, clocks[rows[0].symbol])
        if _isolated(step, result, lambda: _rebuild(gateway, trading, step)):
            steps.append(step)
    extremes = extremes_since(spark, config, gateway.name, [(s.signal.signal_id, s.signal.symbol, s.signal.known_at_ms,
                                                              s.now_ms) for s in steps if _may_be_void(s, trading)])
    for step in steps:
        _isolated(step, result, lambda: _decide(gateway, trading, step, extremes, events, result, settle))
    audit(spark, config, events)
    # What the exchange said of our orders, what was cancelled, and every order about to be
    # placed: the intent is on record before the exchange can have it, so a turn that dies now
    # leaves nothing untracked. One write: a MERGE costs seconds, whatever its size.
    write_orders(spark, config, refreshed + [r for s in steps for r in s.answers + s.intents])
    placed_events: list[dict] = []
    answers = [answer for s in steps for answer in _place(spark, config, gateway, s, placed_events, result)]
    write_orders(spark, config, answers)
    audit(spark, config, placed_events)
    _store_positions(spark, config, gateway, [s for s in steps if s.trade is not None and not s.failed],
                     stored_positions, result)
    _check_against_exchange(spark, config, gateway, trading, result)
    log.info("event=positions_managed signals=%d actions=%s", len(signal_ids), dict(result.actions))
    return result


@dataclass
class _Step:
    """One trade's share of a turn."""
    signal: Row
    rows: list[OrderRow]  # its orders, as the exchange last told us
    now_ms: int
    trade: Trade | None = None
    answers: list[OrderRow] = field(default_factory=list)  # what the exchange said to a cancel
    intents: list[OrderRow] = field(default_factory=list)  # orders to record, then place
    stops_replaced: list[OrderRow] = field(default_factory=list)  # cancelled once a new stop works
    close_reason: str | None = None
    failed: bool = False


def _isolated(step: _Step, result: ManagerResult, work) -> bool:
    """Run one trade's work; its failure is logged and leaves the others be (one market's
    trouble must not leave every other position unprotected)."""
    try:
        work()
        return True
    except Exception:  # noqa: BLE001 - logged with its traceback; the next turn tries again
        log.exception("event=position_manage_failed signal_id=%s symbol=%s", step.signal.signal_id, step.signal.symbol)
        result.actions["positions that failed (see the log)"] += 1
        step.failed = True
        return False


def _filled_without_position(spark: SparkSession, config: AppConfig, account, stored_positions) -> set[str]:
    """Trades whose entry filled but that have no position row yet, open or closed: an entry
    filled on arrival whose stop was then refused leaves no order active, and the trade must
    still get its stop (or be closed) this turn."""
    closed = read_table(spark, config, "trading.positions_closed").where(of_account(account)).select("signal_id")
    filled = (read_table(spark, config, "trading.orders")
              .where(f"leg = 'entry' AND filled > 0 AND {of_account(account)}")
              .join(closed, "signal_id", "left_anti").select("signal_id").distinct().collect())
    known = {p.signal_id for p in stored_positions.values()}
    return {row.signal_id for row in filled} - known


def _check_against_exchange(spark, config, gateway, trading, result: ManagerResult) -> None:
    """What the exchange holds against what we track, per symbol: the position's size, and any
    open order of ours (a `cb-` client id) we do not know as active. A difference is logged and
    recorded in the audit log (once per difference), never "fixed" blind: a person decides."""
    positions = read_table(spark, config, "trading.positions_open").where(of_account(account_of(gateway))).collect()
    ours = {o.client_order_id for o in read_orders(spark, config, f"{ACTIVE_ORDERS} AND {of_account(account_of(gateway))}")}
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
    matched = {s: gateway.matched_to_ms(s) for s in symbols}
    starts = [matched[s] if matched[s] is not None else min(o.updated_ms for o in orders if o.symbol == s) - 60_000
              for s in symbols]
    klines = (read_table(spark, config, "silver.unified_klines")
              .where((F.col("exchange") == gateway.name) & (F.col("interval") == "1m") & F.col("symbol").isin(symbols)
                     & (F.col("open_time_ms") > min(starts))
                     & known_by("close_time_ms", as_of_ms))
              .select("symbol", "open_time_ms", "open", "high", "low", "close").orderBy("open_time_ms").collect())
    gateway.advance(Bar(k.symbol, k.open_time_ms, _d(k.open), _d(k.high), _d(k.low), _d(k.close)) for k in klines)
    return {symbol: gateway.now_ms(symbol) for symbol in symbols}


def _refresh(gateway, trading, orders: list[OrderRow], signals: dict, clocks: dict[str, int], events: list[dict],
             result: ManagerResult) -> tuple[list[OrderRow], list[OrderRow]]:
    """Our record of every order not yet final, replaced by what the exchange says; returns it
    and the rows that changed (written with the turn's other order changes, in one write). A
    protective order recorded but not on the exchange is sent now (the first time); an entry
    never is: only the execution engine sends entries, through its guards."""
    refreshed, changed = [], []
    for row in orders:
        if row.status not in ACTIVE_ORDER_STATUSES:
            refreshed.append(row)
            continue
        snapshot = gateway.find_order(row.symbol, row.client_order_id)
        if snapshot is None and row.status in ("new", "unknown") and row.leg == "entry":
            new = _unsent_entry(row, signals.get(row.signal_id), clocks[row.symbol], trading) or row
        elif snapshot is None and row.status in ("new", "unknown"):
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
    result.actions["orders updated from the exchange"] += len(changed)
    return refreshed, changed


def _unsent_entry(row: OrderRow, signal, now_ms: int, trading) -> OrderRow | None:
    """An entry the exchange does not know: its settled record, or None to leave it as it is
    (the engine may be sending it now, or will send it through its guards at its next run)."""
    if now_ms - row.updated_ms < ENTRY_SEND_GRACE_MS:
        return None
    if row.status == "unknown":  # the engine sent it and lost the answer: the lookup says it never arrived
        return replace(row, status="canceled", error="the answer to its send was lost and the exchange does not "
                                                     "know it: never placed")
    age_bars = None if signal is None else (now_ms - signal.known_at_ms) // INTERVAL_MS[signal.interval]
    if age_bars is None or age_bars > trading.signal_max_age_bars:
        return replace(row, status="canceled", error=f"never sent, and its signal is too old to send it now "
                                                     f"({age_bars} bars, signal_max_age_bars "
                                                     f"{trading.signal_max_age_bars})")
    return None


def _send(gateway, row: OrderRow) -> OrderRow:
    try:
        return with_snapshot(row, gateway.place_order(row.request()))
    except OrderOutcomeUnknown as error:
        return replace(row, status="unknown", error=str(error))
    except OrderRejected as error:
        return replace(row, status="rejected", error=str(error))


def _rebuild(gateway, trading, step: _Step) -> None:
    """The trade as its orders' fills make it (None without an entry order)."""
    signal, rows = step.signal, step.rows
    entry = next((r for r in rows if r.leg == "entry"), None)
    if entry is None:
        return
    rules = gateway.market_rules(signal.symbol)
    direction = signal.direction
    step.trade = rebuild_trade(
        signal.signal_id, direction, entry.price, round_stop(_d(signal.sl_price), direction, rules),
        round_price(_d(signal.tp1_price), rules), round_price(_d(signal.tp2_price), rules), entry.amount,
        [TradeOrder(r.leg, r.version, r.snapshot()) for r in rows], costs_of(trading), rules,
        Decimal(str(trading.tp1_close_pct)), trading.move_sl_to_breakeven)


def _decide(gateway, trading, step: _Step, extremes: dict, events: list[dict], result: ManagerResult,
            settle: bool = False) -> None:
    """Cancel at the exchange what the trade no longer needs (answers kept to record) and
    prepare the orders it still needs (intents); nothing is placed here. A stop being replaced
    is cancelled only once its successor works (`_place`), so the position is never bare.
    settle: flatten the trade: a waiting entry is cancelled, an open trade closed at market."""
    trade, signal = step.trade, step.signal
    if trade is None:
        return
    if trade.state == TradeState.WAITING_ENTRY:
        entry = next(r for r in step.rows if r.leg == "entry")
        reason = ("settled by the user (cryptobot settle)" if settle else
                  _entry_void(signal, trade, trading, step.now_ms, extremes.get(signal.signal_id)))
        if reason and entry.status == "open":
            cancelled = with_snapshot(entry, gateway.cancel_order(entry.symbol, entry.client_order_id))
            step.answers.append(replace(cancelled, error=reason))
            events.append({"entity_type": "order", "entity_id": entry.client_order_id, "from_status": "open",
                           "to_status": "canceled", "reason": reason, "actor": ACTOR})
            result.actions["entries cancelled"] += 1
        return
    closing = any(r.leg == "close" and r.status in ACTIVE_ORDER_STATUSES for r in step.rows)
    wanted = [] if closing or settle else desired_orders(trade)
    to_cancel, to_place = reconcile(signal.signal_id, signal.symbol, [TradeOrder(r.leg, r.version, r.snapshot())
                                                                      for r in step.rows], wanted)
    by_id = {r.client_order_id: r for r in step.rows}
    new_stop = any(request.order_type == "stop_market" for _, request, _ in to_place)
    for order in to_cancel:
        row = by_id[order.snapshot.client_order_id]
        if row.leg == "sl" and (new_stop or settle):
            step.stops_replaced.append(row)  # cancelled once its successor works, or the position is closed
            continue
        step.answers.append(with_snapshot(row, gateway.cancel_order(row.symbol, row.client_order_id)))
        result.actions["orders cancelled"] += 1
    step.intents = [intent_row(request, signal.signal_id, account_of(gateway), _leg(request.client_order_id),
                               version, step.now_ms) for _, request, version in to_place]
    if settle and not closing and trade.open_amount > 0:
        step.intents.append(_market_close(gateway, signal, trade, step, 0))
        step.close_reason = "settled by the user (cryptobot settle)"


def _market_close(gateway, signal, trade, step: _Step, version: int) -> OrderRow:
    request = OrderRequest(client_order_id(signal.signal_id, "close", version), signal.symbol, trade.exit_side,
                           "market", trade.open_amount, reduce_only=True)
    return intent_row(request, signal.signal_id, account_of(gateway), "close", version, step.now_ms)


def _place(spark, config, gateway, step: _Step, events: list[dict], result: ManagerResult) -> list[OrderRow]:
    """Place the step's recorded intents; an order whose sending failed unexpectedly stays on
    record as `new`, and the next turn looks it up by its client id before sending it.
    A stop the exchange rejects is tried once more under its next version; rejected again, the
    position is closed at market (reduce-only) and the event audited. Once a new stop works,
    the stops it replaces are cancelled."""
    answers = []
    for row in step.intents:
        if any(a.leg == "close" and a.status in ("open", "closed") for a in answers):
            answers.append(replace(row, status="canceled", error="not sent: the position was closed at market"))
            continue
        try:
            answer = _send(gateway, row)
        except Exception:  # noqa: BLE001 - logged; looked up, never sent blind, next turn
            log.exception("event=order_send_failed client_order_id=%s", row.client_order_id)
            result.actions["orders left for the next turn (see the log)"] += 1
            continue
        answers.append(answer)
        if row.leg == "close":
            events.append({"entity_type": "position", "entity_id": step.signal.signal_id, "from_status": "open",
                           "to_status": "closing", "reason": step.close_reason or "market close",
                           "details": {"client_order_id": row.client_order_id, "status": answer.status},
                           "actor": ACTOR})
        if row.order_type == "stop_market" and answer.status == "rejected":
            answers += _stop_rejected(spark, config, gateway, step, row, answer, events, result)
        result.actions[f"{row.leg} orders placed"] += answer.status != "rejected"
    stop_works = any(a.leg == "sl" and a.status in ("open", "closed") for a in answers)
    closed_at_market = any(a.leg == "close" and a.status in ("open", "closed") for a in answers)
    if stop_works or closed_at_market:
        for row in step.stops_replaced:
            answers.append(with_snapshot(row, gateway.cancel_order(row.symbol, row.client_order_id)))
            result.actions["orders cancelled"] += 1
    return answers


def _stop_rejected(spark, config, gateway, step: _Step, row: OrderRow, answer: OrderRow, events: list[dict],
                   result: ManagerResult) -> list[OrderRow]:
    """A rejected stop: one more try under the next version (unless this was already the retry
    of a rejected one), then the position closed at market. Each intent on record before it goes."""
    events.append({"entity_type": "order", "entity_id": row.client_order_id, "from_status": "new",
                   "to_status": "rejected", "reason": answer.error or "stop rejected", "actor": ACTOR})
    earlier = [r for r in step.rows if r.leg == "sl" and r.version < row.version]
    answers = []
    if not (earlier and max(earlier, key=lambda r: r.version).status == "rejected"):
        retry = replace(row, client_order_id=client_order_id(step.signal.signal_id, "sl", row.version + 1),
                        version=row.version + 1, status="new", error=None)
        write_orders(spark, config, [retry])
        answer = _send(gateway, retry)
        answers.append(answer)
        if answer.status != "rejected":
            return answers
        events.append({"entity_type": "order", "entity_id": retry.client_order_id, "from_status": "new",
                       "to_status": "rejected", "reason": answer.error or "stop rejected", "actor": ACTOR})
    trade = step.trade
    close = _market_close(gateway, step.signal, trade, step, 0)
    write_orders(spark, config, [close])
    closed = _send(gateway, close)
    answers.append(closed)
    reason = f"the stop was rejected twice ({answer.error}): closed at market"
    events.append({"entity_type": "position", "entity_id": step.signal.signal_id, "from_status": "open",
                   "to_status": "closing", "reason": reason,
                   "details": {"client_order_id": close.client_order_id, "status": closed.status}, "actor": ACTOR})
    log.warning("event=stop_rejected_position_closed signal_id=%s symbol=%s close_status=%s",
                step.signal.signal_id, step.signal.symbol, closed.status)
    result.actions["positions closed at market after a rejected stop"] += 1
    return answers


def _leg(client_id: str) -> str:
    return client_id.split("-")[2]


def _may_be_void(step: _Step, trading) -> bool:
    return step.trade is not None and step.trade.state == TradeState.WAITING_ENTRY and _bars_waited(
        step.signal, step.now_ms) < trading.entry_timeout_bars


def _bars_waited(signal, now_ms: int) -> int:
    return (now_ms - signal.known_at_ms) // INTERVAL_MS[signal.interval]


def _entry_void(signal, trade, trading, now_ms: int, extremes: tuple[Decimal, Decimal] | None) -> str | None:
    """Why a waiting entry should go: too many bars, or price reached the stop or TP1 first."""
    waited = _bars_waited(signal, now_ms)
    if waited >= trading.entry_timeout_bars:
        return f"entry not filled after {waited} bars (entry_timeout_bars {trading.entry_timeout_bars})"
    passed = None if extremes is None else entry_passed(trade.direction, trade.sl_price, trade.tp1_price, *extremes)
    return None if passed is None else f"entry void: {passed} first"


def _store_positions(spark, config, gateway, steps: list[_Step], stored: dict, result: ManagerResult) -> None:
    """trading.positions_open for the open trades whose figures changed (one MERGE); the
    closed ones into positions_closed once, out of positions_open, their days' P&L again."""
    open_steps = [s for s in steps if s.trade.state in (TradeState.OPEN, TradeState.TP1_DONE)]
    _store_open_positions(spark, config, [_open_position_row(gateway, s.signal, s.trade) for s in open_steps], stored)
    closed = [(s.signal, s.trade) for s in steps if s.trade.state == TradeState.CLOSED]
    if closed:
        _close_positions(spark, config, gateway, closed, result)


def _open_position_row(gateway, signal, trade) -> dict:
    fees = sum((f.fee for f in trade.fills), Decimal(0))
    realised = sum((((f.price - trade.entry_average) if trade.direction == "long" else (trade.entry_average - f.price))
                    * f.amount for f in trade.fills if f.leg != "entry"), Decimal(0))
    return {"position_id": signal.signal_id, "signal_id": signal.signal_id, "strategy": signal.strategy,
            "exchange": gateway.name, "symbol": signal.symbol, "interval": signal.interval,
            "direction": trade.direction, "status": trade.state.value, "entry_price": trade.entry_average,
            "quantity": trade.filled, "remaining_quantity": trade.open_amount, "sl_price": trade.sl_price,
            "tp1_price": trade.tp1_price, "tp2_price": trade.tp2_price,
            "tp1_hit": trade.state == TradeState.TP1_DONE, "sl_at_breakeven": trade.sl_price != trade.initial_sl,
            "realized_pnl": realised, "fees": fees, "mode": gateway.mode, "account": account_of(gateway).account,
            "opened_at": utc_time(trade.opened_ms),
            "updated_at": datetime.now(timezone.utc).replace(tzinfo=None)}


# What a position's MERGE leaves as it was: its key, when it opened, and when it was last written.
_NOT_UPDATED = ("position_id", "opened_at")


def _store_open_positions(spark, config, rows: list[dict], stored: dict) -> None:
    schema = read_table(spark, config, "trading.positions_open").schema
    compared = [f.name for f in schema.fields if f.name not in _NOT_UPDATED + ("updated_at",)]
    changed = [row for row in rows if row["position_id"] not in stored or any(
        stored_values(row, schema)[c] != stored[row["position_id"]][c] for c in compared)]
    if not changed:
        return
    (DeltaTable.forPath(spark, location_of(config, "trading.positions_open")).alias("t")
     .merge(local_frame(spark, changed, schema).alias("s"), "t.position_id = s.position_id")
     .whenMatchedUpdate(set={f.name: f"s.{f.name}" for f in schema.fields if f.name not in _NOT_UPDATED})
     .whenNotMatchedInsertAll().execute())


def _close_positions(spark, config, gateway, closed: list[tuple], result: ManagerResult) -> None:
    """positions_closed once (keyed by position id), out of positions_open, the days' P&L again."""

    rows, events = [], []
    for signal, trade in closed:
        figures = trade_result(trade)
        closed_at = utc_time(trade.closed_ms)
        rows.append({"position_id": signal.signal_id, "signal_id": signal.signal_id, "strategy": signal.strategy,
                     "exchange": gateway.name, "symbol": signal.symbol, "interval": signal.interval,
                     "direction": trade.direction, "entry_price": figures.entry_average,
                     "exit_price": figures.exit_average, "quantity": figures.amount,
                     "realized_pnl": figures.gross_pnl, "fees": figures.fees, "net_pnl": figures.net_pnl,
                     "r_multiple": figures.r_multiple, "exit_reason": figures.exit_reason, "mode": gateway.mode,
                     "account": account_of(gateway).account,
                     "opened_at": utc_time(trade.opened_ms), "closed_at": closed_at,
                     "hold_minutes": (trade.closed_ms - trade.opened_ms) / 60_000, "close_date": closed_at.date()})
        events.append({"entity_type": "position", "entity_id": signal.signal_id, "from_status": "open",
                       "to_status": "closed", "reason": figures.exit_reason,
                       "details": {"net_pnl": str(figures.net_pnl)}, "actor": ACTOR})
        result.actions[f"positions closed ({figures.exit_reason})"] += 1
    schema = read_table(spark, config, "trading.positions_closed").schema
    (DeltaTable.forPath(spark, location_of(config, "trading.positions_closed")).alias("t")
     .merge(local_frame(spark, rows, schema).alias("s"), "t.position_id = s.position_id")
     .whenNotMatchedInsertAll().execute())
    DeltaTable.forPath(spark, location_of(config, "trading.positions_open")).delete(
        F.col("position_id").isin([r["position_id"] for r in rows]))
    audit(spark, config, events)
    for day in sorted({r["close_date"] for r in rows}):
        _store_daily_pnl(spark, config, gateway, day)


def _store_daily_pnl(spark, config, gateway, day) -> None:
    account = account_of(gateway)
    day_rows = (read_table(spark, config, "trading.positions_closed")
                .where(F.col("close_date") == F.lit(day)).where(of_account(account)).collect())
    net = sum((Decimal(r.net_pnl) for r in day_rows), Decimal(0))
    equity_end = gateway.equity()
    row = {"pnl_date": day, "exchange": gateway.name, "mode": gateway.mode, "account": account.account,
           "trades": len(day_rows),
           "wins": sum(1 for r in day_rows if r.net_pnl > 0), "losses": sum(1 for r in day_rows if r.net_pnl <= 0),
           "realized_pnl": sum((Decimal(r.realized_pnl) for r in day_rows), Decimal(0)),
           "fees": sum((Decimal(r.fees) for r in day_rows), Decimal(0)), "net_pnl": net,
           "equity_start": equity_end - net, "equity_end": equity_end,
           "updated_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    schema = read_table(spark, config, "trading.daily_pnl").schema
    (DeltaTable.forPath(spark, location_of(config, "trading.daily_pnl")).alias("t")
     .merge(local_frame(spark, [row], schema).alias("s"),
            "t.pnl_date = s.pnl_date AND t.exchange = s.exchange AND t.mode = s.mode "
            "AND coalesce(t.account, s.account) = s.account")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


def _d(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))
