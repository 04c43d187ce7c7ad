"""The `cryptobot` command: one subcommand per job, each a thin wrapper over a run(...)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.logging_setup import configure_logging
from jobs.backtest_arguments import add_backtest_arguments


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

    produce = commands.add_parser("produce", help="poll the exchanges' closed klines and market data into Kafka")
    produce.add_argument("--once", action="store_true", help="one poll round (backfilling what is missing), then exit")
    produce.add_argument("--since", type=parse_utc_ms, default=None,
                         help="backfill from this UTC date or time (e.g. 2024-01-01) where Kafka has nothing yet")

    replay = commands.add_parser("replay", help="replay klines from a file or the sample series into Kafka, "
                                                "or a Kafka topic into a fresh bronze table")
    replay.add_argument("--from", dest="source", choices=("sample", "file", "kafka"), required=True)
    replay.add_argument("--file", help="CSV or Parquet of klines (with --from file)")
    replay.add_argument("--exchange", default="binance", help="exchange to label the klines with (default binance)")
    replay.add_argument("--symbol", default="BTCUSDT", help="canonical symbol to label them with (default BTCUSDT)")
    replay.add_argument("--interval", default="1m", help="interval of the file's klines (default 1m)")
    replay.add_argument("--derive", default=None,
                        help="comma-separated longer intervals to derive (default: the configured intervals)")
    replay.add_argument("--speed", type=float, default=None,
                        help="scaled time: 60 = one hour of klines a minute (default: full speed)")
    replay.add_argument("--kind", choices=("klines", "market"), default="klines", help="topic kind (--from kafka)")
    replay.add_argument("--tag", help="names the fresh table bronze.<exchange>_<kind>__<tag> (--from kafka)")
    replay.add_argument("--starting-offsets", default="earliest",
                        help='"earliest", "latest", or Spark\'s JSON per partition (--from kafka)')
    replay.add_argument("--starting-time", type=parse_utc_ms, default=None,
                        help="start at the first message at or after this UTC time (--from kafka)")

    stream = commands.add_parser("stream", help="run the streaming app (Kafka -> bronze -> silver -> unified -> "
                                                "analytics -> signals)")
    stream.add_argument("--available-now", action="store_true",
                        help="process everything available, then exit")
    stream.add_argument("--max-offsets-per-trigger", type=int, default=None,
                        help="Kafka messages per micro-batch at most (default: [streaming] in the config)")
    stream.add_argument("--from", dest="from_stage", choices=("bronze", "silver", "unified", "analytics", "signals"),
                        default="bronze", help="start the pipeline at this stage (default: bronze); with --until, "
                                               "a scheduler runs the stages on cadences of their own")
    stream.add_argument("--until", choices=("bronze", "silver", "unified", "analytics", "signals"), default="signals",
                        help="run the pipeline up to this stage only (default: all of it)")
    stream.add_argument("--trigger-interval-seconds", type=int, default=None,
                        help="seconds between micro-batches (default: [streaming] in the config)")

    sanity = commands.add_parser("sanity", help="check bronze -> silver reconciliation and the unified klines; "
                                                "exit 1 when a check fails")
    sanity.add_argument("--max-staleness-minutes", type=float, default=None,
                        help="fail a stream whose last closed candle is older than this (default: report only)")
    sanity.add_argument("--symbol", action="append", default=None,
                        help="check only this canonical symbol (repeatable; default: all)")

    symbols = commands.add_parser("symbols", help="show which market each symbol is on each exchange; with --check, "
                                                  "hold that against the exchanges' market lists (exit 1 on a problem)")
    symbols.add_argument("--check", action="store_true", help="load each exchange's markets through ccxt and check")

    scan = commands.add_parser("scan", help="find the strategies' setups in the analytics tables (what the stream "
                                            "does per batch) into gold.signals_all")
    scan.add_argument("--since", type=parse_utc_ms, default=None, help="only setups triggered from this UTC time on")

    score = commands.add_parser("score", help="score the pending and watchlisted signals and move their status")
    score.add_argument("--calibrate", action="store_true",
                       help="first measure outcomes of backtest trades and closed positions into "
                            "gold.scorer_calibration")
    score.add_argument("--report", action="store_true",
                       help="print the realised win rate per score bucket (and score nothing)")

    commands.add_parser("execute", help="place the entries of confirmed signals (paper by default), under the "
                                        "risk guards of gold.trading_config")
    commands.add_parser("manage", help="reconcile orders and positions with the exchange; protect, move to "
                                       "breakeven and close positions")

    monitor = commands.add_parser("monitor", help="signals, positions, P&L and the pipeline's health at a glance")
    monitor.add_argument("--format", choices=("table", "json"), default="table")
    monitor.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                         help="refresh every SECONDS until Ctrl-C (one Spark session throughout)")

    settle = commands.add_parser("settle", help="before switching account: cancel the configured account's working "
                                                "entries and close its positions at market; --abandon-paper marks "
                                                "the paper account's orders and positions abandoned instead")
    settle.add_argument("--abandon-paper", action="store_true",
                        help="paper state only: mark it cancelled / abandoned (audited), touching no exchange")

    demo = commands.add_parser("demo", help="paper-trade the history in the lake as if live: step a clock through "
                                            "it, scoring, executing and managing as of each step; check the books")
    demo.add_argument("--step-minutes", type=int, default=15, help="manager turns while a position is open")
    demo.add_argument("--days", type=float, help="only the signals of the last DAYS days of klines")
    demo.add_argument("--report", metavar="DIR", default=None,
                      help="where the report of what was traded goes (default: <data_dir>/demo-report)")

    backtest = commands.add_parser("backtest", help="run the live strategy over silver.unified_klines (pinned at its "
                                                    "current version) or a kline file into gold.backtest_results / "
                                                    "_trades / _equity")
    add_backtest_arguments(backtest)

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
    from common import init_tables

    spark = build_spark_session(config, "cryptobot-init", register=False)
    try:
        print(init_tables.run(spark, config).describe())
    finally:
        spark.stop()
    return 0


def _sql(args, config) -> int:
    from common.job_runs import first_line
    from common.spark_session import build_spark_session
    from common.sql_query import format_result, run_sql

    spark = build_spark_session(config, "cryptobot-sql")
    try:
        columns, rows, truncated = run_sql(spark, args.query, args.max_rows)
    except Exception as err:  # noqa: BLE001 - show Spark's message, not a Py4J trace
        print(f"sql error: {first_line(err)}", file=sys.stderr)
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
    from jobs.kafka_broker import BrokerError, LocalKafkaBroker, ensure_topics

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


def _produce(args, config) -> int:
    from streaming.producers.run import run_producers

    report = run_producers(config, once=args.once, since_ms=args.since)
    print(report.describe())
    return 0 if report.ok else 1


def _replay(args, config) -> int:
    from streaming import replay

    if args.source == "kafka":
        if not args.tag:
            print("replay --from kafka needs --tag (the fresh table's name suffix)", file=sys.stderr)
            return 2
        from common.spark_session import build_spark_session

        spark = build_spark_session(config, "cryptobot-replay")
        try:
            table, rows = replay.replay_topic_to_bronze(
                spark, config, exchange=args.exchange, kind=args.kind, tag=args.tag,
                starting_offsets=args.starting_offsets, starting_timestamp_ms=args.starting_time)
        finally:
            spark.stop()
        print(f"replayed {rows} messages into {table}")
        return 0
    derive = args.derive.split(",") if args.derive else [i for i in config.exchanges.intervals if i != args.interval]
    if args.source == "sample":
        from streaming.sample_data import SAMPLE_SOURCE, sample_path

        path, source = sample_path(), SAMPLE_SOURCE
    else:
        if not args.file:
            print("replay --from file needs --file", file=sys.stderr)
            return 2
        path, source = args.file, None
    report = replay.replay_file(config, path, exchange=args.exchange, symbol=args.symbol, interval=args.interval,
                                derive=derive, source=source, speed=args.speed)
    print(report.describe())
    return 0


def _stream(args, config) -> int:
    from dataclasses import replace

    from streaming.app import run_stream

    overrides = {"max_offsets_per_trigger": args.max_offsets_per_trigger,
                 "trigger_interval_seconds": args.trigger_interval_seconds}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if any(v < 1 for v in overrides.values()):
        print("stream: --max-offsets-per-trigger and --trigger-interval-seconds must be at least 1", file=sys.stderr)
        return 2
    config = replace(config, streaming=replace(config.streaming, **overrides))
    from streaming.app import STAGE_NAMES

    first, stages = STAGE_NAMES.index(args.from_stage), STAGE_NAMES.index(args.until) + 1
    if first >= stages:
        print(f"stream: --from {args.from_stage} comes after --until {args.until}", file=sys.stderr)
        return 2
    print(_recorded(config, "stream", lambda spark: run_stream(spark, config, available_now=args.available_now,
                                                               stages=stages, first_stage=first),
                    details=f"from={args.from_stage} until={args.until} available_now={args.available_now}")
          .describe())
    return 0


def _sanity(args, config) -> int:
    from common.sanity_checks import FAIL, check_unified, format_report, reconcile_bronze_to_silver, record_results

    def checks(spark):
        found = reconcile_bronze_to_silver(spark, config, symbols=args.symbol) + check_unified(
            spark, config, max_staleness_minutes=args.max_staleness_minutes, symbols=args.symbol)
        return found, record_results(spark, found)

    results, run_id = _recorded(config, "sanity", checks)
    print(format_report(results))
    print(f"recorded in gold.sanity_results, run_id {run_id}")
    return 1 if any(r.status == FAIL for r in results) else 0


def _scan(args, config) -> int:
    from streaming import signal_scanner

    found = _recorded(config, "signal_scanner", lambda spark: signal_scanner.run(spark, config, since_ms=args.since))
    print(f"setups found: {found}")
    return 0


def _score(args, config) -> int:
    from common.spark_session import build_spark_session
    from common.trading import statistical_scorer

    if args.report:
        spark = build_spark_session(config, "cryptobot-score")
        try:
            print(statistical_scorer.report(spark, config))
        finally:
            spark.stop()
        return 0

    def score(spark):
        if args.calibrate:
            print(statistical_scorer.run_calibration(spark, config))
        return statistical_scorer.run(spark, config)

    print(_recorded(config, "statistical_scorer", score).describe())
    return 0


def _execute(args, config) -> int:
    from common.trading import execution_engine

    return _trading_job(config, "execution_engine", execution_engine.run)


def _manage(args, config) -> int:
    from common.trading import position_manager

    return _trading_job(config, "position_manager", position_manager.run)


def _settle(args, config) -> int:
    from common.trading import settle_account

    print(_recorded(config, "settle_account",
                    lambda spark: settle_account.run(spark, config, args.abandon_paper)).describe())
    return 0


def _trading_job(config, name: str, run) -> int:
    print(_recorded(config, name, lambda spark: run(spark, config)).describe())
    return 0


def _monitor(args, config) -> int:
    import time

    from common.spark_session import build_spark_session
    from streaming import signals_monitor

    if args.watch is not None and args.watch <= 0:
        print("monitor: --watch must be a positive number of seconds", file=sys.stderr)
        return 2
    spark = build_spark_session(config, "cryptobot-monitor")
    try:
        while True:
            text = signals_monitor.render(signals_monitor.collect(spark, config), args.format)
            if args.watch is None:
                print(text)
                return 0
            print("\033[2J\033[H" + time.strftime("%Y-%m-%d %H:%M:%S") + "\n" + text, flush=True)
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0
    finally:
        spark.stop()


def _demo(args, config) -> int:
    from common.trading import paper_replay

    from streaming import signals_monitor

    report_dir = args.report or str(Path(config.paths.data_dir) / "demo-report")

    def replay_then_show(spark):
        replayed = paper_replay.run(spark, config, step_minutes=args.step_minutes, days=args.days)
        print(signals_monitor.render(signals_monitor.collect(spark, config)))
        print(f"\nreport of what was traded: {paper_replay.write_trading_report(spark, config, report_dir)}")
        run_id, differences = paper_replay.compare_with_backtest(spark, config, replayed.traded_from_ms)
        replayed.checks[f"the backtest of the same klines ({run_id}) closed the same trades"] = (
            "; ".join(differences[:5]) if differences else None)
        return replayed

    report = _recorded(config, "paper_replay", replay_then_show)
    print(report.describe())
    return 0 if report.reconciled else 1


def _backtest(args, config) -> int:
    from common.backtest import backtesting

    print(_recorded(config, "backtest", lambda spark: backtesting.run_from_args(spark, config, args)).describe())
    return 0


def _recorded(config, job: str, work, details: str | None = None):
    """work(spark) in a session of its own, recorded in gold.job_runs as a run of `job`."""
    from common.job_runs import run_recorded
    from common.spark_session import build_spark_session

    spark = build_spark_session(config, f"cryptobot-{job.replace('_', '-')}")
    try:
        return run_recorded(spark, config, job, lambda: work(spark), details=details)
    finally:
        spark.stop()


def _symbols(args, config) -> int:
    from streaming import symbol_check

    return symbol_check.run(config, check=args.check)


def parse_utc_ms(text: str) -> int:
    """'2024-01-01' or '2024-01-01T12:00' (UTC unless an offset is given) -> epoch ms."""
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2024-01-01 or 2024-01-01T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


COMMANDS = {"init": _init, "sql": _sql, "sql-init-script": _sql_init_script, "kafka": _kafka,
            "produce": _produce, "replay": _replay, "stream": _stream, "sanity": _sanity,
            "symbols": _symbols, "scan": _scan, "score": _score,
            "execute": _execute, "manage": _manage, "settle": _settle, "monitor": _monitor, "demo": _demo,
            "backtest": _backtest}

if __name__ == "__main__":
    sys.exit(main())
