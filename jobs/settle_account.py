"""Settle the account's trading state before a switch: `spark-submit jobs/settle_account.py [--abandon-paper]`, `cryptobot settle`.

The stage, and what each way of settling does, is common/trading/settle_account.py."""
from common.trading.settle_account import run


def main() -> None:
    import argparse

    from jobs.entrypoint import run_job

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--abandon-paper", action="store_true")
    args = parser.parse_args()
    run_job("settle_account", lambda spark, config: run(spark, config, args.abandon_paper),
            print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
