"""gold.job_runs: one row per run of a job (scorer, execution engine, position manager, stream,
backtest, sanity checks, ...) with its start, end, status, rows in and out and the error's
first line; the monitor reads it. A job's result says its own counts through `rows_in` /
`rows_out` attributes where it has them. Recording never hides the job's own outcome: a
failure to write the row is logged, and the job's error (if any) is raised as it was."""
from __future__ import annotations

import logging
import socket
import time
import uuid
from datetime import datetime, timezone
from typing import Callable, TypeVar

from common.catalog import location_of
from common.config import AppConfig
from common.local_frames import local_frame
from common.scrub import scrub_secrets

log = logging.getLogger(__name__)
T = TypeVar("T")

SUCCEEDED, FAILED, STOPPED = "succeeded", "failed", "stopped"


def run_recorded(spark, config: AppConfig, job: str, work: Callable[[], T], details: str | None = None) -> T:
    """work() as a run of `job`, recorded in gold.job_runs whatever its outcome."""
    with RunRecords(spark, config) as records:
        return records.run(job, work, details)


class RunRecords:
    """Runs recorded together, in one append when the block ends (however it ends): the stream
    runs the scorer and then the execution engine, and the scorer's row need not stand between
    a signal and its order."""

    def __init__(self, spark, config: AppConfig):
        self.spark, self.config = spark, config
        self.rows: list[tuple] = []

    def run(self, job: str, work: Callable[[], T], details: str | None = None) -> T:
        started = time.time()
        try:
            result = work()
        except KeyboardInterrupt:
            self.add(job, started, STOPPED, details=details, error="interrupted")
            raise
        except Exception as err:
            self.add(job, started, FAILED, details=details, error=f"{type(err).__name__}: {first_line(err)}")
            raise
        self.add(job, started, SUCCEEDED, getattr(result, "rows_in", None), getattr(result, "rows_out", None),
                 details=details)
        return result

    def add(self, job: str, started_s: float, status: str, rows_in: int | None = None, rows_out: int | None = None,
            error: str | None = None, details: str | None = None) -> None:
        ended_s = time.time()
        self.rows.append((uuid.uuid4().hex, job, _utc(started_s), _utc(ended_s), round(ended_s - started_s, 3),
                          status, None if rows_in is None else int(rows_in),
                          None if rows_out is None else int(rows_out), _stored_error(error),
                          socket.gethostname(), details))

    def write(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        try:
            location = location_of(self.config, "gold.job_runs")
            schema = self.spark.read.format("delta").load(location).schema
            local_frame(self.spark, rows, schema).write.format("delta").mode("append").save(location)
            for row in rows:
                log.info("event=job_run job=%s status=%s duration_s=%.1f rows_in=%s rows_out=%s", row[1], row[5],
                         row[4], row[6], row[7])
        except Exception as err:  # the lake may be what failed; the job's own outcome matters more
            log.warning("event=job_run_not_recorded jobs=%s error=%s", ",".join(f"{r[1]}:{r[5]}" for r in rows),
                        scrub_secrets(first_line(err)))

    def __enter__(self) -> "RunRecords":
        return self

    def __exit__(self, *exc) -> None:
        self.write()


def _stored_error(error: str | None) -> str | None:
    # An exchange's error can carry the signed request (common/scrub.py); scrubbed before the cut,
    # so that no token is cut short of looking like one.
    scrubbed = scrub_secrets(error)
    return None if scrubbed is None else scrubbed[:2000]


def _utc(epoch_s: float) -> datetime:
    # Spark takes naive datetimes as the session's time zone (UTC here, conf/spark-defaults.conf).
    return datetime.fromtimestamp(epoch_s, tz=timezone.utc).replace(tzinfo=None)


def first_line(err: BaseException) -> str:
    """The error's first line; for an error raised in the JVM (py4j's Py4JJavaError, whose first
    line is only "An error occurred while calling o784.execute."), the Java exception's."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if lines[0].startswith("An error occurred while calling") and len(lines) > 1:
        return lines[1].removeprefix(": ").strip()
    return lines[0]
