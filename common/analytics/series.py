"""The analytics of one kline series (one exchange or the consolidated view, one symbol, one
interval), one bar at a time: ATR, structure events (BOS, CHoCH, warnings) and liquidity
zones, all from the same pass so that a swing opens its zone at the bar that confirms it.

`analyze_series(bars, state, params)` takes the bars after `state.last_bar_ms` plus up to
`params.lookback_bars` before them, and returns what those new bars made known and the state
to continue from. Called once over a whole history (a backtest) or once per micro-batch with
the state stored in between (the stream), it returns the same rows: the tests hold it to that.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from common.analytics.structure import (
    EVENT_COLUMNS, StructureState, Swing, average_true_range, copy_state, structure_bar, swing_flags,
)
from common.analytics.volume_profile import measure_between, volume_profiles
from common.analytics.zones import (
    ACTIVE, DEMAND, EXPIRED, SUPPLY, ZONE_COLUMNS, Zone, high_volume_nodes, join_swing, new_zone, track_bar,
    visible_changes, zone_bounds, zone_row,
)

BAR_COLUMNS = ["open_time_ms", "close_time_ms", "open", "high", "low", "close", "volume"]


@dataclass(frozen=True)
class AnalyticsParams:
    swing_strength: int = 5  # L: bars on each side of a swing point
    atr_period: int = 14
    warning_atr: float = 0.5  # an approach warning within this many ATRs of an unbroken swing
    profile_window_bars: int = 200  # N: the volume profile's rolling window
    profile_bins: int = 50  # B
    profile_step_bars: int = 50  # how often high-volume nodes are looked for
    cluster_atr: float = 0.25  # swings this close (in ATRs) form one zone: a liquidity pool
    max_active_zones: int = 20  # per side; the oldest expires beyond it

    @classmethod
    def from_config(cls, analytics, interval: str) -> AnalyticsParams:
        """One interval's parameters from the config's [analytics] section (common.config.AnalyticsConfig):
        its defaults, then the interval's own values."""
        return cls(**{**analytics.defaults, **analytics.by_interval.get(interval, {})})

    @property
    def lookback_bars(self) -> int:
        """Bars before the first new one that the new ones need to be computed exactly."""
        return max(self.profile_window_bars, 2 * self.swing_strength, self.atr_period)


@dataclass
class SeriesState:
    last_bar_ms: int | None = None  # open time of the last bar analysed
    structure: StructureState = field(default_factory=StructureState)
    zones: list[Zone] = field(default_factory=list)  # active zones, oldest first
    # Open time of the first of the last `lookback_bars` bars: where the next run's look-back
    # starts. Counted in bars, not time, so that a gap in the series changes nothing.
    lookback_from_ms: int | None = None

    def to_json(self) -> str:
        return json.dumps({"last_bar_ms": self.last_bar_ms, "lookback_from_ms": self.lookback_from_ms,
                           "trend": self.structure.trend,
                           "last_high": _plain(self.structure.last_high), "last_low": _plain(self.structure.last_low),
                           "swings": [_plain(s) for s in self.structure.swings],
                           "zones": [_plain(z) for z in self.zones]})

    @classmethod
    def from_json(cls, text: str | None) -> SeriesState:
        if not text:
            return cls()
        raw = json.loads(text)
        swing = (lambda d: Swing(**d) if d else None)
        structure = StructureState(raw["trend"], swing(raw["last_high"]), swing(raw["last_low"]),
                                   [Swing(**d) for d in raw["swings"]])
        return cls(raw["last_bar_ms"], structure, [Zone(**d) for d in raw["zones"]], raw.get("lookback_from_ms"))


