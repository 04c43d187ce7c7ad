"""The statistical scorer's entry point: `spark-submit jobs/statistical_scorer.py`, `cryptobot score`.

The stage is common/trading/statistical_scorer.py; its maths common/scoring.py."""
from common.trading.statistical_scorer import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("statistical_scorer", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
