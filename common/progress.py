"""A progress bar for a long Spark action (the backtest's fan-out): a thread reads the tasks of
the running stages from Spark's status tracker twice a second and draws
`label [#######.......] 7/16 tasks 42 s` on stderr. On a terminal the bar redraws in place;
elsewhere (a log, CI) a line is written each time another tenth of the tasks is done.
"""
from __future__ import annotations

import sys
import threading
import time


class SparkProgress:
    def __init__(self, spark, label: str, stream=None, interval_s: float = 0.5, width: int = 30):
        self._tracker = spark.sparkContext.statusTracker()
        self._label, self._width, self._interval = label, width, interval_s
        self._stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spark-progress", daemon=True)
        self._started = 0.0
        self._last_tenth = -1
        self._done = self._total = 0

    def __enter__(self) -> SparkProgress:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._total:
            self._draw(self._total if exc[0] is None else self._done, self._total, final=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            done, total = self._tasks()
            if total:
                # Stages come and go (a later one may be smaller): the bar never goes back.
                self._done, self._total = max(self._done, done), max(self._total, total)
                self._draw(self._done, self._total)

    def _tasks(self) -> tuple[int, int]:
        done = total = 0
        for stage_id in self._tracker.getActiveStageIds():
            info = self._tracker.getStageInfo(stage_id)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
        return done, total

    def _draw(self, done: int, total: int, final: bool = False) -> None:
        filled = self._width * done // total
        line = (f"{self._label} [{'#' * filled}{'.' * (self._width - filled)}] {done}/{total} tasks "
                f"{time.monotonic() - self._started:.0f} s")
        if self._stream.isatty():
            self._stream.write("\r" + line + ("\n" if final else ""))
        else:
            tenth = 10 * done // total
            if tenth == self._last_tenth and not final:
                return
            self._last_tenth = tenth
            self._stream.write(line + "\n")
        self._stream.flush()
