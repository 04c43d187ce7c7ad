"""retry_on_conflict: an idempotent write that lost a race with another writer of its Delta
table is run again; any other error, or a race lost every time, is raised."""
import pytest
from delta.exceptions.base import ConcurrentAppendException

from common.delta_conflicts import is_write_conflict, retry_on_conflict


def flaky(failures: list[BaseException]):
    calls = []

    def write():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "written"
    return write, calls


def test_a_write_that_lost_a_race_is_run_again_until_it_commits():
    write, calls = flaky([ConcurrentAppendException(message="files were added"),
                          RuntimeError("py4j: io.delta.exceptions.ConcurrentAppendException: a concurrent MERGE")])
    assert retry_on_conflict(write, "gold.signals_all", base_delay_s=0.001) == "written"
    assert len(calls) == 3


def test_any_other_error_is_raised_at_once():
    write, calls = flaky([ValueError("bad row")])
    with pytest.raises(ValueError, match="bad row"):
        retry_on_conflict(write, "gold.signals_all", base_delay_s=0.001)
    assert len(calls) == 1


def test_a_race_lost_every_time_is_raised_after_the_last_attempt():
    write, calls = flaky([ConcurrentAppendException(message="again")] * 3)
    with pytest.raises(ConcurrentAppendException):
        retry_on_conflict(write, "trading.audit_log", attempts=3, base_delay_s=0.001)
    assert len(calls) == 3


def test_only_delta_concurrent_modification_errors_count_as_conflicts():
    assert is_write_conflict(RuntimeError("io.delta.exceptions.ConcurrentTransactionException: txn"))
    assert not is_write_conflict(RuntimeError("io.delta.exceptions.InvariantViolationException"))
