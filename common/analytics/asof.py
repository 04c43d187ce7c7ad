"""As-of reads over the analytics' versioned rows: "each zone's newest version known in this
time window" and "the latest break known by then". The strategies and the confluence ask them
once per setup, and a backtest over a year asks thousands per series, so the rows are sorted
once and every read is a binary search plus a numpy slice rather than a pandas filter.

Order is the one every consumer uses: zone versions by (known_at_ms, version), events by
known_at_ms, ties kept in the rows' own order (a stable sort).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

BREAKS = ("BOS", "CHOCH")


_PAIRS_AT_ONCE = 1 << 20  # (window, row) pairs handled together by latest_many


class ZoneVersions:
    def __init__(self, zones: pd.DataFrame):
        order = ["known_at_ms"] + (["version"] if "version" in zones.columns else [])
        self.rows = zones.sort_values(order, kind="stable").reset_index(drop=True)
        self.known_at_ms = self.rows.known_at_ms.to_numpy(dtype="int64")
        zone = pd.factorize(self.rows.zone_id)[0] if len(self.rows) else np.empty(0, dtype="int64")
        # The position of each row's zone's next version (len(rows) for its last): a row is its
        # zone's newest version before `end` exactly when its next one is at or after `end`.
        self._next = np.full(len(zone), len(zone), dtype="int64")
        order = np.lexsort((np.arange(len(zone)), zone))  # by zone, then position
        same = zone[order][1:] == zone[order][:-1]
        self._next[order[:-1][same]] = order[1:][same]
        self._columns: dict[str, np.ndarray] = {}
        self._masks: dict[tuple, np.ndarray] = {}
        self._window_end: np.ndarray | None = None  # window_end_ms with the missing ones last (inf)

    def __len__(self) -> int:
        return len(self.rows)

    def latest(self, since_ms: int | None, until_ms: int, include_until: bool) -> np.ndarray:
        """Row positions (ascending) of each zone's newest version among those known at or after
        since_ms (None: from the start) and before until_ms (at it too with include_until)."""
        start = 0 if since_ms is None else int(np.searchsorted(self.known_at_ms, since_ms, side="left"))
        end = int(np.searchsorted(self.known_at_ms, until_ms, side="right" if include_until else "left"))
        if end <= start:
            return np.empty(0, dtype="int64")
        return start + np.flatnonzero(self._next[start:end] >= end)

    def latest_many(self, since_ms, until_ms, include_until: bool, rows=None):
        """`latest` of many windows at once: (query, row position) pairs, by query then position,
        of the rows `latest(since_ms[q], until_ms[q], include_until)` returns (since_ms None: from
        the start); `rows`: only these row positions (ascending) are candidates."""
        until_ms = np.asarray(until_ms, dtype="int64")
        end = np.searchsorted(self.known_at_ms, until_ms, side="right" if include_until else "left")
        start = np.zeros(len(end), dtype="int64") if since_ms is None else np.searchsorted(
            self.known_at_ms, np.asarray(since_ms, dtype="int64"), side="left")
        candidates = np.arange(len(self)) if rows is None else np.asarray(rows, dtype="int64")
        first, last = np.searchsorted(candidates, start), np.searchsorted(candidates, end)
        counts = np.maximum(last - first, 0)
        # Windows a block at a time: a window's rows before the newest-version test are a few
        # hundred, which over a long history would make arrays of hundreds of MB.
        total = np.cumsum(counts)
        queries, positions, q = [], [], 0
        while q < len(end):
            before = int(total[q - 1]) if q else 0
            stop = max(q + 1, int(np.searchsorted(total, before + _PAIRS_AT_ONCE, side="right")))
            query = np.repeat(np.arange(q, stop), counts[q:stop])
            offsets = total[q:stop] - counts[q:stop] - before  # where each window's pairs start
            position = candidates[np.arange(len(query)) + np.repeat(first[q:stop] - offsets, counts[q:stop])]
            newest = self._next[position] >= end[query]  # the zone's next version is not in the window yet
            queries.append(query[newest]), positions.append(position[newest])
            q = stop
        if not queries:
            return np.empty(0, dtype="int64"), np.empty(0, dtype="int64")
        return np.concatenate(queries), np.concatenate(positions)

    def column(self, name: str) -> np.ndarray:
        if name not in self._columns:
            values = self.rows[name]
            numeric = name not in ("zone_id", "zone_type", "status")
            self._columns[name] = pd.to_numeric(values).to_numpy(dtype="float64") if numeric else \
                values.to_numpy(dtype=object)
        return self._columns[name]

    def equals(self, name: str, value) -> np.ndarray:
        """column(name) == value, per row (compared once: readers ask per setup)."""
        key = (name, value)
        if key not in self._masks:
            self._masks[key] = self.column(name) == value
        return self._masks[key]

    def newest_profiles(self, query: np.ndarray, position: np.ndarray, queries: int) -> np.ndarray:
        """Of each query's rows (`latest_many`'s pairs), the one of the most recent volume profile:
        the latest window end, then the latest known (a missing window end sorts last, as pandas
        sorts it); -1 for a query without rows."""
        out = np.full(queries, -1, dtype="int64")
        if not len(query):
            return out
        if "window_end_ms" not in self.rows.columns:
            key = np.zeros(len(position))  # every row ties: the last one
        else:
            if self._window_end is None:
                self._window_end = np.nan_to_num(self.column("window_end_ms"), nan=np.inf)
            key = self._window_end[position]
        starts = np.flatnonzero(np.r_[True, query[1:] != query[:-1]])
        best = np.repeat(np.maximum.reduceat(key, starts), np.diff(np.r_[starts, len(query)]))
        out[query[starts]] = np.maximum.reduceat(np.where(key == best, position, -1), starts)
        return out

class LatestBreak:
    """The latest BOS or CHoCH known by a time, not older than a horizon."""

    def __init__(self, events: pd.DataFrame):
        breaks = events[events.event_type.isin(BREAKS)] if len(events) else events
        self.rows = breaks.sort_values("known_at_ms", kind="stable").reset_index(drop=True)
        self.known_at_ms = self.rows.known_at_ms.to_numpy(dtype="int64")
        self._records = list(self.rows.itertuples(index=False))  # a tuple per row: cheap to hand out

    def position(self, as_of_ms: int, max_age_ms: int | None) -> int | None:
        n = int(np.searchsorted(self.known_at_ms, as_of_ms, side="right")) - 1
        if n < 0 or (max_age_ms is not None and self.known_at_ms[n] < as_of_ms - max_age_ms):
            return None
        return n

    def as_of_many(self, as_of_ms: np.ndarray, max_age_ms: int | None) -> list:
        """`as_of` of many times at once."""
        as_of_ms = np.asarray(as_of_ms, dtype="int64")
        n = np.searchsorted(self.known_at_ms, as_of_ms, side="right") - 1
        known = n >= 0
        if max_age_ms is not None and len(self.known_at_ms):
            known &= self.known_at_ms[np.maximum(n, 0)] >= as_of_ms - max_age_ms
        return [self._records[i] if ok else None for i, ok in zip(n.tolist(), known.tolist())]

    def as_of(self, as_of_ms: int, max_age_ms: int | None):
        """The break's row (a named tuple of its columns), or None."""
        n = self.position(as_of_ms, max_age_ms)
        return None if n is None else self._records[n]
