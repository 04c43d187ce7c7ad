"""Every change to gold.trading_config in trading.audit_log: the parameter, its old and new
value, when the change was committed and who made it, however it was made (an UPDATE in
`make sql`, a notebook, `cryptobot sql`).

The table keeps Delta's change data feed, so the changes since the last audited table version
come in one read. Who: every session this project builds stamps its Delta commits with the OS
user (`os_user=<name>` in the commit's userMetadata, common/spark_session.py); a commit made
elsewhere without it is audited as by `unknown`. The trading jobs audit at the start of each
run, before they read the config, so a change is on record before it is acted on.
"""
from __future__ import annotations

import getpass
import hashlib
import json
import logging
from dataclasses import dataclass

from common.scrub import scrub_secrets

log = logging.getLogger(__name__)
TABLE = "gold.trading_config"
ENTITY_TYPE = "trading_config"
USER_METADATA_KEY = "spark.databricks.delta.commitInfo.userMetadata"
UNKNOWN_USER = "unknown"


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no passwd entry and no USER
        return UNKNOWN_USER


def commit_user_metadata() -> str:
    return f"os_user={os_user()}"


def user_of(user_metadata: str | None) -> str:
    """The OS user a commit's userMetadata names (`os_user=alice`), else unknown."""
    for part in (user_metadata or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "os_user" and value:
            return value
    return UNKNOWN_USER


@dataclass(frozen=True)
class ConfigChange:
    version: int
    param_name: str
    old_value: str | None  # None: the row was added
    new_value: str | None  # None: the row was deleted


def config_changes(feed_rows: list[tuple[int, str, str, str | None]]) -> list[ConfigChange]:
    """feed_rows: (commit version, change type, param_name, param_value) from the change data
    feed. A rewrite that leaves a value as it was is no change; a version that adds and deletes
    the same parameter (a MERGE, a delete-then-insert) is one change from the old value to the new."""
    by_key: dict[tuple[int, str], dict[str, str | None]] = {}
    for version, change_type, name, value in feed_rows:
        sides = by_key.setdefault((version, name), {})
        if change_type in ("update_preimage", "delete"):
            sides["old"] = value
        elif change_type in ("update_postimage", "insert"):
            sides["new"] = value
    changes = []
    for (version, name), sides in sorted(by_key.items()):
        old, new = sides.get("old"), sides.get("new")
        if ("old" in sides) == ("new" in sides) and old == new:
            continue
        changes.append(ConfigChange(version, name, old, new))
    return changes


def audit_rows(changes: list[ConfigChange], commits: dict[int, tuple]) -> list[tuple]:
    """The trading.audit_log rows of the changes; commits: version -> (timestamp, userMetadata,
    operation). Values are scrubbed: a parameter is never a secret, but a pasted one must not
    be copied into a second table."""
    rows = []
    for change in changes:
        when, user_metadata, operation = commits[change.version]
        reason = ("added" if change.old_value is None else "removed" if change.new_value is None else "changed")
        details = {"param_name": change.param_name, "old_value": scrub_secrets(change.old_value),
                   "new_value": scrub_secrets(change.new_value), "table_version": change.version,
                   "operation": operation}
        event_id = hashlib.sha256(f"{ENTITY_TYPE}|{change.version}|{change.param_name}".encode()).hexdigest()
        rows.append((event_id, ENTITY_TYPE, change.param_name, None, None, reason, json.dumps(details),
                     user_of(user_metadata), when, when.date()))
    return rows


def change_feed_start(history: list[tuple[int, str, dict]]) -> int:
    """The first version with change data: that of the latest commit that turned the feed on
    (the table's creation, or init's ALTER on a table made before the feed was on)."""
    for version, _operation, parameters in sorted(history, reverse=True):
        if "delta.enableChangeDataFeed" in str((parameters or {}).get("properties", "")):
            return version
    return 0


# -- Spark side ---------------------------------------------------------------------------------

def audit_config_changes(spark, config) -> int:
    """Audit the changes committed since the last audited version; returns how many."""
    # In here: common/spark_session.py imports this module, whose pure part must stay light.
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from common.audit_log import append_audit
    from common.catalog import location_of, read_table
    from common.local_frames import local_frame

    path = location_of(config, TABLE)
    history = DeltaTable.forPath(spark, path).history().select(
        "version", "timestamp", "userMetadata", "operation", "operationParameters").collect()
    last_audited = (read_table(spark, config, "trading.audit_log").where(F.col("entity_type") == ENTITY_TYPE)
                    .agg(F.max(F.get_json_object("details", "$.table_version").cast("long"))).first()[0])
    # Changes made while the feed was off (turned off by hand, or before init turned it on) have
    # no record to read: the audit starts again where it was turned back on.
    feed_start = change_feed_start([(h.version, h.operation, h.operationParameters) for h in history])
    start = max(feed_start, last_audited + 1 if last_audited is not None else 0)
    if start > max(h.version for h in history):
        return 0
    feed = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", start).load(path)
            .select("_commit_version", "_change_type", "param_name", "param_value").collect())
    changes = config_changes([tuple(row) for row in feed])
    if not changes:
        return 0
    commits = {h.version: (h.timestamp, h.userMetadata, h.operation) for h in history}
    frame = local_frame(spark, audit_rows(changes, commits), read_table(spark, config, "trading.audit_log").schema)
    append_audit(spark, config, frame)
    for change in changes:
        log.info("event=trading_config_changed param=%s version=%d user=%s", change.param_name, change.version,
                 user_of(commits[change.version][1]))
    return len(changes)
