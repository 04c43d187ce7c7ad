"""Structured logging: one line per event, key=value, UTC times, never a secret."""
from __future__ import annotations

import logging
import os
import time


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime


def configure_logging(level: str | None = None) -> None:
    level_name = (level or os.environ.get("CRYPTOBOT_LOG_LEVEL", "INFO")).upper()
    handler = logging.StreamHandler()
    handler.setFormatter(_UtcFormatter(
        "%(asctime)s.%(msecs)03dZ level=%(levelname)s logger=%(name)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    # Client libraries log every connection at INFO: useful only when debugging them.
    for chatty in ("kafka", "py4j", "urllib3", "ccxt"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
