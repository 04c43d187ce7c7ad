"""Hand-computed cases for the analytics maths: swings and their ties, BOS vs CHoCH, the
volume profile's POC and value area, and a zone's touches, rejections, sweeps and break."""
import numpy as np
import pandas as pd
import pytest

from common.analytics.series import AnalyticsParams, analyze_series
from common.analytics.structure import StructureState, average_true_range, structure_events, swing_flags
from common.analytics.volume_profile import measure_between, volume_profile, volume_profiles
from common.analytics.zones import DEMAND, Zone, track_bar, zone_quality


def test_swing_needs_strictly_higher_than_the_left_and_at_least_the_right():
    high = np.array([1, 2, 5, 3, 2, 1, 5, 4, 3], dtype=float)
    low = high - 1
    is_high, _ = swing_flags(high, low, 2)
    # Bar 2 (5): > 1, 2 before and >= 3, 2 after. Bar 6 (5): not > 2, 1 before? yes 5 > 2, 1; after 4, 3: a swing.
    assert list(np.flatnonzero(is_high)) == [2, 6]
    # A tie on the right still confirms the left one (>=); a tie on the left does not (>).
    tie = np.array([1, 2, 5, 5, 2, 1, 0], dtype=float)
    is_high, _ = swing_flags(tie, tie - 1, 2)
    assert list(np.flatnonzero(is_high)) == [2]


def test_a_swing_at_the_edge_is_never_one():
    high = np.array([9, 1, 2, 3, 4], dtype=float)
    is_high, is_low = swing_flags(high, high - 1, 2)
    assert not is_high.any() and not is_low.any()


def bars_from(closes, spread=0.5):
    closes = np.asarray(closes, dtype=float)
    frame = pd.DataFrame({"open_time_ms": np.arange(len(closes)) * 60_000, "close": closes})
    frame["close_time_ms"] = frame["open_time_ms"] + 59_999
    frame["high"] = closes + spread
    frame["low"] = closes - spread
    frame["atr"] = 1.0
    return frame


def break_rows(events):
    """The breaks among the events, as (kind, direction, level, swing time, its confirmation,
    breaking bar's time, its close, distance in ATRs)."""
    return [(e["event_type"], e["direction"], e["level"], e["swing_time_ms"], e["swing_confirmed_ms"],
             e["bar_time_ms"], e["bar_close"], e["distance_atr"]) for e in events if e["event_type"] != "WARNING"]


def test_bos_then_choch_with_their_levels_and_times():
    # Up to a swing high of 10.5 at bar 3 (confirmed at bar 5 with L=2), a dip to a swing low
    # of 6.5 at bar 6 (confirmed at 8), a close of 12 above 10.5 at bar 9: bullish BOS
    # (no trend before). Then a close of 5 below 6.5 at bar 10: bearish CHoCH.
    closes = [7, 8, 9, 10, 9, 8, 7, 8, 9, 12, 5]
    events, state = structure_events(bars_from(closes), StructureState(), 0, strength=2, warning_atr=0.0)
    breaks = break_rows(events)
    assert breaks == [
        ("BOS", "bullish", 10.5, 3 * 60_000, 5 * 60_000 + 59_999, 9 * 60_000, 12.0, 1.5),
        ("CHOCH", "bearish", 6.5, 6 * 60_000, 8 * 60_000 + 59_999, 10 * 60_000, 5.0, 1.5),
    ]
    assert state.trend == "bearish" and state.last_high is None and state.last_low is None
    assert all(e["known_at_ms"] == e["bar_time_ms"] + 59_999 for e in events)


def test_bearish_bos_in_a_bearish_trend_then_bullish_choch_of_the_latest_swing_high():
    # Lows (close - 0.5): a swing low of 9.5 at bar 3 (confirmed at bar 5 with L=2), broken by the
    # close of 8 at bar 9: a bearish BOS from no trend, which makes the trend bearish. The swing low
    # of 7.5 at bar 9 (confirmed at 11) is then broken by the close of 6 at bar 13: a bearish BOS
    # again, the trend being bearish already. Bar 13 also confirms the swing high of 10.5 at bar 11
    # (after its break: breaks are read first); it replaces the one of 13.5 at bar 6 (confirmed at
    # 8), so the close of 13 at bar 14, under 13.5, is above the latest swing high: a bullish CHoCH.
    closes = [13, 12, 11, 10, 11, 12, 13, 12, 11, 8, 9, 10, 9, 6, 13]
    events, state = structure_events(bars_from(closes), StructureState(), 0, strength=2, warning_atr=0.0)
    breaks = break_rows(events)
    assert breaks == [
        ("BOS", "bearish", 9.5, 3 * 60_000, 5 * 60_000 + 59_999, 9 * 60_000, 8.0, 1.5),
        ("BOS", "bearish", 7.5, 9 * 60_000, 11 * 60_000 + 59_999, 13 * 60_000, 6.0, 1.5),
        ("CHOCH", "bullish", 10.5, 11 * 60_000, 13 * 60_000 + 59_999, 14 * 60_000, 13.0, 2.5),  # (13 - 10.5) / 1
    ]
    assert state.trend == "bullish" and state.last_high is None and state.last_low is None


