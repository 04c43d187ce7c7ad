"""The trading jobs the running stream sets off: the scorer then the execution engine after a
batch that found signals, and the position manager on its cadence.

`[streaming] trading_jobs` says how:
- `in_process` (the default): in the stream's own driver and SparkSession, right after the
  batch. The batches of a query run one after another, so two runs of a job never overlap,
  and the scorer's writes to gold.signals_all never race the signals query's (Delta would
  fail one of two concurrent writers to a table). The position manager never runs at the same
  time as the scorer and execution engine (both write trading.orders and the audit log): a
  turn due while they run waits for them to finish, and they wait for a turn under way. So a
  turn, once due, starts from the driver's main loop only when every query has been quiet
  (no data waiting or being processed) for QUIET_BEFORE_TURN_S: not while a candle is on its
  way through the stages to an order, whose signals would wait the turn out. A pipeline busy
  for three intervals in a row gets its turn all the same. It can still commit to
  trading.audit_log while the signals query writes it: whichever loses runs its write again
  (common/audit_log.py).
- `off`: neither; for a replay of history (what it finds is scored and traded as of its own
  time by `cryptobot demo`, not as of the end of the replay).
- `spark_submit`: each job is its own application, `spark-submit jobs/<job>.py` (the
  `[streaming] job_submit_command` prefix, or this machine's spark-submit with the project's
  jars and Spark defaults), so a cluster can give the jobs their own resources. A job still
  running when its next turn comes is not started again: a position manager's turn is then
  skipped (the next comes within the interval), while signals found during a scorer and
  execution run get one more run right after it (however many batches found some), since
  nothing else would score them before they age. A failed job is logged and left for its next
  turn (a write that lost a race with the stream is retried then).
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from common.config import AppConfig
from common.job_runs import RunRecords, run_recorded
from common.trading import execution_engine, position_manager, statistical_scorer
from common.trading_config import read_trading_config

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[1]
SCORE_THEN_EXECUTE = ("statistical_scorer", "execution_engine")
MANAGE = ("position_manager",)
# In process, a due turn of the position manager waits for the pipeline to have been this quiet:
# a candle on its way keeps a stage busy, each hop starting within a trigger of the one before.
QUIET_BEFORE_TURN_S = 3.0


class TradingJobs:
    def __init__(self, spark, config: AppConfig, submit_prefix: list[str] | None = None):
        self.spark, self.config = spark, config
        self.mode = config.streaming.trading_jobs
        self.submit_prefix = submit_prefix or submit_command(config)
        self._running: dict[tuple[str, ...], threading.Thread] = {}
        self._again: set[tuple[str, ...]] = set()  # chains asked for while they ran: one more run each
        self._lock = threading.Lock()
        self._trading = threading.Lock()  # in_process: one trading job at a time
        self._interval_s = config.streaming.position_manager_interval_seconds
        self._last_turn: float | None = None  # monotonic time the last turn began (or was submitted)

    def after_signals(self) -> None:
        if self.mode == "in_process":
            with self._trading:
                score_and_execute(self.spark, self.config)
        elif self.mode == "spark_submit":
            self.submit(SCORE_THEN_EXECUTE, again_if_running=True)
        # "off": neither

    def manage_positions(self, quiet_s: float = float("inf")) -> bool:
        """From the stream's main loop (every second), quiet_s being how long every query has had
        no data: in_process, a turn when due and the pipeline has been quiet long enough (or the
        turn is three intervals late); spark_submit, a submitted turn every interval (one still
        running when the next is due is skipped, see submit). False when a turn is due but must
        wait: for the pipeline to go quiet, or for the scorer and execution engine running in
        this driver."""
        if self.mode == "in_process":
            if not self._due(self._interval_s):
                return True
            if quiet_s < QUIET_BEFORE_TURN_S and not self._due(3 * self._interval_s):
                return False
            if not self._trading.acquire(blocking=False):
                return False
            try:
                self._manage_in_process()
            finally:
                self._trading.release()
            return True
        if self.mode == "spark_submit" and self._due(self._interval_s):
            self._last_turn = time.monotonic()
            self.submit(MANAGE)
        return True

    def _due(self, after_s: float) -> bool:
        return self._last_turn is None or time.monotonic() - self._last_turn >= after_s

    def _manage_in_process(self) -> None:
        self._last_turn = time.monotonic()
        _manage_in_process(self.spark, self.config)

    def submit(self, jobs: tuple[str, ...], again_if_running: bool = False) -> bool:
        """Start the chain of jobs (each only if the one before succeeded) unless it is still
        running; returns whether it was started. again_if_running: when it is, run it once more
        after it finishes (what it was asked for came after its jobs read their input)."""
        with self._lock:
            if jobs in self._running:
                log.info("event=job_still_running jobs=%s again=%s", ",".join(jobs), again_if_running)
                if again_if_running:
                    self._again.add(jobs)
                return False
            thread = threading.Thread(target=self._run_chains, args=(jobs,), name="submit-" + "-".join(jobs),
                                      daemon=True)
            self._running[jobs] = thread
            thread.start()
            return True

    def _run_chains(self, jobs: tuple[str, ...]) -> None:
        """The chain, and again while it was asked for during a run. A chain leaves
        self._running under the lock that submit reads it with: a request either starts a new
        thread or is seen here."""
        try:
            while True:
                self._run_chain(jobs)
                with self._lock:
                    if jobs not in self._again:
                        del self._running[jobs]
                        return
                    self._again.discard(jobs)
        except BaseException:
            with self._lock:
                self._running.pop(jobs, None)
            raise

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the submitted jobs are done (at shutdown, and in tests)."""
        for thread in list(self._running.values()):
            thread.join(timeout_s)

    def _run_chain(self, jobs: tuple[str, ...]) -> None:
        for job in jobs:
            command = [*self.submit_prefix, str(PROJECT_ROOT / "jobs" / f"{job}.py")]
            log.info("event=job_submitted job=%s command=%s", job, shlex.join(command))
            try:
                finished = subprocess.run(command, cwd=PROJECT_ROOT, env=_job_env(), capture_output=True, text=True)
            except OSError as error:
                log.error("event=job_submit_failed job=%s error=%s", job, error)
                return
            if finished.returncode != 0:
                log.error("event=job_failed job=%s exit=%d error=%s stderr=%s", job, finished.returncode,
                          raised_in(finished.stderr), finished.stderr[-2000:].replace("\n", " | "))
                return
            log.info("event=job_finished job=%s output=%s", job, finished.stdout.strip().replace("\n", "; "))


