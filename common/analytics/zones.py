"""Liquidity zones of one kline series: where price is expected to react, and how it has.

Zones are born two ways, each at the close of the bar that makes it known:
- from a confirmed swing: a swing low opens a demand zone from its low to the bottom of its
  body, a swing high a supply zone from the top of its body to its high (at least
  `MIN_WIDTH_ATR` wide). A swing within `cluster_atr` ATRs of an active zone's level of the
  same side joins it instead: two or more swings make the zone a liquidity pool (equal
  highs / lows, where stops rest);
- from the volume profile: every `profile_step_bars` bars (on the clock, so any chunking
  sees the same bars), a high-volume node (a bin holding at least `HVN_FACTOR` times the
  average bin, fuller than its neighbours) that no active zone covers becomes a demand zone
  below the close or a supply zone above it.

Each zone keeps its own POC (the fullest profile bin inside it: the entry the execution
engine uses), its volume and share of the window's volume, and its behaviour from the next
bar on (a demand zone; supply is the mirror):
- touch: a bar reaches the zone after a bar that did not (one per visit);
- rejection: a visit ends with a close back above the zone;
- sweep: a bar's low goes below the zone and it closes back at or above its low;
- break: a close below the zone; the zone is then `broken` and no longer followed.

Quality, 0-100, documented in `zone_quality`. Every change is a new version of the zone
(a row with the time it became known and its `version`, 1, 2, ...): what was written is never
rewritten, and "the zone as known at time t" is its highest version known by t (one bar can
write several versions of a zone: a touch, then a swing joining it). A version says what its
bar did (`touched_now`, `swept_now`), so a reader needs no earlier version to see a new touch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.analytics.volume_profile import Profile

DEMAND, SUPPLY = "demand", "supply"
ACTIVE, BROKEN, EXPIRED = "active", "broken", "expired"
MIN_WIDTH_ATR = 0.1
HVN_FACTOR = 1.5

ZONE_COLUMNS = ["zone_id", "zone_type", "source", "is_liquidity_pool", "swing_count", "zone_low", "zone_high",
                "level", "poc_price", "volume", "volume_share", "window_bars", "window_start_ms", "window_end_ms",
                "window_poc", "value_area_low", "value_area_high", "touches", "rejections", "sweeps", "breaks",
                "status", "quality", "created_ms", "age_bars", "atr", "known_at_ms", "version", "touched_now",
                "swept_now"]


@dataclass(frozen=True)
class Zone:
    zone_id: str
    zone_type: str  # demand | supply
    source: str  # swing | volume
    swing_count: int
    zone_low: float
    zone_high: float
    level: float  # the swing level (a pool's most extreme); the node's middle for a volume zone
    poc_price: float | None
    volume: float
    volume_share: float
    window_bars: int
    window_start_ms: int
    window_end_ms: int
    window_poc: float | None
    value_area_low: float | None
    value_area_high: float | None
    width_atr: float
    touches: int = 0
    rejections: int = 0
    sweeps: int = 0
    breaks: int = 0
    status: str = ACTIVE
    in_visit: bool = False
    created_ms: int = 0  # when it became known (the close of the bar that made it)
    version: int = 0  # versions written so far

    @property
    def is_liquidity_pool(self) -> bool:
        return self.swing_count >= 2

    def evolve(self, **changes) -> Zone:
        """A copy with these fields changed: `dataclasses.replace` without its per-call field
        introspection (a zone changes on most bars that reach it, tens of thousands of times a year)."""
        unknown = changes.keys() - self.__dict__.keys()
        if unknown:
            raise TypeError(f"Zone has no fields {sorted(unknown)}")
        copy = object.__new__(Zone)
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(changes)
        return copy


def zone_quality(zone: Zone) -> float:
    """0-100, the sum of:
    - volume, up to 30: its share of the window's volume, full marks at 20 %;
    - rejections, up to 25: (rejections + 1) / (touches + 2), so an untested zone gets half;
    - freshness, up to 15: full when untouched, 0 from the fourth touch;
    - width, up to 15: full up to 0.5 ATR, 0 from 1.5 ATR (a wide zone is a vague entry);
    - value, up to 15: 15 when it holds the window's POC, 7.5 when it overlaps the value area.
    A broken zone scores 0."""
    if zone.status == BROKEN:
        return 0.0
    volume = 30.0 * min(1.0, zone.volume_share / 0.20)
    rejections = 25.0 * (zone.rejections + 1) / (zone.touches + 2)
    freshness = 15.0 * max(0.0, 1.0 - zone.touches / 4)
    width = 15.0 * float(min(max(1.5 - zone.width_atr, 0.0), 1.0))  # np.clip's value, without its dispatch
    value = 0.0
    if zone.window_poc is not None and zone.zone_low <= zone.window_poc <= zone.zone_high:
        value = 15.0
    elif (zone.value_area_low is not None and zone.zone_high >= zone.value_area_low
          and zone.zone_low <= zone.value_area_high):
        value = 7.5
    return round(volume + rejections + freshness + width + value, 4)


def zone_row(zone: Zone, known_at_ms: int, interval_ms: int, atr: float, before: Zone | None = None) -> tuple:
    """The zone as known at a bar's close, with that bar's ATR (for stops placed beyond it);
    `before`: the zone before that bar's tracking, when this version comes from it. A tuple of
    ZONE_COLUMNS (a year writes tens of thousands: a dict per row costs more than the frame)."""
    z = zone
    return (z.zone_id, z.zone_type, z.source, z.is_liquidity_pool, z.swing_count, z.zone_low, z.zone_high, z.level,
            z.poc_price, z.volume, z.volume_share, z.window_bars, z.window_start_ms, z.window_end_ms, z.window_poc,
            z.value_area_low, z.value_area_high, z.touches, z.rejections, z.sweeps, z.breaks, z.status,
            zone_quality(z), z.created_ms, int((known_at_ms - z.created_ms) // interval_ms), float(atr),
            int(known_at_ms), z.version, before is not None and z.touches > before.touches,
            before is not None and z.sweeps > before.sweeps)


def zone_bounds(zone_type: str, low: float, high: float, atr: float) -> tuple[float, float, float]:
    """A new zone's (low, high, width): at least MIN_WIDTH_ATR ATRs wide, grown away from its
    side's edge."""
    width = max(high - low, MIN_WIDTH_ATR * atr)
    return (low, low + width, width) if zone_type == DEMAND else (high - width, high, width)


