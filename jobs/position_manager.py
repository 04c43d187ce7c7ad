"""The position manager's entry point: `spark-submit jobs/position_manager.py`, `cryptobot manage`.

The stage (fills, stops, targets, closes) is common/trading/position_manager.py."""
from common.trading.position_manager import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("position_manager", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
