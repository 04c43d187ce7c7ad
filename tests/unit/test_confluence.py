"""Confluence across timeframes, as known at each row's time."""
import numpy as np
import pandas as pd
import pytest

from common.analytics.confluence import CONFLUENCE_COLUMNS, add_confluence, higher_intervals
from common.analytics.series import AnalyticsParams, analyze_series
from common.intervals import INTERVAL_MS
from common.kline_files import read_kline_file, resample_klines
from streaming.sample_data import sample_path

H = 3_600_000


def test_higher_intervals_in_order():
    assert higher_intervals("15m", ["4h", "1m", "1h", "15m"]) == ["1h", "4h"]


def events(rows):
    return pd.DataFrame(rows, columns=["event_type", "direction", "known_at_ms"])


def zones(rows):
    return pd.DataFrame(rows, columns=["zone_id", "zone_type", "zone_low", "zone_high", "status", "value_area_low",
                                       "value_area_high", "known_at_ms"])


def test_a_demand_zone_with_higher_timeframes_agreeing_only_once_they_are_known():
    row = pd.DataFrame([{"zone_type": "demand", "zone_low": 100.0, "zone_high": 102.0, "poc_price": 101.0,
                         "known_at_ms": 10 * H}])
    htf_events = {"1h": events([("BOS", "bullish", 5 * H), ("WARNING", "bearish", 9 * H)]),
                  "4h": events([("CHOCH", "bearish", 8 * H), ("BOS", "bullish", 11 * H)])}  # the bullish one: later
    htf_zones = {"1h": zones([("a", "demand", 99.0, 100.5, "active", 95.0, 105.0, 6 * H),
                              ("a", "demand", 99.0, 100.5, "broken", 95.0, 105.0, 12 * H)]),  # broken: later
                 "4h": zones([("b", "supply", 101.0, 103.0, "active", 110.0, 120.0, 7 * H)])}
    out = add_confluence(row, "15m", htf_events, htf_zones).iloc[0]
    # 1h: trend bullish (agrees), demand zone a overlapping and still active at 10h, POC 101 in [95, 105].
    # 4h: trend bearish (the bullish BOS is known only at 11h), b is supply, 101 not in [110, 120].
    assert (out.htf_trend_agree, out.htf_zone_overlap, out.htf_in_value_area, out.confluence_intervals) == (
        1, 1, 1, "1h")


def test_an_event_uses_its_level_and_close():
    row = pd.DataFrame([{"direction": "bearish", "level": 50.0, "bar_close": 49.0, "known_at_ms": 10 * H}])
    out = add_confluence(row, "1h", {"4h": events([("BOS", "bearish", 2 * H)])},
                         {"4h": zones([("s", "supply", 49.5, 51.0, "active", 40.0, 48.0, 3 * H)])}).iloc[0]
    assert (out.htf_trend_agree, out.htf_zone_overlap, out.htf_in_value_area, out.confluence_intervals) == (
        1, 1, 0, "4h")


def test_the_value_area_is_the_newest_profiles_even_when_an_older_zone_changed_later():
    columns = ["zone_id", "zone_type", "zone_low", "zone_high", "status", "value_area_low", "value_area_high",
               "window_end_ms", "known_at_ms", "version"]
    htf = pd.DataFrame([("old", "supply", 150.0, 151.0, "active", 95.0, 105.0, 2 * H, 2 * H, 1),
                        ("new", "supply", 160.0, 161.0, "active", 120.0, 130.0, 6 * H, 6 * H, 1),
                        ("old", "supply", 150.0, 151.0, "active", 95.0, 105.0, 2 * H, 8 * H, 2)], columns=columns)
    row = pd.DataFrame([{"zone_type": "demand", "zone_low": 100.0, "zone_high": 102.0, "poc_price": 101.0,
                         "known_at_ms": 10 * H}])
    out = add_confluence(row, "15m", {}, {"1h": htf}).iloc[0]
    assert out.htf_in_value_area == 0  # 101 is in old's [95, 105] but the newest profile's is [120, 130]