def test_a_bearish_close_in_a_bearish_trend_carried_in_the_state_is_a_bos_and_a_bullish_one_a_choch():
    # The trend comes from an earlier call (the stream's stored state). Swing low 9.5 at bar 3
    # (confirmed at bar 5), swing high 13.5 at bar 6 (confirmed at 8); bar 9 closes at 8, under
    # 9.5: BOS, the trend being bearish; bar 10 closes at 15, above 13.5: CHoCH.
    closes = [13, 12, 11, 10, 11, 12, 13, 12, 11, 8, 15]
    events, state = structure_events(bars_from(closes), StructureState(trend="bearish"), 0, strength=2,
                                     warning_atr=0.0)
    breaks = break_rows(events)
    assert breaks == [
        ("BOS", "bearish", 9.5, 3 * 60_000, 5 * 60_000 + 59_999, 9 * 60_000, 8.0, 1.5),
        ("CHOCH", "bullish", 13.5, 6 * 60_000, 8 * 60_000 + 59_999, 10 * 60_000, 15.0, 1.5),
    ]
    assert state.trend == "bullish"


def test_a_break_in_the_trend_direction_is_a_bos_and_each_swing_breaks_once():
    closes = [7, 8, 9, 10, 9, 8, 7, 8, 9, 12, 11, 10, 13, 14, 15, 16]
    events, _ = structure_events(bars_from(closes), StructureState(), 0, strength=2, warning_atr=0.0)
    kinds = [(e["event_type"], e["direction"], e["level"]) for e in events if e["event_type"] != "WARNING"]
    # 10.5 broken at bar 9 (BOS); the swing high 12.5 (bar 9, confirmed at 11) broken at bar 13 (BOS again).
    assert kinds == [("BOS", "bullish", 10.5), ("BOS", "bullish", 12.5)]


def test_a_warning_is_written_once_when_price_closes_near_an_unbroken_swing():
    closes = [7, 8, 9, 10, 9, 8, 9, 9.8, 9.9, 9.7]
    events, _ = structure_events(bars_from(closes), StructureState(), 0, strength=2, warning_atr=0.75)
    warnings = [(e["direction"], e["level"], e["bar_time_ms"]) for e in events if e["event_type"] == "WARNING"]
    assert warnings == [("bullish", 10.5, 7 * 60_000)]  # 9.8 is 0.7 ATR under 10.5; 9.9 is not written again


def test_atr_is_the_mean_true_range_of_the_last_n_bars():
    high, low, close = np.array([10, 12, 11.0]), np.array([9, 10, 8.0]), np.array([9.5, 11, 9.0])
    # True ranges: 1 (first bar: high - low), max(2, 2.5, 0.5) = 2.5, max(3, 1, 3) = 3.
    assert np.allclose(average_true_range(high, low, close, 2), [np.nan, 1.75, 2.75], equal_nan=True)


def test_volume_profile_poc_and_value_area():
    # Four bars over [0, 4] with 4 bins of 1: each bar sits in one bin.
    high, low = np.array([1, 2, 3, 4.0]), np.array([0, 1, 2, 3.0])
    profile = volume_profile(high, low, np.array([10, 40, 30, 20.0]), bins=4)
    assert profile.poc_index == 1 and profile.poc_price == 1.5
    # 70 of 100: POC 40, then the fuller neighbour 30 (above) = 70.
    assert profile.value_area == (1, 2) and (profile.value_area_low, profile.value_area_high) == (1.0, 3.0)


