"""The stream's trading jobs as separate applications (`[streaming] trading_jobs = spark_submit`):
the scorer then the execution engine, the second only after the first succeeded; a job still
running is not started again (signals found meanwhile get one more run after it). spark-submit is stood in for by a script that notes its calls."""
import logging
import sys
from pathlib import Path

import pytest

from common.config import load_config
from streaming.trading_scheduler import MANAGE, QUIET_BEFORE_TURN_S, SCORE_THEN_EXECUTE, TradingJobs, submit_command

FAKE_SUBMIT = [sys.executable, str(Path(__file__).parent / "scripts" / "fake_spark_submit.py")]


@pytest.fixture
def calls(tmp_path, monkeypatch):
    log = tmp_path / "submitted.log"
    monkeypatch.setenv("FAKE_SUBMIT_LOG", str(log))
    return lambda: log.read_text().split("\n")[:-1] if log.exists() else []


@pytest.fixture
def jobs():
    config = load_config(env={"CRYPTOBOT_STREAMING__TRADING_JOBS": "spark_submit"})
    return TradingJobs(None, config, submit_prefix=FAKE_SUBMIT)


def test_the_scorer_then_the_execution_engine_each_its_own_application(jobs, calls):
    jobs.after_signals()
    jobs.wait(30)
    assert calls() == ["start statistical_scorer", "end statistical_scorer",
                       "start execution_engine", "end execution_engine"]


def test_a_job_still_running_is_not_started_again(jobs, calls):
    assert jobs.submit(MANAGE) is True
    assert jobs.submit(MANAGE) is False  # its previous turn is still running
    jobs.wait(30)
    assert jobs.submit(MANAGE) is True
    jobs.wait(30)
    assert calls() == ["start position_manager", "end position_manager"] * 2


def test_signals_found_while_the_scorer_and_engine_run_get_one_more_run_right_after(jobs, calls):
    jobs.after_signals()
    jobs.after_signals()  # more signals while the first run's scorer is still running
    jobs.after_signals()  # and more: one run after the first is enough for both
    jobs.wait(30)
    assert calls() == ["start statistical_scorer", "end statistical_scorer",
                       "start execution_engine", "end execution_engine"] * 2
    jobs.after_signals()  # nothing running: a run of its own
    jobs.wait(30)
    assert len(calls()) == 12


