"""Sanity check of silver.unified_klines: no duplicate keys, OHLC invariants, gaps with their
time ranges, freshness per stream. spark-submit entry; `cryptobot sanity` runs it too."""
from __future__ import annotations

from jobs.sanity_checks import check_unified, format_report, record_results


def run(spark, config, max_staleness_minutes: float | None = None):
    results = check_unified(spark, config, max_staleness_minutes=max_staleness_minutes)
    record_results(spark, results)
    return results


def main() -> None:
    import sys

    from jobs.entrypoint import run_job

    results = run_job("sanity_check_unified_silver", run, print_result=lambda r: print(format_report(r)))
    sys.exit(1 if any(r.status == "fail" for r in results) else 0)


if __name__ == "__main__":
    main()
