"""Volume profile of a window of bars: where the volume traded, its point of control (POC)
and its value area.

- Bins: `bins` equal bins over [lowest low, highest high] of the window.
- A bar's volume is spread over the bins its range [low, high] covers, in proportion to the
  overlap; a bar with high = low puts all of it in the bin holding that price.
- POC: the fullest bin; among equally full bins, the lowest-priced one.
- Value area: 70 % of the volume, grown from the POC one bin at a time towards the fuller
  neighbour (on a tie, upwards); VAL and VAH are its outer edges.
- A window without volume has no POC and no value area (None), and is not an error.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

VALUE_AREA_SHARE = 0.70


@dataclass(frozen=True)
class Profile:
    edges: np.ndarray  # bins + 1 price edges, ascending
    volumes: np.ndarray  # volume per bin
    poc_index: int | None
    value_area: tuple[int, int] | None  # first and last bin of the value area

    @cached_property  # read by every zone measured against the profile
    def total(self) -> float:
        return float(self.volumes.sum())

    @cached_property
    def _widths(self) -> np.ndarray:
        return np.diff(self.edges)

    @cached_property
    def _widths_positive(self) -> bool:
        return bool((self._widths > 0).all())

    @property
    def poc_price(self) -> float | None:
        """The POC bin's middle."""
        if self.poc_index is None:
            return None
        return float((self.edges[self.poc_index] + self.edges[self.poc_index + 1]) / 2)

    @property
    def value_area_low(self) -> float | None:
        return None if self.value_area is None else float(self.edges[self.value_area[0]])

    @property
    def value_area_high(self) -> float | None:
        return None if self.value_area is None else float(self.edges[self.value_area[1] + 1])

    def volume_between(self, low: float, high: float) -> float:
        """The volume of the bins' parts inside [low, high] (assumed evenly spread in a bin)."""
        widths = self._widths
        # np.maximum(x, 0) is what np.clip(x, 0, None) computes, without its dispatch.
        overlap = np.maximum(np.minimum(self.edges[1:], high) - np.maximum(self.edges[:-1], low), 0)
        if self._widths_positive:  # the usual case: np.divide's `where` would pick every bin
            shares = overlap / widths
        else:
            shares = np.divide(overlap, widths, out=(overlap > 0).astype(float), where=widths > 0)
        return float((self.volumes * shares).sum())

    def poc_between(self, low: float, high: float) -> float | None:
        """The middle of the fullest bin inside [low, high], clipped to it: a zone's own POC."""
        inside = np.flatnonzero((self.edges[1:] >= low) & (self.edges[:-1] <= high))
        if inside.size == 0 or self.total <= 0:
            return None
        best = inside[np.argmax(self.volumes[inside])]  # argmax takes the first (lowest) of ties
        middle = (self.edges[best] + self.edges[best + 1]) / 2
        return float(min(max(middle, low), high))


