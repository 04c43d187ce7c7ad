"""Market structure of one kline series: swing points, breaks of structure (BOS), changes of
character (CHoCH), and warnings when price approaches an unbroken swing level.

Causal by construction: a swing at bar i is only known at the close of bar i+L (it needs L
bars on its right), and every row carries `known_at_ms`, the close of the bar that made it
known. The state (`StructureState`) carries everything a later call needs, so running the
series in one call or in any number of chunks gives the same rows: that is how the stream
computes incrementally and the backtest in one go, with the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

BULLISH, BEARISH = "bullish", "bearish"
BOS, CHOCH, WARNING = "BOS", "CHOCH", "WARNING"

EVENT_COLUMNS = ["event_type", "direction", "level", "swing_time_ms", "swing_confirmed_ms", "bar_time_ms",
                 "bar_close", "distance_atr", "atr", "known_at_ms"]


@dataclass(frozen=True)
class Swing:
    kind: str  # "high" | "low"
    level: float
    time_ms: int  # open time of the swing bar
    confirmed_ms: int  # close time of the bar L later: when the swing became known
    warned: bool = False  # an approach warning was written for it already (once per swing)


@dataclass
class StructureState:
    trend: str | None = None
    last_high: Swing | None = None  # the latest confirmed swing high not yet broken
    last_low: Swing | None = None
    swings: list[Swing] = field(default_factory=list)  # every confirmed swing, newest last (bounded)


def swing_flags(high: np.ndarray, low: np.ndarray, strength: int) -> tuple[np.ndarray, np.ndarray]:
    """Bar i is a swing high if high[i] > each of the `strength` highs before it and >= each
    of the `strength` highs after it (the first of equal highs counts); mirror for lows.
    Bars without `strength` bars on both sides are never swings."""
    n = len(high)
    is_high = np.zeros(n, dtype=bool)
    is_low = np.zeros(n, dtype=bool)
    if n < 2 * strength + 1:
        return is_high, is_low
    windows_h = np.lib.stride_tricks.sliding_window_view(high, strength)  # windows_h[j] = high[j:j+strength]
    windows_l = np.lib.stride_tricks.sliding_window_view(low, strength)
    centre = np.arange(strength, n - strength)
    before_h, after_h = windows_h[centre - strength].max(axis=1), windows_h[centre + 1].max(axis=1)
    before_l, after_l = windows_l[centre - strength].min(axis=1), windows_l[centre + 1].min(axis=1)
    is_high[centre] = (high[centre] > before_h) & (high[centre] >= after_h)
    is_low[centre] = (low[centre] < before_l) & (low[centre] <= after_l)
    return is_high, is_low


def average_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, period: int) -> np.ndarray:
    """Mean of the true range over the last `period` bars (NaN until there are that many).
    A simple mean, not Wilder's smoothing: its memory is finite, so a value computed from a
    bounded look-back equals the one computed from the whole history."""
    previous_close = np.concatenate(([np.nan], close[:-1]))
    true_range = np.nanmax(np.vstack([high - low, np.abs(high - previous_close), np.abs(low - previous_close)]),
                           axis=0)
    true_range[0] = high[0] - low[0]
    return pd.Series(true_range).rolling(period, min_periods=period).mean().to_numpy()


def structure_events(bars: pd.DataFrame, state: StructureState, new_from: int, strength: int,
                     warning_atr: float, max_swings: int = 50) -> tuple[list[dict], StructureState]:
    """Events of the bars from position `new_from` on, and the new state.

    `bars` (open_time_ms, close_time_ms, high, low, close, atr; in time order) holds at least
    2 x `strength` bars before `new_from`: look-back for the swings the first new bars
    confirm. `state` is where the previous call left off. Events are dicts of EVENT_COLUMNS."""
    high, low, close = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
    open_ms, close_ms = bars["open_time_ms"].to_numpy(), bars["close_time_ms"].to_numpy()
    atr = bars["atr"].to_numpy(dtype=float)
    is_high, is_low = swing_flags(high, low, strength)
    state = copy_state(state)
    events: list[dict] = []
    for t in range(new_from, len(bars)):
        structure_bar(state, events, t, high, low, close, open_ms, close_ms, atr, is_high, is_low, strength,
                      warning_atr, max_swings)
    return events, state


def copy_state(state: StructureState) -> StructureState:
    return StructureState(state.trend, state.last_high, state.last_low, list(state.swings))


def structure_bar(state: StructureState, events: list, t: int, high, low, close, open_ms, close_ms, atr,
                  is_high, is_low, strength: int, warning_atr: float, max_swings: int = 50) -> list[Swing]:
    """Bar t's close: breaks of the known swings, then the swings it confirms (returned), then
    approach warnings. Updates `state` and appends to `events`."""
    _breaks(state, events, t, close[t], open_ms[t], close_ms[t], atr[t])
    confirmed = []
    i = t - strength  # the bar whose swing the close of bar t confirms
    if i >= 0 and (is_high[i] or is_low[i]):
        for kind, flags, level in (("high", is_high, high), ("low", is_low, low)):
            if flags[i]:
                swing = Swing(kind, float(level[i]), int(open_ms[i]), int(close_ms[t]))
                confirmed.append(swing)
                state.swings = (state.swings + [swing])[-max_swings:]
                if kind == "high":
                    state.last_high = swing
                else:
                    state.last_low = swing
    if state.last_high is not None or state.last_low is not None:  # else no swing to warn of
        _warnings(state, events, t, high[t], low[t], close[t], open_ms[t], close_ms[t], atr[t], warning_atr)
    return confirmed


def _event(event_type, direction, swing: Swing, bar_time_ms, bar_close, atr, known_at_ms) -> dict:
    distance = (bar_close - swing.level) / atr if atr and np.isfinite(atr) else None
    return {"event_type": event_type, "direction": direction, "level": swing.level, "swing_time_ms": swing.time_ms,
            "swing_confirmed_ms": swing.confirmed_ms, "bar_time_ms": int(bar_time_ms), "bar_close": float(bar_close),
            "distance_atr": None if distance is None else float(abs(distance)), "atr": None if not np.isfinite(atr)
            else float(atr), "known_at_ms": int(known_at_ms)}


def _breaks(state: StructureState, events: list, t: int, close, open_ms, close_ms, atr) -> None:
    # Bullish first: a close cannot be both above the last swing high and below the last swing low
    # unless the low sits above the high, where the bullish reading is the one taken.
    if state.last_high is not None and close > state.last_high.level:
        kind = CHOCH if state.trend == BEARISH else BOS
        events.append(_event(kind, BULLISH, state.last_high, open_ms, close, atr, close_ms))
        state.trend, state.last_high = BULLISH, None
    elif state.last_low is not None and close < state.last_low.level:
        kind = CHOCH if state.trend == BULLISH else BOS
        events.append(_event(kind, BEARISH, state.last_low, open_ms, close, atr, close_ms))
        state.trend, state.last_low = BEARISH, None


def _warnings(state: StructureState, events: list, t: int, high, low, close, open_ms, close_ms, atr,
              warning_atr: float) -> None:
    """Price closing within `warning_atr` ATRs of an unbroken swing level, once per swing."""
    if not math.isfinite(atr) or atr <= 0:  # math's test: np.isfinite's, on one number, at a tenth the cost
        return
    for name, direction in (("last_high", BULLISH), ("last_low", BEARISH)):
        swing: Swing | None = getattr(state, name)
        if swing is None or swing.warned:
            continue
        if abs(swing.level - close) <= warning_atr * atr:
            events.append(_event(WARNING, direction, swing, open_ms, close, atr, close_ms))
            setattr(state, name, replace(swing, warned=True))
