"""`cryptobot init` builds the whole catalog on real Delta tables, idempotently, and the trading
config it seeds is read, updated through SQL and validated as users will do it."""
import json
import shutil
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from common.catalog import DATABASES, table_location, table_specs
from common.config import ConfigError
from common.config_audit import audit_config_changes
from common.trading_config import read_trading_config
from common import init_tables
from common.sql_query import run_sql


@pytest.fixture
def restore_trading_config(spark, initialized_lake):
    table = spark.table("gold.trading_config")
    saved = spark.createDataFrame(table.collect(), table.schema)
    yield
    saved.write.format("delta").mode("overwrite").saveAsTable("gold.trading_config")


def first_commit_metadata(location: str) -> dict:
    """The table's metaData action as Delta wrote it (cheaper than DESCRIBE DETAIL per table)."""
    commit = Path(location) / "_delta_log" / ("0" * 20 + ".json")
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    return next(a["metaData"] for a in actions if "metaData" in a)


def table_versions(spark, config):
    return {spec.qualified_name: DeltaTable.forPath(spark, table_location(config, spec)).history(1)
            .select("version").first()[0] for spec in table_specs(config)}


def test_init_creates_every_catalog_table_with_its_schema_and_partitioning(spark, app_config, initialized_lake):
    specs = table_specs(app_config)
    assert sorted(initialized_lake.created) == sorted(s.qualified_name for s in specs)
    names = {f"{r.namespace}.{r.tableName}" for db in DATABASES for r in spark.sql(f"SHOW TABLES IN {db}").collect()}
    for spec in specs:
        assert spec.qualified_name in names
        assert spark.table(spec.qualified_name).columns == spec.column_names(), spec.qualified_name
        metadata = first_commit_metadata(table_location(app_config, spec))
        assert metadata["partitionColumns"] == list(spec.partitioned_by), spec.qualified_name
        for key, value in spec.properties.items():
            assert metadata["configuration"].get(key) == value, (spec.qualified_name, key)
    assert {"bronze.binance_klines", "silver.quarantine", "silver.consolidated_klines", "gold.signals_all",
            "gold.job_runs", "trading.audit_log", "trading.daily_pnl"} <= names


def test_money_columns_of_trading_tables_are_decimals(spark, initialized_lake):
    types = dict(spark.table("trading.orders").dtypes)
    assert types["price"] == types["amount"] == types["fee"] == "decimal(38,18)"


def test_bronze_is_append_only(spark, initialized_lake):
    with pytest.raises(Exception, match="(?i)append"):
        spark.sql("DELETE FROM bronze.binance_klines WHERE offset < 0")


def test_init_twice_changes_nothing(spark, app_config, initialized_lake):
    before = table_versions(spark, app_config)
    report = init_tables.run(spark, app_config)
    assert report.created == [] and report.config_defaults_added == [] and report.columns_added == {}
    assert table_versions(spark, app_config) == before


def test_init_never_overwrites_a_value_the_user_changed(spark, app_config, restore_trading_config):
    spark.sql("UPDATE gold.trading_config SET param_value = '0.5' WHERE param_name = 'risk_per_trade_pct'")
    init_tables.run(spark, app_config)
    assert read_trading_config(spark).risk_per_trade_pct == 0.5


def test_init_restores_a_deleted_parameter_with_its_default(spark, app_config, restore_trading_config):
    spark.sql("DELETE FROM gold.trading_config WHERE param_name = 'min_rr_ratio'")
    with pytest.raises(ConfigError, match="min_rr_ratio: missing"):
        read_trading_config(spark)
    report = init_tables.run(spark, app_config)
    assert report.config_defaults_added == ["min_rr_ratio"]
    assert read_trading_config(spark).min_rr_ratio == 2.0


def test_update_through_sql_is_seen_by_the_next_read(spark, restore_trading_config):
    columns, rows, _ = run_sql(
        spark, "UPDATE gold.trading_config SET param_value = '75', updated_at = current_timestamp() "
               "WHERE param_name = 'score_threshold_execute'", max_rows=10)
    assert rows == [(1,)]
    assert read_trading_config(spark).score_threshold_execute == 75


def test_out_of_range_update_is_refused_when_the_config_is_read(spark, restore_trading_config):
    spark.sql("UPDATE gold.trading_config SET param_value = '12' WHERE param_name = 'risk_per_trade_pct'")
    spark.sql("UPDATE gold.trading_config SET param_value = 'kraken' WHERE param_name = 'trading_exchange'")
    with pytest.raises(ConfigError) as err:
        read_trading_config(spark)
    assert "risk_per_trade_pct = '12': out of range" in str(err.value)
    assert "trading_exchange = 'kraken': unknown value" in str(err.value)


def test_a_table_missing_new_catalog_columns_gets_them_added(spark, app_config, initialized_lake):
    spec = next(s for s in table_specs(app_config) if s.qualified_name == "gold.job_runs")
    # An older release's table: same place, fewer columns.
    spark.sql(f"DROP TABLE {spec.qualified_name}")
    shutil.rmtree(table_location(app_config, spec))
    spark.sql(f"CREATE TABLE {spec.qualified_name} (run_id STRING, job STRING) USING DELTA "
              f"LOCATION '{table_location(app_config, spec)}'")
    report = init_tables.run(spark, app_config)
    assert report.columns_added["gold.job_runs"][:2] == ["started_at", "ended_at"]
    assert spark.table("gold.job_runs").columns == spec.column_names()


def test_a_trading_config_made_before_its_change_feed_gets_it_and_its_changes_are_audited(
        spark, app_config, restore_trading_config):
    spark.sql("ALTER TABLE gold.trading_config UNSET TBLPROPERTIES ('delta.enableChangeDataFeed')")
    spark.sql("UPDATE gold.trading_config SET param_value = '4' WHERE param_name = 'slippage_bps'")  # unrecorded
    init_tables.run(spark, app_config)
    properties = {r.key: r.value for r in spark.sql("SHOW TBLPROPERTIES gold.trading_config").collect()}
    assert properties.get("delta.enableChangeDataFeed") == "true"
    spark.sql("UPDATE gold.trading_config SET param_value = '5' WHERE param_name = 'slippage_bps'")
    assert audit_config_changes(spark, app_config) >= 1
    [details] = [json.loads(r.details) for r in spark.table("trading.audit_log").where(
        "entity_type = 'trading_config' AND entity_id = 'slippage_bps'").collect()
        if json.loads(r.details)["new_value"] == "5"]
    assert details["old_value"] == "4"