def test_volume_is_spread_by_overlap_and_ties_go_to_the_lower_poc_and_upward_growth():
    profile = volume_profile(np.array([2.0, 4.0]), np.array([0.0, 2.0]), np.array([10.0, 10.0]), bins=4)
    assert list(profile.volumes) == [5, 5, 5, 5]
    assert profile.poc_index == 0  # equal bins: the lowest-priced
    assert profile.value_area == (0, 2)  # from bin 0 upwards (ties upwards) until 70 %: 5+5+5 = 15 of 20


def test_a_flat_bar_lands_in_one_bin_and_no_volume_means_no_poc():
    profile = volume_profile(np.array([1.0, 3.0]), np.array([1.0, 1.0]), np.array([8.0, 2.0]), bins=2)
    assert list(profile.volumes) == [9.0, 1.0]  # the flat bar at 1.0 in bin [1, 2]; the other split 1/1
    empty = volume_profile(np.array([2.0, 3.0]), np.array([1.0, 1.0]), np.array([0.0, 0.0]), bins=4)
    assert empty.poc_index is None and empty.poc_price is None and empty.value_area_low is None


def _dense_profile(high, low, volume, bins):
    """The volume profile as a (bars x bins) matrix of overlaps: the definition, spelled out."""
    edges = np.linspace(low.min(), high.max(), bins + 1)
    volumes = np.zeros(bins)
    if high.max() == low.min():
        volumes[0] = volume.sum()
        return edges, volumes
    ranged = high > low
    overlap = np.clip(np.minimum(high[ranged, None], edges[None, 1:]) - np.maximum(low[ranged, None], edges[None, :-1]),
                      0, None)
    volumes += (overlap / (high[ranged] - low[ranged])[:, None] * volume[ranged, None]).sum(axis=0)
    np.add.at(volumes, np.clip(np.searchsorted(edges, low[~ranged], side="right") - 1, 0, bins - 1), volume[~ranged])
    return edges, volumes


def test_profiles_of_many_windows_are_each_windows_own_to_the_last_bit():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 400)))
    high, low = close * (1 + np.abs(rng.normal(0, 0.003, 400))), close * (1 - np.abs(rng.normal(0, 0.003, 400)))
    high[::9] = low[::9]  # flat bars
    high[50:70] = low[50:70] = 100.0  # windows at one price
    volume = rng.gamma(2.0, 50.0, 400)
    volume[::13] = 0.0
    ends = list(range(0, 400, 3))
    for window, bins in ((60, 24), (200, 50), (1, 5), (15, 50)):
        for end, batch in zip(ends, volume_profiles(high, low, volume, ends, window, bins)):
            first = max(0, end - window + 1)
            single = volume_profile(high[first:end + 1], low[first:end + 1], volume[first:end + 1], bins)
            edges, volumes = _dense_profile(high[first:end + 1], low[first:end + 1], volume[first:end + 1], bins)
            for profile in (batch, single):
                assert np.array_equal(profile.edges, edges) and np.array_equal(profile.volumes, volumes)
            assert (batch.poc_index, batch.value_area) == (single.poc_index, single.value_area)


def test_a_bar_without_a_finite_high_low_or_volume_is_refused_not_binned():
    high, low, volume = np.array([2.0, np.nan, 3.0]), np.array([1.0, 1.0, 2.0]), np.ones(3)
    with pytest.raises(ValueError, match="must be finite"):
        volume_profile(high, low, volume, 10)
    with pytest.raises(ValueError, match="must be finite"):  # else it lands in an earlier window's bins
        volume_profiles(high, low, volume, [0, 1, 2], 2, 10)
    with pytest.raises(ValueError, match="must be finite"):
        volume_profile(np.array([2.0]), np.array([1.0]), np.array([np.inf]), 10)


def test_ranges_measured_together_are_each_ones_own_to_the_last_bit():
    rng = np.random.default_rng(4)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 600)))
    high, low = close * (1 + np.abs(rng.normal(0, 0.003, 600))), close * (1 - np.abs(rng.normal(0, 0.003, 600)))
    high[::11] = low[::11]
    high[80:100] = low[80:100] = 100.0  # windows at one price: bins without width
    volume = rng.gamma(2.0, 50.0, 600)
    volume[::7] = 0.0
    profiles, lows, highs = [], [], []
    for profile in volume_profiles(high, low, volume, list(range(0, 600, 5)), 60, 24):
        bottom, top = float(profile.edges[0]), float(profile.edges[-1])
        for a, b in [sorted(rng.uniform(bottom - 1, top + 1, 2)) for _ in range(4)] + [
                (float(profile.edges[3]), float(profile.edges[4])), (top + 1, top + 2), (bottom, bottom)]:
            profiles.append(profile), lows.append(a), highs.append(b)
    volumes, pocs = measure_between(profiles, lows, highs)
    for profile, a, b, v, p in zip(profiles, lows, highs, volumes, pocs):
        assert (v, p) == (profile.volume_between(a, b), profile.poc_between(a, b))
    assert measure_between([], [], []) == ([], [])


