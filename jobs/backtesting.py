"""`cryptobot backtest` (and `spark-submit jobs/backtesting.py`): the live strategy on the
klines in silver.unified_klines, pinned at the table's current Delta version (recorded with
the results, so a run can be repeated exactly).

Spark fans the work out per symbol (`applyInPandas`): each group holds the symbol's 1m klines
(the fills) and its configured timeframes, and runs `common/backtest/engine.backtest_series`
for every timeframe x strategy. Per combination and for the portfolio (the combinations' P&L
summed over one initial capital, in the order the trades closed) the metrics of
`common/backtest/metrics.py` go to gold.backtest_results, the trades to gold.backtest_trades
and the equity curves to gold.backtest_equity, all under one run id.

Configuration: conf/backtest.yaml, each key overridable with `--set key=value`.
"""
from __future__ import annotations

import io
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pandas as pd
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from common.backtest.engine import TRADE_COLUMNS, analyze, backtest_series
from common.backtest.metrics import compute_metrics
from common.catalog import location_of, read_table
from common.config import INTERVAL_MS, AppConfig, ConfigError
from common.trading_config import PARAMS_BY_NAME, default_rows, parse_trading_config

log = logging.getLogger(__name__)
DEFAULT_FILE = Path(__file__).resolve().parents[1] / "conf" / "backtest.yaml"
LIST_KEYS = {"symbols", "timeframes", "strategies"}
RUN_KEYS = {"start_date", "end_date", "exchange", "symbols", "timeframes", "strategies", "initial_capital"}
_TYPES = {"row_kind": "string", "scope": "string", "strategy": "string", "interval": "string", "payload": "string"}
OUTPUT_SCHEMA = ", ".join(f"{k} {v}" for k, v in _TYPES.items())


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


@dataclass
class BacktestReport:
    run_id: str
    data_version: int
    combinations: int = 0
    trades: int = 0
    portfolio: dict = field(default_factory=dict)

    def describe(self) -> str:
        p = self.portfolio
        return (f"backtest {self.run_id} on silver.unified_klines version {self.data_version}: {self.combinations} "
                f"combinations, {self.trades} trades; portfolio return {p.get('total_return_pct', 0):.2f} %, "
                f"max drawdown {p.get('max_drawdown_pct', 0):.2f} %, Sharpe {p.get('sharpe')}, "
                f"win rate {p.get('win_rate')}")


def run(spark: SparkSession, config: AppConfig, backtest: BacktestConfig | None = None) -> BacktestReport:
    from delta.tables import DeltaTable

    backtest = backtest or BacktestConfig.load()
    trading = backtest.trading()
    exchange = backtest.values.get("exchange", "binance")
    location = location_of(config, "silver.unified_klines")
    version = DeltaTable.forPath(spark, location).history(1).first().version
    start_ms, end_ms = backtest.range_ms()
    # The traded timeframes, 1m for the fills, and every configured interval for the confluence (as live).
    intervals = sorted(set(trading.trading_intervals) | {"1m"} | set(config.exchanges.intervals), key=INTERVAL_MS.get)
    klines = (spark.read.format("delta").option("versionAsOf", version).load(location)
              .where((F.col("exchange") == exchange) & F.col("symbol").isin(list(trading.trading_symbols))
                     & F.col("interval").isin(intervals)))
    if start_ms is not None:
        klines = klines.where(F.col("open_time_ms") >= start_ms)
    if end_ms is not None:
        klines = klines.where(F.col("close_time_ms") <= end_ms)
    run_id = f"bt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    rows = (klines.select("symbol", "interval", "open_time_ms", "close_time_ms", "open", "high", "low", "close",
                          "volume")
            .groupBy("symbol").applyInPandas(_backtest_symbol(config, backtest.values, exchange), OUTPUT_SCHEMA)
            .collect())
    report = BacktestReport(run_id, int(version))
    _store(spark, config, backtest, exchange, run_id, int(version), rows, report)
    return report


def _backtest_symbol(config: AppConfig, values: dict, exchange: str):
    """The applyInPandas function: one symbol's klines of every interval in, per combination
    its trades and equity curve out (as JSON payloads: Decimals travel as strings)."""
    def run(frame: pd.DataFrame) -> pd.DataFrame:
        trading = BacktestConfig(values).trading()
        symbol = frame.symbol.iloc[0]
        series = {i: g.drop(columns=["symbol", "interval"]).sort_values("open_time_ms").reset_index(drop=True)
                  for i, g in frame.groupby("interval")}
        out = []
        # Each interval's analytics once, shared by every timeframe x strategy that reads it.
        analyses = {i: analyze(exchange, symbol, i, b, config.analytics.params(i)) for i, b in series.items()
                    if i != "1m"}
        for interval in trading.trading_intervals:
            if interval not in series or "1m" not in series:
                continue
            others = {i: (b, config.analytics.params(i)) for i, b in series.items() if i not in ("1m", interval)}
            for strategy in trading.strategies:
                one = BacktestConfig({**values, "strategies": [strategy]}).trading()
                result = backtest_series(exchange, symbol, interval, INTERVAL_MS[interval], series[interval],
                                         config.analytics.params(interval), config.signals.scan_params(), one,
                                         config, minute_bars=series["1m"], other_intervals=others,
                                         analyses=analyses)
                scope = f"{symbol}|{interval}|{strategy}"
                trades = result.trades.assign(symbol=symbol, interval=interval)
                out.append({"row_kind": "trades", "scope": scope, "strategy": strategy, "interval": interval,
                            "payload": trades.to_json(orient="records", default_handler=str)})
                out.append({"row_kind": "equity", "scope": scope, "strategy": strategy, "interval": interval,
                            "payload": json.dumps({str(k): v for k, v in result.equity.items()})})
        return pd.DataFrame(out, columns=list(_TYPES))
    return run


