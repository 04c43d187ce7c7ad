"""Confluence: which higher timeframes agree with a structure event or a zone, as known
strictly before the row became known. Not at the same instant: a higher bar that closes with
the row's bar is written by the same micro-batch at best, so the stream could not rely on it;
leaving it out makes the stream and a batch run agree.

For a row of interval X and each configured interval H longer than X, on the same exchange
and symbol:
- trend: the last BOS or CHoCH on H known before then points the same way (bullish for a
  demand zone or a bullish event);
- zone: a zone of H on the same side, active by its highest version known before then,
  overlaps the row's price range (the zone's bounds; an event's level);
- value area: the row's price (a zone's POC, an event's close) lies in the value area of H's
  most recent profile known before then (the zones' profile with the latest window end).
Each is a count of agreeing higher intervals, with their names, for the scorer. With
`lookback_ms`, a higher interval's rows older than that before the row are not used (the
stream reads a bounded slice of the tables; this makes a batch run see the same).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from common.analytics.asof import BREAKS, ZoneVersions
from common.intervals import INTERVAL_MS

CONFLUENCE_COLUMNS = ["htf_trend_agree", "htf_zone_overlap", "htf_in_value_area", "confluence_intervals"]


def higher_intervals(interval: str, intervals: list[str]) -> list[str]:
    return sorted((i for i in intervals if INTERVAL_MS[i] > INTERVAL_MS[interval]), key=INTERVAL_MS.get)


def add_confluence(rows: pd.DataFrame, interval: str, events_by_interval: dict[str, pd.DataFrame],
                   zones_by_interval: dict[str, pd.DataFrame],
                   lookback_ms: dict[str, int] | None = None) -> pd.DataFrame:
    """rows: events (direction, level, bar_close) or zone versions (zone_type, zone_low,
    zone_high, poc_price), with known_at_ms. events/zones_by_interval: the same exchange and
    symbol's rows of each interval (any history; only what is known by each row is used)."""
    out = rows.copy()
    for column in CONFLUENCE_COLUMNS[:3]:
        out[column] = 0
    names: list[list[str]] = [[] for _ in range(len(out))]
    is_zone = "zone_type" in out.columns
    bullish = (out["zone_type"] == "demand") if is_zone else (out["direction"] == "bullish")
    low = out["zone_low"] if is_zone else out["level"]
    high = out["zone_high"] if is_zone else out["level"]
    price = out["poc_price"].fillna((out["zone_low"] + out["zone_high"]) / 2) if is_zone else out["bar_close"]
    for higher in higher_intervals(interval, list(set(events_by_interval) | set(zones_by_interval))):
        horizon = (lookback_ms or {}).get(higher)
        trend = _trend_as_of(out["known_at_ms"], events_by_interval.get(higher), horizon)
        agree_trend = (trend == np.where(bullish, "bullish", "bearish"))
        zones = zones_by_interval.get(higher)
        overlap = np.zeros(len(out), dtype=bool)
        in_value = np.zeros(len(out), dtype=bool)
        if zones is not None and not zones.empty:
            versions = ZoneVersions(zones)
            zone_low, zone_high = versions.column("zone_low"), versions.column("zone_high")
            va_low, va_high = versions.column("value_area_low"), versions.column("value_area_high")
            # Each version's side and status compared once, not once per row (object arrays).
            active_on = {side: versions.equals("status", "active") & versions.equals("zone_type", side)
                         for side in ("demand", "supply")}
            known_at = out["known_at_ms"].to_numpy(dtype="int64")
            since = None if horizon is None else known_at - horizon
            lo, hi, p = (np.asarray(v, dtype="float64") for v in (low, high, price))
            on_demand = np.asarray(bullish, dtype=bool)
            # Overlap: each row's side's active zones (by their newest version known before it).
            for side, rows in (("demand", np.flatnonzero(on_demand)), ("supply", np.flatnonzero(~on_demand))):
                query, position = versions.latest_many(None if since is None else since[rows], known_at[rows],
                                                       include_until=False, rows=np.flatnonzero(active_on[side]))
                row = rows[query]
                hits = (zone_low[position] <= hi[row]) & (zone_high[position] >= lo[row])
                overlap[row[hits]] = True
            # Value area: the newest profile among every zone's newest version known before the row.
            query, position = versions.latest_many(since, known_at, include_until=False)
            newest = versions.newest_profiles(query, position, len(out))
            found = newest >= 0
            chosen = np.where(found, newest, 0)
            with np.errstate(invalid="ignore"):
                in_value = found & ~np.isnan(va_low[chosen]) & (va_low[chosen] <= p) & (p <= va_high[chosen])
        out["htf_trend_agree"] += agree_trend.astype(int)
        out["htf_zone_overlap"] += overlap.astype(int)
        out["htf_in_value_area"] += in_value.astype(int)
        for n in np.flatnonzero(agree_trend | overlap | in_value):
            names[n].append(higher)
    out["confluence_intervals"] = [",".join(n) for n in names]
    return out


def _trend_as_of(times_ms: pd.Series, events: pd.DataFrame | None, horizon_ms: int | None) -> np.ndarray:
    if events is None or events.empty:
        return np.full(len(times_ms), None, dtype=object)
    breaks = events[events.event_type.isin(BREAKS)].sort_values("known_at_ms", kind="stable")
    if breaks.empty:
        return np.full(len(times_ms), None, dtype=object)
    position = np.searchsorted(breaks.known_at_ms.to_numpy(), times_ms.to_numpy(), side="left") - 1  # before
    directions = breaks.direction.to_numpy(dtype=object)
    known_at = breaks.known_at_ms.to_numpy()[np.clip(position, 0, None)]
    recent = np.ones(len(position), dtype=bool) if horizon_ms is None else (
        known_at >= times_ms.to_numpy() - horizon_ms)
    return np.where((position >= 0) & recent, directions[np.clip(position, 0, None)], None)