def kline_frame(lows, closes, volumes=1.0, first_bar=0, width=1.0):
    """Bars of 1m: [low, low + width], opening half a unit above the low (the body's bottom is
    min(open, close)); open times first_bar, first_bar + 1, ... minutes."""
    lows = np.asarray(lows, dtype=float)
    frame = pd.DataFrame({"open_time_ms": (np.arange(len(lows)) + first_bar) * 60_000, "open": lows + 0.5,
                          "high": lows + width, "low": lows, "close": np.asarray(closes, dtype=float),
                          "volume": volumes})
    frame["close_time_ms"] = frame["open_time_ms"] + 59_999
    return frame


def test_swing_lows_within_the_cluster_tolerance_make_one_pool_and_a_farther_one_its_own_zone():
    # Each bar spans close +- 1 and moves at most 1 from the last close: every true range is 2, so
    # the ATR (3 bars) is 2 from bar 2 on and the tolerance 0.5 x 2 = 1. With L=2 the swing lows are
    # 10 at bar 3 (confirmed at bar 5), 10.5 at bar 7 (at 9) and 12 at bar 13 (at 15).
    closes = np.array([13, 12, 11.5, 11, 12, 13, 12, 11.5, 12.5, 13.5, 14, 14.5, 13.5, 13, 14, 15, 16])
    bars = kline_frame(closes - 1, closes, width=2.0)
    bars["open"] = closes + 0.5  # the body's bottom: the close
    params = AnalyticsParams(swing_strength=2, atr_period=3, profile_window_bars=10, profile_bins=10,
                             profile_step_bars=1000, cluster_atr=0.5)  # no profile step with a full window
    _, zones, state = analyze_series(bars, None, params, 60_000)
    assert set(zones.source) == {"swing"}
    demand = [(z.zone_id, z.version, z.swing_count, z.is_liquidity_pool, z.zone_low, z.zone_high, z.level,
               z.touches, z.known_at_ms) for z in zones[zones.zone_type == "demand"].itertuples()]
    first, third = f"demand:swing:{3 * 60_000}", f"demand:swing:{13 * 60_000}"
    assert demand == [
        (first, 1, 1, False, 10.0, 11.0, 10.0, 0, 5 * 60_000 + 59_999),  # from the low to the body's bottom
        (first, 2, 1, False, 10.0, 11.0, 10.0, 1, 6 * 60_000 + 59_999),  # bar 6's low 11 touches it
        (first, 3, 1, False, 10.0, 11.0, 10.0, 2, 7 * 60_000 + 59_999),  # and bar 7's 10.5
        # 10.5 is 0.5 from the zone's level 10, within 1: it joins; bounds cover both bodies, level the lower.
        (first, 4, 2, True, 10.0, 11.5, 10.0, 2, 9 * 60_000 + 59_999),
        # 12 is 2 from the pool's level 10, beyond 1: a zone of its own.
        (third, 1, 1, False, 12.0, 13.0, 12.0, 0, 15 * 60_000 + 59_999),
    ]
    assert [(z.zone_id, z.swing_count, z.width_atr) for z in state.zones if z.zone_type == "demand"] == [
        (first, 2, 0.75), (third, 1, 0.5)]  # widths 1.5 and 1 over the ATR of 2


