"""The bundled sample (14 days of BTC 1m klines) and its 15m, 1h and 4h bars, as the
backtester reads them: open_time_ms, close_time_ms, open, high, low, close, volume."""
from common.intervals import INTERVAL_MS
from common.kline_files import read_kline_file, resample_klines
from streaming.sample_data import sample_path


def sample_series(intervals=("15m", "1h", "4h")) -> dict:
    minutes = read_kline_file(sample_path())
    minutes["close_time_ms"] = minutes["open_time_ms"] + INTERVAL_MS["1m"] - 1
    series = {"1m": minutes}
    for interval in intervals:
        bars = resample_klines(minutes, "1m", interval)
        bars["close_time_ms"] = bars["open_time_ms"] + INTERVAL_MS[interval] - 1
        series[interval] = bars
    return series


def sample_days(path, days: int):
    """The sample's first `days` days of 1m klines, written as a kline file at `path` (for the
    stream tests that need whole days, not all fourteen): the path."""
    read_kline_file(sample_path()).head(days * 1440).to_csv(path, index=False)
    return path
