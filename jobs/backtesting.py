"""The backtester's entry point: `spark-submit jobs/backtesting.py [--config F] [--set K=V] [--walk-forward]`, `cryptobot backtest`.

The run (the live strategy, scorer and trade rules over history) is common/backtest/backtesting.py."""
import argparse

from common.backtest.backtesting import run_from_args


def main() -> None:
    from jobs.backtest_arguments import add_backtest_arguments
    from jobs.entrypoint import run_job

    parser = argparse.ArgumentParser(description="the live strategy on history")
    add_backtest_arguments(parser)
    args = parser.parse_args()
    run_job("backtesting", lambda spark, config: run_from_args(spark, config, args),
            print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
