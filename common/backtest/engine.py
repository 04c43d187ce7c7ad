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

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from common.analytics.series import AnalyticsParams, analyze_series
from common.exchange.paper import paper_market_rules
from common.scoring import DEFAULT_CALIBRATION, Calibration, score_signals
from common.strategies import ScanParams, scan_series
from common.trade.lifecycle import Costs, TradeState, new_trade, paper_bar, trade_result
from common.trade.sizing import position_size, round_price, round_stop
from common.trading_config import TradingConfig

TRADE_COLUMNS = ["signal_id", "strategy", "direction", "score", "score_zone_quality", "score_bos", "score_confluence",
                 "score_sentiment", "score_zone_behaviour", "entry_time_ms", "entry_price", "quantity", "exit_time_ms",
                 "exit_price", "exit_reason", "tp1_hit", "fees", "pnl", "net_pnl", "r_multiple"]


@dataclass(frozen=True)
class SeriesBacktest:
    signals: pd.DataFrame  # every setup with the status its scoring gave it
    trades: pd.DataFrame  # TRADE_COLUMNS, one row per closed trade
    equity: pd.Series  # account value by epoch ms: the initial capital, then after each closed trade


def backtest_series(exchange: str, symbol: str, interval: str, interval_ms: int, bars: pd.DataFrame,
                    analytics: AnalyticsParams, scan: ScanParams, trading: TradingConfig, config,
                    calibration: Calibration = DEFAULT_CALIBRATION, minute_bars: pd.DataFrame | None = None,
                    initial_capital: Decimal | None = None,
                    other_intervals: dict[str, tuple[pd.DataFrame, AnalyticsParams]] | None = None,
                    analyses: dict[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None) -> SeriesBacktest:
    """bars (and minute_bars): open_time_ms, close_time_ms, open, high, low, close, volume;
    other_intervals: the symbol's bars of the other configured intervals with their analytics
    parameters, for the confirmation across timeframes the live scanner adds; analyses: the
    (events, zones) of `analyze` per interval when already computed (a grid reuses them)."""
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
    fills = (minute_bars if minute_bars is not None else bars).sort_values("open_time_ms").reset_index(drop=True)
    fill_open = fills.open_time_ms.to_numpy()
    scored_rows, trades = [], []
    busy_until = -1
    for setup in setups.sort_values(["known_at_ms", "signal_id"], kind="stable").itertuples(index=False):
        signal = pd.DataFrame([setup._asdict()]).assign(exchange=exchange, symbol=symbol, interval=interval,
                                                          status="pending")
        known = zones[zones.known_at_ms <= setup.known_at_ms].sort_values(["known_at_ms", "version"], kind="stable")
        zone_now = known[known.zone_id == setup.zone_id].tail(1)
        score = score_signals(signal, _NO_BARS, zone_now, _NO_SENTIMENT, trading, calibration, config).iloc[0]
        scored_rows.append({**setup._asdict(), **score.to_dict()})
        if score.status != "confirmed" or setup.known_at_ms <= busy_until:
            continue
        trade, closed_ms = _trade(setup, score, capital, fills, fill_open, trading)
        if trade is None:
            continue
        busy_until = closed_ms
        if trade.state != TradeState.CLOSED:
            continue
        result = trade_result(trade)
        capital += result.net_pnl
        equity_points[int(trade.closed_ms)] = float(capital)
        trades.append({"signal_id": setup.signal_id, "strategy": setup.strategy, "direction": setup.direction,
                       "score": float(score.score), **{c: float(score[c]) for c in TRADE_COLUMNS[4:9]},
                       "entry_time_ms": int(trade.opened_ms), "entry_price": result.entry_average,
                       "quantity": result.amount, "exit_time_ms": int(trade.closed_ms),
                       "exit_price": result.exit_average, "exit_reason": result.exit_reason,
                       "tp1_hit": result.tp1_hit, "fees": result.fees, "pnl": result.gross_pnl,
                       "net_pnl": result.net_pnl, "r_multiple": result.r_multiple})
    if len(bars):
        equity_points.setdefault(int(bars.close_time_ms.iloc[-1]), float(capital))
    return SeriesBacktest(pd.DataFrame(scored_rows), pd.DataFrame(trades, columns=TRADE_COLUMNS),
                          pd.Series(equity_points).sort_index())


def analyze(exchange: str, symbol: str, interval: str, bars: pd.DataFrame, params: AnalyticsParams):
    """(structure events with their ids, zone versions) of one series' whole history."""
    from common.config import INTERVAL_MS

    events, zones, _ = analyze_series(bars, None, params, INTERVAL_MS[interval])
    return events.assign(event_id=[f"{exchange}:{symbol}:{interval}:{t}:{b}"
                                   for t, b in zip(events.event_type, events.bar_time_ms)]), zones


def _trade(setup, score, capital: Decimal, fills: pd.DataFrame, fill_open: np.ndarray, trading: TradingConfig):
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
    for n in range(int(np.searchsorted(fill_open, setup.known_at_ms, side="right")), len(fills)):
        bar = fills.iloc[n]
        trade = paper_bar(trade, Decimal(str(bar.open)), Decimal(str(bar.high)), Decimal(str(bar.low)),
                          int(bar.close_time_ms), costs, rules, Decimal(str(trading.tp1_close_pct)),
                          trading.move_sl_to_breakeven, trading.entry_timeout_bars)
        if trade.state in (TradeState.CLOSED, TradeState.CANCELLED):
            return trade, int(bar.close_time_ms)
    return trade, int(fills.close_time_ms.iloc[-1]) if len(fills) else -1  # still open at the end of the data


_NO_BARS = pd.DataFrame(columns=["signal_id", "bars", "max_high", "min_low", "last_close_ms"])
_NO_SENTIMENT = pd.DataFrame(columns=["exchange", "symbol", "known_at_ms", "sentiment_score", "confidence"])
