"""Sanity check: every bronze message reached silver (or was superseded there, or quarantined).
spark-submit entry; `cryptobot sanity` runs it together with the unified checks."""
from __future__ import annotations

from jobs.sanity_checks import format_report, reconcile_bronze_to_silver, record_results


def run(spark, config):
    results = reconcile_bronze_to_silver(spark, config)
    record_results(spark, results)
    return results


def main() -> None:
    import sys

    from jobs.entrypoint import run_job

    results = run_job("sanity_check_bronze_to_silver", run, print_result=lambda r: print(format_report(r)))
    sys.exit(1 if any(r.status == "fail" for r in results) else 0)


if __name__ == "__main__":
    main()
