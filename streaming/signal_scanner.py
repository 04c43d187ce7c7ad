"""Signal scanner as a batch job: the strategies over the whole of gold.liquidity_zones and
gold.bos_warnings (the stream runs the same code per micro-batch). Safe to run any time:
signals already found keep their id, status and score. `cryptobot scan`, `spark-submit jobs/signal_scanner.py`."""
from __future__ import annotations

from pyspark.sql import functions as F

from common.catalog import table_location, table_spec
from streaming.signals import insert_new_signals, scan_zone_changes


def run(spark, config, since_ms: int | None = None) -> int:
    """Insert the setups triggered at or after `since_ms` (all when None); returns how many were
    found (new or already there)."""
    zones = spark.read.format("delta").load(table_location(config, table_spec(config, "gold.liquidity_zones")))
    if since_ms is not None:
        zones = zones.where(F.col("known_at_ms") >= since_ms)
    signals = scan_zone_changes(spark, config, zones)
    return 0 if signals is None else insert_new_signals(spark, config, signals)