def new_zone(zone_type: str, source: str, low: float, high: float, level: float, profile: Profile,
             window: tuple[int, int, int], atr: float, created_ms: int, swing_time_ms: int,
             measured: tuple[float, float | None] | None = None) -> Zone:
    """window: (bars, start_ms, end_ms) of the profile the zone is measured against; measured:
    (volume, POC) of the zone's bounds in the profile, when already computed (`measure_between`)."""
    low, high, width = zone_bounds(zone_type, low, high, atr)
    total = profile.total
    volume, poc = measured if measured is not None else (profile.volume_between(low, high),
                                                         profile.poc_between(low, high))
    return Zone(
        zone_id=f"{zone_type}:{source}:{swing_time_ms}", zone_type=zone_type, source=source, swing_count=1,
        zone_low=float(low), zone_high=float(high), level=float(level), poc_price=poc,
        volume=volume, volume_share=volume / total if total > 0 else 0.0, window_bars=window[0],
        window_start_ms=window[1], window_end_ms=window[2], window_poc=profile.poc_price,
        value_area_low=profile.value_area_low, value_area_high=profile.value_area_high,
        width_atr=float(width / atr), created_ms=int(created_ms))


def join_swing(zone: Zone, level: float, low: float, high: float, profile: Profile, atr: float) -> Zone:
    """A swing joins a zone: its bounds grow to cover both, the level moves to the extreme."""
    zone_low, zone_high = min(zone.zone_low, low), max(zone.zone_high, high)
    total = profile.total
    volume = profile.volume_between(zone_low, zone_high)
    return zone.evolve(swing_count=zone.swing_count + 1, zone_low=zone_low, zone_high=zone_high,
                   level=min(zone.level, level) if zone.zone_type == DEMAND else max(zone.level, level),
                   poc_price=profile.poc_between(zone_low, zone_high), volume=volume,
                   volume_share=volume / total if total > 0 else 0.0, width_atr=float((zone_high - zone_low) / atr))


def track_bar(zone: Zone, high: float, low: float, close: float) -> Zone:
    """The zone after one more bar (created before it); the same object when nothing changed."""
    if zone.status != ACTIVE:
        return zone
    if zone.zone_type == DEMAND:
        reaches = low <= zone.zone_high
        through_wick, closes_through, closes_back_out = low < zone.zone_low, close < zone.zone_low, close > zone.zone_high
    else:
        reaches = high >= zone.zone_low
        through_wick, closes_through, closes_back_out = high > zone.zone_high, close > zone.zone_high, close < zone.zone_low
    if not reaches and not zone.in_visit:
        return zone  # far from it, as most bars are
    touches, rejections, sweeps, breaks = zone.touches, zone.rejections, zone.sweeps, zone.breaks
    in_visit, status = zone.in_visit, zone.status
    if reaches and not in_visit:
        touches += 1
        in_visit = True
    if closes_through:
        breaks += 1
        status = BROKEN
        in_visit = False
    else:
        if through_wick:
            sweeps += 1
        if in_visit and closes_back_out:
            rejections += 1
            in_visit = False
        elif not reaches:
            in_visit = False
    return zone.evolve(touches=touches, rejections=rejections, sweeps=sweeps, breaks=breaks, status=status,
                   in_visit=in_visit)


def high_volume_nodes(profile: Profile) -> list[int]:
    """Bins holding at least HVN_FACTOR x the average bin and more than each neighbour."""
    volumes = profile.volumes
    if profile.total <= 0:
        return []
    threshold = HVN_FACTOR * volumes.mean()
    padded = np.concatenate(([-np.inf], volumes, [-np.inf]))
    peaks = (volumes >= threshold) & (volumes > padded[:-2]) & (volumes >= padded[2:])
    return [int(i) for i in np.flatnonzero(peaks)]


def visible_changes(before: Zone, after: Zone) -> bool:
    """Whether a version must be written: a counter or the status changed (not the visit flag)."""
    return after is not before and (
        (before.touches, before.rejections, before.sweeps, before.breaks, before.status)
        != (after.touches, after.rejections, after.sweeps, after.breaks, after.status))
