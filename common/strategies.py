"""The two strategies: from the analytics of one series (exchange, symbol, interval) to trade
setups. Pure pandas, shared verbatim by the stream (streaming/signals.py), the scanner job and
the backtester, so a backtest trades exactly what the live pipeline would have found.

- `smc`: after a break of structure (BOS or CHoCH) price pulls back into a zone on the side of
  the new structure: a demand zone touched after a bullish break is a long, a supply zone
  touched after a bearish break a short. The break must be known before the touching bar
  closes and be at most `max_break_age_bars` old.
- `liquidity`: a liquidity pool (a zone of two or more equal highs or lows) is swept, a wick
  through and a close back: a swept demand pool is a long, a swept supply pool a short.

In both the entry is the zone's POC, and a setup is known at the close of the bar that
triggered it (the zone version's `known_at_ms`); the zone version itself says that its bar
touched or swept it (`touched_now`, `swept_now`). Only rows known by then are used: the
break and the zones that give the targets; the higher timeframes of the confluence only
from rows known strictly before (a higher bar closing at the same instant may not have been
written yet when the stream finds the setup, so neither the stream nor a batch run uses it).
Everything a setup uses lies within `lookback_bars` bars before it, which is what lets the
stream read a bounded slice of the tables and still find exactly what a batch run finds.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from common.analytics.asof import LatestBreak, ZoneVersions
from common.analytics.confluence import CONFLUENCE_COLUMNS, add_confluence, higher_intervals
from common.intervals import INTERVAL_MS

LONG, SHORT = "long", "short"
MAX_TARGETS = 3

SIGNAL_COLUMNS = [
    "signal_id", "strategy", "direction", "trigger_bar_time_ms", "known_at_ms", "zone_id", "bos_event_id",
    "lineage", "entry_price", "zone_low", "zone_high", "atr", "target_levels", "zone_quality", "zone_touches",
    "zone_rejections", "side_rejections", "side_breaks", "bos_type", "bos_direction", "bos_distance_atr",
    "bos_age_bars", *CONFLUENCE_COLUMNS, "htf_count",
]


@dataclass(frozen=True)
class ScanParams:
    max_break_age_bars: int = 50  # an smc pullback must come this soon after its break
    lookback_bars: int = 500  # how far back targets, zone behaviour and confluence look

    @classmethod
    def from_config(cls, signals) -> ScanParams:
        """From the config's [signals] section (common.config.SignalsConfig)."""
        return cls(max_break_age_bars=signals.max_break_age_bars, lookback_bars=signals.lookback_bars)


