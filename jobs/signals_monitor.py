"""The monitor's entry point: `spark-submit jobs/signals_monitor.py`, `cryptobot monitor`.

What it reports (signals, positions, P&L, Kafka lag, freshness, quarantine, job runs) is
streaming/signals_monitor.py."""
from streaming.signals_monitor import render, run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("signals_monitor", run, print_result=lambda sections: print(render(sections)), record=False)


if __name__ == "__main__":
    main()
