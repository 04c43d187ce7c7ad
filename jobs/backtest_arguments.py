"""The arguments of a backtest, shared by `cryptobot backtest` (jobs/cli.py) and
`spark-submit jobs/backtesting.py`: light (no pyspark), so the CLI's --help stays quick."""
import argparse


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None,
                        help="the backtest's YAML (default: backtest.yaml beside the app config)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of the YAML, e.g. --set symbols=BTCUSDT,ETHUSDT (repeatable)")
    parser.add_argument("--walk-forward", action="store_true",
                        help="calibrate on rolling train windows, trade each following test window only")
    parser.add_argument("--klines", metavar="FILE", help="a CSV/Parquet file of one symbol's klines instead of "
                                                         "silver.unified_klines (its interval: kline_file_interval)")
    parser.add_argument("--report", metavar="DIR", help="write an HTML report with charts to DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