def lookback_start_ms(state_json: str | None, params: AnalyticsParams, interval_ms: int) -> int | None:
    """The open time from which a run continuing this stored state must read its bars (None: a
    new series, read it all). A state stored before it recorded the start: the look-back's
    span in time, which is the same when the series has no gap."""
    if not state_json:
        return None
    raw = json.loads(state_json)
    if raw.get("lookback_from_ms") is not None:
        return int(raw["lookback_from_ms"])
    return None if raw["last_bar_ms"] is None else raw["last_bar_ms"] - params.lookback_bars * interval_ms


def _plain(value) -> dict | None:
    if value is None:
        return None
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in asdict(value).items()}


def analyze_series(bars: pd.DataFrame, state: SeriesState | None, params: AnalyticsParams,
                   interval_ms: int) -> tuple[pd.DataFrame, pd.DataFrame, SeriesState]:
    """(structure events, zone versions, new state) for the bars newer than the state's."""
    state = state or SeriesState()
    bars = bars.sort_values("open_time_ms").drop_duplicates("open_time_ms", keep="last").reset_index(drop=True)
    opens = bars["open_time_ms"].to_numpy()
    new_from = int(np.searchsorted(opens, state.last_bar_ms, side="right")) if state.last_bar_ms is not None else 0
    if new_from >= len(bars):
        return _frame([], EVENT_COLUMNS), _frame([], ZONE_COLUMNS), state
    bars = bars.iloc[max(0, new_from - params.lookback_bars):].reset_index(drop=True)
    new_from = min(new_from, params.lookback_bars)

    high, low, close, open_ = (bars[c].to_numpy(dtype=float) for c in ("high", "low", "close", "open"))
    volume = bars["volume"].to_numpy(dtype=float)
    # Whole milliseconds (zone and event ids are made of them), whatever dtype the frame came in.
    open_ms, close_ms = bars["open_time_ms"].to_numpy(dtype="int64"), bars["close_time_ms"].to_numpy(dtype="int64")
    atr = average_true_range(high, low, close, params.atr_period)
    is_high, is_low = swing_flags(high, low, params.swing_strength)
    # The bar loop reads plain Python lists: indexing a numpy array hands out numpy scalars, whose
    # every comparison costs a microsecond. The values are the same doubles.
    highs, lows, closes, atrs = high.tolist(), low.tolist(), close.tolist(), atr.tolist()
    opens_ms, closes_ms = open_ms.tolist(), close_ms.tolist()
    atr_known = np.isfinite(atr) & (atr > 0)
    swing_high, swing_low = is_high.tolist(), is_low.tolist()
    profile_step = (open_ms // interval_ms) % params.profile_step_bars == 0
    profiles = _profiles_needed(high, low, volume, is_high | is_low, atr_known, profile_step, new_from, params)
    nodes, measured = _new_zone_measures(profiles, open_.tolist(), highs, lows, closes, atrs, swing_high, swing_low,
                                         profile_step, params)
    atr_known = atr_known.tolist()
    structure = copy_state(state.structure)
    zones = list(state.zones)
    events: list[dict] = []
    versions: list[tuple] = []  # rows of ZONE_COLUMNS
    may_exceed = True  # zones were added since the last expiry (or none ran yet): see _expire_oldest

    for t in range(new_from, len(bars)):
        known_at = closes_ms[t]
        h, lo, c = highs[t], lows[t], closes[t]
        # Zones known before this bar see it: touches, rejections, sweeps, breaks.
        tracked = []
        for zone in zones:
            # track_bar's own first test, inlined: a zone out of a visit that the bar does not
            # reach is unchanged, as most are on most bars.
            if not zone.in_visit and zone.status == ACTIVE and not (
                    lo <= zone.zone_high if zone.zone_type == DEMAND else h >= zone.zone_low):
                tracked.append(zone)
                continue
            after = track_bar(zone, h, lo, c)
            if visible_changes(zone, after):
                after = _write(versions, after, known_at, interval_ms, atrs[t], before=zone)
            if after.status == ACTIVE:
                tracked.append(after)
        zones = tracked
        confirmed = structure_bar(structure, events, t, highs, lows, closes, opens_ms, closes_ms, atrs, swing_high,
                                  swing_low, params.swing_strength, params.warning_atr)
        if not atr_known[t]:
            continue  # zones are measured in ATRs: none before the ATR is known
        profile = profiles.get(t)  # there is one when a swing is confirmed or on a profile step
        if profile is not None:
            first = max(0, t - params.profile_window_bars + 1)
            window = (t - first + 1, opens_ms[first], known_at)
            for swing in confirmed:
                zones = _add_swing_zone(zones, versions, swing, (open_ms, open_, high, low, close), profile, window,
                                        atrs[t], params, known_at, interval_ms, measured[t, swing.kind])
                may_exceed = True
            if t in nodes:
                count = len(zones)
                zones = _add_volume_zones(zones, versions, profile, window, c, atrs[t], opens_ms[t], known_at,
                                          interval_ms, t, nodes[t], measured)
                may_exceed = may_exceed or len(zones) > count
        if may_exceed:
            # Only an added zone can take a side over the limit (tracking only removes zones).
            zones = _expire_oldest(zones, versions, params.max_active_zones, known_at, interval_ms, atrs[t])
            may_exceed = False

    new_state = SeriesState(int(open_ms[-1]), structure, zones,
                            int(open_ms[max(0, len(open_ms) - params.lookback_bars)]))
    return _frame(events, EVENT_COLUMNS), _frame(versions, ZONE_COLUMNS), new_state


def _profiles_needed(high, low, volume, swing_bar, atr_known, profile_step, new_from: int,
                     params: AnalyticsParams) -> dict:
    """{bar: the volume profile of the window ending at it} for the bars from new_from that read one:
    with the ATR known, a bar confirming a swing (the bar `swing_strength` before it is one) or a
    profile step with a full window. Computed together (`volume_profiles`); each from its own
    window, the bars up to the one it is for."""
    n, strength = len(high), params.swing_strength
    confirms = np.zeros(n, dtype=bool)
    if n > strength:  # (with fewer bars than L, no swing can be confirmed yet)
        confirms[strength:] = swing_bar[:n - strength]
    full = np.arange(n) + 1 >= params.profile_window_bars
    needed = atr_known & (confirms | (profile_step & full))
    needed[:new_from] = False
    ends = np.flatnonzero(needed)
    return dict(zip(ends.tolist(), volume_profiles(high, low, volume, ends, params.profile_window_bars,
                                                   params.profile_bins)))


def _new_zone_measures(profiles: dict, opens, highs, lows, closes, atrs, swing_high, swing_low, profile_step,
                       params: AnalyticsParams) -> tuple[dict, dict]:
    """The zones each bar with a profile could open, measured against its profile together
    (`measure_between`): whether one is opened depends on the zones of the moment, not its
    measures. ({bar: its high-volume nodes}, for a profile step with a full window; {(bar, "high" |
    "low"): the measures of the zone of the swing it confirms, (bar, node): of a node's zone})."""
    keys, ranges, nodes = [], [], {}
    for t, profile in profiles.items():
        i = t - params.swing_strength  # the bar whose swing bar t confirms
        for kind, zone_type, is_swing in (("low", DEMAND, swing_low), ("high", SUPPLY, swing_high)):
            if i >= 0 and is_swing[i]:
                keys.append((t, kind))
                ranges.append((profile, *zone_bounds(zone_type, *_swing_body(zone_type, i, opens, highs, lows,
                                                                             closes), atrs[t])[:2]))
        if profile_step[t] and t + 1 >= params.profile_window_bars:
            nodes[t] = high_volume_nodes(profile)
            for node in nodes[t]:
                node_zone = _node_zone(profile, node, closes[t])
                if node_zone is not None:
                    keys.append((t, node))
                    ranges.append((profile, *zone_bounds(*node_zone, atrs[t])[:2]))
    volumes, pocs = measure_between(*zip(*ranges)) if ranges else ([], [])
    return nodes, dict(zip(keys, zip(volumes, pocs)))


def _add_swing_zone(zones, versions, swing: Swing, bars: tuple[np.ndarray, ...], profile, window, atr, params,
                    known_at, interval_ms, measured):
    """bars: (open_time_ms, open, high, low, close) arrays of the series; measured: the new zone's
    (volume, POC), should the swing open one."""
    zone_type = DEMAND if swing.kind == "low" else SUPPLY
    open_ms, open_, high_, low_, close_ = bars
    i = int(np.searchsorted(open_ms, swing.time_ms))
    low, high = _swing_body(zone_type, i, open_, high_, low_, close_)
    for n, zone in enumerate(zones):
        if (zone.zone_type == zone_type and zone.source == "swing"
                and abs(zone.level - swing.level) <= params.cluster_atr * atr):
            joined = _write(versions, join_swing(zone, swing.level, low, high, profile, atr), known_at, interval_ms,
                            atr)
            return zones[:n] + zones[n + 1:] + [joined]
    zone = new_zone(zone_type, "swing", low, high, swing.level, profile, window, atr, known_at, swing.time_ms,
                    measured)
    zone = _write(versions, zone, known_at, interval_ms, atr)
    return zones + [zone]


def _add_volume_zones(zones, versions, profile, window, close, atr, bar_time_ms, known_at, interval_ms, t: int,
                      nodes, measured):
    """nodes: the profile's high-volume nodes; measured: {(bar, node): the node's zone's (volume, POC)}."""
    for node in nodes:
        node_zone = _node_zone(profile, node, close)
        if node_zone is None:
            continue
        zone_type, low, high = node_zone
        if any(z.zone_type == zone_type and z.zone_low <= high and low <= z.zone_high for z in zones):
            continue
        zone = new_zone(zone_type, "volume", low, high, (low + high) / 2, profile, window, atr, known_at,
                        bar_time_ms * 1000 + node, measured[t, node])  # one id per node and refresh
        zone = _write(versions, zone, known_at, interval_ms, atr)
        zones = zones + [zone]
    return zones


def _swing_body(zone_type: str, i: int, opens, highs, lows, closes) -> tuple[float, float]:
    """A swing bar's zone before padding: from its low to the bottom of its body (demand), or
    from the top of its body to its high (supply). Shared by the zone and its early measure."""
    if zone_type == DEMAND:
        return float(lows[i]), float(min(opens[i], closes[i]))
    return float(max(opens[i], closes[i])), float(highs[i])


def _node_zone(profile, node: int, close: float) -> tuple[str, float, float] | None:
    """(zone type, low, high) of a high-volume node's zone: demand below the close, supply above;
    None when the close is inside the node (neither)."""
    low, high = float(profile.edges[node]), float(profile.edges[node + 1])
    if low <= close <= high:
        return None
    return (DEMAND if high < close else SUPPLY), low, high


def _expire_oldest(zones, versions, limit: int, known_at: int, interval_ms: int, atr: float):
    for side in (DEMAND, SUPPLY):
        side_zones = [z for z in zones if z.zone_type == side]
        for zone in side_zones[:max(0, len(side_zones) - limit)]:
            _write(versions, zone.evolve(status=EXPIRED), known_at, interval_ms, atr)
            zones = [z for z in zones if z.zone_id != zone.zone_id]
    return zones


def _write(versions: list[tuple], zone: Zone, known_at: int, interval_ms: int, atr: float,
           before: Zone | None = None) -> Zone:
    """Append the zone's next version; returns the zone numbered as written."""
    zone = zone.evolve(version=zone.version + 1)
    versions.append(zone_row(zone, known_at, interval_ms, atr, before))
    return zone


def _frame(rows: list, columns: list[str]) -> pd.DataFrame:
    """rows: dicts (keyed by the columns) or tuples (in their order); the same columns and dtypes."""
    return pd.DataFrame(rows, columns=columns)
