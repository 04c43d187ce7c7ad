"""Writers that meet on one Delta table: the signals query, the scorer, the execution engine
and the position manager all write gold.signals_all and trading.audit_log. Delta's optimistic
concurrency lets one of two overlapping commits win and fails the other with a
concurrent-modification error. For a job that only costs its turn, but the stream's own write
losing such a race would stop its query. `retry_on_conflict` runs an idempotent write again
(a MERGE keyed on ids: a repeat adds nothing) against the table as it now is.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

# Delta's concurrent-modification errors, by their JVM class names (a Py4JJavaError out of a
# foreachBatch thread carries only the name) and the Python classes delta-spark maps them to.
_JVM_CONFLICTS = ("io.delta.exceptions.Concurrent", "io.delta.exceptions.DeltaConcurrentModificationException")


def is_write_conflict(error: BaseException) -> bool:
    from delta.exceptions import base

    python_classes = (base.DeltaConcurrentModificationException, base.ConcurrentWriteException,
                      base.ConcurrentAppendException, base.ConcurrentDeleteReadException,
                      base.ConcurrentDeleteDeleteException, base.ConcurrentTransactionException)
    return isinstance(error, python_classes) or any(name in str(error) for name in _JVM_CONFLICTS)


def retry_on_conflict(write: Callable[[], T], what: str, attempts: int = 5, base_delay_s: float = 0.5) -> T:
    """write() again after a concurrent-modification error, up to `attempts` times in all, with
    a growing, jittered pause (two writers retrying in step would meet again)."""
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as error:  # noqa: BLE001 - anything else is raised as it is
            if attempt == attempts or not is_write_conflict(error):
                raise
            pause = base_delay_s * 2 ** (attempt - 1) * (1 + random.random())
            log.warning("event=write_conflict_retried write=%s attempt=%d pause_s=%.1f", what, attempt, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")
