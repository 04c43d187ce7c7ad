"""Sanity check: every bronze message reached silver (or was superseded there, or quarantined).
spark-submit entry; `cryptobot sanity` runs it together with the unified checks. The checks are
common/sanity_checks.py."""
from common.sanity_checks import reconcile_bronze_to_silver
from jobs.entrypoint import run_sanity_job


def main() -> None:
    run_sanity_job("sanity_check_bronze_to_silver", reconcile_bronze_to_silver)


if __name__ == "__main__":
    main()
