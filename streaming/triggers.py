"""The trigger every streaming query of the app runs on: drain what is available and stop
(replays, tests, cron), or a micro-batch every configured interval (the live app)."""
from __future__ import annotations

from common.config import AppConfig


def with_trigger(writer, config: AppConfig, available_now: bool):
    if available_now:
        return writer.trigger(availableNow=True)
    return writer.trigger(processingTime=f"{config.streaming.trigger_interval_seconds} seconds")