def _store(spark, config, backtest: BacktestConfig, exchange: str, run_id: str, version: int, rows,
           report: BacktestReport) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    capital = float(backtest.values.get("initial_capital", 10_000))
    results, trade_rows, equity_rows, all_trades = [], [], [], []
    curves = {r.scope: pd.Series({int(k): v for k, v in json.loads(r.payload).items()}).sort_index()
              for r in rows if r.row_kind == "equity"}
    for r in rows:
        if r.row_kind != "trades":
            continue
        trades = pd.read_json(io.StringIO(r.payload), orient="records", dtype=False) \
            if r.payload != "[]" else pd.DataFrame(columns=TRADE_COLUMNS + ["symbol", "interval"])
        symbol = r.scope.split("|")[0]
        results.append(_result_row(run_id, now, r.scope, r.strategy, exchange, symbol, r.interval, version,
                                   backtest, capital, curves[r.scope], trades))
        equity_rows += _equity_rows(run_id, r.scope, curves[r.scope])
        for t in trades.itertuples(index=False):
            trade_rows.append(_trade_row(run_id, r.strategy, exchange, t))
        all_trades.append(trades)
        report.combinations += 1
    traded = [t for t in all_trades if len(t)]
    trades = pd.concat(traded, ignore_index=True) if traded else pd.DataFrame(columns=TRADE_COLUMNS)
    report.trades = len(trades)
    start = min((int(c.index.min()) for c in curves.values()), default=0)
    portfolio = pd.Series({start: capital})
    if len(trades):
        ordered = trades.sort_values("exit_time_ms", kind="stable")
        running = capital + ordered.net_pnl.astype(float).cumsum()
        portfolio = pd.concat([portfolio, pd.Series(running.to_numpy(), index=ordered.exit_time_ms.astype(int))])
        portfolio = portfolio.groupby(level=0).last()
    results.append(_result_row(run_id, now, "portfolio", None, exchange, None, None, version, backtest, capital,
                               portfolio, trades))
    report.portfolio = results[-1]
    equity_rows += _equity_rows(run_id, "portfolio", portfolio)
    for table, data in (("gold.backtest_results", results), ("gold.backtest_trades", trade_rows),
                        ("gold.backtest_equity", equity_rows)):
        if not data:
            continue
        schema = read_table(spark, config, table).schema
        frame = spark.createDataFrame([tuple(row.get(f.name) for f in schema) for row in data], schema)
        frame.write.format("delta").mode("append").save(location_of(config, table))
    log.info("event=backtest_stored run_id=%s combinations=%d trades=%d", run_id, report.combinations, report.trades)


def _result_row(run_id, now, scope, strategy, exchange, symbol, interval, version, backtest, capital, curve,
                trades) -> dict:
    metrics = compute_metrics(curve, trades.assign(net_pnl=trades.net_pnl.astype(float)) if len(trades) else trades)
    start_ms, end_ms = backtest.range_ms()
    return {"run_id": run_id, "run_timestamp": now, "scope": scope, "strategy": strategy, "exchange": exchange,
            "symbol": symbol, "interval": interval, "window": "all", "start_ms": start_ms or int(curve.index.min()),
            "end_ms": end_ms or int(curve.index.max()), "data_version": version,
            "config_json": json.dumps(backtest.values, sort_keys=True, default=str),
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


def _trade_row(run_id: str, strategy: str, exchange: str, t) -> dict:
    def money(value):
        return None if value is None or (isinstance(value, float) and value != value) else Decimal(str(value))

    return {"run_id": run_id, "trade_id": f"{run_id}:{t.signal_id}", "signal_id": t.signal_id, "strategy": strategy,
            "exchange": exchange, "symbol": t.symbol, "interval": t.interval, "direction": t.direction,
            "score": t.score, "score_zone_quality": t.score_zone_quality, "score_bos": t.score_bos,
            "score_confluence": t.score_confluence, "score_sentiment": t.score_sentiment,
            "score_zone_behaviour": t.score_zone_behaviour, "entry_time_ms": int(t.entry_time_ms),
            "entry_price": money(t.entry_price), "quantity": money(t.quantity), "exit_time_ms": int(t.exit_time_ms),
            "exit_price": money(t.exit_price), "exit_reason": t.exit_reason, "tp1_hit": bool(t.tp1_hit),
            "fees": money(t.fees), "pnl": money(t.net_pnl), "r_multiple": t.r_multiple,
            "hold_minutes": (int(t.exit_time_ms) - int(t.entry_time_ms)) / 60_000}


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("backtesting", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
