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
