"""The kline intervals every exchange here serves, and their lengths: a leaf every layer may
import (the config, the analytics, the stages), importing nothing of ours."""

# Interval name -> length in milliseconds.
INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}


def interval_ms_of(column: str):
    """Spark: the length in ms of the interval named in `column` (null for an unknown interval)."""
    from pyspark.sql import functions as F  # in here: the pure maths that import this leaf need no pyspark

    lengths = F.create_map(*[x for name, ms in INTERVAL_MS.items() for x in (F.lit(name), F.lit(ms))])
    return F.element_at(lengths, F.col(column))
