"""The backtest of one series (exchange, symbol, interval): the live code on history, called,
not re-implemented. Analytics (`analyze_series`) over the bars, the strategies (`scan_series`)
over what they emit, each setup scored as of the moment it became known (`score_signals`, the
scorer's own function: no bar after it is read), a confirmed one sized (`position_size`) and
traded bar by bar through the paper exchange's fill model (`paper_bar`), on 1m bars when they
are given (they resolve a bar that reaches both the stop and a target), else on the series'
own. One position at a time on the symbol, as live (`max_positions_per_symbol` = 1); equity
moves by each closed trade's P&L net of fees.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from common.analytics.series import AnalyticsParams, analyze_series
from common.exchange.paper import paper_market_rules
from common.intervals import INTERVAL_MS
from common.scoring import DEFAULT_CALIBRATION, Calibration, score_signals
from common.strategies import ScanParams, scan_series
from common.trade.lifecycle import Costs, Trade, TradeState, new_trade, paper_bar, trade_result
from common.trade.sizing import LONG, MarketRules, position_size, round_price, round_stop
from common.trading_config import TradingConfig

TRADE_COLUMNS = ["signal_id", "strategy", "direction", "score", "score_zone_quality", "score_bos", "score_confluence",
                 "score_sentiment", "score_zone_behaviour", "entry_time_ms", "entry_price", "quantity", "exit_time_ms",
                 "exit_price", "exit_reason", "tp1_hit", "fees", "pnl", "net_pnl", "r_multiple"]


ATTEMPT_COLUMNS = ["signal_id", "placed_ms", "ended_ms", "state", "direction", "reference_price", "entry_price",
                   "sl_price", "tp1_price", "tp2_price", "amount", "fills"]


@dataclass(frozen=True)
class ScoringWindow:
    """Walk-forward: only setups known in [start_ms, end_ms) are traded, scored with this calibration."""
    start_ms: int
    end_ms: int
    calibration: Calibration


@dataclass(frozen=True)
class SeriesBacktest:
    signals: pd.DataFrame  # every setup with the status its scoring gave it
    trades: pd.DataFrame  # TRADE_COLUMNS, one row per closed trade
    equity: pd.Series  # account value by epoch ms: the initial capital, then after each closed trade
    # ATTEMPT_COLUMNS, one row per entry order placed (closed, cancelled or still open at the end):
    # what a portfolio of several series needs to replay the orders on one account.
    attempts: pd.DataFrame


def backtest_series(exchange: str, symbol: str, interval: str, interval_ms: int, bars: pd.DataFrame,
                    analytics: AnalyticsParams, scan: ScanParams, trading: TradingConfig, config,
                    calibration: Calibration = DEFAULT_CALIBRATION, minute_bars: pd.DataFrame | None = None,
                    initial_capital: Decimal | None = None,
                    other_intervals: dict[str, tuple[pd.DataFrame, AnalyticsParams]] | None = None,
                    analyses: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                    windows: list[ScoringWindow] | None = None) -> SeriesBacktest:
    """bars (and minute_bars): open_time_ms, close_time_ms, open, high, low, close, volume;
    other_intervals: the symbol's bars of the other configured intervals with their analytics
    parameters, for the confirmation across timeframes the live scanner adds; analyses: the
    (events, zones) of `analyze` per interval when already computed (a grid reuses them); windows:
    trade only the setups of these windows, each scored with its window's calibration (the
    analytics are causal, so one pass over the whole history serves every window)."""
    analyses = dict(analyses or {})
    for name, (frame, params) in {interval: (bars, analytics), **(other_intervals or {})}.items():
        if name not in analyses:
            analyses[name] = analyze(exchange, symbol, name, frame, params)
    bars = bars.sort_values("open_time_ms").reset_index(drop=True)
    events, zones = analyses[interval]
    htf_events = {other: analyses[other][0] for other in (other_intervals or {})}
    htf_zones = {other: analyses[other][1] for other in (other_intervals or {})}
    setups = scan_series(exchange, symbol, interval, interval_ms, events, zones, scan, trading.strategies,
                         htf_events=htf_events, htf_zones=htf_zones, intervals=[interval, *htf_events])
    capital = initial_capital if initial_capital is not None else Decimal(str(trading.paper_initial_equity_usdt))
    equity_points = {int(bars.open_time_ms.iloc[0]) if len(bars) else 0: float(capital)}
    fills = FillBars.from_frame(minute_bars if minute_bars is not None else bars)
    ordered = setups.sort_values(["known_at_ms", "signal_id"], kind="stable").reset_index(drop=True)
    if windows is None:
        scores = _score_as_known(exchange, symbol, interval, ordered, zones, trading, calibration, config)
    else:
        parts = [ordered[(ordered.known_at_ms >= w.start_ms) & (ordered.known_at_ms < w.end_ms)] for w in windows]
        scores = pd.concat([_score_as_known(exchange, symbol, interval, part, zones, trading, w.calibration, config)
                            for part, w in zip(parts, windows) if len(part)] or [pd.DataFrame()], ignore_index=True)
        ordered = pd.concat([ordered.iloc[:0], *parts], ignore_index=True)
    scored_rows, trades, attempts = [], [], []
    busy_until = -1
    for setup, score in zip(ordered.itertuples(index=False), scores.itertuples(index=False)):
        scored_rows.append({**setup._asdict(), **score._asdict()})
        if score.status != "confirmed" or setup.known_at_ms <= busy_until:
            continue
        trade, closed_ms = _trade(setup, score, capital, fills, trading, interval_ms)
        if trade is None:
            continue
        busy_until = closed_ms
        attempts.append(_attempt(setup, trade, closed_ms))
        if trade.state != TradeState.CLOSED:
            continue
        result = trade_result(trade)
        capital += result.net_pnl
        equity_points[int(trade.closed_ms)] = float(capital)
        trades.append({"signal_id": setup.signal_id, "strategy": setup.strategy, "direction": setup.direction,
                       "score": float(score.score), **{c: float(getattr(score, c)) for c in TRADE_COLUMNS[4:9]},
                       "entry_time_ms": int(trade.opened_ms), "entry_price": result.entry_average,
                       "quantity": result.amount, "exit_time_ms": int(trade.closed_ms),
                       "exit_price": result.exit_average, "exit_reason": result.exit_reason,
                       "tp1_hit": result.tp1_hit, "fees": result.fees, "pnl": result.gross_pnl,
                       "net_pnl": result.net_pnl, "r_multiple": result.r_multiple})
    if len(bars):
        equity_points.setdefault(int(bars.close_time_ms.iloc[-1]), float(capital))
    return SeriesBacktest(pd.DataFrame(scored_rows), pd.DataFrame(trades, columns=TRADE_COLUMNS),
                          pd.Series(equity_points).sort_index(), pd.DataFrame(attempts, columns=ATTEMPT_COLUMNS))


def _attempt(setup, trade: Trade, ended_ms: int) -> dict:
    """An entry order and what became of it; prices as text (exact Decimals), fills as [leg, price, time]."""
    return {"signal_id": setup.signal_id, "placed_ms": int(setup.known_at_ms), "ended_ms": int(ended_ms),
            "state": trade.state.value, "direction": trade.direction, "reference_price": str(setup.entry_price),
            "entry_price": str(trade.entry_price), "sl_price": str(trade.initial_sl),
            "tp1_price": str(trade.tp1_price), "tp2_price": str(trade.tp2_price), "amount": str(trade.amount),
            "fills": json.dumps([[f.leg, str(f.price), int(f.time_ms)] for f in trade.fills])}


def _score_as_known(exchange: str, symbol: str, interval: str, setups: pd.DataFrame, zones: pd.DataFrame,
                    trading: TradingConfig, calibration: Calibration, config) -> pd.DataFrame:
    """`score_signals` for every setup in one call, each with its zone as known at the setup's own
    time (the zone's latest version by then). Several setups can share a zone at different
    versions, so each setup's zone row travels under the setup's id. Rows in the setups' order."""
    if setups.empty:
        return pd.DataFrame()
    versions = zones.sort_values(["known_at_ms", "version"], kind="stable")
    keys = setups[["signal_id", "zone_id", "known_at_ms"]].sort_values("known_at_ms", kind="stable")
    zone_now = pd.merge_asof(keys, versions.drop(columns=["signal_id"], errors="ignore"), on="known_at_ms",
                             by="zone_id", allow_exact_matches=True)
    zone_now = zone_now[zone_now.status.notna()].assign(zone_id=lambda z: z.signal_id)
    signals = setups.assign(exchange=exchange, symbol=symbol, interval=interval, status="pending",
                            zone_id=setups.signal_id)
    scored = score_signals(signals, _NO_BARS, zone_now, _NO_SENTIMENT, trading, calibration, config)
    return scored.set_index("signal_id").loc[setups.signal_id].reset_index()


def analyze(exchange: str, symbol: str, interval: str, bars: pd.DataFrame, params: AnalyticsParams):
    """(structure events with their ids, zone versions) of one series' whole history."""
    events, zones, _ = analyze_series(bars, None, params, INTERVAL_MS[interval])
    # Zone ids as the stream stores them (streaming/analytics.py: the series, then the zone's
    # own id): a setup's signal id derives from its zone's, so the backtest's signals carry the
    # live ids, and simultaneous setups are taken in the same (known_at_ms, signal_id) order.
    zones = zones.assign(zone_id=f"{exchange}:{symbol}:{interval}:" + zones.zone_id.astype(str))
    return events.assign(event_id=[f"{exchange}:{symbol}:{interval}:{t}:{b}"
                                   for t, b in zip(events.event_type, events.bar_time_ms)]), zones


def _trade(setup, score, capital: Decimal, fills: FillBars, trading: TradingConfig, interval_ms: int):
    """The confirmed setup's trade from the bar after it became known: (trade, when it ended)."""
    entry = Decimal(str(setup.entry_price))
    rules = paper_market_rules(entry)
    entry = round_price(entry, rules)
    stop = round_stop(Decimal(str(score.sl_price)), setup.direction, rules)
    size = position_size(capital, Decimal(str(trading.risk_per_trade_pct)), entry, stop, rules,
                         Decimal(str(trading.max_leverage)), Decimal(str(trading.max_total_exposure_pct)), Decimal(0))
    if size.refusal:
        return None, -1
    trade = new_trade(setup.signal_id, setup.direction, entry, stop, round_price(Decimal(str(score.tp1_price)), rules),
                      round_price(Decimal(str(score.tp2_price)), rules), size.amount)
    costs = Costs(Decimal(str(trading.maker_fee_pct)), Decimal(str(trading.taker_fee_pct)),
                  Decimal(str(trading.slippage_bps)))
    # Live from the first whole bar after the setup's close, as the paper exchange places it.
    start = int(np.searchsorted(fills.open_time_ms, setup.known_at_ms, side="right"))
    # The timeout counts the setup's bars, as the position manager does, whatever bars fill it.
    timeout_fill_bars = trading.entry_timeout_bars * interval_ms // fills.bar_ms
    return trade_through_bars(trade, fills, start, costs, rules, Decimal(str(trading.tp1_close_pct)),
                              trading.move_sl_to_breakeven, timeout_fill_bars)


@dataclass(frozen=True)
class FillBars:
    """The bars a trade is filled on, as arrays (prices as floats, read back exactly as Decimal(str(x)))."""
    open_time_ms: np.ndarray
    close_time_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray

    @classmethod
    def from_frame(cls, bars: pd.DataFrame) -> FillBars:
        bars = bars.sort_values("open_time_ms")
        return cls(*(bars[c].to_numpy(dtype="int64") for c in ("open_time_ms", "close_time_ms")),
                   *(bars[c].to_numpy(dtype="float64") for c in ("open", "high", "low")))

    def __len__(self) -> int:
        return len(self.open_time_ms)

    @property
    def bar_ms(self) -> int:
        """The bars' length (1m bars: 60,000)."""
        return int(self.close_time_ms[0] - self.open_time_ms[0] + 1) if len(self) else 1


def trade_through_bars(trade: Trade, bars: FillBars, start: int, costs: Costs, rules: MarketRules,
                       tp1_close_pct: Decimal, move_sl_to_breakeven: bool,
                       entry_timeout_bars: int) -> tuple[Trade, int]:
    """`paper_bar` over bars[start:] until the trade is closed or cancelled: (trade, the last bar's close
    time). A bar that reaches neither the stop nor the next target leaves an open trade as it is, so
    such bars are skipped in bulk; the float test can only over-select (rounding is monotonic), and
    every selected bar goes through paper_bar's exact Decimal rules."""
    n = start
    while n < len(bars):
        if trade.state in (TradeState.OPEN, TradeState.TP1_DONE):
            n = _next_bar_reaching(bars, n, trade)
            if n >= len(bars):
                break
        trade = paper_bar(trade, Decimal(str(bars.open[n])), Decimal(str(bars.high[n])), Decimal(str(bars.low[n])),
                          int(bars.close_time_ms[n]), costs, rules, tp1_close_pct, move_sl_to_breakeven,
                          entry_timeout_bars)
        if trade.state in (TradeState.CLOSED, TradeState.CANCELLED):
            return trade, int(bars.close_time_ms[n])
        n += 1
    return trade, int(bars.close_time_ms[-1]) if len(bars) else -1  # still open at the end of the data


def _next_bar_reaching(bars: FillBars, n: int, trade: Trade) -> int:
    """The first bar from n whose range reaches the open trade's stop or next target (len(bars) if none)."""
    target = trade.tp1_price if trade.state == TradeState.OPEN else trade.tp2_price
    if trade.direction == LONG:
        low_level, high_level = float(trade.sl_price), float(target)
    else:
        low_level, high_level = float(target), float(trade.sl_price)
    size = 64
    while n < len(bars):
        end = min(n + size, len(bars))
        reached = (bars.low[n:end] <= low_level) | (bars.high[n:end] >= high_level)
        if reached.any():
            return n + int(reached.argmax())
        n, size = end, size * 4
    return len(bars)


_NO_BARS = pd.DataFrame(columns=["signal_id", "bars", "max_high", "min_low", "last_close_ms"])
_NO_SENTIMENT = pd.DataFrame(columns=["exchange", "symbol", "known_at_ms", "sentiment_score", "confidence"])
