"""Lake set-up's entry point: `spark-submit jobs/init_tables.py`, `cryptobot init`.

What it creates and registers is common/init_tables.py (tables from common/catalog.py)."""
from common.init_tables import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("init_tables", run, print_result=lambda report: print(report.describe()))


if __name__ == "__main__":
    main()
