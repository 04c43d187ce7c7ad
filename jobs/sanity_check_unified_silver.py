"""Sanity check of silver.unified_klines: no duplicate keys, OHLC invariants, gaps with their
time ranges, freshness per stream. spark-submit entry; `cryptobot sanity` runs it too. The
checks are common/sanity_checks.py."""
from common.sanity_checks import check_unified
from jobs.entrypoint import run_sanity_job


def main() -> None:
    run_sanity_job("sanity_check_unified_silver", check_unified)


if __name__ == "__main__":
    main()
