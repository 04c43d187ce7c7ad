"""Paper trading over history already in the lake, as if it were happening now: a clock steps
through the 1m klines and at each step the scorer, the execution engine and the position
manager run as of that time, on the paper exchange. The same jobs as live, only the clock is
the data's; `make demo` runs it after replaying the sample through the stream (with
`[streaming] trading_jobs = "off"`, so that nothing is scored after the fact).

The clock stops at every time a signal became known (it is scored then, and traded if
confirmed) and every `step_minutes` while an order or a position is open (the manager
protects, moves the stop, closes). At the end it checks that the books reconcile to the cent:
the paper wallet is the initial equity plus what trading.positions_closed and
trading.positions_open record, trading.daily_pnl sums to the closed positions, and every
order's fills in trading.orders are the paper exchange's. `cryptobot demo`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.backtest import backtesting
from common.catalog import read_table
from common.config import AppConfig, ConfigError
from common.exchange.account import build_gateway
from common.trading import execution_engine, position_manager, statistical_scorer
from common.trading.trading_store import ACTIVE_ORDERS, latest_minute_closes, read_orders
from common.trading_config import read_trading_config

log = logging.getLogger(__name__)
MINUTE_MS = 60_000


@dataclass
class ReplayReport:
    steps: int = 0  # position manager turns
    signals_scored: int = 0
    entries_placed: int = 0
    seconds: float = 0.0
    positions_closed: int = 0
    net_pnl: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    checks: dict[str, str | None] = field(default_factory=dict)  # check -> None when it holds, else why not
    traded_from_ms: int | None = None  # --days: only the signals known from then on

    @property
    def rows_in(self) -> int:  # for gold.job_runs: signal scorings, entries placed
        return self.signals_scored

    @property
    def rows_out(self) -> int:
        return self.entries_placed

    @property
    def reconciled(self) -> bool:
        return all(problem is None for problem in self.checks.values())

    def describe(self) -> str:
        lines = [f"paper replay: {self.steps} manager turns in {self.seconds:.0f} s, "
                 f"{self.signals_scored} signal scorings, {self.entries_placed} entries placed, "
                 f"{self.positions_closed} positions closed, net P&L {self.net_pnl:.2f}, "
                 f"paper equity {self.equity:.2f}"]
        lines += [f"  {'ok  ' if problem is None else 'FAIL'} {check}" + (f": {problem}" if problem else "")
                  for check, problem in self.checks.items()]
        return "\n".join(lines)


def run(spark: SparkSession, config: AppConfig, step_minutes: int = 15, days: float | None = None) -> ReplayReport:
    trading = read_trading_config(spark)
    if not trading.paper_trading:
        raise ConfigError("the paper replay trades on the paper exchange only: set paper_trading = true")
    # Held fixed for the whole replay, one experiment: the jobs are handed them instead of
    # reading them again at every step (a Spark read each, about 0.7 s).
    calibration = statistical_scorer.latest_calibration(spark, config)
    gateway = build_gateway(config, trading)
    started, report = time.monotonic(), ReplayReport()
    ends = latest_minute_closes(spark, config, trading.trading_exchange, list(trading.trading_symbols))
    if not ends:
        raise ConfigError(f"no 1m klines of {trading.trading_exchange} for {list(trading.trading_symbols)} in "
                          f"silver.unified_klines: replay some first (make demo does)")
    end_ms = max(ends.values())
    report.traded_from_ms = None if days is None else end_ms - int(days * 86_400_000)
    signal_times = _signal_times(spark, config, trading, report.traded_from_ms)
    step_ms = step_minutes * MINUTE_MS
    now_ms, busy = None, _anything_open(spark, config, trading)
    for done, known_at in enumerate(signal_times + [end_ms]):
        # Manager turns while something is open, up to the next signal.
        while busy and now_ms is not None and now_ms + step_ms < known_at:
            now_ms += step_ms
            busy = _manage(spark, config, gateway, trading, now_ms, report)
        now_ms = known_at
        scored = statistical_scorer.run(spark, config, as_of_ms=now_ms, trading=trading, calibration=calibration)
        report.signals_scored += scored.scored
        executed = any(move.endswith("->confirmed") for move in scored.moves)
        if executed:
            report.entries_placed += execution_engine.run(spark, config, gateway, as_of_ms=now_ms,
                                                          trading=trading).placed
        # With nothing open and no entry tried the manager has nothing to look after: its turn
        # (a few seconds of Spark reads) is skipped, as most signal times confirm nothing.
        if busy or executed or known_at == end_ms:
            busy = _manage(spark, config, gateway, trading, now_ms, report)
        if done % 20 == 0:
            log.info("event=paper_replay_progress signal_times=%d of=%d manager_turns=%d now_ms=%d", done,
                     len(signal_times), report.steps, now_ms)
    report.seconds = time.monotonic() - started
    _check_books(spark, config, gateway, trading, report)
    return report


def _manage(spark, config, gateway, trading, now_ms: int, report: ReplayReport) -> bool:
    """One manager turn as of now; whether an order or a position of ours is still open after it."""
    report.steps += 1
    position_manager.run(spark, config, gateway, as_of_ms=now_ms, trading=trading)
    return _anything_open(spark, config, trading)


def _anything_open(spark, config, trading) -> bool:
    """Whether an order or a paper position of the traded symbols is open."""
    symbols = _in(trading.trading_symbols)
    return bool(read_orders(spark, config, f"{ACTIVE_ORDERS} AND symbol IN {symbols}")) or bool(
        read_table(spark, config, "trading.positions_open")
        .where((F.col("mode") == "paper") & F.col("symbol").isin(list(trading.trading_symbols))).limit(1).collect())


def _in(values) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _signal_times(spark, config, trading, from_ms: int | None) -> list[int]:
    signals = (read_table(spark, config, "gold.signals_all")
               .where((F.col("status") == "pending") & (F.col("exchange") == trading.trading_exchange)
                      & F.col("symbol").isin(list(trading.trading_symbols))
                      & F.col("interval").isin(list(trading.trading_intervals))
                      & F.col("strategy").isin(list(trading.strategies))))
    if from_ms is not None:
        signals = signals.where(F.col("known_at_ms") >= from_ms)
    return sorted(r.known_at_ms for r in signals.select("known_at_ms").distinct().collect())


def _check_books(spark, config, gateway, trading, report: ReplayReport) -> None:
    """The books of the traded symbols on this paper exchange (a lake may hold others')."""
    def paper(table):
        return (read_table(spark, config, table).where((F.col("mode") == "paper") & (F.col("exchange") == gateway.name)
                                                       & F.col("symbol").isin(list(trading.trading_symbols)))
                .collect())

    closed, still_open = paper("trading.positions_closed"), paper("trading.positions_open")
    report.positions_closed = len(closed)
    report.net_pnl = sum((Decimal(r.net_pnl) for r in closed), Decimal(0))
    report.equity = gateway.equity()
    initial = Decimal(str(trading.paper_initial_equity_usdt))
    booked = report.net_pnl + sum((Decimal(r.realized_pnl or 0) - Decimal(r.fees or 0) for r in still_open),
                                  Decimal(0))
    report.checks["paper wallet = initial equity + closed and open positions' realised P&L net of fees"] = (
        None if report.equity == initial + booked else f"wallet {report.equity}, books {initial + booked}")
    closed_days = sorted({r.close_date for r in closed})
    daily = sum((Decimal(r.net_pnl) for r in read_table(spark, config, "trading.daily_pnl")
                 .where((F.col("mode") == "paper") & (F.col("exchange") == gateway.name)
                        & F.col("pnl_date").isin(closed_days)).collect()), Decimal(0))
    everything_closed = sum((Decimal(r.net_pnl) for r in read_table(spark, config, "trading.positions_closed")
                             .where((F.col("mode") == "paper") & (F.col("exchange") == gateway.name)
                                    & F.col("close_date").isin(closed_days)).collect()), Decimal(0))
    report.checks["trading.daily_pnl sums to trading.positions_closed, day by day"] = (
        None if daily == everything_closed else f"daily {daily}, closed {everything_closed}")
    differences = []
    for row in read_orders(spark, config, f"mode = 'paper' AND exchange = '{gateway.name}' AND status != 'rejected' "
                                          f"AND symbol IN {_in(trading.trading_symbols)}"):
        fills = gateway.find_order(row.symbol, row.client_order_id)
        if fills is None:
            differences.append(f"{row.client_order_id} unknown to the paper exchange")
        elif (fills.filled, fills.fee, fills.status) != (row.filled, row.fee, row.status):
            differences.append(f"{row.client_order_id}: ours {(row.filled, row.fee, row.status)}, "
                               f"paper {(fills.filled, fills.fee, fills.status)}")
    report.checks["every order's fills in trading.orders are the paper exchange's"] = (
        "; ".join(differences[:5]) if differences else None)


def compare_with_backtest(spark, config: AppConfig, from_ms: int | None = None) -> tuple[str, list[str]]:
    """Parity: the backtester over the same klines, with the trading config's symbols, intervals,
    strategies and parameters and the calibration the scorer used, trading the setups known from
    `from_ms` on (the paper replay's --days), must close the same trades as the paper replay on one
    account: the portfolio's trades against trading.positions_closed, signal by signal (entry,
    exit, quantity, net P&L, exit reason). Returns (backtest run id, differences: none = parity)."""

    trading = read_trading_config(spark)
    stored = {r.param_name: r.param_value for r in read_table(spark, config, "gold.trading_config").collect()}
    values = {name: text for name, text in stored.items() if name in backtesting.PARAMS_BY_NAME}
    values.update(symbols=list(trading.trading_symbols), timeframes=list(trading.trading_intervals),
                  strategies=list(trading.strategies), exchange=trading.trading_exchange,
                  initial_capital=float(trading.paper_initial_equity_usdt))
    run = backtesting.run(spark, config, backtesting.BacktestConfig(values), progress=False, trade_from_ms=from_ms,
                          calibration=statistical_scorer.latest_calibration(spark, config))

    def key(signal_id, entry, exit_price, quantity, net, reason):
        return signal_id, tuple(Decimal(str(v)).normalize() for v in (entry, exit_price, quantity, net)), reason

    simulated = {key(r.signal_id, r.entry_price, r.exit_price, r.quantity, r.pnl, r.exit_reason) for r in
                 read_table(spark, config, "gold.backtest_trades")
                 .where((F.col("run_id") == run.run_id) & (F.col("scope") == "portfolio")).collect()}
    paper = read_table(spark, config, "trading.positions_closed").where(
        (F.col("mode") == "paper") & (F.col("exchange") == trading.trading_exchange)
        & F.col("symbol").isin(list(trading.trading_symbols)))
    if from_ms is not None:
        known = read_table(spark, config, "gold.signals_all").where(F.col("known_at_ms") >= from_ms).select("signal_id")
        paper = paper.join(known, "signal_id")
    traded = {key(r.signal_id, r.entry_price, r.exit_price, r.quantity, r.net_pnl, r.exit_reason)
              for r in paper.collect()}
    differences = [f"paper only: {t}" for t in sorted(traded - simulated)]
    differences += [f"backtest only: {t}" for t in sorted(simulated - traded)]
    return run.run_id, differences


def write_trading_report(spark, config: AppConfig, out_dir: str, title: str = "Paper trading") -> Path:
    """What was traded, as a backtest's report (common/backtest/report.py): the closed paper
    positions with their signals' scores, the equity the books give (initial equity plus each
    close's net P&L) and its metrics, so the demo's trades read like a backtest's."""
    from common.backtest.metrics import compute_metrics
    from common.backtest.report import PORTFOLIO, write_report

    trading = read_trading_config(spark)
    initial = float(trading.paper_initial_equity_usdt)
    closed = (read_table(spark, config, "trading.positions_closed").where(F.col("mode") == "paper")
              .join(read_table(spark, config, "gold.signals_all").select("signal_id", "score"), "signal_id", "left")
              .select("signal_id", "symbol", "interval", "strategy", "direction", "score", "entry_price",
                      "exit_price", "exit_reason", "realized_pnl", "fees", "net_pnl", "r_multiple", "hold_minutes",
                      (F.unix_millis("opened_at")).alias("entry_time_ms"),
                      (F.unix_millis("closed_at")).alias("exit_time_ms"))
              .orderBy("exit_time_ms").toPandas())
    first_ms, last_ms = _kline_span_ms(spark, config, trading)
    tp1_filled = {r.signal_id for r in read_table(spark, config, "trading.orders")
                  .where((F.col("mode") == "paper") & (F.col("leg") == "tp1") & (F.col("filled") > 0))
                  .select("signal_id").distinct().collect()}
    trades = closed.assign(scope=PORTFOLIO, pnl=closed.net_pnl, tp1_hit=closed.signal_id.isin(tp1_filled))
    curve = pd.Series({first_ms: initial, **{int(t): initial + float(v) for t, v in
                                              zip(trades.exit_time_ms, trades.net_pnl.astype(float).cumsum())}})
    curve = curve[~curve.index.duplicated(keep="last")].sort_index()
    if last_ms > curve.index.max():  # flat to the end of the data, as a backtest's curve
        curve[last_ms] = curve.iloc[-1]
    metrics = compute_metrics(curve, trades)
    results = pd.DataFrame([{"run_id": title, "scope": PORTFOLIO, "exchange": trading.trading_exchange,
                             "start_ms": int(curve.index.min()), "end_ms": int(curve.index.max()),
                             "final_equity": float(curve.iloc[-1]), "run_timestamp": pd.Timestamp.utcnow(),
                             "config_json": json.dumps({"symbols": list(trading.trading_symbols),
                                                        "intervals": list(trading.trading_intervals),
                                                        "strategies": list(trading.strategies)}),
                             **metrics.as_dict()}])
    equity = pd.DataFrame({"run_id": title, "scope": PORTFOLIO, "ts_ms": curve.index, "equity": curve.values})
    return write_report(out_dir, results, trades, equity, title=title)


def _kline_span_ms(spark, config, trading) -> tuple[int, int]:
    """The first open and the last close of the traded markets' 1m klines."""
    row = (read_table(spark, config, "silver.unified_klines")
           .where((F.col("exchange") == trading.trading_exchange) & (F.col("interval") == "1m")
                  & F.col("symbol").isin(list(trading.trading_symbols)))
           .agg(F.min("open_time_ms"), F.max("close_time_ms")).first())
    return (int(row[0]), int(row[1])) if row and row[0] is not None else (0, 0)
