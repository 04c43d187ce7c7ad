"""Backtest speed (issue #8): our fill engine against backtesting.py on the same bars and signals.

Part 1, `fill_engine_comparison` (the default): a seeded random walk of 15m bars and a fixed list
of limit-entry signals with SL/TP, traded one at a time by our backtester's fill engine
(`common.backtest.engine.trade_through_bars`, i.e. `paper_bar`'s rules) and by backtesting.py
(a benchmark-only dependency, requirements-bench.txt). It prints the bars per second of each,
their ratio, and whether the two engines made the same trades.

    python bench/backtest_speed.py                  # 200,000 bars, a signal about every 200 bars
    python bench/backtest_speed.py --bars 50000     # a quicker look
    python bench/backtest_speed.py --grid           # part 2: the strategy grid through Spark

Part 2, `strategy_grid` (--grid): 10 symbols x 3 timeframes (15m, 1h, 4h) x 2 strategies over a
year of generated 15m klines (1h and 4h resampled from them), stored in a temporary lake's
silver.unified_klines; then `cryptobot backtest` is timed as a user runs it, in a process of its
own: Python and Spark start-up, reading the pinned table, the per-symbol fan-out, the
portfolio, the writes. Bars per second = the bars of each combination's timeframe, summed over
the combinations, over that wall time (the 15m klines fed to the grid are printed too).

What is measured
- bars: the bars of the series a run covers, from the first bar it processes to the last.
  backtesting.py steps through every bar from the second (its first `next()`) to the last; ours
  covers the series from the first signal's next bar to the bar the last trade ended on, and
  only visits the bars a trade needs (the waiting entry bar by bar, then straight to the next
  bar reaching the stop or the target), which is where its speed comes from: it grows with the
  trades, not the bars, so the ratio falls as the signals get denser (--signal-every 20: ~2x).
- time: time.perf_counter around what a backtest does with bars and signals in hand: ours
  builds `FillBars`, creates each trade, runs `trade_through_bars` and `trade_result`;
  backtesting.py's `Backtest(...)` and `run()` (its bar loop, our Strategy, its statistics).
- the agreement check runs both with the same conventions as far as they exist in both:
  tp1_close_pct = 100 (backtesting.py has no partial TP1 with a breakeven stop), no slippage,
  the same fee for maker and taker fills (backtesting.py has one commission rate, charged on the
  entry and on the exit notional), whole units (it does not trade fractions). Ours is also
  timed with the configured defaults (50 % at TP1, breakeven stop, fees 0.02/0.05 %, 2 bps).

The schedule: a signal at bar i (known at its close) places a limit order live from bar i+1,
only when the engine is flat at that close; the order is cancelled after `entry_timeout_bars`
bars without a fill, or when the price reaches TP1 before the entry. backtesting.py has neither
rule, so the Strategy applies them in `next()` (after its broker processed the bar, as ours does).

Conventions, from backtesting.py 0.6.6's `_Broker._process_orders`, `new_order`, `_open_trade`:
- limit entry: filled when low <= limit (long) / high >= limit (short), at the limit or the
  better open: the same as ours (both compare with <= / >=);
- SL is a stop order inserted at the head of the order queue, TP a limit order appended: a bar
  reaching both is the stop's, as ours. The stop fills at min(open, stop) for a long (the open
  on a gap), TP at max(open, limit): as ours;
- the entry's own bar: the SL/TP orders of a limit entry are created when it fills but are not
  looked at before the next bar (the queue is iterated from a copy; it warns "A contingent SL/TP
  order would execute in the same bar", issue #119). Ours checks the stop on the entry bar.
  This is the one difference in fills: such a trade exits on the entry bar in ours, later in
  backtesting.py (at the next bar reaching its SL or TP), and it can shift the next trades;
- commission: one relative rate on the entry and on the exit notional (as ours with maker =
  taker); a trade's PnL is size x (exit - entry) - both commissions, as our net_pnl;
- `trade_on_close` only moves market orders (none here) and `exclusive_orders` only matters
  with a second order while one is live (never here): both False.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common.backtest.engine import FillBars, trade_through_bars  # noqa: E402
from common.exchange.paper import paper_market_rules  # noqa: E402
from common.trade.lifecycle import Costs, TradeState, new_trade, trade_result  # noqa: E402
from common.trade.sizing import LONG, SHORT, round_price, round_stop  # noqa: E402

BAR_MS = 15 * 60_000
START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
ATR_BARS = 14
AMOUNT = Decimal(1)  # whole units: backtesting.py trades no fractions
COMPARISON_FEE_PCT = Decimal("0.05")  # maker = taker: backtesting.py has one commission rate
DEFAULTS = dict(tp1_close_pct=Decimal(50), move_sl_to_breakeven=True,  # conf/backtest.yaml
                costs=Costs(Decimal("0.02"), Decimal("0.05"), Decimal(2)))
PRICE_TOLERANCE = 1e-9  # relative; ours are Decimals, backtesting.py's floats
PNL_TOLERANCE = 1e-6  # in quote currency, for a 1-unit trade


@dataclass(frozen=True)
class EntrySignal:
    bar: int  # known at this bar's close; the order is live from the next bar
    direction: str
    entry: Decimal
    sl: Decimal
    tp1: Decimal
    tp2: Decimal


@dataclass(frozen=True)
class TradeRecord:
    signal_bar: int
    direction: str
    entry_bar: int
    entry_price: float
    exit_bar: int
    exit_price: float
    net_pnl: float


def random_walk_bars(count: int, seed: int) -> pd.DataFrame:
    """15m bars of a geometric random walk from 30,000 (about 2.4 % a day), in cents, with the
    open at the previous close except for an occasional gap (1 % of the bars)."""
    rng = np.random.default_rng(seed)
    sigma = 0.0025
    gaps = np.where(rng.random(count) < 0.01, rng.normal(0, 3 * sigma, count), 0.0)
    moves = rng.normal(0, sigma, count)
    log_close = np.log(30_000.0) + np.cumsum(gaps + moves)
    close = np.exp(log_close)
    open_ = np.exp(log_close - moves)
    open_[0] = 30_000.0
    wick_up, wick_down = (np.abs(rng.normal(0, 0.6 * sigma, count)) for _ in range(2))
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)
    open_ms = START_MS + np.arange(count, dtype="int64") * BAR_MS
    # Rounding to the cent is monotonic: low <= open, close <= high still holds.
    return pd.DataFrame({"open_time_ms": open_ms, "close_time_ms": open_ms + BAR_MS - 1,
                         "open": open_.round(2), "high": high.round(2), "low": low.round(2),
                         "close": close.round(2), "volume": rng.gamma(2.0, 50.0, count).round(3)})


def entry_signals(bars: pd.DataFrame, every_bars: int, seed: int) -> list[EntrySignal]:
    """About one signal every `every_bars` bars, long or short at random: a limit 0.25 ATR away
    from the close (below for a long), the stop 1.5 ATR beyond it, TP1 at 1R, TP2 at 2R, the
    levels on the market's price steps as our backtester rounds them."""
    rng = np.random.default_rng(seed + 1)
    high, low, close = (bars[c].to_numpy() for c in ("high", "low", "close"))
    previous_close = np.concatenate(([close[0]], close[:-1]))
    true_range = np.maximum(high - low, np.maximum(np.abs(high - previous_close), np.abs(low - previous_close)))
    atr = pd.Series(true_range).rolling(ATR_BARS).mean().to_numpy()
    signals, bar = [], ATR_BARS + int(rng.integers(0, every_bars))
    while bar < len(bars) - 1:
        direction = LONG if rng.random() < 0.5 else SHORT
        side = 1 if direction == LONG else -1
        raw_entry = close[bar] - side * 0.25 * atr[bar]
        rules = paper_market_rules(Decimal(str(raw_entry)))
        entry = round_price(Decimal(str(raw_entry)), rules)
        sl = round_stop(Decimal(str(raw_entry - side * 1.5 * atr[bar])), direction, rules)
        risk = abs(entry - sl)
        signals.append(EntrySignal(bar, direction, entry, sl, entry + side * risk, entry + 2 * side * risk))
        bar += int(rng.integers(every_bars // 2, every_bars * 3 // 2 + 1))
    return signals


def run_ours(bars: pd.DataFrame, signals: list[EntrySignal], costs: Costs, tp1_close_pct: Decimal,
             move_sl_to_breakeven: bool, entry_timeout_bars: int) -> dict:
    """Our backtester's fill engine over the signals, one trade at a time."""
    started = time.perf_counter()
    fills = FillBars.from_frame(bars)
    records, visited, first_bar, last_bar, flat_from = [], 0, None, None, 0
    for signal in signals:
        if signal.bar < flat_from:  # still in the previous trade at this signal's close
            continue
        rules = paper_market_rules(signal.entry)
        trade = new_trade(f"s{signal.bar}", signal.direction, signal.entry, signal.sl, signal.tp1, signal.tp2, AMOUNT)
        trade, end_ms = trade_through_bars(trade, fills, signal.bar + 1, costs, rules, tp1_close_pct,
                                           move_sl_to_breakeven, entry_timeout_bars)
        end_bar = int(np.searchsorted(fills.close_time_ms, end_ms))
        first_bar = signal.bar + 1 if first_bar is None else first_bar
        last_bar, flat_from = end_bar, end_bar
        visited += end_bar - signal.bar
        if trade.state == TradeState.CLOSED:
            result = trade_result(trade)
            records.append(TradeRecord(signal.bar, trade.direction,
                                       int(np.searchsorted(fills.close_time_ms, trade.opened_ms)),
                                       float(result.entry_average),
                                       end_bar, float(result.exit_average), float(result.net_pnl)))
        elif trade.state != TradeState.CANCELLED:
            break  # still open at the end of the data
    seconds = time.perf_counter() - started
    covered = 0 if first_bar is None else last_bar - first_bar + 1
    return {"bars": covered, "seconds": seconds, "bars_per_s": covered / seconds, "trades": records,
            "bars_in_trades": visited}


def run_backtesting_py(bars: pd.DataFrame, signals: list[EntrySignal], commission_pct: Decimal,
                       entry_timeout_bars: int) -> dict:
    """backtesting.py over the same signals: a limit order with SL at the stop and TP at TP1."""
    from backtesting import Backtest, Strategy

    class SignalSchedule(Strategy):
        signals_by_bar = None  # bar -> (size, limit, sl, tp), set through run()
        entry_timeout_bars = 12

        def init(self):
            self.pending = None  # (order, signal bar, TP1, is long) of an entry not filled yet

        def next(self):
            bar = len(self.data) - 1
            if self.pending is not None:
                order, signal_bar, tp1, is_long = self.pending
                if self.trades:  # filled on this bar
                    self.pending = None
                elif ((self.data.High[-1] >= tp1) if is_long else (self.data.Low[-1] <= tp1)) \
                        or bar - signal_bar >= self.entry_timeout_bars:
                    order.cancel()  # the setup is void, or the entry timed out
                    self.pending = None
            if self.pending is None and not self.trades:
                signal = self.signals_by_bar.get(bar)
                if signal is not None:
                    size, limit, sl, tp = signal
                    place = self.buy if size > 0 else self.sell
                    self.pending = (place(size=abs(size), limit=limit, sl=sl, tp=tp, tag=bar), bar, tp, size > 0)

    frame = pd.DataFrame({"Open": bars.open.to_numpy(), "High": bars.high.to_numpy(), "Low": bars.low.to_numpy(),
                          "Close": bars.close.to_numpy(), "Volume": bars.volume.to_numpy()},
                         index=pd.DatetimeIndex(pd.to_datetime(bars.open_time_ms.to_numpy(), unit="ms")))
    signals_by_bar = {s.bar: ((1 if s.direction == LONG else -1) * int(AMOUNT), float(s.entry), float(s.sl),
                              float(s.tp1)) for s in signals}
    started = time.perf_counter()
    with warnings.catch_warnings():
        # "contingent SL/TP order would execute in the same bar" (once per such entry) and the
        # trade left open at the end: both explained in the report, not worth a line each.
        warnings.simplefilter("ignore")
        stats = Backtest(frame, SignalSchedule, cash=1e12, commission=float(commission_pct) / 100, spread=0.0,
                         trade_on_close=False, exclusive_orders=False, hedging=False,
                         finalize_trades=False).run(signals_by_bar=signals_by_bar,
                                                    entry_timeout_bars=entry_timeout_bars)
    seconds = time.perf_counter() - started
    records = [TradeRecord(int(t.Tag), LONG if t.Size > 0 else SHORT, int(t.EntryBar), float(t.EntryPrice),
                           int(t.ExitBar), float(t.ExitPrice), float(t.PnL))
               for t in stats._trades.itertuples(index=False)]
    covered = len(frame) - 1  # next() from the second bar to the last
    return {"bars": covered, "seconds": seconds, "bars_per_s": covered / seconds, "trades": records}


def _same(ours: TradeRecord, theirs: TradeRecord) -> bool:
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= PRICE_TOLERANCE * max(abs(a), abs(b))

    return (ours.direction == theirs.direction and ours.entry_bar == theirs.entry_bar
            and ours.exit_bar == theirs.exit_bar and close(ours.entry_price, theirs.entry_price)
            and close(ours.exit_price, theirs.exit_price) and abs(ours.net_pnl - theirs.net_pnl) <= PNL_TOLERANCE)


def compare_trades(ours: list[TradeRecord], theirs: list[TradeRecord]) -> tuple[int, Counter, list[str]]:
    """(trades that agree, disagreements by the convention behind them, a few examples)."""
    ours_by_signal = {t.signal_bar: t for t in ours}
    theirs_by_signal = {t.signal_bar: t for t in theirs}
    agree, reasons, examples = 0, Counter(), []
    for signal_bar in sorted(ours_by_signal.keys() | theirs_by_signal.keys()):
        mine, other = ours_by_signal.get(signal_bar), theirs_by_signal.get(signal_bar)
        if mine and other and _same(mine, other):
            agree += 1
            continue
        if mine and other and mine.entry_bar == other.entry_bar and mine.exit_bar == mine.entry_bar:
            reason = "stop reached on the entry bar: ours exits there, backtesting.py from the next bar"
        elif mine is None or other is None:
            reason = (f"traded by {'ours' if other is None else 'backtesting.py'} only: the other was still in "
                      "a trade that ended differently, or the entry was cancelled in one only")
        else:
            reason = "other"
        reasons[reason] += 1
        if reason == "other" or len(examples) < 3:
            examples.append(f"signal bar {signal_bar}: ours {mine}, backtesting.py {other}")
    return agree, reasons, examples


def fill_engine_comparison(args) -> dict:
    """Both engines on the same bars and signals: speed, and whether their trades agree."""
    bars = random_walk_bars(args.bars, args.seed)
    signals = entry_signals(bars, args.signal_every, args.seed)
    same_costs = Costs(COMPARISON_FEE_PCT, COMPARISON_FEE_PCT, Decimal(0))
    runs = {"ours": lambda: run_ours(bars, signals, same_costs, Decimal(100), False, args.entry_timeout_bars),
            "theirs": lambda: run_backtesting_py(bars, signals, COMPARISON_FEE_PCT, args.entry_timeout_bars),
            "ours_defaults": lambda: run_ours(bars, signals, DEFAULTS["costs"], DEFAULTS["tp1_close_pct"],
                                              DEFAULTS["move_sl_to_breakeven"], args.entry_timeout_bars)}
    best = {}
    for _ in range(args.repeat):  # interleaved, so that a slow spell of the machine hits all three
        for name, run in runs.items():
            result = run()
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    ours, theirs, ours_defaults = best["ours"], best["theirs"], best["ours_defaults"]
    agree, reasons, examples = compare_trades(ours["trades"], theirs["trades"])
    figures = {
        "bars_in_series": len(bars), "signals": len(signals),
        "ours": {k: ours[k] for k in ("bars", "seconds", "bars_per_s", "bars_in_trades")} | {
            "trades": len(ours["trades"])},
        "backtesting_py": {k: theirs[k] for k in ("bars", "seconds", "bars_per_s")} | {
            "trades": len(theirs["trades"])},
        "ours_defaults": {k: ours_defaults[k] for k in ("bars", "seconds", "bars_per_s")} | {
            "trades": len(ours_defaults["trades"])},
        "ratio_ours_to_backtesting_py": ours["bars_per_s"] / theirs["bars_per_s"],
        "trades_agreeing": agree, "trades_compared": agree + sum(reasons.values()),
        "disagreements": dict(reasons), "examples": examples,
    }
    print_figures(figures, args)
    return figures


def print_figures(figures: dict, args) -> None:
    def line(name: str, run: dict) -> str:
        return (f"    {name:<15} {run['bars']:>9,} bars  {run['seconds']:7.3f} s  {run['bars_per_s']:>12,.0f} bars/s  "
                f"{run['trades']:>5} trades")

    ours = figures["ours"]
    print(f"fill engines: {figures['bars_in_series']:,} bars of 15m (seed {args.seed}), {figures['signals']:,} "
          f"signals, entry timeout {args.entry_timeout_bars} bars, best of {args.repeat} runs")
    print(f"  TP1 closes all, fee {COMPARISON_FEE_PCT} % on both legs, no slippage:")
    print(line("ours", ours) + f"  ({ours['bars_in_trades']:,} bars inside trades)")
    print(line("backtesting.py", figures["backtesting_py"]))
    print(f"    ratio ours / backtesting.py: {figures['ratio_ours_to_backtesting_py']:.1f}x")
    print("  ours with the defaults (50 % at TP1, breakeven stop, fees 0.02/0.05 %, 2 bps slippage):")
    print(line("ours", figures["ours_defaults"]))
    print(f"  trades agreeing (entry and exit bar and price, direction, net P&L): "
          f"{figures['trades_agreeing']} of {figures['trades_compared']} (the signals either engine traded)")
    for reason, count in sorted(figures["disagreements"].items(), key=lambda item: -item[1]):
        print(f"    {count:>5}  {reason}")
    for example in figures["examples"]:
        print(f"    e.g. {example}")


GRID_SYMBOLS = 10
GRID_DAYS = 365


def grid_bars(symbol_index: int, days: int) -> pd.DataFrame:
    """A year of 15m klines of one symbol: a seeded random walk with a daily volatility of about 3 %."""
    rng = np.random.default_rng(1_000 + symbol_index)
    count = days * 96
    closes = 50.0 * (symbol_index + 1) ** 2 * np.exp(np.cumsum(rng.normal(0, 0.003, count)))
    opens = np.concatenate(([closes[0]], closes[:-1])) * np.exp(rng.normal(0, 0.0003, count))
    wick = np.abs(rng.normal(0, 0.0015, count))
    open_ms = START_MS + np.arange(count, dtype="int64") * BAR_MS
    return pd.DataFrame({"open_time_ms": open_ms, "open": opens, "high": np.maximum(opens, closes) * (1 + wick),
                         "low": np.minimum(opens, closes) * (1 - wick), "close": closes,
                         "volume": rng.gamma(2.0, 50.0, count)})


def strategy_grid(args) -> dict:
    import os
    import subprocess
    import tempfile

    from pyspark.sql import functions as F

    from common.config import load_config
    from common.intervals import INTERVAL_MS
    from common.spark_session import build_spark_session
    from common import init_tables
    from common.kline_files import resample_klines

    symbols = [f"G{i:02d}USDT" for i in range(args.grid_symbols)]
    intervals = ("15m", "1h", "4h")
    with tempfile.TemporaryDirectory(prefix="cryptobot-bench-grid-", dir=args.grid_dir) as base:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")},
               "CRYPTOBOT_PATHS__DATA_DIR": f"{base}/data", "CRYPTOBOT_LAKE__ROOT": f"{base}/lake",
               "CRYPTOBOT_LAKE__CHECKPOINT_ROOT": f"{base}/checkpoints",
               "CRYPTOBOT_EXCHANGES__SYMBOLS": ",".join(symbols),
               "CRYPTOBOT_EXCHANGES__INTERVALS": ",".join(intervals)}
        config = load_config(env=env)
        spark = build_spark_session(config, "bench-backtest-grid", register=False)
        init_tables.run(spark, config)
        bars_per_interval = Counter()
        location = config.lake.table_path("silver", "unified_klines")
        schema = spark.read.format("delta").load(location).schema
        for n, symbol in enumerate(symbols):
            minutes15 = grid_bars(n, args.grid_days)
            frames = []
            for interval in intervals:
                bars = minutes15 if interval == "15m" else resample_klines(minutes15, "15m", interval)
                bars_per_interval[interval] += len(bars)
                close_ms = bars.open_time_ms + INTERVAL_MS[interval] - 1
                frames.append(bars.assign(interval=interval, close_time_ms=close_ms))
            frame = pd.concat(frames, ignore_index=True).assign(
                exchange="binance", symbol=symbol, exchange_symbol=symbol, ccxt_symbol=symbol, source="bench",
                schema_version=1, kafka_topic="bench", kafka_partition=0, kafka_offset=0)
            frame["open_time"] = pd.to_datetime(frame.open_time_ms, unit="ms")
            rows = spark.createDataFrame(frame)
            rows.select(*[F.col(f.name).cast(f.dataType).alias(f.name) if f.name in frame else
                          (F.current_timestamp() if f.dataType.typeName() == "timestamp" else F.lit(None))
                          .cast(f.dataType).alias(f.name) for f in schema]
                        ).write.format("delta").mode("append").save(location)
        spark.stop()
        command = [str(Path(sys.executable).with_name("cryptobot")), "backtest", "--no-progress",
                   "--set", f"symbols={','.join(symbols)}", "--set", f"timeframes={','.join(intervals)}",
                   "--set", "strategies=smc,liquidity"]
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if args.keep_log:
            Path(args.keep_log).write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"cryptobot backtest failed ({done.returncode}):\n{done.stderr[-4000:]}")
    combination_bars = 2 * sum(bars_per_interval.values())  # each timeframe's bars, once per strategy
    figures = {"symbols": len(symbols), "days": args.grid_days, "seconds": seconds,
               "combination_bars": combination_bars, "klines_15m": bars_per_interval["15m"],
               "bars_per_second": combination_bars / seconds, "summary": done.stdout.strip().splitlines()[0]}
    print(f"strategy grid: {len(symbols)} symbols x {len(intervals)} timeframes x 2 strategies over "
          f"{args.grid_days} days of 15m klines ({bars_per_interval['15m']:,} of them, "
          f"{bars_per_interval['1h']:,} 1h and {bars_per_interval['4h']:,} 4h resampled)")
    print(f"  cryptobot backtest, start-up included: {seconds:.1f} s for {combination_bars:,} combination bars "
          f"= {figures['bars_per_second']:,.0f} bars/s (target 100,000); "
          f"{GRID_COMBINATIONS_PER_15M * bars_per_interval['15m'] / seconds:,.0f} 15m klines/s fed to the 6 "
          f"combinations of each symbol")
    print(f"  {figures['summary']}")
    return figures


GRID_COMBINATIONS_PER_15M = 6  # each symbol's 15m klines feed its 3 timeframes x 2 strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=200_000, help="15m bars in the series")
    parser.add_argument("--signal-every", type=int, default=200, help="bars between signals, on average")
    parser.add_argument("--entry-timeout-bars", type=int, default=12)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each engine; the fastest is reported")
    parser.add_argument("--grid", action="store_true", help="part 2: the strategy grid through Spark")
    parser.add_argument("--grid-symbols", type=int, default=GRID_SYMBOLS)
    parser.add_argument("--grid-days", type=int, default=GRID_DAYS)
    parser.add_argument("--keep-log", help="write the timed run's output to this file")
    parser.add_argument("--grid-dir", help="where the temporary lake goes (default: the system's temp dir)")
    args = parser.parse_args()
    if args.grid:
        strategy_grid(args)
    else:
        fill_engine_comparison(args)


if __name__ == "__main__":
    main()
