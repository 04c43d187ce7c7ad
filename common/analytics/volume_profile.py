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

import numpy as np

VALUE_AREA_SHARE = 0.70


@dataclass(frozen=True)
class Profile:
    edges: np.ndarray  # bins + 1 price edges, ascending
    volumes: np.ndarray  # volume per bin
    poc_index: int | None
    value_area: tuple[int, int] | None  # first and last bin of the value area

    @property
    def total(self) -> float:
        return float(self.volumes.sum())

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
        widths = np.diff(self.edges)
        overlap = np.clip(np.minimum(self.edges[1:], high) - np.maximum(self.edges[:-1], low), 0, None)
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


def volume_profile(high: np.ndarray, low: np.ndarray, volume: np.ndarray, bins: int) -> Profile:
    high, low, volume = (np.asarray(x, dtype=float) for x in (high, low, volume))
    top, bottom = float(high.max()), float(low.min())
    edges = np.linspace(bottom, top, bins + 1)
    volumes = np.zeros(bins)
    if top == bottom:
        volumes[0] = volume.sum()  # the whole window at one price: one full bin
    else:
        ranged = high > low
        # Overlap of each bar's range with each bin, as a share of the bar's range.
        overlap = np.clip(np.minimum(high[ranged, None], edges[None, 1:])
                          - np.maximum(low[ranged, None], edges[None, :-1]), 0, None)
        volumes += (overlap / (high[ranged] - low[ranged])[:, None] * volume[ranged, None]).sum(axis=0)
        flat_bins = np.clip(np.searchsorted(edges, low[~ranged], side="right") - 1, 0, bins - 1)
        np.add.at(volumes, flat_bins, volume[~ranged])
    if volumes.sum() <= 0:
        return Profile(edges, volumes, None, None)
    poc = int(np.argmax(volumes))  # the first maximum: the lowest-priced of equal bins
    return Profile(edges, volumes, poc, _value_area(volumes, poc))


def _value_area(volumes: np.ndarray, poc: int) -> tuple[int, int]:
    target = VALUE_AREA_SHARE * volumes.sum()
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
