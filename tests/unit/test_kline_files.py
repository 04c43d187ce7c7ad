"""Klines from files, and longer intervals derived from 1m ones without inventing any bar."""
import pandas as pd
import pytest

from common.kline_files import read_kline_file, resample_klines
from streaming.sample_data import SAMPLE_ROWS, sample_path

T0 = 1_700_000_100_000  # on a 15-minute boundary, not on an hour's


def minutes(n, start=T0):
    return pd.DataFrame({"open_time_ms": [start + i * 60_000 for i in range(n)],
                         "open": [100.0 + i for i in range(n)], "high": [101.0 + i for i in range(n)],
                         "low": [99.0 + i for i in range(n)], "close": [100.5 + i for i in range(n)],
                         "volume": [1.0] * n})


def test_resample_aggregates_ohlcv_per_bucket():
    bars = resample_klines(minutes(30), "1m", "15m")
    assert bars.to_dict("records") == [
        {"open_time_ms": T0, "open": 100.0, "high": 115.0, "low": 99.0, "close": 114.5, "volume": 15.0},
        {"open_time_ms": T0 + 900_000, "open": 115.0, "high": 130.0, "low": 114.0, "close": 129.5, "volume": 15.0},
    ]


def test_resample_leaves_out_buckets_the_data_does_not_cover_to_their_end():
    # Starts 5 minutes into a 15m bucket and ends 5 minutes into another: only the middle one closed.
    bars = resample_klines(minutes(25, start=T0 + 10 * 60_000), "1m", "15m")
    assert list(bars["open_time_ms"]) == [T0 + 900_000]
    assert resample_klines(minutes(14), "1m", "15m").empty  # the only bucket is still forming


def test_resample_refuses_an_interval_that_is_not_a_multiple():
    with pytest.raises(ValueError, match="not a whole number"):
        resample_klines(minutes(10), "4h", "1h")


def test_csv_with_unix_seconds_is_read_as_milliseconds(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("timestamp,open,high,low,close,volume\n1700000460,2,3,1,2.5,7\n1700000400,1,2,0.5,1.5,4\n")
    frame = read_kline_file(path)
    assert list(frame["open_time_ms"]) == [1_700_000_400_000, 1_700_000_460_000]  # sorted
    assert frame.iloc[1].to_dict()["volume"] == 7.0


def test_parquet_with_open_time_ms_is_read(tmp_path):
    path = tmp_path / "k.parquet"
    minutes(3).to_parquet(path)
    assert len(read_kline_file(path)) == 3


def test_unknown_file_type_and_missing_columns_are_named(tmp_path):
    with pytest.raises(ValueError, match="unsupported kline file"):
        read_kline_file(tmp_path / "k.json")
    path = tmp_path / "k.csv"
    path.write_text("open_time,open,high\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing columns \['low', 'close', 'volume'\]"):
        read_kline_file(path)


def test_the_sample_series_is_complete_and_checked():
    frame = read_kline_file(sample_path())
    assert len(frame) == SAMPLE_ROWS
    assert frame["open_time_ms"].diff().dropna().eq(60_000).all()
    assert len(resample_klines(frame, "1m", "4h")) == SAMPLE_ROWS // 240


def test_a_kline_without_a_finite_price_or_volume_is_refused_with_its_time(tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("open_time_ms,open,high,low,close,volume\n60000,1,2,0.5,1.5,4\n120000,1,,0.5,1.5,4\n"
                    "180000,1,2,0.5,1.5,inf\n")
    with pytest.raises(ValueError, match="2 klines with a missing or non-finite price or volume, the first "
                                         "opening at 120000"):
        read_kline_file(path)
