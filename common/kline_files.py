"""Klines from files (CSV or Parquet), and longer intervals derived from 1-minute klines.

Pure pandas, used by the file replay and the tests. A file needs an open time (column
`open_time` in ms, or `timestamp` in seconds, or `open_time_ms`) and open, high, low, close,
volume columns.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.intervals import INTERVAL_MS

KLINE_COLUMNS = ["open_time_ms", "open", "high", "low", "close", "volume"]


def read_kline_file(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.name.endswith((".csv", ".csv.gz")):
        frame = pd.read_csv(path)
    else:
        raise ValueError(f"{path}: unsupported kline file (use .csv, .csv.gz or .parquet)")
    frame = frame.rename(columns=str.lower)
    if "open_time_ms" not in frame:
        if "open_time" in frame:
            frame["open_time_ms"] = frame["open_time"]
        elif "timestamp" in frame:
            frame["open_time_ms"] = frame["timestamp"] * 1000  # unix seconds, as Bitstamp's export
        else:
            raise ValueError(f"{path}: no open_time, open_time_ms or timestamp column")
    missing = [c for c in KLINE_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}")
    frame = frame[KLINE_COLUMNS].astype({"open_time_ms": "int64", "open": "float64", "high": "float64",
                                         "low": "float64", "close": "float64", "volume": "float64"})
    bad = ~np.isfinite(frame[["open", "high", "low", "close", "volume"]].to_numpy()).all(axis=1)
    if bad.any():  # a backtest from a file has no silver layer to quarantine them: refuse, never guess
        raise ValueError(f"{path}: {int(bad.sum())} klines with a missing or non-finite price or volume, "
                         f"the first opening at {int(frame.open_time_ms[bad].iloc[0])}")
    return frame.sort_values("open_time_ms").drop_duplicates("open_time_ms", keep="last").reset_index(drop=True)


def resample_klines(klines: pd.DataFrame, source_interval: str, target_interval: str) -> pd.DataFrame:
    """Aggregate klines into a longer interval: first open, highest high, lowest low, last close,
    summed volume. A bucket the data does not reach to its end (the first one when the data starts
    mid-bucket, the last while it is still forming) is left out: it never closed in this data."""
    source_ms, target_ms = INTERVAL_MS[source_interval], INTERVAL_MS[target_interval]
    if target_ms % source_ms:
        raise ValueError(f"{target_interval} is not a whole number of {source_interval}")
    if klines.empty:
        return klines.copy()
    buckets = klines.assign(bucket=klines["open_time_ms"] // target_ms * target_ms)
    grouped = buckets.groupby("bucket", sort=True).agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"))
    first_seen, last_seen = klines["open_time_ms"].iloc[0], klines["open_time_ms"].iloc[-1]
    complete = (grouped.index >= first_seen) & (grouped.index + target_ms <= last_seen + source_ms)
    result = grouped[complete].reset_index().rename(columns={"bucket": "open_time_ms"})
    return result[KLINE_COLUMNS]
