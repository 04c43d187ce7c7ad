"""What every job's spark-submit entry does: logging, config, session, run, stop."""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable

from common.config import AppConfig, ConfigError, load_config
from common.job_runs import run_recorded
from common.logging_setup import configure_logging

log = logging.getLogger(__name__)


def run_job(job_name: str, run: Callable[[Any, AppConfig], Any],
            print_result: Callable[[Any], None] | None = None, record: bool = True) -> Any:
    """Run `run(spark, config)` as the job `job_name`, recorded in gold.job_runs unless it only
    reads (record=False); exit 2 on a config error, 1 on failure."""
    from common.spark_session import build_spark_session

    configure_logging()
    try:
        config = load_config()
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    spark = build_spark_session(config, f"cryptobot-{job_name}")
    try:
        result = (run_recorded(spark, config, job_name, lambda: run(spark, config)) if record
                  else run(spark, config))
        if print_result is not None:
            print_result(result)
        return result
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        spark.stop()


def run_sanity_job(job_name: str, checks: Callable[[Any, AppConfig], list]) -> None:
    """A sanity job: its checks recorded in gold.sanity_results, the report printed, exit 1 when
    a check failed (so a scheduler can alert)."""
    from common.sanity_checks import FAIL, format_report, run_checks

    results = run_job(job_name, lambda spark, config: run_checks(spark, config, checks),
                      print_result=lambda r: print(format_report(r)))
    sys.exit(1 if any(r.status == FAIL for r in results) else 0)
