"""The `cryptobot` command: a registry of subcommands (COMMANDS at the end), each a name, a help,
its arguments and what runs it, a thin wrapper over one stage's run(...).

Each command imports what it runs inside its own function: pyspark, delta and ccxt take seconds
to import, and `cryptobot --help` or a typo must not wait for them."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common.config import AppConfig, ConfigError, load_config
from common.logging_setup import configure_logging
from jobs.backtest_arguments import add_backtest_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cryptobot", description="the crypto trading bot: one subcommand per job")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    subcommands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(subcommands.add_parser(command.name, help=command.help))
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        config = load_config()
        return next(c for c in COMMANDS if c.name == args.command).run(args, config)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, its help, what runs it (args, config) -> exit status, and its
    arguments (defined beside what runs it below)."""
    name: str
    help: str
    run: Callable[[argparse.Namespace, AppConfig], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _init(args, config) -> int:
    from common.spark_session import build_spark_session
    from common import init_tables

    spark = build_spark_session(config, "cryptobot-init", register=False)
    try:
        print(init_tables.run(spark, config).describe())
    finally:
        spark.stop()
    return 0


def _sql_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", help='e.g. "SELECT * FROM gold.trading_config"')
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
    parser.add_argument("--max-rows", type=int, default=1000, help="rows printed at most (default 1000)")


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


def _kafka_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status", "topics"))


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


def _produce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="one poll round (backfilling what is missing), then exit")
    parser.add_argument("--since", type=parse_utc_ms, default=None,
                         help="backfill from this UTC date or time (e.g. 2024-01-01) where Kafka has nothing yet")


def _produce(args, config) -> int:
    from streaming.producers.run import run_producers

    report = run_producers(config, once=args.once, since_ms=args.since)
    print(report.describe())
    return 0 if report.ok else 1


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", choices=("sample", "file", "kafka"), required=True)
    parser.add_argument("--file", help="CSV or Parquet of klines (with --from file)")
    parser.add_argument("--exchange", default="binance", help="exchange to label the klines with (default binance)")
    parser.add_argument("--symbol", default="BTCUSDT", help="canonical symbol to label them with (default BTCUSDT)")
    parser.add_argument("--interval", default="1m", help="interval of the file's klines (default 1m)")
    parser.add_argument("--derive", default=None,
                        help="comma-separated longer intervals to derive (default: the configured intervals)")
    parser.add_argument("--speed", type=float, default=None,
                        help="scaled time: 60 = one hour of klines a minute (default: full speed)")
    parser.add_argument("--kind", choices=("klines", "market"), default="klines", help="topic kind (--from kafka)")
    parser.add_argument("--tag", help="names the fresh table bronze.<exchange>_<kind>__<tag> (--from kafka)")
    parser.add_argument("--starting-offsets", default="earliest",
                        help='"earliest", "latest", or Spark\'s JSON per partition (--from kafka)')
    parser.add_argument("--starting-time", type=parse_utc_ms, default=None,
                        help="start at the first message at or after this UTC time (--from kafka)")


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


def _stream_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--available-now", action="store_true",
                        help="process everything available, then exit")
    parser.add_argument("--max-offsets-per-trigger", type=int, default=None,
                        help="Kafka messages per micro-batch at most (default: [streaming] in the config)")
    parser.add_argument("--from", dest="from_stage", choices=("bronze", "silver", "unified", "analytics", "signals"),
                        default="bronze", help="start the pipeline at this stage (default: bronze); with --until, "
                                               "a scheduler runs the stages on cadences of their own")
    parser.add_argument("--until", choices=("bronze", "silver", "unified", "analytics", "signals"), default="signals",
                        help="run the pipeline up to this stage only (default: all of it)")
    parser.add_argument("--trigger-interval-seconds", type=int, default=None,
                        help="seconds between micro-batches (default: [streaming] in the config)")


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


def _sanity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-staleness-minutes", type=float, default=None,
                        help="fail a stream whose last closed candle is older than this (default: report only)")
    parser.add_argument("--symbol", action="append", default=None,
                        help="check only this canonical symbol (repeatable; default: all)")


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