def raised_in(stderr: str) -> str:
    """The exception a failed job's Python traceback ends on (its line at the left margin after
    the last "Traceback", with the Java exception's line after a Py4JJavaError), or "" when the
    output has none: the tail of stderr is mostly Spark's shutdown and the JVM's stack frames."""
    if "Traceback (most recent call last):" not in stderr:
        return ""
    after = stderr.rsplit("Traceback (most recent call last):", 1)[1].splitlines()
    for n, line in enumerate(after):
        if line and not line[0].isspace():
            following = after[n + 1] if n + 1 < len(after) else ""
            return f"{line} {following}".strip() if following.startswith(": ") else line
    return ""


def submit_command(config: AppConfig) -> list[str]:
    """`[streaming] job_submit_command`, or spark-submit beside this Python with the master,
    Spark defaults and jars the stream itself uses."""
    if config.streaming.job_submit_command:
        return shlex.split(config.streaming.job_submit_command)
    jars = sorted(str(p) for p in (PROJECT_ROOT / "jars" / "spark").glob("*.jar"))
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", config.spark.master,
               "--properties-file", str(PROJECT_ROOT / "conf" / "spark-defaults.conf")]
    return command + (["--jars", ",".join(jars)] if jars else [])


def score_and_execute(spark, config: AppConfig) -> None:
    """In-process, after a batch that found signals: the scorer, then the execution engine when a
    signal was confirmed. A failure of either is logged and left for the next batch: it must not
    stop ingestion."""
    trading = None

    def score():
        # One read of gold.trading_config for both (a bad one fails the scorer's recorded run):
        # the engine runs right after the scorer.
        nonlocal trading
        trading = read_trading_config(spark)
        return statistical_scorer.run(spark, config, trading=trading)

    try:
        # Both runs' rows in gold.job_runs in one append, after the engine.
        with RunRecords(spark, config) as records:
            scored = records.run("statistical_scorer", score)
            if any(move.endswith("->confirmed") for move in scored.moves):
                executed = records.run("execution_engine",
                                       lambda: execution_engine.run(spark, config, trading=trading))
                log.info("event=execution_after_scoring %s", executed.describe().replace("\n", ";"))
    except Exception:  # noqa: BLE001 - logged with its traceback, retried after the next batch
        log.exception("event=score_or_execute_failed")


def _job_env() -> dict[str, str]:
    """The stream's environment, with this Python for the job's workers and the project's Spark conf."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("SPARK_CONF_DIR", str(PROJECT_ROOT / "conf"))
    return env


def _manage_in_process(spark, config: AppConfig) -> None:
    """The position manager in the stream's driver; a failure is logged and retried at the next
    turn, the stream goes on."""
    try:
        result = run_recorded(spark, config, "position_manager", lambda: position_manager.run(spark, config))
        if result.actions:
            log.info("event=positions_managed %s", result.describe().replace("\n", ";"))
    except Exception:  # noqa: BLE001 - logged with its traceback; the next turn tries again
        log.exception("event=position_manager_failed")
