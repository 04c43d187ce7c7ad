"""Create the lake: the databases, every table of the catalog, the default trading config.

Idempotent: a second run changes nothing (no new table version anywhere) and never
overwrites a trading parameter a user has changed. A table that exists with fewer columns
than the catalog now defines gets the new columns added (an upgrade path, never a rewrite), and
the table properties it lacks.
`cryptobot init`, `make init`, or `spark-submit jobs/init_tables.py`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql.types import StructType

from common.catalog import (
    DATABASES, create_database_sql, create_table_sql, delta_table_exists, register_table_sql,
    table_location, table_specs,
)
from common.config import AppConfig
from common.trading_config import insert_missing_defaults

log = logging.getLogger(__name__)


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    columns_added: dict[str, list[str]] = field(default_factory=dict)
    config_defaults_added: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"tables created: {len(self.created)}, already there: {len(self.existing)}"]
        lines += [f"  created {name}" for name in self.created]
        lines += [f"  {name}: added columns {', '.join(cols)}" for name, cols in self.columns_added.items()]
        if self.config_defaults_added:
            lines.append("gold.trading_config defaults added: " + ", ".join(self.config_defaults_added))
        return "\n".join(lines)


def run(spark, config: AppConfig) -> InitReport:
    report = InitReport()
    for database in DATABASES:
        spark.sql(create_database_sql(config, database))
    for spec in table_specs(config):
        if delta_table_exists(spark, table_location(config, spec)):
            spark.sql(register_table_sql(config, spec))
            report.existing.append(spec.qualified_name)
            added = _add_missing_columns(spark, spec)
            if added:
                report.columns_added[spec.qualified_name] = added
            _set_missing_properties(spark, spec)
        else:
            spark.sql(create_table_sql(config, spec))
            report.created.append(spec.qualified_name)
            log.info("event=table_created table=%s location=%s", spec.qualified_name,
                     table_location(config, spec))
    report.config_defaults_added = insert_missing_defaults(spark)
    return report


def _add_missing_columns(spark, spec) -> list[str]:
    present = set(spark.table(spec.qualified_name).columns)
    wanted = StructType.fromDDL(spec.columns)
    # Delta cannot add a NOT NULL column to a table that has rows: added ones are nullable.
    missing = [f"{f.name} {f.dataType.simpleString()}" for f in wanted.fields if f.name not in present]
    if missing:
        spark.sql(f"ALTER TABLE {spec.qualified_name} ADD COLUMNS ({', '.join(missing)})")
        log.info("event=columns_added table=%s columns=%s", spec.qualified_name, missing)
    return [m.split()[0] for m in missing]


def _set_missing_properties(spark, spec) -> None:
    """A property the catalog added since the table was made (the change data feed of
    gold.trading_config) is set; one the user set otherwise is left as it is."""
    if not spec.properties:
        return
    present = {row.key for row in spark.sql(f"SHOW TBLPROPERTIES {spec.qualified_name}").collect()}
    missing = {k: v for k, v in spec.properties.items() if k not in present}
    if missing:
        props = ", ".join(f"'{k}' = '{v}'" for k, v in missing.items())
        spark.sql(f"ALTER TABLE {spec.qualified_name} SET TBLPROPERTIES ({props})")
        log.info("event=properties_set table=%s properties=%s", spec.qualified_name, missing)
