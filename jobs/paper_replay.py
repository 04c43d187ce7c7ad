"""The paper replay's entry point: `spark-submit jobs/paper_replay.py`, part of `cryptobot demo`.

The replay (the scorer, engine and manager as of each moment of history) is common/trading/paper_replay.py."""
from common.trading.paper_replay import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("paper_replay", run, print_result=lambda r: print(r.describe()))


if __name__ == "__main__":
    main()
