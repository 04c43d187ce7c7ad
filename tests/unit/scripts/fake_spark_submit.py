"""Stands in for spark-submit in tests/unit/test_trading_scheduler.py: notes which job it was asked
to run (start and end, in $FAKE_SUBMIT_LOG), takes a moment, fails the job named in
$FAKE_SUBMIT_FAIL."""
import os
import sys
import time
from pathlib import Path

job = Path(sys.argv[-1]).stem
log = Path(os.environ["FAKE_SUBMIT_LOG"])
with log.open("a") as out:
    out.write(f"start {job}\n")
time.sleep(float(os.environ.get("FAKE_SUBMIT_SECONDS", "0.3")))
with log.open("a") as out:
    out.write(f"end {job}\n")
sys.exit(3 if os.environ.get("FAKE_SUBMIT_FAIL") == job else 0)
