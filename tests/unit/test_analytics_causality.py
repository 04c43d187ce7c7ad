"""No look-ahead, for every analytic: on the sample series, what a prefix of the bars emits is
never changed by the bars that come after it, and the stream's way of computing (a bar or a
few at a time, with the stored state) gives exactly what one pass over the history gives."""
import numpy as np
import pandas as pd
import pytest

from common.analytics.series import AnalyticsParams, SeriesState, analyze_series
from streaming.kline_files import read_kline_file, resample_klines
from streaming.sample_data import sample_path

INTERVAL_MS = 15 * 60_000
PARAMS = AnalyticsParams(swing_strength=3, atr_period=14, profile_window_bars=60, profile_bins=24,
                         profile_step_bars=12)


@pytest.fixture(scope="module")
def bars():
    minutes = read_kline_file(sample_path()).head(15 * 400)
    frame = resample_klines(minutes, "1m", "15m")
    frame["close_time_ms"] = frame["open_time_ms"] + INTERVAL_MS - 1
    return frame.reset_index(drop=True)


def run_in_chunks(bars, sizes):
    state, events, zones, start = SeriesState(), [], [], 0
    for size in sizes:
        end = min(len(bars), start + size)
        e, z, state = analyze_series(bars.iloc[:end], state, PARAMS, INTERVAL_MS)
        events.append(e)
        zones.append(z)
        start = end
        if end == len(bars):
            break
    def joined(frames):
        return pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    return joined(events), joined(zones), state


def test_the_sample_yields_every_kind_of_row(bars):
    events, zones, _ = analyze_series(bars, None, PARAMS, INTERVAL_MS)
    assert set(events.event_type) == {"BOS", "CHOCH", "WARNING"}
    assert {"swing", "volume"} <= set(zones.source) and zones.is_liquidity_pool.any()
    assert (zones.touches > 0).any() and (zones.rejections > 0).any() and (zones.status == "broken").any()
    assert zones.quality.between(0, 100).all()


def test_zone_versions_are_numbered_and_say_what_their_bar_did(bars):
    """Versions 1, 2, ... per zone in the order written (several can share a bar), and a version
    is marked touched / swept exactly when its bar added a touch / a sweep."""
    _, zones, _ = analyze_series(bars, None, PARAMS, INTERVAL_MS)
    assert zones.groupby("known_at_ms").zone_id.apply(lambda ids: ids.duplicated().any()).any()  # ties happen
    for _, versions in zones.groupby("zone_id", sort=False):
        assert list(versions.version) == list(range(1, len(versions) + 1))
        assert versions.known_at_ms.is_monotonic_increasing
        previous = versions.shift(1)
        assert (versions.touched_now == (versions.touches > previous.touches.fillna(0))).all()
        assert (versions.swept_now == (versions.sweeps > previous.sweeps.fillna(0))).all()
    assert zones.touched_now.any() and zones.swept_now.any()


def test_chunked_runs_equal_one_pass(bars):
    whole_events, whole_zones, whole_state = analyze_series(bars, None, PARAMS, INTERVAL_MS)
    rng = np.random.default_rng(3)
    for sizes in ([1] * len(bars), list(rng.integers(1, 40, size=len(bars)))):
        events, zones, state = run_in_chunks(bars, sizes)
        pd.testing.assert_frame_equal(events, whole_events, check_dtype=False)
        pd.testing.assert_frame_equal(zones, whole_zones, check_dtype=False)
        assert state.to_json() == whole_state.to_json()


def test_no_prefix_output_changes_when_later_bars_arrive(bars):
    """Each prefix computed from scratch: its rows are exactly the first rows of the next one,
    and each row was known by the last bar of the prefix that emitted it."""
    previous_events = previous_zones = None
    for end in range(30, 260, 7):
        prefix = bars.iloc[:end]
        events, zones, _ = analyze_series(prefix, None, PARAMS, INTERVAL_MS)
        last_close = prefix["close_time_ms"].iloc[-1]
        assert (events.known_at_ms <= last_close).all() and (zones.known_at_ms <= last_close).all()
        assert (events.swing_confirmed_ms <= events.known_at_ms).all()
        if previous_events is not None:
            pd.testing.assert_frame_equal(events.iloc[:len(previous_events)], previous_events, check_dtype=False)
            pd.testing.assert_frame_equal(zones.iloc[:len(previous_zones)], previous_zones, check_dtype=False)
        previous_events, previous_zones = events, zones


def test_state_survives_its_json_form(bars):
    _, _, state = analyze_series(bars.iloc[:200], None, PARAMS, INTERVAL_MS)
    again = SeriesState.from_json(state.to_json())
    assert again.to_json() == state.to_json()
    a = analyze_series(bars, state, PARAMS, INTERVAL_MS)
    b = analyze_series(bars, again, PARAMS, INTERVAL_MS)
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
