"""The per-symbol backtest work without Spark: what one applyInPandas call of the strategy grid
(bench/backtest_speed.py --grid) does for one symbol, timed in this process.

One symbol's year of 15m klines generated as the grid does (`grid_bars`), 1h and 4h resampled
from them (`resample_klines`), the frame applyInPandas would hand over (symbol, interval, bars)
passed to the function `common.backtest.backtesting.backtest_symbol` returns. No JVM is started (pyspark
is imported by common/backtest/backtesting.py, never used here). The wall time is split into
- analytics: `analyze` (analyze_series: structure, zones, volume profile) of every interval;
- backtest: the rest of the call (scan_series, scoring, the fills, the JSON payloads);
the analytics are timed by wrapping `common.backtest.backtesting.analyze` (the name the function calls).

    python bench/backtest_symbol_speed.py                 # symbol 0, 365 days
    python bench/backtest_symbol_speed.py --symbol 3 --days 90 --repeat 3
    python bench/backtest_symbol_speed.py --profile 40    # cProfile's top 40 by own time

Baseline (commit 3e522fa, a 2-core machine shared with other work, symbol 0, 365 days:
35,040 15m + 8,760 1h + 2,190 4h bars, 6 combinations): analytics 6.4-7.4 s, backtest 5.1-5.7 s,
total 12.1-12.4 s (2,800-2,900 15m klines/s, 7,400-7,600 combination bars/s). Inside the Spark
grid the same work measured ~20 s per symbol (analytics ~11.6 s, backtests ~8.5 s).

After branch analytics-speed (same machine, load 3-4 on its 2 cores, best of 3): analytics
2.6-3.0 s, backtest 1.7-1.9 s, total 4.3-4.9 s (7,100-8,100 15m klines/s); the baseline re-run
beside it took 12.2-12.4 s: about 2.7x. Every output identical to the baseline's.

Then (zone rows as tuples, new zones measured together, the confluence, side counts, targets and
breaks of all setups at once), measured as CPU time beside cd150fa on the same loaded machine
(load 4-5 on 2 cores, so both read slower than above): total 4.8 s against 6.0-6.2 s, analytics
3.1 s against 3.4 s, backtest 1.7 s against 2.6-2.7 s (about -20 % in all, -35 % the backtest).
Every output still identical to the baseline's.
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.backtest_speed import grid_bars  # noqa: E402
from common.config import load_config  # noqa: E402
from common.intervals import INTERVAL_MS  # noqa: E402
from common.kline_files import resample_klines  # noqa: E402

INTERVALS = ("15m", "1h", "4h")
STRATEGIES = ("smc", "liquidity")


def grid_config(symbol_index: int):
    """The app config the grid runs with: its symbols and intervals (no lake is touched)."""
    return load_config(env={"CRYPTOBOT_EXCHANGES__SYMBOLS": symbol_name(symbol_index),
                            "CRYPTOBOT_EXCHANGES__INTERVALS": ",".join(INTERVALS)})


def symbol_name(symbol_index: int) -> str:
    return f"G{symbol_index:02d}USDT"


def symbol_frame(symbol_index: int, days: int, intervals=INTERVALS) -> pd.DataFrame:
    """The rows of one symbol's applyInPandas group, as the grid stores them."""
    minutes15 = grid_bars(symbol_index, days)
    frames = []
    for interval in intervals:
        bars = minutes15 if interval == "15m" else resample_klines(minutes15, "15m", interval)
        frames.append(bars.assign(interval=interval, close_time_ms=bars.open_time_ms + INTERVAL_MS[interval] - 1))
    frame = pd.concat(frames, ignore_index=True).assign(symbol=symbol_name(symbol_index))
    return frame[["symbol", "interval", "open_time_ms", "close_time_ms", "open", "high", "low", "close", "volume"]]


def symbol_function(config, symbol: str, intervals=INTERVALS, strategies=STRATEGIES, **kwargs):
    """What `cryptobot backtest --set symbols=... --set timeframes=... --set strategies=...` hands
    to applyInPandas: conf/backtest.yaml with the grid's overrides."""
    from common.backtest.backtesting import BacktestConfig, backtest_symbol

    values = BacktestConfig.load(overrides=[f"symbols={symbol}", f"timeframes={','.join(intervals)}",
                                            f"strategies={','.join(strategies)}"]).values
    return backtest_symbol(config, values, values.get("exchange", "binance"), **kwargs)


def timed_run(function, frame: pd.DataFrame) -> tuple[pd.DataFrame, float, float]:
    """(output, total seconds, of which analytics)."""
    import common.backtest.backtesting as job

    spent = [0.0]
    original = job.analyze

    def analyze(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    job.analyze = analyze
    try:
        started = time.perf_counter()
        out = function(frame)
        total = time.perf_counter() - started
    finally:
        job.analyze = original
    return out, total, spent[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbol", type=int, default=0)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the fastest is reported")
    parser.add_argument("--profile", type=int, metavar="N", help="cProfile one run, print the top N by own time")
    args = parser.parse_args()
    config = grid_config(args.symbol)
    frame = symbol_frame(args.symbol, args.days)
    counts = frame.interval.value_counts()
    function = symbol_function(config, symbol_name(args.symbol))
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        function(frame)
        profiler.disable()
        stats = pstats.Stats(profiler).sort_stats("tottime")
        stats.print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
        return
    best = None
    for _ in range(args.repeat):
        _, total, analytics = timed_run(function, frame)
        if best is None or total < best[0]:
            best = (total, analytics)
    total, analytics = best
    klines15 = int(counts.get("15m", 0))
    combination_bars = len(STRATEGIES) * sum(int(counts.get(i, 0)) for i in INTERVALS)
    print(f"symbol {args.symbol}, {args.days} days: " + ", ".join(f"{int(counts.get(i, 0)):,} {i}" for i in INTERVALS)
          + f" bars, {len(INTERVALS) * len(STRATEGIES)} combinations, best of {args.repeat}")
    print(f"  analytics {analytics:7.3f} s")
    print(f"  backtest  {total - analytics:7.3f} s")
    print(f"  total     {total:7.3f} s  {klines15 / total:>10,.0f} 15m klines/s  "
          f"{combination_bars / total:>10,.0f} combination bars/s")


if __name__ == "__main__":
    main()