def signal_id(strategy: str, exchange: str, symbol: str, interval: str, direction: str, zone_id: str,
              trigger_bar_time_ms: int) -> str:
    """Deterministic: the same setup found twice (a re-run, a replay) has the same id."""
    key = "|".join(str(p) for p in (strategy, exchange, symbol, interval, direction, zone_id, trigger_bar_time_ms))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def scan_series(exchange: str, symbol: str, interval: str, interval_ms: int, events: pd.DataFrame,
                zones: pd.DataFrame, params: ScanParams, strategies: tuple[str, ...], emit_from_ms: int = -1,
                htf_events: dict[str, pd.DataFrame] | None = None,
                htf_zones: dict[str, pd.DataFrame] | None = None,
                intervals: list[str] | None = None) -> pd.DataFrame:
    """Setups of one series triggered at or after `emit_from_ms` (bar close), one row each.

    events: gold.bos_warnings rows of the series; zones: its gold.liquidity_zones versions;
    htf_*: the same symbol and exchange's rows of other intervals, for the confluence;
    intervals: the configured ones (the confluence counts the higher among them)."""
    zone_versions = ZoneVersions(zones)
    versions = zone_versions.rows
    breaks = LatestBreak(events)
    triggers = []
    if "smc" in strategies:
        triggers.append(_smc_triggers(versions, breaks, interval_ms, params, emit_from_ms))
    if "liquidity" in strategies:
        triggers.append(_liquidity_triggers(versions, interval_ms, emit_from_ms))
    setups = pd.concat([t for t in triggers if len(t)], ignore_index=True) if any(len(t) for t in triggers) else None
    if setups is None:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    lookback_ms = params.lookback_bars * interval_ms
    rows = []
    entries = setups.poc_price.fillna((setups.zone_low + setups.zone_high) / 2)
    side_rejections, side_breaks = _side_counts(zone_versions, setups, lookback_ms)
    targets = _targets(zone_versions, setups, entries.to_numpy(dtype="float64"), lookback_ms)
    for n, (setup, entry) in enumerate(zip(setups.itertuples(index=False), entries)):
        # smc: the break that made the setup; liquidity: the latest break known, as context.
        bos = setup.bos if setup.strategy == "smc" else breaks.as_of(setup.known_at_ms, lookback_ms)
        rows.append({
            "signal_id": signal_id(setup.strategy, exchange, symbol, interval, setup.direction, setup.zone_id,
                                   setup.trigger_bar_time_ms),
            "strategy": setup.strategy, "direction": setup.direction,
            "trigger_bar_time_ms": int(setup.trigger_bar_time_ms), "known_at_ms": int(setup.known_at_ms),
            "zone_id": setup.zone_id, "bos_event_id": None if bos is None else bos.event_id,
            "lineage": json.dumps({"zone_id": setup.zone_id, "zone_known_at_ms": int(setup.known_at_ms),
                                   "bos_event_id": None if bos is None else bos.event_id,
                                   "bos_known_at_ms": None if bos is None else int(bos.known_at_ms)}),
            "entry_price": float(entry), "zone_low": float(setup.zone_low), "zone_high": float(setup.zone_high),
            "atr": None if pd.isna(setup.atr) else float(setup.atr),
            "target_levels": json.dumps(targets[n]),
            "zone_quality": float(setup.quality), "zone_touches": int(setup.touches),
            "zone_rejections": int(setup.rejections),
            "side_rejections": side_rejections[n], "side_breaks": side_breaks[n],
            "bos_type": None if bos is None else bos.event_type,
            "bos_direction": None if bos is None else bos.direction,
            "bos_distance_atr": None if bos is None or pd.isna(bos.distance_atr) else float(bos.distance_atr),
            "bos_age_bars": None if bos is None else int((setup.known_at_ms - bos.known_at_ms) // interval_ms),
        })
    out = pd.DataFrame(rows)
    return _confluence(out, interval, intervals or [interval], htf_events or {}, htf_zones or {},
                       params.lookback_bars)[SIGNAL_COLUMNS]


def _bar_open(known_at_ms: pd.Series, interval_ms: int) -> pd.Series:
    return known_at_ms - interval_ms + 1  # known at the close (open + interval - 1)


def _smc_triggers(versions: pd.DataFrame, latest_break: LatestBreak, interval_ms: int, params: ScanParams,
                  emit_from_ms: int) -> pd.DataFrame:
    touched = versions[_flag(versions.touched_now) & (versions.status == "active")
                       & (versions.known_at_ms >= emit_from_ms)]
    if touched.empty:
        return touched
    direction = []
    # Strictly before: the touching bar's own close cannot both break and pull back.
    breaks = latest_break.as_of_many(touched.known_at_ms.to_numpy(dtype="int64") - 1,
                                     params.max_break_age_bars * interval_ms)
    for zone_type, bos in zip(touched.zone_type, breaks):
        wanted = None if bos is None else ("demand" if bos.direction == "bullish" else "supply")
        direction.append((LONG if zone_type == "demand" else SHORT) if wanted == zone_type else None)
    out = touched.assign(direction=direction, strategy="smc", bos=pd.Series(breaks, index=touched.index, dtype=object))
    out = out[out.direction.notna()]
    return out.assign(trigger_bar_time_ms=_bar_open(out.known_at_ms, interval_ms))


def _liquidity_triggers(versions: pd.DataFrame, interval_ms: int, emit_from_ms: int) -> pd.DataFrame:
    swept = versions[versions.is_liquidity_pool.astype(bool) & _flag(versions.swept_now)
                     & (versions.status == "active") & (versions.known_at_ms >= emit_from_ms)]
    out = swept.assign(direction=np.where(swept.zone_type == "demand", LONG, SHORT), strategy="liquidity", bos=None)
    return out.assign(trigger_bar_time_ms=_bar_open(out.known_at_ms, interval_ms))


def _windows(zones: ZoneVersions, setups: pd.DataFrame, lookback_ms: int, rows=None):
    """(setup, row) pairs of each zone's newest version known within each setup's look-back, its
    own bar included (`ZoneVersions.latest_many`)."""
    known_at = setups.known_at_ms.to_numpy(dtype="int64")
    return zones.latest_many(known_at - lookback_ms + 1, known_at, include_until=True, rows=rows)


def _side_counts(zones: ZoneVersions, setups: pd.DataFrame, lookback_ms: int) -> tuple[list[int], list[int]]:
    """Per setup, the rejections and the breaks of the zones of its side in its look-back (NaN as
    0: sums of whole counts, exact in any order)."""
    rejections, breaks = (np.nan_to_num(zones.column(c)) for c in ("rejections", "breaks"))
    query, position = _windows(zones, setups, lookback_ms)
    same_side = zones.column("zone_type")[position] == setups.zone_type.to_numpy(dtype=object)[query]
    query, position = query[same_side], position[same_side]
    return tuple([int(v) for v in np.bincount(query, weights=counts[position], minlength=len(setups))]
                 for counts in (rejections, breaks))


def _targets(zones: ZoneVersions, setups: pd.DataFrame, entries: np.ndarray, lookback_ms: int) -> list[list[float]]:
    """Per setup, the next opposing liquidity beyond the entry, nearest first: for a long the lower
    edges of the active supply zones above it, for a short the upper edges of demand zones below."""
    long = (setups.direction == LONG).to_numpy()
    targets: list[list[float]] = [[] for _ in range(len(setups))]
    active = zones.equals("status", "active")
    for wanted, side, column in ((long, "supply", "zone_low"), (~long, "demand", "zone_high")):
        candidates = np.flatnonzero(active & zones.equals("zone_type", side))
        query, position = _windows(zones, setups, lookback_ms, rows=candidates)
        beyond = wanted[query]
        query, edges = query[beyond], zones.column(column)[position[beyond]]
        # Beyond the entry (NaN never is), nearest first: ascending above a long's, descending below a short's.
        beyond = np.where(long[query], edges > entries[query], edges < entries[query])
        query, edges = query[beyond], edges[beyond]
        order = np.lexsort((np.where(long[query], edges, -edges), query))
        for q, edge in zip(query[order].tolist(), edges[order].tolist()):
            if len(targets[q]) < MAX_TARGETS:
                targets[q].append(edge)
    return targets


def _confluence(signals: pd.DataFrame, interval: str, intervals: list[str], htf_events: dict, htf_zones: dict,
                lookback_bars: int) -> pd.DataFrame:
    higher = higher_intervals(interval, intervals)
    rows = signals.assign(zone_type=np.where(signals.direction == LONG, "demand", "supply"),
                          poc_price=signals.entry_price)
    rows = add_confluence(rows, interval, {h: htf_events.get(h, _no_events()) for h in higher},
                          {h: htf_zones.get(h, _no_zones()) for h in higher},
                          lookback_ms={h: lookback_bars * INTERVAL_MS[h] for h in higher})
    return rows.assign(htf_count=len(higher)).drop(columns=["zone_type", "poc_price"])


def _flag(column: pd.Series) -> pd.Series:
    """A flag column as plain booleans, a missing value as False (through pandas' nullable boolean,
    which fills without the object-dtype downcast pandas warns about)."""
    return column.astype("boolean").fillna(False).astype(bool)


def _no_events() -> pd.DataFrame:
    return pd.DataFrame(columns=["event_type", "direction", "known_at_ms"])


def _no_zones() -> pd.DataFrame:
    return pd.DataFrame(columns=["zone_id", "zone_type", "zone_low", "zone_high", "status", "value_area_low",
                                 "value_area_high", "known_at_ms"])
