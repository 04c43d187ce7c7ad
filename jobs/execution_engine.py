"""The execution engine's entry point: `spark-submit jobs/execution_engine.py`, `cryptobot execute`.

The stage (its guards, sizing and the exactly-once entry) is common/trading/execution_engine.py."""
from common.trading.execution_engine import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("execution_engine", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
