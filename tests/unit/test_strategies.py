"""Scenario tables for the two strategies: a few hand-written analytics rows -> the setup
expected (or none), including the cases where a row is not yet known at the trigger."""
import json

import pandas as pd
import pytest

from common.strategies import ScanParams, scan_series, signal_id

H = 3_600_000  # 1h bars: a bar closing at k*H - 1 is "known at k*H - 1"; we use k*H for brevity
PARAMS = ScanParams(max_break_age_bars=10, lookback_bars=100)

EVENT_FIELDS = ["event_id", "event_type", "direction", "level", "bar_time_ms", "bar_close", "distance_atr", "atr",
                "known_at_ms"]
ZONE_FIELDS = ["zone_id", "zone_type", "is_liquidity_pool", "zone_low", "zone_high", "poc_price", "touches",
               "rejections", "sweeps", "breaks", "status", "quality", "atr", "known_at_ms", "value_area_low",
               "value_area_high"]


def events(*rows):
    return pd.DataFrame([dict(zip(EVENT_FIELDS, r)) for r in rows], columns=EVENT_FIELDS)


def zone(zone_id, zone_type, known_at, touches=0, sweeps=0, pool=False, status="active", low=100.0, high=102.0,
         poc=101.0, rejections=0, breaks=0, quality=60.0, touched_now=None, swept_now=None):
    return (zone_id, zone_type, pool, low, high, poc, touches, rejections, sweeps, breaks, status, quality, 1.5,
            known_at, 90.0, 110.0, touched_now, swept_now)


def zones(*rows):
    """Versions numbered in the order given per zone; what each bar did (touched_now, swept_now)
    from the counts of the version before, unless given (as the analytics write them)."""
    out, last = [], {}
    for r in rows:
        row = dict(zip(ZONE_FIELDS + ["touched_now", "swept_now"], r))
        before = last.get(row["zone_id"], {"touches": 0, "sweeps": 0, "version": 0})
        row["version"] = before["version"] + 1
        if row["touched_now"] is None:
            row["touched_now"] = row["touches"] > before["touches"]
        if row["swept_now"] is None:
            row["swept_now"] = row["sweeps"] > before["sweeps"]
        last[row["zone_id"]] = row
        out.append(row)
    return pd.DataFrame(out, columns=ZONE_FIELDS + ["version", "touched_now", "swept_now"])


def bullish_break(known_at, kind="BOS"):
    return ("e1", kind, "bullish", 99.0, known_at - H + 1, 99.5, 0.8, 1.5, known_at)


def scan(ev, zn, emit_from=-1, strategies=("smc", "liquidity"), **kwargs):
    return scan_series("binance", "BTCUSDT", "1h", H, ev, zn, PARAMS, strategies, emit_from, **kwargs)


def test_smc_long_after_a_bullish_break_when_price_pulls_back_into_demand():
    out = scan(events(bullish_break(10 * H)),
               zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1),
                     zone("s1", "supply", 6 * H, low=120.0, high=121.0), zone("s2", "supply", 7 * H, low=110.0,
                                                                                high=111.0)))
    assert len(out) == 1
    signal = out.iloc[0]
    assert (signal.strategy, signal.direction, signal.entry_price, signal.known_at_ms) == ("smc", "long", 101.0,
                                                                                         12 * H)
    assert signal.trigger_bar_time_ms == 12 * H - H + 1
    assert signal.bos_event_id == "e1" and signal.bos_type == "BOS" and signal.bos_age_bars == 2
    assert json.loads(signal.target_levels) == [110.0, 120.0]  # nearest first
    assert signal.signal_id == signal_id("smc", "binance", "BTCUSDT", "1h", "long", "d", 11 * H + 1)
    assert json.loads(signal.lineage) == {"zone_id": "d", "zone_known_at_ms": 12 * H, "bos_event_id": "e1",
                                          "bos_known_at_ms": 10 * H}


@pytest.mark.parametrize("break_known_at, why", [
    (12 * H, "the break closes on the touching bar itself: not known before the pullback"),
    (13 * H, "the break comes after the touch: look-ahead"),
    (12 * H - 11 * H, "the break is older than max_break_age_bars"),
])
def test_no_smc_setup_without_a_break_known_in_time(break_known_at, why):
    out = scan(events(bullish_break(break_known_at)), zones(zone("d", "demand", 0), zone("d", "demand", 12 * H,
                                                                                      touches=1)))
    assert out.empty, why


def test_smc_needs_the_zone_on_the_side_of_the_new_structure():
    bearish = ("e2", "CHOCH", "bearish", 99.0, 9 * H + 1, 98.0, 1.2, 1.5, 10 * H)
    demand_touched = zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1))
    assert scan(events(bearish), demand_touched).empty
    supply_touched = zones(zone("s", "supply", 5 * H, low=103.0, high=104.0, poc=103.5),
                           zone("s", "supply", 12 * H, touches=1, low=103.0, high=104.0, poc=103.5))
    out = scan(events(bearish), supply_touched)
    assert list(out.direction) == ["short"] and list(out.bos_type) == ["CHOCH"]


def test_a_warning_is_not_a_break_and_a_broken_zone_gives_nothing():
    warning = ("w", "WARNING", "bullish", 99.0, 9 * H + 1, 98.9, 0.1, 1.5, 10 * H)
    assert scan(events(warning), zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1))).empty
    broken = zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1, breaks=1, status="broken"))
    assert scan(events(bullish_break(10 * H)), broken).empty