def measure_between(profiles: list[Profile], lows, highs) -> tuple[list[float], list[float | None]]:
    """([p.volume_between(low, high)], [p.poc_between(low, high)]) of each (profile, low, high),
    for many at once: the same expressions on a (range, bin) matrix, the same to the last bit (the
    sums run along each row, the fast axis, pairwise as a single row's own sum does). Profiles with
    a bin of no width are measured one by one (np.divide's `where` case)."""
    if not profiles:
        return [], []
    lows, highs = np.asarray(lows, dtype=float)[:, None], np.asarray(highs, dtype=float)[:, None]
    edges, volumes = np.stack([p.edges for p in profiles]), np.stack([p.volumes for p in profiles])
    overlap = np.maximum(np.minimum(edges[:, 1:], highs) - np.maximum(edges[:, :-1], lows), 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = overlap / (edges[:, 1:] - edges[:, :-1])
    between = (volumes * shares).sum(axis=1).tolist()
    inside = (edges[:, 1:] >= lows) & (edges[:, :-1] <= highs)
    best = np.argmax(np.where(inside, volumes, -np.inf), axis=1)  # the first (lowest) of the fullest inside
    rows = np.arange(len(profiles))
    middles = ((edges[rows, best] + edges[rows, best + 1]) / 2).tolist()
    any_inside = inside.any(axis=1).tolist()
    pocs = []
    for k, (profile, low, high) in enumerate(zip(profiles, lows[:, 0].tolist(), highs[:, 0].tolist())):
        if not profile._widths_positive:
            between[k] = profile.volume_between(low, high)
        pocs.append(float(min(max(middles[k], low), high)) if any_inside[k] and profile.total > 0 else None)
    return between, pocs


def _finite(high, low, volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bars as float arrays; a NaN or infinite price or volume is refused: it would put its
    bar in no bin (or another window's), and silver quarantines such klines before they get here."""
    high, low, volume = (np.asarray(x, dtype=float) for x in (high, low, volume))
    if not (np.isfinite(high).all() and np.isfinite(low).all() and np.isfinite(volume).all()):
        raise ValueError("volume profile: every bar's high, low and volume must be finite numbers")
    return high, low, volume


def volume_profile(high: np.ndarray, low: np.ndarray, volume: np.ndarray, bins: int) -> Profile:
    high, low, volume = _finite(high, low, volume)
    top, bottom = float(high.max()), float(low.min())
    edges = _edges(bottom, top, bins)
    if top == bottom:
        volumes = np.zeros(bins)
        volumes[0] = volume.sum()  # the whole window at one price: one full bin
    else:
        ranged = high > low
        every = bool(ranged.all())
        if not every:
            high, low, volume, flat_low, flat_volume = high[ranged], low[ranged], volume[ranged], low[~ranged], \
                volume[~ranged]
        volumes = _spread(high, low, volume, edges, bins)
        if not every:
            flat_bins = np.clip(np.searchsorted(edges, flat_low, side="right") - 1, 0, bins - 1)
            np.add.at(volumes, flat_bins, flat_volume)
    return _profile(edges, volumes)


def volume_profiles(high: np.ndarray, low: np.ndarray, volume: np.ndarray, ends, window_bars: int,
                    bins: int) -> list[Profile]:
    """The profile of each window of up to `window_bars` bars ending at a position in `ends`:
    `volume_profile(high[first:end + 1], ...)` with first = max(0, end - window_bars + 1), the
    same to the last bit, computed for many windows at once (a series' few thousand profiles
    cost about as much as a handful of single calls)."""
    high, low, volume = _finite(high, low, volume)
    ends = np.asarray(ends, dtype="int64")
    profiles: list[Profile] = []
    for start in range(0, len(ends), _WINDOWS_AT_ONCE):
        profiles += _profiles_of(high, low, volume, ends[start:start + _WINDOWS_AT_ONCE], window_bars, bins)
    return profiles


_WINDOWS_AT_ONCE = 256  # bounds the (window, bar) and (window, bar, bin) arrays to a few MB


def _profiles_of(high, low, volume, ends: np.ndarray, window_bars: int, bins: int) -> list[Profile]:
    firsts = np.maximum(ends - window_bars + 1, 0)
    lengths = ends - firsts + 1
    offsets = np.cumsum(lengths) - lengths  # where each window's bars start among the pairs
    # Every (window, bar) pair, window after window, each window's bars in time order.
    window = np.repeat(np.arange(len(ends)), lengths)
    bar = np.arange(len(window)) + np.repeat(firsts - offsets, lengths)
    pair_high, pair_low, pair_volume = high[bar], low[bar], volume[bar]
    tops, bottoms = np.maximum.reduceat(pair_high, offsets), np.minimum.reduceat(pair_low, offsets)
    # np.linspace(bottom, top, bins + 1) of every window at once, by linspace's own arithmetic
    # (i x step + start, the last edge set to the stop); a window at one price is done apart.
    edge_rows = np.arange(bins + 1, dtype=float) * ((tops - bottoms) / bins)[:, None] + bottoms[:, None]
    edge_rows[:, -1] = tops
    all_edges = edge_rows.ravel()
    pair_edges = window * (bins + 1)  # where each pair's window's edges start in all_edges
    ranged = pair_high > pair_low
    ranged_pairs = np.flatnonzero(ranged)
    first_bin = _count_edges(all_edges, pair_edges[ranged_pairs], pair_low[ranged_pairs], bins, "right") - 1
    last_bin = _count_edges(all_edges, pair_edges[ranged_pairs], pair_high[ranged_pairs], bins, "left") - 1
    # As `_spread`, for all the windows: each (bar, bin) pair that overlaps, summed per window and bin.
    counts = last_bin - first_bin + 1
    cell = np.repeat(ranged_pairs, counts)  # the (window, bar) pair of each (window, bar, bin) cell
    bin_ = np.arange(len(cell)) + np.repeat(first_bin - (np.cumsum(counts) - counts), counts)
    cell_window = window[cell]
    cell_high, cell_low, edge = pair_high[cell], pair_low[cell], cell_window * (bins + 1) + bin_
    overlap = np.maximum(np.minimum(cell_high, all_edges[edge + 1]) - np.maximum(cell_low, all_edges[edge]), 0)
    volumes = np.bincount(cell_window * bins + bin_, weights=overlap / (cell_high - cell_low) * pair_volume[cell],
                          minlength=len(ends) * bins)
    flat = np.flatnonzero(~ranged)
    if len(flat):  # bars with high = low: all their volume in the bin holding the price, after the rest
        flat_bins = np.clip(_count_edges(all_edges, pair_edges[flat], pair_low[flat], bins, "right") - 1, 0, bins - 1)
        np.add.at(volumes, window[flat] * bins + flat_bins, pair_volume[flat])
    volumes = volumes.reshape(len(ends), bins)
    profiles = []
    for k, (top, bottom) in enumerate(zip(tops.tolist(), bottoms.tolist())):
        if top == bottom:  # the whole window at one price
            profiles.append(volume_profile(high[firsts[k]:ends[k] + 1], low[firsts[k]:ends[k] + 1],
                                           volume[firsts[k]:ends[k] + 1], bins))
            continue
        profiles.append(_profile(edge_rows[k], volumes[k].copy()))
    return profiles


def _count_edges(all_edges: np.ndarray, starts: np.ndarray, values: np.ndarray, bins: int, side: str) -> np.ndarray:
    """np.searchsorted(edges, value, side) with each value's own edges (bins + 1 of them, ascending,
    from all_edges[start]): the number of edges at or below the value ("right") or below it
    ("left"). Guessed from the bins' width, then moved edge by edge to the exact count."""
    below = (lambda e, v: e <= v) if side == "right" else (lambda e, v: e < v)
    bottom, top = all_edges[starts], all_edges[starts + bins]
    with np.errstate(divide="ignore", invalid="ignore"):
        guess = np.floor((values - bottom) / (top - bottom) * bins)
    count = np.clip(np.nan_to_num(guess, nan=0.0), 0, bins + 1).astype("int64")
    while True:  # the count is right when the edge before it is below and the one at it is not
        low = (count > 0) & ~below(all_edges[starts + np.maximum(count - 1, 0)], values)
        high = (count <= bins) & below(all_edges[starts + np.minimum(count, bins)], values)
        if not (low.any() or high.any()):
            return count
        count = count - low + high


def _profile(edges: np.ndarray, volumes: np.ndarray) -> Profile:
    if volumes.sum() <= 0:
        return Profile(edges, volumes, None, None)
    poc = int(np.argmax(volumes))  # the first maximum: the lowest-priced of equal bins
    return Profile(edges, volumes, poc, _value_area(volumes, poc))


@lru_cache(maxsize=64)
def _edges(bottom: float, top: float, bins: int) -> np.ndarray:
    """The bins' edges; consecutive windows often share their lowest low and highest high."""
    edges = np.linspace(bottom, top, bins + 1)
    edges.flags.writeable = False  # shared between profiles
    return edges


def _spread(high: np.ndarray, low: np.ndarray, volume: np.ndarray, edges: np.ndarray, bins: int) -> np.ndarray:
    """Each bar's volume spread over the bins its range [low, high] (low < high) overlaps, in
    proportion to the overlap, summed per bin.

    Only the (bar, bin) pairs that overlap are computed, a few per bar rather than every bin:
    the others' share is 0, adding nothing. Each pair's share is the same expression as a dense
    (bars x bins) matrix's, and np.bincount adds them bar after bar as the matrix's column sums
    do (a sum over axis 0 runs row by row), so the volumes are the same to the last bit."""
    first = np.searchsorted(edges, low, side="right") - 1  # the bin holding the low
    last = np.searchsorted(edges, high, side="left") - 1  # the bin holding the high
    counts = last - first + 1
    bar = np.repeat(np.arange(len(high)), counts)
    bin_ = np.arange(len(bar)) + np.repeat(first - (np.cumsum(counts) - counts), counts)
    bar_high, bar_low = high[bar], low[bar]
    overlap = np.maximum(np.minimum(bar_high, edges[bin_ + 1]) - np.maximum(bar_low, edges[bin_]), 0)
    return np.bincount(bin_, weights=overlap / (bar_high - bar_low) * volume[bar], minlength=bins)


def _value_area(volumes: np.ndarray, poc: int) -> tuple[int, int]:
    target = VALUE_AREA_SHARE * volumes.sum()
    volumes = volumes.tolist()  # the same doubles, read one at a time
    first = last = poc
    covered = volumes[poc]
    while covered < target and (first > 0 or last < len(volumes) - 1):
        below = volumes[first - 1] if first > 0 else -1.0
        above = volumes[last + 1] if last < len(volumes) - 1 else -1.0
        if above >= below:
            last += 1
            covered += above
        else:
            first -= 1
            covered += below
    return first, last