@pytest.mark.parametrize("lows, closes, expected", [
    # Rising bars [100, 101], ..., [103, 104]: bins of 1 over [100, 104], each bar in one; the
    # 40 of bin [101, 102] is >= 1.5 x the mean 17.5 and above its neighbours: the only node,
    # under the close of 104, a demand zone. Value area: 40 + 10 from the tie, upwards: [101, 103].
    ([100, 101, 102, 103], [101, 102, 103, 104], ("demand:volume:240000001", "demand", 101.0, 102.0, 101.5, 101.0,
                                                  103.0)),
    # Falling bars, the 40 in bin [102, 103] above the close of 100: a supply zone; value area
    # 40 + the upward tie [103, 104]: [102, 104].
    ([103, 102, 101, 100], [103, 102, 101, 100], ("supply:volume:240000002", "supply", 102.0, 103.0, 102.5, 102.0,
                                                  104.0)),
    # The last bar back in [101, 102], closing at 101.5 in the node (50 of 70): neither side, no zone.
    ([100, 101, 102, 101], [101, 102, 103, 101.5], None),
])
def test_a_high_volume_node_opens_a_zone_of_its_bin_on_the_side_of_the_close(lows, closes, expected):
    # Bars at minutes 1-4: minute 4 is the first profile step (every 4 bars on the clock) with a
    # full window of 4. With L=2 none of 4 bars has 2 on each side: no swing, no swing zone over the node.
    bars = kline_frame(lows, closes, volumes=[10, 40, 10, 10], first_bar=1)
    params = AnalyticsParams(swing_strength=2, atr_period=2, profile_window_bars=4, profile_bins=4,
                             profile_step_bars=4)
    events, zones, _ = analyze_series(bars, None, params, 60_000)
    assert events.empty
    if expected is None:
        assert zones.empty
        return
    assert len(zones) == 1
    z = zones.iloc[0]
    zone_id, zone_type, low, high, poc, va_low, va_high = expected  # id: the bar's open time x 1000 + the bin
    assert (z.zone_id, z.zone_type, z.source, z.swing_count, z.zone_low, z.zone_high, z.level, z.poc_price,
            z.window_poc) == (zone_id, zone_type, "volume", 1, low, high, (low + high) / 2, poc, poc)
    assert (z.volume, z.volume_share, z.value_area_low, z.value_area_high) == (40.0, 40 / 70, va_low, va_high)
    assert (z.window_bars, z.window_start_ms, z.window_end_ms, z.created_ms) == (4, 60_000, 299_999, 299_999)
    # Every true range is 1, so the ATR is 1 and the zone 1 ATR wide: quality 30 (share >= 20 %)
    # + 12.5 (untested) + 15 (fresh) + 7.5 (width) + 15 (holds the window's POC) = 80.
    assert (z.atr, z.quality) == (1.0, 80.0)


def demand_zone(**changes):
    zone = Zone(zone_id="z", zone_type=DEMAND, source="swing", swing_count=1, zone_low=100.0, zone_high=102.0,
                level=100.0, poc_price=101.0, volume=50.0, volume_share=0.1, window_bars=50, window_start_ms=0,
                window_end_ms=0, window_poc=101.0, value_area_low=99.0, value_area_high=110.0, width_atr=0.5)
    return Zone(**{**zone.__dict__, **changes})


@pytest.mark.parametrize("bars, expected", [
    # (high, low, close) after the zone was made -> (touches, rejections, sweeps, breaks, status)
    ([(110, 105, 108)], (0, 0, 0, 0, "active")),                          # never reaches it
    ([(106, 101, 104)], (1, 1, 0, 0, "active")),                          # touch, closes back above: rejection
    ([(106, 101, 101.5), (103, 100.5, 101), (106, 101, 105)], (1, 1, 0, 0, "active")),  # one visit, then out
    ([(106, 99, 103)], (1, 1, 1, 0, "active")),                           # wick below, close back above: sweep
    ([(106, 101, 104), (110, 105, 108), (104, 101, 103)], (2, 2, 0, 0, "active")),  # two visits
    ([(106, 97, 98)], (1, 0, 0, 1, "broken")),                            # closes through: broken
])
def test_zone_behaviour(bars, expected):
    zone = demand_zone()
    for high, low, close in bars:
        zone = track_bar(zone, high, low, close)
    assert (zone.touches, zone.rejections, zone.sweeps, zone.breaks, zone.status) == expected


def test_zone_quality_components():
    # volume 0.1/0.2*30 = 15; rejections (0+1)/(0+2)*25 = 12.5; fresh 15; width 0.5 ATR: 15; holds the POC: 15.
    assert zone_quality(demand_zone()) == 72.5
    tested = demand_zone(touches=2, rejections=2, width_atr=1.0, window_poc=120.0)
    # 15 + 3/4*25 + 15*(1-2/4) + 15*0.5 + 7.5 (overlaps the value area) = 15 + 18.75 + 7.5 + 7.5 + 7.5
    assert zone_quality(tested) == 56.25
    assert zone_quality(demand_zone(status="broken")) == 0.0