def test_liquidity_sweep_of_a_pool_is_a_setup_in_the_rejection_direction():
    pools = zones(zone("p", "supply", 5 * H, pool=True, low=105.0, high=106.0, poc=105.5),
                  zone("p", "supply", 8 * H, pool=True, touches=1, sweeps=1, low=105.0, high=106.0, poc=105.5),
                  zone("q", "demand", 5 * H, low=90.0, high=91.0),  # not a pool: its sweep is no setup
                  zone("q", "demand", 9 * H, touches=1, sweeps=1, low=90.0, high=91.0))
    out = scan(events(), pools, strategies=("liquidity",))
    assert list(zip(out.strategy, out.direction, out.entry_price, out.zone_id)) == [("liquidity", "short", 105.5,
                                                                                     "p")]
    assert out.iloc[0].bos_event_id is None and out.iloc[0].bos_type is None
    assert json.loads(out.iloc[0].target_levels) == [91.0]  # q: active demand below, the short's target


def test_targets_use_only_zones_known_at_the_trigger():
    rows = zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1),
                 zone("s1", "supply", 11 * H, low=110.0, high=111.0),
                 zone("s2", "supply", 13 * H, low=108.0, high=109.0),  # born after the trigger
                 zone("s3", "supply", 6 * H, low=115.0, high=116.0), zone("s3", "supply", 9 * H, low=115.0,
                                                                          high=116.0, breaks=1, status="broken"))
    out = scan(events(bullish_break(10 * H)), rows)
    assert json.loads(out.iloc[0].target_levels) == [110.0]


def test_a_scan_from_a_point_equals_the_full_scan_after_it():
    ev = events(bullish_break(10 * H), ("e3", "BOS", "bullish", 120.0, 29 * H + 1, 121.0, 0.5, 1.5, 30 * H))
    zn = zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1),
               zone("d", "demand", 13 * H, touches=1, rejections=1), zone("d", "demand", 32 * H, touches=2,
                                                                        rejections=1))
    full = scan(ev, zn)
    assert list(full.known_at_ms) == [12 * H, 32 * H]
    later = scan(ev, zn, emit_from=20 * H)
    pd.testing.assert_frame_equal(later.reset_index(drop=True), full[full.known_at_ms >= 20 * H].reset_index(drop=True))


def test_confluence_counts_higher_timeframes_known_at_the_trigger():
    htf_events = {"4h": events(("h1", "BOS", "bullish", 90.0, 0, 95.0, 1.0, 3.0, 4 * H)),
                  "1d": events(("h2", "BOS", "bullish", 90.0, 0, 95.0, 1.0, 3.0, 20 * H))}  # known later
    out = scan(events(bullish_break(10 * H)), zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H,
                                                                                    touches=1)),
               htf_events=htf_events, intervals=["1h", "4h", "1d"])
    signal = out.iloc[0]
    assert (signal.htf_trend_agree, signal.htf_zone_overlap, signal.htf_count, signal.confluence_intervals) == (
        1, 0, 2, "4h")


def test_a_touch_is_what_its_version_says_not_a_count_against_an_unread_earlier_version():
    """The stream reads a bounded slice: the version before may be out of it. A version that
    only adds a rejection (its touch came earlier) is no new pullback; one that touches is."""
    rejection_only = zones(zone("d", "demand", 12 * H, touches=1, rejections=1, touched_now=False))
    assert scan(events(bullish_break(10 * H)), rejection_only).empty
    touch = zones(zone("d", "demand", 12 * H, touches=3, touched_now=True))
    assert len(scan(events(bullish_break(10 * H)), touch)) == 1


def test_versions_written_by_one_bar_are_read_in_version_order_whatever_the_row_order():
    rows = zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H, touches=1),
                 zone("s", "supply", 6 * H, low=110.0, high=111.0),
                 zone("s", "supply", 9 * H, low=110.0, high=111.0, touches=1),  # version 2
                 zone("s", "supply", 9 * H, low=110.0, high=111.0, touches=1, breaks=1, status="broken"))  # 3
    for order in (rows, rows.iloc[::-1]):
        out = scan(events(bullish_break(10 * H)), order)
        assert json.loads(out.iloc[0].target_levels) == [], "s is broken by its last version at 9h"


def test_an_smc_setup_records_the_break_that_triggered_it():
    """Another break closing on the touching bar itself came too late to trigger the setup, so
    it is not the setup's break either."""
    same_bar = ("e9", "CHOCH", "bullish", 99.0, 11 * H + 1, 99.5, 0.8, 1.5, 12 * H)
    out = scan(events(bullish_break(10 * H), same_bar), zones(zone("d", "demand", 5 * H),
                                                               zone("d", "demand", 12 * H, touches=1)))
    assert (out.iloc[0].bos_event_id, out.iloc[0].bos_type, out.iloc[0].bos_age_bars) == ("e1", "BOS", 2)
    assert json.loads(out.iloc[0].lineage)["bos_event_id"] == "e1"


def test_confluence_leaves_out_a_higher_bar_closing_at_the_trigger_instant():
    htf_events = {"4h": events(("h1", "BOS", "bullish", 90.0, 0, 95.0, 1.0, 3.0, 12 * H))}  # same instant
    out = scan(events(bullish_break(10 * H)), zones(zone("d", "demand", 5 * H), zone("d", "demand", 12 * H,
                                                                                    touches=1)),
               htf_events=htf_events, intervals=["1h", "4h"])
    assert (out.iloc[0].htf_trend_agree, out.iloc[0].confluence_intervals) == (0, "")
