"""The signal scanner's entry point: `spark-submit jobs/signal_scanner.py`, `cryptobot scan`.

The scan (the stream's strategies over the whole tables) is streaming/signal_scanner.py."""
from streaming.signal_scanner import run


def main() -> None:
    from jobs.entrypoint import run_job

    run_job("signal_scanner", run, print_result=lambda n: print(f"setups found: {n}"))


if __name__ == "__main__":
    main()