def test_a_failed_scorer_stops_the_chain_and_is_logged(jobs, calls, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_SUBMIT_FAIL", "statistical_scorer")
    with caplog.at_level(logging.ERROR, logger="streaming.trading_scheduler"):
        jobs.submit(SCORE_THEN_EXECUTE)
        jobs.wait(30)
    assert calls() == ["start statistical_scorer", "end statistical_scorer"]  # no execution after it
    assert "event=job_failed job=statistical_scorer exit=3" in caplog.text


def test_the_default_command_is_this_machines_spark_submit_with_the_streams_settings():
    config = load_config(env={"CRYPTOBOT_SPARK__MASTER": "local[1]"})
    command = submit_command(config)
    assert Path(command[0]).name == "spark-submit" and Path(command[0]).parent == Path(sys.executable).parent
    assert command[1:3] == ["--master", "local[1]"] and "--properties-file" in command
    custom = load_config(env={"CRYPTOBOT_STREAMING__JOB_SUBMIT_COMMAND": "spark-submit --master yarn"})
    assert submit_command(custom) == ["spark-submit", "--master", "yarn"]


def test_in_process_the_manager_never_runs_beside_the_scorer_and_execution_engine(monkeypatch):
    """Both write trading.orders and the audit log: in the stream's driver the manager's turn
    waits (manage_positions says False) while they run, and they wait for its turn. The jobs
    are stood in for by functions that note when they run."""
    import threading
    import time

    import streaming.trading_scheduler as trading_scheduler

    spans, inside = [], threading.Event()

    def job(name, seconds):
        def run(spark, config):
            inside.set()
            started = time.monotonic()
            time.sleep(seconds)
            spans.append((name, started, time.monotonic()))
        return run

    monkeypatch.setattr(trading_scheduler, "score_and_execute", job("score", 0.5))
    monkeypatch.setattr(trading_scheduler, "_manage_in_process", job("manage", 0.3))
    jobs = TradingJobs(None, load_config(env={"CRYPTOBOT_STREAMING__TRADING_JOBS": "in_process"}), submit_prefix=["-"])
    signals_batch = threading.Thread(target=jobs.after_signals)
    signals_batch.start()
    inside.wait(5)
    assert jobs.manage_positions() is False  # the scorer is running: the turn waits
    signals_batch.join()
    assert jobs.manage_positions() is True
    (first, _, score_end), (second, manage_start, _) = spans
    assert (first, second) == ("score", "manage") and manage_start >= score_end


def test_in_process_a_due_turn_waits_for_the_pipeline_to_be_quiet_unless_three_intervals_late(monkeypatch):
    """Not while a candle is on its way to an order (a query has data): its signals would wait
    for the turn to end."""
    import time

    import streaming.trading_scheduler as trading_scheduler

    turns = []
    monkeypatch.setattr(trading_scheduler, "_manage_in_process", lambda spark, config: turns.append(time.monotonic()))
    jobs = TradingJobs(None, load_config(env={"CRYPTOBOT_STREAMING__TRADING_JOBS": "in_process",
                                              "CRYPTOBOT_STREAMING__POSITION_MANAGER_INTERVAL_SECONDS": "60"}),
                       submit_prefix=["-"])
    assert jobs.manage_positions(quiet_s=10.0) and len(turns) == 1  # at start: none has run yet
    assert jobs.manage_positions(quiet_s=10.0) and len(turns) == 1  # not due
    jobs._last_turn -= 61  # due, but a stage has data (quiet 0 s), then only just went quiet
    assert jobs.manage_positions(quiet_s=0.0) is False and jobs.manage_positions(quiet_s=1.0) is False
    assert len(turns) == 1
    assert jobs.manage_positions(quiet_s=QUIET_BEFORE_TURN_S) and len(turns) == 2
    jobs._last_turn -= 181  # three intervals late: a pipeline that is never quiet gets its turn
    assert jobs.manage_positions(quiet_s=0.0) and len(turns) == 3


def test_spark_submit_submits_a_turn_every_interval(monkeypatch):
    jobs = TradingJobs(None, load_config(env={"CRYPTOBOT_STREAMING__TRADING_JOBS": "spark_submit"}),
                       submit_prefix=FAKE_SUBMIT)
    submitted = []
    monkeypatch.setattr(jobs, "submit", submitted.append)
    assert jobs.manage_positions(quiet_s=0.0) and jobs.manage_positions()  # the pipeline's quiet aside
    assert submitted == [MANAGE]
    jobs._last_turn -= jobs.config.streaming.position_manager_interval_seconds
    jobs.manage_positions()
    assert len(submitted) == 2


def test_a_failed_jobs_log_line_names_the_exception_not_the_jvms_stack():
    from streaming.trading_scheduler import raised_in

    stderr = "\n".join([
        "2026-12-02T15:41:20Z level=WARN logger=X something", "Traceback (most recent call last):",
        '  File "/work/jobs/statistical_scorer.py", line 300, in <module>', "    main()",
        "py4j.protocol.Py4JJavaError: An error occurred while calling o784.execute.",
        ": io.delta.exceptions.ConcurrentAppendException: Files were added to the root of the table",
        "\tat org.apache.spark.sql.delta.ConflictChecker.check(ConflictChecker.scala:25)",
        "2026-12-02T15:41:28Z level=WARN logger=MapPartitionsRDD RDD 160 was locally checkpointed"])
    assert raised_in(stderr) == ("py4j.protocol.Py4JJavaError: An error occurred while calling o784.execute. "
                                 ": io.delta.exceptions.ConcurrentAppendException: Files were added to the root "
                                 "of the table")
    assert raised_in("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n") == "ValueError: bad"
    assert raised_in("config error: no such key\n") == ""


def test_a_job_runs_error_is_the_java_exception_when_the_jvm_raised_it():
    from common.job_runs import first_line

    class Py4JJavaError(Exception):  # py4j's text: the call, then the Java exception, then its frames
        pass

    raised = Py4JJavaError("An error occurred while calling o784.execute.\n"
                           ": io.delta.exceptions.ConcurrentAppendException: Files were added\n\tat a.b(C.scala:1)")
    assert first_line(raised) == "io.delta.exceptions.ConcurrentAppendException: Files were added"
    assert first_line(ValueError("bad value\nmore")) == "bad value"
    assert first_line(ValueError("")) == "ValueError"
