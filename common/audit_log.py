"""trading.audit_log: one row per status change of a signal, an order or a position, with its
time, reason and actor. Written by the signal scanner, the scorer, the execution engine and
the position manager; each event's id is derived from what it records, so a re-run adds
nothing twice."""
from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession

from common.catalog import location_of
from common.config import AppConfig
from common.delta_conflicts import retry_on_conflict


def append_audit(spark: SparkSession, config: AppConfig, audit: DataFrame) -> None:
    """Insert the audit rows whose event_id is not there yet. Every writer of the table audits
    through here, so two of them often meet on a day's partition: the MERGE that loses the race
    runs again (keyed on event_id, a repeat adds nothing)."""

    target = DeltaTable.forPath(spark, location_of(config, "trading.audit_log"))
    retry_on_conflict(lambda: (target.alias("t").merge(audit.alias("s"), "t.event_id = s.event_id")
                               .whenNotMatchedInsertAll().execute()), "trading.audit_log")


def append_applied_moves(spark: SparkSession, config: AppConfig, audit: DataFrame) -> None:
    """Append the audit rows of status moves the caller's conditional MERGE has just made (only
    where the row still had its old status). A move (entity, from, to) happens once: the status
    graph has no cycle and only the writer that moved the row audits it, so the rows are new and
    a plain append (one write) replaces the MERGE on event_id (a join and a rewrite, seconds on
    every scorer step)."""
    audit.write.format("delta").mode("append").save(location_of(config, "trading.audit_log"))
