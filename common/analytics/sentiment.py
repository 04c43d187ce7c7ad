"""Sentiment of one symbol on one exchange, in [-100, 100], from the market data it has.

Components, each in [-1, 1] (positive = bullish), and their weights:
- funding (0.30): the funding rate's z-score against its own last `funding_window`
  readings, read contrarian: crowded longs pay high funding, so -tanh(z / 2);
- open interest vs price (0.30): over `change_window` periods, price up with open interest
  up is new money behind the move (+), price down with it up is new shorts (-); with open
  interest falling the move is positions closing, worth half: sign(dp) x min(1, |dp| / 1 %)
  x (1 or 0.5);
- long/short ratio (0.25), contrarian: more accounts long than short is bearish,
  -tanh(2 ln(ratio));
- taker buy ratio (0.15), where the exchange gives it: tanh(2 ln(buy / sell)).
The score is the weighted mean of the components present (x 100); `confidence` is the share of
the weights present (1 = every input). A missing input is left out and lowers the confidence;
no value is ever made up. A row is known at the end of its period (`known_at_ms`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

WEIGHTS = {"funding": 0.30, "open_interest": 0.30, "long_short": 0.25, "taker": 0.15}
SENTIMENT_COLUMNS = ["ts_ms", "funding_rate", "funding_zscore", "open_interest", "open_interest_change_pct",
                     "price_change_pct", "long_short_ratio", "taker_buy_ratio", "sentiment_score", "confidence",
                     "label", "known_at_ms"]


@dataclass(frozen=True)
class SentimentParams:
    period_ms: int = 3_600_000
    funding_window: int = 30  # readings
    change_window: int = 4  # periods
    bullish_above: float = 25.0
    bearish_below: float = -25.0

    @property
    def lookback_ms(self) -> int:
        """History a row needs: the funding window (8 h apart at most) and the change window."""
        return max(self.funding_window * 8 * 3_600_000, (self.change_window + 1) * self.period_ms)


def sentiment_scores(market: pd.DataFrame, closes: pd.DataFrame, params: SentimentParams) -> pd.DataFrame:
    """market: ts_ms, metric, value (funding_rate | open_interest | long_short_ratio |
    taker_buy_ratio); closes: close_time_ms, close of the series at the market period.
    One row per period that has at least one input."""
    if market.empty:
        return pd.DataFrame(columns=SENTIMENT_COLUMNS)
    wide = (market.pivot_table(index="ts_ms", columns="metric", values="value", aggfunc="last")
            .sort_index())
    for metric in ("funding_rate", "open_interest", "long_short_ratio", "taker_buy_ratio"):
        if metric not in wide:
            wide[metric] = np.nan
    frame = wide.reset_index()
    frame["known_at_ms"] = frame["ts_ms"] + params.period_ms

    funding = frame["funding_rate"]
    readings = funding.dropna()
    mean = readings.rolling(params.funding_window, min_periods=5).mean()
    std = readings.rolling(params.funding_window, min_periods=5).std(ddof=0)
    frame["funding_zscore"] = ((readings - mean) / std.replace(0, np.nan)).reindex(frame.index)

    back_ms = params.change_window * params.period_ms
    readings_oi = frame[["ts_ms", "open_interest"]].dropna()
    oi_before = _as_of(frame["ts_ms"] - back_ms, readings_oi, "ts_ms", "open_interest")
    frame["open_interest_change_pct"] = (frame["open_interest"] / oi_before - 1) * 100
    price = _as_of(frame["known_at_ms"], closes, "close_time_ms", "close")
    price_before = _as_of(frame["known_at_ms"] - back_ms, closes, "close_time_ms", "close")
    frame["price_change_pct"] = (price / price_before - 1) * 100

    components = pd.DataFrame({
        "funding": -np.tanh(frame["funding_zscore"] / 2),
        "open_interest": _oi_component(frame["price_change_pct"], frame["open_interest_change_pct"]),
        "long_short": -np.tanh(2 * np.log(frame["long_short_ratio"].where(frame["long_short_ratio"] > 0))),
        "taker": np.tanh(2 * np.log(frame["taker_buy_ratio"].where(frame["taker_buy_ratio"] > 0))),
    })
    weights = pd.Series(WEIGHTS)
    present = components.notna()
    weight_present = present.mul(weights, axis=1).sum(axis=1)
    weighted = components.fillna(0).mul(weights, axis=1).sum(axis=1)
    frame["sentiment_score"] = (100 * weighted / weight_present.replace(0, np.nan)).round(4)
    frame["confidence"] = weight_present.round(4)
    frame = frame[weight_present > 0].copy()
    frame["label"] = np.select([frame["sentiment_score"] >= params.bullish_above,
                                frame["sentiment_score"] <= params.bearish_below], ["bullish", "bearish"], "neutral")
    return frame[SENTIMENT_COLUMNS].reset_index(drop=True)


def _as_of(times_ms: pd.Series, rows: pd.DataFrame, time_column: str, value_column: str) -> pd.Series:
    """The last value known at each time (NaN before the first)."""
    if rows.empty:
        return pd.Series(np.nan, index=times_ms.index)
    known = rows.sort_values(time_column)
    position = np.searchsorted(known[time_column].to_numpy(), times_ms.to_numpy(), side="right") - 1
    values = known[value_column].to_numpy(dtype=float)
    return pd.Series(np.where(position >= 0, values[np.clip(position, 0, None)], np.nan), index=times_ms.index)


def _oi_component(price_change_pct: pd.Series, oi_change_pct: pd.Series) -> pd.Series:
    strength = np.minimum(1.0, price_change_pct.abs() / 1.0)
    conviction = np.where(oi_change_pct > 0, 1.0, 0.5)
    value = np.sign(price_change_pct) * strength * conviction
    return pd.Series(value, index=price_change_pct.index).where(price_change_pct.notna() & oi_change_pct.notna())
