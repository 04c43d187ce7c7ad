"""Every change to gold.trading_config is audited with its old and new value, the commit's time
and the OS user, however it was made, and before a trading job acts on it."""
import json

from pyspark.sql import functions as F

from common.config_audit import audit_config_changes, os_user
from common.catalog import location_of, read_table
from common.trading import position_manager


def config_audit(spark, config, param):
    return [dict(row.asDict(), **json.loads(row.details)) for row in
            read_table(spark, config, "trading.audit_log")
            .where((F.col("entity_type") == "trading_config") & (F.col("entity_id") == param)).collect()]


def latest_version(spark, config):
    return spark.sql(f"DESCRIBE HISTORY delta.`{location_of(config, 'gold.trading_config')}` LIMIT 1").first()


def test_an_update_in_sql_is_audited_once_with_old_and_new_value_time_and_user(spark, app_config, initialized_lake):
    audit_config_changes(spark, app_config)  # what earlier tests changed
    before = config_audit(spark, app_config, "slippage_bps")
    spark.sql("UPDATE gold.trading_config SET param_value = '7' WHERE param_name = 'slippage_bps'")
    commit = latest_version(spark, app_config)
    try:
        spark.sql("UPDATE gold.trading_config SET param_value = param_value")  # rewrites every row, changes none
        assert audit_config_changes(spark, app_config) == 1
        assert audit_config_changes(spark, app_config) == 0  # nothing twice
        [row] = [r for r in config_audit(spark, app_config, "slippage_bps") if r not in before]
        assert (row["old_value"], row["new_value"], row["reason"]) == ("2", "7", "changed")
        assert (row["actor"], row["table_version"], row["operation"]) == (os_user(), commit.version, "UPDATE")
        assert row["event_time"] == commit.timestamp
    finally:
        spark.sql("UPDATE gold.trading_config SET param_value = '2' WHERE param_name = 'slippage_bps'")
    audit_config_changes(spark, app_config)


def test_the_position_manager_audits_a_change_before_its_turn(spark, app_config, initialized_lake):
    audit_config_changes(spark, app_config)
    spark.sql("UPDATE gold.trading_config SET param_value = '0.03' WHERE param_name = 'maker_fee_pct'")
    try:
        position_manager.run(spark, app_config)
        assert [(r["old_value"], r["new_value"]) for r in config_audit(spark, app_config, "maker_fee_pct")
                if r["reason"] == "changed"][-1:] == [("0.02", "0.03")]
    finally:
        spark.sql("UPDATE gold.trading_config SET param_value = '0.02' WHERE param_name = 'maker_fee_pct'")
    audit_config_changes(spark, app_config)