def _scan_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", type=parse_utc_ms, default=None, help="only setups triggered from this UTC time on")


def _scan(args, config) -> int:
    from streaming import signal_scanner

    found = _recorded(config, "signal_scanner", lambda spark: signal_scanner.run(spark, config, since_ms=args.since))
    print(f"setups found: {found}")
    return 0


def _score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--calibrate", action="store_true",
                       help="first measure outcomes of backtest trades and closed positions into "
                            "gold.scorer_calibration")
    parser.add_argument("--report", action="store_true",
                       help="print the realised win rate per score bucket (and score nothing)")


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


def _settle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--abandon-paper", action="store_true",
                        help="paper state only: mark it cancelled / abandoned (audited), touching no exchange")


def _settle(args, config) -> int:
    from common.trading import settle_account

    print(_recorded(config, "settle_account",
                    lambda spark: settle_account.run(spark, config, args.abandon_paper)).describe())
    return 0


def _trading_job(config, name: str, run) -> int:
    print(_recorded(config, name, lambda spark: run(spark, config)).describe())
    return 0


def _monitor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                         help="refresh every SECONDS until Ctrl-C (one Spark session throughout)")


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


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--step-minutes", type=int, default=15, help="manager turns while a position is open")
    parser.add_argument("--days", type=float, help="only the signals of the last DAYS days of klines")
    parser.add_argument("--report", metavar="DIR", default=None,
                      help="where the report of what was traded goes (default: <data_dir>/demo-report)")


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


def _symbols_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="load each exchange's markets through ccxt and check")


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


COMMANDS = [
    Command("init", "create the databases, tables and default trading config",
            _init),
    Command("sql", "run Spark SQL over the lake's tables",
            _sql, _sql_arguments),
    Command("sql-init-script", "print the SQL that registers the tables (for spark-sql -i)",
            _sql_init_script),
    Command("kafka", "the local Kafka broker: up, down, status; topics creates the topics on any "
                     "broker",
            _kafka, _kafka_arguments),
    Command("produce", "poll the exchanges' closed klines and market data into Kafka",
            _produce, _produce_arguments),
    Command("replay", "replay klines from a file or the sample series into Kafka, or a Kafka "
                      "topic into a fresh bronze table",
            _replay, _replay_arguments),
    Command("stream", "run the streaming app (Kafka -> bronze -> silver -> unified -> analytics "
                      "-> signals)",
            _stream, _stream_arguments),
    Command("sanity", "check bronze -> silver reconciliation and the unified klines; exit 1 when "
                      "a check fails",
            _sanity, _sanity_arguments),
    Command("symbols", "show which market each symbol is on each exchange; with --check, hold "
                       "that against the exchanges' market lists (exit 1 on a problem)",
            _symbols, _symbols_arguments),
    Command("scan", "find the strategies' setups in the analytics tables (what the stream does "
                    "per batch) into gold.signals_all",
            _scan, _scan_arguments),
    Command("score", "score the pending and watchlisted signals and move their status",
            _score, _score_arguments),
    Command("execute", "place the entries of confirmed signals (paper by default), under the risk"
                       " guards of gold.trading_config",
            _execute),
    Command("manage", "reconcile orders and positions with the exchange; protect, move to "
                      "breakeven and close positions",
            _manage),
    Command("monitor", "signals, positions, P&L and the pipeline's health at a glance",
            _monitor, _monitor_arguments),
    Command("settle", "before switching account: cancel the configured account's working entries "
                      "and close its positions at market; --abandon-paper marks the paper "
                      "account's orders and positions abandoned instead",
            _settle, _settle_arguments),
    Command("demo", "paper-trade the history in the lake as if live: step a clock through it, "
                    "scoring, executing and managing as of each step; check the books",
            _demo, _demo_arguments),
    Command("backtest", "run the live strategy over silver.unified_klines (pinned at its current "
                        "version) or a kline file into gold.backtest_results / _trades / _equity",
            _backtest, add_backtest_arguments),
]


if __name__ == "__main__":
    sys.exit(main())