@pytest.mark.parametrize("pairs_at_once", [1 << 20, 50])  # one block, many
def test_many_windows_read_at_once_are_each_windows_own(monkeypatch, pairs_at_once):
    import numpy as np

    from common.analytics import asof
    from common.analytics.asof import ZoneVersions

    monkeypatch.setattr(asof, "_PAIRS_AT_ONCE", pairs_at_once)
    rng = np.random.default_rng(5)
    n = 400
    frame = pd.DataFrame({"zone_id": rng.integers(0, 30, n).astype(str),
                          "known_at_ms": np.sort(rng.integers(0, 200, n)), "version": np.arange(n),
                          "window_end_ms": rng.choice([1.0, 2.0, 3.0, np.nan], n)})
    versions = ZoneVersions(frame)
    until = rng.integers(-5, 210, 300)
    since = until - rng.integers(0, 80, 300)
    rows = np.flatnonzero(rng.random(n) < 0.4)
    for include in (False, True):
        query, position = versions.latest_many(since, until, include)
        some_query, some_position = versions.latest_many(since, until, include, rows=rows)
        newest = versions.newest_profiles(query, position, len(until))
        for q, (s, u) in enumerate(zip(since, until)):
            latest = versions.latest(int(s), int(u), include)
            assert list(position[query == q]) == list(latest)
            assert list(some_position[some_query == q]) == [p for p in latest if p in set(rows)]
            ends = np.nan_to_num(versions.column("window_end_ms")[latest], nan=np.inf)
            assert newest[q] == (latest[np.flatnonzero(ends == ends.max())[-1]] if len(latest) else -1)


SAMPLE_PARAMS = AnalyticsParams(swing_strength=3, atr_period=14, profile_window_bars=60, profile_bins=24,
                                profile_step_bars=12)


@pytest.fixture(scope="module")
def sample_analytics():
    """Six days of the sample: the events and zone versions of its 15m and 1h series, each from one pass."""
    minutes = read_kline_file(sample_path()).head(6 * 24 * 60)
    out = {}
    for interval in ("15m", "1h"):
        bars = resample_klines(minutes, "1m", interval)
        bars["close_time_ms"] = bars["open_time_ms"] + INTERVAL_MS[interval] - 1
        out[interval] = analyze_series(bars, None, SAMPLE_PARAMS, INTERVAL_MS[interval])[:2]
    return out


@pytest.mark.parametrize("lookback_ms", [None, {"1h": 6 * H}])
def test_confluence_from_the_higher_rows_known_by_then_is_the_one_from_the_full_history(sample_analytics,
                                                                                       lookback_ms):
    """Prefix replay: each 15m row's confluence computed with only the 1h rows known up to its time
    (what the stream has then), or only those known strictly before it, equals the one computed
    with the whole 1h history: nothing the 1h series writes later changes an emitted value, nor
    does a 1h row written at the row's own instant (its bar closes with the 15m one)."""
    events_15m, zones_15m = sample_analytics["15m"]
    events_1h, zones_1h = (f.sort_values("known_at_ms", kind="stable").reset_index(drop=True)
                           for f in sample_analytics["1h"])
    for rows in (events_15m, zones_15m):
        full = add_confluence(rows, "15m", {"1h": events_1h}, {"1h": zones_1h}, lookback_ms)[CONFLUENCE_COLUMNS]
        # Each count agrees somewhere, and some rows share their instant with 1h rows: the test can fail.
        assert (full[CONFLUENCE_COLUMNS[:3]].sum() > 0).all()
        assert rows.known_at_ms.isin(pd.concat([events_1h.known_at_ms, zones_1h.known_at_ms])).any()
        for side in ("right", "left"):  # known at or before the row's time; strictly before it
            # The 1h rows known by each row's time are a prefix of them (in known_at order); rows
            # with the same prefixes are replayed together.
            known_events = np.searchsorted(events_1h.known_at_ms, rows.known_at_ms, side=side)
            known_zones = np.searchsorted(zones_1h.known_at_ms, rows.known_at_ms, side=side)
            replayed = 0
            for (n_events, n_zones), group in rows.groupby([known_events, known_zones]):
                replay = add_confluence(group, "15m", {"1h": events_1h.iloc[:n_events]},
                                        {"1h": zones_1h.iloc[:n_zones]}, lookback_ms)
                pd.testing.assert_frame_equal(replay[CONFLUENCE_COLUMNS], full.loc[group.index])
                replayed += len(group)
            assert replayed == len(rows)
