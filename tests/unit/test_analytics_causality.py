"""No look-ahead, for every analytic: on the sample series, what a prefix of the bars emits is
never changed by the bars that come after it, and the stream's way of computing (a bar or a
few at a time, with the stored state) gives exactly what one pass over the history gives."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from common.analytics.series import AnalyticsParams, SeriesState, analyze_series, lookback_start_ms
from common.kline_files import read_kline_file, resample_klines
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


def test_the_streams_reads_equal_one_pass_when_the_series_has_gaps(bars):
    """As the stream runs it: each batch reads only the bars from where the stored state's
    look-back starts (through its JSON form). With klines missing here and there, a look-back
    taken as a span of time would hold fewer bars than one pass uses, and the zones would differ."""
    gappy = bars.drop(index=list(range(70, 80)) + list(range(150, 160)) + [203]).reset_index(drop=True)
    whole_events, whole_zones, whole_state = analyze_series(gappy, None, PARAMS, INTERVAL_MS)
    state_json, events, zones = None, [], []
    for end in range(20, len(gappy) + 9, 9):
        start_ms = lookback_start_ms(state_json, PARAMS, INTERVAL_MS)
        batch = gappy.iloc[:end]
        batch = batch[batch.open_time_ms >= start_ms] if start_ms is not None else batch
        e, z, state = analyze_series(batch, SeriesState.from_json(state_json), PARAMS, INTERVAL_MS)
        events.append(e)
        zones.append(z)
        state_json = state.to_json()
    for frames, whole in ((events, whole_events), (zones, whole_zones)):
        pd.testing.assert_frame_equal(pd.concat([f for f in frames if len(f)], ignore_index=True), whole,
                                      check_dtype=False)
    assert state_json == whole_state.to_json()
    # the look-back is counted in bars: it spans more time than lookback_bars intervals here
    first_of_last = gappy.open_time_ms.iloc[-PARAMS.lookback_bars]
    assert SeriesState.from_json(state_json).lookback_from_ms == first_of_last


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


@pytest.mark.parametrize("count", range(1, 12))
def test_a_new_series_shorter_than_its_swings_need_is_analysed_bar_by_bar(bars, count):
    """A series' first batches can hold fewer bars than a swing needs on each side (L = 5, the
    default): nothing is known yet, nothing fails, and the bars add up to the one-pass result."""
    params = replace(PARAMS, swing_strength=5)
    short = bars.iloc[:count]
    state, events = SeriesState(), []
    for end in range(1, count + 1):
        e, _, state = analyze_series(short.iloc[:end], state, params, INTERVAL_MS)
        events.append(e)
    whole_events, _, whole_state = analyze_series(short, None, params, INTERVAL_MS)
    assert sum(len(e) for e in events) == len(whole_events) and state.to_json() == whole_state.to_json()
