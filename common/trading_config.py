"""Trading parameters: the rows of gold.trading_config, typed and validated when read.

Users change them with `UPDATE gold.trading_config SET param_value = '...' WHERE
param_name = '...'`; every job reads them at the start of its step, so a bad value is
refused there, loudly, naming the parameter and what is allowed. Secrets are never rows
here (common/secrets.py).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from common.config import ConfigError
from common.local_frames import local_frame

TRADABLE_EXCHANGES = ("binance", "bybit")
STRATEGIES = ("smc", "liquidity")
TRADABLE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "1d")
# Above this a single trade risks too much of the account to be anything but a typo.
RISK_PER_TRADE_HARD_CAP_PCT = 5.0


@dataclass(frozen=True)
class ParamSpec:
    name: str
    value_type: str  # bool | int | float | str | json_list
    default: str
    description: str
    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    allowed: tuple[str, ...] | None = None


PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("trading_enabled", "bool", "true",
              "Kill switch: false stops every new entry (open positions are still managed)"),
    ParamSpec("paper_trading", "bool", "true",
              "true = the paper exchange fills orders against klines; false = orders go to trading_exchange"),
    ParamSpec("trading_exchange", "str", "binance", "Exchange that receives orders when paper_trading is false",
              allowed=TRADABLE_EXCHANGES),
    ParamSpec("use_testnet", "bool", "true",
              "Use the exchange's testnet; false is live trading and also needs CRYPTOBOT_LIVE_TRADING=<exchange>, "
              "e.g. CRYPTOBOT_LIVE_TRADING=binance"),
    ParamSpec("trading_symbols", "json_list", '["BTCUSDT", "ETHUSDT"]',
              "JSON array of canonical symbols that may be traded"),
    ParamSpec("trading_intervals", "json_list", '["15m", "1h", "4h"]',
              "JSON array of intervals whose signals may be traded", allowed=TRADABLE_INTERVALS),
    ParamSpec("strategies", "json_list", '["smc", "liquidity"]', "JSON array of enabled strategies",
              allowed=STRATEGIES),
    ParamSpec("risk_per_trade_pct", "float", "1.0", "Equity risked per trade, in percent",
              low=0.0, high=RISK_PER_TRADE_HARD_CAP_PCT, low_inclusive=False),
    ParamSpec("score_threshold_execute", "float", "70", "Score at or above which a signal is confirmed",
              low=0, high=100),
    ParamSpec("score_threshold_watchlist", "float", "50",
              "Score at or above which (and below execute) a signal is watchlisted", low=0, high=100),
    ParamSpec("min_rr_ratio", "float", "2.0", "Minimum reward/risk to TP2 for a plan to be accepted",
              low=0.0, high=20.0, low_inclusive=False),
    ParamSpec("max_open_positions", "int", "3", "Most positions open at once", low=1, high=100),
    ParamSpec("max_positions_per_symbol", "int", "1", "Most positions open at once on one symbol",
              low=1, high=10),
    ParamSpec("daily_loss_limit_pct", "float", "3.0",
              "Realised loss (percent of equity) in a UTC day after which no new entry opens",
              low=0.0, high=100.0, low_inclusive=False),
    ParamSpec("max_leverage", "float", "3.0", "Leverage cap: position notional / equity", low=1.0, high=125.0),
    ParamSpec("max_total_exposure_pct", "float", "300",
              "Cap on the summed notional of open positions, in percent of equity",
              low=0.0, high=12_500.0, low_inclusive=False),
    ParamSpec("entry_timeout_bars", "int", "12", "Bars after which an unfilled entry is cancelled",
              low=1, high=10_000),
    ParamSpec("tp1_close_pct", "float", "50", "Share of the position closed at TP1, in percent",
              low=0.0, high=100.0, low_inclusive=False),
    ParamSpec("move_sl_to_breakeven", "bool", "true", "Move the stop loss to the entry price after TP1"),
    ParamSpec("sl_buffer_atr", "float", "0.25", "Stop loss distance beyond the zone, in ATR", low=0.0, high=10.0),
    ParamSpec("signal_max_age_bars", "int", "3",
              "A signal older than this many bars when scored or executed is expired", low=1, high=1_000),
    ParamSpec("data_max_age_seconds", "int", "180",
              "No new entry (testnet, live) on a symbol whose newest 1m kline in silver.unified_klines closed longer "
              "ago than this", low=60, high=86_400),
    ParamSpec("data_gap_window_minutes", "int", "60",
              "No new entry (testnet, live) on a symbol missing a 1m kline within this many minutes before now",
              low=1, high=10_080),
    ParamSpec("paper_initial_equity_usdt", "float", "10000", "Starting equity of the paper account",
              low=0.0, high=1e12, low_inclusive=False),
    ParamSpec("maker_fee_pct", "float", "0.02", "Maker fee of the paper exchange, in percent", low=0.0, high=1.0),
    ParamSpec("taker_fee_pct", "float", "0.05", "Taker fee of the paper exchange, in percent", low=0.0, high=1.0),
    ParamSpec("slippage_bps", "float", "2", "Slippage of stop and market fills on paper, in basis points",
              low=0.0, high=1_000.0),
)
PARAMS_BY_NAME = {spec.name: spec for spec in PARAMS}


@dataclass(frozen=True)
class TradingConfig:
    trading_enabled: bool
    paper_trading: bool
    trading_exchange: str
    use_testnet: bool
    trading_symbols: tuple[str, ...]
    trading_intervals: tuple[str, ...]
    strategies: tuple[str, ...]
    risk_per_trade_pct: float
    score_threshold_execute: float
    score_threshold_watchlist: float
    min_rr_ratio: float
    max_open_positions: int
    max_positions_per_symbol: int
    daily_loss_limit_pct: float
    max_leverage: float
    max_total_exposure_pct: float
    entry_timeout_bars: int
    tp1_close_pct: float
    move_sl_to_breakeven: bool
    sl_buffer_atr: float
    signal_max_age_bars: int
    data_max_age_seconds: int
    data_gap_window_minutes: int
    paper_initial_equity_usdt: float
    maker_fee_pct: float
    taker_fee_pct: float
    slippage_bps: float

    @property
    def is_live(self) -> bool:
        return not self.paper_trading and not self.use_testnet


def default_rows() -> list[dict[str, str]]:
    return [
        {"param_name": p.name, "param_value": p.default, "value_type": p.value_type,
         "description": p.description}
        for p in PARAMS
    ]


def values_from_rows(rows: Iterable[tuple[str, str | None]]) -> dict[str, str | None]:
    """{param_name: param_value} of the table's rows. Two rows of one parameter leave no way to
    tell which one a job would trade on: refused, naming it."""
    values: dict[str, str | None] = {}
    duplicated: list[str] = []
    for name, value in rows:
        if name in values and name not in duplicated:
            duplicated.append(name)
        values[name] = value
    if duplicated:
        raise ConfigError("invalid gold.trading_config:\n  " + "\n  ".join(
            f"{name}: more than one row (DELETE all but one)" for name in duplicated))
    return values


def parse_trading_config(values: Mapping[str, str | None]) -> TradingConfig:
    """Parse and validate {param_name: param_value}; every problem is named in one error."""
    errors: list[str] = []
    parsed: dict[str, Any] = {}
    # A row no parameter reads changes nothing, and may be a secret pasted in the wrong place: its
    # name is refused, its value never shown.
    errors += [f"{name!r}: unknown parameter (its value is not shown); DELETE the row"
               for name in sorted(set(values) - set(PARAMS_BY_NAME), key=str)]
    for spec in PARAMS:
        if spec.name not in values or values[spec.name] is None:
            errors.append(f"{spec.name}: missing (run `cryptobot init` to add the default)")
            continue
        try:
            parsed[spec.name] = _parse_value(spec, str(values[spec.name]).strip())
        except ValueError as err:
            errors.append(f"{spec.name} = {values[spec.name]!r}: {err}")
    if not errors and parsed["score_threshold_watchlist"] > parsed["score_threshold_execute"]:
        errors.append(
            f"score_threshold_watchlist = {parsed['score_threshold_watchlist']:g} must not exceed "
            f"score_threshold_execute = {parsed['score_threshold_execute']:g}"
        )
    if errors:
        raise ConfigError("invalid gold.trading_config:\n  " + "\n  ".join(errors))
    return TradingConfig(**parsed)


def _parse_value(spec: ParamSpec, text: str) -> Any:
    parser: Callable[[ParamSpec, str], Any] = _PARSERS[spec.value_type]
    return parser(spec, text)


def _parse_bool(spec: ParamSpec, text: str) -> bool:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ValueError("must be true or false")


def _check_range(spec: ParamSpec, number: float) -> None:
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    too_low = spec.low is not None and (number < spec.low or (number == spec.low and not spec.low_inclusive))
    too_high = spec.high is not None and number > spec.high
    if too_low or too_high:
        opening = "[" if spec.low_inclusive else "("
        raise ValueError(f"out of range: allowed {opening}{spec.low:g}, {spec.high:g}]")


def _parse_int(spec: ParamSpec, text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None
    _check_range(spec, number)
    return number


def _parse_float(spec: ParamSpec, text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    _check_range(spec, number)
    return number


def _parse_str(spec: ParamSpec, text: str) -> str:
    value = text.lower()
    if spec.allowed is not None and value not in spec.allowed:
        raise ValueError(f"unknown value; allowed: {', '.join(spec.allowed)}")
    return value


def _parse_json_list(spec: ParamSpec, text: str) -> tuple[str, ...]:
    try:
        items = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError('must be a JSON array of strings, e.g. ["BTCUSDT"]') from None
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ValueError('must be a non-empty JSON array of strings, e.g. ["BTCUSDT"]')
    if spec.allowed is not None:
        unknown = [i for i in items if i not in spec.allowed]
        if unknown:
            raise ValueError(f"unknown {unknown}; allowed: {', '.join(spec.allowed)}")
    if spec.name == "trading_symbols":
        bad = [i for i in items if not (i.isalnum() and i.isupper() and i.endswith("USDT"))]
        if bad:
            raise ValueError(f"{bad} are not canonical symbols like 'BTCUSDT'")
    return tuple(items)


_PARSERS = {
    "bool": _parse_bool,
    "int": _parse_int,
    "float": _parse_float,
    "str": _parse_str,
    "json_list": _parse_json_list,
}


# -- Spark side: thin wrappers over the table ---------------------------------------------

TABLE = "gold.trading_config"


def read_trading_config(spark) -> TradingConfig:
    """Read gold.trading_config now and validate it (call at the start of every job step)."""
    rows = spark.table(TABLE).select("param_name", "param_value").collect()
    return parse_trading_config(values_from_rows((row.param_name, row.param_value) for row in rows))


def insert_missing_defaults(spark) -> list[str]:
    """Add the default row of every parameter the table lacks; never touch existing rows."""
    from pyspark.sql import functions as F

    existing = {row.param_name for row in spark.table(TABLE).select("param_name").collect()}
    missing = [row for row in default_rows() if row["param_name"] not in existing]
    if missing:
        schema = "param_name STRING, param_value STRING, value_type STRING, description STRING"
        (local_frame(spark, [tuple(row[k] for k in ("param_name", "param_value", "value_type", "description"))
                      for row in missing], schema)
         .withColumn("updated_at", F.current_timestamp())
         .write.format("delta").mode("append").saveAsTable(TABLE))
    return [row["param_name"] for row in missing]
