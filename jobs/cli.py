"""The `cryptobot` command: one subcommand per job, each a thin wrapper over a run(...)."""
from __future__ import annotations

import argparse
import sys

from common.config import ConfigError, load_config
from common.logging_setup import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cryptobot", description=__doc__)
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("init", help="create the databases, tables and default trading config")

    sql = commands.add_parser("sql", help="run Spark SQL over the lake's tables")
    sql.add_argument("query", help='e.g. "SELECT * FROM gold.trading_config"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument("--max-rows", type=int, default=1000, help="rows printed at most (default 1000)")

    commands.add_parser("sql-init-script",
                        help="print the SQL that registers the tables (for spark-sql -i)")

    kafka = commands.add_parser(
        "kafka", help="the local Kafka broker: up, down, status; topics creates the topics on any broker")
    kafka.add_argument("action", choices=("up", "down", "status", "topics"))

    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = load_config()
        return COMMANDS[args.command](args, config)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


def _init(args, config) -> int:
    from common.spark_session import build_spark_session
    from jobs import init_tables

    spark = build_spark_session(config, "cryptobot-init", register=False)
    try:
        print(init_tables.run(spark, config).describe())
    finally:
        spark.stop()
    return 0


def _sql(args, config) -> int:
    from common.spark_session import build_spark_session
    from jobs.sql_query import format_result, run_sql

    spark = build_spark_session(config, "cryptobot-sql")
    try:
        columns, rows, truncated = run_sql(spark, args.query, args.max_rows)
    except Exception as err:  # noqa: BLE001 - show Spark's message, not a Py4J trace
        print(f"sql error: {_first_line(err)}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    print(format_result(columns, rows, args.format))
    if truncated:
        print(f"(only the first {args.max_rows} rows are shown; use --max-rows)", file=sys.stderr)
    return 0


def _sql_init_script(args, config) -> int:
    from common.catalog import registration_script

    print(registration_script(config), end="")
    return 0


def _kafka(args, config) -> int:
    from common.kafka_broker import BrokerError, LocalKafkaBroker, ensure_topics

    broker = LocalKafkaBroker(config)
    try:
        if args.action == "topics":
            created = ensure_topics(config)
            print(f"topics created: {', '.join(created) if created else 'none (all exist)'}")
        elif args.action == "up":
            pid = broker.start()
            print(broker.status().describe())
            print(f"broker log: {broker.output_path} (pid {pid})")
        elif args.action == "down":
            print("kafka broker stopped" if broker.stop() else "kafka broker was not running")
        else:
            status = broker.status()
            print(status.describe())
            return 0 if status.reachable else 3
    except BrokerError as err:
        print(f"kafka error: {err}", file=sys.stderr)
        return 1
    return 0


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


COMMANDS = {"init": _init, "sql": _sql, "sql-init-script": _sql_init_script, "kafka": _kafka}

if __name__ == "__main__":
    sys.exit(main())
