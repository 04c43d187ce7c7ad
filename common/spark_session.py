"""The one place a SparkSession is built: Delta, the project's jars, UTC, small-machine sizing.

Every job and test gets its session here, and every session registers the lake's tables
(common/catalog.py) so that `SELECT * FROM silver.unified_klines` works in any process.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from common.config import PROJECT_ROOT, AppConfig
from common.config_audit import USER_METADATA_KEY, commit_user_metadata

SPARK_JARS_DIR = PROJECT_ROOT / "jars" / "spark"
SPARK_CONF_DIR = PROJECT_ROOT / "conf"

# Also in conf/spark-defaults.conf; set here too so a session is right even where another
# spark-defaults.conf is in force (a cluster's).
ESSENTIAL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.session.timeZone": "UTC",
    # Streams read Kafka through the V1 source: Spark 4.1.1's V2 Kafka micro-batch stream
    # throws a NullPointerException in its progress metrics when a query restarts on a batch
    # that was planned but not committed (after a crash): SPARK-55271 / SPARK-57438.
    "spark.sql.streaming.disabledV2MicroBatchReaders":
        "org.apache.spark.sql.kafka010.KafkaSourceProvider",
}


def project_spark_jars(jars_dir: Path = SPARK_JARS_DIR) -> list[str]:
    """The Delta and Kafka-source jars `make setup` fetched, as absolute paths."""
    jars = sorted(str(jar) for jar in jars_dir.glob("*.jar"))
    if not any("delta-spark" in jar for jar in jars):
        raise RuntimeError(f"no Delta jar in {jars_dir}: run `make setup` first")
    return jars


def launched_by_spark_submit() -> bool:
    """spark-submit starts the JVM first and hands Python its gateway; its --master,
    --jars and --conf are then already in force and must not be overridden."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_spark_session(config: AppConfig, app_name: str, extra_conf: dict[str, str] | None = None,
                        register: bool = True):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if not launched_by_spark_submit():
        # Read by the spark-submit that pyspark runs to start the JVM: spark-defaults.conf
        # and log4j2.properties come from conf/.
        os.environ.setdefault("SPARK_CONF_DIR", str(SPARK_CONF_DIR))
        # Python workers (applyInPandas) run this interpreter, with its packages, unless told otherwise.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.master(config.spark.master).config("spark.jars", ",".join(project_spark_jars()))
        if config.spark.master.startswith("local"):
            # A laptop's driver talks to itself only: stay on loopback.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            builder = builder.config("spark.driver.host", "127.0.0.1").config(
                "spark.driver.bindAddress", "127.0.0.1")
    settings = {
        **ESSENTIAL_CONF,
        "spark.sql.shuffle.partitions": str(config.spark.shuffle_partitions),
        "spark.sql.warehouse.dir": f"{config.lake.root.rstrip('/')}/_warehouse",
        # Who made each Delta commit (gold.trading_config's changes are audited by it).
        USER_METADATA_KEY: commit_user_metadata(),
        **(extra_conf or {}),
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if register:
        from common.catalog import register_tables

        register_tables(spark, config)
    return spark
