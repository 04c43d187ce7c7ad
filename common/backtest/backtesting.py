"""`cryptobot backtest` (and `spark-submit jobs/backtesting.py`): the live strategy on history.

Input: silver.unified_klines pinned at the table's current Delta version (recorded with the
results, so a run can be repeated exactly), or a kline file (`--klines FILE`: one symbol's
bars, its sha256 recorded instead). Spark fans the work out per symbol (`applyInPandas`): each
group holds the symbol's 1m klines (the fills; without them, each timeframe's own bars) and its
configured timeframes, computes each interval's analytics once and runs
`common/backtest/engine.backtest_series` for every timeframe x strategy. The combinations' orders are then replayed on one account
(`common/backtest/portfolio.py`). Metrics (`common/backtest/metrics.py`) per combination and
for the portfolio go to gold.backtest_results, the trades to gold.backtest_trades and the
equity curves to gold.backtest_equity, all under one run id; `--report DIR` draws them.

Walk-forward (`--walk-forward`): train windows of `walk_forward_train_days` followed by test
windows of `walk_forward_test_days`, rolled on by a test window. On each train window every
setup with a valid plan is traded (no score threshold) to measure what each component's score
is worth (`common/scoring.calibrate`, as `cryptobot score --calibrate` does live); the
following test window is traded with that calibration only. The stored results are the
out-of-sample ones: the test windows chained (window `oos`), and the portfolio per window.

Configuration: conf/backtest.yaml, each key overridable with `--set key=value`.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.analytics.series import AnalyticsParams
from common.backtest.engine import ATTEMPT_COLUMNS, TRADE_COLUMNS, ScoringWindow, analyze, backtest_series
from common.backtest.metrics import compute_metrics
from common.backtest.portfolio import run_portfolio
from common.catalog import location_of, read_table
from common.config import PROJECT_ROOT, AppConfig, ConfigError
from common.intervals import INTERVAL_MS
from common.kline_files import read_kline_file, resample_klines
from common.local_frames import local_frame
from common.progress import SparkProgress
from common.scoring import DEFAULT_CALIBRATION, Calibration, calibrate
from common.strategies import ScanParams
from common.trading_config import PARAMS_BY_NAME, default_rows, parse_trading_config

log = logging.getLogger(__name__)
DEFAULT_FILE = PROJECT_ROOT / "conf" / "backtest.yaml"
LIST_KEYS = {"symbols", "timeframes", "strategies"}
RUN_KEYS = {"start_date", "end_date", "exchange", "symbols", "timeframes", "strategies", "initial_capital",
            "walk_forward_train_days", "walk_forward_test_days", "kline_file_interval"}
_TYPES = {"row_kind": "string", "scope": "string", "strategy": "string", "interval": "string", "window": "string",
          "payload": "string"}
OUTPUT_SCHEMA = ", ".join(f"{k} {v}" for k, v in _TYPES.items())
DAY_MS = 86_400_000


@dataclass(frozen=True)
class BacktestConfig:
    values: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_FILE, overrides: list[str] | None = None) -> BacktestConfig:
        values = yaml.safe_load(Path(path).read_text()) or {}
        for item in overrides or []:
            key, sep, text = item.partition("=")
            if not sep:
                raise ConfigError(f"--set {item!r}: expected key=value")
            key = key.strip()
            values[key] = [v.strip() for v in text.split(",") if v.strip()] if key in LIST_KEYS else yaml.safe_load(
                text)
        unknown = set(values) - RUN_KEYS - set(PARAMS_BY_NAME)
        if unknown:
            raise ConfigError(f"backtest config: unknown keys {sorted(unknown)}")
        config = cls(values)
        config.trading()  # checked now, with the trading parameters' own rules
        return config

    def trading(self):
        params = {r["param_name"]: r["param_value"] for r in default_rows()}
        for key, value in self.values.items():
            if key in PARAMS_BY_NAME:
                params[key] = json.dumps(value) if isinstance(value, list) else str(value).lower() if isinstance(
                    value, bool) else str(value)
        params.update(trading_symbols=json.dumps(self.values.get("symbols", ["BTCUSDT"])),
                      strategies=json.dumps(self.values.get("strategies", ["smc", "liquidity"])),
                      trading_intervals=json.dumps(self.values.get("timeframes", ["15m", "1h", "4h"])),
                      paper_initial_equity_usdt=str(self.values.get("initial_capital", 10_000)))
        return parse_trading_config(params)

    def range_ms(self) -> tuple[int | None, int | None]:
        def ms(text, end=False):
            if text in (None, ""):
                return None
            moment = datetime.fromisoformat(str(text)).replace(tzinfo=timezone.utc)
            return int(moment.timestamp() * 1000) + (86_400_000 - 1 if end and len(str(text)) == 10 else 0)
        return ms(self.values.get("start_date")), ms(self.values.get("end_date"), end=True)


@dataclass(frozen=True)
class Window:
    """A walk-forward step: calibrate on [train_start, test_start), trade [test_start, test_end)."""
    name: str
    train_start_ms: int
    test_start_ms: int
    test_end_ms: int


def walk_forward_windows(start_ms: int, end_ms: int, train_days: float, test_days: float) -> list[Window]:
    train, test = int(train_days * DAY_MS), int(test_days * DAY_MS)
    if train <= 0 or test <= 0:
        raise ConfigError("walk_forward_train_days and walk_forward_test_days must be positive")
    windows, train_start = [], start_ms
    while train_start + train < end_ms:
        test_start = train_start + train
        windows.append(Window(f"wf{len(windows) + 1}", train_start, test_start, min(test_start + test, end_ms + 1)))
        train_start += test
    if not windows:
        raise ConfigError(f"walk-forward: the data spans {(end_ms - start_ms) / DAY_MS:.1f} days, not more than one "
                          f"train window of {train_days} days")
    return windows


@dataclass
class BacktestReport:
    run_id: str
    data_version: int | None
    source: str = "silver.unified_klines"
    combinations: int = 0
    trades: int = 0
    portfolio: dict = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)  # orders the portfolio did not take, by reason
    windows: list[dict] = field(default_factory=list)  # walk-forward: each window and its calibration
    report_path: Path | None = None

    @property
    def rows_out(self) -> int:  # for gold.job_runs
        return self.trades

    def describe(self) -> str:
        p = self.portfolio
        version = f" version {self.data_version}" if self.data_version is not None else ""
        lines = [f"backtest {self.run_id} on {self.source}{version}: {self.combinations} combinations, "
                 f"{self.trades} trades; portfolio {p.get('trades', 0)} trades, return "
                 f"{p.get('total_return_pct', 0):.2f} %, max drawdown {p.get('max_drawdown_pct', 0):.2f} %, "
                 f"Sharpe {_fmt(p.get('sharpe'))}, win rate {_fmt(p.get('win_rate'))}"]
        if self.skipped:
            lines.append("  portfolio skipped: " + ", ".join(f"{n} x {why}" for why, n in self.skipped.items()))
        for w in self.windows:
            lines.append(f"  {w['name']}: trained {w['train']} ({w['train_trades']} trades, calibration "
                         f"{w['calibration']}), tested {w['test']}")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def run(spark: SparkSession, config: AppConfig, backtest: BacktestConfig | None = None, walk_forward: bool = False,
        kline_file: str | None = None, report_dir: str | None = None, progress: bool = True,
        trade_from_ms: int | None = None, calibration: Calibration | None = None) -> BacktestReport:
    """trade_from_ms: trade only the setups known from then on (the analytics still read all the
    history before it); calibration: score with it instead of the default (the paper replay's
    parity check passes the one the live scorer used)."""
    backtest = backtest or BacktestConfig.load()
    trading = backtest.trading()
    exchange = backtest.values.get("exchange", "binance")
    # The traded timeframes, 1m for the fills, and every configured interval for the confluence (as live).
    intervals = sorted(set(trading.trading_intervals) | {"1m"} | set(config.exchanges.intervals), key=INTERVAL_MS.get)
    run_id = f"bt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    if kline_file:
        klines, version, source = _file_klines(spark, backtest, kline_file, intervals)
    else:
        klines, version, source = _lake_klines(spark, config, backtest, exchange, trading, intervals)
    report = BacktestReport(run_id, version, source)
    klines = klines.select("symbol", "interval", "open_time_ms", "close_time_ms", "open", "high", "low", "close",
                           "volume")
    # One partition per symbol (explicit, so adaptive execution keeps them): the work and the progress bar's steps.
    klines = klines.repartition(max(1, len(trading.trading_symbols)), "symbol").cache()
    windows = None
    if walk_forward:
        span = klines.agg(F.min("open_time_ms").alias("first"), F.max("close_time_ms").alias("last")).first()
        if span.first is None:
            raise ConfigError(f"no klines to backtest in {source}")
        steps = walk_forward_windows(span.first, span.last, float(backtest.values.get("walk_forward_train_days", 90)),
                                     float(backtest.values.get("walk_forward_test_days", 30)))
        trained = _collect(spark, klines, backtest_symbol(config, backtest.values, exchange, train=steps),
                           "walk-forward: train" if progress else None)
        windows = []
        for step in steps:
            measured = [_trades_frame(r.payload) for r in trained if r.window == step.name]
            measured = pd.concat([m for m in measured if len(m)] or [pd.DataFrame(columns=TRADE_COLUMNS)])
            calibration, _ = calibrate(measured, f"walk-forward {run_id} {step.name}")
            windows.append(ScoringWindow(step.test_start_ms, step.test_end_ms, calibration or DEFAULT_CALIBRATION))
            report.windows.append({"name": step.name, "train": _span(step.train_start_ms, step.test_start_ms),
                                   "test": _span(step.test_start_ms, step.test_end_ms), "train_trades": len(measured),
                                   "calibration": (calibration or DEFAULT_CALIBRATION).version,
                                   "test_start_ms": step.test_start_ms, "test_end_ms": step.test_end_ms})
    if windows is None and (trade_from_ms is not None or calibration is not None):
        windows = [ScoringWindow(trade_from_ms or 0, 2**62, calibration or DEFAULT_CALIBRATION)]
    rows = _collect(spark, klines, backtest_symbol(config, backtest.values, exchange, windows=windows),
                    "backtest" if progress else None)
    klines.unpersist()
    _store(spark, config, backtest, exchange, run_id, rows, report, kline_file)
    if report_dir:
        report.report_path = write_run_report(spark, config, run_id, report_dir)
    return report


def _collect(spark, klines, function, label: str | None) -> list:
    grouped = klines.groupBy("symbol").applyInPandas(function, OUTPUT_SCHEMA)
    if label is None:
        return grouped.collect()
    with SparkProgress(spark, label):
        return grouped.collect()


def _lake_klines(spark, config, backtest, exchange, trading, intervals):
    location = location_of(config, "silver.unified_klines")
    version = int(DeltaTable.forPath(spark, location).history(1).first().version)
    start_ms, end_ms = backtest.range_ms()
    klines = (spark.read.format("delta").option("versionAsOf", version).load(location)
              .where((F.col("exchange") == exchange) & F.col("symbol").isin(list(trading.trading_symbols))
                     & F.col("interval").isin(intervals)))
    if start_ms is not None:
        klines = klines.where(F.col("open_time_ms") >= start_ms)
    if end_ms is not None:
        klines = klines.where(F.col("close_time_ms") <= end_ms)
    return klines, version, "silver.unified_klines"


def _file_klines(spark, backtest, path: str, intervals):
    """One symbol's bars from a CSV/Parquet file (common/kline_files.py's format), the longer
    intervals resampled from them; bars before start_date or after end_date left out."""

    symbols = backtest.values.get("symbols") or []
    if len(symbols) != 1:
        raise ConfigError(f"--klines FILE holds one symbol's bars: set exactly one symbol (got {symbols})")
    file_interval = str(backtest.values.get("kline_file_interval", "1m"))
    if file_interval not in INTERVAL_MS:
        raise ConfigError(f"kline_file_interval {file_interval!r} is not an interval")
    try:
        bars = read_kline_file(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"--klines {path}: {err}") from err
    frames = []
    for interval in intervals:
        if INTERVAL_MS[interval] < INTERVAL_MS[file_interval] or INTERVAL_MS[interval] % INTERVAL_MS[file_interval]:
            continue
        series = bars if interval == file_interval else resample_klines(bars, file_interval, interval)
        frames.append(series.assign(interval=interval, close_time_ms=series.open_time_ms + INTERVAL_MS[interval] - 1))
    frame = pd.concat(frames, ignore_index=True).assign(symbol=symbols[0])
    start_ms, end_ms = backtest.range_ms()
    if start_ms is not None:
        frame = frame[frame.open_time_ms >= start_ms]
    if end_ms is not None:
        frame = frame[frame.close_time_ms <= end_ms]
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    schema = ("symbol string, interval string, open_time_ms long, close_time_ms long, open double, high double, "
              "low double, close double, volume double")
    return local_frame(spark, frame, schema), None, f"{path} (sha256 {digest[:16]})"


def backtest_symbol(config: AppConfig, values: dict, exchange: str, train: list[Window] | None = None,
                     windows: list[ScoringWindow] | None = None):
    """The applyInPandas function: one symbol's klines of every interval in, per combination its
    trades, equity curve and orders out (JSON payloads: Decimals travel as text). With `train`,
    per walk-forward window the trades of its train span, every setup with a plan traded."""
    def run(frame: pd.DataFrame) -> pd.DataFrame:
        symbol = frame.symbol.iloc[0]
        series = {i: g.drop(columns=["symbol", "interval"]).sort_values("open_time_ms").reset_index(drop=True)
                  for i, g in frame.groupby("interval")}
        out = []
        # Each interval's analytics once, shared by every timeframe x strategy (and window) that reads it.
        analyses = {i: analyze(exchange, symbol, i, b, AnalyticsParams.from_config(config.analytics, i)) for i, b in series.items()
                    if i != "1m"}
        trading = BacktestConfig(values).trading()
        for interval in trading.trading_intervals:
            if interval not in series:
                continue
            others = {i: (b, AnalyticsParams.from_config(config.analytics, i)) for i, b in series.items() if i not in ("1m", interval)}
            for strategy in trading.strategies:
                scope = f"{symbol}|{interval}|{strategy}"

                def one(overrides: dict, scoring: list[ScoringWindow] | None):
                    return backtest_series(exchange, symbol, interval, INTERVAL_MS[interval], series[interval],
                                           AnalyticsParams.from_config(config.analytics, interval), ScanParams.from_config(config.signals),
                                           BacktestConfig({**values, "strategies": [strategy], **overrides}).trading(),
                                           config, minute_bars=series.get("1m"), other_intervals=others,
                                           analyses=analyses, windows=scoring)
                if train is not None:
                    for step in train:
                        result = one({"score_threshold_execute": 0, "score_threshold_watchlist": 0},
                                     [ScoringWindow(step.train_start_ms, step.test_start_ms, DEFAULT_CALIBRATION)])
                        out.append(_row("train", scope, strategy, interval, step.name, result.trades))
                    continue
                result = one({}, windows)
                window = "all" if windows is None else "oos"
                out.append(_row("trades", scope, strategy, interval, window,
                                result.trades.assign(symbol=symbol, interval=interval)))
                out.append(_row("attempts", scope, strategy, interval, window, result.attempts.assign(symbol=symbol)))
                out.append({"row_kind": "equity", "scope": scope, "strategy": strategy, "interval": interval,
                            "window": window, "payload": json.dumps({str(k): v for k, v in result.equity.items()})})
        return pd.DataFrame(out, columns=list(_TYPES))
    return run


def _row(kind: str, scope: str, strategy: str, interval: str, window: str, frame: pd.DataFrame) -> dict:
    return {"row_kind": kind, "scope": scope, "strategy": strategy, "interval": interval, "window": window,
            "payload": frame.to_json(orient="records", default_handler=str)}


def _trades_frame(payload: str) -> pd.DataFrame:
    if payload == "[]":
        return pd.DataFrame(columns=TRADE_COLUMNS + ["symbol", "interval"])
    return pd.read_json(io.StringIO(payload), orient="records", dtype=False)


def _span(start_ms: int, end_ms: int) -> str:
    day = lambda ms: datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    return f"{day(start_ms)} .. {day(end_ms)}"


def _store(spark, config, backtest: BacktestConfig, exchange: str, run_id: str, rows, report: BacktestReport,
           kline_file: str | None) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    trading = backtest.trading()
    capital = Decimal(str(backtest.values.get("initial_capital", 10_000)))
    settings = {**backtest.values, **({"kline_file": kline_file, "source": report.source} if kline_file else {})}
    results, trade_rows, equity_rows, combination_trades, attempts = [], [], [], {}, []
    curves = {r.scope: pd.Series({int(k): v for k, v in json.loads(r.payload).items()}).sort_index()
              for r in rows if r.row_kind == "equity"}
    window = "all"
    for r in rows:
        if r.row_kind == "attempts" and r.payload != "[]":
            attempts.append(pd.read_json(io.StringIO(r.payload), orient="records", dtype=False))
        if r.row_kind != "trades":
            continue
        window = r.window
        trades = _trades_frame(r.payload)
        symbol = r.scope.split("|")[0]
        results.append(_result_row(run_id, now, r.scope, r.strategy, exchange, symbol, r.interval, window,
                                   report.data_version, settings, backtest, capital, curves[r.scope], trades))
        equity_rows += _equity_rows(run_id, r.scope, curves[r.scope])
        trade_rows += [_trade_row(run_id, r.scope, r.strategy, exchange, t) for t in trades.itertuples(index=False)]
        combination_trades[r.scope] = trades
        report.combinations += 1
    report.trades = len(trade_rows)
    orders = pd.concat(attempts, ignore_index=True) if attempts else pd.DataFrame(columns=ATTEMPT_COLUMNS + ["symbol"])
    orders = orders.astype({c: str for c in ("reference_price", "entry_price", "sl_price", "tp1_price", "tp2_price",
                                             "amount")})
    book = run_portfolio(orders, trading, capital)
    report.skipped = book.skipped
    traded = [t for t in combination_trades.values() if len(t)]
    described = (pd.concat(traded, ignore_index=True).drop_duplicates("signal_id").set_index("signal_id")
                 if traded else None)
    portfolio_trades = book.trades
    if len(portfolio_trades):
        # The portfolio's trades are its combinations' orders, resized: their setups' descriptions are theirs.
        own = ["signal_id", "symbol", "entry_time_ms", "exit_time_ms", "quantity", "entry_price", "exit_price",
               "exit_reason", "tp1_hit", "fees", "pnl", "net_pnl", "r_multiple"]
        portfolio_trades = portfolio_trades[own].join(
            described.drop(columns=[c for c in own if c != "signal_id" and c in described.columns]), on="signal_id")
        trade_rows += [_trade_row(run_id, "portfolio", t.strategy, exchange, t)
                       for t in portfolio_trades.itertuples(index=False)]
    curve = book.equity if len(book.equity) else pd.Series({0: float(capital)})
    if curves:
        curve = pd.concat([pd.Series({min(int(c.index.min()) for c in curves.values()): float(capital)}), curve])
        curve = curve[~curve.index.duplicated(keep="last")].sort_index()
    results.append(_result_row(run_id, now, "portfolio", None, exchange, None, None, window, report.data_version,
                               settings, backtest, capital, curve, portfolio_trades))
    report.portfolio = results[-1]
    equity_rows += _equity_rows(run_id, "portfolio", curve)
    for w in report.windows:  # walk-forward: the portfolio in each test window
        inside = portfolio_trades[(portfolio_trades.entry_time_ms >= w["test_start_ms"])
                                  & (portfolio_trades.entry_time_ms < w["test_end_ms"])] if len(
            portfolio_trades) else portfolio_trades
        before = curve[curve.index < w["test_start_ms"]]
        window_curve = pd.concat([pd.Series({w["test_start_ms"]: before.iloc[-1] if len(before) else float(capital)}),
                                  curve[(curve.index >= w["test_start_ms"]) & (curve.index < w["test_end_ms"])]])
        window_curve = window_curve[~window_curve.index.duplicated(keep="last")].sort_index()
        row = _result_row(run_id, now, "portfolio", None, exchange, None, None, w["name"], report.data_version,
                          {**settings, "calibration_version": w["calibration"]}, backtest,
                          Decimal(str(window_curve.iloc[0])), window_curve, inside)
        results.append({**row, "start_ms": w["test_start_ms"], "end_ms": w["test_end_ms"]})
    for table, data in (("gold.backtest_results", results), ("gold.backtest_trades", trade_rows),
                        ("gold.backtest_equity", equity_rows)):
        if not data:
            continue
        schema = read_table(spark, config, table).schema
        frame = local_frame(spark, [tuple(row.get(f.name) for f in schema) for row in data], schema)
        frame.write.format("delta").mode("append").save(location_of(config, table))
    log.info("event=backtest_stored run_id=%s combinations=%d trades=%d portfolio_trades=%d", run_id,
             report.combinations, report.trades, len(portfolio_trades))


def _result_row(run_id, now, scope, strategy, exchange, symbol, interval, window, version, settings, backtest,
                capital, curve, trades) -> dict:
    metrics = compute_metrics(curve, trades.assign(net_pnl=trades.net_pnl.astype(float)) if len(trades) else trades)
    start_ms, end_ms = backtest.range_ms()
    return {"run_id": run_id, "run_timestamp": now, "scope": scope, "strategy": strategy, "exchange": exchange,
            "symbol": symbol, "interval": interval, "window": window,
            "start_ms": start_ms or int(curve.index.min()), "end_ms": end_ms or int(curve.index.max()),
            "data_version": version, "config_json": json.dumps(settings, sort_keys=True, default=str),
            "initial_capital": Decimal(str(capital)), "final_equity": Decimal(str(round(curve.iloc[-1], 8))),
            **{k: v for k, v in metrics.as_dict().items() if k not in ("expectancy",)},
            "expectancy": None if metrics.expectancy is None else Decimal(str(round(metrics.expectancy, 8)))}


def _equity_rows(run_id: str, scope: str, curve: pd.Series) -> list[dict]:
    peak, rows = None, []
    for ts_ms, value in curve.items():
        peak = value if peak is None else max(peak, value)
        rows.append({"run_id": run_id, "scope": scope, "ts_ms": int(ts_ms),
                     "ts": datetime.fromtimestamp(int(ts_ms) / 1000, tz=timezone.utc).replace(tzinfo=None),
                     "equity": Decimal(str(round(value, 8))), "drawdown_pct": 100.0 * (value / peak - 1)})
    return rows


def _trade_row(run_id: str, scope: str, strategy: str, exchange: str, t) -> dict:
    def money(value):
        return None if value is None or (isinstance(value, float) and value != value) else Decimal(str(value))

    return {"run_id": run_id, "trade_id": f"{run_id}:{scope}:{t.signal_id}", "scope": scope,
            "signal_id": t.signal_id, "strategy": strategy,
            "exchange": exchange, "symbol": t.symbol, "interval": t.interval, "direction": t.direction,
            "score": t.score, "score_zone_quality": t.score_zone_quality, "score_bos": t.score_bos,
            "score_confluence": t.score_confluence, "score_sentiment": t.score_sentiment,
            "score_zone_behaviour": t.score_zone_behaviour, "entry_time_ms": int(t.entry_time_ms),
            "entry_price": money(t.entry_price), "quantity": money(t.quantity), "exit_time_ms": int(t.exit_time_ms),
            "exit_price": money(t.exit_price), "exit_reason": t.exit_reason, "tp1_hit": bool(t.tp1_hit),
            "fees": money(t.fees), "pnl": money(t.net_pnl), "r_multiple": t.r_multiple,
            "hold_minutes": (int(t.exit_time_ms) - int(t.entry_time_ms)) / 60_000}


def write_run_report(spark, config: AppConfig, run_id: str, out_dir: str) -> Path:
    """The HTML report of a stored run (common/backtest/report.py), from its rows in the gold tables."""
    from common.backtest.report import write_report

    def rows(table: str) -> pd.DataFrame:
        return read_table(spark, config, table).where(F.col("run_id") == run_id).toPandas()

    return write_report(out_dir, rows("gold.backtest_results"), rows("gold.backtest_trades"),
                        rows("gold.backtest_equity"))


def run_from_args(spark, config: AppConfig, args) -> BacktestReport:
    # By default the backtest.yaml beside the app's config (CRYPTOBOT_CONFIG on a cluster, where the
    # code runs from a zip with no conf/ next to it), else the checkout's.
    beside = Path(config.source).parent / "backtest.yaml"
    settings = BacktestConfig.load(args.config or (beside if beside.is_file() else DEFAULT_FILE), args.set)
    return run(spark, config, settings, walk_forward=args.walk_forward, kline_file=args.klines,
               report_dir=args.report, progress=not args.no_progress)
